# The smallest MT5-Order-Copier configuration: a source and one target, nothing else (a test fixture).
SOURCE_TERMINAL = {
    'login': 1001,
    'password': 'minimal-source-pw',
    'server': 'Demo-Server',
    'path': r'C:\MT5\Master\terminal64.exe',
}

TARGET_TERMINALS = {
    'follower': {
        'login': 2002,
        'password': 'minimal-target-pw',
        'server': 'Demo-Server',
        'path': r'C:\MT5\Follower\terminal64.exe',
    },
}
