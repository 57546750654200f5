# MT5 Pending Order Copier System - Configuration File (a test fixture modelled on the seed system's own
# config.py: the MT5_ACCOUNT/MT5_PASSWORD/MT5_SERVER/MT5_TERMINAL_PATH layout, one terminal shared by every
# account, expressions Python would have to run, and functions). Read by import-config, never run.

import os

SOURCE_TERMINAL = {
    'MT5_ACCOUNT': 123456789,
    'MT5_PASSWORD': os.getenv("SEED_SOURCE_PASSWORD"),
    'MT5_SERVER': "Tickmill-Demo",
    'MT5_TERMINAL_PATH': r"C:\Program Files\MetaTrader 5\terminal64.exe",
    'timeout': 10000
}

TARGET_TERMINALS = {
    # 'terminal_1': {
    #     'MT5_ACCOUNT': 111,
    # },
    'terminal_2': {
        'MT5_ACCOUNT': 987654321,
        'MT5_PASSWORD': "Spec-Target-Pw-2",
        'MT5_SERVER': "Tickmill-Demo",
        'MT5_TERMINAL_PATH': r"C:\Program Files\MetaTrader 5\terminal64.exe",
        'timeout': 10000,
        'lot_multiplier': 0.5,
        'min_lot_size': 0.01,
        'max_lot_size': 100.0,
        'allowed_order_types': ['BUY_LIMIT', 'SELL_LIMIT', 'BUY_STOP', 'SELL_STOP', 'BUY_STOP_LIMIT', 'SELL_STOP_LIMIT'],
        'symbol_mapping': {
            # 'AUDJPY': 'AUDJPY.x',
            'BTCUSD': 'BTCUSD.x',
            'USTEC': 'NAS100.x',
        },
        'orphan_management': {
            'kill_orphaned_orders': True,
            'kill_orphaned_positions': True,
            'orphan_check_interval': 1,  # seconds
            'max_orphan_checks': 1
        },
        'max_pending_orders': {
            'enabled': True,
            'max_orders': 30
        }
    },
    'terminal 3': {
        'MT5_ACCOUNT': 111222333,
        'MT5_PASSWORD': "Spec-Target-Pw-3",
        'MT5_SERVER': "OtherBroker-Live",
        'MT5_TERMINAL_PATH': r"C:\Program Files\MetaTrader 5\terminal64.exe",
        'timeout': 10000,
        'lot_multiplier': 0.25 * 2,
        'min_lot_size': 0.01,
        'max_lot_size': 100.0,
        'allowed_order_types': ['BUY_LIMIT', 'SELL_LIMIT'],
        'orphan_management': {
            'kill_orphaned_orders': True,
            'max_orphan_checks': 0,
        },
        'max_pending_orders': {
            'enabled': False
        }
    }
}

ENABLE_SCHEDULING = False
SCHEDULE_TIMEFRAME = "M5"
SCHEDULE_OFFSET_SECONDS = 60

ENABLE_CONTINUOUS_MODE = True
CONTINUOUS_DELAY_SECONDS = 500
CONTINUOUS_MAX_RUNTIME_HOURS = 0

SCHEDULED_EXECUTION = {
    'enabled': True,
    'interval_seconds': 300
}

LOGGING_CONFIG = {
    'level': 'INFO',
    'file_path': os.path.join(os.path.dirname(os.path.abspath(__file__)), 'logs', 'mt5_order_copier.log'),
    'max_file_size': 10,
    'backup_count': 5,
    'console_output': True,
    'format': '%(asctime)s - %(name)s - %(levelname)s - %(message)s'
}

SYSTEM_CONFIG = {
    'connection_timeout': 90,
    'max_retries': 5,
    'retry_delay': 5,
}


def load_config(config_path=None):
    """Never called by import-config: only literal assignments are read."""
    raise SystemExit("config.py was run")


def validate_config(config=None):
    raise SystemExit("config.py was run")


raise SystemExit("config.py was run")
