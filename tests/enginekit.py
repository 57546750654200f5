"""A real coordinator Engine and StateStore driven by hand-fed protocol messages, on a clock the test turns.

No workers, no sockets, no sleeping: a test says what each worker reports and reads what the engine sent
back. One source ("src", login 1) and one target ("t1", login 2), both on server "S".

``Desk`` (at the end) plays the workers and brokers for whole runs: each terminal is a ``Book`` of orders,
positions, history, symbols and prices that a test edits as a trader would; a ``Session`` reports the books to
the engine and executes what it sends, and ``Desk.once`` runs a ``run --once`` round by round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from config.loader import parse_config
from coordinator.domain.planner import Link
from coordinator.persistence.state import StateStore
from coordinator.runtime.engine import Engine
from coordinator.runtime.summary import once_exit_code, render_summary
from protocol import (
    PROTOCOL_MINOR,
    AccountFacts,
    ClosedOrder,
    Command,
    CommandBatch,
    CommandKind,
    CommandResult,
    CommandResults,
    CommandStatus,
    ErrorMessage,
    Heartbeat,
    Hello,
    HistoryReport,
    HistoryRequest,
    Message,
    PendingOrder,
    PositionFacts,
    PositionHistory,
    Quote,
    Snapshot,
    SymbolRequest,
    SymbolSpec,
    SymbolSpecs,
    TerminalFacts,
)
from protocol.mt5 import BUY_ORDER_TYPES, AccountMarginMode, OrderState, PositionType
from protocol.tags import copy_tag, parse_tag

SOURCE, TARGET = "src", "t1"
SPEC = dict(digits=5, point=0.00001, tick_size=0.00001, contract_size=100_000, volume_min=0.01, volume_max=50.0,
            volume_step=0.01, volume_limit=0.0, trade_mode=4, stops_level=0, freeze_level=0, expiration_mode=15,
            filling_mode=1, order_mode=127)


def order(ticket: int, **fields: Any) -> PendingOrder:
    """A source order: a 0.1 lot EURUSD buy limit below the market, GTC, no stops."""
    values = dict(ticket=ticket, symbol="EURUSD", type=2, volume=0.1, price_open=1.08, price_stoplimit=0.0, sl=0.0,
                  tp=0.0, type_time=0, time_expiration=0, magic=0, comment="", time_setup_msc=ticket)
    values.update(fields)
    return PendingOrder(**values)


def copy_of(source: PendingOrder, ticket: int, **fields: Any) -> PendingOrder:
    """A copy of ``source`` on the target, tagged as the copier tags its copies."""
    values = {name: getattr(source, name) for name in PendingOrder.__struct_fields__}
    values.update(ticket=ticket, magic=source.ticket, comment=copy_tag(source.ticket), **fields)
    return PendingOrder(**values)


def closed(ticket: int, state: int, source_ticket: int = 0, **fields: Any) -> ClosedOrder:
    """A history record; ``source_ticket`` tags it as a copy of that source order."""
    values = dict(ticket=ticket, symbol="EURUSD", type=2, state=state, magic=source_ticket,
                  comment=copy_tag(source_ticket) if source_ticket else "")
    values.update(fields)
    return ClosedOrder(**values)


def position_of(source: PendingOrder, identifier: int) -> PositionFacts:
    """The position a copy of ``source`` became when it filled: its direction, volume, price and levels."""
    side = PositionType.BUY if source.type in BUY_ORDER_TYPES else PositionType.SELL
    return PositionFacts(ticket=identifier, identifier=identifier, symbol=source.symbol, type=int(side),
                         volume=source.volume, magic=source.ticket, comment=copy_tag(source.ticket),
                         price_open=source.price_open, sl=source.sl, tp=source.tp)


def now_ms() -> int:
    return int(time.time() * 1000)


class EngineRig:
    """``target``: extra settings of the target t1; ``more_targets``: further targets by name, with theirs.
    ``fixed_offsets``: every broker clock is configured as UTC (else measured from tick times); ``source``:
    extra settings of the source (its own ``server_utc_offset``, say); ``stage_clock``: the clock of the copies'
    latency stages (UTC milliseconds; the wall clock when None); ``coordinator``: [coordinator] settings;
    ``incremental``: the engine's incremental planning (False: every plan in full)."""

    def __init__(self, state_dir: Path, target: dict[str, Any] | None = None, *,
                 more_targets: dict[str, dict[str, Any]] | None = None, fixed_offsets: bool = True,
                 source: dict[str, Any] | None = None, wall_ms: Callable[[], int] = now_ms,
                 stage_clock: Callable[[], float] | None = None, coordinator: dict[str, Any] | None = None,
                 incremental: bool = True) -> None:
        offsets = {"server_utc_offset": 0} if fixed_offsets else {}
        targets = {TARGET: target or {}, **(more_targets or {})}
        self.logins = {SOURCE: 1, **{name: 2 + i for i, name in enumerate(targets)}}
        data = {
            "coordinator": {"state_dir": str(state_dir), **(coordinator or {})},
            "source": {"name": SOURCE, "backend": "sim", "path": "s", "login": 1, "server": "S", **offsets,
                       **(source or {})},
            "targets": [{"name": name, "backend": "sim", "path": name, "login": self.logins[name], "server": "S",
                         **offsets, **settings} for name, settings in targets.items()],
        }
        self.config = parse_config(data, base_dir=state_dir.parent)
        self.clock = 1000.0
        self.sent: list[tuple[str, Message]] = []
        self.state = StateStore(state_dir)
        self.engine = Engine(self.config, self.state, self._send, clock=lambda: self.clock, wall_ms=wall_ms,
                             incremental=incremental,
                             **({"stage_clock": stage_clock} if stage_clock is not None else {}))
        self.seq = dict.fromkeys(self.logins, 0)

    def _send(self, name: str, message: Message) -> bool:
        self.sent.append((name, message))
        return True

    def close(self) -> None:
        self.state.close()

    # ---- what the workers say ----------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def hello(self, name: str, boot: str = "b1", *, login: int | None = None, protocol_minor: int = PROTOCOL_MINOR,
              margin_mode: int = AccountMarginMode.RETAIL_HEDGING) -> None:
        role = "source" if name == SOURCE else "target"
        self.engine.on_message(name, Hello(
            terminal=name, role=role, boot_id=boot, protocol_minor=protocol_minor, worker_version="x",
            backend="sim", pid=1, host="h",
            account=AccountFacts(login=self.logins[name] if login is None else login, server="S",
                                 margin_mode=margin_mode),
            terminal_facts=TerminalFacts(connected=True, trade_allowed=True)))

    def snapshot(self, name: str, orders: Iterable[PendingOrder] = (), *, closed: Iterable[ClosedOrder] = (),
                 positions: Iterable[PositionFacts] = (), taken_at_ms: int | None = None,
                 boot: str = "b1", login: int | None = None) -> int:
        """The worker's next snapshot (its seq counts up by itself); returns that seq."""
        self.seq[name] += 1
        self.engine.on_message(name, Snapshot(
            boot_id=boot, seq=self.seq[name], taken_at_ms=now_ms() if taken_at_ms is None else taken_at_ms,
            login=self.logins[name] if login is None else login, connected=True, trade_allowed=True,
            orders=tuple(orders), closed=tuple(closed), positions=tuple(positions), balance=1000.0, equity=1000.0))
        return self.seq[name]

    def heartbeat(self, name: str, *, last_seq: int | None = None, sent_at_ms: int | None = None,
                  server_time: int = 0, quotes: Iterable[Quote] = (), boot: str = "b1", connected: bool = True,
                  balance: float = 0.0, equity: float = 0.0) -> None:
        """``connected``: the worker holds its terminal link; ``balance``/``equity``: the account's figures
        (0, 0: not reported, as from an older worker)."""
        sent = now_ms() if sent_at_ms is None else sent_at_ms
        self.engine.on_message(name, Heartbeat(
            sent_at_ms=sent, boot_id=boot, last_seq=self.seq[name] if last_seq is None else last_seq,
            polled_at_ms=sent, connected=connected, server_time=server_time, quotes=tuple(quotes),
            balance=balance, equity=equity))

    def specs(self, name: str = TARGET, symbol: str = "EURUSD", **overrides: Any) -> None:
        values = {**SPEC, **overrides}
        self.engine.on_message(name, SymbolSpecs(
            request_id="r", specs=(SymbolSpec(name=symbol, bid=1.09, ask=1.0901, **values),)))

    def result(self, command: Command, status: CommandStatus, name: str = TARGET, **fields: Any) -> None:
        self.engine.on_message(name, CommandResults(batch_id="b", results=(
            CommandResult(command_id=command.command_id, status=status, **fields),)))

    def start(self, source_orders: Iterable[PendingOrder] = (), target_orders: Iterable[PendingOrder] = (), *,
              source_closed: Iterable[ClosedOrder] = (), target_closed: Iterable[ClosedOrder] = ()) -> None:
        """Every worker connected with one snapshot (``target_orders`` on t1, none on the others), every
        target's EURUSD specification known."""
        targets = [name for name in self.logins if name != SOURCE]
        for name in (SOURCE, *targets):
            self.hello(name)
        self.snapshot(SOURCE, source_orders, closed=source_closed)
        self.specs(SOURCE)  # the source's contract sizes size the copies
        self.snapshot(TARGET, target_orders, closed=target_closed)
        for name in targets:
            if name != TARGET:
                self.snapshot(name)
            self.specs(name)

    # ---- what the engine does -----------------------------------------------------------------

    def reconcile(self, names: set[str] | None = None) -> int:
        return self.engine.reconcile(names)

    def commands(self, name: str = TARGET) -> list[Command]:
        """Commands sent to ``name`` since the last call (and forgets everything sent so far)."""
        out = [command for to, message in self.sent if to == name and isinstance(message, CommandBatch)
               for command in message.commands]
        self.sent.clear()
        return out

    def messages(self, kind: type, name: str | None = None) -> list[Any]:
        return [message for to, message in self.sent if isinstance(message, kind) and (name is None or to == name)]

    def link(self, source_ticket: int) -> Link | None:
        return self.state.links(TARGET).get(source_ticket)

    def in_flight(self) -> dict[int, Command]:
        return {ticket: flight.command for ticket, flight in self.engine.in_flight[TARGET].items()}

    def intent_outcome(self, command: Command) -> str | None:
        row = self.state.connection.execute(
            "SELECT outcome FROM intents WHERE command_id = ?", (command.command_id,)).fetchone()
        return row[0] if row else None


# ---- whole runs on the engine: the terminals as books a test edits, a broker that does what it is told -----


# The simulator's presets (mt5sim/presets.py) as SymbolSpec fields over SPEC, and their bid / ask.
SIM_SYMBOLS: dict[str, tuple[dict[str, Any], tuple[float, float]]] = {
    "EURUSD": (dict(volume_max=500.0, stops_level=10, freeze_level=5), (1.085, 1.08512)),
    "GBPUSD": (dict(volume_max=500.0, stops_level=15, freeze_level=5), (1.27, 1.27015)),
    "USDJPY": (dict(digits=3, point=0.001, tick_size=0.001, volume_max=500.0, stops_level=10, freeze_level=3),
               (150.0, 150.012)),
    "US500": (dict(digits=2, point=0.01, tick_size=0.25, contract_size=1.0, volume_min=0.1, volume_step=0.1,
                   volume_max=100.0, stops_level=50), (5000.0, 5000.5)),
    "XAUUSD": (dict(digits=2, point=0.01, tick_size=0.01, contract_size=100.0, volume_max=100.0, stops_level=20,
                    freeze_level=10), (2000.0, 2000.25)),
}


@dataclass
class Book:
    """One terminal as its worker reports it: by default with the simulator's symbols and prices. A test edits
    it the way a trader or the market would (``place``, ``modify``, ``remove``, ``fill``, ``set_quote``,
    ``symbol``); a ``Session`` executes the engine's commands on it as a broker would: refused with the retcode
    of the first rule they break (volume step and bounds, tick grid, allowed expirations), else done, unless
    ``refuse`` or ``inject`` say otherwise."""

    first_ticket: int
    symbols: dict[str, dict[str, Any]] = field(default_factory=lambda: {n: {**f} for n, (f, _) in SIM_SYMBOLS.items()})
    quotes: dict[str, Quote] = field(default_factory=dict)
    balance: float = 10_000.0
    equity: float | None = None  # None: the balance
    connected: bool = True
    trade_allowed: bool = True
    running: bool = True  # the terminal answers its worker (False: stopped, as mt5sim.stop_terminal does)
    server_offset_hours: float = 0.0  # the broker's clock, as its ticks show it
    orders: dict[int, PendingOrder] = field(default_factory=dict)
    positions: dict[int, PositionFacts] = field(default_factory=dict)
    history: dict[int, ClosedOrder] = field(default_factory=dict)
    refuse: dict[str, int] = field(default_factory=dict)  # symbol -> the retcode every request for it gets
    inject: list[int] = field(default_factory=list)  # retcodes for the next requests, one each
    requests: list[Command] = field(default_factory=list)  # every request that reached this broker
    left: dict[int, None] = field(default_factory=dict)  # orders that left the pending list while a worker watched
    unrecorded: dict[int, ClosedOrder] = field(default_factory=dict)  # orders that left without a history record
    deals: dict[int, PositionHistory] = field(default_factory=dict)  # what the deals say of each position
    answers_lost: bool = False  # the broker carries requests out, but no answer reaches the coordinator

    def __post_init__(self) -> None:
        self._next_ticket = self.first_ticket
        self._setups = 0
        for symbol, (_, (bid, ask)) in SIM_SYMBOLS.items():
            if symbol in self.symbols:
                self.quotes.setdefault(symbol, Quote(symbol=symbol, bid=bid, ask=ask, time=self.server_now()))

    def server_now(self) -> int:
        return int(time.time() + self.server_offset_hours * 3600)

    def symbol(self, name: str, like: str = "EURUSD", *, quote: tuple[float, float] | None = None,
               **fields: Any) -> None:
        """Add (or redefine) a symbol: ``like``'s specification with ``fields`` over it, at ``quote`` or
        ``like``'s prices."""
        preset, prices = SIM_SYMBOLS[like]
        self.symbols[name] = {**preset, **fields}
        self.set_quote(name, *(quote or prices))

    def answer(self, question: SymbolRequest | HistoryRequest) -> SymbolSpecs | HistoryReport:
        """What this terminal's worker answers to the coordinator's question."""
        if isinstance(question, SymbolRequest):
            specs = [spec for symbol in question.symbols if (spec := self.spec(symbol)) is not None]
            return SymbolSpecs(request_id=question.request_id, specs=tuple(specs),
                               missing=tuple(s for s in question.symbols if s not in self.symbols))
        found = [self.history[t] for t in question.tickets if t in self.history]
        return HistoryReport(
            request_id=question.request_id, orders=tuple(found),
            unknown=tuple(t for t in question.tickets if t not in self.history),
            positions=tuple(self.deals[p] for p in question.positions if p in self.deals),
            unknown_positions=tuple(p for p in question.positions if p not in self.deals))

    def spec(self, symbol: str) -> SymbolSpec | None:
        if symbol not in self.symbols:
            return None
        quote = self.quotes.get(symbol)
        values = {**SPEC, **self.symbols[symbol]}
        return SymbolSpec(name=symbol, bid=quote.bid if quote else 0.0, ask=quote.ask if quote else 0.0, **values)

    def set_quote(self, symbol: str, bid: float, ask: float) -> None:
        """A new tick (its time later than the last one's)."""
        last = self.quotes[symbol].time if symbol in self.quotes else 0
        self.quotes[symbol] = Quote(symbol=symbol, bid=bid, ask=ask, time=max(self.server_now(), last + 1))

    def copies(self) -> dict[int, PendingOrder]:
        """The copier's pending copies here, by source ticket (as tests/simhelpers.copies reads a terminal)."""
        found: dict[int, PendingOrder] = {}
        for pending in self.orders.values():
            if parse_tag(pending.comment) == pending.magic:
                assert pending.magic not in found, f"two copies of source #{pending.magic}"
                found[pending.magic] = pending
        return found

    # ---- what a trader does ----------------------------------------------------------------------

    def add(self, **fields: Any) -> int:
        """A pending order with exactly these fields (``order``'s defaults for the rest); returns its ticket.
        Orders added later were set up later."""
        ticket = self._next_ticket
        self._next_ticket += 1
        self._setups += 1
        values: dict[str, Any] = dict(time_setup_msc=self.server_now() * 1000 + self._setups)
        values.update(fields)
        self.orders[ticket] = order(ticket, **values)
        return ticket

    def place(self, order_type: int, symbol: str = "EURUSD", volume: float = 0.1, distance_points: int = 500, *,
              with_stops: bool = True, **fields: Any) -> int:
        """A valid pending order ``distance_points`` from the market, as tests/simhelpers.place_pending places
        one on a simulated terminal (SL and TP as far again from its entry)."""
        spec = {**SPEC, **self.symbols[symbol]}
        digits, quote, distance = spec["digits"], self.quotes[symbol], distance_points * spec["point"]
        buy = order_type in (2, 4, 6)
        reference = quote.ask if buy else quote.bid
        price = round(reference - distance if order_type in (2, 5, 7) else reference + distance, digits)
        stoplimit = 0.0
        if order_type in (6, 7):
            stoplimit = round(price - distance / 2 if order_type == 6 else price + distance / 2, digits)
        entry = stoplimit or price
        sl = tp = 0.0
        if with_stops:
            sl = round(entry - distance if buy else entry + distance, digits)
            tp = round(entry + distance if buy else entry - distance, digits)
        values: dict[str, Any] = dict(symbol=symbol, type=order_type, volume=volume, price_open=price,
                                      price_stoplimit=stoplimit, sl=sl, tp=tp)
        values.update(fields)
        return self.add(**values)

    def modify(self, ticket: int, **fields: Any) -> None:
        self.orders[ticket] = msgspec.structs.replace(self.orders[ticket], **fields)

    def remove(self, ticket: int, state: int = 2) -> None:
        """The order leaves the pending list (cancelled, as when deleted by hand, unless ``state`` says)."""
        gone = self.orders.pop(ticket)
        self.history[ticket] = ClosedOrder(ticket=ticket, symbol=gone.symbol, type=gone.type, state=state,
                                           magic=gone.magic, comment=gone.comment)
        self.left[ticket] = None

    def lose(self, ticket: int) -> None:
        """The order vanishes without a record in the history (as mt5sim.lose_order makes it): a worker that saw
        it go reports it as not in the history yet, and the history never has it."""
        gone = self.orders.pop(ticket)
        self.unrecorded[ticket] = ClosedOrder(ticket=ticket, symbol=gone.symbol, type=gone.type,
                                              state=int(OrderState.NOT_IN_HISTORY_YET), magic=gone.magic,
                                              comment=gone.comment)
        self.left[ticket] = None

    def left_records(self) -> tuple[ClosedOrder, ...]:
        """What a worker that watched orders leave reports of them: the history's record, or not there yet."""
        return tuple(self.history.get(t) or self.unrecorded[t] for t in self.left
                     if t in self.history or t in self.unrecorded)

    def fill(self, ticket: int) -> None:
        """The market reaches the order: it becomes a position (identifier = the order's ticket), with the
        order's magic, comment, SL and TP, at its price."""
        gone = self.orders[ticket]
        self.remove(ticket, state=4)
        self.positions[ticket] = PositionFacts(ticket=ticket, identifier=ticket, symbol=gone.symbol,
                                               type=0 if gone.type in (2, 4, 6) else 1, volume=gone.volume,
                                               magic=gone.magic, comment=gone.comment,
                                               price_open=gone.price_stoplimit or gone.price_open, sl=gone.sl,
                                               tp=gone.tp)
        self.deals[ticket] = PositionHistory(position_id=ticket, closed=False, volume_in=gone.volume)

    def set_levels(self, ticket: int, *, sl: float, tp: float) -> None:
        """The trader moves the position's SL and TP."""
        self.positions[ticket] = msgspec.structs.replace(self.positions[ticket], sl=sl, tp=tp)

    def close(self, ticket: int, volume: float | None = None, reason: int = 0) -> None:
        """The position closes, in whole or by ``volume`` (by hand unless ``reason``: a DEAL_REASON_*)."""
        position = self.positions[ticket]
        left = round(position.volume - (position.volume if volume is None else volume), 8)
        deals = self.deals[ticket]
        closing = position.volume - left
        self.deals[ticket] = msgspec.structs.replace(
            deals, volume_out=round(deals.volume_out + closing, 8), closed=left <= 1e-9,
            close_price=self._closing_price(position), close_reason=reason)
        if left <= 1e-9:
            del self.positions[ticket]
        else:
            self.positions[ticket] = msgspec.structs.replace(position, volume=left)

    def _closing_price(self, position: PositionFacts) -> float:
        quote = self.quotes[position.symbol]
        return quote.bid if position.type == 0 else quote.ask

    def _position_request(self, command: Command) -> CommandResult:
        """SLTP, CLOSE and MARKET, as the worker's adapter carries them out (its guards included)."""
        done = dict(command_id=command.command_id, status=CommandStatus.DONE, retcode=10009)
        position = self.positions.get(command.ticket)
        if command.kind is CommandKind.SLTP:
            if position is None:
                return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED, retcode=10036)
            self.set_levels(command.ticket, sl=command.sl, tp=command.tp)
            return CommandResult(**done, ticket=command.ticket)
        if command.kind is CommandKind.CLOSE:
            if position is None:
                return CommandResult(**done, ticket=command.ticket, already_existed=True)
            if abs(position.volume - command.expected_volume) > 1e-9:
                return CommandResult(command_id=command.command_id, status=CommandStatus.STALE,
                                     comment=f"position holds {position.volume:g}")
            price = self._closing_price(position)
            self.close(command.ticket, command.volume, reason=3)
            return CommandResult(**done, ticket=command.ticket, price=price, volume=command.volume,
                                 requested_price=price)
        # MARKET: the pending copy out, a position in (if the price allows)
        self.remove(command.ticket)
        quote = self.quotes[command.symbol]
        entry = quote.ask if command.order_type == 0 else quote.bid
        point = self.spec(command.symbol).point if self.spec(command.symbol) else 0.00001
        if abs(entry - command.price) > command.deviation * point + 1e-9:
            return CommandResult(**done, ticket=0, comment="the price moved too far")
        ticket = self._next_ticket
        self._next_ticket += 1
        self.positions[ticket] = PositionFacts(ticket=ticket, identifier=ticket, symbol=command.symbol,
                                               type=command.order_type, volume=command.volume, magic=command.magic,
                                               comment=command.comment, price_open=entry)
        self.deals[ticket] = PositionHistory(position_id=ticket, closed=False, volume_in=command.volume)
        return CommandResult(**done, ticket=ticket, price=entry, volume=command.volume)

    # ---- what the broker does with a request -----------------------------------------------------

    def execute(self, command: Command) -> CommandResult:
        self.requests.append(command)
        retcode = self.inject.pop(0) if self.inject else (self.refuse.get(command.symbol) or self._breaks(command))
        if retcode:
            return CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED, retcode=retcode)
        kind = command.kind
        if kind in (CommandKind.SLTP, CommandKind.CLOSE, CommandKind.MARKET):
            return self._position_request(command)
        if kind is CommandKind.MODIFY:
            self.modify(command.ticket, price_open=command.price, price_stoplimit=command.stoplimit, sl=command.sl,
                        tp=command.tp, type_time=command.type_time, time_expiration=command.expiration)
            ticket = command.ticket
        else:
            if kind in (CommandKind.REMOVE, CommandKind.REPLACE):
                self.remove(command.ticket)
            ticket = command.ticket if kind is CommandKind.REMOVE else self.add(
                symbol=command.symbol, type=command.order_type, volume=command.volume, price_open=command.price,
                price_stoplimit=command.stoplimit, sl=command.sl, tp=command.tp, type_time=command.type_time,
                time_expiration=command.expiration, magic=command.magic, comment=command.comment)
        return CommandResult(command_id=command.command_id, status=CommandStatus.DONE, retcode=10009, ticket=ticket)

    def _breaks(self, command: Command) -> int:
        """The retcode of the first broker rule ``command`` breaks (0: none): the order must exist, volumes sit on
        the step within the bounds, prices on the tick grid, the expiration is one the symbol allows."""
        if command.kind in (CommandKind.SLTP, CommandKind.CLOSE):
            return 0  # the position's own guards answer (``_position_request``)
        if command.kind is not CommandKind.PLACE and command.ticket not in self.orders:
            return 10013  # invalid request: no such order
        if command.kind is CommandKind.REMOVE:
            return 0
        spec = self.spec(command.symbol)
        if spec is None:
            return 10013
        if command.kind is not CommandKind.MODIFY:
            steps = command.volume / spec.volume_step
            bounded = spec.volume_min - 1e-9 <= command.volume <= spec.volume_max + 1e-9
            if abs(steps - round(steps)) > 1e-7 or not bounded:
                return 10014  # invalid volume
        for price in (command.price, command.stoplimit, command.sl, command.tp):
            ticks = price / spec.tick_size
            if abs(ticks - round(ticks)) > 1e-7:
                return 10015  # invalid price
        if not spec.expiration_mode & (1 << command.type_time):
            return 10022  # invalid expiration
        return 0


def _bid_ask(quote: Quote) -> tuple[float, float]:
    return quote.bid, quote.ask


@dataclass
class OnceRun:
    """What one ``run --once`` on the engine left: the printed summary, its exit code, the history rows
    written during it, the log lines and every command sent."""

    code: int
    summary: str
    events: list[tuple[str, str, str, str]]  # the history written: (target, action, outcome, message), oldest first
    logs: list[tuple[str, str]]  # (level, message)
    commands: list[Command]
    seconds: float  # how long the run took on the engine's clock (waits for facts and retries included)


class Desk:
    """A source and targets as books (they outlive the engines), and a coordinator state folder (it outlives
    them too): ``once`` runs a fresh engine as ``mt5-copier run --once`` would, ``session`` keeps one running
    as the scheduler does, on a clock the test turns."""

    def __init__(self, state_dir: Path, *more_targets: str) -> None:
        """The source ``src``, the target ``t1`` and ``more_targets``, each with EURUSD at the simulator's
        quotes; copies get tickets from 9001 on t1, 19001 on the next target, and so on."""
        self.state_dir = state_dir
        self.books = {SOURCE: Book(first_ticket=100)}
        for i, name in enumerate((TARGET, *more_targets)):
            self.books[name] = Book(first_ticket=9001 + 10_000 * i)

    def __getitem__(self, name: str) -> Book:
        return self.books[name]

    def session(self, fixed_offsets: bool = True, source: dict[str, Any] | None = None, *,
                coordinator: dict[str, Any] | None = None, wall_ms: Callable[[], int] = now_ms,
                **settings: dict[str, Any]) -> Session:
        """A coordinator running on these books; ``settings``: each target's extra settings by name, ``source``
        the source's, ``coordinator`` its [coordinator]; ``fixed_offsets``: every server clock configured as UTC
        (else measured from ticks); ``wall_ms``: the engine's UTC clock."""
        return Session(self, settings, fixed_offsets, source or {}, coordinator=coordinator, wall_ms=wall_ms)

    def once(self, fixed_offsets: bool = True, source: dict[str, Any] | None = None,
             **settings: dict[str, Any]) -> OnceRun:
        """A whole ``run --once``, round by round as coordinator/runtime/runner.py runs one: workers connect; each round
        the engine plans and the workers answer, until a round sends nothing; facts on their way (clocks,
        prices, history) are waited for up to five seconds and retries due within ten; the engine is closed
        after."""
        session = self.session(fixed_offsets, source, **settings)
        engine, rig = session.rig.engine, session.rig
        started = rig.clock
        try:
            rounds, facts_deadline = 0, None
            while rounds < 10:
                if session.step():
                    rounds += 1
                    continue
                if engine.waiting_for_facts():
                    facts_deadline = facts_deadline or rig.clock + 5.0
                    if rig.clock < facts_deadline:
                        rig.advance(0.25)
                        continue
                retry_in = engine.next_retry_in()
                if retry_in is None or retry_in > 10.0:
                    break
                rounds += 1
                rig.advance(retry_in + 0.1)
            return session.result(seconds=rig.clock - started)
        finally:
            session.close()


class Session:
    """One engine over a Desk's books; each ``step`` is what the workers and the scheduler do in one beat."""

    def __init__(self, desk: Desk, settings: dict[str, dict[str, Any]], fixed_offsets: bool,
                 source: dict[str, Any], *, coordinator: dict[str, Any] | None = None,
                 wall_ms: Callable[[], int] = now_ms) -> None:
        from loguru import logger

        self.desk, self.books = desk, desk.books
        unknown = set(settings) - set(desk.books)
        assert not unknown, f"settings for targets the desk does not have: {unknown}"
        self.commands: list[Command] = []
        self.logs: list[tuple[str, str]] = []  # from the start: what opening the state says is part of the run
        self._sink = logger.add(lambda m: self.logs.append((m.record["level"].name, m.record["message"])),
                                level="DEBUG")
        try:
            self.rig = EngineRig(desk.state_dir, settings.get(TARGET, {}),
                                 more_targets={name: settings.get(name, {}) for name in desk.books
                                               if name not in (SOURCE, TARGET)},
                                 fixed_offsets=fixed_offsets, source=source, coordinator=coordinator,
                                 wall_ms=wall_ms)
        except BaseException:
            logger.remove(self._sink)
            raise
        self._terminal_lost: set[str] = set()  # workers that reported their terminal gone
        self._first_event = self._last_event_id()
        for book in self.books.values():
            book.left.clear()  # a new worker knows nothing of what left before it started
        for name in self.books:
            self.rig.hello(name)
            self._report(name)

    def close(self) -> None:
        from loguru import logger

        logger.remove(self._sink)
        self.rig.close()

    def _last_event_id(self) -> int:
        return self.rig.state.connection.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]

    def _report(self, name: str) -> None:
        """The worker's snapshot and heartbeat: orders, positions, what left, balances, prices, server clock. A
        worker whose terminal stopped says so once, then only heartbeats with its terminal link down; once the
        terminal is back it attaches again and says hello before its next snapshot."""
        book, rig = self.books[name], self.rig
        if not book.running:
            if name not in self._terminal_lost:
                self._terminal_lost.add(name)
                rig.engine.on_message(name, ErrorMessage(
                    code="terminal-no_connection", terminal=name, boot_id="b1",
                    message="no IPC connection: orders_get failed with (-10004, 'No IPC connection')"))
            rig.heartbeat(name, connected=False)
            return
        if name in self._terminal_lost:
            self._terminal_lost.discard(name)
            rig.hello(name)
        rig.seq[name] += 1
        rig.engine.on_message(name, Snapshot(
            boot_id="b1", seq=rig.seq[name], taken_at_ms=now_ms(), login=rig.logins[name],
            connected=book.connected, trade_allowed=book.trade_allowed, orders=tuple(book.orders.values()),
            positions=tuple(book.positions.values()),
            closed=book.left_records(),
            balance=book.balance, equity=book.balance if book.equity is None else book.equity))
        rig.heartbeat(name, server_time=book.server_now(), quotes=tuple(book.quotes.values()))

    def step(self, seconds: float = 0.0) -> int:
        """``seconds`` pass; every worker reports; the engine plans and sends; the workers answer what was
        sent. Returns how many commands and requests went out."""
        rig = self.rig
        rig.advance(seconds)
        for name in self.books:
            self._report(name)
        rig.engine.tick()
        rig.sent.clear()
        sent = rig.reconcile()
        for name, message in list(rig.sent):
            self._answer(name, message)
        rig.sent.clear()
        return sent

    def run(self, seconds: float, *, until: Callable[[], object] | None = None, beat: float = 0.1) -> float:
        """``step`` after ``step``, ``beat`` seconds apart, for ``seconds``, or until ``until()`` holds after one
        (it must); returns the seconds that passed."""
        beats = 0
        while beats * beat < seconds - 1e-9:
            self.step(beat)
            beats += 1
            if until is not None and until():
                return round(beats * beat, 6)
        assert until is None, f"not within {seconds}s"
        return round(beats * beat, 6)

    def _answer(self, name: str, message: Message) -> None:
        book, engine = self.books[name], self.rig.engine
        if isinstance(message, CommandBatch):
            self.commands.extend(message.commands)
            results = tuple(book.execute(command) for command in message.commands)
            if not book.answers_lost:
                engine.on_message(name, CommandResults(batch_id=message.batch_id, results=results))
            self._report(name)
        elif isinstance(message, SymbolRequest | HistoryRequest):
            engine.on_message(name, book.answer(message))

    def summary(self) -> str:
        return render_summary(self.rig.engine)

    def events(self) -> list[tuple[str, str, str, str]]:
        """The history rows written since this engine started: (target, action, outcome, message)."""
        rows = self.rig.state.connection.execute(
            "SELECT target, action, outcome, message FROM events WHERE id > ? ORDER BY id",
            (self._first_event,)).fetchall()
        return [tuple(row) for row in rows]

    def result(self, seconds: float = 0.0) -> OnceRun:
        return OnceRun(code=int(once_exit_code(self.rig.engine)), summary=self.summary(), events=self.events(),
                       logs=list(self.logs), commands=list(self.commands), seconds=seconds)


def console_text(logs: Iterable[tuple[str, str]]) -> str:
    """Log lines as the coordinator's console shows them at its default log_level (INFO and up), one a line."""
    return "\n".join(message for level, message in logs if level not in ("TRACE", "DEBUG"))


def summary_counts(summary: str, target: str = TARGET) -> dict[str, int]:
    """The counters of one target's line in a summary ("placed 1, modified 0, ...")."""
    import re

    for line in summary.splitlines():
        if line.startswith(f"target {target}: ") and "NOT SYNCED" not in line:
            counts = re.findall(r"([a-z][a-z ]*?) (\d+)(?:,|$)", line[len(f"target {target}: "):])
            return {label.strip(): int(number) for label, number in counts}
    raise AssertionError(f"no summary line for target {target}:\n{summary}")
