"""``status`` per worker: its host, version and pid, connected since, last seen, reconnects; and a target a
reload removed from the config. The status board's columns for them, and the migration that added them."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

from coordinator.domain.planner import Link
from coordinator.persistence.migrations import _STATUS_TABLE_0_3, LATEST_VERSION, MIGRATIONS
from coordinator.persistence.state import StateStore
from coordinator.persistence.status import TerminalStatus
from coordinator.runtime.status_projection import removed_row
from tests.test_status_health import CONFIG, healthy, status, status_json, terminal


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "copier.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def linked(now: float) -> dict[str, object]:
    """A worker on vm-a, connected 62 minutes ago, last heard from a second ago, that reconnected twice."""
    return dict(host="vm-a", worker_version="0.4.0", worker_pid=4242, connected_since=now - 3725, last_seen=now - 1,
                reconnects=2)


def clock(at: float) -> str:
    """As status shows a time: the time of day, with the date when it is not today."""
    moment = datetime.fromtimestamp(at)
    return moment.strftime("%H:%M:%S" if moment.date() == datetime.now().date() else "%Y-%m-%d %H:%M:%S")


def test_every_link_field_round_trips(board):
    row = healthy("broker-a", **linked(time.time()))
    gone = removed_row("broker-z", 3)

    board.write([row, gone])

    assert board.read() == [row, gone]
    assert (gone.removed, gone.enabled, gone.last_error) == (True, False,
                                                             "removed from the config; 3 copies left as they are")


def test_a_state_file_of_0_3_keeps_its_links_and_gets_the_current_status_board(tmp_path: Path):
    path = tmp_path / "state" / "copier.db"
    path.parent.mkdir()
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(MIGRATIONS[0].sql)
    db.execute(_STATUS_TABLE_0_3)  # what 0.3 left: its status board, schema version 3
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '3')")
    db.execute("INSERT INTO links (target, source_ticket, copy_ticket, created_at, updated_at) "
               "VALUES ('t1', 1, 9, 0, 0)")
    db.close()

    state = StateStore(path.parent)
    try:
        assert LATEST_VERSION >= 4
        assert state.links("t1")[1].copy_ticket == 9
        columns = [row[1] for row in state.connection.execute("PRAGMA table_info(terminal_status)")]
        assert columns == list(TerminalStatus.__dataclass_fields__)
        assert {"host", "worker_version", "worker_pid", "connected_since", "last_seen", "reconnects",
                "removed"} <= set(columns)
    finally:
        state.close()


def test_status_shows_each_workers_process_and_link(capsys, config_path, board, running):
    now = time.time()
    board.write([healthy("master", "source"), healthy("broker-a", **linked(now))])

    code, out, _ = status(capsys, config_path)

    assert code == 0
    [line] = [line for line in out.splitlines() if "pid 4242" in line]
    # "1 s ago" when the command runs at once; a busy machine may take a second or two more to run it.
    expected = (f"  worker process: pid 4242 on vm-a, version 0.4.0; connected since {clock(now - 3725)} (62 min); "
                f"last seen {clock(now - 1)} (N s ago); reconnects: 2")
    ago = re.search(r"\((\d+) s ago\)", line)
    assert ago is not None and 1 <= int(ago.group(1)) <= 5, line
    assert line.replace(ago.group(0), "(N s ago)") == expected
    # No hello yet, nothing to say: no line.
    master = out[out.index("source master"):out.index("target broker-a")]
    assert "worker process" not in master


def test_the_json_has_each_workers_process_and_link(capsys, config_path, board, running):
    now = time.time()
    board.write([healthy("master", "source"), healthy("broker-a", **linked(now))])

    _, report = status_json(capsys, config_path)

    broker_a = terminal(report, "broker-a")
    assert {key: broker_a[key] for key in ("remote", "removed", "worker_pid", "worker_host", "worker_version",
                                           "reconnects")} == {
        "remote": False, "removed": False, "worker_pid": 4242, "worker_host": "vm-a", "worker_version": "0.4.0",
        "reconnects": 2}
    assert datetime.fromisoformat(broker_a["connected_since"]).timestamp() == int(now - 3725)
    assert datetime.fromisoformat(broker_a["last_seen"]).timestamp() == int(now - 1)
    master = terminal(report, "master")
    assert (master["worker_pid"], master["worker_host"], master["connected_since"], master["reconnects"]) == (
        None, None, None, 0)


def test_an_offline_worker_shows_when_it_was_last_seen_not_a_connection(capsys, config_path, board, running):
    now = time.time()
    board.write([healthy("master", "source"),
                 healthy("broker-a", online=False, terminal_reachable=None,
                         **{**linked(now), "connected_since": None, "last_seen": now - 30})])

    code, out, _ = status(capsys, config_path)
    _, report = status_json(capsys, config_path)

    assert code == 1
    [line] = [line for line in out.splitlines() if "pid 4242" in line]
    assert "connected since" not in line
    # 30 s before the board was written; the command reads the clock a moment later (a second or two on a busy CI).
    ago = re.search(r"last seen \S+ \((\d+) s ago\)", line)
    assert ago is not None and 30 <= int(ago.group(1)) <= 35, line
    assert terminal(report, "broker-a")["connected_since"] is None


def test_a_target_removed_by_a_reload_is_shown_with_the_copies_left_there(capsys, config_path, store, board, running):
    store.adopt_link("broker-z", Link(source_ticket=1, copy_ticket=9, symbol="EURUSD", volume=0.1))
    board.write([healthy("master", "source"), healthy("broker-a"), removed_row("broker-z", 1)])

    code, out, _ = status(capsys, config_path)
    _, report = status_json(capsys, config_path)

    assert code == 0  # a removed target does not make the copier degraded
    block = out[out.index("target broker-z: removed"):]
    assert block.splitlines()[1:3] == [
        "  removed from the config; 1 copies left as they are (no worker runs for it; nobody manages them)",
        "  links recorded: 1"]
    broker_z = terminal(report, "broker-z")
    assert {key: broker_z[key] for key in ("health", "enabled", "removed", "unmanaged_copies", "links_recorded",
                                           "expected_account", "worker_online")} == {
        "health": "removed", "enabled": False, "removed": True, "unmanaged_copies": 1, "links_recorded": 1,
        "expected_account": None, "worker_online": None}
