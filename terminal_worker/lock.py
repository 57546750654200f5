"""One worker per terminal: an exclusive lock file held for the worker's whole life.

A worker that starts while an older one for the same terminal is still alive (a coordinator restarted
before its orphaned worker noticed) waits here until the old one exits, so two processes never trade one
account at once and the new worker's first snapshot already shows everything the old one did.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO

from loguru import logger


class TerminalLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def acquire(self, timeout: float, should_stop=lambda: False) -> bool:
        """Try until ``timeout`` seconds have passed; True once held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - held open for the process's life
        deadline = time.monotonic() + timeout
        warned = False
        while True:
            if _try_lock(handle):
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n".encode())
                handle.flush()
                self._file = handle
                return True
            if time.monotonic() >= deadline or should_stop():
                handle.close()
                return False
            if not warned:
                logger.warning("another worker still holds {}; waiting for it to exit", self.path)
                warned = True
            time.sleep(0.1)

    def release(self) -> None:
        if self._file is not None:
            _unlock(self._file)
            self._file.close()
            self._file = None


if sys.platform == "win32":
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(handle: IO[bytes]) -> None:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        except OSError:
            pass

else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
