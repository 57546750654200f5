"""``mt5-copier status`` and ``mt5-copier history``: read the coordinator's database, change nothing.

Both open ``copier.db`` read-only, so they are safe while the coordinator runs (SQLite in WAL mode lets a
reader see the last committed data while the writer carries on), and they never create, repair or move a
state file the way the coordinator does at start-up.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

from config import AppConfig, Role, TerminalConfig
from coordinator.retcodes import describe
from coordinator.state import DATABASE_NAME
from coordinator.status import TerminalStatus, read_status

# The CLI's exit codes (coordinator/cli.py), as these commands use them.
EXIT_OK, EXIT_NO_STATE, EXIT_USAGE, EXIT_UNREADABLE = 0, 1, 2, 3

# The coordinator rewrites the status table every few seconds while it runs; older rows mean it stopped.
STALE_AFTER = 10.0
MAX_SKIPPED_SHOWN = 20

SINCE_FORMS = "a date (2026-11-24), a date and time (2026-11-24T10:00) or an age (45s, 30m, 2h, 1d)"
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def status_command(config: AppConfig) -> int:
    """Print every configured terminal's last known status; 1 when the copier never ran with this config."""
    path = state_path(config)
    try:
        with closing(_open_read_only(path)) as db:
            rows = {row.name: row for row in read_status(db)}
            links = dict(db.execute("SELECT target, COUNT(*) FROM links GROUP BY target").fetchall())
    except FileNotFoundError:
        return _no_state(path)
    except sqlite3.DatabaseError as e:
        return _unreadable(path, e)

    now = time.time()
    print(f"state: {path}")
    if not rows:
        print("no status recorded yet: the coordinator writes it while it runs")
    else:
        newest = max(row.updated_at for row in rows.values())
        if now - newest > STALE_AFTER:
            print(f"coordinator not running (last update {_clock(newest, now)}, {_ago(now - newest)}); "
                  "the values below are the last known ones")
    for terminal in config.terminals():
        print()
        print(f"{terminal.role.value} {terminal.name}")
        for line in _terminal_lines(terminal, rows.get(terminal.name), links.get(terminal.name, 0), now):
            print(f"  {line}")
    return EXIT_OK


def history_command(config: AppConfig, *, target: str | None, since: str | None, limit: int) -> int:
    """Print the copier's events, newest first; 2 for an unknown target, a bad ``since`` or ``limit``."""
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
        print(f"no events{scope}{after}")
    for event in events:
        print(_event_line(*event))
    return EXIT_OK


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


def _terminal_lines(terminal: TerminalConfig, row: TerminalStatus | None, links: int, now: float) -> list[str]:
    is_target = terminal.role is Role.TARGET
    if row is None:
        return ["no status yet"] + ([f"links recorded: {links}"] if is_target else [])
    worker = "online" if row.online else "offline"
    broker = "connected" if row.connected else "not connected"
    lines = [f"worker: {worker}, terminal {broker} to its broker", f"pending orders: {row.pending_orders}"]
    if is_target:
        lines.append(f"copies: {row.copies} (links recorded: {links})")
        lines.append(f"orphans: {row.orphans}")
        lines.extend(f"  copy #{copy} (source #{source} is gone): {state}"
                     for copy, source, state in row.orphan_list[:MAX_SKIPPED_SHOWN])
        lines.append(f"skipped: {len(row.skipped)}")
        lines.extend(f"  source #{ticket}: {reason}" for ticket, reason in row.skipped[:MAX_SKIPPED_SHOWN])
        if len(row.skipped) > MAX_SKIPPED_SHOWN:
            lines.append(f"  ... and {len(row.skipped) - MAX_SKIPPED_SHOWN} more")
    if row.last_sync_at > 0:
        lines.append(f"last sync: {_clock(row.last_sync_at, now)} ({_ago(now - row.last_sync_at)})")
    else:
        lines.append("last sync: never")
    lines.append(f"last error: {row.last_error or 'none'}")
    return lines


def _event_line(at: float, target: str, source_ticket: int, copy_ticket: int, action: str, outcome: str,
                retcode: int, message: str) -> str:
    parts = [datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S"), target, action, outcome]
    parts.append(f"source #{source_ticket}" + (f" -> #{copy_ticket}" if copy_ticket else ""))
    if retcode:
        parts.append(f"retcode {retcode} ({describe(retcode)})")
    if message:
        parts.append(message)
    return "  ".join(parts)


def _clock(at: float, now: float) -> str:
    """Local time of day, with the date when it is not today."""
    moment = datetime.fromtimestamp(at)
    same_day = moment.date() == datetime.fromtimestamp(now).date()
    return moment.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")


def _ago(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h ago"


def _no_state(path: Path) -> int:
    print(f"no state yet at {path}: the copier has not run with this config", file=sys.stderr)
    return EXIT_NO_STATE


def _unreadable(path: Path, error: sqlite3.DatabaseError) -> int:
    print(f"cannot read the state at {path}: {error}", file=sys.stderr)
    return EXIT_UNREADABLE


def _usage(message: str) -> int:
    print(message, file=sys.stderr)
    return EXIT_USAGE
