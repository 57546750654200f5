"""``mt5-copier status`` and ``mt5-copier history``: read the coordinator's database, change nothing.

Both open ``copier.db`` read-only, so they are safe while the coordinator runs (SQLite in WAL mode lets a
reader see the last committed data while the writer carries on), and they never create, repair or move a
state file the way the coordinator does at start-up. Whether a coordinator runs is the state folder's
lock's answer (``coordinator.runtime.instance_lock``), not the age of the status rows: a stopped coordinator's
last rows are shown as the last known values, and ``status`` exits 3. What ``status`` reports is gathered in
``coordinator/runtime/status_report.py`` (the running coordinator's status page serves the same); this module
words it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

from config import AppConfig, Role
from config.exit_codes import ExitCode, StatusExitCode
from coordinator.domain.controls import TargetMode
from coordinator.domain.filters import describe_counts
from coordinator.domain.latency import CopyStages
from coordinator.persistence.state import Event, read_events
from coordinator.persistence.status import TerminalStatus
from coordinator.runtime.status_report import (
    Health,
    StatusReport,
    TerminalReport,
    duration_text,
    gather_status,
    open_read_only,
    state_path,
    status_json,
)
from protocol.mt5 import describe_retcode

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


# ---------------------------------------------------------------------------------------------------
# status as text


def render_status(report: StatusReport) -> str:
    """The plain-text view: the coordinator, the overall health, then one block per terminal."""
    now = report.now
    lines = [f"state: {report.path}"]
    if report.running:
        lines.append(f"coordinator: running (pid {report.pid})")
        if report.schedule_row is not None:  # copying only at the boundaries of [coordinator] schedule
            row = report.schedule_row
            lines.append(f"schedule: {row.schedule}; next run {_next_run(row.next_run, now)}")
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
        if not terminal.control.active:  # paused, close-only, a tripped risk guard: said first, plainly
            lines.append(f"  {_control_line(terminal, report.running)}")
        lines += [f"  {line}" for line in _terminal_lines(terminal, report.running, now)]
    return "\n".join(lines) + "\n"


def _control_line(terminal: TerminalReport, running: bool) -> str:
    control = terminal.control
    if control.mode is TargetMode.PAUSED:
        effect = "nothing is sent to it, its copies stay as they are"
    else:
        effect = "no new copies, existing ones still follow their source"
    ends = "it ends when the equity is back" if control.set_by == "guard:min_equity" else \
        f"`mt5-copier resume --config FILE --target {terminal.name}` ends it"
    when = "" if running else "; in force from the coordinator's next start"
    return f"{control.mode.words.upper()}: {control.describe()}: {effect}; {ends}{when}"


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
        if row.left_out:  # counted, not listed: a filter may leave out most of the source's orders on purpose
            lines.append(f"left out by filter: {describe_counts(dict(row.left_out))}")
    if not is_target:
        lines.append(f"open positions: {_count(row.positions)}")
    lines.append(f"worker restarts: {row.restarts}")
    if row.last_sync_at > 0:
        lines.append(f"last sync: {_clock(row.last_sync_at, now)} ({_ago(now - row.last_sync_at)})")
    else:
        lines.append("last sync: never")
    if is_target and running and row.schedule:
        lines.append(f"next run: {_next_run(row.next_run, now)}")
    lines.append(f"last error: {row.last_error or 'none'}")
    return lines


def _next_run(at: float | None, now: float) -> str:
    """When a scheduled run is: to come, under way (its boundary passed, its sync not finished), or not known."""
    if at is None:
        return "not known yet (waiting for the source's server clock to place the boundaries)"
    if at <= now:
        return f"under way (the run of {_clock(at, now)})"
    return f"{_clock(at, now)} (in {duration_text(at - now)})"


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
        parts.append(f"connected since {_clock(row.connected_since, now)} ({duration_text(now - row.connected_since)})")
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
    try:
        with closing(open_read_only(path)) as db:
            events = read_events(db, target, since_at, limit)
    except FileNotFoundError:
        return _no_state(path)
    except sqlite3.DatabaseError as e:
        return _unreadable(path, e)

    if not events:
        scope = f" for {target}" if target is not None else ""
        after = f" since {_clock(since_at, now)}" if since is not None else ""
        write_out(f"no events{scope}{after}\n")
    else:
        write_out("".join(f"{_event_line(event)}\n" for event in events))
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


def _event_line(event: Event) -> str:
    parts = [datetime.fromtimestamp(event.at).strftime("%Y-%m-%d %H:%M:%S"), event.target, event.action,
             event.outcome]
    if event.source_ticket or event.copy_ticket:  # a target's control or risk guard concerns no order
        parts.append(f"source #{event.source_ticket}" + (f" -> #{event.copy_ticket}" if event.copy_ticket else ""))
    if event.retcode:
        parts.append(f"retcode {event.retcode} ({describe_retcode(event.retcode)})")
    if event.message:
        parts.append(event.message)
    stages = CopyStages.from_json(event.stages)
    if stages is not None:
        parts.append(stages.describe())
    return "  ".join(parts)


def _clock(at: float, now: float) -> str:
    """Local time of day, with the date when it is not today."""
    moment = datetime.fromtimestamp(at)
    same_day = moment.date() == datetime.fromtimestamp(now).date()
    return moment.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")


def _ago(seconds: float) -> str:
    return f"{duration_text(seconds)} ago"


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
