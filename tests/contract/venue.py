"""The harness of the adapter contract suite: one ``Venue`` per test, over mt5sim or a real demo terminal.

A venue is an ``MT5Adapter`` (the code under test) over a module (``mt5sim`` or ``MetaTrader5``) wrapped in a
``RecordingModule`` that logs every trade request reaching the module, so a test can prove "nothing was
sent". The harness itself reads and cleans the terminal through the module directly, never through the
adapter, so a broken adapter cannot hide its own mess.

Safety on a real account, enforced here and in ``conftest.py``:

- the account must be a demo (``account_info().trade_mode == ACCOUNT_TRADE_MODE_DEMO``) and the one
  configured, or nothing runs at all;
- pending orders on the configured symbol, at the symbol's smallest volume, about 10 % away from the market
  (far beyond any move during a test), with SL/TP further out still;
- positions on the configured symbol, one or two at a time, of the smallest volume that can be closed in two
  parts (twice the minimum), with SL/TP about 10 % away, closed again by the test that opened them;
- every order and position carries a magic number in the suite's own range (``CONTRACT_MAGIC_BASE`` and up):
  the test's teardown removes its orders and closes its positions, pass or fail; the session's start and end
  do the same for any left in that range (an earlier run interrupted), and nothing outside the range is ever
  touched;
- what would need the market moved or the clock advanced (a pending order's fill, an expiry, a stop loss)
  runs on the simulator only.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

from protocol import (
    Command,
    CommandKind,
    CommandResult,
    CommandStatus,
    PendingOrder,
    PositionFacts,
    Quote,
    SymbolSpec,
)
from protocol.tags import copy_tag
from terminal_worker.adapter import MT5Adapter

# The real MetaTrader5 package's constants (tests/data/mt5-constants.json), never mt5sim's: the harness
# must not take its numbers from the implementation it checks.
MT5 = SimpleNamespace(**json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "mt5-constants.json").read_text(encoding="utf-8")))

PENDING_TYPES = (
    MT5.ORDER_TYPE_BUY_LIMIT, MT5.ORDER_TYPE_SELL_LIMIT, MT5.ORDER_TYPE_BUY_STOP, MT5.ORDER_TYPE_SELL_STOP,
    MT5.ORDER_TYPE_BUY_STOP_LIMIT, MT5.ORDER_TYPE_SELL_STOP_LIMIT,
)
TYPE_NAMES = {
    MT5.ORDER_TYPE_BUY_LIMIT: "buy_limit", MT5.ORDER_TYPE_SELL_LIMIT: "sell_limit",
    MT5.ORDER_TYPE_BUY_STOP: "buy_stop", MT5.ORDER_TYPE_SELL_STOP: "sell_stop",
    MT5.ORDER_TYPE_BUY_STOP_LIMIT: "buy_stop_limit", MT5.ORDER_TYPE_SELL_STOP_LIMIT: "sell_stop_limit",
}
EXPIRATION_NAMES = {
    MT5.ORDER_TIME_GTC: "gtc", MT5.ORDER_TIME_DAY: "day", MT5.ORDER_TIME_SPECIFIED: "specified",
    MT5.ORDER_TIME_SPECIFIED_DAY: "specified_day",
}
SUCCESS_RETCODES = frozenset({MT5.TRADE_RETCODE_PLACED, MT5.TRADE_RETCODE_DONE, MT5.TRADE_RETCODE_DONE_PARTIAL})
BUY_TYPES = frozenset({MT5.ORDER_TYPE_BUY_LIMIT, MT5.ORDER_TYPE_BUY_STOP, MT5.ORDER_TYPE_BUY_STOP_LIMIT})
BELOW_MARKET = frozenset({MT5.ORDER_TYPE_BUY_LIMIT, MT5.ORDER_TYPE_SELL_STOP, MT5.ORDER_TYPE_SELL_STOP_LIMIT})
STOP_LIMIT_TYPES = frozenset({MT5.ORDER_TYPE_BUY_STOP_LIMIT, MT5.ORDER_TYPE_SELL_STOP_LIMIT})

# Source tickets (= magic numbers) of the suite's orders: 12 digits, so the tag "mtc#<ticket>" keeps to 16
# characters, and far above the tickets of real servers, so no copy of a real order is ever touched.
CONTRACT_MAGIC_BASE = 900_000_000_000
CONTRACT_MAGIC_END = 1_000_000_000_000
TICKETS_PER_TEST = 1_000  # each test's source tickets: its own block, cleaned up after it
TICKETS_PER_RUN = 1_000_000
FAR_FROM_MARKET = 0.10  # orders sit this fraction of the price away from the market
DAY_SECONDS = 86_400

# What a failed placement most likely means on a real terminal, for the assertion message.
RETCODE_HINTS = {
    MT5.TRADE_RETCODE_CLIENT_DISABLES_AT: "enable Algo Trading (AutoTrading) in the terminal",
    MT5.TRADE_RETCODE_SERVER_DISABLES_AT: "the broker does not allow algorithmic trading on this account",
    MT5.TRADE_RETCODE_TRADE_DISABLED: "trading is disabled for this account or symbol",
    MT5.TRADE_RETCODE_NO_MONEY: "the demo account has not enough free margin for the smallest volume",
    MT5.TRADE_RETCODE_LIMIT_ORDERS: "the account's pending-order limit is reached: remove some orders",
    MT5.TRADE_RETCODE_CONNECTION: "the terminal is not connected to its broker",
}

ENV_PREFIX = "MT5_COPIER_CONTRACT_"
REQUIRED_VARIABLES = (f"{ENV_PREFIX}PATH", f"{ENV_PREFIX}LOGIN", f"{ENV_PREFIX}SERVER")
OPTIONAL_VARIABLES = (f"{ENV_PREFIX}PASSWORD_ENV", f"{ENV_PREFIX}PASSWORD", f"{ENV_PREFIX}SYMBOL",
                      f"{ENV_PREFIX}PORTABLE")
DEFAULT_SYMBOL = "EURUSD"

T = TypeVar("T")


# ---- which terminal to prove the adapter on ------------------------------------------------------------


@dataclass(frozen=True)
class RealTerminalSettings:
    """The demo terminal and account named by the ``MT5_COPIER_CONTRACT_*`` environment variables."""

    path: str
    login: int
    server: str
    password: str | None = field(default=None, repr=False)
    symbol: str = DEFAULT_SYMBOL
    portable: bool = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> RealTerminalSettings:
        """Read the variables; a missing or malformed one raises ValueError naming it (never a password)."""
        missing = [name for name in REQUIRED_VARIABLES if not environ.get(name, "").strip()]
        if missing:
            raise ValueError(f"set {', '.join(missing)}")
        login_text = environ[f"{ENV_PREFIX}LOGIN"].strip()
        if not login_text.isdigit() or int(login_text) <= 0:
            raise ValueError(f"{ENV_PREFIX}LOGIN must be the account number, got {login_text!r}")
        password_env = environ.get(f"{ENV_PREFIX}PASSWORD_ENV", "").strip()
        password = environ.get(f"{ENV_PREFIX}PASSWORD") or None
        if password_env and password is not None:
            raise ValueError(f"set {ENV_PREFIX}PASSWORD_ENV or {ENV_PREFIX}PASSWORD, not both")
        if password_env:
            password = environ.get(password_env) or None
            if password is None:
                raise ValueError(f"{ENV_PREFIX}PASSWORD_ENV names {password_env}, which is not set")
        portable = environ.get(f"{ENV_PREFIX}PORTABLE", "").strip().lower()
        if portable not in ("", "0", "1", "true", "false", "yes", "no"):
            raise ValueError(f"{ENV_PREFIX}PORTABLE must be 1 or 0, got {portable!r}")
        return cls(
            path=environ[f"{ENV_PREFIX}PATH"].strip(),
            login=int(login_text),
            server=environ[f"{ENV_PREFIX}SERVER"].strip(),
            password=password,
            symbol=environ.get(f"{ENV_PREFIX}SYMBOL", "").strip() or DEFAULT_SYMBOL,
            portable=portable in ("1", "true", "yes"),
        )


def why_real_cannot_run(environ: Mapping[str, str], platform: str = sys.platform,
                        package_found: Callable[[], bool] | None = None) -> str | None:
    """The skip reason for the ``real`` implementation, naming what is missing; None when it can run."""
    missing = []
    if platform != "win32":
        missing.append(f"Windows (this is {platform})")
    else:
        import importlib.util

        found = package_found() if package_found else importlib.util.find_spec("MetaTrader5") is not None
        if not found:
            missing.append("the MetaTrader5 package (pip install MetaTrader5)")
    unset = [name for name in REQUIRED_VARIABLES if not environ.get(name, "").strip()]
    if unset:
        missing.append(f"{', '.join(unset)} set to a demo terminal and account")
    if not missing:
        return None
    return ("real MetaTrader 5 not asked for: needs " + " and ".join(missing)
            + " (README: 'Proving the adapter on your terminal')")


def refuse_unless_demo(module: Any, login: int, server: str) -> str | None:
    """Why the suite must not touch this account: not a demo, or not the configured one. None: go ahead.
    Read from the module itself, not the adapter under test."""
    account = module.account_info()
    if account is None:
        return f"account_info() failed with {module.last_error()}: cannot tell whether the account is a demo"
    if int(account.trade_mode) != MT5.ACCOUNT_TRADE_MODE_DEMO:
        kinds = {MT5.ACCOUNT_TRADE_MODE_REAL: "a REAL account", MT5.ACCOUNT_TRADE_MODE_CONTEST: "a contest account"}
        kind = kinds.get(int(account.trade_mode), f"not a demo account (trade_mode {account.trade_mode})")
        return (f"REFUSED: the terminal is logged into {account.login}@{account.server}, {kind}. The adapter "
                "contract suite places and removes orders and runs only on a demo account "
                f"(account_info().trade_mode == ACCOUNT_TRADE_MODE_DEMO == {MT5.ACCOUNT_TRADE_MODE_DEMO}).")
    if int(account.login) != login or str(account.server) != server:
        return (f"REFUSED: the terminal is logged into {account.login}@{account.server}, not the configured "
                f"{login}@{server}.")
    return None


# ---- the module, recorded --------------------------------------------------------------------------------


class RecordingModule:
    """The MT5 module as the adapter sees it, logging each request that reaches order_check and order_send."""

    def __init__(self, module: Any) -> None:
        self.inner = module
        self.checked: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    def order_check(self, request: dict[str, Any]) -> Any:
        self.checked.append(dict(request))
        return self.inner.order_check(request)

    def order_send(self, request: dict[str, Any]) -> Any:
        self.sent.append(dict(request))
        return self.inner.order_send(request)

    def forget(self) -> None:
        self.checked.clear()
        self.sent.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def remove_contract_orders(module: Any, low: int = CONTRACT_MAGIC_BASE, high: int = CONTRACT_MAGIC_END,
                           *, symbol: str | None = None) -> list[int]:
    """Remove every pending order whose magic is in [low, high); return the tickets still there after."""

    def ours() -> list[Any]:
        orders = module.orders_get() if symbol is None else module.orders_get(symbol=symbol)
        if orders is None:
            raise RuntimeError(f"orders_get() failed with {module.last_error()}: cannot clean up")
        return [order for order in orders if low <= int(order.magic) < high and order.type in PENDING_TYPES]

    for order in ours():
        module.order_send({"action": MT5.TRADE_ACTION_REMOVE, "order": int(order.ticket)})
    deadline = time.monotonic() + 5.0
    left = ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = ours()
    return [int(order.ticket) for order in left]


def market_filling(filling_mode: int) -> int:
    """The filling of a market deal from a symbol's filling_mode bits (SYMBOL_FILLING_FOK 1, IOC 2)."""
    if filling_mode & 1:
        return MT5.ORDER_FILLING_FOK
    if filling_mode & 2:
        return MT5.ORDER_FILLING_IOC
    return MT5.ORDER_FILLING_RETURN


def close_contract_positions(module: Any, low: int = CONTRACT_MAGIC_BASE, high: int = CONTRACT_MAGIC_END) -> list[int]:
    """Close every position whose magic is in [low, high) at market; return the tickets still open after."""

    def ours() -> list[Any]:
        positions = module.positions_get()
        if positions is None:
            raise RuntimeError(f"positions_get() failed with {module.last_error()}: cannot clean up")
        return [position for position in positions if low <= int(position.magic) < high]

    for position in ours():
        info, tick = module.symbol_info(position.symbol), module.symbol_info_tick(position.symbol)
        if info is None or tick is None:
            continue
        buy = int(position.type) == MT5.POSITION_TYPE_BUY
        module.order_send({
            "action": MT5.TRADE_ACTION_DEAL, "symbol": position.symbol, "volume": float(position.volume),
            "type": MT5.ORDER_TYPE_SELL if buy else MT5.ORDER_TYPE_BUY, "position": int(position.ticket),
            "price": float(tick.bid if buy else tick.ask), "deviation": 1000,
            "type_filling": market_filling(int(info.filling_mode)), "magic": int(position.magic),
            "comment": "contract cleanup",
        })
    deadline = time.monotonic() + 5.0
    left = ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = ours()
    return [int(position.ticket) for position in left]


# ---- the venue ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Levels:
    price: float
    stoplimit: float = 0.0
    sl: float = 0.0
    tp: float = 0.0


class SimMarket:
    """What only the simulator can do: move the market across an order, advance the server clock."""

    def __init__(self, path: Path, symbol: str) -> None:
        self.path = path
        self.symbol = symbol

    def cross(self, order: PendingOrder, tick_size: float, digits: int) -> None:
        """Move the quotes just past the order's activation price, so it triggers."""
        import mt5sim

        step, spread = tick_size, 10 * tick_size
        if order.type in (MT5.ORDER_TYPE_BUY_LIMIT, MT5.ORDER_TYPE_BUY_STOP):
            ask = order.price_open - step if order.type == MT5.ORDER_TYPE_BUY_LIMIT else order.price_open + step
            bid = ask - spread
        elif order.type in (MT5.ORDER_TYPE_SELL_LIMIT, MT5.ORDER_TYPE_SELL_STOP):
            bid = order.price_open + step if order.type == MT5.ORDER_TYPE_SELL_LIMIT else order.price_open - step
            ask = bid + spread
        else:
            raise ValueError("cross() moves the market across limit and stop orders only")
        mt5sim.set_quote(self.path, self.symbol, round(bid, digits), round(ask, digits))

    def pass_time(self, seconds: float) -> None:
        import mt5sim

        mt5sim.shift_time(self.path, seconds)


class Venue:
    """One implementation of the MT5 module, reached through the adapter under test."""

    def __init__(self, kind: str, adapter: MT5Adapter, module: RecordingModule, *, symbol: str,
                 first_source_ticket: int, settle_seconds: float, market: SimMarket | None = None) -> None:
        self.kind = kind
        self.adapter = adapter
        self.module = module
        self.symbol = symbol
        self.market = market
        self.settle_seconds = settle_seconds
        self._first_source_ticket = first_source_ticket
        self._next_source_ticket = first_source_ticket
        self._spec: SymbolSpec | None = None

    # -- what the terminal says --------------------------------------------------------------------------
    @property
    def spec(self) -> SymbolSpec:
        if self._spec is None:
            specs, missing = self.adapter.symbol_specs([self.symbol])
            assert specs, f"the configured symbol {self.symbol} does not exist on this terminal ({missing})"
            self._spec = specs[0]
        return self._spec

    def quote(self) -> Quote:
        quotes = self.adapter.quotes([self.symbol])
        assert quotes, f"no tick for {self.symbol}"
        return quotes[0]

    def pending(self, ticket: int) -> PendingOrder | None:
        return next((order for order in self.adapter.pending_orders() if order.ticket == ticket), None)

    def position(self, ticket: int) -> PositionFacts | None:
        return next((position for position in self.adapter.positions() if position.identifier == ticket), None)

    def eventually(self, probe: Callable[[], T], what: str) -> T:
        """``probe()`` once it is truthy. A real terminal may show a change a moment after it answered."""
        deadline = time.monotonic() + self.settle_seconds
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not seen within {self.settle_seconds} s")
            time.sleep(0.02 if self.kind == "sim" else 0.1)

    def listed(self, ticket: int) -> PendingOrder:
        return self.eventually(lambda: self.pending(ticket), f"order #{ticket} in the pending orders")

    def gone(self, ticket: int) -> None:
        self.eventually(lambda: self.pending(ticket) is None, f"order #{ticket} gone from the pending orders")

    # -- what the symbol allows --------------------------------------------------------------------------
    def require_type(self, order_type: int) -> None:
        if not self.spec.order_mode & (1 << (order_type // 2)):  # mt5-api.md §5
            pytest.skip(f"{self.symbol} does not allow {TYPE_NAMES[order_type]} orders here "
                        f"(order_mode {self.spec.order_mode})")

    def require_expiration(self, type_time: int) -> None:
        if not self.spec.expiration_mode & (1 << type_time):  # mt5-api.md §5
            pytest.skip(f"{self.symbol} does not allow {EXPIRATION_NAMES[type_time]} expiration here "
                        f"(expiration_mode {self.spec.expiration_mode})")

    def require_market(self) -> SimMarket:
        if self.market is None:
            pytest.skip("needs the market moved or the server clock advanced, which only the simulator can do: "
                        "on a real account the suite never lets an order fill or expire")
        return self.market

    def unselected_symbol(self) -> str:
        """A symbol that exists but is not in Market Watch (the simulator hides one for the purpose); the
        caller hides it again afterwards."""
        symbols = self.module.inner.symbols_get()
        assert symbols is not None, f"symbols_get() failed with {self.module.inner.last_error()}"
        hidden = [str(info.name) for info in symbols if not info.select]
        if not hidden and self.market is not None:
            other = next(str(info.name) for info in symbols if info.name != self.symbol)
            assert self.module.inner.symbol_select(other, False), self.module.inner.last_error()
            hidden = [other]
        if not hidden:
            pytest.skip("every symbol of this terminal is in Market Watch: none to select")
        return hidden[0]

    # -- building copies ---------------------------------------------------------------------------------
    def next_source_ticket(self) -> int:
        ticket = self._next_source_ticket
        assert ticket < self._first_source_ticket + TICKETS_PER_TEST, "a test used up its block of tickets"
        self._next_source_ticket += 1
        return ticket

    def snap(self, price: float) -> float:
        """A price on the symbol's tick grid."""
        tick = self.spec.tick_size or self.spec.point
        return round(round(price / tick) * tick, self.spec.digits)

    @property
    def smallest_volume(self) -> float:
        return self.spec.volume_min

    def distances(self) -> tuple[float, float]:
        """(entry distance from the market, SL/TP distance from the entry), both far beyond the stops and
        freeze levels."""
        spec, quote = self.spec, self.quote()
        floor = 4 * (spec.stops_level + spec.freeze_level + 50) * spec.point
        entry = self.snap(max(quote.ask * FAR_FROM_MARKET, floor))
        return entry, self.snap(entry / 4)

    def levels(self, order_type: int, *, further: int = 0, stops: bool = True) -> Levels:
        """Valid prices for ``order_type`` far from the market; ``further`` moves them that many SL/TP
        distances further out (a modification)."""
        quote = self.quote()
        entry, stop = self.distances()
        buy = order_type in BUY_TYPES
        reference = quote.ask if buy else quote.bid
        away = entry + further * stop
        price = self.snap(reference - away if order_type in BELOW_MARKET else reference + away)
        stoplimit = 0.0
        if order_type == MT5.ORDER_TYPE_BUY_STOP_LIMIT:
            stoplimit = self.snap(price - stop)
        elif order_type == MT5.ORDER_TYPE_SELL_STOP_LIMIT:
            stoplimit = self.snap(price + stop)
        fill_at = stoplimit or price
        if not stops:
            return Levels(price, stoplimit)
        sl = self.snap(fill_at - stop if buy else fill_at + stop)
        tp = self.snap(fill_at + stop if buy else fill_at - stop)
        return Levels(price, stoplimit, sl, tp)

    def server_time(self) -> int:
        """The broker's clock, from the symbol's last tick (what the worker uses too)."""
        return self.quote().time

    def command(self, kind: CommandKind = CommandKind.PLACE, order_type: int = MT5.ORDER_TYPE_BUY_LIMIT, *,
                source_ticket: int | None = None, levels: Levels | None = None, ticket: int = 0,
                **fields: Any) -> Command:
        """A command for a copy of ``source_ticket`` (a new one by default), with the copier's tag, the
        smallest volume and far prices unless ``fields`` say otherwise."""
        source = source_ticket if source_ticket is not None else self.next_source_ticket()
        at = levels or self.levels(order_type)
        values: dict[str, Any] = dict(
            command_id=f"contract-{source}-{kind.value}-{time.monotonic_ns()}", kind=kind, source_ticket=source,
            symbol=self.symbol, ticket=ticket, order_type=order_type, volume=self.smallest_volume,
            price=at.price, stoplimit=at.stoplimit, sl=at.sl, tp=at.tp, type_time=MT5.ORDER_TIME_GTC,
            expiration=0, magic=source, comment=copy_tag(source),
        )
        values.update(fields)
        return Command(**values)

    def modify(self, order: PendingOrder, **changes: Any) -> Command:
        """A MODIFY of ``order`` carrying its full current state with ``changes`` applied (the copier always
        sends the full desired state)."""
        state: dict[str, Any] = dict(price=order.price_open, stoplimit=order.price_stoplimit, sl=order.sl,
                                     tp=order.tp, type_time=order.type_time, expiration=order.time_expiration)
        state.update(changes)
        return self.command(CommandKind.MODIFY, order.type, source_ticket=order.magic, ticket=order.ticket,
                            **state)

    def remove(self, order_ticket: int, source_ticket: int) -> Command:
        return self.command(CommandKind.REMOVE, source_ticket=source_ticket, ticket=order_ticket)

    # -- positions -----------------------------------------------------------------------------------------
    @property
    def position_volume(self) -> float:
        """The smallest volume that can be closed in two parts: twice the minimum (each part at least the
        minimum)."""
        spec = self.spec
        steps = round(2 * spec.volume_min / spec.volume_step) if spec.volume_step > 0 else 0
        volume = round(steps * spec.volume_step, 8) if steps else 2 * spec.volume_min
        if volume > spec.volume_max:
            pytest.skip(f"{self.symbol} does not allow {volume} lots (volume_max {spec.volume_max})")
        return volume

    @property
    def deviation(self) -> int:
        """A deviation no ordinary move during a test exceeds: 1 % of the price, in points."""
        return max(50, int(self.quote().ask * 0.01 / self.spec.point))

    def market_copy(self, source_ticket: int | None = None, *, ticket: int = 0, volume: float | None = None,
               order_type: int = MT5.ORDER_TYPE_BUY, price: float | None = None, deviation: int | None = None,
               **fields: Any) -> Command:
        """A MARKET command for a copy of ``source_ticket``: remove its pending copy ``ticket`` (0: none) and
        open the copy at the current price (or at ``price``, the source's fill price)."""
        quote = self.quote()
        entry = quote.ask if order_type == MT5.ORDER_TYPE_BUY else quote.bid
        return self.command(CommandKind.MARKET, order_type, source_ticket=source_ticket, ticket=ticket,
                            levels=Levels(price if price is not None else entry),
                            volume=self.position_volume if volume is None else volume,
                            deviation=self.deviation if deviation is None else deviation, **fields)

    def sltp(self, position: PositionFacts, sl: float, tp: float) -> Command:
        return self.command(CommandKind.SLTP, position.type, source_ticket=position.magic, ticket=position.ticket,
                            levels=Levels(0.0, sl=sl, tp=tp))

    def close(self, position: PositionFacts, volume: float, expected_volume: float) -> Command:
        return self.command(CommandKind.CLOSE, position.type, source_ticket=position.magic, ticket=position.ticket,
                            levels=Levels(0.0), volume=volume, expected_volume=expected_volume,
                            deviation=self.deviation)

    def far_levels(self, position: PositionFacts) -> Levels:
        """SL and TP about 10 % away from the market on the right sides of ``position``."""
        quote = self.quote()
        entry, _ = self.distances()
        if position.type == MT5.POSITION_TYPE_BUY:
            return Levels(0.0, sl=self.snap(quote.bid - entry), tp=self.snap(quote.ask + entry))
        return Levels(0.0, sl=self.snap(quote.ask + entry), tp=self.snap(quote.bid - entry))

    def opened(self, ticket: int) -> PositionFacts:
        return self.eventually(lambda: self.position(ticket), f"position #{ticket} among the positions")

    def closed(self, ticket: int) -> None:
        self.eventually(lambda: self.position(ticket) is None, f"position #{ticket} gone from the positions")

    def place(self, command: Command) -> tuple[CommandResult, PendingOrder]:
        """Execute a PLACE that must succeed; return its result and the order as the adapter reads it."""
        result = self.adapter.execute(command)
        self.expect_done(result, "place")
        return result, self.listed(result.ticket)

    def expect_done(self, result: CommandResult, what: str) -> None:
        if result.status is CommandStatus.DONE:
            return
        self._skip_if_market_closed(result)
        hint = RETCODE_HINTS.get(result.retcode, "")
        raise AssertionError(f"{what} was not done: {result}" + (f" ({hint})" if hint else ""))

    def expect_rejected(self, result: CommandResult, retcode: int) -> None:
        self._skip_if_market_closed(result)
        assert result.status is CommandStatus.REJECTED and result.retcode == retcode, result

    def _skip_if_market_closed(self, result: CommandResult) -> None:
        if result.retcode == MT5.TRADE_RETCODE_MARKET_CLOSED:
            pytest.skip(f"the market for {self.symbol} is closed now (retcode 10018): run the suite during its "
                        "trading session")

    # -- clean-up ----------------------------------------------------------------------------------------
    def clean_up(self) -> None:
        """Close every position and remove every order this venue's tests opened or placed (its block of magic
        numbers), through the module itself. Anything left is an error that names the tickets to close or
        remove by hand."""
        block = (self._first_source_ticket, self._first_source_ticket + TICKETS_PER_TEST)
        open_left = close_contract_positions(self.module.inner, *block)
        left = remove_contract_orders(self.module.inner, *block)
        if open_left:
            raise AssertionError(f"the contract suite could not close its positions {open_left} on the {self.kind} "
                                 "terminal: close them by hand" + (f" (and remove its orders {left})" if left else ""))
        if left:
            raise AssertionError(f"the contract suite could not remove its orders {left} on the {self.kind} "
                                 "terminal: remove them by hand")


def contract_run_base(now: float | None = None) -> int:
    """The first source ticket of a run: a block of TICKETS_PER_RUN in the suite's range, different for
    each run, so one run's leftovers are never taken for another's orders."""
    runs = (CONTRACT_MAGIC_END - CONTRACT_MAGIC_BASE) // TICKETS_PER_RUN
    run = int((now if now is not None else time.time()) * 10) % runs
    return CONTRACT_MAGIC_BASE + run * TICKETS_PER_RUN
