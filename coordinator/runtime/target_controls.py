"""The controls in force on each target, and the gate every plan passes before anything is sent.

Two sources, one mode per target (``Engine.control``):

- what is recorded in ``target_controls`` (coordinator/persistence/controls.py): ``mt5-copier pause`` /
  ``resume`` from another process, ``remove-copies``, and the drawdown guard's close-only. Read again every
  ``POLL_SECONDS``, so a command takes effect within a second whether it ran before the coordinator started or
  while it runs; each change is logged and told as a ``TargetControlChanged`` event;
- the risk guards of ``[targets.risk]``, judged at each plan on the target's snapshot
  (coordinator/domain/risk.py): ``min_equity`` is a close-only that ends by itself; ``max_drawdown_percent``
  records a close-only that only ``resume`` ends (the equity peak it is measured from is kept in ``risk_state``
  across restarts, and a resume starts it again); ``max_total_volume`` only holds back the placement that would
  pass it. Each trip and clearance is a ``RiskGuardTripped`` event.

The gate itself (coordinator/domain/controls.py) is pure; what it holds back is kept here for ``status`` and the
``--once`` summary, as waiting with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from loguru import logger

from config import AppConfig, RiskSettings
from coordinator.domain.actions import Action
from coordinator.domain.controls import (
    ACTIVE,
    GUARD_PREFIX,
    TargetControl,
    TargetMode,
    VolumeRoom,
    Withheld,
    gate,
)
from coordinator.domain.events import EventStream, RiskGuardTripped, TargetControlChanged
from coordinator.domain.risk import drawdown_problem, held_volume, known_equity, min_equity_problem
from coordinator.persistence.controls import forget_peak, read_controls, read_peak, save_peak, set_control
from coordinator.persistence.state import StateStore
from coordinator.runtime.views import TerminalView

POLL_SECONDS = 0.5  # how often the recorded controls are read again: a pause applies within a second
PEAK_WRITE_SECONDS = 5.0  # a rising equity peak is written at most this often (kept exact in memory)
DRAWDOWN_GUARD = GUARD_PREFIX + "max_drawdown_percent"
MIN_EQUITY_GUARD = GUARD_PREFIX + "min_equity"


class TargetControls:
    def __init__(self, config: AppConfig, state: StateStore, events: EventStream, clock: Callable[[], float], *,
                 wall_clock: Callable[[], float] = time.time, persist: bool = True) -> None:
        """``clock``: monotonic seconds (when to read the table again); ``wall_clock``: unix time (when a control
        was set). ``persist`` False (a dry run): guards are judged and shown, but nothing is written."""
        self._config = config
        self._state = state
        self._db = state.connection
        self._events = events
        self._clock = clock
        self._wall = wall_clock
        self._persist = persist
        self._recorded: dict[str, TargetControl] = read_controls(self._db)
        self._next_poll = clock() + POLL_SECONDS
        self._low_equity: dict[str, TargetControl] = {}  # min_equity tripped: the close-only it holds
        self._over_volume: dict[str, str] = {}  # max_total_volume holding a placement back: why
        self._drawdown_told: set[str] = set()  # tripped while paused by the operator: said once
        self._peaks: dict[str, float | None] = {}  # the drawdown guard's peak, once read from the state
        self._peak_written: dict[str, float] = {}  # when it was last written
        self._peak_forgotten: set[str] = set()  # guard off: its stored peak was dropped
        self._held: dict[str, tuple[Withheld, ...]] = {}
        self._logged: dict[str, dict[int, str]] = {}  # target -> source ticket -> the cause said for it
        self._unplanned: set[str] = set()  # targets whose control changed since the engine last asked
        for target in config.targets:
            control = self._recorded.get(target.name, ACTIVE)
            if not control.active:
                logger.warning("target {} is {}: {} (`mt5-copier resume --config FILE --target {}` resumes it)",
                               target.name, control.mode.words, control.describe(), target.name)

    # ---- what is in force ----------------------------------------------------------------------

    def control(self, name: str) -> TargetControl:
        """The mode in force on ``name``: the recorded one, or min_equity's close-only over an active one (over
        an operator's close-only, the guard's, which needs the equity back, is the one said)."""
        recorded = self._recorded.get(name, ACTIVE)
        low = self._low_equity.get(name)
        if low is None or recorded.mode is TargetMode.PAUSED:
            return recorded
        if recorded.mode is TargetMode.CLOSE_ONLY:
            return TargetControl(TargetMode.CLOSE_ONLY, reason=f"{low.reason}; and {recorded.describe()}",
                                 set_by=low.set_by, set_at=low.set_at)
        return low

    def held(self, name: str) -> tuple[Withheld, ...]:
        """What the last plan for ``name`` held back, with why."""
        return self._held.get(name, ())

    def summary_lines(self, name: str) -> list[str]:
        """For the ``--once`` summary: the mode in force (when not active) and each action held back. Held is
        waiting, not a failure: it does not make the run incomplete."""
        control = self.control(name)
        lines = [] if control.active else [f"  control: {control.describe()}"]
        return lines + [f"  held     source #{item.action.source_ticket} {item.action.symbol}: "
                        f"{item.action.kind.value} held back: {item.reason}" for item in self.held(name)]

    def record(self, name: str, control: TargetControl) -> None:
        """Record ``control`` for ``name`` from inside the coordinator (a guard): in force at once, told once (the
        poll finds nothing new to tell)."""
        if self._persist:
            set_control(self._db, name, control)
        self._changed(name, self._recorded.get(name, ACTIVE), control)
        self._unplanned.add(name)

    def apply(self, name: str, control: TargetControl) -> None:
        """``control`` was recorded for ``name`` by the caller, who tells of it too (remove-copies): in force at
        once, and not told again by the poll."""
        self._recorded[name] = control
        if control.active:
            self._peaks.pop(name, None)  # a resume resets the peak (set_control dropped it)
        self._drawdown_told.discard(name)
        self._unplanned.add(name)

    def use_config(self, config: AppConfig) -> None:
        self._config = config

    def forget(self, name: str) -> None:
        """``name`` left the config: its controls stay recorded; nothing of it is kept in memory."""
        self._low_equity.pop(name, None)
        self._over_volume.pop(name, None)
        self._peaks.pop(name, None)
        self._peak_written.pop(name, None)
        self._held.pop(name, None)
        self._drawdown_told.discard(name)
        self._peak_forgotten.discard(name)
        self._logged.pop(name, None)

    # ---- reading the recorded controls ---------------------------------------------------------

    def poll(self, now: float) -> set[str]:
        """Read the recorded controls when due; the targets whose control changed (to plan again at once)."""
        if now >= self._next_poll:
            self._next_poll = now + POLL_SECONDS
            self._refresh()
        changed, self._unplanned = self._unplanned, set()
        return changed

    def _refresh(self) -> set[str]:
        """Read the recorded controls now; the targets whose control changed."""
        try:
            recorded = read_controls(self._db)
        except Exception as e:  # a locked or busy file: the controls in force stay until the next look
            logger.warning("could not read the targets' controls: {}", e)
            return set()
        changed = set()
        for name in recorded.keys() | self._recorded.keys():
            before, after = self._recorded.get(name, ACTIVE), recorded.get(name, ACTIVE)
            if before != after:
                self._changed(name, before, after)
                changed.add(name)
        self._unplanned |= changed
        return changed

    def _changed(self, name: str, before: TargetControl, after: TargetControl) -> None:
        self._recorded[name] = after
        if after.active:
            self._peaks.pop(name, None)  # a resume reset it in the state: from the equity of the next plan
        self._drawdown_told.discard(name)
        if name not in {target.name for target in self._config.targets}:
            return
        if after.active:
            held = len(self._held.get(name, ()))
            logger.info("target {} is active again ({}){}", name, after.reason or "resumed",
                        f": {held} held action(s) are planned again now" if held else "")
        else:
            logger.warning("target {} is now {}: {}", name, after.mode.words, _what_it_means(after))
        self._events.emit(TargetControlChanged(target=name, mode=after.mode.value,
                                               reason=after.describe() if not after.active else after.reason,
                                               set_by=after.set_by))
        if before.mode is not after.mode:  # held for another cause now: said again
            self._logged.pop(name, None)

    # ---- the gate ------------------------------------------------------------------------------

    def gate(self, view: TerminalView, actions: list[Action], in_flight: Iterable[Action]) -> list[Action]:
        """The actions of ``view``'s plan that may be sent now; the others are kept as held, with why. Judges the
        risk guards on ``view``'s snapshot first."""
        name = view.name
        assert view.target is not None and view.snapshot is not None
        settings, snapshot = view.target.copy.risk, view.snapshot
        equity = known_equity(view.balance, view.equity)  # the freshest: heartbeats carry it between snapshots
        self._watch_drawdown(name, settings, equity)
        self._watch_min_equity(name, settings, equity)
        room = None
        if settings.max_total_volume is not None:
            held = held_volume(snapshot.orders, snapshot.positions, self._state.links(name), in_flight)
            room = VolumeRoom(limit=settings.max_total_volume, held=held,
                              copy_volumes={order.ticket: order.volume for order in snapshot.orders})
        control = self.control(name)
        gated = gate(actions, control, room)
        if control.active:
            self._watch_volume(name, gated.withheld if gated.over_volume else [])
        self._held[name] = tuple(gated.withheld)
        self._log_held(name, gated.withheld)
        return gated.sent

    def _log_held(self, name: str, withheld: list[Withheld]) -> None:
        """Each held action said once per cause, not once per plan (and again if it is held again later)."""
        if not withheld and name not in self._logged:
            return  # the usual plan: nothing held now, nothing said before
        logged = self._logged.get(name, {})
        current: dict[int, str] = {}
        for item in withheld:
            ticket = item.action.source_ticket
            current[ticket] = cause = f"{item.action.kind.value}: {item.reason.split(':', 1)[0]}"
            if logged.get(ticket) != cause:
                logger.info("{}: {} for source #{} held back: {}", name, item.action.kind.value, ticket, item.reason)
        if current:
            self._logged[name] = current
        else:
            self._logged.pop(name, None)

    # ---- the risk guards -----------------------------------------------------------------------

    def _watch_drawdown(self, name: str, settings: RiskSettings, equity: float | None) -> None:
        if settings.max_drawdown_percent is None:
            if name not in self._peak_forgotten:
                self._peak_forgotten.add(name)
                self._peaks.pop(name, None)
                if self._persist:
                    forget_peak(self._db, name)
            return
        self._peak_forgotten.discard(name)
        if equity is None:
            return
        peak = self._peak(name)
        if peak is None or equity > peak:
            self._peaks[name] = peak = equity
            self._write_peak(name, peak)
        problem = drawdown_problem(settings, peak, equity)
        if problem is None or self._recorded.get(name, ACTIVE).set_by == DRAWDOWN_GUARD:
            return
        if name in self._refresh():
            return  # its control changed a moment ago (a resume resets the peak): judged again at the next plan
        action = "no new copies (close-only) until `mt5-copier resume`, which also starts the peak again"
        recorded = self._recorded.get(name, ACTIVE)
        if recorded.mode is TargetMode.PAUSED:
            if name not in self._drawdown_told:  # paused already: said, and the pause stays the stricter mode
                self._drawdown_told.add(name)
                logger.error("{}: risk guard {}; the target stays paused", name, problem)
                self._events.emit(RiskGuardTripped(target=name, guard="max_drawdown_percent", reason=problem,
                                                   action="the target stays paused (paused by the operator)"))
            return
        logger.error("{}: risk guard {}: {}", name, problem, action)
        self._events.emit(RiskGuardTripped(target=name, guard="max_drawdown_percent", reason=problem, action=action))
        self.record(name, TargetControl(TargetMode.CLOSE_ONLY, reason=f"close-only: risk guard {problem}",
                                        set_by=DRAWDOWN_GUARD, set_at=self._wall()))

    def _peak(self, name: str) -> float | None:
        if name not in self._peaks:
            self._peaks[name] = read_peak(self._db, name)
        return self._peaks[name]

    def _write_peak(self, name: str, peak: float) -> None:
        """Kept at most PEAK_WRITE_SECONDS behind; only over the control row last read (see ``save_peak``)."""
        now = self._clock()
        if not self._persist or now - self._peak_written.get(name, -PEAK_WRITE_SECONDS) < PEAK_WRITE_SECONDS:
            return
        self._peak_written[name] = now
        recorded = self._recorded.get(name)
        if not save_peak(self._db, name, peak, control_set_at=recorded.set_at if recorded is not None else None):
            self._peaks.pop(name, None)  # the control changed meanwhile (a resume): read the peak again

    def _watch_min_equity(self, name: str, settings: RiskSettings, equity: float | None) -> None:
        problem = min_equity_problem(settings, equity)
        tripped = self._low_equity.get(name)
        if problem is not None:
            control = TargetControl(TargetMode.CLOSE_ONLY, reason=f"close-only: risk guard {problem}",
                                    set_by=MIN_EQUITY_GUARD,
                                    set_at=tripped.set_at if tripped is not None else self._wall())
            self._low_equity[name] = control  # its reason follows the equity while it lasts
            if tripped is None:
                action = f"no new copies (close-only) until the equity is back to {settings.min_equity:g}"
                logger.error("{}: risk guard {}: {}", name, problem, action)
                self._events.emit(RiskGuardTripped(target=name, guard="min_equity", reason=problem, action=action))
                if self._recorded.get(name, ACTIVE).active:
                    self._events.emit(TargetControlChanged(target=name, mode=control.mode.value,
                                                           reason=control.describe(), set_by=MIN_EQUITY_GUARD))
            return
        if tripped is None or (equity is None and settings.min_equity is not None):
            return  # not tripped, or nothing known of the equity now: it stays as it was
        del self._low_equity[name]
        why = (f"equity {equity:.2f} is back to min_equity {settings.min_equity:g}" if equity is not None
               and settings.min_equity is not None else "min_equity is no longer set")
        logger.info("{}: risk guard min_equity cleared: {}; new copies are placed again", name, why)
        self._events.emit(RiskGuardTripped(target=name, guard="min_equity", reason=why,
                                           action="new copies are placed again", cleared=True))
        if self._recorded.get(name, ACTIVE).active:
            self._events.emit(TargetControlChanged(target=name, mode=TargetMode.ACTIVE.value, reason=why,
                                                   set_by=MIN_EQUITY_GUARD))

    def _watch_volume(self, name: str, over: list[Withheld]) -> None:
        """max_total_volume holding placements back: said when it starts and when it ends, not per plan."""
        was = self._over_volume.get(name)
        if over and was is None:
            self._over_volume[name] = over[0].reason
            self._events.emit(RiskGuardTripped(target=name, guard="max_total_volume", reason=over[0].reason,
                                               action="new copies wait until the copier's lots on the account "
                                                      "leave room for them"))
        elif not over and was is not None:
            del self._over_volume[name]
            self._events.emit(RiskGuardTripped(target=name, guard="max_total_volume",
                                               reason="the copier's lots on the account leave room again",
                                               action="waiting copies are placed", cleared=True))


def _what_it_means(control: TargetControl) -> str:
    if control.mode is TargetMode.PAUSED:
        return (f"{control.describe()}; nothing is sent to it (no placements, edits, removals or closes), its copies "
                "stay as they are")
    return (f"{control.describe()}; no new copies are placed, existing ones still follow their source (edits, "
            "removals, SL/TP, closes)")
