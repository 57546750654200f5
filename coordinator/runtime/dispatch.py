"""Durable dispatch: a plan's actions become wire commands here, and only here.

The order of things is the no-duplicate guarantee: at most one command per source order per batch; every
intent (the action and its command) is committed to the state *before* the batch is handed to the wire; a
batch that could not be handed over is settled at once as not delivered (nothing can have happened). A
crash after the commit is resolved against the terminal on restart, never by sending blindly again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from loguru import logger

from config.faults import crash_point
from coordinator.domain.actions import Action
from coordinator.domain.events import EventStream, OrphanDecided
from coordinator.runtime.latency import LatencyTracker
from coordinator.runtime.ledger import CommandLedger
from coordinator.runtime.views import TerminalView
from protocol import CommandBatch, Message

SendFunction = Callable[[str, Message], bool]


class Dispatch(Protocol):
    """Where the engine hands a plan's actions: the Dispatcher, or a dry run's stand-in that sends nothing
    (coordinator/runtime/dry_run.py)."""

    def send(self, view: TerminalView, actions: Sequence[Action], now: float,
             fingerprints: Mapping[int, tuple]) -> int: ...


def first_per_order(actions: Sequence[Action]) -> list[Action]:
    """At most one action per source order, the first planned: what one batch may carry."""
    first: dict[int, Action] = {}
    for action in actions:
        first.setdefault(action.source_ticket, action)
    return list(first.values())


class Dispatcher:
    def __init__(self, ledger: CommandLedger, send: SendFunction, events: EventStream, command_timeout: float,
                 now_ms: Callable[[], int], latency: LatencyTracker | None = None) -> None:
        self._ledger = ledger
        self._send = send
        self._events = events
        self._command_timeout_ms = int(command_timeout * 1000)
        self._now_ms = now_ms
        self._latency = latency  # the copies' stages (planned, sent) and the metrics' command counts

    def send(self, view: TerminalView, actions: Sequence[Action], now: float,
             fingerprints: Mapping[int, tuple]) -> int:
        """Send ``actions`` to ``view``'s worker; the number of commands that went out. ``fingerprints``: each
        source order as it is now, so an edit of a failed order retries it at once."""
        if not actions:
            return 0
        planned = self._latency.now() if self._latency is not None else 0.0
        chosen = first_per_order(actions)
        # In the worker's clock: a worker whose clock is off must not find fresh commands already expired.
        deadline_ms = self._now_ms() + view.clock_skew_ms + self._command_timeout_ms
        sends = [(action, action.command(uuid.uuid4().hex, deadline_ms)) for action in chosen]
        # The intent is durable before the command exists anywhere else: a crash after this line is resolved
        # against the terminal on restart, never by sending blindly again.
        self._ledger.record(view.name, sends, now, fingerprints)
        crash_point("after-intent")
        for action in chosen:
            if action.orphan_removal:
                self._events.emit(OrphanDecided(target=view.name, source_ticket=action.source_ticket,
                                                copy_ticket=action.ticket, kill=True, why=action.evidence))
        commands = tuple(command for _, command in sends)
        if self._send(view.name, CommandBatch(batch_id=uuid.uuid4().hex[:12], commands=commands)):
            crash_point("after-send", flush_seconds=0.2)
            if self._latency is not None:
                self._latency.sent(view.name, sends, planned)
            return len(commands)
        self._ledger.not_delivered(view.name, commands)
        logger.warning("{}: could not deliver {} command(s); will retry when the worker is back", view.name,
                       len(commands))
        return 0
