"""Supervision of local workers: restart delays on an injected clock, the silence allowed before a worker
counts as hung, and (with real processes) hung and dying workers, and one coordinator per state folder."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

from config.loader import parse_config
from coordinator.persistence.status import read_status
from coordinator.runtime.supervisor import HEALTHY_UPTIME_SECONDS, MAX_RESTART_DELAY, Supervisor, allowed_silence
from coordinator.runtime.views import TerminalView
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, SELL_LIMIT, SELL_STOP, copies, log_text, place_pending
from tests.test_e2e_restart import (
    HEARTBEAT_INTERVAL,
    alive,
    assert_exact,
    needs_proc,
    no_duplicate_in,
    setup,
    wait_exact,
    workers,
)

CRASH = "MT5_COPIER_CRASH"


def _config(tmp_path: Path, *, worker_timeout: float = 10.0, connect_timeout: float = 60.0):
    return parse_config({
        "coordinator": {"state_dir": str(tmp_path / "state"), "worker_timeout": worker_timeout},
        "source": {"name": "src", "backend": "sim", "path": "s", "login": 1, "server": "S",
                   "connect_timeout": connect_timeout},
        "targets": [{"name": "t1", "backend": "sim", "path": "t1", "login": 2, "server": "S"}],
    }, base_dir=tmp_path)


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        return self.code or 0

    def kill(self) -> None:
        self.code = -9

    def send_signal(self, sig: int) -> None:
        self.code = 0


class FakeWorkers:
    """A supervisor over fake processes on a clock the test turns."""

    def __init__(self, tmp_path: Path) -> None:
        self.now = 0.0
        self.started: list[FakeProcess] = []
        config = _config(tmp_path)
        self.supervisor = Supervisor(tmp_path / "c.toml", "tcp://127.0.0.1:1", [config.source], restart=True,
                                     clock=lambda: self.now, spawn=self._spawn)
        self.supervisor.start_all()

    def _spawn(self, _command: list[str]) -> FakeProcess:
        self.started.append(FakeProcess(len(self.started) + 1))
        return self.started[-1]

    def crash_after(self, uptime: float) -> float:
        """The running worker dies ``uptime`` seconds after it started; return the delay before its restart."""
        self.now += uptime
        self.started[-1].code = 137
        count = len(self.started)
        assert self.supervisor.check() == [("src", 137)]
        died_at = self.now
        while len(self.started) == count:
            self.now += 0.5
            self.supervisor.check()
        return self.now - died_at


def test_restart_delay_doubles_for_a_crash_loop_and_resets_after_a_healthy_run(tmp_path):
    workers = FakeWorkers(tmp_path)
    delays = [workers.crash_after(uptime=1.0) for _ in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_RESTART_DELAY, MAX_RESTART_DELAY]

    # A worker that ran for a while was working: its next crash is restarted at once again.
    assert workers.crash_after(uptime=HEALTHY_UPTIME_SECONDS) == 1.0
    assert workers.crash_after(uptime=1.0) == 2.0
    assert workers.supervisor.restarts("src") == 9


def test_a_worker_killed_as_hung_does_not_count_as_healthy_however_long_it_ran(tmp_path):
    workers = FakeWorkers(tmp_path)
    assert workers.crash_after(uptime=1.0) == 1.0
    workers.now += HEALTHY_UPTIME_SECONDS
    assert workers.supervisor.watchable_since("src") is not None
    workers.supervisor.kill_hung("src")
    assert workers.supervisor.watchable_since("src") is None  # killed once, not again on every loop
    assert workers.supervisor.check() == [("src", -9)]
    assert workers.supervisor.restarts("src") == 2
    workers.now += 1.9
    workers.supervisor.check()
    assert len(workers.started) == 2, "restarted after 1 s: the hung run reset the delay"
    workers.now += 0.1
    workers.supervisor.check()
    assert len(workers.started) == 3


def test_a_worker_holding_its_terminal_may_be_silent_for_worker_timeout_only(tmp_path):
    config = _config(tmp_path, worker_timeout=4.0, connect_timeout=60.0)
    view = TerminalView(config.source, welcomed=True, online=True)
    assert allowed_silence(view, config.coordinator) == 4.0


def test_a_worker_attaching_to_its_terminal_gets_the_connect_timeout_and_the_retry_pause(tmp_path):
    # Real MT5: initialize blocks up to connect_timeout, and before its hello a worker is silent between two
    # attempts too (up to 30 s). Killing it then would only start the same wait again.
    config = _config(tmp_path, worker_timeout=4.0, connect_timeout=60.0)
    before_hello = TerminalView(config.source)
    assert allowed_silence(before_hello, config.coordinator) == 60.0 + 30.0 + 4.0
    reattaching = TerminalView(config.source, welcomed=True, online=True, terminal_link_ok=False)
    assert allowed_silence(reattaching, config.coordinator) == 60.0 + 30.0 + 4.0


# ---- real processes ----------------------------------------------------------------------------


def _status_restarts(directory: Path, name: str) -> int:
    """The restart count the running coordinator publishes for ``mt5-copier status``."""
    with contextlib.closing(sqlite3.connect(directory / "state" / "copier.db")) as db:
        rows = {row.name: row for row in read_status(db)}
    return rows[name].restarts if name in rows else 0


@needs_proc
def test_a_stopped_worker_is_killed_after_worker_timeout_and_restarted(copier):
    worker_timeout = 1.0
    terminals = setup(copier, worker_timeout=worker_timeout)
    first = place_pending(terminals.master, BUY_LIMIT)
    scheduler = copier.start_scheduler()
    try:
        wait_for(lambda: first in copies(terminals.alpha), message="not copied before the hang")
        hung = workers(scheduler.pid)["alpha"]
        os.kill(hung, signal.SIGSTOP)  # what a terminal call blocked for a minute looks like from outside
        stopped_at = time.monotonic()
        wait_for(lambda: not alive(hung), timeout=10, message="the stopped worker was not killed")
        killed_after = time.monotonic() - stopped_at
        wait_for(lambda: workers(scheduler.pid).get("alpha", hung) != hung, timeout=10,
                 message="no new alpha worker")
        second = place_pending(terminals.master, SELL_STOP, symbol="GBPUSD")
        wait_for(lambda: second in copies(terminals.alpha), timeout=15, message="not copied after the restart")
        wait_for(lambda: _status_restarts(copier.directory, "alpha") == 1, timeout=5,
                 message="status does not count the restart")
    finally:
        code, output = copier.stop(scheduler)
    assert code == 0, output
    # Silence counts from the worker's last message, which may precede the stop by up to one heartbeat.
    assert worker_timeout - HEARTBEAT_INTERVAL <= killed_after < worker_timeout + 4.0, output
    assert "ERROR" in output and "worker alpha has been silent for" in output, output
    assert "worker alpha exited with code -9; restarting" in output, output
    no_duplicate_in(output)
    assert_exact(terminals, output)


@needs_proc
def test_commands_of_a_worker_that_died_mid_batch_settle_within_seconds_not_command_timeout(copier):
    # Each alpha/beta worker dies after the first command of a batch of several. Before, the rest of the batch
    # stayed "in flight" for command_timeout + 3 s (33 s here) although the process was known to be dead.
    terminals = setup(copier, command_timeout=30.0)
    place_pending(terminals.master, BUY_LIMIT)
    place_pending(terminals.master, SELL_LIMIT)
    started = time.monotonic()
    scheduler = copier.start_scheduler(env={CRASH: "mid-batch"})
    try:
        failure = wait_exact(terminals, timeout=15)
        took = time.monotonic() - started
    finally:
        code, output = copier.stop(scheduler)
    assert not failure, f"{failure}\n{output}"
    assert code == 0, output
    assert took < 15, output
    assert "worker alpha exited with code 137; restarting" in output, output
    assert "the worker exited before answering" in output, output
    no_duplicate_in(output)
    assert_exact(terminals, output)


def test_a_second_coordinator_on_the_same_state_folder_exits_3_and_starts_nothing(copier):
    terminals = setup(copier)
    first_order = place_pending(terminals.master, BUY_LIMIT)
    scheduler = copier.start_scheduler()
    try:
        wait_for(lambda: first_order in copies(terminals.alpha), message="the first coordinator does not copy")
        second = copier.once(timeout=20)
        assert second.code == 3, second.output
        assert f"another coordinator (pid {scheduler.pid}) is running on this state folder" in second.output
        assert "CRITICAL" in second.output, second.output
        assert "listening" not in second.output and "connected" not in second.output, second.output
        assert log_text(copier.directory, "worker-alpha").count("worker alpha (target) starting") == 1

        later = place_pending(terminals.master, SELL_STOP, symbol="GBPUSD")
        wait_for(lambda: later in copies(terminals.alpha), message="the first coordinator stopped copying")
    finally:
        code, output = copier.stop(scheduler)
    assert code == 0, output
    assert "refusing" not in output and "exited with code" not in output, output
    assert_exact(terminals, output)
