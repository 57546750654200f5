"""One list of migrations for every table in copier.db: new files, 0.1 files, newer files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coordinator.persistence.migrations import LATEST_VERSION, MIGRATIONS, NewerStateError, migrate
from coordinator.persistence.state import StateError, StateStore
from coordinator.persistence.status import TerminalStatus


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def test_the_versions_count_up_by_one_from_1():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_a_new_file_gets_every_table_and_the_latest_version(tmp_path: Path):
    db = sqlite3.connect(tmp_path / "copier.db", isolation_level=None)
    assert migrate(db, tmp_path / "copier.db") == 0
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "links", "intents", "events", "orphan_counts", "terminal_status"} <= tables
    assert version(db) == LATEST_VERSION
    assert migrate(db, tmp_path / "copier.db") == LATEST_VERSION  # a second opening changes nothing


def test_the_status_table_has_exactly_the_columns_of_a_status_row(tmp_path: Path):
    """A new TerminalStatus field needs a migration: this fails until one is appended."""
    db = sqlite3.connect(tmp_path / "copier.db", isolation_level=None)
    migrate(db, tmp_path / "copier.db")
    columns = [row[1] for row in db.execute("PRAGMA table_info(terminal_status)")]
    assert columns == list(TerminalStatus.__dataclass_fields__)


def test_a_file_of_0_1_keeps_its_links_and_gets_the_new_status_board(tmp_path: Path):
    path = tmp_path / "state" / "copier.db"
    path.parent.mkdir()
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(MIGRATIONS[0].sql)  # what 0.1 created, plus its own status table of fewer columns
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    db.execute("CREATE TABLE terminal_status (name TEXT PRIMARY KEY, role TEXT NOT NULL)")
    db.execute("INSERT INTO links (target, source_ticket, copy_ticket, created_at, updated_at) "
               "VALUES ('t1', 1, 9001, 0, 0)")
    db.close()
    state = StateStore(path.parent)
    try:
        assert state.links("t1")[1].copy_ticket == 9001
        assert version(state.connection) == LATEST_VERSION
        columns = [row[1] for row in state.connection.execute("PRAGMA table_info(terminal_status)")]
        assert columns == list(TerminalStatus.__dataclass_fields__)
    finally:
        state.close()


def test_a_file_from_a_newer_copier_is_refused_and_left_as_it_is(tmp_path: Path):
    path = tmp_path / "state" / "copier.db"
    path.parent.mkdir()
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(LATEST_VERSION + 1),))
    with pytest.raises(NewerStateError, match="newer mt5-copier"):
        migrate(db, path)
    db.close()
    with pytest.raises(StateError, match=f"schema {LATEST_VERSION + 1}"):
        StateStore(path.parent)
