"""The module-level MetaTrader5 facade: one attached terminal per process, and a process-wide last_error.

Like the real package, a process is attached to at most one terminal at a time. Every function delegates
to the attached Terminal and records its (code, description) for last_error(); without an attachment a
call fails with (-10004, 'No IPC connection').
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .arguments import as_int, as_str, bind_mixed
from .errors import SUCCESS, ApiError, invalid_argument, no_ipc_connection, terminal_not_found
from .terminal import FAILURE_VALUES, Terminal, find_terminal
from .types import (
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
)

PATH_ENVIRONMENT_VARIABLE = "MT5SIM_PATH"


class _Session:
    """The process-global connection state of the facade."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.terminal: Terminal | None = None
        self.last_error: tuple[int, str] = SUCCESS


_session = _Session()


def _call(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    terminal = _session.terminal
    if terminal is None:
        _session.last_error = no_ipc_connection().pair
        return FAILURE_VALUES.get(name)
    result, _session.last_error = terminal._invoke(name, args, kwargs)
    return result


def initialize(*args: Any, **kwargs: Any) -> bool:
    """initialize(path=None, *, login=, password=, server=, timeout=60000, portable=False).

    `path` is the simulated terminal's directory (or a file inside it, like terminal64.exe); without it,
    the MT5SIM_PATH environment variable. Attaching to another terminal first detaches from the current one.
    """
    with _session.lock:
        _session.terminal = None
        try:
            terminal = _attach(args, kwargs)
        except ApiError as error:
            _session.last_error = error.pair
            return False
        _session.terminal = terminal
        _session.last_error = SUCCESS
        return True


def _attach(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Terminal:
    bound = bind_mixed(args, kwargs, ("path",), ("login", "password", "server", "timeout", "portable"))
    path = bound.get("path")
    if path is None:
        path = os.environ.get(PATH_ENVIRONMENT_VARIABLE)
        if not path:
            raise terminal_not_found()
    else:
        as_str(path, bound.error("path"))
    login = bound.get("login")
    if login is not None:
        login = as_int(login, invalid_argument("login"), 0, 2**64 - 1)
    password = bound.get("password")
    if password is not None:
        as_str(password, invalid_argument("password"))
    server = bound.get("server")
    if server is not None:
        as_str(server, invalid_argument("server"))
    if bound.get("timeout") is not None:
        as_int(bound.get("timeout"), invalid_argument("timeout"), 0)
    if bound.get("portable") is not None:
        as_int(bound.get("portable"), invalid_argument("portable"))
    directory = find_terminal(path)
    if directory is None:
        raise terminal_not_found()
    terminal = Terminal(directory)
    terminal._attach(login, password, server)
    return terminal


def shutdown() -> None:
    """Detach from the terminal. Returns None, as documented."""
    with _session.lock:
        _session.terminal = None
        _session.last_error = SUCCESS


def last_error() -> tuple[int, str]:
    """(code, description) of the last call of this process."""
    return _session.last_error


def login(*args: Any, **kwargs: Any) -> bool:
    """login(login, password=, server=, timeout=60000), positionally or by name: True if the attached account
    matches."""
    return bool(_call("login", args, kwargs))


def version(*args: Any, **kwargs: Any) -> tuple[int, int, str] | None:
    return _call("version", args, kwargs)


def terminal_info(*args: Any, **kwargs: Any) -> TerminalInfo | None:
    return _call("terminal_info", args, kwargs)


def account_info(*args: Any, **kwargs: Any) -> AccountInfo | None:
    return _call("account_info", args, kwargs)


def symbols_total(*args: Any, **kwargs: Any) -> int | None:
    return _call("symbols_total", args, kwargs)


def symbols_get(*args: Any, **kwargs: Any) -> tuple[SymbolInfo, ...] | None:
    return _call("symbols_get", args, kwargs)


def symbol_info(*args: Any, **kwargs: Any) -> SymbolInfo | None:
    return _call("symbol_info", args, kwargs)


def symbol_info_tick(*args: Any, **kwargs: Any) -> Tick | None:
    return _call("symbol_info_tick", args, kwargs)


def symbol_select(*args: Any, **kwargs: Any) -> bool:
    return bool(_call("symbol_select", args, kwargs))


def orders_total(*args: Any, **kwargs: Any) -> int | None:
    return _call("orders_total", args, kwargs)


def orders_get(*args: Any, **kwargs: Any) -> tuple[TradeOrder, ...] | None:
    """orders_get(), orders_get(symbol=), orders_get(group=) or orders_get(ticket=); keyword filters only."""
    return _call("orders_get", args, kwargs)


def positions_total(*args: Any, **kwargs: Any) -> int | None:
    return _call("positions_total", args, kwargs)


def positions_get(*args: Any, **kwargs: Any) -> tuple[TradePosition, ...] | None:
    """positions_get(), (symbol=), (group=) or (ticket=); keyword filters only."""
    return _call("positions_get", args, kwargs)


def history_orders_total(*args: Any, **kwargs: Any) -> int | None:
    return _call("history_orders_total", args, kwargs)


def history_orders_get(*args: Any, **kwargs: Any) -> tuple[TradeOrder, ...] | None:
    """(date_from, date_to, group=), (ticket=) or (position=); an unknown ticket gives None."""
    return _call("history_orders_get", args, kwargs)


def history_deals_total(*args: Any, **kwargs: Any) -> int | None:
    return _call("history_deals_total", args, kwargs)


def history_deals_get(*args: Any, **kwargs: Any) -> tuple[TradeDeal, ...] | None:
    """(date_from, date_to, group=), (ticket=<order ticket>) or (position=)."""
    return _call("history_deals_get", args, kwargs)


def order_check(*args: Any, **kwargs: Any) -> OrderCheckResult | None:
    return _call("order_check", args, kwargs)


def order_send(*args: Any, **kwargs: Any) -> OrderSendResult | None:
    return _call("order_send", args, kwargs)


def order_calc_margin(*args: Any, **kwargs: Any) -> float | None:
    """order_calc_margin(action, symbol, volume, price) in the account currency."""
    return _call("order_calc_margin", args, kwargs)


def order_calc_profit(*args: Any, **kwargs: Any) -> float | None:
    """order_calc_profit(action, symbol, volume, price_open, price_close) in the account currency."""
    return _call("order_calc_profit", args, kwargs)
