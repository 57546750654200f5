"""A real coordinator Engine and StateStore driven by hand-fed protocol messages, on a clock the test turns.

No workers, no sockets, no sleeping: a test says what each worker reports and reads what the engine sent
back. One source ("src", login 1) and one target ("t1", login 2), both on server "S".
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from config.loader import parse_config
from coordinator.engine import Engine
from coordinator.planner import Link
from coordinator.state import StateStore
from protocol import (
    AccountFacts,
    ClosedOrder,
    Command,
    CommandBatch,
    CommandResult,
    CommandResults,
    CommandStatus,
    Heartbeat,
    Hello,
    Message,
    PendingOrder,
    PositionFacts,
    Quote,
    Snapshot,
    SymbolSpec,
    SymbolSpecs,
    TerminalFacts,
)
from protocol.tags import copy_tag

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
    """The position a copy of ``source`` became when it filled."""
    return PositionFacts(ticket=identifier, identifier=identifier, symbol=source.symbol, type=0, volume=source.volume,
                         magic=source.ticket, comment=copy_tag(source.ticket))


def now_ms() -> int:
    return int(time.time() * 1000)


class EngineRig:
    """``target``: extra settings of the target t1; ``more_targets``: further targets by name, with theirs.
    ``fixed_offsets``: every broker clock is configured as UTC (else measured from tick times)."""

    def __init__(self, state_dir: Path, target: dict[str, Any] | None = None, *,
                 more_targets: dict[str, dict[str, Any]] | None = None, fixed_offsets: bool = True) -> None:
        offsets = {"server_utc_offset": 0} if fixed_offsets else {}
        targets = {TARGET: target or {}, **(more_targets or {})}
        self.logins = {SOURCE: 1, **{name: 2 + i for i, name in enumerate(targets)}}
        data = {
            "coordinator": {"state_dir": str(state_dir)},
            "source": {"name": SOURCE, "backend": "sim", "path": "s", "login": 1, "server": "S", **offsets},
            "targets": [{"name": name, "backend": "sim", "path": name, "login": self.logins[name], "server": "S",
                         **offsets, **settings} for name, settings in targets.items()],
        }
        self.config = parse_config(data, base_dir=state_dir.parent)
        self.clock = 1000.0
        self.sent: list[tuple[str, Message]] = []
        self.state = StateStore(state_dir)
        self.engine = Engine(self.config, self.state, self._send, clock=lambda: self.clock)
        self.seq = dict.fromkeys(self.logins, 0)

    def _send(self, name: str, message: Message) -> bool:
        self.sent.append((name, message))
        return True

    def close(self) -> None:
        self.state.close()

    # ---- what the workers say ----------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def hello(self, name: str, boot: str = "b1", *, login: int | None = None) -> None:
        role = "source" if name == SOURCE else "target"
        self.engine.on_message(name, Hello(
            terminal=name, role=role, boot_id=boot, protocol_minor=0, worker_version="x", backend="sim", pid=1,
            host="h", account=AccountFacts(login=self.logins[name] if login is None else login, server="S"),
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
                  server_time: int = 0, quotes: Iterable[Quote] = (), boot: str = "b1") -> None:
        sent = now_ms() if sent_at_ms is None else sent_at_ms
        self.engine.on_message(name, Heartbeat(
            sent_at_ms=sent, boot_id=boot, last_seq=self.seq[name] if last_seq is None else last_seq,
            polled_at_ms=sent, server_time=server_time, quotes=tuple(quotes)))

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
