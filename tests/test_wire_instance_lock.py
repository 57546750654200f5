"""One coordinator per state folder: the OS lock file, seen from a second process and from `status`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordinator.runtime.instance_lock import AnotherCoordinatorRunning, CoordinatorLock, running_coordinator_pid

REPO = Path(__file__).resolve().parents[1]

HOLDER = """
import sys, time
from pathlib import Path
from coordinator.runtime.instance_lock import CoordinatorLock
lock = CoordinatorLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the state folder's lock until told (one line on stdin) to release it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "state")], cwd=REPO,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_second_coordinator_on_the_same_state_folder_is_refused_naming_the_holder(tmp_path, holder):
    state = tmp_path / "state"
    started = time.monotonic()
    with pytest.raises(AnotherCoordinatorRunning) as refused:
        CoordinatorLock(state).acquire()
    assert time.monotonic() - started < 1.0  # never waits for the other one
    assert refused.value.pid == holder.pid
    assert str(refused.value) == (
        f"another coordinator (pid {holder.pid}) is running on this state folder ({state})"
    )


def test_the_probe_names_the_live_holder_and_does_not_disturb_it(tmp_path, holder):
    state = tmp_path / "state"
    assert running_coordinator_pid(state) == holder.pid
    assert running_coordinator_pid(state) == holder.pid
    with pytest.raises(AnotherCoordinatorRunning):
        CoordinatorLock(state).acquire()


def test_the_lock_is_free_again_once_the_holder_releases_or_dies(tmp_path, holder):
    state = tmp_path / "state"
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "released"
    assert running_coordinator_pid(state) is None
    lock = CoordinatorLock(state)
    lock.acquire()
    try:
        assert running_coordinator_pid(state) is not None
    finally:
        lock.release()


def test_a_killed_holder_leaves_no_lock_behind(tmp_path, holder):
    holder.kill()
    holder.wait(timeout=10)
    state = tmp_path / "state"
    assert (state / "coordinator.lock").exists()  # the stale file stays, but it holds nothing
    assert running_coordinator_pid(state) is None
    with CoordinatorLock(state):
        pass


def test_the_probe_never_creates_the_state_folder(tmp_path):
    state = tmp_path / "nowhere" / "state"
    assert running_coordinator_pid(state) is None
    assert not state.exists()
    assert not state.parent.exists()


def test_the_holder_itself_probes_its_own_pid_and_can_acquire_twice(tmp_path):
    lock = CoordinatorLock(tmp_path)
    lock.acquire()
    try:
        lock.acquire()  # idempotent in one process
        assert running_coordinator_pid(tmp_path) == os.getpid()
    finally:
        lock.release()
    assert running_coordinator_pid(tmp_path) is None
