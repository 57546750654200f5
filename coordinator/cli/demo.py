"""``mt5-copier demo``: the copier at work on simulated terminals, on any machine, with no MT5 anywhere.

It creates a source and three target terminals in mt5sim (different symbol names, lot rules and order
types), starts a scripted trader on the source, runs the real coordinator and workers against them, and
ends with a table of every source order against its copy on each target.
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from config import load_config
from coordinator.runtime.runner import Coordinator, install_signal_handlers
from protocol.mt5 import (
    PENDING_ORDER_TYPES,
    OrderFilling,
    OrderTime,
    OrderType,
    Retcode,
    TradeAction,
    describe_order_type,
)

if TYPE_CHECKING:
    from mt5sim.types import SymbolInfo, Tick, TradeOrder


@dataclass(frozen=True)
class DemoTerminal:
    """One simulated terminal of the demo: its account, and how its broker names symbols and keeps time."""

    name: str
    login: int
    server: str
    suffix: str = ""
    offset: float = 0.0  # the broker's server clock, in hours from UTC


SOURCE = DemoTerminal(name="master", login=1001, server="Demo-Master")
TARGETS = [
    DemoTerminal(name="broker-a", login=2001, server="Alpha-Live", suffix=".m", offset=2.0),
    DemoTerminal(name="broker-b", login=3001, server="Beta-Trade", suffix="pro", offset=3.0),
    DemoTerminal(name="broker-c", login=4001, server="Gamma-ECN", suffix="", offset=0.0),
]
TRADED = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")
ORDER_TYPES = sorted(PENDING_ORDER_TYPES)
# The types whose entry rests below the market: moved down, they stay valid.
BELOW_THE_MARKET = frozenset({OrderType.BUY_LIMIT, OrderType.SELL_STOP, OrderType.SELL_STOP_LIMIT})

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


def run_demo(*, duration: float, directory: Path | None) -> int:
    import mt5sim

    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="mt5-copier-demo-"))
    directory = directory.resolve()
    terminals = directory / "terminals"
    mt5sim.create_terminal(terminals / SOURCE.name, login=SOURCE.login, server=SOURCE.server)
    for target in TARGETS:
        mt5sim.create_terminal(terminals / target.name, login=target.login, server=target.server,
                               suffix=target.suffix, server_offset_hours=target.offset,
                               symbols=GOLD if target.name == "broker-c" else None)
    config_path = directory / "copier.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    config = load_config(config_path)
    logger.info("demo: terminals and config in {}", directory)
    logger.info("demo: a scripted trader places pending orders on 'master' and moves the market for {:.0f}s",
                duration)

    coordinator = Coordinator(config, once=False)
    install_signal_handlers(coordinator)
    trader = ScriptedTrader(terminals / SOURCE.name, seed=7)
    trader_thread = threading.Thread(target=trader.run, args=(coordinator,), name="trader", daemon=True)
    stopper = threading.Timer(duration, coordinator.request_stop, args=(f"demo ran {duration:.0f}s",))
    stopper.daemon = True
    trader_thread.start()
    stopper.start()
    code = coordinator.run()
    stopper.cancel()
    trader.stop = True
    trader_thread.join(5.0)
    print(render_table(terminals))
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


class ScriptedTrader:
    """A trader on the source terminal: places pending orders of every type and moves the market."""

    def __init__(self, path: Path, seed: int) -> None:
        import mt5sim

        self._mt5sim = mt5sim
        self.path = path
        self.terminal = mt5sim.Terminal(path)
        self.random = random.Random(seed)
        self.stop = False

    def run(self, coordinator: Coordinator) -> None:
        time.sleep(2.0)  # let the workers connect first, so the copies show up live
        script = ("place", "edit", "place", "edit", "cancel", "move", "edit")
        steps = 0
        while not self.stop and not coordinator.stopping:
            action = "place" if steps < 6 else script[steps % len(script)]
            steps += 1
            live = self.terminal.orders_get() or ()
            try:
                if action == "place" or not live:
                    self.place_random_order()
                elif action == "edit":
                    self.edit_random_order(self.random.choice(live))
                elif action == "cancel":
                    self.cancel_order(self.random.choice(live))
                else:
                    self.move_market()
            except Exception as e:  # the demo's trader must never take the demo down
                logger.warning("demo trader: {}", e)
            time.sleep(self.random.uniform(0.8, 1.6))

    def symbol_info(self, symbol: str) -> SymbolInfo:
        """The symbol's specification; a failed call raises, and `run` logs it and carries on."""
        info = self.terminal.symbol_info(symbol)
        if info is None:
            raise RuntimeError(f"symbol_info({symbol!r}) failed: {self.terminal.last_error()}")
        return info

    def symbol_info_tick(self, symbol: str) -> Tick:
        """The symbol's latest tick; a failed call raises, and `run` logs it and carries on."""
        tick = self.terminal.symbol_info_tick(symbol)
        if tick is None:
            raise RuntimeError(f"symbol_info_tick({symbol!r}) failed: {self.terminal.last_error()}")
        return tick

    def edit_random_order(self, order: TradeOrder) -> None:
        """Drag the entry (and SL, TP, stop-limit with it) a little: every copy must follow."""
        info = self.symbol_info(order.symbol)
        shift = info.point * self.random.choice((30, 60)) * (10 if info.digits <= 3 else 1)
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

    def place_random_order(self) -> int:
        symbol = self.random.choice(TRADED)
        order_type = self.random.choice(ORDER_TYPES)
        info = self.symbol_info(symbol)
        tick = self.symbol_info_tick(symbol)
        point, digits = info.point, info.digits
        distance = point * self.random.randint(300, 900) * (10 if digits <= 3 else 1)
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
        result = self.terminal.order_send({
            "action": TradeAction.PENDING, "symbol": symbol, "volume": volume, "type": order_type, "price": price,
            "stoplimit": stoplimit, "sl": sl, "tp": tp, "type_time": OrderTime.GTC, "type_filling": OrderFilling.RETURN,
            "magic": 0, "comment": "demo trader",
        })
        if result is None or result.retcode != Retcode.DONE:
            logger.warning("demo trader: {} {} rejected: {}", order_type.label, symbol,
                           result.comment if result else "no result")
            return 0
        logger.info("demo trader: placed #{} {} {} {} lots @ {}", result.order, order_type.label, symbol,
                    volume, price)
        return 1

    def move_market(self) -> None:
        symbol = self.random.choice(TRADED)
        tick = self.symbol_info_tick(symbol)
        info = self.symbol_info(symbol)
        step = info.point * self.random.randint(-40, 40)
        spread = tick.ask - tick.bid
        bid = round(tick.bid + step, info.digits)
        self._mt5sim.set_quote(self.path, symbol, bid, round(bid + spread, info.digits))


def render_table(terminals: Path) -> str:
    """Every source order (pending or not) against its copy on each target."""
    import mt5sim
    from protocol.tags import parse_tag

    source = mt5sim.Terminal(terminals / SOURCE.name)
    names = [target.name for target in TARGETS]
    copies: dict[str, dict[int, str]] = {}
    for name in names:
        handle = mt5sim.Terminal(terminals / name)
        by_source: dict[int, str] = {}
        for order in handle.orders_get() or ():
            if parse_tag(order.comment) == order.magic:
                by_source[order.magic] = f"#{order.ticket} {order.symbol} {order.volume_current:g}"
        for position in handle.positions_get() or ():
            if parse_tag(position.comment) == position.magic:
                by_source[position.magic] = f"filled {position.symbol} {position.volume:g}"
        copies[name] = by_source
    header = f"{'source order':<42}" + "".join(f"{name:<26}" for name in names)
    lines = ["", header, "-" * len(header)]
    limits_and_stops_only = {OrderType.BUY_LIMIT, OrderType.SELL_LIMIT, OrderType.BUY_STOP, OrderType.SELL_STOP}
    for order in source.orders_get() or ():
        label = f"#{order.ticket} {describe_order_type(order.type)} {order.symbol} {order.volume_current:g}"
        cells = []
        for name in names:
            cell = copies[name].get(order.ticket)
            if cell is None:
                if name == "broker-b" and order.type not in limits_and_stops_only:
                    cell = "(type not copied)"
                elif name == "broker-c":
                    cell = "(waiting: cap of 6)"
                else:
                    cell = "-"
            cells.append(f"{cell:<26}")
        lines.append(f"{label:<42}" + "".join(cells))
    if len(lines) == 3:
        lines.append("(no pending orders on the source)")
    return "\n".join(lines)
