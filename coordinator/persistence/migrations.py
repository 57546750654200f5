"""Every change to the layout of ``copier.db``, in order, in one list: the only place a table is created or
altered. The file records how far it got (``meta.schema_version``); opening it applies what is missing, each
step in its own transaction. A file from a newer mt5-copier (a version past this list) is refused, never
guessed at. To change a table: append a migration; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from coordinator.persistence.status import STATUS_TABLE_SCHEMA


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    what: str
    sql: str


# The status board as 0.2 laid it out. A migration is history: it creates what its version had, never today's.
_STATUS_TABLE_0_2 = """CREATE TABLE terminal_status (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    online INTEGER NOT NULL,
    terminal_reachable INTEGER,
    connected INTEGER,
    account TEXT NOT NULL,
    account_ok INTEGER,
    pending_orders INTEGER,
    copies INTEGER,
    orphans INTEGER,
    failed INTEGER NOT NULL,
    unmanaged_copies INTEGER NOT NULL,
    restarts INTEGER NOT NULL,
    skipped TEXT NOT NULL,
    orphan_list TEXT NOT NULL,
    last_sync_at REAL NOT NULL,
    last_error TEXT NOT NULL,
    updated_at REAL NOT NULL
)"""

# ... and as 0.3 laid it out (the open positions of each terminal).
_STATUS_TABLE_0_3 = """CREATE TABLE terminal_status (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    online INTEGER NOT NULL,
    terminal_reachable INTEGER,
    connected INTEGER,
    account TEXT NOT NULL,
    account_ok INTEGER,
    pending_orders INTEGER,
    copies INTEGER,
    orphans INTEGER,
    failed INTEGER NOT NULL,
    unmanaged_copies INTEGER NOT NULL,
    restarts INTEGER NOT NULL,
    skipped TEXT NOT NULL,
    orphan_list TEXT NOT NULL,
    positions INTEGER,
    position_list TEXT NOT NULL,
    last_sync_at REAL NOT NULL,
    last_error TEXT NOT NULL,
    updated_at REAL NOT NULL
)"""

# ... and as 0.4 laid it out (each worker's link, the targets a reload removed).
_STATUS_TABLE_0_4 = """CREATE TABLE terminal_status (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    online INTEGER NOT NULL,
    terminal_reachable INTEGER,
    connected INTEGER,
    account TEXT NOT NULL,
    account_ok INTEGER,
    pending_orders INTEGER,
    copies INTEGER,
    orphans INTEGER,
    failed INTEGER NOT NULL,
    unmanaged_copies INTEGER NOT NULL,
    restarts INTEGER NOT NULL,
    skipped TEXT NOT NULL,
    orphan_list TEXT NOT NULL,
    positions INTEGER,
    position_list TEXT NOT NULL,
    removed INTEGER NOT NULL,
    host TEXT NOT NULL,
    worker_version TEXT NOT NULL,
    worker_pid INTEGER,
    connected_since REAL,
    last_seen REAL,
    reconnects INTEGER NOT NULL,
    last_sync_at REAL NOT NULL,
    last_error TEXT NOT NULL,
    updated_at REAL NOT NULL
)"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "links, intents, the history of events, orphan confirmations", """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (
    target TEXT NOT NULL,
    source_ticket INTEGER NOT NULL,
    copy_ticket INTEGER NOT NULL,
    symbol TEXT NOT NULL DEFAULT '',
    order_type INTEGER NOT NULL DEFAULT 0,
    volume REAL NOT NULL DEFAULT 0,
    price REAL NOT NULL DEFAULT 0,
    stoplimit REAL NOT NULL DEFAULT 0,
    sl REAL NOT NULL DEFAULT 0,
    tp REAL NOT NULL DEFAULT 0,
    type_time INTEGER NOT NULL DEFAULT 0,
    expiration INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active',
    source_volume REAL NOT NULL DEFAULT 0,
    price_offset REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (target, source_ticket)
);
CREATE TABLE IF NOT EXISTS intents (
    command_id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    source_ticket INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    settled_at REAL,
    outcome TEXT,
    retcode INTEGER,
    copy_ticket INTEGER
);
CREATE INDEX IF NOT EXISTS intents_unsettled ON intents (settled_at) WHERE settled_at IS NULL;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    target TEXT NOT NULL,
    source_ticket INTEGER NOT NULL,
    copy_ticket INTEGER NOT NULL DEFAULT 0,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    retcode INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_by_target ON events (target, at);
CREATE TABLE IF NOT EXISTS orphan_counts (
    target TEXT NOT NULL,
    copy_ticket INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (target, copy_ticket)
);
"""),
    # The live status board is rewritten every second and holds nothing worth keeping: its layout changes by
    # dropping it (0.1's had fewer columns and was rebuilt by sniffing them; this list replaces that).
    Migration(2, "the live status board, with health facts (account, reachability, restarts, unknown counts)",
              "DROP TABLE IF EXISTS terminal_status;\n" + _STATUS_TABLE_0_2 + ";"),
    Migration(3, "the live status board, with the open positions of each terminal",
              "DROP TABLE IF EXISTS terminal_status;\n" + _STATUS_TABLE_0_3 + ";"),
    Migration(4, "the live status board, with each worker's link (host, version, pid, connected since, last seen, "
                 "reconnects) and the targets a reload removed",
              "DROP TABLE IF EXISTS terminal_status;\n" + _STATUS_TABLE_0_4 + ";"),
    Migration(5, "operator controls and risk guards per target (pause, close-only, a tripped guard, the equity "
                 "peak), the latency stages of each copy in its history event, and the status board with them",
              """CREATE TABLE IF NOT EXISTS target_controls (
    target TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    set_by TEXT NOT NULL DEFAULT '',
    set_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_state (
    target TEXT PRIMARY KEY,
    peak_equity REAL NOT NULL,
    updated_at REAL NOT NULL
);
ALTER TABLE events ADD COLUMN stages TEXT NOT NULL DEFAULT '';
DROP TABLE IF EXISTS terminal_status;
""" + STATUS_TABLE_SCHEMA + ";"),
)
LATEST_VERSION = MIGRATIONS[-1].version


class NewerStateError(Exception):
    """The file was written by a newer mt5-copier."""


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Bring ``db`` up to LATEST_VERSION; return the version it had (0: a new file)."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found = int(row[0]) if row is not None else 0
    if found > LATEST_VERSION:
        raise NewerStateError(
            f"state file {path} was written by a newer mt5-copier (schema {found}, this one reads up to "
            f"{LATEST_VERSION}); upgrade mt5-copier or point state_dir elsewhere")
    for migration in MIGRATIONS:
        if migration.version <= found:
            continue
        # executescript commits first and runs its own statements: wrap them so a step applies whole or not.
        db.executescript("BEGIN IMMEDIATE;\n" + migration.sql + "\nINSERT INTO meta (key, value) VALUES "
                         f"('schema_version', '{migration.version}') ON CONFLICT (key) DO UPDATE SET "
                         "value = excluded.value;\nCOMMIT;")
    return found
