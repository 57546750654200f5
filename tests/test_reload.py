"""``mt5-copier reload`` and SIGHUP: the exit codes (0 applied, 2 refused, 3 no coordinator), the request files
between the command and the coordinator, and with real processes: a target added and removed while the
coordinator runs, the workers of unchanged terminals untouched."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import load_config
from coordinator.cli.app import main
from coordinator.cli.operator import gather_status
from coordinator.persistence.status import TerminalStatus
from coordinator.runtime.operator_requests import NoAnswer, RequestInbox, requests_folder
from coordinator.runtime.reload_requests import ReloadRequest, ReloadResult, request_reload
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, copier_config, copies, place_pending, sim_terminals, target_section

CONFIG = copier_config(target_section("alpha", 2001))


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "copier.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


class FakeCoordinator:
    """The coordinator's side of the request files, on a thread, answering every request with ``result``."""

    def __init__(self, state_dir: Path, result: ReloadResult) -> None:
        self.inbox = RequestInbox(state_dir)
        self.result = result
        self.asked: list[Path | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            for request in self.inbox.take():
                self.asked.append(ReloadRequest.from_request(request).config)
                self.inbox.answer(request, self.result.to_body())
            time.sleep(0.02)

    def __enter__(self) -> FakeCoordinator:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# ---------------------------------------------------------------------------------------------------
# the command, with no coordinator or a stand-in


def test_no_coordinator_running_exits_3_and_asks_nobody(capsys, config_path, tmp_path):
    code, out, err = cli(capsys, "reload", "--config", str(config_path))

    assert code == 3
    assert out == ""
    assert f"no coordinator is running on {tmp_path / 'state'}" in err
    assert not requests_folder(tmp_path / "state").exists()


def test_a_config_that_does_not_load_is_refused_with_every_problem_and_the_coordinator_is_not_asked(
        capsys, config_path, tmp_path, running):
    config_path.write_text(CONFIG + "lot_multiplier = 0\nmax_lot = 0.1\nmin_lot = 0.5\n", encoding="utf-8")

    code, _, err = cli(capsys, "reload", "--config", str(config_path))

    assert code == 2
    assert "targets[0] (alpha).lot_multiplier" in err and "min_lot" in err
    assert "the running coordinator was not asked" in err
    assert not requests_folder(tmp_path / "state").exists()


def test_an_applied_reload_exits_0_and_says_what_changed(capsys, config_path, tmp_path, running):
    with FakeCoordinator(tmp_path / "state", ReloadResult(applied=True, changes=("added: beta",))) as coordinator:
        code, out, err = cli(capsys, "reload", "--config", str(config_path))

    assert code == 0, err
    assert out == f"{config_path}: reloaded by the coordinator (pid {running})\n  added: beta\n"
    assert coordinator.asked == [config_path]
    assert list(requests_folder(tmp_path / "state").iterdir()) == []  # both files are gone


def test_a_refused_reload_exits_2_with_every_problem(capsys, config_path, tmp_path, running):
    problems = ("coordinator.bind: the coordinator's socket is bound once, at start-up (a restart applies it)",
                "source.name: the source terminal is renamed (master -> m2) (a restart applies it)")
    with FakeCoordinator(tmp_path / "state", ReloadResult(applied=False, problems=problems)):
        code, out, err = cli(capsys, "reload", "--config", str(config_path))

    assert code == 2
    assert out == ""
    assert err.splitlines() == [f"reload refused by the coordinator (pid {running}); it goes on with the config it "
                                "runs (2 problems):", *problems]


def test_a_coordinator_that_never_takes_the_request_times_out_and_the_request_is_withdrawn(tmp_path, running):
    state_dir = tmp_path / "state"

    with pytest.raises(NoAnswer, match="did not take the request within 1s"):
        request_reload(state_dir, tmp_path / "copier.toml", still_running=lambda: True, timeout=1.0)

    assert list(requests_folder(state_dir).iterdir()) == []
    assert RequestInbox(state_dir).take() == []


# ---------------------------------------------------------------------------------------------------
# a real coordinator


def rows(config_path: Path) -> dict[str, TerminalStatus]:
    report = gather_status(load_config(config_path), time.time())
    return {terminal.name: terminal.row for terminal in report.terminals if terminal.row is not None}


def online(config_path: Path, *names: str) -> bool:
    found = rows(config_path)
    return all(name in found and found[name].online and found[name].worker_pid for name in names)


@pytest.fixture
def coordinator(copier) -> Iterator[tuple[object, list]]:
    terminals = sim_terminals(copier.directory, "alpha", "beta")
    copier.write_config(CONFIG)
    process = copier.start_scheduler()
    try:
        wait_for(lambda: online(copier.config_path, "master", "alpha"), timeout=30,
                 message="the coordinator and its workers did not come up")
        yield process, terminals
    finally:
        code, output = copier.stop(process)
        assert code == 0, output


def reload(copier, *extra: str) -> tuple[int, str]:
    run = copier.run("reload", "--config", str(copier.config_path), *extra, timeout=30)
    return run.code, run.output


def test_reload_adds_and_removes_targets_and_refuses_what_needs_a_restart(copier, coordinator):
    _, (master, alpha, beta) = coordinator
    before = rows(copier.config_path)
    pids = {name: before[name].worker_pid for name in ("master", "alpha")}

    # What only a restart applies is refused whole; the running config goes on.
    copier.write_config(CONFIG.replace('bind = "tcp://127.0.0.1:*"', 'bind = "tcp://127.0.0.1:5999"')
                        + target_section("beta", 3001))
    code, output = reload(copier)
    assert code == 2, output
    assert "coordinator.bind: the coordinator's socket is bound once, at start-up" in output
    # Another file on the same state folder is not the one the coordinator runs.
    other = copier.directory / "other.toml"
    other.write_text(CONFIG, encoding="utf-8")
    refused = copier.run("reload", "--config", str(other), timeout=30)
    assert refused.code == 2 and f"this coordinator runs on {copier.config_path}, not {other}" in refused.output

    # A target added: its worker starts and it is copied to; the others keep their workers.
    copier.write_config(CONFIG + target_section("beta", 3001, "lot_multiplier = 2"))
    code, output = reload(copier)
    assert code == 0, output
    assert "added: beta" in output
    ticket = place_pending(master, BUY_LIMIT, volume=0.1)
    wait_for(lambda: ticket in copies(beta) and ticket in copies(alpha), timeout=30,
             message="the added target is not copied to")
    assert copies(beta)[ticket].volume_initial == pytest.approx(0.2)
    now = rows(copier.config_path)
    assert {name: now[name].worker_pid for name in pids} == pids
    assert (now["alpha"].reconnects, now["master"].reconnects) == (0, 0)

    # A target removed: its worker stops, its copy stays, status says so.
    copier.write_config(copier_config(target_section("beta", 3001, "lot_multiplier = 2")))
    code, output = reload(copier)
    assert code == 0, output
    assert "removed: alpha" in output
    wait_for(lambda: rows(copier.config_path).get("alpha") is not None
             and rows(copier.config_path)["alpha"].removed, timeout=10, message="status does not say alpha left")
    row = rows(copier.config_path)["alpha"]
    assert row.unmanaged_copies == 1
    assert ticket in copies(alpha)  # left as it is
    status = copier.run("status", "--config", str(copier.config_path), timeout=30)
    assert "target alpha: removed" in status.output
    assert "removed from the config; 1 copies left as they are" in status.output
    assert rows(copier.config_path)["master"].worker_pid == pids["master"]


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no SIGHUP (mt5-copier reload works there)")
def test_sighup_reloads_like_the_command(copier, coordinator):
    process, (master, _, beta) = coordinator
    copier.write_config(CONFIG + target_section("beta", 3001))

    os.kill(process.pid, signal.SIGHUP)

    wait_for(lambda: online(copier.config_path, "beta"), timeout=30, message="SIGHUP did not add beta")
    ticket = place_pending(master, BUY_LIMIT)
    wait_for(lambda: ticket in copies(beta), timeout=30, message="the target added by SIGHUP is not copied to")
