"""``mt5-copier pause`` / ``resume``: recorded in copier.db whether a coordinator runs or not, their exit codes and
words, how ``status`` and ``history`` show a control; and once, with real processes, that a running coordinator
applies a pause within a second and a resume sends what waited."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from config import load_config
from coordinator.cli.app import main
from coordinator.cli.controls import control_command
from coordinator.domain.controls import TargetControl, TargetMode
from coordinator.persistence.controls import read_controls, set_control
from coordinator.persistence.state import StateStore
from coordinator.persistence.status import StatusBoard, TerminalStatus
from tests.conftest import wait_for
from tests.simhelpers import (
    BUY_LIMIT,
    copier_config,
    copies,
    log_text,
    place_pending,
    sim_terminals,
    target_section,
)
from tests.test_operator import CONFIG  # the same two targets, broker-a and broker-b


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "copier.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def recorded(tmp_path: Path) -> dict[str, TargetControl]:
    with sqlite3.connect(tmp_path / "state" / "copier.db") as db:
        return read_controls(db)


def test_pause_with_no_state_yet_makes_one_and_the_pause_holds_for_the_first_start(capsys, tmp_path, config_path):
    code, out, err = cli(capsys, "pause", "--config", str(config_path), "--target", "broker-a")

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "broker-a: paused: nothing is sent to it (no placements, edits, removals or closes); its copies stay as "
        "they are, still watched",
        f"no coordinator is running on {tmp_path / 'state'}: in force from its next start"]
    control = recorded(tmp_path)["broker-a"]
    assert (control.mode, control.set_by, control.reason) == (TargetMode.PAUSED, "operator", "paused by the operator")
    assert abs(control.set_at - time.time()) < 60
    assert "broker-b" not in recorded(tmp_path)

    code, out, _ = cli(capsys, "history", "--config", str(config_path))
    assert code == 0 and "broker-a  control  paused  paused by the operator" in out and "source #0" not in out


def test_without_target_every_target_and_again_says_nothing_changed(capsys, tmp_path, config_path):
    assert cli(capsys, "pause", "--config", str(config_path), "--close-only")[0] == 0
    assert {name: c.mode for name, c in recorded(tmp_path).items()} == {"broker-a": TargetMode.CLOSE_ONLY,
                                                                        "broker-b": TargetMode.CLOSE_ONLY}
    code, out, _ = cli(capsys, "pause", "--config", str(config_path), "--close-only", "--target", "broker-b")
    assert code == 0 and out.startswith("broker-b: already close-only by the operator (since ")

    code, out, _ = cli(capsys, "resume", "--config", str(config_path))
    assert code == 0
    assert out.splitlines()[:2] == ["broker-a: active: copying resumed (was close-only)",
                                    "broker-b: active: copying resumed (was close-only)"]
    assert {c.mode for c in recorded(tmp_path).values()} == {TargetMode.ACTIVE}
    assert cli(capsys, "resume", "--config", str(config_path), "--target", "broker-a")[1].startswith(
        "broker-a: already active: nothing changed")


def test_resume_says_it_clears_a_tripped_guard(capsys, tmp_path, config_path):
    store = StateStore(tmp_path / "state")
    set_control(store.connection, "broker-a", TargetControl(
        TargetMode.CLOSE_ONLY, reason="close-only: risk guard max_drawdown_percent 20: equity 7900.00 is 21.0% below "
        "its peak 10000.00", set_by="guard:max_drawdown_percent", set_at=time.time()))
    store.close()
    code, out, _ = cli(capsys, "resume", "--config", str(config_path), "--target", "broker-a")
    assert code == 0
    assert out.splitlines()[0] == ("broker-a: active: copying resumed (the risk guard is cleared: close-only: risk "
                                   "guard max_drawdown_percent 20: equity 7900.00 is 21.0% below its peak 10000.00; "
                                   "its equity peak starts again from now)")


@pytest.mark.parametrize("name", ["broker-z", "master"])
def test_an_unknown_target_or_the_source_is_refused_with_exit_2_naming_the_targets(capsys, tmp_path, config_path,
                                                                                     name):
    code, out, err = cli(capsys, "pause", "--config", str(config_path), "--target", name)
    assert (code, out) == (2, "")
    assert ("configured targets: broker-a, broker-b" in err) if name == "broker-z" else "is the source" in err
    assert not (tmp_path / "state").exists()


def test_a_running_coordinator_is_said_to_apply_it(capsys, config_path, running):
    code, out, _ = cli(capsys, "pause", "--config", str(config_path), "--target", "broker-a")
    assert code == 0 and out.splitlines()[-1] == f"the running coordinator (pid {running}) applies it within a second"


def test_a_state_file_from_a_newer_copier_is_refused_with_exit_3_and_left_alone(capsys, tmp_path, config_path):
    StateStore(tmp_path / "state").close()
    with sqlite3.connect(tmp_path / "state" / "copier.db") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    code, out, err = cli(capsys, "pause", "--config", str(config_path))
    assert (code, out) == (3, "")
    assert "written by a newer mt5-copier" in err and "nothing was changed" in err
    assert recorded(tmp_path) == {}


def row(name: str, role: str = "target", **fields) -> TerminalStatus:
    now = time.time()
    values = dict(name=name, role=role, online=True, terminal_reachable=True, connected=True,
                  account={"master": "1001", "broker-a": "2001", "broker-b": "3001"}[name] + "@Sim-Server",
                  account_ok=True, pending_orders=1, copies=1, orphans=0, skipped=(), last_sync_at=now - 1,
                  last_error="", updated_at=now)
    values.update(fields)
    return TerminalStatus(**values)


def test_status_shows_an_operators_pause_plainly_and_a_tripped_guard_as_degraded(capsys, tmp_path, config_path,
                                                                                  board, running):
    since = time.time() - 60
    board.write([row("master", "source"),
                 row("broker-a", control_mode="paused", control_reason="paused by the operator",
                     control_set_by="operator", control_since=since),
                 row("broker-b")])
    code, out, _ = cli(capsys, "status", "--config", str(config_path))
    assert code == 0, "an operator's pause is not a problem"
    assert "target broker-a: healthy\n  PAUSED: paused by the operator (since " in out
    assert ": nothing is sent to it, its copies stay as they are; `mt5-copier resume --config FILE --target " \
           "broker-a` ends it\n" in out

    board.write([row("master", "source"), row("broker-a"),
                 row("broker-b", control_mode="close_only", control_reason="close-only: risk guard min_equity 2000: "
                     "equity 1890.00", control_set_by="guard:min_equity", control_since=since)])
    code, out, _ = cli(capsys, "status", "--config", str(config_path), "--json")
    report = json.loads(out)
    assert code == 1 and report["health"] == "degraded"
    broker_b = next(t for t in report["terminals"] if t["name"] == "broker-b")
    assert (broker_b["control_mode"], broker_b["control_set_by"]) == ("close_only", "guard:min_equity")
    assert broker_b["control_reason"] == "close-only: risk guard min_equity 2000: equity 1890.00"
    assert broker_b["control_since"] is not None and broker_b["problems"][0].startswith("close-only: risk guard")
    master = next(t for t in report["terminals"] if t["name"] == "master")
    assert master["control_mode"] is None
    broker_a = next(t for t in report["terminals"] if t["name"] == "broker-a")
    assert (broker_a["control_mode"], broker_a["control_reason"], broker_a["control_since"]) == ("active", None, None)


def test_with_no_coordinator_status_shows_what_is_recorded_for_the_next_start(capsys, tmp_path, config_path):
    cli(capsys, "pause", "--config", str(config_path), "--target", "broker-b")
    code, out, _ = cli(capsys, "status", "--config", str(config_path))
    assert code == 3
    assert "target broker-b\n  PAUSED: paused by the operator (since " in out
    assert "; in force from the coordinator's next start" in out


def test_status_board_rows_keep_the_control_columns(store):
    board = StatusBoard(store.connection)
    board.write([row("broker-a", control_mode="paused", control_reason="r", control_set_by="operator",
                     control_since=12.5), row("broker-b")])
    a, b = board.read()
    assert (a.control_mode, a.control_reason, a.control_set_by, a.control_since) == ("paused", "r", "operator", 12.5)
    assert (b.control_mode, b.control_reason, b.control_set_by, b.control_since) == ("active", "", "", None)


# ---- with real processes ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_running_coordinator_applies_a_pause_within_a_second_and_a_resume_sends_what_waited(copier, tmp_path):
    master, alpha = sim_terminals(tmp_path, "alpha")
    config = load_config(copier.write_config(copier_config(target_section("alpha", 2001), interval=0.5)))
    first = place_pending(master, BUY_LIMIT)
    scheduler = copier.start_scheduler()
    wait_for(lambda: first in copies(alpha), message="the first order was never copied")

    asked = time.monotonic()
    assert control_command(config, TargetMode.PAUSED, target="alpha") == 0  # this process; the coordinator's is another
    wait_for(lambda: "target alpha is now paused: paused by the operator" in log_text(tmp_path), timeout=3.0,
             interval=0.02, message="the running coordinator did not apply the pause")
    assert time.monotonic() - asked < 1.5, "read every half second: applied within a second (and its log line)"
    second = place_pending(master, BUY_LIMIT, volume=0.2)
    time.sleep(1.2)  # the source's change and two reconciliations (interval 0.5): none may reach alpha
    assert set(copies(alpha)) == {first}, "a copy was placed on a paused target"

    assert control_command(config, TargetMode.ACTIVE, target="alpha") == 0
    wait_for(lambda: second in copies(alpha), timeout=3.0, message="the held placement was not sent after resume")
    code, output = copier.stop(scheduler)
    assert code == 0, output
    assert "target alpha is active again (resumed by the operator): 1 held action(s)" in log_text(tmp_path)
