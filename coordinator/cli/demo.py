"""``mt5-copier demo``: the copier at work on simulated terminals, on any machine, with no MT5 anywhere.

It creates a source and three target terminals in mt5sim (different symbol names, lot rules and order
types), starts a scripted trader on the source, runs the real coordinator and workers against them, and
ends with two tables: every source order against its copy on each target, and every position the source
opened against its copy's position on each target.

The trader's story (``ScriptedTrader.run``): three pending orders meant to become positions; the market moves
through them, on the targets' feeds first and a moment later on the source's, so their copies fill as well
(the copier removes a copy still pending when its source fills, ``on_source_fill = "remove"``); then it moves
the SL and TP of the first position, closes half of the second and all of the third, through ``order_send`` on
the source's positions as a trader's terminal does, and the copier makes each copy follow. Around the story it
places, edits and cancels pending orders of every type and moves the market where it holds nothing.
"""

from __future__ import annotations

import os
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from config import load_config
from coordinator.runtime.runner import Coordinator, install_signal_handlers
from protocol.mt5 import (
    PENDING_ORDER_TYPES,
    AccountMarginMode,
    DealEntry,
    OrderFilling,
    OrderTime,
    OrderType,
    PositionType,
    Retcode,
    TradeAction,
    describe_order_type,
)
from protocol.tags import parse_tag

if TYPE_CHECKING:
    from mt5sim import Terminal
    from mt5sim.types import SymbolInfo, Tick, TradeDeal, TradeOrder, TradePosition


@dataclass(frozen=True)
class DemoTerminal:
    """One simulated terminal of the demo: its account, and how its broker names symbols and keeps time."""

    name: str
    login: int
    server: str
    suffix: str = ""
    offset: float = 0.0  # the broker's server clock, in hours from UTC
    symbol_map: Mapping[str, str] = field(default_factory=dict)  # as [targets.symbol_map] in CONFIG

    def symbol(self, source_symbol: str) -> str:
        """The name this broker gives the source's ``source_symbol`` (how CONFIG tells the copier)."""
        return self.symbol_map.get(source_symbol, source_symbol + self.suffix)


SOURCE = DemoTerminal(name="master", login=1001, server="Demo-Master")
TARGETS = [
    DemoTerminal(name="broker-a", login=2001, server="Alpha-Live", suffix=".m", offset=2.0),
    DemoTerminal(name="broker-b", login=3001, server="Beta-Trade", suffix="pro", offset=3.0),
    DemoTerminal(name="broker-c", login=4001, server="Gamma-ECN", suffix="", offset=0.0,
                 symbol_map={"XAUUSD": "GOLD"}),
]
TRADED = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")
ORDER_TYPES = tuple(sorted(PENDING_ORDER_TYPES))
# The types whose entry rests below the market: moved down, they stay valid.
BELOW_THE_MARKET = frozenset({OrderType.BUY_LIMIT, OrderType.SELL_STOP, OrderType.SELL_STOP_LIMIT})
# The types broker-b copies (its order_types), so every target does.
LIMITS_AND_STOPS = (OrderType.BUY_LIMIT, OrderType.SELL_LIMIT, OrderType.BUY_STOP, OrderType.SELL_STOP)


class Then(Enum):
    """What the trader does to a position of its story once it is open."""

    MOVE_LEVELS = "then to have its SL and TP moved"
    CLOSE_HALF = "then to be half closed"
    CLOSE = "then to be closed"


@dataclass(frozen=True)
class PlannedTrade:
    """A position the trader opens through a pending order (the copier copies pending orders), and its fate."""

    symbol: str
    order_type: OrderType
    volume: float  # halves and doubles that every target can hold (broker-b: half, in steps of 0.01)
    then: Then


# Types every target copies (broker-b takes limits and stops only), placed first so broker-c has room for them.
STORY = (
    PlannedTrade("EURUSD", OrderType.BUY_LIMIT, 0.2, Then.MOVE_LEVELS),
    PlannedTrade("GBPUSD", OrderType.SELL_LIMIT, 0.4, Then.CLOSE_HALF),
    PlannedTrade("XAUUSD", OrderType.BUY_STOP, 0.1, Then.CLOSE),
)
STORY_DISTANCE = 150  # points (x10 for 2 and 3 digits) from the market to a story order's entry
STORY_SL, STORY_TP = 300, 600  # points from the entry; the SL/TP move brings each 100 points closer
# The brokers' feeds are not in lockstep: the targets' market reaches the story's orders this long before the
# source's, long enough for the copier to see its copies filled before it sees their source filled (else it
# would remove them, as on_source_fill = "remove" asks for a copy still pending when its source fills).
FEED_LAG = 0.6
STARTUP = 2.0  # before the first order: the workers connect meanwhile, so the copies show up live
# The demo's --duration counts from its first copies (the copier at work on every terminal), so a slow start
# (processes to spawn on a busy machine) never eats the story; a copier not at work after this long starts it.
READY_TIMEOUT = 30.0
FOLLOW_TIME = 5.0  # seconds left after the story's last step (a close is followed within about a second)
STORY_NEEDS = 10.0  # seconds of demo for the story to end and the copies to follow it (see pace)

CONFIG = """\
# Written by `mt5-copier demo`.
[coordinator]
bind = "tcp://127.0.0.1:*"
interval = 2.0
state_dir = "state"
hello_timeout = 30.0

[source]
name = "master"
backend = "sim"
path = "terminals/master"
login = 1001
server = "Demo-Master"

[[targets]]
name = "broker-a"            # same symbols with a ".m" suffix, double size, every type
backend = "sim"
path = "terminals/broker-a"
login = 2001
server = "Alpha-Live"
lot_multiplier = 2.0
symbol_suffix = ".m"
[targets.orphans]
check_interval = 1.0
max_checks = 2

[[targets]]
name = "broker-b"            # "pro" suffix, half size with a floor, limits and stops only
backend = "sim"
path = "terminals/broker-b"
login = 3001
server = "Beta-Trade"
lot_multiplier = 0.5
min_lot = 0.01
max_lot = 2.0
symbol_suffix = "pro"
order_types = ["buy_limit", "sell_limit", "buy_stop", "sell_stop"]
[targets.orphans]
check_interval = 1.0
max_checks = 2

[[targets]]
name = "broker-c"            # gold is called GOLD here; at most 6 copies at a time
backend = "sim"
path = "terminals/broker-c"
login = 4001
server = "Gamma-ECN"
lot_multiplier = 1.0
max_pending_orders = 6
[targets.symbol_map]
XAUUSD = "GOLD"
[targets.orphans]
check_interval = 1.0
max_checks = 2
"""

GOLD = {
    "GOLD": {
        "description": "Gold vs US Dollar", "digits": 2, "point": 0.01, "trade_tick_size": 0.01,
        "trade_contract_size": 100.0, "volume_min": 0.01, "volume_max": 100.0, "volume_step": 0.01,
        "trade_stops_level": 20, "currency_base": "XAU", "currency_profit": "USD", "currency_margin": "XAU",
        "bid": 2000.00, "ask": 2000.25,
    }
}


def _free_port() -> int:
    """A TCP port free on loopback now, for the demo's status page (a demo must not clash with a copier running
    on the usual 9464)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_demo(*, duration: float, directory: Path | None) -> int:
    import mt5sim

    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="mt5-copier-demo-"))
    directory = directory.resolve()
    terminals = directory / "terminals"
    # Hedging accounts, all of them: on a netting target the copier would copy pending orders but not follow
    # positions (a copy's position merges with others there); render_positions would say so.
    hedging = AccountMarginMode.RETAIL_HEDGING
    mt5sim.create_terminal(terminals / SOURCE.name, login=SOURCE.login, server=SOURCE.server, margin_mode=hedging)
    for target in TARGETS:
        mt5sim.create_terminal(terminals / target.name, login=target.login, server=target.server,
                               suffix=target.suffix, server_offset_hours=target.offset, margin_mode=hedging,
                               symbols=GOLD if target.name == "broker-c" else None)
    config_path = directory / "copier.toml"
    page = f"127.0.0.1:{_free_port()}"
    config_path.write_text(CONFIG + f'\n[metrics]\nlisten = "{page}"  # the status page and /metrics\n',
                           encoding="utf-8")
    config = load_config(config_path)
    logger.info("demo: terminals and config in {}", directory)
    logger.info("demo: watch it in a browser on http://{}/ (the status page; Prometheus metrics at /metrics)", page)
    logger.info("demo: a scripted trader places pending orders on 'master' and moves the market, for {:.0f}s from "
                "its first copies", duration)
    if duration >= STORY_NEEDS:
        logger.info("demo: the market fills three of the trader's orders and their copies, then the trader moves "
                    "the SL/TP of one position, closes half of another and closes the third; every account is "
                    "hedging, so each copy's position is its own and follows its source")
    else:
        logger.warning("demo: {:.0f}s is too short for the trader to open positions and act on them (that takes "
                       "{:.0f}s)", duration, STORY_NEEDS)

    coordinator = Coordinator(config, once=False)
    install_signal_handlers(coordinator)
    trader = ScriptedTrader(terminals, seed=7, duration=duration)
    trader_thread = threading.Thread(target=trader.run, args=(coordinator,), name="trader", daemon=True)
    finished = threading.Event()
    clock = threading.Thread(target=run_clock, args=(coordinator, duration, trader.ready, finished), name="clock",
                             daemon=True)
    trader_thread.start()
    clock.start()
    code = coordinator.run()
    finished.set()
    trader.ready.set()  # the clock waits no more (a trader that never started, in tests)
    trader.stop = True
    trader_thread.join(5.0)
    clock.join(1.0)
    print(render_table(terminals))
    print(render_positions(terminals))
    print(f"\nThe demo's terminals, config and logs are in {directory}")
    print(f"Run it yourself: {command_line([*copier_command(), 'run', '--config', str(config_path), '--once'])}")
    return code


def copier_command() -> list[str]:
    """How to start this very installation's ``mt5-copier``, whatever the shell's PATH holds.

    The suggestion must work as printed in a shell where the venv is not activated: the script installed
    next to the running interpreter, by its absolute path, or else the interpreter itself with ``-m``.
    The interpreter's path is not resolved: a venv's python is a link, and resolving it leaves the venv.
    """
    scripts = Path(sys.executable).parent  # bin/ (POSIX) or Scripts\ (Windows) of the venv
    for name in ("mt5-copier.exe", "mt5-copier") if os.name == "nt" else ("mt5-copier",):
        if (scripts / name).is_file():
            return [str(scripts / name)]
    return [sys.executable, "-m", "coordinator"]


def command_line(arguments: list[str]) -> str:
    """``arguments`` quoted for this system's shell, so a path with spaces still works when pasted."""
    return subprocess.list2cmdline(arguments) if os.name == "nt" else shlex.join(arguments)


def run_clock(coordinator: Coordinator, duration: float, ready: threading.Event, finished: threading.Event) -> None:
    """Stop the demo ``duration`` seconds after the trader saw its first copies (``ready``), or after
    READY_TIMEOUT + ``duration`` if they never came; nothing once the coordinator has ``finished``."""
    if not ready.wait(READY_TIMEOUT) and not finished.is_set():
        logger.warning("demo: no copy on every target after {:.0f}s; the demo runs {:.0f}s more", READY_TIMEOUT,
                       duration)
    if not finished.wait(duration):
        coordinator.request_stop(f"demo ran {duration:.0f}s")


def fillers(duration: float) -> int:
    """Random orders placed between the story's orders and their fills: enough to show broker-c's cap of 6."""
    return 4 if duration >= 24 else 0


def pace(duration: float) -> float:
    """Seconds between the trader's steps: 1.2 in the 30 s demo, shorter to fit a shorter one, so the story
    after its first copies (8 steps, the fillers on top, 3 FEED_LAGs) leaves FOLLOW_TIME to the copier to
    follow its last step. In a 10 s demo the story ends 5 s in; in a 30 s one, about 16 s in."""
    steps = 8 + fillers(duration)
    return min(1.2, max(0.25, (duration - 3 * FEED_LAG - FOLLOW_TIME) / steps))


class ScriptedTrader:
    """A trader on the source terminal, and the market every terminal sees.

    It tells the story (STORY: pending orders that fill, then an SL/TP move, a partial close and a close on
    the source's positions), then places, edits and cancels pending orders of every type and moves the market
    until the demo ends. The market is one market: a move reaches every terminal (each under its own symbol
    name), the targets a moment before the source when it fills the story's orders.
    """

    def __init__(self, terminals: Path, seed: int, duration: float = 30.0) -> None:
        import mt5sim

        self._mt5sim = mt5sim
        self.terminals = terminals
        self.terminal = mt5sim.Terminal(terminals / SOURCE.name)
        self.random = random.Random(seed)
        self.duration = duration
        self.startup = min(STARTUP, duration / 10)
        self.gap = pace(duration)
        self.fillers = fillers(duration)
        self.story: dict[int, PlannedTrade] = {}  # the story's source tickets: orders, then their positions
        self.stop = False
        self.ready = threading.Event()  # the first copies are on every target: the demo's clock starts
        self._coordinator: Coordinator | None = None

    # ---- the script ----------------------------------------------------------------------------

    def run(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator
        story = self.duration >= STORY_NEEDS
        try:
            if not self.pause(self.startup):
                return
            if story:
                self.attempt(self.place_for_position, STORY[0])
                first = list(self.story)
            else:
                ticket = self.attempt(self.place_random_order, LIMITS_AND_STOPS)  # a type every target copies
                first = [ticket] if isinstance(ticket, int) and ticket else []
            if self.wait_for_copies(first, READY_TIMEOUT):
                logger.info("demo: the first copies are on every target; the demo runs {:.0f}s from now",
                            self.duration)
            if not self.going:
                return
        finally:
            self.ready.set()
        if story:
            self.tell_the_story()
        self.carry_on()

    def tell_the_story(self) -> None:
        """The rest of STORY, once its first order is copied: place, fill, act on the positions."""
        for plan in STORY[1:]:
            if not self.pause(self.gap):
                return
            self.attempt(self.place_for_position, plan)
        for _ in range(self.fillers):
            if not self.pause(self.gap):
                return
            self.attempt(self.place_random_order)
        if not self.pause(self.gap):
            return
        self.wait_for_copies(list(self.story), READY_TIMEOUT)
        for ticket in list(self.story):
            self.attempt(self.fill, ticket)
            if not self.pause(self.gap):
                return
        for ticket, plan in list(self.story.items()):
            self.attempt(self.follow_up, ticket, plan)
            if not self.pause(self.gap):
                return

    def carry_on(self) -> None:
        """Pending orders of every type, edited, cancelled, and the market moving, until the demo ends."""
        script = ("place", "edit", "place", "edit", "cancel", "move", "edit")
        steps = 0
        while self.going:
            action = script[steps % len(script)]
            steps += 1
            live = [order for order in self.terminal.orders_get() or () if order.ticket not in self.story]
            if action == "place" or (not live and action != "move"):
                self.attempt(self.place_random_order)
            elif action == "edit":
                self.attempt(self.edit_random_order, self.random.choice(live))
            elif action == "cancel":
                self.attempt(self.cancel_order, self.random.choice(live))
            else:
                self.attempt(self.move_market)
            if not self.pause(self.random.uniform(0.8, 1.6) * self.gap / 1.2):
                return

    @property
    def going(self) -> bool:
        return not self.stop and not (self._coordinator is not None and self._coordinator.stopping)

    def pause(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less if the demo ends meanwhile; whether it goes on."""
        deadline = time.monotonic() + seconds
        while self.going:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))
        return False

    @staticmethod
    def attempt(step: Callable[..., object], *args: object) -> object:
        """``step(*args)``'s answer; None when it raised (logged: the demo's trader never takes the demo down)."""
        try:
            return step(*args)
        except Exception as e:
            logger.warning("demo trader: {}", e)
            return None

    def symbol_info(self, symbol: str) -> SymbolInfo:
        """The symbol's specification; a failed call raises, and `attempt` logs it and carries on."""
        info = self.terminal.symbol_info(symbol)
        if info is None:
            raise RuntimeError(f"symbol_info({symbol!r}) failed: {self.terminal.last_error()}")
        return info

    def symbol_info_tick(self, symbol: str) -> Tick:
        """The symbol's latest tick; a failed call raises, and `attempt` logs it and carries on."""
        tick = self.terminal.symbol_info_tick(symbol)
        if tick is None:
            raise RuntimeError(f"symbol_info_tick({symbol!r}) failed: {self.terminal.last_error()}")
        return tick

    @staticmethod
    def points(info: SymbolInfo, count: int) -> float:
        """``count`` points, ten times more on 2- and 3-digit symbols (yen, gold), so distances look alike."""
        return info.point * count * (10 if info.digits <= 3 else 1)

    # ---- the market ----------------------------------------------------------------------------

    def set_market(self, symbol: str, bid: float, ask: float, *, lag: float = 0.0) -> None:
        """The market of ``symbol`` moves to bid/ask on every terminal: the targets first, then, ``lag``
        seconds later, the source. Whatever pending order or SL/TP the move reaches executes there."""
        for target in TARGETS:
            self._mt5sim.set_quote(self.terminals / target.name, target.symbol(symbol), bid, ask)
        if lag:
            time.sleep(lag)
        self._mt5sim.set_quote(self.terminals / SOURCE.name, symbol, bid, ask)

    def move_market(self) -> None:
        """A small move of a symbol the trader holds nothing of (no story order or position), so no order or
        SL/TP of the story is reached by chance."""
        held = {position.symbol for position in self.terminal.positions_get() or ()}
        held |= {order.symbol for order in self.terminal.orders_get() or () if order.ticket in self.story}
        free = [symbol for symbol in TRADED if symbol not in held]
        if not free:
            return
        symbol = self.random.choice(free)
        tick = self.symbol_info_tick(symbol)
        info = self.symbol_info(symbol)
        bid = round(tick.bid + info.point * self.random.randint(-40, 40), info.digits)
        self.set_market(symbol, bid, round(bid + tick.ask - tick.bid, info.digits))

    def fill(self, ticket: int) -> None:
        """The market moves just through the story's order ``ticket``: its copies fill, then it does."""
        orders = self.terminal.orders_get(ticket=ticket)
        if not orders:
            raise RuntimeError(f"#{ticket} is no longer pending; not filled by the story")
        order = orders[0]
        info = self.symbol_info(order.symbol)
        tick = self.symbol_info_tick(order.symbol)
        spread, beyond = tick.ask - tick.bid, 2 * info.point
        order_type = OrderType(order.type)
        limit = order_type in (OrderType.BUY_LIMIT, OrderType.SELL_LIMIT)
        if order_type.is_buy:  # a buy fills at the ask
            ask = round(order.price_open - beyond if limit else order.price_open + beyond, info.digits)
            bid = round(ask - spread, info.digits)
        else:  # a sell at the bid
            bid = round(order.price_open + beyond if limit else order.price_open - beyond, info.digits)
            ask = round(bid + spread, info.digits)
        logger.info("demo trader: the market reaches #{} {} {} @ {}: on the targets' feeds first, {:.1f}s later on "
                    "master's", ticket, order_type.label, order.symbol, order.price_open, FEED_LAG)
        self.set_market(order.symbol, bid, ask, lag=FEED_LAG)

    # ---- pending orders ------------------------------------------------------------------------

    def place_for_position(self, plan: PlannedTrade) -> None:
        """A pending order of the story, close to the market, that the story will fill."""
        info = self.symbol_info(plan.symbol)
        tick = self.symbol_info_tick(plan.symbol)
        buy = plan.order_type.is_buy
        reference = tick.ask if buy else tick.bid
        distance = self.points(info, STORY_DISTANCE)
        below = plan.order_type in BELOW_THE_MARKET
        price = round(reference - distance if below else reference + distance, info.digits)
        sign = 1 if buy else -1
        sl = round(price - sign * self.points(info, STORY_SL), info.digits)
        tp = round(price + sign * self.points(info, STORY_TP), info.digits)
        ticket = self.send_pending(plan.symbol, plan.order_type, plan.volume, price, 0.0, sl, tp)
        if ticket:
            self.story[ticket] = plan
            logger.info("demo trader: placed #{} {} {} {} lots @ {} sl {} tp {}: meant to fill, {}", ticket,
                        plan.order_type.label, plan.symbol, plan.volume, price, sl, tp, plan.then.value)

    def wait_for_copies(self, tickets: list[int], timeout: float) -> bool:
        """Until each target shows a copy of each source order in ``tickets`` (story orders: so they fill with
        it), the demo ends, or ``timeout`` (said); whether the copies are all there."""
        import mt5sim

        handles = {target.name: mt5sim.Terminal(self.terminals / target.name) for target in TARGETS}
        deadline = time.monotonic() + timeout
        while True:
            missing = [f"#{ticket} on {name}" for ticket in tickets for name, handle in handles.items()
                       if not any(parse_tag(order.comment) == ticket == order.magic
                                  for order in handle.orders_get() or ())]
            if not missing:
                return True
            if time.monotonic() >= deadline:
                logger.warning("demo trader: no copy of {} after {:.0f}s; the story goes on without it",
                               ", ".join(missing), timeout)
                return False
            if not self.pause(0.1):
                return False

    def place_random_order(self, types: Sequence[OrderType] = ORDER_TYPES) -> int:
        """A pending order of a random type and symbol, 300 to 900 points away; its ticket (0: refused)."""
        symbol = self.random.choice(TRADED)
        order_type = self.random.choice(types)
        info = self.symbol_info(symbol)
        tick = self.symbol_info_tick(symbol)
        digits = info.digits
        distance = self.points(info, self.random.randint(300, 900))
        buy = order_type.is_buy
        reference = tick.ask if buy else tick.bid
        below = order_type in BELOW_THE_MARKET
        price = round(reference - distance if below else reference + distance, digits)
        stoplimit = 0.0
        if order_type is OrderType.BUY_STOP_LIMIT:
            stoplimit = round(price - distance / 3, digits)
        elif order_type is OrderType.SELL_STOP_LIMIT:
            stoplimit = round(price + distance / 3, digits)
        entry = stoplimit or price
        sl = round(entry - distance if buy else entry + distance, digits)
        tp = round(entry + 2 * distance if buy else entry - 2 * distance, digits)
        volume = self.random.choice((0.01, 0.05, 0.1, 0.2, 0.35, 1.0))
        ticket = self.send_pending(symbol, order_type, volume, price, stoplimit, sl, tp)
        if ticket:
            logger.info("demo trader: placed #{} {} {} {} lots @ {}", ticket, order_type.label, symbol, volume, price)
        return ticket

    def send_pending(self, symbol: str, order_type: OrderType, volume: float, price: float, stoplimit: float,
                     sl: float, tp: float) -> int:
        """Place a pending order on the source; its ticket, or 0 (logged) if the broker refused it."""
        result = self.terminal.order_send({
            "action": TradeAction.PENDING, "symbol": symbol, "volume": volume, "type": order_type, "price": price,
            "stoplimit": stoplimit, "sl": sl, "tp": tp, "type_time": OrderTime.GTC, "type_filling": OrderFilling.RETURN,
            "magic": 0, "comment": "demo trader",
        })
        if result is None or result.retcode != Retcode.DONE:
            logger.warning("demo trader: {} {} rejected: {}", order_type.label, symbol,
                           result.comment if result else "no result")
            return 0
        return result.order

    def edit_random_order(self, order: TradeOrder) -> None:
        """Drag the entry (and SL, TP, stop-limit with it) a little: every copy must follow."""
        info = self.symbol_info(order.symbol)
        shift = self.points(info, self.random.choice((30, 60)))
        # Move it away from the market (down for orders resting below it), so the order stays valid.
        shift = -shift if order.type in BELOW_THE_MARKET else shift

        def moved(price: float) -> float:
            return round(price + shift, info.digits) if price else 0.0

        result = self.terminal.order_send({
            "action": TradeAction.MODIFY, "order": order.ticket, "price": moved(order.price_open),
            "stoplimit": moved(order.price_stoplimit), "sl": moved(order.sl), "tp": moved(order.tp),
            "type_time": order.type_time, "expiration": order.time_expiration,
        })
        if result is not None and result.retcode == Retcode.DONE:
            logger.info("demo trader: moved #{} {} to {}", order.ticket, order.symbol, moved(order.price_open))

    def cancel_order(self, order: TradeOrder) -> None:
        result = self.terminal.order_send({"action": TradeAction.REMOVE, "order": order.ticket})
        if result is not None and result.retcode == Retcode.DONE:
            logger.info("demo trader: cancelled #{} {}", order.ticket, order.symbol)

    # ---- positions: what a trader's terminal sends -------------------------------------------------

    def follow_up(self, ticket: int, plan: PlannedTrade) -> None:
        """What the story does to the position its order ``ticket`` opened."""
        positions = self.terminal.positions_get(ticket=ticket)
        if not positions:
            raise RuntimeError(f"position #{ticket} is not open; the story cannot go on with it")
        position = positions[0]
        if plan.then is Then.MOVE_LEVELS:
            self.move_levels(position, self.points(self.symbol_info(position.symbol), 100))
        elif plan.then is Then.CLOSE_HALF:
            step = self.symbol_info(position.symbol).volume_step or 0.01
            self.close(position, round(round(position.volume / 2 / step) * step, 8))
        else:
            self.close(position, position.volume)

    def move_levels(self, position: TradePosition, closer: float) -> None:
        """TRADE_ACTION_SLTP: both levels ``closer`` to the entry."""
        digits = self.symbol_info(position.symbol).digits
        sign = 1 if position.type == PositionType.BUY else -1
        sl = round(position.sl + sign * closer, digits)
        tp = round(position.tp - sign * closer, digits)
        result = self.terminal.order_send({"action": TradeAction.SLTP, "position": position.ticket,
                                           "symbol": position.symbol, "sl": sl, "tp": tp})
        if result is None or result.retcode != Retcode.DONE:
            raise RuntimeError(f"SL/TP of position #{position.ticket} refused: "
                               f"{result.comment if result else self.terminal.last_error()}")
        logger.info("demo trader: position #{} {}: SL {} -> {}, TP {} -> {}", position.ticket, position.symbol,
                    position.sl, sl, position.tp, tp)

    def close(self, position: TradePosition, volume: float) -> None:
        """TRADE_ACTION_DEAL on the position: the opposite side, at market, with the symbol's filling."""
        info = self.symbol_info(position.symbol)
        tick = self.symbol_info_tick(position.symbol)
        buy = position.type == PositionType.BUY
        filling = OrderFilling.FOK if info.filling_mode & 1 else OrderFilling.IOC if info.filling_mode & 2 \
            else OrderFilling.RETURN
        result = self.terminal.order_send({
            "action": TradeAction.DEAL, "position": position.ticket, "symbol": position.symbol, "volume": volume,
            "type": OrderType.SELL if buy else OrderType.BUY, "price": tick.bid if buy else tick.ask,
            "deviation": 20, "type_filling": filling, "magic": 0, "comment": "demo trader",
        })
        if result is None or result.retcode != Retcode.DONE:
            raise RuntimeError(f"closing position #{position.ticket} refused: "
                               f"{result.comment if result else self.terminal.last_error()}")
        if volume < position.volume:
            logger.info("demo trader: closed {:g} of the {:g} lots of position #{} {} at {}", volume,
                        position.volume, position.ticket, position.symbol, result.price)
        else:
            logger.info("demo trader: closed position #{} {} ({:g} lots) at {}", position.ticket, position.symbol,
                        volume, result.price)


def render_table(terminals: Path) -> str:
    """Every source order (pending or not) against its copy on each target."""
    import mt5sim

    source = mt5sim.Terminal(terminals / SOURCE.name)
    names = [target.name for target in TARGETS]
    copies: dict[str, dict[int, str]] = {}
    pending_copies: dict[str, int] = {}
    for name in names:
        handle = mt5sim.Terminal(terminals / name)
        by_source: dict[int, str] = {}
        for order in handle.orders_get() or ():
            if parse_tag(order.comment) == order.magic:
                by_source[order.magic] = f"#{order.ticket} {order.symbol} {order.volume_current:g}"
                pending_copies[name] = pending_copies.get(name, 0) + 1
        for position in handle.positions_get() or ():
            if parse_tag(position.comment) == position.magic:
                by_source[position.magic] = f"filled {position.symbol} {position.volume:g}"
        copies[name] = by_source
    header = f"{'source order':<42}" + "".join(f"{name:<26}" for name in names)
    lines = ["", header, "-" * len(header)]
    for order in source.orders_get() or ():
        label = f"#{order.ticket} {describe_order_type(order.type)} {order.symbol} {order.volume_current:g}"
        cells = []
        for name in names:
            cell = copies[name].get(order.ticket)
            if cell is None:
                if name == "broker-b" and order.type not in LIMITS_AND_STOPS:
                    cell = "(type not copied)"
                elif name == "broker-c" and pending_copies.get(name, 0) >= 6:
                    cell = "(waiting: cap of 6)"
                else:
                    cell = "-"
            cells.append(f"{cell:<26}")
        lines.append(f"{label:<42}" + "".join(cells))
    if len(lines) == 3:
        lines.append("(no pending orders on the source)")
    return "\n".join(lines)


@dataclass(frozen=True)
class PositionRecord:
    """A position of one terminal as its deals and its open positions tell it: open or closed."""

    ticket: int
    symbol: str
    buy: bool
    magic: int
    comment: str
    opened: float  # the volume of its opening deals
    held: float  # the volume still open: 0 once closed
    sl: float = 0.0
    tp: float = 0.0


def position_records(terminal: Terminal) -> dict[int, PositionRecord]:
    """Every position the terminal opened since it was created, by ticket (= identifier, on a hedging account)."""
    import mt5sim

    far = int(time.time()) + 10 * 86400  # beyond any server clock of the demo
    opened: dict[int, float] = {}
    first: dict[int, TradeDeal] = {}
    for deal in terminal.history_deals_get(0, far) or ():
        if deal.entry == DealEntry.IN:
            opened[deal.position_id] = opened.get(deal.position_id, 0.0) + deal.volume
            first.setdefault(deal.position_id, deal)
    records = {ticket: PositionRecord(ticket=ticket, symbol=deal.symbol, buy=deal.type == mt5sim.DEAL_TYPE_BUY,
                                      magic=deal.magic, comment=deal.comment, opened=opened[ticket], held=0.0)
               for ticket, deal in first.items()}
    for position in terminal.positions_get() or ():
        records[position.identifier] = PositionRecord(
            ticket=position.identifier, symbol=position.symbol, buy=position.type == PositionType.BUY,
            magic=position.magic, comment=position.comment,
            opened=opened.get(position.identifier, position.volume), held=position.volume, sl=position.sl,
            tp=position.tp)
    return records


def render_positions(terminals: Path) -> str:
    """Every position the source opened against its copy's position on each target: volume held (of the volume
    opened), SL and TP, so a user sees whether they are in step."""
    import mt5sim

    source = mt5sim.Terminal(terminals / SOURCE.name)
    handles = {target.name: mt5sim.Terminal(terminals / target.name) for target in TARGETS}
    copies = {name: {record.magic: record for record in position_records(handle).values()
                     if parse_tag(record.comment) == record.magic}
              for name, handle in handles.items()}
    netting = {name for name, handle in handles.items()
               if (account := handle.account_info()) is not None
               and account.margin_mode != AccountMarginMode.RETAIL_HEDGING}
    digits: dict[str, int] = {}

    def price(terminal: Terminal, symbol: str, value: float) -> str:
        if symbol not in digits:
            info = terminal.symbol_info(symbol)
            digits[symbol] = info.digits if info is not None else 5
        return f"{value:.{digits[symbol]}f}" if value else "none"

    def row(name: str, terminal: Terminal, record: PositionRecord) -> str:
        label = f"#{record.ticket} {'buy' if record.buy else 'sell'} {record.symbol}"
        if record.held <= 0:
            volume, sl, tp = f"closed ({record.opened:g})", "-", "-"
        else:
            volume = f"{record.held:g}" if record.held >= record.opened - 1e-9 else \
                f"{record.held:g} of {record.opened:g}"
            sl, tp = price(terminal, record.symbol, record.sl), price(terminal, record.symbol, record.tp)
        return f"{name:<12}{label:<28}{volume:<16}{sl:<12}{tp}"

    header = f"{'position':<40}{'volume':<16}{'SL':<12}{'TP':<12}"
    lines = ["", 'Positions: each source position above its copy\'s on every target ("0.2 of 0.4": 0.2 lots held '
             "of 0.4 opened)", header, "-" * len(header)]
    for record in sorted(position_records(source).values(), key=lambda r: r.ticket):
        lines.append(row(SOURCE.name, source, record))
        for name, handle in handles.items():
            copy = copies[name].get(record.ticket)
            if name in netting:
                lines.append(f"  {name:<10}(a netting account: the copier does not follow positions there)")
            elif copy is not None:
                lines.append(row(f"  {name}", handle, copy))
            else:
                pending = [order.ticket for order in handle.orders_get() or ()
                           if order.magic == record.ticket and parse_tag(order.comment) == record.ticket]
                lines.append(f"  {name:<10}" + (f"#{pending[0]} still pending (not filled)" if pending else
                                                 "(no copy position)"))
        lines.append("")
    if len(lines) == 4:
        lines.append("(no position was opened on the source)")
    return "\n".join(lines).rstrip("\n")
