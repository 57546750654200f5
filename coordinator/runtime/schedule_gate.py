"""Copying on a schedule ([coordinator] schedule): what is planned between two boundaries waits for the next one.

The engine keeps planning as it does live (every snapshot, every ``interval``): the terminals are watched, the
status is kept, orphans are confirmed and the facts a plan needs (symbols, prices, history) are asked for, since
those are questions, not trades. What a plan would send, ``gate`` holds back instead, as a pause does: nothing of
it reaches the state, and the next plan plans it again from the facts of that moment. So between two boundaries
nothing at all is sent: no placement, edit, removal, SL/TP change or close.

At a boundary (``poll``, every tick) each target owes a run: its next plan goes out, and the plans that follow
its answers too (a fill's follow-up, a symbol asked for), until nothing is left to send and nothing is awaited,
or for ``command_timeout`` + ``SETTLE_EXTRA_SECONDS`` at most. Within a run each change goes out once: one that
failed is tried again at a later run (its back-off over), never in between. A target that cannot be copied to at
the boundary (its worker offline, the source stale) owes its run until it can be: it is copied to as soon as it
is back, once.

The first run is at the first boundary after the start (or after the schedule changed, at a reload). On the
server clock the boundaries are placed once the source's server clock is known (``server_utc_offset``, or its
first tick); until then nothing is sent and ``status`` says so; a boundary that passed meanwhile is run then.

Outside of it, and never held: the kill switch (``remove-copies`` sends its removals itself, at once), and a
``run --once`` (``suspend``: an explicit one-off syncs when it is run, the dry run shows the plan as of now).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from loguru import logger

from config import CoordinatorConfig
from config.choices import ScheduleClock
from coordinator.domain.actions import Action, ActionKind
from coordinator.domain.controls import Withheld
from coordinator.domain.planner import SkipReason, TargetPlan
from coordinator.domain.schedule import Schedule, Timetable, clock_text

# A run lets the plans that follow its answers through for command_timeout (every answer is in, or counts as
# unknown) and this long again (the snapshot that settles an unknown one, a fact asked for).
SETTLE_EXTRA_SECONDS = 10.0
LATE_SECONDS = 5.0  # a run that starts this long after its boundary says it is late, and why
_QUICK_FACTS = (SkipReason.NOT_YET, SkipReason.SYMBOL_PENDING, SkipReason.HISTORY_PENDING)


@dataclass
class _Run:
    """The run a target owes: the boundary it is for, and until when its plans go out."""

    boundary: float  # UTC
    until: float | None = None  # monotonic; None: not planned yet (the first plan that can be made opens it)
    sent: set[tuple[ActionKind, int, int]] = field(default_factory=set)  # what went out in it (kind, source, copy)


class ScheduleGate:
    def __init__(self, coordinator: CoordinatorConfig, clock: Callable[[], float], wall: Callable[[], float],
                 server_offset: Callable[[], int | None]) -> None:
        """``clock``: monotonic seconds; ``wall``: UTC seconds (where the boundaries are); ``server_offset``: the
        source's server clock, seconds ahead of UTC (None: not known yet)."""
        self._clock = clock
        self._wall = wall
        self._server_offset = server_offset
        self._settle = coordinator.command_timeout + SETTLE_EXTRA_SECONDS
        self._suspended = False
        self._runs: dict[str, _Run] = {}  # targets that owe a run, or are in one
        self._held: dict[str, tuple[Withheld, ...]] = {}
        self._told: dict[str, float | None] = {}  # target -> the next run its waiting was logged for
        self._start(Schedule.from_config(coordinator))

    def _start(self, schedule: Schedule | None) -> None:
        self.schedule = schedule
        self._timetable = Timetable(schedule) if schedule is not None else None
        self._started_at = self._wall()
        self._runs.clear()
        self._held.clear()
        self._told.clear()
        self._clock_awaited = False  # "waiting for the server clock" said

    @property
    def active(self) -> bool:
        """A schedule is in force (configured, and not suspended by a run --once)."""
        return self._timetable is not None and not self._suspended

    def suspend(self) -> None:
        """A run --once: every plan goes out at once, the schedule notwithstanding."""
        self._suspended = True
        self._held.clear()

    def use_config(self, coordinator: CoordinatorConfig) -> None:
        """A reload: a changed schedule applies at once. Its first run is at its first boundary from now, as at a
        start; no schedule any more: live again (the engine plans every target at once after a reload)."""
        self._settle = coordinator.command_timeout + SETTLE_EXTRA_SECONDS
        schedule = Schedule.from_config(coordinator)
        if schedule == self.schedule:
            return
        if schedule is None:
            logger.info("schedule removed: copying live again, every change at once")
        else:
            logger.info("schedule {}: copying only then from now on; the first run is at the next boundary",
                        schedule.describe())
        self._start(schedule)

    # ---- the boundaries ------------------------------------------------------------------------

    def _offset(self) -> int | None:
        assert self.schedule is not None
        return 0 if self.schedule.clock is ScheduleClock.UTC else self._server_offset()

    def poll(self, targets: Iterable[str]) -> set[str]:
        """At a boundary: every target in ``targets`` owes a run; they are returned, to plan at once."""
        if not self.active:
            return set()
        assert self._timetable is not None and self.schedule is not None
        offset = self._offset()
        if offset is None:
            if not self._clock_awaited:
                self._clock_awaited = True
                logger.info("schedule {}: waiting for the source's server clock (its first tick, or set "
                            "server_utc_offset) to place the boundaries; nothing is sent until the first run",
                            self.schedule.describe())
            return set()
        if not self._timetable.begun:
            self._timetable.begin(self._started_at, offset)
            first = self._timetable.next_run(offset)
            assert first is not None
            logger.info("schedule {}: the first run is at {}", self.schedule.describe(),
                        clock_text(first, offset, self.schedule))
        now = self._wall()
        boundary = self._timetable.take(now, offset)
        if boundary is None:
            return set()
        late = now - boundary
        waiting = sum(len(held) for held in self._held.values())
        next_run = self._timetable.next_run(offset)
        assert next_run is not None
        (logger.info if waiting or late > LATE_SECONDS else logger.debug)(
            "scheduled run of {}{}: copying to every target{}; the next run is at {}",
            clock_text(boundary, offset, self.schedule),
            f" ({late:.0f} s late{': the server clock was not known before' if self._clock_awaited else ''})"
            if late > LATE_SECONDS else "",
            f" ({waiting} change(s) waited for it)" if waiting else "", clock_text(next_run, offset, self.schedule))
        names = set(targets)
        self._runs = {name: _Run(boundary) for name in names}
        return names

    # ---- the gate ------------------------------------------------------------------------------

    def gate(self, name: str, actions: list[Action], plan: TargetPlan, *, busy: bool) -> list[Action]:
        """The actions of ``name``'s plan that go out now: all during its run, none between runs (kept as held).
        ``busy``: commands or questions sent for it are still unanswered (its run goes on)."""
        if not self.active:
            return actions
        now = self._clock()
        run = self._runs.get(name)
        if run is not None:
            if run.until is None:
                run.until = now + self._settle
            if now <= run.until:
                # Sent once in this run already (it failed, or its answer was lost): tried again at the next run.
                again = [action for action in actions if _key(action) in run.sent]
                fresh = [action for action in actions if _key(action) not in run.sent]
                run.sent.update(_key(action) for action in fresh)
                if not fresh and not busy and not _waits_for_facts(plan):
                    del self._runs[name]  # done: what comes up from now on waits for the next run
                self._hold(name, again, retry=True)
                return fresh
            del self._runs[name]
            logger.info("{}: the scheduled run did not settle within {:.0f} s; what is left waits for the next run",
                        name, self._settle)
        self._hold(name, actions)
        return []

    def _hold(self, name: str, actions: list[Action], *, retry: bool = False) -> None:
        run = self._runs.get(name)
        next_run = self.next_run(name) if run is None else self._following_run()
        why = self._waiting_for(next_run) + ("; it was tried in this run already" if retry else "")
        self._held[name] = tuple(Withheld(action, why) for action in actions)
        if actions and self._told.get(name, -1.0) != next_run:  # said once per run waited for
            self._told[name] = next_run
            logger.info("{}: {} change(s) wait for the next scheduled run: {}", name, len(actions), why)
        elif not actions:
            self._told.pop(name, None)

    def _following_run(self) -> float | None:
        """The run after the one under way."""
        assert self._timetable is not None
        offset = self._offset()
        return self._timetable.next_run(offset) if offset is not None else None

    def _waiting_for(self, next_run: float | None) -> str:
        assert self.schedule is not None
        offset, timeframe = self._offset(), self.schedule.timeframe
        if next_run is None or offset is None:
            return f"schedule {timeframe}: waiting for the source's server clock to place the first run"
        return f"schedule {timeframe}: until the next run at {clock_text(next_run, offset, self.schedule)}"

    # ---- for status ----------------------------------------------------------------------------

    def held(self, name: str) -> tuple[Withheld, ...]:
        """What the last plan for ``name`` held back until the next run."""
        return self._held.get(name, ()) if self.active else ()

    def describe(self) -> str:
        """The schedule in force, in words ("" when copying live)."""
        return self.schedule.describe() if self.active and self.schedule is not None else ""

    def next_run(self, name: str) -> float | None:
        """When ``name`` is next copied to (UTC): the boundary of the run it owes or is in (past: under way), else
        the next boundary; None when live, or while the boundaries cannot be placed (the server clock unknown)."""
        if not self.active:
            return None
        assert self._timetable is not None
        run = self._runs.get(name)
        if run is not None:
            return run.boundary
        offset = self._offset()
        return self._timetable.next_run(offset) if offset is not None else None


def _key(action: Action) -> tuple[ActionKind, int, int]:
    return action.kind, action.source_ticket, action.ticket


def _waits_for_facts(plan: TargetPlan) -> bool:
    """The plan waits for facts that arrive by themselves within seconds (a clock, prices, a symbol, a record)."""
    return bool(plan.needed_symbols or plan.needed_history or plan.needed_position_history
                or plan.needed_copy_position_history) or any(skip.reason in _QUICK_FACTS for skip in plan.skips)
