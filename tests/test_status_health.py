"""``mt5-copier status`` as a health check: its exit codes, its JSON, unknowns and disabled targets."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from coordinator.cli.app import main
from coordinator.domain.planner import Link
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
name = "broker-c"
backend = "sim"
path = "terminals/broker-c"
login = 4001
server = "Sim-Server"
enabled = false
"""

ACCOUNTS = {"master": "1001@Sim-Server", "broker-a": "2001@Sim-Server", "broker-c": "4001@Sim-Server"}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "copier.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def healthy(name: str, role: str = "target", *, age: float = 0.0, **fields) -> TerminalStatus:
    """A healthy terminal's row written ``age`` seconds ago, changed by ``fields``."""
    now = time.time() - age
    values = dict(name=name, role=role, online=True, terminal_reachable=True, connected=True,
                  account=ACCOUNTS[name], account_ok=True, pending_orders=2, copies=2, orphans=0, skipped=(),
                  last_sync_at=now - 1, last_error="", updated_at=now)
    values.update(fields)
    return TerminalStatus(**values)


def disabled(unmanaged: int) -> TerminalStatus:
    return TerminalStatus(name="broker-c", role="target", enabled=False, online=False, terminal_reachable=None,
                          connected=None, pending_orders=None, copies=None, orphans=None, unmanaged_copies=unmanaged,
                          skipped=(), last_sync_at=0.0, last_error="", updated_at=time.time())


def status(capsys, config_path: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["status", "--config", str(config_path), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def status_json(capsys, config_path: Path) -> tuple[int, dict]:
    code, out, _ = status(capsys, config_path, "--json")
    return code, json.loads(out)


def terminal(report: dict, name: str) -> dict:
    return next(t for t in report["terminals"] if t["name"] == name)


# ---------------------------------------------------------------------------------------------------
# Exit codes


def test_all_healthy_exits_0_and_a_disabled_target_does_not_count(capsys, config_path, board, running):
    board.write([healthy("master", "source"), healthy("broker-a"), disabled(unmanaged=3)])

    code, report = status_json(capsys, config_path)

    assert code == 0
    assert (report["health"], report["exit_code"]) == ("healthy", 0)
    assert report["coordinator"]["running"] is True
    assert report["coordinator"]["pid"] == running


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"online": False, "terminal_reachable": None, "connected": None}, "worker offline"),
        ({"terminal_reachable": False, "connected": None}, "terminal unreachable"),
        ({"connected": False}, "terminal not connected to its broker"),
        ({"account": "9999@Other", "account_ok": False}, "wrong account 9999@Other, expected 2001@Sim-Server"),
        ({"failed": 2}, "2 failed copies"),
        ({"age": 30}, "status not updated for 30 s"),  # the coordinator runs, but is stuck
    ],
)
def test_a_running_but_degraded_copier_exits_1_and_says_why(capsys, config_path, board, running, fields, problem):
    board.write([healthy("master", "source"), healthy("broker-a", **fields)])

    code, report = status_json(capsys, config_path)
    plain_code, out, _ = status(capsys, config_path)

    assert (code, plain_code) == (1, 1)
    assert report["health"] == "degraded"
    assert terminal(report, "broker-a")["health"] == "degraded"
    assert problem in terminal(report, "broker-a")["problems"][0]
    assert f"health: degraded (broker-a: {problem}" in out
    assert "target broker-a: degraded" in out


@pytest.mark.parametrize("with_rows", [True, False])
def test_no_coordinator_exits_3_with_the_last_known_values(capsys, config_path, board, with_rows):
    if with_rows:
        board.write([healthy("master", "source", pending_orders=7), healthy("broker-a")])

    code, report = status_json(capsys, config_path)
    plain_code, out, _ = status(capsys, config_path)

    assert (code, plain_code) == (3, 3)
    assert "coordinator: not running" in out
    assert report["coordinator"] == {
        "running": False, "pid": None, "state": str(config_path.parent / "state" / "copier.db"), "state_error": None,
        "status_updated_at": report["coordinator"]["status_updated_at"], "schedule": None, "next_run": None,
    }
    assert report["health"] == "not running"
    master = terminal(report, "master")
    assert master["health"] == "not running"
    assert master["worker_online"] is False  # no coordinator, no worker talking to it
    assert (master["terminal_reachable"], master["broker_connected"], master["account_ok"]) == (None, None, None)
    assert master["pending_orders"] == (7 if with_rows else None)


def test_no_state_at_all_is_not_running_in_json_too(capsys, config_path, tmp_path):
    code, out, err = status(capsys, config_path, "--json")

    report = json.loads(out)
    assert code == 3
    assert report["coordinator"]["running"] is False
    assert [t["name"] for t in report["terminals"]] == ["master", "broker-a", "broker-c"]
    assert terminal(report, "broker-a")["pending_orders"] is None
    assert "the copier has not run with this config" in err


# ---------------------------------------------------------------------------------------------------
# What each terminal says


def test_the_json_names_every_fact_of_every_configured_terminal(capsys, config_path, store, board, running):
    store.adopt_link("broker-a", Link(source_ticket=10000017, copy_ticket=23000002, symbol="EURUSD", volume=0.1))
    board.write([
        healthy("master", "source", pending_orders=3, copies=0, orphans=0),
        healthy("broker-a", pending_orders=2, copies=1, orphans=1, restarts=1, skipped=((10000018, "capped"),),
                orphan_list=((23000009, 10000009, "confirming (1 of 3 checks)"),), last_error="requote"),
    ])

    code, report = status_json(capsys, config_path)

    assert code == 0
    broker_a = terminal(report, "broker-a")
    assert set(broker_a) == {
        "name", "role", "enabled", "health", "problems", "worker_online", "terminal_reachable", "broker_connected",
        "account", "expected_account", "account_ok", "pending_orders", "copies", "orphans", "failed",
        "unmanaged_copies", "links_recorded", "restarts", "last_sync_at", "last_error", "skipped", "orphan_list",
        "positions", "position_list", "updated_at", "removed", "remote", "worker_pid", "worker_host",
        "worker_version", "connected_since", "last_seen", "reconnects", "control_mode", "control_reason",
        "control_set_by", "control_since", "next_run", "left_out_by_filter",
    }
    assert {key: broker_a[key] for key in ("name", "role", "enabled", "health", "problems", "worker_online",
                                           "terminal_reachable", "broker_connected", "account", "expected_account",
                                           "account_ok", "pending_orders", "copies", "orphans", "failed",
                                           "unmanaged_copies", "links_recorded", "restarts", "last_error")} == {
        "name": "broker-a", "role": "target", "enabled": True, "health": "healthy", "problems": [],
        "worker_online": True, "terminal_reachable": True, "broker_connected": True, "account": "2001@Sim-Server",
        "expected_account": "2001@Sim-Server", "account_ok": True, "pending_orders": 2, "copies": 1, "orphans": 1,
        "failed": 0, "unmanaged_copies": 0, "links_recorded": 1, "restarts": 1, "last_error": "requote",
    }
    assert broker_a["skipped"] == [{"source_ticket": 10000018, "reason": "capped"}]
    assert broker_a["orphan_list"] == [
        {"copy_ticket": 23000009, "source_ticket": 10000009, "state": "confirming (1 of 3 checks)"}]
    assert datetime.fromisoformat(broker_a["last_sync_at"]).tzinfo is not None
    master = terminal(report, "master")
    assert (master["copies"], master["orphans"], master["failed"], master["links_recorded"]) == (None,) * 4
    assert master["last_error"] is None


def test_an_offline_worker_shows_unknown_counts_not_zero(capsys, config_path, board, running):
    board.write([healthy("master", "source"),
                 healthy("broker-a", online=False, terminal_reachable=None, connected=None, account_ok=None,
                         pending_orders=None, copies=None, orphans=None)])

    code, report = status_json(capsys, config_path)
    _, out, _ = status(capsys, config_path)

    assert code == 1
    broker_a = terminal(report, "broker-a")
    assert (broker_a["pending_orders"], broker_a["copies"], broker_a["orphans"]) == (None, None, None)
    assert broker_a["worker_online"] is False
    block = out[out.index("target broker-a"):out.index("target broker-c")]
    assert "  pending orders: unknown\n" in block
    assert "  copies: unknown (links recorded: 0)\n" in block
    assert "  orphans: unknown\n" in block


def test_a_worker_that_runs_but_cannot_reach_its_terminal_is_online(capsys, config_path, board, running):
    board.write([healthy("master", "source"),
                 healthy("broker-a", terminal_reachable=False, connected=None, account_ok=None,
                         last_error="terminal not found: /x/terminals/broker-a")])

    _, report = status_json(capsys, config_path)
    _, out, _ = status(capsys, config_path)

    broker_a = terminal(report, "broker-a")
    assert (broker_a["worker_online"], broker_a["terminal_reachable"]) == (True, False)
    assert broker_a["problems"] == ["terminal unreachable"]
    assert "  worker: online; terminal: unreachable\n" in out


def test_a_wrong_account_is_shown_with_the_expected_one(capsys, config_path, board, running):
    board.write([healthy("master", "source", account="5555@Sim-Server", account_ok=False), healthy("broker-a")])

    code, out, _ = status(capsys, config_path)

    assert code == 1
    assert "  account: 5555@Sim-Server (WRONG ACCOUNT: expected 1001@Sim-Server)\n" in out


def test_a_disabled_target_shows_the_copies_left_there_unmanaged(capsys, config_path, board, running):
    board.write([healthy("master", "source"), healthy("broker-a"), disabled(unmanaged=3)])

    code, report = status_json(capsys, config_path)
    _, out, _ = status(capsys, config_path)

    assert code == 0  # left alone on purpose: not a failure
    broker_c = terminal(report, "broker-c")
    assert (broker_c["enabled"], broker_c["health"], broker_c["unmanaged_copies"]) == (False, "disabled", 3)
    assert broker_c["worker_online"] is None
    block = out[out.index("target broker-c"):]
    assert block.splitlines()[:2] == [
        "target broker-c: disabled", "  disabled: no worker runs for it; copies left there unmanaged: 3"]


def test_a_disabled_target_without_a_row_counts_its_recorded_copies(capsys, config_path, store):
    store.adopt_link("broker-c", Link(source_ticket=10000017, copy_ticket=23000002, symbol="EURUSD", volume=0.1))
    store.adopt_link("broker-c", Link(source_ticket=10000018, copy_ticket=23000003, symbol="EURUSD", volume=0.1))

    code, report = status_json(capsys, config_path)

    assert code == 3
    assert terminal(report, "broker-c")["unmanaged_copies"] == 2
    assert terminal(report, "broker-c")["health"] == "disabled"
