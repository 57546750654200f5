"""mt5sim: a simulated drop-in for the Windows-only MetaTrader5 package.

`import mt5sim as mt5` gives the MetaTrader5 interface (constants, functions, named tuples, failure values
and last_error() codes) over simulated terminals that live in directories and are shared by processes
through SQLite. The control functions (create_terminal, set_quote, inject_retcode, ...) and the
`Terminal` handle class add what real terminals cannot do. See mt5sim/README.md.
"""

from .api import (
    account_info,
    history_deals_get,
    history_deals_total,
    history_orders_get,
    history_orders_total,
    initialize,
    last_error,
    login,
    order_calc_margin,
    order_calc_profit,
    order_check,
    order_send,
    orders_get,
    orders_total,
    positions_get,
    positions_total,
    shutdown,
    symbol_info,
    symbol_info_tick,
    symbol_select,
    symbols_get,
    symbols_total,
    terminal_info,
    version,
)
from .constants import *  # noqa: F403  (exactly the real package's 223 constants)
from .constants import __all__ as _constant_names
from .control import (
    create_terminal,
    inject_retcode,
    lose_order,
    server_time,
    set_account,
    set_autotrading,
    set_connected,
    set_latency,
    set_quote,
    set_session,
    set_symbol,
    shift_time,
    start_terminal,
    stop_terminal,
)
from .terminal import Terminal

__version__ = "5.0.6231"  # the MetaTrader5 package version whose behaviour is simulated
__author__ = "mt5-copier (simulating MetaQuotes Ltd.'s MetaTrader5)"

# The MetaTrader5 functions, the simulator's controls and handle class, then the 223 constants.
__all__ = [
    "Terminal",
    "account_info",
    "create_terminal",
    "history_deals_get",
    "history_deals_total",
    "history_orders_get",
    "history_orders_total",
    "initialize",
    "inject_retcode",
    "last_error",
    "login",
    "lose_order",
    "order_calc_margin",
    "order_calc_profit",
    "order_check",
    "order_send",
    "orders_get",
    "orders_total",
    "positions_get",
    "positions_total",
    "server_time",
    "set_account",
    "set_autotrading",
    "set_connected",
    "set_latency",
    "set_quote",
    "set_session",
    "set_symbol",
    "shift_time",
    "shutdown",
    "start_terminal",
    "stop_terminal",
    "symbol_info",
    "symbol_info_tick",
    "symbol_select",
    "symbols_get",
    "symbols_total",
    "terminal_info",
    "version",
]
__all__ += _constant_names
