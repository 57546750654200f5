"""``mt5-copier status`` and ``mt5-copier history`` over a state folder written by the real StateStore."""

from __future__ import annotations

import re
import sqlite3
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from coordinator.cli.app import main
from coordinator.cli.operator import parse_since
from coordinator.domain.planner import Link
from coordinator.persistence.state import StateStore
from coordinator.persistence.status import TerminalStatus

CONFIG = """
[coordinator]
state_dir = "state"

[source]
name = "master"
backend = "sim"
path = "terminals/master"
login = 1001
server = "Sim-Server"

[[targets]]
name = "broker-a"
backend = "sim"
path = "terminals/broker-a"
login = 2001
server = "Sim-Server"

[[targets]]
name = "broker-b"
backend = "sim"
path = "terminals/broker-b"
login = 3001
server = "Sim-Server"
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "copier.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def status_row(name: str, role: str = "target", *, age: float = 0.0, **fields) -> TerminalStatus:
    """A healthy terminal's row, changed by ``fields``."""
    now = time.time()
    account = {"master": "1001@Sim-Server", "broker-a": "2001@Sim-Server", "broker-b": "3001@Sim-Server"}[name]
    values = dict(name=name, role=role, online=True, terminal_reachable=True, connected=True, account=account,
                  account_ok=True, pending_orders=0, copies=0, orphans=0, skipped=(), last_sync_at=now - age - 2,
                  last_error="", updated_at=now - age)
    values.update(fields)
    return TerminalStatus(**values)


def record(store: StateStore, at: float, target: str, source_ticket: int, action: str, outcome: str, **fields) -> None:
    """An event recorded by the StateStore, then moved to ``at`` (the store stamps events with the clock)."""
    store.record_event(target, source_ticket, action, outcome, **fields)
    with closing(sqlite3.connect(store.path, isolation_level=None)) as db:
        db.execute("UPDATE events SET at = ? WHERE id = (SELECT MAX(id) FROM events)", (at,))


def local(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------------------
# status


def test_status_with_fresh_rows_shows_every_terminal_source_first(capsys, config_path, store, board, running):
    store.adopt_link("broker-a", Link(source_ticket=10000017, copy_ticket=23000002, symbol="EURUSD.m", volume=0.1))
    store.adopt_link("broker-a", Link(source_ticket=10000018, copy_ticket=23000003, symbol="EURUSD.m", volume=0.1))
    skipped = tuple((10000100 + i, "symbol not found on target") for i in range(22))
    board.write([
        status_row("broker-a", pending_orders=10, copies=9, orphans=1, skipped=skipped, restarts=2,
                   last_error="order_send: retcode 10019 (not enough money)"),
        status_row("broker-b"),
        status_row("master", "source", pending_orders=12),
    ])

    code, out, _ = cli(capsys, "status", "--config", str(config_path))

    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == [f"state: {store.path}", f"coordinator: running (pid {running})", "health: all healthy"]
    assert lines.index("source master: healthy") < lines.index("target broker-a: healthy") < lines.index(
        "target broker-b: healthy")
    source = lines[lines.index("source master: healthy") + 1: lines.index("target broker-a: healthy") - 1]
    assert source[:5] == ["  worker: online; terminal: reachable, connected to its broker",
                          "  account: 1001@Sim-Server (as configured)", "  pending orders: 12",
                          "  open positions: unknown", "  worker restarts: 0"]
    assert re.fullmatch(r"  last sync: [\d:\- ]+ \(2 s ago\)", source[5])
    assert source[6] == "  last error: none"
    target = lines[lines.index("target broker-a: healthy") + 1: lines.index("target broker-b: healthy") - 1]
    assert target[2:8] == ["  pending orders: 10", "  copies: 9 (links recorded: 2)", "  failed: 0", "  orphans: 1",
                           "  positions: unknown", "  skipped: 22"]
    assert target[8] == "    source #10000100: symbol not found on target"
    assert "    source #10000119: symbol not found on target" in target
    assert "    source #10000120: symbol not found on target" not in target
    assert "    ... and 2 more" in target
    assert target[-3] == "  worker restarts: 2"
    assert target[-1] == "  last error: order_send: retcode 10019 (not enough money)"


def test_status_shows_offline_workers_and_disconnected_terminals(capsys, config_path, board, running):
    board.write([status_row("master", "source", online=False, terminal_reachable=None, connected=None,
                            account_ok=None, last_sync_at=0.0),
                 status_row("broker-a", connected=False),
                 status_row("broker-b", terminal_reachable=False, connected=None, account_ok=None)])

    code, out, _ = cli(capsys, "status", "--config", str(config_path))

    assert code == 1
    assert "  worker: offline; terminal: unknown" in out
    assert "  worker: online; terminal: reachable, not connected to its broker" in out
    assert "  worker: online; terminal: unreachable" in out  # its worker runs: it is not "offline"
    assert "  last sync: never" in out
    assert ("health: degraded (master: worker offline; broker-a: terminal not connected to its broker; "
            "broker-b: terminal unreachable)") in out


def test_status_with_stale_rows_says_the_coordinator_is_not_running(capsys, config_path, board):
    board.write([status_row("master", "source", age=60, pending_orders=3), status_row("broker-a", age=61)])

    code, out, _ = cli(capsys, "status", "--config", str(config_path))

    assert code == 3
    notices = [line for line in out.splitlines() if "coordinator: not running" in line]
    assert len(notices) == 1
    assert re.fullmatch(
        r"coordinator: not running \(last status update [\d:\- ]+, 6[01] s ago\); the values below are the last "
        r"known ones",
        notices[0],
    )
    assert "  pending orders: 3" in out  # the last known values are still shown
    assert "  worker: not running (no coordinator)" in out


def test_status_before_any_status_was_written(capsys, config_path, store, running):
    code, out, _ = cli(capsys, "status", "--config", str(config_path))

    assert code == 1  # running, but nothing is known yet: not healthy
    assert "health: degraded (master: no status yet; broker-a: no status yet; broker-b: no status yet)" in out
    assert out.count("  no status yet") == 3


def test_status_without_a_database(capsys, config_path, tmp_path):
    code, out, err = cli(capsys, "status", "--config", str(config_path))

    assert code == 3
    assert out.splitlines()[:2] == [f"state: {tmp_path / 'state' / 'copier.db'}", "coordinator: not running"]
    assert err.strip() == (
        f"no state yet at {tmp_path / 'state' / 'copier.db'}: the copier has not run with this config"
    )
    assert not (tmp_path / "state").exists()  # looking does not create anything


def test_status_of_a_file_that_is_not_a_database(capsys, config_path, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "copier.db").write_bytes(b"not a database at all" * 100)

    code, _, err = cli(capsys, "status", "--config", str(config_path))

    assert code == 3
    assert err.startswith(f"cannot read the state at {tmp_path / 'state' / 'copier.db'}: ")


@pytest.mark.parametrize("command", ["status", "history"])
def test_a_bad_config_exits_2_with_every_problem(capsys, tmp_path, command):
    path = tmp_path / "copier.toml"
    path.write_text(CONFIG.replace("login = 2001", 'login = "x"'), encoding="utf-8")

    code, _, err = cli(capsys, command, "--config", str(path))

    assert code == 2
    assert "targets[0] (broker-a).login: must be an integer, got string 'x'" in err


def test_status_board_write_replaces_every_row(board):
    board.write([status_row("master", "source"), status_row("broker-a")])
    only = status_row("broker-b", skipped=((10000001, "order type not copied"),))

    board.write([only])

    assert board.read() == [only]


def test_status_board_write_is_all_or_nothing(board):
    board.write([status_row("master", "source")])

    with pytest.raises(sqlite3.IntegrityError):
        board.write([status_row("broker-a"), status_row("broker-a")])  # the same name twice

    assert [row.name for row in board.read()] == ["master"]


# ---------------------------------------------------------------------------------------------------
# history


@pytest.fixture
def events(store: StateStore) -> float:
    """Four events over the last three hours; returns the time they were placed against."""
    now = time.time()
    record(store, now - 3 * 3600, "broker-a", 10000001, "place", "ok", copy_ticket=23000001, retcode=10009)
    record(store, now - 50 * 60, "broker-b", 10000002, "place", "failed", retcode=10019, message="margin check")
    record(store, now - 10 * 60, "broker-a", 10000002, "modify", "ok", copy_ticket=23000002)
    record(store, now - 60, "broker-a", 10000003, "remove", "ok", copy_ticket=23000003, message="orphan")
    return now


def test_history_lists_every_event_newest_first_one_line_each(capsys, config_path, events):
    code, out, _ = cli(capsys, "history", "--config", str(config_path))

    assert code == 0
    assert out.splitlines() == [
        f"{local(events - 60)}  broker-a  remove  ok  source #10000003 -> #23000003  orphan",
        f"{local(events - 600)}  broker-a  modify  ok  source #10000002 -> #23000002",
        f"{local(events - 3000)}  broker-b  place  failed  source #10000002  retcode 10019 (not enough money)"
        "  margin check",
        f"{local(events - 10800)}  broker-a  place  ok  source #10000001 -> #23000001  retcode 10009 "
        "(request executed)",
    ]


def test_history_filters_by_target(capsys, config_path, events):
    _, out, _ = cli(capsys, "history", "--config", str(config_path), "--target", "broker-b")

    assert len(out.splitlines()) == 1
    assert "  broker-b  place  failed  " in out


@pytest.mark.parametrize(("since", "count"), [("30m", 2), ("2h", 3), ("45s", 0), ("1d", 4), ("5400s", 3)])
def test_history_since_a_relative_age(capsys, config_path, events, since, count):
    _, out, _ = cli(capsys, "history", "--config", str(config_path), "--since", since)

    assert len([line for line in out.splitlines() if "source #" in line]) == count


def test_history_since_an_absolute_local_time(capsys, config_path, events):
    two_hours_ago = datetime.fromtimestamp(events - 2 * 3600).strftime("%Y-%m-%dT%H:%M:%S")

    _, out, _ = cli(capsys, "history", "--config", str(config_path), "--since", two_hours_ago)

    assert len(out.splitlines()) == 3


def test_history_since_a_date_and_with_target_together(capsys, config_path, events):
    tomorrow = (datetime.fromtimestamp(events) + timedelta(days=1)).strftime("%Y-%m-%d")
    yesterday = (datetime.fromtimestamp(events) - timedelta(days=1)).strftime("%Y-%m-%d")

    _, later, _ = cli(capsys, "history", "--config", str(config_path), "--since", tomorrow, "--target", "broker-a")
    _, earlier, _ = cli(capsys, "history", "--config", str(config_path), "--since", yesterday, "--target", "broker-a")

    assert later.startswith("no events for broker-a since ")
    assert len(earlier.splitlines()) == 3


def test_history_limit_keeps_the_newest(capsys, config_path, events):
    _, out, _ = cli(capsys, "history", "--config", str(config_path), "--limit", "2")

    lines = out.splitlines()
    assert len(lines) == 2
    assert "remove" in lines[0]
    assert "modify" in lines[1]


@pytest.mark.parametrize("since", ["yesterday", "30x", "2026-13-01", "-5m", ""])
def test_history_with_a_bad_since_exits_2_naming_the_accepted_forms(capsys, config_path, events, since):
    code, out, err = cli(capsys, "history", "--config", str(config_path), f"--since={since}")

    assert code == 2
    assert out == ""
    assert err.strip() == (
        f"--since: cannot read {since!r}; use a date (2026-11-24), a date and time (2026-11-24T10:00) "
        "or an age (45s, 30m, 2h, 1d)"
    )


def test_history_for_an_unknown_target_exits_2_naming_the_targets(capsys, config_path, events):
    code, _, err = cli(capsys, "history", "--config", str(config_path), "--target", "broker-z")

    assert code == 2
    assert err.strip() == "unknown target 'broker-z'; configured targets: broker-a, broker-b"


def test_history_for_the_source_exits_2(capsys, config_path, events):
    code, _, err = cli(capsys, "history", "--config", str(config_path), "--target", "master")

    assert code == 2
    assert err.strip() == "'master' is the source terminal, not a target"


def test_history_with_a_limit_below_1_exits_2(capsys, config_path, events):
    code, _, err = cli(capsys, "history", "--config", str(config_path), "--limit", "0")

    assert code == 2
    assert "--limit must be at least 1, got 0" in err


def test_history_without_a_database_exits_3_like_an_unreadable_one(capsys, config_path, tmp_path):
    code, _, err = cli(capsys, "history", "--config", str(config_path))

    assert code == 3
    assert "the copier has not run with this config" in err


def test_history_of_a_file_that_is_not_a_database_exits_3(capsys, config_path, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "copier.db").write_bytes(b"not a database at all" * 100)

    code, _, err = cli(capsys, "history", "--config", str(config_path))

    assert code == 3
    assert err.startswith(f"cannot read the state at {tmp_path / 'state' / 'copier.db'}: ")


def test_history_with_no_events_says_so(capsys, config_path, store):
    code, out, _ = cli(capsys, "history", "--config", str(config_path))

    assert (code, out) == (0, "no events\n")


# ---------------------------------------------------------------------------------------------------
# parse_since


@pytest.mark.parametrize(
    ("text", "age"),
    [("45s", 45), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1.5h", 5400), (" 2H ", 7200), ("10 m", 600)],
)
def test_parse_since_reads_ages(text, age):
    assert parse_since(text, now=1_000_000.0) == 1_000_000.0 - age


def test_parse_since_reads_local_dates_and_times_and_explicit_offsets():
    assert parse_since("2026-11-24", now=0) == datetime(2026, 11, 24).timestamp()
    assert parse_since("2026-11-24T10:00", now=0) == datetime(2026, 11, 24, 10, 0).timestamp()
    assert parse_since("2026-11-24 10:00:30", now=0) == datetime(2026, 11, 24, 10, 0, 30).timestamp()
    utc = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    assert parse_since("2026-11-24T10:00Z", now=0) == utc
    assert parse_since("2026-11-24T12:00+02:00", now=0) == utc
