"""Each copy's latency stages (coordinator/domain/latency.py), measured as the copy goes: on the engine's one
thread, a clock read where a stage is reached and a dictionary entry per copy in flight; nothing else.

The source's snapshots say when each order was first seen (and last changed); dispatch says when a plan's
commands were planned and sent; settlement says when each was answered and takes the stages for the copy's
event; the target's snapshots confirm a copy its snapshot did not yet show when the answer came
(``CopyConfirmed``, which completes that copy's history event). The command counts of the metrics are taken
at the same two points (sent, answered), so no other place in the hot path needs to know about metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from coordinator.domain.actions import Action
from coordinator.domain.events import CopyConfirmed, EventStream
from coordinator.domain.latency import CopyStages
from coordinator.domain.order_changes import OrderChanges, order_changes
from coordinator.domain.report import trim
from protocol import Command, CommandKind, CommandResult, CommandStatus, PendingOrder, Snapshot

_STAGED_KINDS = frozenset({CommandKind.PLACE, CommandKind.REPLACE})
# A source snapshot is sent right after its poll: one whose translated poll time is older than this (or in the
# future) has a clock that cannot be compared with ours yet (no heartbeat measured its skew): its arrival counts.
MAX_POLL_AGE_MS = 60_000.0
# A copy no snapshot of its target showed this long after its answer is not waited for (it filled and its
# position closed, or it was deleted at once): its stages stay without "confirmed".
CONFIRMATION_WAIT_MS = 60_000.0


def wall_clock_ms() -> float:
    """UTC milliseconds with a fraction: the stages' clock (the wire's ``*_ms`` fields are whole milliseconds)."""
    return time.time() * 1000.0


class CommandCounts(Protocol):
    """Who counts commands (the metrics): told of every command sent and every result a worker sent back."""

    def command_sent(self, target: str, kind: str) -> None: ...

    def command_answered(self, target: str, kind: str, result: str) -> None: ...


@dataclass(slots=True)
class _Seen:
    order: PendingOrder
    first_ms: float  # the poll that first showed it
    changed_ms: float  # the poll that first showed it as it is now


@dataclass(slots=True)
class _Journey:
    detected: float
    planned: float
    sent: float
    answered: float | None = None
    broker_ms: float | None = None


class LatencyTracker:
    def __init__(self, events: EventStream, counts: CommandCounts | None = None,
                 clock_ms: Callable[[], float] = wall_clock_ms) -> None:
        self._events = events
        self._counts = counts
        self._clock_ms = clock_ms
        self._seen: dict[int, _Seen] = {}  # source ticket
        self._orders: Sequence[PendingOrder] = ()  # the source orders of the last snapshot noted
        self._journeys: dict[str, _Journey] = {}  # command id: a placement or replacement on its way
        self._unconfirmed: dict[str, dict[int, tuple[int, CopyStages]]] = {}  # target -> copy -> (source, stages)

    def now(self) -> float:
        return self._clock_ms()

    # ---- detected ------------------------------------------------------------------------------

    def source_orders(self, snapshot: Snapshot, clock_skew_ms: int, changes: OrderChanges | None = None) -> None:
        """A source snapshot whose orders changed: note when each order (or its change) was first seen.
        ``changes``: ``order_changes`` from the orders of the source's snapshot before, when the caller has it."""
        arrived = self._clock_ms()
        seen_at = float(snapshot.taken_at_ms - clock_skew_ms)  # the worker's poll, on our clock
        if not arrived - MAX_POLL_AGE_MS <= seen_at <= arrived:
            seen_at = arrived
        if changes is None or not self._orders:
            changes = order_changes(self._orders, snapshot.orders)
        self._orders = snapshot.orders
        if changes.in_place and all(order.ticket in self._seen for order in changes.changed):
            for order in changes.changed:  # edits only (the usual change): the orders seen are the same ones
                edited = self._seen[order.ticket]
                edited.order, edited.changed_ms = order, seen_at
            return
        before, now = self._seen, {}
        for order in snapshot.orders:
            seen = before.get(order.ticket)
            if seen is None:
                seen = _Seen(order, seen_at, seen_at)
            elif seen.order != order:
                seen.order, seen.changed_ms = order, seen_at
            now[order.ticket] = seen
        self._seen = now

    # ---- planned and sent, answered ------------------------------------------------------------

    def sent(self, target: str, sends: Sequence[tuple[Action, Command]], planned: float) -> None:
        """A batch left for ``target``'s worker; ``planned``: when its plan was handed to dispatch."""
        at = self._clock_ms()
        for _, command in sends:
            if self._counts is not None:
                self._counts.command_sent(target, command.kind.value)
            if command.kind in _STAGED_KINDS:
                seen = self._seen.get(command.source_ticket)
                detected = planned if seen is None else \
                    seen.first_ms if command.kind is CommandKind.PLACE else seen.changed_ms
                self._journeys[command.command_id] = _Journey(detected=min(detected, planned), planned=planned,
                                                              sent=at)
        trim(self._journeys)  # commands never answered (a worker gone) must not pile up for weeks

    def answered(self, target: str, command: Command, result: CommandResult, at: float) -> None:
        """``target``'s worker answered ``command`` (``at``: when its results arrived)."""
        if self._counts is not None:
            self._counts.command_answered(target, command.kind.value, result.status.value)
        journey = self._journeys.get(command.command_id)
        if journey is None:
            return
        if result.status is CommandStatus.DONE:
            journey.answered = at
            journey.broker_ms = result.elapsed_ms if result.elapsed_ms > 0 else None
        else:
            del self._journeys[command.command_id]  # no copy came of it: nothing to time

    # ---- the copy's event, and its confirmation ------------------------------------------------

    def finish(self, target: str, command: Command, copy_ticket: int, snapshot: Snapshot | None) -> CopyStages | None:
        """The stages of the copy ``command`` made, for its event: confirmed already when ``snapshot`` (the
        target's latest) shows it, else confirmed by a later snapshot (``target_snapshot``). None for a command
        whose way was not seen whole (sent by an earlier run, or its answer lost and settled from the terminal)."""
        journey = self._journeys.pop(command.command_id, None)
        if journey is None or journey.answered is None:
            return None
        stages = CopyStages(detected=journey.detected, planned=journey.planned, sent=journey.sent,
                            answered=journey.answered, broker_ms=journey.broker_ms)
        if snapshot is not None and copy_ticket in _tickets(snapshot):
            return stages.confirm(journey.answered)
        waiting = self._unconfirmed.setdefault(target, {})
        waiting[copy_ticket] = (command.source_ticket, stages)
        trim(waiting)
        return stages

    def target_snapshot(self, target: str, snapshot: Snapshot) -> None:
        """A snapshot of ``target`` arrived: the copies it shows first are confirmed (``CopyConfirmed``)."""
        waiting = self._unconfirmed.get(target)
        if not waiting:
            return
        at = self._clock_ms()
        held = _tickets(snapshot)
        for copy_ticket, (source_ticket, stages) in list(waiting.items()):
            if copy_ticket in held:
                del waiting[copy_ticket]
                self._events.emit(CopyConfirmed(target=target, source_ticket=source_ticket, copy_ticket=copy_ticket,
                                                stages=stages.confirm(at)))
            elif at - stages.answered > CONFIRMATION_WAIT_MS:
                del waiting[copy_ticket]

    def forget_target(self, target: str) -> None:
        self._unconfirmed.pop(target, None)


def _tickets(snapshot: Snapshot) -> set[int]:
    """What the terminal holds: its pending orders, and the positions by the order that opened them (a copy that
    filled at once is there as its position)."""
    return {order.ticket for order in snapshot.orders} | {position.identifier for position in snapshot.positions}
