"""The kill switch on the running coordinator: ``mt5-copier remove-copies`` asks (coordinator/cli/remove_copies.py,
over coordinator/runtime/operator_requests.py), and the coordinator's loop does it.

What it does, for one target: pauses it first (so nothing new is placed meanwhile), then removes every pending
copy and, when asked, closes every copy position, as coordinator/domain/kill_switch.py decides from the target's
latest snapshot (the copier's own only). They go out as ordinary commands, through the Dispatcher: each intent
recorded before it is sent, each result settled, each outcome a history event (``CopyRemoved``,
``PositionClosed``, with the reason "kill switch: remove-copies"); a crash half-way settles from the terminal on
restart, like any command. Each copy is sent for once; a refusal is reported, not retried here. It answers when
the terminal, reporting after the last answer, shows nothing left to send, or after command_timeout and
``EXTRA_WAIT_SECONDS``, with what is known by then.

It refuses (and touches nothing, not even the pause) when there is no terminal to ask on: a target the running
coordinator does not copy to, whose worker is not connected, or whose terminal cannot trade now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from coordinator.domain.actions import Action, ActionKind
from coordinator.domain.controls import TargetControl, TargetMode
from coordinator.domain.events import (
    CommandFailed,
    CopyRemoved,
    Event,
    OutcomeSettledUnknown,
    PositionClosed,
    TargetControlChanged,
)
from coordinator.domain.kill_switch import KILL_SWITCH_REASON, KillList, kill_list, next_batch
from coordinator.persistence.controls import set_control
from coordinator.runtime.engine import Engine
from coordinator.runtime.operator_requests import Body, Request
from coordinator.runtime.views import TerminalView

REMOVE_COPIES = "remove-copies"  # the request's kind
SET_BY = "remove-copies"  # who paused the target, as status and the history say
EXTRA_WAIT_SECONDS = 10.0  # beyond command_timeout: how long the kill switch waits for its last answers
# What a copy became. Done: it is off the target. Not done: the command that says why is told with it.
REMOVED, CLOSED, GONE = "removed", "closed", "gone"
FAILED, UNKNOWN, NOT_SENT = "failed", "unknown", "not sent"
TO_REMOVE, TO_CLOSE = "to remove", "to close"  # a preview's items
_DONE = frozenset({REMOVED, CLOSED, GONE})


@dataclass(frozen=True)
class KillSwitchRequest:
    target: str
    positions: bool = False  # close the copy positions too
    preview: bool = False  # only say what would be removed and closed: nothing paused, nothing sent

    def to_body(self) -> Body:
        return {"target": self.target, "positions": self.positions, "preview": self.preview}

    @classmethod
    def from_body(cls, body: Body) -> KillSwitchRequest | None:
        target = body.get("target")
        if not isinstance(target, str) or not target:
            return None
        return cls(target, positions=body.get("positions") is True, preview=body.get("preview") is True)


@dataclass(frozen=True)
class CopyOutcome:
    """One copy the kill switch acted on (or would, in a preview)."""

    what: str  # "order" (a pending copy) or "position" (a copy position)
    copy_ticket: int
    source_ticket: int
    symbol: str
    volume: float
    outcome: str  # REMOVED, CLOSED, GONE, FAILED, UNKNOWN, NOT_SENT; TO_REMOVE, TO_CLOSE in a preview
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.outcome in _DONE


@dataclass(frozen=True)
class KillSwitchAnswer:
    refused: str = ""  # why nothing was done at all ("" when it was done, or previewed)
    items: tuple[CopyOutcome, ...] = ()
    notes: tuple[str, ...] = ()  # the pause, what was left alone and why

    @property
    def complete(self) -> bool:
        return not self.refused and all(item.done for item in self.items)

    def to_body(self) -> Body:
        return {"refused": self.refused, "notes": list(self.notes),
                "items": [{"what": i.what, "copy_ticket": i.copy_ticket, "source_ticket": i.source_ticket,
                           "symbol": i.symbol, "volume": i.volume, "outcome": i.outcome, "detail": i.detail}
                          for i in self.items]}

    @classmethod
    def from_body(cls, body: Body) -> KillSwitchAnswer:
        items = []
        for item in body.get("items", ()):
            if isinstance(item, dict):
                items.append(CopyOutcome(what=str(item.get("what", "")), copy_ticket=int(item.get("copy_ticket", 0)),
                                         source_ticket=int(item.get("source_ticket", 0)),
                                         symbol=str(item.get("symbol", "")), volume=float(item.get("volume", 0.0)),
                                         outcome=str(item.get("outcome", "")), detail=str(item.get("detail", ""))))
        return cls(refused=str(body.get("refused", "")), items=tuple(items),
                   notes=tuple(str(note) for note in body.get("notes", ())))


def refused(why: str) -> KillSwitchAnswer:
    return KillSwitchAnswer(refused=why)


@dataclass
class _Job:
    """One kill switch at work on one target."""

    request: Request  # who asked: the answer goes back to it
    target: str
    positions: bool
    deadline: float
    notes: list[str]
    meant: dict[int, Action] = field(default_factory=dict)  # copy ticket -> what is to be done to it
    sent: dict[int, Action] = field(default_factory=dict)  # copy ticket -> the action sent for it
    outcomes: dict[int, tuple[str, str]] = field(default_factory=dict)  # copy ticket -> (outcome, detail)
    quiet_since: float | None = None  # since when nothing is in flight on the target and nothing is left to send


class KillSwitch:
    """Serves remove-copies requests on the coordinator's one loop thread: ``ask`` takes one, ``step`` (each turn
    of the loop) sends and watches, and returns the answers of the removals that finished."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._clock = clock
        self._jobs: dict[str, _Job] = {}
        engine.events.subscribe(self._on_event)

    def ask(self, asked: Request) -> KillSwitchAnswer | None:
        """Refuse, preview, or start removing: None when it started (``step`` answers it when done)."""
        engine = self._engine
        request = KillSwitchRequest.from_body(asked.body)
        if request is None:
            return refused("the remove-copies request could not be read")
        view = engine.targets.get(request.target)
        problem = self._no_terminal(request.target, view)
        if problem:
            logger.warning("remove-copies for {} refused: {}", request.target, problem)
            return refused(problem)
        assert view is not None and view.snapshot is not None
        if request.target in self._jobs:
            return refused(f"a remove-copies for {request.target} is already under way; its command reports it")
        kill = self._kill_list(view, request.positions)
        if request.preview:
            items = [_item(action, TO_REMOVE if action.kind is ActionKind.REMOVE else TO_CLOSE)
                     for action in kill.actions]
            return KillSwitchAnswer(items=tuple(items), notes=tuple(self._left_alone(view, kill, request.positions)))
        notes = [self._pause(request.target)]
        logger.warning("{}: remove-copies: removing {} pending copies{}", request.target, len(kill.removals),
                       f" and closing {len(kill.closes)} copy positions" if request.positions else "")
        self._jobs[request.target] = _Job(
            request=asked, target=request.target, positions=request.positions, notes=notes,
            deadline=self._clock() + engine.config.coordinator.command_timeout + EXTRA_WAIT_SECONDS)
        return None

    def step(self) -> list[tuple[Request, KillSwitchAnswer]]:
        """Send what is due, and return the answers of the jobs that finished (with the request each answers)."""
        finished = []
        for target, job in list(self._jobs.items()):
            if self._advance(job):
                del self._jobs[target]
                finished.append((job.request, self._answer(job)))
        return finished

    def stop(self, why: str) -> list[tuple[Request, KillSwitchAnswer]]:
        """The coordinator stops: every job answers with what is known, and ``why`` for the rest."""
        answers = []
        for job in self._jobs.values():
            job.notes.append(why)
            answers.append((job.request, self._answer(job)))
        self._jobs.clear()
        return answers

    # ---- the work ------------------------------------------------------------------------------

    def _no_terminal(self, target: str, view: TerminalView | None) -> str:
        """Why there is no terminal to ask on ("" when there is one)."""
        engine = self._engine
        if view is None or view.target is None:
            configured = {t.name: t for t in engine.config.targets}
            if target in configured and not configured[target].copy.enabled:
                return (f"target {target} is disabled (enabled = false): the coordinator runs no worker for it, so "
                        "there is no terminal to ask on")
            if target in engine.removed_targets:
                return f"target {target} was removed from the config by a reload: its worker was stopped"
            return (f"the running coordinator has no target {target} (one added to the config since it started is "
                    "copied to after `mt5-copier reload`)")
        now = self._clock()
        if not view.fresh(now, engine.config.coordinator.worker_timeout):
            why = view.last_error or "its worker is not connected, or has not reported lately"
            return f"no terminal to ask on: target {target}: {why}"
        tradeable, why = view.tradeable()
        if not tradeable:
            return f"target {target} cannot trade now: {why}"
        return ""

    def _kill_list(self, view: TerminalView, positions: bool) -> KillList:
        engine = self._engine
        assert view.snapshot is not None and view.target is not None
        return kill_list(view.snapshot.orders, view.snapshot.positions, engine.state.links(view.name),
                         close_positions=positions,
                         positions_not_followed=engine.positions_not_followed(view) if positions else "",
                         close_deviation_points=view.target.copy.positions.close_deviation_points)

    def _left_alone(self, view: TerminalView, kill: KillList, positions: bool) -> list[str]:
        notes = []
        if kill.foreign_orders or kill.foreign_positions:
            notes.append(f"left alone on {view.name}: {kill.foreign_orders} pending order(s) and "
                         f"{kill.foreign_positions} position(s) the copier did not place")
        if kill.positions_kept:
            notes.append(f"copy positions not closed: {kill.positions_kept}")
        elif not positions and view.snapshot is not None:
            copies = len(self._kill_list(view, True).closes)
            if copies:
                notes.append(f"{copies} copy position(s) left open (--positions closes them)")
        return notes

    def _pause(self, target: str) -> str:
        """Pause ``target`` before anything is removed, so nothing new is placed meanwhile; what status says."""
        engine = self._engine
        current = engine.control(target)
        if current.mode is TargetMode.PAUSED:
            return f"{target} was paused already (by {current.set_by or 'someone'}): it stays paused"
        control = TargetControl(TargetMode.PAUSED, reason=KILL_SWITCH_REASON, set_by=SET_BY, set_at=time.time())
        set_control(engine.state.connection, target, control)
        engine.apply_control(target, control)
        engine.events.emit(TargetControlChanged(target=target, mode=control.mode.value, reason=control.describe(),
                                                set_by=SET_BY))
        return (f"{target} is paused: nothing new is copied to it until `mt5-copier resume --config "
                f"{engine.config.path} --target {target}`")

    def _advance(self, job: _Job) -> bool:
        """Send what is due for ``job``; True when it is finished."""
        engine, now = self._engine, self._clock()
        view = engine.targets.get(job.target)
        if view is None:
            job.notes.append(f"target {job.target} left the config while its copies were being removed")
            return True
        if not self._no_terminal(job.target, view):
            kill = self._kill_list(view, job.positions)
            for action in kill.actions:
                job.meant.setdefault(action.ticket, action)
            busy = engine.in_flight.get(job.target, {})
            batch = next_batch(kill.actions, busy.keys(), job.sent.keys())
            if batch and engine.dispatcher.send(view, batch, now, {}):
                job.sent.update((action.ticket, action) for action in batch)
                busy = engine.in_flight.get(job.target, {})
            left = [action for action in kill.actions if action.ticket not in job.sent]
            answered = all(ticket in job.outcomes for ticket in job.sent)
            if busy or left or not answered:
                job.quiet_since = None
            elif job.quiet_since is None:
                job.quiet_since = now
            elif view.confirmed_at > job.quiet_since:
                return True  # the terminal reported after the last answer: nothing is left to send
        return now >= job.deadline

    def _on_event(self, event: Event) -> None:
        """Outcomes of the commands the kill switch sent, as the settlement tells them."""
        target, ticket = getattr(event, "target", ""), getattr(event, "copy_ticket", 0)
        job = self._jobs.get(target)
        if job is None or ticket not in job.sent or ticket in job.outcomes:
            return
        if isinstance(event, CopyRemoved):
            job.outcomes[ticket] = (REMOVED, "")
        elif isinstance(event, PositionClosed):
            if event.already_closed:
                job.outcomes[ticket] = (GONE, "it was closed already")
            elif event.partial:
                job.outcomes[ticket] = (FAILED, f"closed {event.volume:g} lots at {event.price:g}, "
                                                f"{event.remaining:g} left open")
            else:
                job.outcomes[ticket] = (CLOSED, f"{event.volume:g} lots at {event.price:g}")
        elif isinstance(event, CommandFailed):
            job.outcomes[ticket] = (FAILED, event.reason)
        elif isinstance(event, OutcomeSettledUnknown):
            job.outcomes[ticket] = self._settled_unknown(job, ticket)

    def _settled_unknown(self, job: _Job, ticket: int) -> tuple[str, str]:
        """A command whose answer was lost, settled from the terminal: is its copy still there?"""
        view = self._engine.targets.get(job.target)
        snapshot = view.snapshot if view is not None else None
        if snapshot is None:
            return UNKNOWN, "its answer was lost and the terminal has not reported since"
        there = any(order.ticket == ticket for order in snapshot.orders) or \
            any(position.ticket == ticket for position in snapshot.positions)
        return (UNKNOWN, "its answer was lost, and it is still there") if there else \
            (GONE, "its answer was lost; it is no longer on the terminal")

    def _answer(self, job: _Job) -> KillSwitchAnswer:
        items = []
        for ticket, action in sorted(job.meant.items()):
            if ticket in job.outcomes:
                outcome, detail = job.outcomes[ticket]
            elif ticket in job.sent:
                outcome, detail = UNKNOWN, ("no answer yet: the coordinator settles it from the terminal "
                                            "(`mt5-copier history` tells)")
            else:
                outcome, detail = NOT_SENT, "a command for its source order was still in flight, or the terminal " \
                                            "stopped reporting"
            items.append(_item(action, outcome, detail))
        view = self._engine.targets.get(job.target)
        notes = list(job.notes)
        if view is not None and view.snapshot is not None and not self._no_terminal(job.target, view):
            notes.extend(self._left_alone(view, self._kill_list(view, job.positions), job.positions))
        answer = KillSwitchAnswer(items=tuple(items), notes=tuple(notes))
        done = sum(1 for item in items if item.done)
        (logger.success if answer.complete else logger.error)(
            "{}: remove-copies finished: {} of {} copies taken off", job.target, done, len(items))
        return answer


def _item(action: Action, outcome: str, detail: str = "") -> CopyOutcome:
    position = action.kind is ActionKind.CLOSE
    return CopyOutcome(what="position" if position else "order", copy_ticket=action.ticket,
                       source_ticket=action.source_ticket, symbol=action.symbol, volume=action.volume,
                       outcome=outcome, detail=detail)
