"""One coordinator per state folder: an exclusive OS lock file held for the coordinator's whole life.

Two coordinators on one state folder would both own the same copy links and journal and both spawn workers
for the same terminals. The lock is the operating system's (flock / msvcrt), so it disappears with the
process however it dies: a stale file left by a crash never blocks the next start.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

from terminal_worker.lock import read_pid, try_lock, unlock, write_pid

LOCK_FILE_NAME = "coordinator.lock"

# `running_coordinator_pid` takes the lock for an instant to see whether anyone holds it; a coordinator
# starting in that instant retries over this short window instead of blaming a `status` call.
_PROBE_RACE_RETRIES = 5
_PROBE_RACE_PAUSE = 0.02


class AnotherCoordinatorRunning(Exception):
    def __init__(self, pid: int | None, state_dir: Path) -> None:
        self.pid = pid
        self.state_dir = state_dir
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"another coordinator ({who}) is running on this state folder ({state_dir})")


class CoordinatorLock:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE_NAME
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        """Hold the state folder's lock, or raise AnotherCoordinatorRunning at once (never waits for it)."""
        if self._file is not None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - held open for the coordinator's life
        for attempt in range(_PROBE_RACE_RETRIES):
            if try_lock(handle):
                write_pid(handle)
                self._file = handle
                return
            if attempt + 1 < _PROBE_RACE_RETRIES:
                time.sleep(_PROBE_RACE_PAUSE)
        pid = read_pid(handle)
        handle.close()
        raise AnotherCoordinatorRunning(pid, self.state_dir)

    def release(self) -> None:
        if self._file is None:
            return
        # Clear the pid first: a probe that reads the file after we are gone must not name a dead process.
        try:
            self._file.seek(0)
            self._file.truncate()
            self._file.flush()
        except OSError:
            pass
        unlock(self._file)
        self._file.close()
        self._file = None

    def __enter__(self) -> CoordinatorLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def running_coordinator_pid(state_dir: Path) -> int | None:
    """The pid of the live coordinator holding ``state_dir``'s lock, else None.

    Non-destructive: it never creates the folder or the file and never disturbs a holder; safe to call from
    another process (e.g. ``status``) while the coordinator runs.
    """
    path = state_dir / LOCK_FILE_NAME
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return None
    try:
        if try_lock(handle):
            unlock(handle)
            return None
        # A coordinator writes its pid right after taking the lock: give that instant a moment.
        for _ in range(_PROBE_RACE_RETRIES):
            pid = read_pid(handle)
            if pid is not None:
                return pid
            time.sleep(_PROBE_RACE_PAUSE)
        return None
    finally:
        handle.close()
