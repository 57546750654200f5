"""The command line as a person uses it: --version, check-config, output into a closed pipe, the demo's hint."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import mt5sim
from coordinator import __version__
from coordinator.cli.app import main

ROOT = Path(__file__).resolve().parent.parent

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
"""


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "copier.toml"
    path.write_text(text, encoding="utf-8")
    return path


def create_terminals(tmp_path: Path) -> None:
    mt5sim.create_terminal(tmp_path / "terminals" / "master", login=1001, server="Sim-Server")
    mt5sim.create_terminal(tmp_path / "terminals" / "broker-a", login=2001, server="Sim-Server")


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------------------
# --version


def test_version_prints_the_one_version_and_pyproject_agrees(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])

    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"mt5-copier {__version__}\n"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["version"] == __version__


# ---------------------------------------------------------------------------------------------------
# check-config


def test_check_config_reports_a_missing_sim_terminal_with_every_other_problem(capsys, tmp_path):
    path = write_config(tmp_path, CONFIG + "min_lot = 0.5\nmax_lot = 0.1\nlot_multiplier = 0\n")

    code, out, err = cli(capsys, "check-config", "--config", str(path))

    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"Invalid configuration in {path} (4 problems):",
        "targets[0] (broker-a).lot_multiplier: must be greater than 0, got 0",
        "targets[0] (broker-a).max_lot: must be at least targets[0].min_lot (0.5), got 0.1",
        f"source.path: the sim terminal folder {tmp_path / 'terminals' / 'master'} does not exist (create it with "
        "mt5sim.create_terminal, or correct the path)",
        f"targets[0] (broker-a).path: the sim terminal folder {tmp_path / 'terminals' / 'broker-a'} does not exist "
        "(create it with mt5sim.create_terminal, or correct the path)",
    ]


def test_check_config_accepts_existing_sim_terminals_and_explains_a_cap_of_0(capsys, tmp_path):
    create_terminals(tmp_path)
    path = write_config(tmp_path, CONFIG + "max_pending_orders = 0\n")

    code, out, _ = cli(capsys, "check-config", "--config", str(path))

    assert code == 0
    assert out.splitlines()[0] == f"{path}: valid"
    assert out.splitlines()[-1] == (
        "  note: broker-a: max_pending_orders = 0: no new copies are placed there; the copies already there are "
        "still followed (modified, and removed when their source order goes). To leave the target alone entirely "
        "use enabled = false."
    )


# ---------------------------------------------------------------------------------------------------
# Output into a pipe whose reader is gone (`mt5-copier status | head`)


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["history"], ["check-config"]])
def test_output_into_a_closed_pipe_ends_without_a_traceback(tmp_path, command):
    from coordinator.persistence.state import StateStore

    create_terminals(tmp_path)
    path = write_config(tmp_path)
    store = StateStore(tmp_path / "state")
    for ticket in range(10000001, 10000051):
        store.record_event("broker-a", ticket, "place", "ok")
    store.close()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first byte: every write meets a broken pipe
    try:
        finished = subprocess.run([sys.executable, "-m", "coordinator", *command, "--config", str(path)],
                                  stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT)
    finally:
        os.close(write_end)

    assert "Traceback" not in finished.stderr
    assert "BrokenPipeError" not in finished.stderr
    expected = {"status": 3, "history": 0, "check-config": 0}[command[0]]  # status: no coordinator runs
    assert finished.returncode == expected, finished.stderr


# ---------------------------------------------------------------------------------------------------
# The demo's closing suggestion


class _FinishedCoordinator:
    """Stands in for the real coordinator: the demo's own run is not what is tested here."""

    stopping = True

    def __init__(self, *_args, **_kwargs) -> None:
        pass

    def run(self) -> int:
        return 0

    def request_stop(self, _reason: str) -> None:
        pass


def test_the_demo_suggests_a_command_that_works_as_printed_without_an_activated_venv(capsys, tmp_path, monkeypatch):
    import coordinator.cli.demo as demo

    monkeypatch.setattr(demo, "Coordinator", _FinishedCoordinator)
    monkeypatch.setattr(demo, "install_signal_handlers", lambda _coordinator: None)
    monkeypatch.setattr(demo.ScriptedTrader, "run", lambda _self, _coordinator: None)

    demo.run_demo(duration=0.1, directory=tmp_path / "demo dir")  # a space, as in many Windows user folders

    hint = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Run it yourself: "))
    command = shlex.split(hint.removeprefix("Run it yourself: "))
    assert command[-4:] == ["run", "--config", str(tmp_path / "demo dir" / "copier.toml"), "--once"]
    # Run what was printed, from elsewhere, in a shell whose PATH knows nothing of the venv (check-config
    # in place of run: the same program and config, without starting the copier).
    environment = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    environment["PATH"] = os.defpath
    checked = subprocess.run([*command[:-4], "check-config", "--config", command[-2]], capture_output=True,
                             text=True, timeout=60, cwd=tmp_path, env=environment)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{command[-2]}: valid")


# ---------------------------------------------------------------------------------------------------
# The demo's story of positions


@pytest.mark.e2e
def test_the_demo_shows_copies_positions_following_their_source(tmp_path):
    """``demo --duration 10``, the real thing: the trader's three story orders fill on every terminal, then it
    moves the SL/TP of the EURUSD position, closes half of the GBPUSD one and all of the XAUUSD one (its steps
    shrink to fit 10 s: the story ends about 5 s in, leaving 5 s to the copier). Every copy follows, the log
    says so, the table shows it."""
    import coordinator.cli.demo as demo

    directory = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "coordinator", "demo", "--duration", "10", "--dir", str(directory)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    log, tables = run.stderr, run.stdout
    assert run.returncode == 0, log
    assert "Traceback" not in log
    trouble = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line
               or ("WARNING" in line and "demo trader: " in line)]  # a step of the trader's story failed
    assert trouble == [], log

    terminals = directory / "terminals"
    source = {record.symbol: record for record in demo.position_records(mt5sim.Terminal(terminals / "master")).values()}
    assert set(source) == {"EURUSD", "GBPUSD", "XAUUSD"}, log  # the story's positions, and only those
    moved, halved, closed = source["EURUSD"], source["GBPUSD"], source["XAUUSD"]
    [order] = mt5sim.Terminal(terminals / "master").history_orders_get(ticket=moved.ticket)
    assert moved.held == 0.2 and (moved.sl, moved.tp) != (order.sl, order.tp)  # the trader moved both
    assert (halved.opened, halved.held) == (0.4, 0.2)
    assert closed.opened == 0.1 and closed.held == 0

    sizes = {"broker-a": 2.0, "broker-b": 0.5, "broker-c": 1.0}  # the demo's lot multipliers
    for target in demo.TARGETS:
        copies = {record.magic: record for record in demo.position_records(mt5sim.Terminal(terminals / target.name))
                  .values() if record.comment == f"mtc#{record.magic}"}
        size = sizes[target.name]
        assert (copies[moved.ticket].sl, copies[moved.ticket].tp) == pytest.approx((moved.sl, moved.tp)), target.name
        assert copies[moved.ticket].held == pytest.approx(0.2 * size), target.name
        assert copies[halved.ticket].opened == pytest.approx(0.4 * size), target.name
        assert copies[halved.ticket].held == pytest.approx(0.2 * size), target.name
        assert copies[closed.ticket].opened == pytest.approx(0.1 * size) and copies[closed.ticket].held == 0, \
            target.name
        # The log told each of them.
        assert f"{target.name}: position #{copies[moved.ticket].ticket} of source #{moved.ticket} follows its SL/TP" \
            in log
        assert f"{target.name}: position #{copies[halved.ticket].ticket} of source #{halved.ticket}: closed " \
               f"{0.2 * size:g} lots" in log
        assert f"{target.name}: position #{copies[closed.ticket].ticket} of source #{closed.ticket}: closed " \
               f"{0.1 * size:g} lots" in log
        # And the table shows them in step with their source.
        assert f"  {target.name:<10}#{copies[halved.ticket].ticket} sell {target.symbol('GBPUSD')}" in tables
        assert f"{0.2 * size:g} of {0.4 * size:g}" in tables
    assert f"master      #{closed.ticket} buy XAUUSD        closed (0.1)" in tables
