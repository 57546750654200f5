"""What ``mt5-copier status`` reports, gathered from the state folder: whether a coordinator runs, and each
terminal's last status row and health. The same report serves ``status --json`` and the running coordinator's
``/api/status`` (coordinator/runtime/web.py), so the two can never say different things.

It reads ``copier.db`` read-only, so it is safe while the coordinator runs (SQLite in WAL mode lets a reader
see the last committed data while the writer carries on), and never creates, repairs or moves a state file
the way the coordinator does at start-up. Whether a coordinator runs is the state folder's lock's answer
(``instance_lock``), not the age of the status rows: a stopped coordinator's last rows are the last known
values.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from config import AppConfig, Role, TerminalConfig
from config.exit_codes import StatusExitCode
from coordinator.domain.controls import ACTIVE, TargetControl, TargetMode
from coordinator.domain.link_lifecycle import PENDING_STATUSES
from coordinator.persistence.controls import read_controls
from coordinator.persistence.state import DATABASE_NAME
from coordinator.persistence.status import TerminalStatus, read_status
from coordinator.runtime.instance_lock import running_coordinator_pid

# The running coordinator rewrites the status table every second; rows this old mean it is stuck.
STALE_AFTER = 10.0


class Health(str, Enum):
    """A terminal's health, and the copier's as a whole (the worst of its enabled terminals)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"  # running, but a worker, terminal, broker link, account or copy is not right
    DISABLED = "disabled"  # a target with enabled = false: nothing runs for it
    REMOVED = "removed"  # a target a reload removed from the config: nothing runs for it, its copies stay
    NOT_RUNNING = "not running"  # no coordinator holds the state folder

    def __str__(self) -> str:
        return self.value


_EXIT_CODES = {Health.HEALTHY: StatusExitCode.HEALTHY, Health.DEGRADED: StatusExitCode.DEGRADED,
               Health.NOT_RUNNING: StatusExitCode.NOT_RUNNING}


@dataclass(frozen=True, slots=True)
class TerminalReport:
    """One configured terminal (or one a reload removed from the running coordinator's config): its last status
    row (None: none yet) and what it means for its health."""

    config: TerminalConfig | None  # None: removed from the config (only its status row is left)
    row: TerminalStatus | None
    enabled: bool
    links: int  # links recorded in the state for it (targets)
    unmanaged_copies: int  # a disabled or removed target: copies left there (the row's count, else the active links)
    health: Health
    problems: tuple[str, ...]  # why it is degraded, in words
    # The mode in force on a target (pause, close-only, a tripped risk guard): the running coordinator's row,
    # else what is recorded for its next start. An operator's pause is not a problem; a tripped guard is one.
    control: TargetControl = ACTIVE

    @property
    def name(self) -> str:
        return self.config.name if self.config is not None else self.row.name if self.row is not None else ""

    @property
    def role(self) -> Role:
        return self.config.role if self.config is not None else Role.TARGET

    @property
    def removed(self) -> bool:
        return self.health is Health.REMOVED

    @property
    def expected_account(self) -> str:
        return f"{self.config.login}@{self.config.server}" if self.config is not None else ""


@dataclass(frozen=True, slots=True)
class StatusReport:
    path: Path  # the state database
    pid: int | None  # the live coordinator holding the state folder; None: not running
    terminals: tuple[TerminalReport, ...]
    newest_update: float | None  # the newest row's time; None: no row
    state_error: str | None  # why the state could not be read
    state_note: str  # said on stderr: why there is nothing to show (no state yet, unreadable)
    now: float

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def schedule_row(self) -> TerminalStatus | None:
        """The running coordinator's source row when it copies on a schedule: its words and next run."""
        rows = [t.row for t in self.terminals if t.role is Role.SOURCE and t.row is not None]
        return rows[0] if self.running and rows and rows[0].schedule else None

    @property
    def health(self) -> Health:
        if not self.running:
            return Health.NOT_RUNNING
        degraded = self.state_error is not None or any(t.health is Health.DEGRADED for t in self.terminals)
        return Health.DEGRADED if degraded else Health.HEALTHY

    @property
    def exit_code(self) -> StatusExitCode:
        return _EXIT_CODES[self.health]


def gather_status(config: AppConfig, now: float) -> StatusReport:
    """Everything ``status`` shows: the lock says whether a coordinator runs, the database what it last saw."""
    path = state_path(config)
    pid = running_coordinator_pid(config.coordinator.state_dir)
    rows: dict[str, TerminalStatus] = {}
    links: dict[str, tuple[int, int]] = {}
    controls: dict[str, TargetControl] = {}
    state_error, state_note = None, ""
    try:
        with closing(open_read_only(path)) as db:
            rows = {row.name: row for row in read_status(db)}
            controls = read_controls(db)
            pending = ", ".join(f"'{status.value}'" for status in sorted(PENDING_STATUSES))
            links = {target: (total, active or 0) for target, total, active in db.execute(
                f"SELECT target, COUNT(*), SUM(status IN ({pending})) FROM links GROUP BY target")}
    except FileNotFoundError:
        state_note = f"no state yet at {path}: the copier has not run with this config"
    except sqlite3.DatabaseError as e:
        state_error = str(e)
        state_note = f"cannot read the state at {path}: {e}"
    configured = [(config.source, True)] + [(target.terminal, target.copy.enabled) for target in config.targets]
    terminals = tuple(
        _terminal_report(terminal, enabled, rows.get(terminal.name), links.get(terminal.name, (0, 0)),
                         running=pid is not None, now=now, recorded=controls.get(terminal.name))
        for terminal, enabled in configured
    )
    names = {terminal.name for terminal, _ in configured}
    terminals += tuple(_removed_report(row, links.get(row.name, (0, 0))) for row in rows.values()
                       if row.removed and row.name not in names)
    newest = max((row.updated_at for row in rows.values()), default=None)
    return StatusReport(path=path, pid=pid, terminals=terminals, newest_update=newest, state_error=state_error,
                        state_note=state_note, now=now)


def _terminal_report(terminal: TerminalConfig, configured: bool, row: TerminalStatus | None,
                     links: tuple[int, int], *, running: bool, now: float,
                     recorded: TargetControl | None = None) -> TerminalReport:
    total_links, active_links = links
    control = _control(row, recorded, running) if terminal.role is Role.TARGET else ACTIVE
    # A running coordinator's row says what it does (it may run an older config); otherwise the config says it.
    enabled = row.enabled if row is not None and running else configured
    unmanaged = row.unmanaged_copies if row is not None and not row.enabled else active_links
    problems: list[str] = []
    if not enabled and row is not None and row.removed and running:
        health = Health.REMOVED  # back in the file, not reloaded yet
    elif not enabled:
        health = Health.DISABLED
    elif not running:
        health = Health.NOT_RUNNING
    else:
        problems = _problems(terminal, row, now)
        if control.by_guard:  # it needs a person (or, for min_equity, the equity back): a pause by one does not
            problems.append(control.describe())
        health = Health.DEGRADED if problems else Health.HEALTHY
    return TerminalReport(config=terminal, row=row, enabled=enabled, links=total_links,
                          unmanaged_copies=unmanaged if not enabled else 0, health=health, problems=tuple(problems),
                          control=control)


def _control(row: TerminalStatus | None, recorded: TargetControl | None, running: bool) -> TargetControl:
    """What is in force on a target: a running coordinator's row says (with a guard's close-only that is not
    recorded, min_equity's); otherwise what is recorded holds from its next start."""
    if not running or row is None:
        return recorded or ACTIVE
    try:
        mode = TargetMode(row.control_mode)
    except ValueError:
        mode = TargetMode.PAUSED  # written by a newer copier: shown as the stricter mode
    return TargetControl(mode, reason=row.control_reason, set_by=row.control_set_by, set_at=row.control_since or 0.0)


def _removed_report(row: TerminalStatus, links: tuple[int, int]) -> TerminalReport:
    """A target a reload removed from the config: its row says how many copies were left there."""
    return TerminalReport(config=None, row=row, enabled=False, links=links[0], unmanaged_copies=row.unmanaged_copies,
                          health=Health.REMOVED, problems=())


def _problems(terminal: TerminalConfig, row: TerminalStatus | None, now: float) -> list[str]:
    """Why an enabled terminal of a running coordinator is not healthy; empty when it is.

    Unknown is not healthy: a health check must not pass on facts nobody has seen yet.
    """
    if row is None:
        return ["no status yet"]
    problems = []
    if now - row.updated_at > STALE_AFTER:
        problems.append(f"status not updated for {duration_text(now - row.updated_at)}")
    if not row.online:
        problems.append("worker offline")
    elif row.terminal_reachable is None:
        problems.append("terminal reachability unknown")
    elif not row.terminal_reachable:
        problems.append("terminal unreachable")
    elif row.connected is None:
        problems.append("broker connection unknown")
    elif not row.connected:
        problems.append("terminal not connected to its broker")
    expected = f"{terminal.login}@{terminal.server}"
    if row.online and row.account_ok is False:
        problems.append(f"wrong account {row.account or '(not reported)'}, expected {expected}")
    elif row.online and row.terminal_reachable and row.account_ok is None:
        problems.append("account not confirmed yet")
    if row.failed:
        problems.append(f"{row.failed} failed {'copy' if row.failed == 1 else 'copies'}")
    return problems


def status_json(report: StatusReport) -> dict[str, Any]:
    """One object for scripts and health checks; None (null) is "unknown", never 0 or false."""
    schedule_row = report.schedule_row
    return {
        "coordinator": {
            "running": report.running,
            "pid": report.pid,
            "state": str(report.path),
            "state_error": report.state_error,
            "status_updated_at": iso_time(report.newest_update),
            # [coordinator] schedule as the running coordinator applies it (null: live, or not running).
            "schedule": schedule_row.schedule if schedule_row else None,
            "next_run": iso_time(schedule_row.next_run) if schedule_row else None,
        },
        "health": report.health.value,
        "exit_code": int(report.exit_code),
        "terminals": [_terminal_json(terminal, report.running) for terminal in report.terminals],
    }


def _terminal_json(terminal: TerminalReport, running: bool) -> dict[str, Any]:
    row = terminal.row if terminal.enabled else None
    live = row if running else None  # what a worker says now: unknown when no coordinator runs
    is_target = terminal.role is Role.TARGET

    def target_count(value: int | None) -> int | None:
        return value if is_target else None

    return {
        "name": terminal.name,
        "role": terminal.role.value,
        "enabled": terminal.enabled,
        "removed": terminal.removed,
        "remote": terminal.config.remote if terminal.config is not None else None,
        "health": terminal.health.value,
        "problems": list(terminal.problems),
        "control_mode": terminal.control.mode.value if is_target else None,
        "control_reason": (terminal.control.reason or None) if is_target else None,
        "control_set_by": (terminal.control.set_by or None) if is_target else None,
        "control_since": iso_time(terminal.control.set_at or None) if is_target else None,
        # When it is next copied to under [coordinator] schedule (null: live, or the boundaries not placed yet).
        "next_run": iso_time(live.next_run) if live and is_target else None,
        "worker_pid": row.worker_pid if row else None,
        "worker_host": (row.host or None) if row else None,
        "worker_version": (row.worker_version or None) if row else None,
        "connected_since": iso_time(live.connected_since) if live and live.online else None,
        "last_seen": iso_time(row.last_seen) if row else None,
        "reconnects": row.reconnects if row else None,
        "worker_online": live.online if live else (False if not running and terminal.enabled else None),
        "terminal_reachable": live.terminal_reachable if live else None,
        "broker_connected": live.connected if live else None,
        "account": (row.account or None) if row else None,
        "expected_account": terminal.expected_account or None,
        "account_ok": live.account_ok if live else None,
        "pending_orders": row.pending_orders if row else None,
        "copies": target_count(row.copies) if row else None,
        "orphans": target_count(row.orphans) if row else None,
        "failed": target_count(row.failed) if row else None,
        "unmanaged_copies": terminal.unmanaged_copies if is_target else None,
        "links_recorded": terminal.links if is_target else None,
        "restarts": row.restarts if row else None,
        "last_sync_at": iso_time(row.last_sync_at) if row and row.last_sync_at > 0 else None,
        "last_error": (row.last_error or None) if row else None,
        "skipped": [{"source_ticket": ticket, "reason": reason} for ticket, reason in row.skipped] if row else [],
        # Per key of [targets.filter], how many source orders it left out (each under the first key that excludes it).
        "left_out_by_filter": dict(row.left_out) if row and is_target else None,
        "orphan_list": [{"copy_ticket": copy, "source_ticket": source, "state": state}
                        for copy, source, state in row.orphan_list] if row else [],
        "positions": row.positions if row else None,
        "position_list": [{"copy_ticket": copy, "source_ticket": source, "state": state}
                          for copy, source, state in row.position_list] if row else [],
        "updated_at": iso_time(row.updated_at) if row else None,
    }


def iso_time(at: float | None) -> str | None:
    """Local time with its UTC offset, to the second: readable, and exact for a script."""
    return None if at is None else datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def state_path(config: AppConfig) -> Path:
    """Where the coordinator keeps its database for this config."""
    return config.coordinator.state_dir / DATABASE_NAME


def open_read_only(path: Path) -> sqlite3.Connection:
    # mode=ro would fail on a missing file anyway, but with a message that does not say what to do.
    if not path.is_file():
        raise FileNotFoundError(path)
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5.0)
    db.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # a file that is not a database fails here, not later
    return db


def duration_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
