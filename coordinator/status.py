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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS terminal_status (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    online INTEGER NOT NULL,
    connected INTEGER NOT NULL,
    pending_orders INTEGER NOT NULL,
    copies INTEGER NOT NULL,
    orphans INTEGER NOT NULL,
    skipped TEXT NOT NULL,
    orphan_list TEXT NOT NULL DEFAULT '[]',
    last_sync_at REAL NOT NULL,
    last_error TEXT NOT NULL,
    updated_at REAL NOT NULL
)
"""

_COLUMNS = (
    "name, role, online, connected, pending_orders, copies, orphans, skipped, orphan_list, last_sync_at, last_error,"
    " updated_at"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminalStatus:
    """One terminal as the coordinator last saw it."""

    name: str
    role: str  # "source" / "target"
    online: bool  # its worker is connected and talking
    connected: bool  # the terminal is connected to its broker
    pending_orders: int  # pending orders on the terminal
    copies: int  # the copier's copies on it (targets; 0 for the source)
    orphans: int  # copies whose source order is gone (targets)
    skipped: tuple[tuple[int, str], ...]  # (source ticket, reason) of orders not copied there
    # (copy ticket, source ticket, what is happening to it) of each orphan: a person decides on preserved ones
    orphan_list: tuple[tuple[int, int, str], ...] = ()
    last_sync_at: float  # unix time of the last completed plan for this terminal (0 = never)
    last_error: str
    updated_at: float  # unix time this row was written


class StatusBoard:
    """The live status table, written by the running coordinator, read by `mt5-copier status`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        # The table is rewritten every second and holds nothing worth keeping: an older layout is replaced.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(terminal_status)")}
        if columns and "orphan_list" not in columns:
            self._db.execute("DROP TABLE terminal_status")
        self._db.execute(_SCHEMA)

    def write(self, rows: Sequence[TerminalStatus]) -> None:
        """Replace every row at once, so a reader never sees half of one update."""
        # A savepoint is a transaction whatever the connection's isolation_level (StateStore uses autocommit).
        self._db.execute("SAVEPOINT terminal_status_write")
        try:
            self._db.execute("DELETE FROM terminal_status")
            self._db.executemany(
                f"INSERT INTO terminal_status ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_to_row(row) for row in rows],
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
    """The rows of ``terminal_status``, by name; none when no coordinator has written the table yet.

    Safe on a read-only connection (``mode=ro``), where ``StatusBoard`` could not create a missing table.
    """
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'terminal_status'").fetchone()
    if exists is None:
        return []
    columns = {row[1] for row in db.execute("PRAGMA table_info(terminal_status)")}
    selected = _COLUMNS if "orphan_list" in columns else _COLUMNS.replace(" orphan_list,", " '[]',")
    rows = db.execute(f"SELECT {selected} FROM terminal_status ORDER BY name").fetchall()
    return [_from_row(row) for row in rows]


def _to_row(status: TerminalStatus) -> tuple[object, ...]:
    skipped = json.dumps([[ticket, reason] for ticket, reason in status.skipped])
    orphans = json.dumps([list(orphan) for orphan in status.orphan_list])
    return (
        status.name, status.role, int(status.online), int(status.connected), status.pending_orders, status.copies,
        status.orphans, skipped, orphans, status.last_sync_at, status.last_error, status.updated_at,
    )


def _from_row(row: tuple[Any, ...]) -> TerminalStatus:
    name, role, online, connected, pending, copies, orphans, skipped, orphan_list, last_sync_at, last_error, \
        updated_at = row
    return TerminalStatus(
        name=name,
        role=role,
        online=bool(online),
        connected=bool(connected),
        pending_orders=pending,
        copies=copies,
        orphans=orphans,
        skipped=tuple((int(ticket), str(reason)) for ticket, reason in json.loads(skipped)),
        orphan_list=tuple((int(copy), int(source), str(state)) for copy, source, state in json.loads(orphan_list)),
        last_sync_at=last_sync_at,
        last_error=last_error,
        updated_at=updated_at,
    )
