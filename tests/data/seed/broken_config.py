# An MT5-Order-Copier configuration with a syntax error on line 8 (a test fixture): a dict never closed.
SOURCE_TERMINAL = {
    'login': 1001,
    'password': 'broken-source-pw',
    'server': 'Demo-Server',
    'path': r'C:\MT5\Master\terminal64.exe',

TARGET_TERMINALS = {
    'follower': {'login': 2002, 'server': 'Demo-Server', 'path': r'C:\MT5\Follower\terminal64.exe'},
}
