"""The status board's rows, worked out from what the coordinator knows of each terminal, and written for
``mt5-copier status``: the projection has no say in copying and copying none in how status reads. Unknown
is ``None``, never 0."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from loguru import logger

from config import AppConfig, TargetConfig
from coordinator.domain.controls import TargetControl, Withheld
from coordinator.domain.filters import filter_counts
from coordinator.domain.planner import TargetPlan, our_copies
from coordinator.domain.report import TargetReport
from coordinator.persistence.state import StateStore
from coordinator.persistence.status import StatusBoard, TerminalStatus
from coordinator.runtime.orphan_watch import OrphanWatch
from coordinator.runtime.schedule_gate import ScheduleGate
from coordinator.runtime.sessions import WorkerSessions, now_ms
from coordinator.runtime.target_controls import TargetControls
from coordinator.runtime.views import TerminalView
from protocol import PendingOrder, Snapshot


class StatusPublisher:
    """Writes every terminal's row to the status board (another process reads it)."""

    def __init__(self, config: AppConfig, sessions: WorkerSessions, reports: Mapping[str, TargetReport],
                 orphans: OrphanWatch, state: StateStore, clock: Callable[[], float], *,
                 removed: Collection[str] = (), wall_ms: Callable[[], int] = now_ms,
                 controls: TargetControls | None = None, schedule: ScheduleGate | None = None) -> None:
        """``removed``: the targets a reload removed from the config (read at every publish); ``controls``: the
        mode in force on each target, and what it holds back; ``schedule``: the next scheduled run, and what waits
        for it."""
        self._config = config
        self._sessions = sessions
        self._reports = reports
        self._orphans = orphans
        self._state = state
        self._clock = clock
        self._removed = removed
        self._wall_ms = wall_ms
        self._controls = controls
        self._schedule = schedule
        self._board = StatusBoard(state.connection)

    def use_config(self, config: AppConfig) -> None:
        """A reload: the disabled targets are those of ``config`` from now on."""
        self._config = config

    def publish(self, *, final: bool = False) -> None:
        """``final``: the coordinator is stopping; the counts its workers last reported stay readable as the
        last known ones."""
        try:
            self._board.write(self.rows(final=final))
        except Exception as e:  # status is for people; it must never stop copying
            logger.warning("could not write the status table: {}", e)

    def rows(self, *, final: bool = False) -> list[TerminalStatus]:
        """One row per terminal: the enabled ones from what their workers report, the disabled and the removed
        from the state."""
        running = [self._sessions.source, *self._sessions.targets.values()]
        rows = [self._row(view, final=final) for view in running]
        rows += [disabled_row(target, self._state.pending_copies(target.name), self._control(target.name))
                 for target in self._config.targets if not target.copy.enabled]
        return rows + [removed_row(name, self._state.pending_copies(name)) for name in self._removed]

    def _row(self, view: TerminalView, *, final: bool) -> TerminalStatus:
        report = self._reports.get(view.name)
        plan = report.last_plan if report else None
        orphans: list[tuple[int, int, str]] = []
        positions: list[tuple[int, int, str]] = []
        if plan is not None and view.target is not None:
            max_checks, preserved = self._orphans.max_checks(view.name), self._orphans.preserved(view.name)
            orphans = orphan_states(plan.orphans, self._orphans.counts(view.name), max_checks, preserved)
            positions = position_states(plan, self._sessions.source.snapshot,
                                        self._orphans.position_counts(view.name), max_checks, preserved)
        now = self._clock()
        last_seen = self._wall_ms() / 1000 - (now - view.last_seen) if view.last_seen > 0 else None
        is_source = view is self._sessions.source
        held = (self._controls.held(view.name) if self._controls and not is_source else ()) + \
            (self._schedule.held(view.name) if self._schedule and not is_source else ())
        row = terminal_row(view, is_source=is_source, report=report, orphans=orphans,
                           talking=self._sessions.talking(view, now), final=final, positions=positions,
                           last_seen=last_seen, control=None if is_source else self._control(view.name), held=held)
        if self._schedule is None or not self._schedule.active:
            return row
        return replace(row, schedule=self._schedule.describe(), next_run=self._schedule.next_run(view.name))

    def _control(self, name: str) -> TargetControl | None:
        return self._controls.control(name) if self._controls is not None else None


def orphan_states(plan_orphans: Sequence[PendingOrder], counts: Mapping[int, int], max_checks: int,
                  preserved: set[int]) -> list[tuple[int, int, str]]:
    """(copy ticket, source ticket, what is happening to it) of each orphan on a target."""
    states = []
    for copy in plan_orphans:
        count = counts.get(copy.ticket, 0)
        if copy.ticket in preserved:
            state = "kept: a person decides"
        elif count >= max_checks:
            state = "being removed"
        else:
            state = f"confirming ({count} of {max_checks} checks)"
        states.append((copy.ticket, copy.magic, state))
    return states


def position_states(plan: TargetPlan, source: Snapshot | None, counts: Mapping[int, int],
                    max_checks: int, preserved: set[int]) -> list[tuple[int, int, str]]:
    """(copy position ticket, source ticket, what is happening to it) of each copy position on a target."""
    open_sources = {position.identifier: position for position in source.positions} if source else {}
    pending = {order.ticket for order in source.orders} if source else set()
    orphaned = {copy.ticket for copy in plan.position_orphans}
    states = []
    for source_ticket, copy_ticket in sorted(plan.followed_positions.items()):
        if plan.positions_not_followed:
            state = f"not followed: {plan.positions_not_followed}"
        elif source_ticket in open_sources:
            state = f"following source position #{source_ticket} ({open_sources[source_ticket].volume:g} lots)"
        elif source_ticket in pending:
            state = "filled before its source order: SL/TP follow the order"
        elif copy_ticket in preserved:
            state = "source closed; kept (on_source_close = keep)"
        elif copy_ticket in orphaned and counts.get(copy_ticket, 0) >= max_checks:
            state = "source closed: closing"
        elif copy_ticket in orphaned:
            state = f"source not found: confirming ({counts.get(copy_ticket, 0)} of {max_checks} checks)"
        else:
            state = "following"
        states.append((copy_ticket, source_ticket, state))
    return states


def terminal_row(view: TerminalView, *, is_source: bool, report: TargetReport | None,
                 orphans: list[tuple[int, int, str]], talking: bool, final: bool = False,
                 positions: list[tuple[int, int, str]] | None = None, last_seen: float | None = None,
                 control: TargetControl | None = None, held: Sequence[Withheld] = ()) -> TerminalStatus:
    """``talking``: the worker was heard from lately (a worker that talks but cannot reach its terminal is online,
    its terminal unreachable). ``final``: the coordinator is stopping; the last counts stay as the last known.
    ``last_seen``: unix time of the worker's last message (None: never heard from). ``control``: the mode in force
    on a target (None: active), ``held``: what it holds back (shown as waiting, with why)."""
    snapshot = view.snapshot if view.online or final else None
    plan = report.last_plan if report else None
    skipped: list[tuple[int, str]] = []
    last_error = view.last_error
    if report is not None:
        skipped = [(skip.source_ticket, f"{skip.reason.value}{': ' + skip.detail if skip.detail else ''}")
                   for skip in (plan.skips if plan else [])]
        skipped += [(ticket, f"failed: {failure.message}") for ticket, failure in report.failures.items()]
        skipped += list(plan.kept_out) if plan else []
        skipped += [(item.action.source_ticket, item.describe()) for item in held]
        last_error = report.unavailable or last_error
    return TerminalStatus(
        name=view.name,
        role=view.config.role.value,
        online=talking,
        terminal_reachable=(view.welcomed and view.terminal_link_ok) if talking else None,
        connected=snapshot.connected if snapshot is not None else None,
        account=view.account,
        account_ok=(not view.account_problem) if view.account else None,
        pending_orders=len(snapshot.orders) if snapshot is not None else None,
        copies=0 if is_source else (len(our_copies(snapshot.orders)[0]) if snapshot is not None else None),
        orphans=0 if is_source else (len(plan.orphans) if plan is not None and snapshot is not None else None),
        failed=len(report.failures) if report is not None else 0,
        restarts=view.restarts,
        skipped=tuple(skipped),
        left_out=tuple(filter_counts(plan.left_out_by_filter.values()).items()) if plan is not None else (),
        orphan_list=tuple(orphans),
        positions=(len(snapshot.positions) if is_source else len(positions or ())) if snapshot is not None else None,
        position_list=tuple(positions or ()),
        host=view.hello.host if view.hello is not None else "",
        worker_version=view.hello.worker_version if view.hello is not None else "",
        worker_pid=view.hello.pid if view.hello is not None else None,
        connected_since=view.connected_since if talking and view.welcomed and view.connected_since else None,
        last_seen=last_seen,
        reconnects=view.reconnects,
        **control_columns(control),
        last_sync_at=view.last_sync_at,
        last_error=last_error,
        updated_at=time.time(),
    )


def control_columns(control: TargetControl | None) -> dict[str, Any]:
    """The status board's control columns for ``control`` (None: active, as the source always is)."""
    if control is None or control.active:
        return {"control_mode": "active", "control_reason": "", "control_set_by": "", "control_since": None}
    return {"control_mode": control.mode.value, "control_reason": control.reason,
            "control_set_by": control.set_by, "control_since": control.set_at or None}


def disabled_row(target: TargetConfig, unmanaged_copies: int, control: TargetControl | None = None) -> TerminalStatus:
    """A disabled target has no worker: what is known is what the state recorded of its copies (and a pause
    recorded for it, which holds once it is enabled again)."""
    return TerminalStatus(
        name=target.name, role=target.terminal.role.value, enabled=False, online=False, terminal_reachable=None,
        connected=None, pending_orders=None, copies=None, orphans=None, unmanaged_copies=unmanaged_copies,
        skipped=(), last_sync_at=0.0, updated_at=time.time(), **control_columns(control),
        last_error=f"disabled: {unmanaged_copies} copies left there unmanaged" if unmanaged_copies else "",
    )


def removed_row(name: str, unmanaged_copies: int) -> TerminalStatus:
    """A target a reload removed from the config: no worker runs for it; its copies stay as they are."""
    return TerminalStatus(
        name=name, role="target", enabled=False, removed=True, online=False, terminal_reachable=None,
        connected=None, pending_orders=None, copies=None, orphans=None, unmanaged_copies=unmanaged_copies,
        skipped=(), last_sync_at=0.0, updated_at=time.time(),
        last_error=f"removed from the config; {unmanaged_copies} copies left as they are",
    )
