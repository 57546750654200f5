"""Durable dispatch: a plan's actions become wire commands here, and only here.

The order of things is the no-duplicate guarantee: at most one command per source order per batch; every
intent (the action and its command) is committed to the state *before* the batch is handed to the wire (all
the targets' intents of one reconcile in one transaction, before the first of their batches); a
batch that could not be handed over is settled at once as not delivered (nothing can have happened). A
crash after the commit is resolved against the terminal on restart, never by sending blindly again.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import msgspec
from loguru import logger

from config.faults import crash_point
from coordinator.domain.actions import Action
from coordinator.domain.events import EventStream, OrphanDecided
from coordinator.runtime.latency import LatencyTracker
from coordinator.runtime.ledger import CommandLedger
from coordinator.runtime.views import TerminalView
from protocol import Command, CommandBatch, Message


class CommandIds:
    """Ids for commands and batches, never the same twice. A worker answers a command id it has seen with the
    result it remembers instead of trading again, so an id must never come back: within this process a counter
    makes it unique, and a random prefix drawn once at start (64 bits from ``secrets``) sets this run apart from
    every earlier one. Same length as the 16 random bytes it replaces, half the cost: one id per command,
    and a source edit at 50 targets makes 50."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def command(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"

    def batch(self) -> str:
        return f"{self._prefix[:8]}{next(self._counter):x}"

SendFunction = Callable[[str, Message], bool]


class Outgoing(msgspec.Struct, frozen=True):
    """One target's share of a reconcile: what its gated plan sends, and when that plan was ready (the copies'
    "planned" stage)."""

    view: TerminalView
    actions: Sequence[Action]
    planned: float = 0.0


class Dispatch(Protocol):
    """Where the engine hands a plan's actions: the Dispatcher, or a dry run's stand-in that sends nothing
    (coordinator/runtime/dry_run.py)."""

    def send(self, view: TerminalView, actions: Sequence[Action], now: float,
             fingerprints: Mapping[int, tuple]) -> int: ...

    def send_all(self, outgoing: Sequence[Outgoing], now: float, fingerprints: Mapping[int, tuple]) -> int: ...


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
        self._ids = CommandIds()

    def send(self, view: TerminalView, actions: Sequence[Action], now: float,
             fingerprints: Mapping[int, tuple]) -> int:
        """Send ``actions`` to ``view``'s worker; the number of commands that went out. ``fingerprints``: each
        source order as it is now, so an edit of a failed order retries it at once."""
        planned = self._latency.now() if self._latency is not None else 0.0
        return self.send_all([Outgoing(view, actions, planned)], now, fingerprints)

    def send_all(self, outgoing: Sequence[Outgoing], now: float, fingerprints: Mapping[int, tuple]) -> int:
        """``send`` for several targets at once: every target's intents are made durable together, in one
        transaction, and only then is any batch handed to the wire. The number of commands that went out."""
        batches = []
        for each in outgoing:
            if not each.actions:
                continue
            view = each.view
            # In the worker's clock: a worker whose clock is off must not find fresh commands already expired.
            deadline_ms = self._now_ms() + view.clock_skew_ms + self._command_timeout_ms
            sends = [(action, action.command(self._ids.command(), deadline_ms))
                     for action in first_per_order(each.actions)]
            batches.append((each, sends))
        if not batches:
            return 0
        # The intents are durable before any command exists anywhere else: a crash after this line is resolved
        # against the terminals on restart, never by sending blindly again.
        self._ledger.record_all([(each.view.name, sends) for each, sends in batches], now, fingerprints)
        crash_point("after-intent")
        sent = 0
        for each, sends in batches:
            try:
                sent += self._hand_over(each.view, sends, each.planned)
            except Exception:  # a bug for one target must not keep the others' batches back
                # Its intents are recorded and in flight: their outcome turns unknown at the timeout and is settled
                # from the terminal, never by sending again blindly.
                logger.exception("{}: handing its batch to the wire failed", each.view.name)
        return sent

    def _hand_over(self, view: TerminalView, sends: list[tuple[Action, Command]], planned: float) -> int:
        """Hand one target's recorded batch to the wire; the number of commands that went out."""
        for action, _ in sends:
            if action.orphan_removal:
                self._events.emit(OrphanDecided(target=view.name, source_ticket=action.source_ticket,
                                                copy_ticket=action.ticket, kill=True, why=action.evidence))
        commands = tuple(command for _, command in sends)
        if self._send(view.name, CommandBatch(batch_id=self._ids.batch(), commands=commands)):
            crash_point("after-send", flush_seconds=0.2)
            if self._latency is not None:
                self._latency.sent(view.name, sends, planned)
            return len(commands)
        self._ledger.not_delivered(view.name, commands)
        logger.warning("{}: could not deliver {} command(s); will retry when the worker is back", view.name,
                       len(commands))
        return 0
