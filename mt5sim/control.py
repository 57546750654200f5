"""Control functions: create a simulated terminal and do to it what the real world does to a terminal.

Every function takes the terminal's directory (or a file inside it) and works on the shared database, so
it acts on every process attached to that terminal. They work while the terminal is stopped, and raise
(KeyError, ValueError, FileNotFoundError) on misuse instead of answering like the MetaTrader5 API.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import constants as c
from .presets import preset_symbols
from .store import Store
from .terminal import Terminal

PathLike = str | os.PathLike[str]


def default_first_ticket(login: int) -> int:
    """Ticket numbering derived from the login, so different terminals have clearly different ranges."""
    return (login % 89 + 10) * 1_000_000 + 1


def create_terminal(
    path: PathLike,
    *,
    login: int,
    server: str,
    password: str | None = None,
    balance: float = 10000.0,
    currency: str = "USD",
    leverage: int = 100,
    limit_orders: int = 0,
    suffix: str = "",
    symbols: Mapping[str, Mapping[str, Any] | None] | None = None,
    server_offset_hours: float = 0.0,
    margin_mode: int = c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    company: str = "Simulated Broker Ltd",
    first_ticket: int | None = None,
    check_margin_on_pending: bool = True,
) -> Path:
    """Create, or reset (wipe), the terminal in `path` whose account is login@server; returns its directory.

    Holds the presets EURUSD, GBPUSD, USDJPY, XAUUSD and US500 renamed with `suffix`; `symbols` overrides
    preset fields ({"EURUSD": {"trade_stops_level": 0}}), removes a preset (None) or defines a new symbol.
    The server clock runs `server_offset_hours` ahead of UTC.
    """
    if isinstance(login, bool) or not isinstance(login, int) or login <= 0:
        raise ValueError(f"login must be a positive int, got {login!r}")
    if not isinstance(server, str) or not server:
        raise ValueError(f"server must be a non-empty str, got {server!r}")
    if leverage < 1:
        raise ValueError("leverage must be >= 1")
    specs = preset_symbols(suffix, symbols)  # validate everything before touching the directory
    directory = Path(path).expanduser().absolute()
    store = Store(directory)
    store.initialise()
    offset = float(server_offset_hours) * 3600.0
    account = {
        "login": login,
        "trade_mode": c.ACCOUNT_TRADE_MODE_DEMO,
        "leverage": int(leverage),
        "limit_orders": int(limit_orders),
        "margin_so_mode": c.ACCOUNT_STOPOUT_MODE_PERCENT,
        "trade_allowed": True,
        "trade_expert": True,
        "margin_mode": int(margin_mode),
        "currency_digits": 0 if currency == "JPY" else 2,
        "fifo_close": False,
        "balance": float(balance),
        "credit": 0.0,
        "profit": 0.0,
        "equity": float(balance),
        "margin": 0.0,
        "margin_free": float(balance),
        "margin_level": 0.0,
        "margin_so_call": 50.0,
        "margin_so_so": 30.0,
        "margin_initial": 0.0,
        "margin_maintenance": 0.0,
        "assets": 0.0,
        "liabilities": 0.0,
        "commission_blocked": 0.0,
        "name": f"Simulated Trader {login}",
        "server": server,
        "currency": currency,
        "company": company,
    }
    with store.write() as tx:
        generation = tx.wipe() + 1
        tx.insert_status(
            running=1,
            generation=generation,
            connected=1,
            disconnected_ticket=0,
            autotrading=1,
            clock_offset=offset,
            latency=0.0,
            inject_retcode=0,
            inject_count=0,
            next_ticket=first_ticket if first_ticket is not None else default_first_ticket(login),
            next_request_id=1,
            check_margin_on_pending=int(check_margin_on_pending),
            password=password,
            account=account,
            pinned={},
        )
        now_msc = int((time.time() + offset) * 1000)
        for spec, bid, ask in specs:
            digits = int(spec["digits"])
            tx.insert_symbol(spec, round(bid, digits), round(ask, digits), now_msc)
    return directory


def set_quote(path: PathLike, symbol: str, bid: float, ask: float) -> None:
    """Move the market (tick time = server now); pending orders and SL/TP the move reaches execute."""
    Terminal(path).set_quote(symbol, bid, ask)


def inject_retcode(path: PathLike, retcode: int, count: int = 1) -> None:
    """The next `count` order_send calls on that terminal answer `retcode` and change nothing."""
    Terminal(path).inject_retcode(retcode, count)


def set_latency(path: PathLike, seconds: float) -> None:
    """Every order_send on that terminal takes `seconds`, slept outside any database lock."""
    Terminal(path).set_latency(seconds)


def set_session(path: PathLike, symbol: str, is_open: bool) -> None:
    """Open or close the market of a symbol (closed: 10018, and its quotes trigger nothing)."""
    Terminal(path).set_session(symbol, is_open)


def lose_order(path: PathLike, ticket: int) -> None:
    """A pending order vanishes without any record in the history (history lag, a blink never recovered)."""
    Terminal(path).lose_order(ticket)


def set_connected(path: PathLike, connected: bool) -> None:
    """The terminal loses or regains its broker connection (order_send answers 10031 meanwhile)."""
    Terminal(path).set_connected(connected)


def set_autotrading(path: PathLike, enabled: bool) -> None:
    """The AutoTrading button (terminal_info().trade_allowed); off: order_send answers 10027."""
    Terminal(path).set_autotrading(enabled)


def stop_terminal(path: PathLike) -> None:
    """The terminal process vanishes: attached calls fail with -10004, initialize() with -10005."""
    Terminal(path).stop_terminal()


def start_terminal(path: PathLike) -> None:
    """The terminal process comes back; attached processes must initialize() again."""
    Terminal(path).start_terminal()


def set_account(path: PathLike, **fields: Any) -> None:
    """Change AccountInfo fields (balance, trade_allowed, trade_expert, limit_orders, equity, ...)."""
    Terminal(path).set_account(**fields)


def set_symbol(path: PathLike, symbol: str, **fields: Any) -> None:
    """Change SymbolInfo fields of an existing symbol (trade_stops_level, trade_mode, volume_step, ...)."""
    Terminal(path).set_symbol(symbol, **fields)


def shift_time(path: PathLike, seconds: float) -> None:
    """Move that terminal's server clock forward by `seconds` (orders expire without sleeping)."""
    Terminal(path).shift_time(seconds)


def server_time(path: PathLike) -> float:
    """That terminal's server clock now, as epoch seconds."""
    return Terminal(path).server_time()
