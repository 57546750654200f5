"""A handle on one simulated terminal: every MetaTrader5 function, plus the controls a test needs.

`Terminal(path)` works like a process attached to that terminal, without the module-level state of the
MetaTrader5 package, so a test can hold handles to several terminals at once. Each MetaTrader5-style
method takes the real package's call forms, returns the real failure value on error and keeps its own
`last_error()`. The module-level facade (`mt5sim.api`) delegates to a Terminal it attached.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from . import constants as c
from . import money
from .arguments import (
    Bound,
    as_float,
    as_int,
    as_str,
    as_time,
    bind_either,
    bind_keywords,
    bind_mixed,
    parse_request,
)
from .broker import Broker, Outcome, is_buy
from .errors import (
    SUCCESS,
    ApiError,
    auth_failed,
    call_failed,
    describe_retcode,
    invalid_argument,
    invalid_arguments,
    ipc_timeout,
    no_ipc_connection,
    not_found,
)
from .groups import compile_group
from .presets import QUOTE_FIELDS, coerce_field
from .store import Status, Store, SymbolRow, Transaction
from .types import (
    ACCOUNT_INFO_FIELDS,
    SYMBOL_INFO_FIELDS,
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)

VERSION: tuple[int, int, str] = (500, 5200, "1 Nov 2025")
TERMINAL_NAME = "MetaTrader 5 (simulated)"
_ULONG_MAX = 2**64 - 1
_DERIVED_ACCOUNT_FIELDS = frozenset({"profit", "equity", "margin", "margin_free", "margin_level"})

# What each function returns when it fails; everything else returns None.
FAILURE_VALUES: dict[str, Any] = {"initialize": False, "login": False, "symbol_select": False}
API_FUNCTIONS: tuple[str, ...] = (
    "login", "version", "terminal_info", "account_info", "symbols_total", "symbols_get", "symbol_info",
    "symbol_info_tick", "symbol_select", "orders_total", "orders_get", "positions_total", "positions_get",
    "history_orders_total", "history_orders_get", "history_deals_total", "history_deals_get", "order_check",
    "order_send", "order_calc_margin", "order_calc_profit",
)  # fmt: skip


_T = TypeVar("_T")  # what a remembered read answers (Terminal._read)


def find_terminal(path: str | os.PathLike[str]) -> Path | None:
    """The terminal directory `path` names: the directory itself or the one holding a file inside it."""
    candidate = Path(path).expanduser().absolute()
    for directory in (candidate, candidate.parent):
        if Store.exists(directory):
            return directory
    return None


def _order_tuple(order: Mapping[str, Any]) -> TradeOrder:
    values = dict(order)
    if values["state"] == c.ORDER_STATE_PLACED and "_bid" in values:
        values["price_current"] = values["_ask"] if is_buy(values["type"]) else values["_bid"]
    return TradeOrder(**{name: values[name] for name in TradeOrder._fields})


@dataclass(frozen=True, slots=True)
class _Remembered:
    """A read's answer with the status it was read under (Terminal._read)."""

    status: Status
    value: Any


@dataclass
class _OrdersView:
    """One read of the placed orders, as remembered while the database is unchanged (Transaction.cached)."""

    orders: list[tuple[TradeOrder, int]]  # each with its expiry (server time; 0: none)
    status: Status
    expires_at: float  # server time of the first expiry among them (infinite when none, or from the cache)
    answers: dict[str | None, tuple[TradeOrder, ...]] = field(default_factory=dict)  # orders_get's, by group

    @classmethod
    def read(cls, tx: Transaction, status: Status, symbol: str | None, ticket: int | None) -> _OrdersView:
        cached = not status.connected  # a disconnected terminal shows what it knew, which does not expire
        orders = tx.active_orders_as(_order_with_expiry, status.generation, symbol=symbol, ticket=ticket,
                                     cached=cached)
        expiries = [expire_at for _, expire_at in orders if expire_at > 0]
        return cls(orders, status, math.inf if cached or not expiries else min(expiries))

    def answer(self, group: str | None) -> tuple[TradeOrder, ...]:
        found = self.answers.get(group)
        if found is None:
            matches = compile_group(group) if group is not None else None
            found = self.answers[group] = tuple(
                order for order, _ in self.orders if matches is None or matches(order.symbol))
        return found


def _order_with_expiry(row: Mapping[str, Any]) -> tuple[TradeOrder, int]:
    return _order_tuple(row), row["expire_at"]


class Terminal:
    """Everything one process attached to one simulated terminal can do, plus the test controls."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        directory = find_terminal(path)
        if directory is None:
            raise FileNotFoundError(f"no simulated terminal at {path} (create one with mt5sim.create_terminal)")
        self.path: Path = directory
        self._store = Store(directory)
        # Set by the facade's initialize(): a restarted terminal (new generation) breaks the connection.
        self._generation: int | None = None
        self._last_error: tuple[int, str] = SUCCESS

    def __repr__(self) -> str:
        return f"Terminal({str(self.path)!r})"

    # ---- invocation ---------------------------------------------------------------------------------
    def _invoke(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[Any, tuple[int, str]]:
        """Run one API function; returns (result or failure value, last_error pair)."""
        operation: Callable[[Sequence[Any], Mapping[str, Any]], Any] = getattr(self, f"_op_{name}")
        try:
            return operation(args, kwargs), SUCCESS
        except ApiError as error:
            return FAILURE_VALUES.get(name), error.pair

    def _call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        result, self._last_error = self._invoke(name, args, kwargs)
        return result

    def last_error(self) -> tuple[int, str]:
        """(code, description) of this handle's last call, like MetaTrader5.last_error()."""
        return self._last_error

    def _live(self, tx: Transaction) -> Status:
        """The status row, if the terminal process is up and this handle's connection still valid."""
        status = tx.status()
        if not status.running or (self._generation is not None and status.generation != self._generation):
            raise no_ipc_connection()
        return status

    def _attach(self, login: int | None, password: str | None, server: str | None) -> None:
        """initialize(): the terminal must run (else 'IPC timeout') and the credentials must match."""
        with self._store.read() as tx:
            status = tx.status()
        if not status.running:
            raise ipc_timeout()
        self._check_credentials(status, login, password, server)
        self._generation = status.generation

    @staticmethod
    def _check_credentials(status: Status, login: int | None, password: str | None, server: str | None) -> None:
        account = status.account
        if login is not None and login != account["login"]:
            raise auth_failed()
        if server is not None and server != account["server"]:
            raise auth_failed()
        if password is not None and status.password is not None and password != status.password:
            raise auth_failed()

    def _expire_if_due(self) -> None:
        """Lazy expiry: expired orders move to history before any read or write of orders."""
        with self._store.read() as tx:
            status = self._live(tx)
            due = bool(tx.due_orders(status.now()))
        if due:
            with self._store.write() as tx:
                Broker(tx, self._live(tx)).expire_due()

    # ---- MetaTrader5 functions (public, real call forms) ---------------------------------------------
    def login(self, *args: Any, **kwargs: Any) -> bool:
        return self._call("login", args, kwargs)

    def version(self, *args: Any, **kwargs: Any) -> tuple[int, int, str] | None:
        return self._call("version", args, kwargs)

    def terminal_info(self, *args: Any, **kwargs: Any) -> TerminalInfo | None:
        return self._call("terminal_info", args, kwargs)

    def account_info(self, *args: Any, **kwargs: Any) -> AccountInfo | None:
        return self._call("account_info", args, kwargs)

    def symbols_total(self, *args: Any, **kwargs: Any) -> int | None:
        return self._call("symbols_total", args, kwargs)

    def symbols_get(self, *args: Any, **kwargs: Any) -> tuple[SymbolInfo, ...] | None:
        return self._call("symbols_get", args, kwargs)

    def symbol_info(self, *args: Any, **kwargs: Any) -> SymbolInfo | None:
        return self._call("symbol_info", args, kwargs)

    def symbol_info_tick(self, *args: Any, **kwargs: Any) -> Tick | None:
        return self._call("symbol_info_tick", args, kwargs)

    def symbol_select(self, *args: Any, **kwargs: Any) -> bool:
        return self._call("symbol_select", args, kwargs)

    def orders_total(self, *args: Any, **kwargs: Any) -> int | None:
        return self._call("orders_total", args, kwargs)

    def orders_get(self, *args: Any, **kwargs: Any) -> tuple[TradeOrder, ...] | None:
        return self._call("orders_get", args, kwargs)

    def positions_total(self, *args: Any, **kwargs: Any) -> int | None:
        return self._call("positions_total", args, kwargs)

    def positions_get(self, *args: Any, **kwargs: Any) -> tuple[TradePosition, ...] | None:
        return self._call("positions_get", args, kwargs)

    def history_orders_total(self, *args: Any, **kwargs: Any) -> int | None:
        return self._call("history_orders_total", args, kwargs)

    def history_orders_get(self, *args: Any, **kwargs: Any) -> tuple[TradeOrder, ...] | None:
        return self._call("history_orders_get", args, kwargs)

    def history_deals_total(self, *args: Any, **kwargs: Any) -> int | None:
        return self._call("history_deals_total", args, kwargs)

    def history_deals_get(self, *args: Any, **kwargs: Any) -> tuple[TradeDeal, ...] | None:
        return self._call("history_deals_get", args, kwargs)

    def order_check(self, *args: Any, **kwargs: Any) -> OrderCheckResult | None:
        return self._call("order_check", args, kwargs)

    def order_send(self, *args: Any, **kwargs: Any) -> OrderSendResult | None:
        return self._call("order_send", args, kwargs)

    def order_calc_margin(self, *args: Any, **kwargs: Any) -> float | None:
        return self._call("order_calc_margin", args, kwargs)

    def order_calc_profit(self, *args: Any, **kwargs: Any) -> float | None:
        return self._call("order_calc_profit", args, kwargs)

    # ---- implementations ----------------------------------------------------------------------------
    def _op_login(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        # The real package's docs name only `login` as unnamed, but it takes `login(login, password, server)`
        # positionally too, and real callers (and the seed system) call it that way.
        bound = bind_mixed(args, kwargs, ("login", "password", "server", "timeout"), ())
        if not bound.given("login"):
            raise invalid_arguments()
        login = as_int(bound.get("login"), bound.error("login"), 0, _ULONG_MAX)
        password = self._optional_str(bound, "password")
        server = self._optional_str(bound, "server")
        if bound.get("timeout") is not None:
            as_int(bound.get("timeout"), invalid_argument("timeout"), 0)
        with self._store.read() as tx:
            status = self._live(tx)
        self._check_credentials(status, login, password, server)
        return True

    @staticmethod
    def _optional_str(bound: Bound, name: str) -> str | None:
        value = bound.get(name)
        return None if value is None else as_str(value, bound.error(name))

    def _op_version(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[int, int, str]:
        bind_either(args, kwargs, (), 0)
        with self._store.read() as tx:
            self._live(tx)
        return VERSION

    def _op_terminal_info(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> TerminalInfo:
        bind_either(args, kwargs, (), 0)
        return self._read(("terminal_info", self.path), lambda tx, status: self._terminal_info(status))

    def _read(self, key: tuple[Any, ...], compute: Callable[[Transaction, Status], _T]) -> _T:
        """``compute(tx, status)`` in a read transaction of a live terminal, remembered under ``key`` while the
        database is unchanged (Transaction.cached). While it is, the answer comes from memory without a transaction
        (Store.remembered: one PRAGMA instead of BEGIN, the status row and COMMIT), as a real terminal answers its
        reads from its own memory: a worker reads the account, the connection and the positions at every poll.
        What the memo holds is as current as ``compute`` would make it: everything it reads (the status with its
        running flag and generation, the account, positions and prices) is in the database, so any change to it
        is a new database version. Failures are never remembered: they raise inside the transaction."""
        remembered = self._store.remembered(key)
        if isinstance(remembered, _Remembered) and self._is_live(remembered.status):
            return cast(_T, remembered.value)
        with self._store.read() as tx:
            status = self._live(tx)
            return cast(_T, tx.cached(key, lambda: _Remembered(status, compute(tx, status))).value)

    def _terminal_info(self, status: Status) -> TerminalInfo:
        ping = int(status.latency * 1_000_000) or 25_000 if status.connected else 0
        return TerminalInfo(
            community_account=False,
            community_connection=False,
            connected=status.connected,
            dlls_allowed=False,
            trade_allowed=status.autotrading,
            tradeapi_disabled=False,
            email_enabled=False,
            ftp_enabled=False,
            notifications_enabled=False,
            mqid=False,
            build=VERSION[1],
            maxbars=100_000,
            codepage=0,
            ping_last=ping,
            community_balance=0.0,
            retransmission=0.0,
            company=status.account["company"],
            name=TERMINAL_NAME,
            language="English",
            path=str(self.path),
            data_path=str(self.path),
            commondata_path=str(self.path.parent / "Common"),
        )

    def _op_account_info(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> AccountInfo:
        bind_either(args, kwargs, (), 0)

        def account(tx: Transaction, status: Status) -> AccountInfo:
            view = Broker(tx, status).account_view(cached=not status.connected)
            return AccountInfo(**{name: view[name] for name in ACCOUNT_INFO_FIELDS})

        return self._read(("account_info",), account)

    # -- symbols
    def _symbol_info(self, row: SymbolRow, broker: Broker) -> SymbolInfo:
        state = row.state()
        value = money.tick_value(state, broker.account["currency"], broker.rates())
        state.update(trade_tick_value=value, trade_tick_value_profit=value, trade_tick_value_loss=value)
        return SymbolInfo(**{name: state[name] for name in SYMBOL_INFO_FIELDS})

    def _op_symbols_total(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
        bind_either(args, kwargs, (), 0)
        with self._store.read() as tx:
            self._live(tx)
            return len(tx.symbols())

    def _op_symbols_get(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[SymbolInfo, ...]:
        bound = bind_either(args, kwargs, ("group",), 0)
        group = self._optional_str(bound, "group")
        matches = compile_group(group) if group is not None else None
        with self._store.read() as tx:
            broker = Broker(tx, self._live(tx))
            rows = tx.symbols()
            return tuple(self._symbol_info(row, broker) for row in rows if matches is None or matches(row.name))

    @staticmethod
    def _symbol_name(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        bound = bind_either(args, kwargs, ("symbol",), 1)
        return as_str(bound.get("symbol"), bound.error("symbol"))

    def _selected_row(self, tx: Transaction, name: str) -> SymbolRow:
        self._live(tx)
        row = tx.symbol(name)
        # The real terminal answers only for symbols selected in Market Watch.
        if row is None or not row.spec["select"]:
            raise not_found()
        return row

    def _op_symbol_info(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> SymbolInfo:
        name = self._symbol_name(args, kwargs)
        with self._store.read() as tx:
            row = self._selected_row(tx, name)
            return self._symbol_info(row, Broker(tx, tx.status()))

    def _op_symbol_info_tick(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Tick:
        # Every worker asks for its symbols' ticks every second: the row comes from memory while the database is
        # unchanged (Terminal._read), the tick's time from the clock now.
        name = self._symbol_name(args, kwargs)
        row, status = self._read(("symbol_info_tick", self.path, name),
                                 lambda tx, status: (self._selected_row(tx, name), status))
        now_msc = int(status.now() * 1000)
        # An open market streams ticks: the latest tick is "now" on the server clock even when the price has
        # not moved (the copier reads the broker's clock from tick times, as it must with the real terminal).
        time_msc = max(row.time_msc, now_msc) if row.session_open else row.time_msc
        return Tick(
            time=time_msc // 1000,
            bid=row.bid,
            ask=row.ask,
            last=0.0,
            volume=0,
            time_msc=time_msc,
            flags=c.TICK_FLAG_BID | c.TICK_FLAG_ASK,
            volume_real=0.0,
        )

    def _op_symbol_select(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        bound = bind_either(args, kwargs, ("symbol", "enable"), 1)
        name = as_str(bound.get("symbol"), bound.error("symbol"))
        enable = bound.get("enable")
        # The documentation: omitted `enable` selects. (The book reads bool(None) as "remove".)
        enable = True if enable is None else bool(as_int(enable, bound.error("enable")))
        with self._store.write() as tx:
            self._live(tx)
            row = tx.symbol(name)
            if row is None:
                raise not_found()
            if not enable and (tx.positions(symbol=name) or tx.active_orders(symbol=name)):
                # "A symbol cannot be removed if ... positions are opened on it."
                raise call_failed()
            spec = dict(row.spec, select=enable, visible=enable)
            tx.update_spec(name, spec)
        return True

    # -- orders and positions
    @staticmethod
    def _filters(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str | None, str | None, int | None]:
        bound = bind_keywords(args, kwargs, ("symbol", "group", "ticket"))
        symbol = bound.get("symbol")
        group = bound.get("group")
        ticket = bound.get("ticket")
        if symbol is not None:
            as_str(symbol, invalid_argument("symbol"))
        if group is not None:
            as_str(group, invalid_argument("group"))
        if ticket is not None:
            ticket = as_int(ticket, invalid_argument("ticket"), 0, _ULONG_MAX)
        # The documentation: "If a symbol is specified, the ticket parameter is ignored."
        if symbol is not None:
            return symbol, None, None
        if group is not None:
            return None, group, None
        return None, None, ticket

    def _is_live(self, status: Status) -> bool:
        return status.running and (self._generation is None or status.generation == self._generation)

    def _orders_view(self, symbol: str | None = None, ticket: int | None = None) -> _OrdersView:
        """Placed orders, expiring due ones first. The source is polled for them every few milliseconds: while the
        database has not changed (and no order is due to expire) the answer comes from memory without a
        transaction (Store.remembered), as a real terminal answers from its own memory."""
        key = ("orders", symbol, ticket)
        remembered = self._store.remembered(key)
        if (isinstance(remembered, _OrdersView) and self._is_live(remembered.status)
                and remembered.status.now() < remembered.expires_at):
            return remembered
        for _ in range(2):
            with self._store.read() as tx:
                status = self._live(tx)
                view = tx.cached(key, partial(_OrdersView.read, tx, status, symbol, ticket))
            if status.now() < view.expires_at:
                break
            with self._store.write() as tx:
                Broker(tx, self._live(tx)).expire_due()
        return view

    def _op_orders_total(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
        bind_either(args, kwargs, (), 0)
        return len(self._orders_view().orders)

    def _op_orders_get(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[TradeOrder, ...]:
        symbol, group, ticket = self._filters(args, kwargs)
        return self._orders_view(symbol=symbol, ticket=ticket).answer(group)

    def _op_positions_total(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
        bind_either(args, kwargs, (), 0)
        with self._store.read() as tx:
            status = self._live(tx)
            return len(tx.positions(cached=not status.connected))

    def _op_positions_get(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[TradePosition, ...]:
        symbol, group, ticket = self._filters(args, kwargs)

        def positions(tx: Transaction, status: Status) -> tuple[TradePosition, ...]:
            broker = Broker(tx, status)
            rows = tx.positions(symbol=symbol, ticket=ticket, cached=not status.connected)
            return tuple(TradePosition(**broker.position_view(row)) for row in rows)

        held = self._read(("positions", symbol, ticket), positions)
        if group is not None:
            matches = compile_group(group)
            held = tuple(position for position in held if matches(position.symbol))
        return held

    # -- history
    @staticmethod
    def _history_args(args: Sequence[Any], kwargs: Mapping[str, Any], filters: bool) -> dict[str, Any]:
        """(date_from, date_to[, group=]) or (ticket=) or (position=), as mt5-api.md §3 lists them."""
        keywords = ("group", "ticket", "position") if filters else ()
        bound = bind_mixed(args, kwargs, ("date_from", "date_to"), keywords)
        result: dict[str, Any] = {}
        for name in ("ticket", "position"):
            if bound.get(name) is not None:
                if bound.given("date_from") or bound.given("date_to") or result:
                    raise invalid_arguments()
                result[name] = as_int(bound.get(name), invalid_argument(name), 0, _ULONG_MAX)
        if result:
            return result
        date_from, date_to = bound.get("date_from"), bound.get("date_to")
        if date_from is None or date_to is None:
            raise invalid_arguments()
        result["date_from"] = as_time(date_from, bound.error("date_from"))
        result["date_to"] = as_time(date_to, bound.error("date_to"))
        group = bound.get("group")
        if group is not None:
            result["group"] = as_str(group, invalid_argument("group"))
        return result

    def _history_orders(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        self._expire_if_due()
        with self._store.read() as tx:
            status = self._live(tx)
            until = None if status.connected else status.disconnected_ticket
            rows = tx.history_orders(
                date_from=query.get("date_from"),
                date_to=query.get("date_to"),
                ticket=query.get("ticket"),
                position=query.get("position"),
                before_ticket=until,
            )
        if "group" in query:
            matches = compile_group(query["group"])
            rows = [row for row in rows if matches(row["symbol"])]
        return rows

    def _history_deals(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        with self._store.read() as tx:
            status = self._live(tx)
            until = None if status.connected else status.disconnected_ticket
            rows = tx.deals(
                date_from=query.get("date_from"),
                date_to=query.get("date_to"),
                order=query.get("ticket"),
                position=query.get("position"),
                before_ticket=until,
            )
        if "group" in query:
            matches = compile_group(query["group"])
            rows = [row for row in rows if matches(row["symbol"])]
        return rows

    def _op_history_orders_total(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
        return len(self._history_orders(self._history_args(args, kwargs, filters=False)))

    def _op_history_orders_get(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[TradeOrder, ...]:
        query = self._history_args(args, kwargs, filters=True)
        rows = self._history_orders(query)
        if not rows and ("ticket" in query or "position" in query):
            # Observed on a real terminal: history_orders_get(ticket=<unknown>) is None, not ().
            raise not_found()
        return tuple(_order_tuple(row) for row in rows)

    def _op_history_deals_total(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
        return len(self._history_deals(self._history_args(args, kwargs, filters=False)))

    def _op_history_deals_get(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[TradeDeal, ...]:
        query = self._history_args(args, kwargs, filters=True)
        rows = self._history_deals(query)
        if not rows and ("ticket" in query or "position" in query):
            raise not_found()
        return tuple(TradeDeal(**row) for row in rows)

    # -- calculations
    def _calc_args(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], prices: tuple[str, ...]
    ) -> tuple[bool, str, float, tuple[float, ...]]:
        names = ("action", "symbol", "volume", *prices)
        bound = bind_either(args, kwargs, names, len(names))
        action = as_int(bound.get("action"), bound.error("action"))
        # ORDER_TYPE_BUY or ORDER_TYPE_SELL; other buy/sell order types count as their direction.
        if not c.ORDER_TYPE_BUY <= action <= c.ORDER_TYPE_SELL_STOP_LIMIT:
            raise bound.error("action")
        symbol = as_str(bound.get("symbol"), bound.error("symbol"))
        volume = as_float(bound.get("volume"), bound.error("volume"))
        values = tuple(as_float(bound.get(name), bound.error(name)) for name in prices)
        return is_buy(action), symbol, volume, values

    def _op_order_calc_margin(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> float:
        _, symbol, volume, (price,) = self._calc_args(args, kwargs, ("price",))
        with self._store.read() as tx:
            broker = Broker(tx, self._live(tx))
            state = broker.symbol_states().get(symbol)
            if state is None:
                raise not_found()
            account = broker.account
            try:
                value = money.margin(state, volume, price, account["leverage"], account["currency"], broker.rates())
            except money.ConversionError:
                raise call_failed() from None
        return round(value, int(account.get("currency_digits", 2)))

    def _op_order_calc_profit(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> float:
        buy, symbol, volume, (price_open, price_close) = self._calc_args(args, kwargs, ("price_open", "price_close"))
        with self._store.read() as tx:
            broker = Broker(tx, self._live(tx))
            state = broker.symbol_states().get(symbol)
            if state is None:
                raise not_found()
            account = broker.account
            try:
                value = money.profit(state, buy, volume, price_open, price_close, account["currency"], broker.rates())
            except money.ConversionError:
                raise call_failed() from None
        return round(value, int(account.get("currency_digits", 2)))

    # -- trading
    def _op_order_check(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> OrderCheckResult:
        request = parse_request(args, kwargs)
        self._expire_if_due()
        with self._store.read() as tx:
            broker = Broker(tx, self._live(tx))
            verdict = broker.validate(request)
            view = broker.account_view()
            added = verdict.margin
            if not added and not verdict.retcode and request.action == c.TRADE_ACTION_PENDING:
                added = broker.margin(request.symbol, request.volume, request.price)
        digits = int(view.get("currency_digits", 2))
        margin = round(view["margin"] + added, digits)
        margin_free = round(view["equity"] - margin, digits)
        level = round(view["equity"] / margin * 100.0, 2) if margin > 0 else 0.0
        return OrderCheckResult(
            retcode=verdict.retcode,
            balance=view["balance"],
            equity=view["equity"],
            profit=view["profit"],
            margin=margin,
            margin_free=margin_free,
            margin_level=level,
            comment="Done" if verdict.retcode == 0 else describe_retcode(verdict.retcode),
            request=request,
        )

    def _op_order_send(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> OrderSendResult:
        request = parse_request(args, kwargs)
        with self._store.read() as tx:
            latency = self._live(tx).latency
        # The broker's round trip: half on the way there, half back, never inside a transaction.
        if latency > 0:
            time.sleep(latency / 2)
        with self._store.write() as tx:
            status = self._live(tx)
            broker = Broker(tx, status)
            if status.inject_count > 0:
                tx.update_status(inject_count=status.inject_count - 1)
                outcome = self._injected(tx, request, status.inject_retcode)
            else:
                broker.expire_due()
                outcome = broker.execute(request)
        if latency > 0:
            time.sleep(latency / 2)
            with self._store.read() as tx:
                # The terminal went away while the answer travelled: the outcome is lost to the caller.
                self._live(tx)
        return OrderSendResult(
            retcode=outcome.retcode,
            deal=outcome.deal,
            order=outcome.order,
            volume=outcome.volume,
            price=outcome.price,
            bid=outcome.bid,
            ask=outcome.ask,
            comment=describe_retcode(outcome.retcode),
            request_id=outcome.request_id,
            retcode_external=0,
            request=request,
        )

    @staticmethod
    def _injected(tx: Transaction, request: TradeRequest, retcode: int) -> Outcome:
        """An injected answer: the retcode, current quotes, and nothing changed."""
        name = request.symbol
        if not name and request.order:
            order = tx.order(request.order)
            name = order["symbol"] if order else ""
        row = tx.symbol(name) if name else None
        return Outcome(
            retcode,
            bid=row.bid if row else 0.0,
            ask=row.ask if row else 0.0,
            request_id=tx.allocate_request_id(),
        )

    # ---- controls (what a real terminal cannot do) --------------------------------------------------
    def server_time(self) -> float:
        """The terminal's server clock now, as epoch seconds (UTC + offset + shifts)."""
        with self._store.read() as tx:
            return tx.status().now()

    def set_quote(self, symbol: str, bid: float, ask: float) -> None:
        """Move the market; pending orders and position SL/TP the move reaches execute server-side."""
        with self._store.write() as tx:
            status = tx.status()
            row = tx.symbol(symbol)
            if row is None:
                raise KeyError(f"unknown symbol {symbol!r} in {self.path}")
            digits = int(row.spec["digits"])
            bid, ask = round(float(bid), digits), round(float(ask), digits)
            if not (bid > 0 and ask >= bid):
                raise ValueError(f"need 0 < bid <= ask, got bid={bid} ask={ask}")
            tx.update_quote(symbol, bid, ask, int(status.now() * 1000))
            Broker(tx, status).process_market(symbol)

    def inject_retcode(self, retcode: int, count: int = 1) -> None:
        """The next `count` order_send calls answer `retcode` and change nothing (order_check ignores it)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._store.write() as tx:
            tx.update_status(inject_retcode=int(retcode), inject_count=int(count))

    def set_latency(self, seconds: float) -> None:
        """Every order_send takes `seconds` (the broker's round trip), outside any lock."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        with self._store.write() as tx:
            tx.update_status(latency=float(seconds))

    def set_session(self, symbol: str, is_open: bool) -> None:
        """Open or close a symbol's market: closed answers 10018 and its quotes trigger nothing."""
        with self._store.write() as tx:
            if tx.symbol(symbol) is None:
                raise KeyError(f"unknown symbol {symbol!r} in {self.path}")
            tx.set_session(symbol, is_open)
            if is_open:
                Broker(tx, tx.status()).process_market(symbol)

    def lose_order(self, ticket: int) -> None:
        """A pending order vanishes without a trace: no longer pending, and no record in the history (what a
        copier sees from a terminal whose history lags behind, or that blinked and never showed it again)."""
        with self._store.write() as tx:
            order = tx.order(ticket)
            if order is None or order["state"] != c.ORDER_STATE_PLACED:
                raise KeyError(f"no pending order #{ticket} in {self.path}")
            tx.delete_order(ticket)

    def set_connected(self, connected: bool) -> None:
        """Lose or regain the broker connection.

        While disconnected, order_send answers 10031 and orders_get/positions_get/history answer from what
        the terminal knew at the disconnect (server-side fills or expiries show up after reconnecting).
        """
        with self._store.write() as tx:
            status = tx.status()
            if not connected and status.connected:
                Broker(tx, status).expire_due()
                tx.snapshot_cache()
                tx.update_status(connected=0, disconnected_ticket=status.next_ticket)
            elif connected and not status.connected:
                tx.clear_cache()
                tx.update_status(connected=1, disconnected_ticket=0)

    def set_autotrading(self, enabled: bool) -> None:
        """The AutoTrading button: off answers 10027 'AutoTrading disabled by client'."""
        with self._store.write() as tx:
            tx.update_status(autotrading=int(bool(enabled)))

    def stop_terminal(self) -> None:
        """The terminal process vanishes: attached processes get -10004, initialize() -10005."""
        with self._store.write() as tx:
            tx.update_status(running=0)

    def start_terminal(self) -> None:
        """The terminal comes back. Processes attached before must initialize() again, as with a real one."""
        with self._store.write() as tx:
            status = tx.status()
            if not status.running:
                tx.update_status(running=1, generation=status.generation + 1)

    def set_account(self, **fields: Any) -> None:
        """Change AccountInfo fields. profit/equity/margin/margin_free/margin_level are computed unless set
        here (None returns them to computed)."""
        with self._store.write() as tx:
            status = tx.status()
            account, pinned = dict(status.account), dict(status.pinned)
            for name, value in fields.items():
                if name not in ACCOUNT_INFO_FIELDS:
                    raise ValueError(f"unknown AccountInfo field {name!r}")
                if name in _DERIVED_ACCOUNT_FIELDS:
                    if value is None:
                        pinned.pop(name, None)
                    else:
                        pinned[name] = float(value)
                    continue
                current = account[name]
                if isinstance(current, str) != isinstance(value, str):
                    raise TypeError(f"AccountInfo.{name} must be like {current!r}, got {value!r}")
                account[name] = type(current)(value)
            tx.update_status(account=account, pinned=pinned)

    def set_symbol(self, symbol: str, **fields: Any) -> None:
        """Change SymbolInfo fields of an existing symbol (quotes go through set_quote)."""
        with self._store.write() as tx:
            row = tx.symbol(symbol)
            if row is None:
                raise KeyError(f"unknown symbol {symbol!r} in {self.path}")
            spec = dict(row.spec)
            for name, value in fields.items():
                if name in QUOTE_FIELDS or name == "name":
                    raise ValueError(f"SymbolInfo.{name} cannot be set with set_symbol")
                spec[name] = coerce_field(name, value)
            tx.update_spec(symbol, spec)

    def shift_time(self, seconds: float) -> None:
        """Move the server clock forward; orders whose expiry passes expire (lazily, at the next call)."""
        with self._store.write() as tx:
            status = tx.status()
            tx.update_status(clock_offset=status.clock_offset + float(seconds))
