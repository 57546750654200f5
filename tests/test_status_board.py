"""The terminal_status table: what the running coordinator writes is what ``status`` reads, unknowns included."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from coordinator.persistence.migrations import MIGRATIONS, migrate
from coordinator.persistence.status import StatusBoard, TerminalStatus, read_status

OLDER_LAYOUT = """
CREATE TABLE terminal_status (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, online INTEGER NOT NULL, connected INTEGER NOT NULL,
    pending_orders INTEGER NOT NULL, copies INTEGER NOT NULL, orphans INTEGER NOT NULL, skipped TEXT NOT NULL,
    orphan_list TEXT NOT NULL DEFAULT '[]', last_sync_at REAL NOT NULL, last_error TEXT NOT NULL,
    updated_at REAL NOT NULL
)
"""


@pytest.fixture
def db(tmp_path: Path):
    with closing(sqlite3.connect(tmp_path / "copier.db", isolation_level=None)) as connection:
        yield connection


def unknown_everything(name: str = "broker-a") -> TerminalStatus:
    """A target whose worker is offline: nothing about its terminal is known."""
    return TerminalStatus(name=name, role="target", online=False, terminal_reachable=None, connected=None,
                          pending_orders=None, copies=None, orphans=None, skipped=(), last_sync_at=0.0,
                          last_error="", updated_at=1000.0)


@pytest.fixture
def board(tmp_path: Path, db: sqlite3.Connection) -> StatusBoard:
    migrate(db, tmp_path / "copier.db")  # the coordinator's state opens the file this way
    return StatusBoard(db)


def test_unknown_values_come_back_unknown_not_zero_or_false(board):
    board.write([unknown_everything()])

    row = board.read()[0]
    assert (row.terminal_reachable, row.connected, row.account_ok) == (None, None, None)
    assert (row.pending_orders, row.copies, row.orphans) == (None, None, None)
    assert row == unknown_everything()


def test_every_field_round_trips(board):
    full = TerminalStatus(
        name="broker-b", role="target", enabled=False, online=True, terminal_reachable=False, connected=False,
        account="9999@Other-Server", account_ok=False, pending_orders=4, copies=3, orphans=1, failed=2,
        unmanaged_copies=3, restarts=5, skipped=((10000001, "order type not copied"),),
        orphan_list=((23000001, 10000002, "kept: a person decides"),), last_sync_at=999.5,
        last_error="wrong account", updated_at=1000.0,
    )
    board.write([full, unknown_everything("broker-a")])

    assert board.read() == [unknown_everything("broker-a"), full]


def test_a_table_of_an_older_layout_is_rebuilt_by_the_coordinator(tmp_path, db):
    db.executescript(MIGRATIONS[0].sql)  # a state file of 0.1, with 0.1's status table
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    db.execute(OLDER_LAYOUT)
    db.execute("INSERT INTO terminal_status VALUES ('master', 'source', 1, 1, 3, 0, 0, '[]', '[]', 1.0, '', 2.0)")

    migrate(db, tmp_path / "copier.db")
    board = StatusBoard(db)
    board.write([unknown_everything()])

    assert board.read() == [unknown_everything()]


def test_a_reader_sees_nothing_in_a_table_of_another_layout(tmp_path, db):
    db.execute(OLDER_LAYOUT)
    db.execute("INSERT INTO terminal_status VALUES ('master', 'source', 1, 1, 3, 0, 0, '[]', '[]', 1.0, '', 2.0)")

    with closing(sqlite3.connect(f"{(tmp_path / 'copier.db').as_uri()}?mode=ro", uri=True)) as reader:
        assert read_status(reader) == []  # unknown, rather than an older coordinator's facts read wrongly


def test_a_reader_sees_nothing_before_the_table_exists(tmp_path, db):
    db.execute("CREATE TABLE other (x INTEGER)")

    with closing(sqlite3.connect(f"{(tmp_path / 'copier.db').as_uri()}?mode=ro", uri=True)) as reader:
        assert read_status(reader) == []
