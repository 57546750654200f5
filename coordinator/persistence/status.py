"""The live status of every terminal, kept in the coordinator's database for ``mt5-copier status``.

The running coordinator rewrites the whole table now and then; the command reads it from another process.
SQLite (in WAL mode) lets the reader see the last committed table while the writer carries on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# (column, SQL declaration). NULL columns hold "unknown": None must come back as None, never as 0.
_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("name", "TEXT PRIMARY KEY"),
    ("role", "TEXT NOT NULL"),
    ("enabled", "INTEGER NOT NULL"),
    ("online", "INTEGER NOT NULL"),
    ("terminal_reachable", "INTEGER"),
    ("connected", "INTEGER"),
    ("account", "TEXT NOT NULL"),
    ("account_ok", "INTEGER"),
    ("pending_orders", "INTEGER"),
    ("copies", "INTEGER"),
    ("orphans", "INTEGER"),
    ("failed", "INTEGER NOT NULL"),
    ("unmanaged_copies", "INTEGER NOT NULL"),
    ("restarts", "INTEGER NOT NULL"),
    ("skipped", "TEXT NOT NULL"),
    ("left_out", "TEXT NOT NULL"),
    ("orphan_list", "TEXT NOT NULL"),
    ("positions", "INTEGER"),
    ("position_list", "TEXT NOT NULL"),
    ("removed", "INTEGER NOT NULL"),
    ("host", "TEXT NOT NULL"),
    ("worker_version", "TEXT NOT NULL"),
    ("worker_pid", "INTEGER"),
    ("connected_since", "REAL"),
    ("last_seen", "REAL"),
    ("reconnects", "INTEGER NOT NULL"),
    ("control_mode", "TEXT NOT NULL"),
    ("control_reason", "TEXT NOT NULL"),
    ("control_set_by", "TEXT NOT NULL"),
    ("control_since", "REAL"),
    ("schedule", "TEXT NOT NULL"),
    ("next_run", "REAL"),
    ("last_sync_at", "REAL NOT NULL"),
    ("last_error", "TEXT NOT NULL"),
    ("updated_at", "REAL NOT NULL"),
)
_COLUMN_NAMES = tuple(column for column, _ in _COLUMN_TYPES)
_COLUMNS = ", ".join(_COLUMN_NAMES)
# Created by coordinator/persistence/migrations.py; a change of these columns needs a migration there (a test checks).
STATUS_TABLE_SCHEMA = "CREATE TABLE terminal_status (\n    " + ",\n    ".join(
    f"{column} {declaration}" for column, declaration in _COLUMN_TYPES) + "\n)"


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminalStatus:
    """One terminal as the coordinator last saw it. ``None`` means unknown: never show it as 0 or False."""

    name: str
    role: str  # "source" / "target"
    enabled: bool = True  # False: a disabled target (no worker runs for it)
    online: bool  # its worker process is connected and talking
    terminal_reachable: bool | None  # the worker can reach its terminal; None = unknown (worker offline)
    connected: bool | None  # the terminal is connected to its broker; None = unknown
    account: str = ""  # "login@server" the terminal last reported; "" = unknown
    account_ok: bool | None = None  # it is the configured account; None = unknown
    pending_orders: int | None  # pending orders on the terminal; None = unknown
    copies: int | None  # the copier's copies on it (targets; 0 for the source); None = unknown
    orphans: int | None  # copies whose source order is gone (targets); None = unknown
    failed: int = 0  # copies whose last attempt failed (current failures)
    unmanaged_copies: int = 0  # a disabled target: copies still recorded there, left as they are
    restarts: int = 0  # worker restarts during this coordinator's life
    skipped: tuple[tuple[int, str], ...]  # (source ticket, reason) of orders not copied there
    # (key of [targets.filter], how many source orders it left out) for the keys that left any out, in key order.
    left_out: tuple[tuple[str, int], ...] = ()
    # (copy ticket, source ticket, what is happening to it) of each orphan: a person decides on preserved ones
    orphan_list: tuple[tuple[int, int, str], ...] = ()
    # Open positions: the source's all, a target's the copies' (None = unknown); and on a target, each copy's
    # position as (its ticket, source ticket, what is happening to it).
    positions: int | None = None
    position_list: tuple[tuple[int, int, str], ...] = ()
    removed: bool = False  # a target a reload removed from the config: no worker runs for it, its copies stay
    # Its worker, as its last hello said ("" / None: no hello yet), and its link (unix times; None: unknown).
    host: str = ""
    worker_version: str = ""
    worker_pid: int | None = None
    connected_since: float | None = None  # the welcome that opened its current link (None while offline)
    last_seen: float | None = None  # the last message from it
    reconnects: int = 0  # welcomes after its first during this coordinator's life: a new link or a new process
    # A target's control (coordinator/domain/controls.py TargetControl, column for field): its mode ("active",
    # "paused", "close_only"; the source is always active), why in words ("paused by the operator", "close-only:
    # risk guard min_equity 2000: equity 1890.00"), who set it ("operator", "guard:min_equity", "remove-copies")
    # and since when (unix time; None: active).
    control_mode: str = "active"
    control_reason: str = ""
    control_set_by: str = ""
    control_since: float | None = None
    # [coordinator] schedule, as the running coordinator applies it: in words ("" = live, every change at once), and
    # the unix time of the next run of this terminal (past: its run is under way; None: live, or the boundaries not
    # placed yet, the source's server clock unknown).
    schedule: str = ""
    next_run: float | None = None
    last_sync_at: float  # unix time of the last completed plan for this terminal (0 = never)
    last_error: str
    updated_at: float  # unix time this row was written


class StatusBoard:
    """The live status table, written by the running coordinator, read by `mt5-copier status`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db  # the table exists: coordinator/persistence/migrations.py made it

    def write(self, rows: Sequence[TerminalStatus]) -> None:
        """Replace every row at once, so a reader never sees half of one update."""
        # A savepoint is a transaction whatever the connection's isolation_level (StateStore uses autocommit).
        self._db.execute("SAVEPOINT terminal_status_write")
        try:
            self._db.execute("DELETE FROM terminal_status")
            placeholders = ", ".join("?" for _ in _COLUMN_NAMES)
            self._db.executemany(
                f"INSERT INTO terminal_status ({_COLUMNS}) VALUES ({placeholders})", [_to_row(row) for row in rows],
            )
        except BaseException:
            self._db.execute("ROLLBACK TO terminal_status_write")
            self._db.execute("RELEASE terminal_status_write")
            raise
        self._db.execute("RELEASE terminal_status_write")

    def read(self) -> list[TerminalStatus]:
        """Every row, by terminal name."""
        return read_status(self._db)


def read_status(db: sqlite3.Connection) -> list[TerminalStatus]:
    """The rows of ``terminal_status``, by name; none when no coordinator has written this layout yet.

    Safe on a read-only connection (``mode=ro``), where ``StatusBoard`` could not create a missing table.
    A table of another layout (written by an older or newer coordinator) reads as empty: its facts are unknown.
    """
    if _columns_of(db) != _COLUMN_NAMES:
        return []
    rows = db.execute(f"SELECT {_COLUMNS} FROM terminal_status ORDER BY name").fetchall()
    return [_from_row(row) for row in rows]


def _columns_of(db: sqlite3.Connection) -> tuple[str, ...]:
    """The table's columns in order; empty when there is no table."""
    return tuple(row[1] for row in db.execute("PRAGMA table_info(terminal_status)"))


def _optional_int(flag: bool | None) -> int | None:
    return None if flag is None else int(flag)


def _optional_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _json_list(items: Sequence[Sequence[object]]) -> str:
    """``items`` as a JSON list of lists; "[]" without the encoder for the usual empty one (every row, every
    second)."""
    return json.dumps([list(item) for item in items]) if items else "[]"


def _to_row(status: TerminalStatus) -> tuple[object, ...]:
    skipped = _json_list(status.skipped)
    left_out = _json_list(status.left_out)
    orphans = _json_list(status.orphan_list)
    positions = _json_list(status.position_list)
    return (
        status.name, status.role, int(status.enabled), int(status.online), _optional_int(status.terminal_reachable),
        _optional_int(status.connected), status.account, _optional_int(status.account_ok), status.pending_orders,
        status.copies, status.orphans, status.failed, status.unmanaged_copies, status.restarts, skipped, left_out,
        orphans, status.positions, positions, int(status.removed), status.host, status.worker_version,
        status.worker_pid, status.connected_since, status.last_seen, status.reconnects, status.control_mode,
        status.control_reason, status.control_set_by, status.control_since, status.schedule, status.next_run,
        status.last_sync_at, status.last_error,
        status.updated_at,
    )


def _from_row(row: tuple[Any, ...]) -> TerminalStatus:
    values = dict(zip(_COLUMN_NAMES, row, strict=True))
    return TerminalStatus(
        name=values["name"],
        role=values["role"],
        enabled=bool(values["enabled"]),
        online=bool(values["online"]),
        terminal_reachable=_optional_bool(values["terminal_reachable"]),
        connected=_optional_bool(values["connected"]),
        account=values["account"],
        account_ok=_optional_bool(values["account_ok"]),
        pending_orders=values["pending_orders"],
        copies=values["copies"],
        orphans=values["orphans"],
        failed=values["failed"],
        unmanaged_copies=values["unmanaged_copies"],
        restarts=values["restarts"],
        skipped=tuple((int(ticket), str(reason)) for ticket, reason in json.loads(values["skipped"])),
        left_out=tuple((str(key), int(count)) for key, count in json.loads(values["left_out"])),
        orphan_list=tuple(
            (int(copy), int(source), str(state)) for copy, source, state in json.loads(values["orphan_list"])),
        positions=values["positions"],
        position_list=tuple(
            (int(copy), int(source), str(state)) for copy, source, state in json.loads(values["position_list"])),
        removed=bool(values["removed"]),
        host=values["host"],
        worker_version=values["worker_version"],
        worker_pid=values["worker_pid"],
        connected_since=values["connected_since"],
        last_seen=values["last_seen"],
        reconnects=values["reconnects"],
        control_mode=values["control_mode"],
        control_reason=values["control_reason"],
        control_set_by=values["control_set_by"],
        control_since=values["control_since"],
        schedule=values["schedule"],
        next_run=values["next_run"],
        last_sync_at=values["last_sync_at"],
        last_error=values["last_error"],
        updated_at=values["updated_at"],
    )
