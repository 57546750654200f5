"""One worker per terminal: an exclusive lock file held for the worker's whole life.

A worker that starts while an older one for the same terminal is still alive waits here a short while: an
older worker that is exiting (the orphan of a coordinator that was just killed notices within a second)
lets go, so two processes never trade one account at once and the new worker's first snapshot already shows
everything the old one did. One that does not let go is a second worker for the terminal: the caller
refuses to run, naming the pid written in the file.

The primitives at the bottom (``try_lock``, ``unlock``, ``read_pid``, ``write_pid``) also hold the
coordinator's own lock (``coordinator.runtime.instance_lock``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from loguru import logger


class TerminalLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def acquire(self, timeout: float, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Try until ``timeout`` seconds have passed; True once held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - held open for the process's life
        deadline = time.monotonic() + timeout
        warned = False
        while True:
            if try_lock(handle):
                write_pid(handle)
                self._file = handle
                return True
            if time.monotonic() >= deadline or should_stop():
                handle.close()
                return False
            if not warned:
                logger.warning("another worker (pid {}) still holds {}; waiting up to {:.0f}s for it to exit",
                               read_pid(handle) or "unknown", self.path, timeout)
                warned = True
            time.sleep(0.1)

    def holder_pid(self) -> int | None:
        """The pid written by the process holding the lock (None if unknown or nobody)."""
        try:
            with open(self.path, "rb") as handle:
                return read_pid(handle)
        except OSError:
            return None

    def release(self) -> None:
        if self._file is not None:
            unlock(self._file)
            self._file.close()
            self._file = None



def read_pid(handle: IO[bytes]) -> int | None:
    """The pid a lock holder wrote into its lock file (None if empty or unreadable)."""
    try:
        handle.seek(0)
        text = handle.read(32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(handle: IO[bytes]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()


if sys.platform == "win32":
    import msvcrt

    # Windows byte-range locks are mandatory: a locked byte cannot be read by anyone else. The lock sits on
    # one byte far past the pid so another process can still read who holds the file.
    _LOCK_OFFSET = 1 << 20

    def try_lock(handle: IO[bytes]) -> bool:
        """Take the exclusive lock on an open lock file without waiting; True if this handle now holds it."""
        try:
            handle.seek(_LOCK_OFFSET)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def unlock(handle: IO[bytes]) -> None:
        try:
            handle.seek(_LOCK_OFFSET)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        except OSError:
            pass

else:
    import fcntl

    def try_lock(handle: IO[bytes]) -> bool:
        """Take the exclusive lock on an open lock file without waiting; True if this handle now holds it."""
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
