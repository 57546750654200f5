# MT5-Order-Copier configuration (a test fixture modelled on the seed system's sample file: the
# login/password/server/path layout, and every dict the sample has). Read by import-config, never run.

# =============================================================================
# SOURCE TERMINAL
# =============================================================================
SOURCE_TERMINAL = {
    'login': 51234567,                                              # account number
    'password': 'Src-pa55word!',                                    # MT5 password
    'server': 'AlphaMarkets-Demo',                                  # broker server
    'path': r'C:\Program Files\MetaTrader 5\terminal64.exe',        # terminal executable
    'timeout': 10000                                                # milliseconds
}

# =============================================================================
# TARGET TERMINALS
# =============================================================================
TARGET_TERMINALS = {
    # Half size, no stop limits, keeps orphans for a person to look at
    'Broker A (live)': {
        'login': 61234567,
        'password': 'TargetA-secret#1',
        'server': 'BetaBroker-Live',
        'path': r'C:\Program Files\MetaTrader 5\terminal64.exe',     # the same terminal as the source
        'timeout': 15000,

        'lot_multiplier': 0.5,
        'min_lot_size': 0.01,
        'max_lot_size': 10.0,

        'allowed_order_types': [
            'BUY_LIMIT',
            'SELL_LIMIT',
            'BUY_STOP',
            'SELL_STOP'
        ],

        'symbol_mapping': {
            'EURUSD': 'EURUSD',
            'XAUUSD': 'GOLD',
            'NAT.GAS': 'NGAS.cash',
        },

        'orphan_management': {
            'kill_orphaned_orders': False,
            'max_orphan_checks': 5
        },

        'max_pending_orders': {
            'enabled': True,
            'max_orders': 20
        }
    },

    # Double size, every type, quick orphan removal
    'aggressive': {
        'login': 71234567,
        'password': 'Aggr"essive\\pw',
        'server': 'GammaFX-Server',
        'path': r'D:\MT5\Aggressive\terminal64.exe',
        'timeout': 10000,

        'lot_multiplier': 2.0,
        'min_lot_size': 0.01,
        'max_lot_size': 100.0,

        'allowed_order_types': ['BUY_LIMIT', 'SELL_LIMIT', 'BUY_STOP', 'SELL_STOP', 'BUY_STOP_LIMIT',
                                'SELL_STOP_LIMIT'],

        'symbol_mapping': {
            'EURUSD': 'EURUSD.raw',
            'US30': 'US30.cash',
        },

        'orphan_management': {
            'kill_orphaned_orders': True,
            'kill_orphaned_positions': True,
            'orphan_check_interval': 2,
            'max_orphan_checks': 1
        },

        'max_pending_orders': {
            'enabled': False,
            'max_orders': 100
        }
    },
}

# =============================================================================
# EXECUTION
# =============================================================================
ENABLE_SCHEDULING = True                 # run on timeframe boundaries
ENABLE_CONTINUOUS_MODE = False

SCHEDULE_TIMEFRAME = 'M5'                # M1, M5, M15, M30, H1, H4, D1
SCHEDULE_OFFSET_SECONDS = 60             # seconds after the boundary

CONTINUOUS_DELAY_SECONDS = 5
CONTINUOUS_MAX_RUNTIME_HOURS = 0

# =============================================================================
# LOGGING / SYSTEM
# =============================================================================
LOGGING_CONFIG = {
    'level': 'DEBUG',
    'file_path': 'logs/mt5_order_copier.log',
    'max_file_size': 10,
    'backup_count': 5,
    'console_output': True
}

SYSTEM_CONFIG = {
    'state_file_path': 'data/order_tracker_state.json',
    'connection_retry_attempts': 3,
    'connection_retry_delay': 5,
    'order_operation_timeout': 30,
    'price_tolerance': 1e-5,
    'volume_tolerance': 1e-6
}

# =============================================================================
# ADVANCED
# =============================================================================
ORDER_TYPE_MAPPINGS = {
    'BUY_STOP_LIMIT': 'BUY_STOP',        # a stop at the trigger price: accepted
    'SELL_STOP_LIMIT': 'SELL_STOP',      # accepted
    'BUY_LIMIT': 'BUY_STOP',             # the wrong side of the market: refused
}

SYMBOL_FILTERS = {
    'include_patterns': ['EUR*', 'XAU*', 'US30'],
    'exclude_patterns': ['*_test*', '*_demo*'],
    'case_sensitive': False
}

PERFORMANCE_CONFIG = {
    'batch_size': 10,
    'parallel_terminals': False,
    'cache_symbol_info': True,
    'cache_duration_seconds': 300
}

NOTIFICATION_CONFIG = {
    'enabled': True,
    'email': {
        'enabled': True,
        'smtp_server': 'smtp.example.com',
        'smtp_port': 587,
        'username': 'trader@example.com',
        'password': 'smtp-app-password-42',
        'to_addresses': ['desk@example.com'],
        'subject_prefix': '[MT5 Order Copier]'
    },
    'webhook': {
        'enabled': False,
        'url': 'https://hooks.example.com/services/T000/B000/XXXXSECRET',
        'method': 'POST',
        'headers': {'Content-Type': 'application/json'}
    }
}

DEVELOPMENT_CONFIG = {
    'dry_run': True,
    'debug_mode': False,
    'test_mode': False,
    'simulation_delay': 0,
    'max_test_orders': 5
}

VALIDATION_RULES = {
    'require_source_terminal': True,
    'require_target_terminals': True,
    'min_target_terminals': 1,
    'max_target_terminals': 10,
    'validate_mt5_paths': True,
}

# # Example: a simple 1-to-1 copy (commented out, as in the seed's sample)
# TARGET_TERMINALS = {
#     'CopyAccount': {'login': 1, 'password': 'x', 'server': 'y', 'path': r'C:\MT5\terminal64.exe'},
# }
