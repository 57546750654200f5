"""``mt5-copier status`` and ``mt5-copier history``: read the coordinator's database, change nothing.

Both open ``copier.db`` read-only, so they are safe while the coordinator runs (SQLite in WAL mode lets a
reader see the last committed data while the writer carries on), and they never create, repair or move a
state file the way the coordinator does at start-up. Whether a coordinator runs is the state folder's
lock's answer (``coordinator.runtime.instance_lock``), not the age of the status rows: a stopped coordinator's
last rows are shown as the last known values, and ``status`` exits 3.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from config import AppConfig, Role, TerminalConfig
from config.exit_codes import ExitCode, StatusExitCode
from coordinator.domain.link_lifecycle import PENDING_STATUSES
from coordinator.persistence.state import DATABASE_NAME
from coordinator.persistence.status import TerminalStatus, read_status
from coordinator.runtime.instance_lock import running_coordinator_pid
from protocol.mt5 import describe_retcode

# The running coordinator rewrites the status table every second; rows this old mean it is stuck.
STALE_AFTER = 10.0
MAX_SKIPPED_SHOWN = 20

SINCE_FORMS = "a date (2026-11-24), a date and time (2026-11-24T10:00) or an age (45s, 30m, 2h, 1d)"
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def status_command(config: AppConfig, *, as_json: bool = False) -> StatusExitCode:
    """Print whether the coordinator runs and every configured terminal's health, as text or one JSON object.

    Exit code: 0 all healthy, 1 running but degraded, 3 the coordinator is not running (see ``Health``).
    """
    report = gather_status(config, time.time())
    write_out(json.dumps(status_json(report), indent=2) + "\n" if as_json else render_status(report))
    if report.state_note:
        print(report.state_note, file=sys.stderr)
    return report.exit_code


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
    state_error, state_note = None, ""
    try:
        with closing(_open_read_only(path)) as db:
            rows = {row.name: row for row in read_status(db)}
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
                         running=pid is not None, now=now)
        for terminal, enabled in configured
    )
    names = {terminal.name for terminal, _ in configured}
    terminals += tuple(_removed_report(row, links.get(row.name, (0, 0))) for row in rows.values()
                       if row.removed and row.name not in names)
    newest = max((row.updated_at for row in rows.values()), default=None)
    return StatusReport(path=path, pid=pid, terminals=terminals, newest_update=newest, state_error=state_error,
                        state_note=state_note, now=now)


def _terminal_report(terminal: TerminalConfig, configured: bool, row: TerminalStatus | None,
                     links: tuple[int, int], *, running: bool, now: float) -> TerminalReport:
    total_links, active_links = links
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
        health = Health.DEGRADED if problems else Health.HEALTHY
    return TerminalReport(config=terminal, row=row, enabled=enabled, links=total_links,
                          unmanaged_copies=unmanaged if not enabled else 0, health=health, problems=tuple(problems))


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
        problems.append(f"status not updated for {_duration(now - row.updated_at)}")
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


# ---------------------------------------------------------------------------------------------------
# status as text


def render_status(report: StatusReport) -> str:
    """The plain-text view: the coordinator, the overall health, then one block per terminal."""
    now = report.now
    lines = [f"state: {report.path}"]
    if report.running:
        lines.append(f"coordinator: running (pid {report.pid})")
        if report.health is Health.HEALTHY:
            lines.append("health: all healthy")
        else:
            reasons = [f"{t.name}: {', '.join(t.problems)}" for t in report.terminals if t.problems]
            if report.state_error is not None:
                reasons.insert(0, f"state unreadable: {report.state_error}")
            lines.append(f"health: degraded ({'; '.join(reasons)})")
    elif report.newest_update is not None:
        lines.append(f"coordinator: not running (last status update {_clock(report.newest_update, now)}, "
                     f"{_ago(now - report.newest_update)}); the values below are the last known ones")
    else:
        lines.append("coordinator: not running")
    for terminal in report.terminals:
        header = f"{terminal.role.value} {terminal.name}"
        lines += ["", f"{header}: {terminal.health}" if report.running or not terminal.enabled else header]
        lines += [f"  {line}" for line in _terminal_lines(terminal, report.running, now)]
    return "\n".join(lines) + "\n"


def _terminal_lines(terminal: TerminalReport, running: bool, now: float) -> list[str]:
    is_target = terminal.role is Role.TARGET
    row = terminal.row
    if terminal.removed:
        return [f"removed from the config; {terminal.unmanaged_copies} copies left as they are (no worker runs for "
                "it; nobody manages them)", f"links recorded: {terminal.links}"]
    if not terminal.enabled:
        return [f"disabled: no worker runs for it; copies left there unmanaged: {terminal.unmanaged_copies}",
                f"links recorded: {terminal.links}"]
    if row is None:
        return ["no status yet"] + ([f"links recorded: {terminal.links}"] if is_target else [])
    lines = [_worker_line(row, running)]
    link = _link_line(row, terminal.config is not None and terminal.config.remote, running, now)
    if link:
        lines.append(link)
    lines += [_account_line(row, terminal.expected_account, running), f"pending orders: {_count(row.pending_orders)}"]
    if is_target:
        lines.append(f"copies: {_count(row.copies)} (links recorded: {terminal.links})")
        lines.append(f"failed: {row.failed}")
        lines.append(f"orphans: {_count(row.orphans)}")
        lines.extend(f"  copy #{copy} (source #{source} is gone): {state}"
                     for copy, source, state in row.orphan_list[:MAX_SKIPPED_SHOWN])
        lines.append(f"positions: {_count(row.positions)}")
        lines.extend(f"  position #{copy} (copy of source #{source}): {state}"
                     for copy, source, state in row.position_list[:MAX_SKIPPED_SHOWN])
        lines.append(f"skipped: {len(row.skipped)}")
        lines.extend(f"  source #{ticket}: {reason}" for ticket, reason in row.skipped[:MAX_SKIPPED_SHOWN])
        if len(row.skipped) > MAX_SKIPPED_SHOWN:
            lines.append(f"  ... and {len(row.skipped) - MAX_SKIPPED_SHOWN} more")
    if not is_target:
        lines.append(f"open positions: {_count(row.positions)}")
    lines.append(f"worker restarts: {row.restarts}")
    if row.last_sync_at > 0:
        lines.append(f"last sync: {_clock(row.last_sync_at, now)} ({_ago(now - row.last_sync_at)})")
    else:
        lines.append("last sync: never")
    lines.append(f"last error: {row.last_error or 'none'}")
    return lines


def _worker_line(row: TerminalStatus, running: bool) -> str:
    if not running:
        return "worker: not running (no coordinator)"
    if not row.online:
        return "worker: offline; terminal: unknown"
    if row.terminal_reachable is None:
        return "worker: online; terminal: unknown"
    if not row.terminal_reachable:
        return "worker: online; terminal: unreachable"
    broker = {None: "broker connection unknown", True: "connected to its broker",
              False: "not connected to its broker"}[row.connected]
    return f"worker: online; terminal: reachable, {broker}"


def _link_line(row: TerminalStatus, remote: bool, running: bool, now: float) -> str:
    """Its worker process and its link, once a worker said hello ("" before): which process on which machine,
    connected since when, last heard from when, and how often it reconnected."""
    if row.worker_pid is None and not row.host:
        return ""
    parts = [f"{'remote worker' if remote else 'worker process'}: pid {_count(row.worker_pid)} on "
             f"{row.host or 'an unknown host'}, version {row.worker_version or 'unknown'}"]
    if running and row.online and row.connected_since is not None:
        parts.append(f"connected since {_clock(row.connected_since, now)} ({_duration(now - row.connected_since)})")
    if row.last_seen is not None:
        parts.append(f"last seen {_clock(row.last_seen, now)} ({_ago(now - row.last_seen)})")
    parts.append(f"reconnects: {row.reconnects}")
    return "; ".join(parts)


def _account_line(row: TerminalStatus, expected: str, running: bool) -> str:
    shown = row.account or "unknown"
    if running and row.account_ok is True:
        return f"account: {shown} (as configured)"
    if running and row.account_ok is False:
        return f"account: {shown} (WRONG ACCOUNT: expected {expected})"
    return f"account: {shown} (expected {expected})"


def _count(value: int | None) -> str:
    return "unknown" if value is None else str(value)


# ---------------------------------------------------------------------------------------------------
# status as JSON


def status_json(report: StatusReport) -> dict[str, Any]:
    """One object for scripts and health checks; None (null) is "unknown", never 0 or false."""
    return {
        "coordinator": {
            "running": report.running,
            "pid": report.pid,
            "state": str(report.path),
            "state_error": report.state_error,
            "status_updated_at": _iso(report.newest_update),
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
        "worker_pid": row.worker_pid if row else None,
        "worker_host": (row.host or None) if row else None,
        "worker_version": (row.worker_version or None) if row else None,
        "connected_since": _iso(live.connected_since) if live and live.online else None,
        "last_seen": _iso(row.last_seen) if row else None,
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
        "last_sync_at": _iso(row.last_sync_at) if row and row.last_sync_at > 0 else None,
        "last_error": (row.last_error or None) if row else None,
        "skipped": [{"source_ticket": ticket, "reason": reason} for ticket, reason in row.skipped] if row else [],
        "orphan_list": [{"copy_ticket": copy, "source_ticket": source, "state": state}
                        for copy, source, state in row.orphan_list] if row else [],
        "positions": row.positions if row else None,
        "position_list": [{"copy_ticket": copy, "source_ticket": source, "state": state}
                          for copy, source, state in row.position_list] if row else [],
        "updated_at": _iso(row.updated_at) if row else None,
    }


def _iso(at: float | None) -> str | None:
    """Local time with its UTC offset, to the second: readable, and exact for a script."""
    return None if at is None else datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def write_out(text: str) -> None:
    """Print ``text``; a reader that went away (``status | head``) ends the output quietly.

    Python's documented recipe for SIGPIPE (signal module docs): stdout is pointed at devnull so the
    interpreter's final flush does not fail again with a traceback.
    """
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # no file descriptor behind stdout (an embedding, a test capture)
            pass


def history_command(config: AppConfig, *, target: str | None, since: str | None, limit: int) -> ExitCode:
    """Print the copier's events, newest first; CONFIG_ERROR for an unknown target, a bad ``since`` or
    ``limit``, FATAL when there is no state to read or it cannot be read."""
    if target is not None:
        try:
            config.target(target)
        except KeyError as e:
            return _usage(str(e.args[0]))
    now = time.time()
    since_at = 0.0
    if since is not None:
        try:
            since_at = parse_since(since, now)
        except ValueError as e:
            return _usage(str(e))
    if limit < 1:
        return _usage(f"--limit must be at least 1, got {limit}")

    path = state_path(config)
    query = ("SELECT at, target, source_ticket, copy_ticket, action, outcome, retcode, message FROM events"
             " WHERE at >= ?")
    parameters: list[object] = [since_at]
    if target is not None:
        query += " AND target = ?"
        parameters.append(target)
    query += " ORDER BY at DESC, id DESC LIMIT ?"
    parameters.append(limit)
    try:
        with closing(_open_read_only(path)) as db:
            events = db.execute(query, parameters).fetchall()
    except FileNotFoundError:
        return _no_state(path)
    except sqlite3.DatabaseError as e:
        return _unreadable(path, e)

    if not events:
        scope = f" for {target}" if target is not None else ""
        after = f" since {_clock(since_at, now)}" if since is not None else ""
        write_out(f"no events{scope}{after}\n")
    else:
        write_out("".join(f"{_event_line(*event)}\n" for event in events))
    return ExitCode.OK


def parse_since(text: str, now: float) -> float:
    """The unix time ``text`` stands for: an ISO date or date-time (local time unless it names its offset),
    or an age before ``now`` such as ``30m``. ValueError naming the accepted forms otherwise."""
    value = text.strip()
    age = _AGE.fullmatch(value.lower())
    if age is not None:
        return now - float(age[1]) * _SECONDS_PER_UNIT[age[2]]
    if value[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not read the UTC designator
        value = value[:-1] + "+00:00"
    try:
        # A naive date-time is local time: .timestamp() reads it so.
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise ValueError(f"--since: cannot read {text!r}; use {SINCE_FORMS}") from None


def state_path(config: AppConfig) -> Path:
    """Where the coordinator keeps its database for this config."""
    return config.coordinator.state_dir / DATABASE_NAME


def _open_read_only(path: Path) -> sqlite3.Connection:
    # mode=ro would fail on a missing file anyway, but with a message that does not say what to do.
    if not path.is_file():
        raise FileNotFoundError(path)
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5.0)
    db.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # a file that is not a database fails here, not later
    return db


def _event_line(at: float, target: str, source_ticket: int, copy_ticket: int, action: str, outcome: str,
                retcode: int, message: str) -> str:
    parts = [datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S"), target, action, outcome]
    parts.append(f"source #{source_ticket}" + (f" -> #{copy_ticket}" if copy_ticket else ""))
    if retcode:
        parts.append(f"retcode {retcode} ({describe_retcode(retcode)})")
    if message:
        parts.append(message)
    return "  ".join(parts)


def _clock(at: float, now: float) -> str:
    """Local time of day, with the date when it is not today."""
    moment = datetime.fromtimestamp(at)
    same_day = moment.date() == datetime.fromtimestamp(now).date()
    return moment.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")


def _ago(seconds: float) -> str:
    return f"{_duration(seconds)} ago"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _no_state(path: Path) -> ExitCode:
    # The README's 1 is "sync incomplete"; nothing to read is the command failing, as for an unreadable state.
    print(f"no state yet at {path}: the copier has not run with this config", file=sys.stderr)
    return ExitCode.FATAL


def _unreadable(path: Path, error: sqlite3.DatabaseError) -> ExitCode:
    print(f"cannot read the state at {path}: {error}", file=sys.stderr)
    return ExitCode.FATAL


def _usage(message: str) -> ExitCode:
    # A wrong argument is the command line's configuration error: fixing it, not retrying, helps (argparse
    # exits 2 for its own usage errors too).
    print(message, file=sys.stderr)
    return ExitCode.CONFIG_ERROR
