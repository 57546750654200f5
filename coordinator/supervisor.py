"""Starts local workers as subprocesses, exactly as a user starts a remote one, and restarts crashed ones.

Real subprocesses (not multiprocessing): the local and the remote start-up path are one code path, and
Windows' spawn-mode re-imports cannot surprise anyone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from config import TerminalConfig

EXIT_CONFIG = 2  # a worker that exits with this will not fix itself: do not restart it
MAX_RESTART_DELAY = 30.0


@dataclass
class _Child:
    terminal: TerminalConfig
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    gave_up: bool = False


class Supervisor:
    def __init__(self, config_path: Path, endpoint: str, terminals: list[TerminalConfig], *, restart: bool,
                 console_level: str = "WARNING") -> None:
        self._config_path = config_path
        self._endpoint = endpoint
        self._restart = restart
        self._console_level = console_level
        self._children = {terminal.name: _Child(terminal) for terminal in terminals}

    def start_all(self) -> None:
        for child in self._children.values():
            self._start(child)

    def _start(self, child: _Child) -> None:
        command = [
            sys.executable, "-m", "terminal_worker",
            "--config", str(self._config_path),
            "--terminal", child.terminal.name,
            "--connect", self._endpoint,
            "--parent-pid", str(_own_pid()),
            "--console-level", self._console_level,
        ]
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
        child.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, creationflags=flags)
        logger.debug("started worker {} (pid {})", child.terminal.name, child.process.pid)

    def check(self) -> list[tuple[str, int]]:
        """Reap exited workers, restart them per policy; return the (name, exit code) of those that exited."""
        exited: list[tuple[str, int]] = []
        now = time.monotonic()
        for name, child in self._children.items():
            if child.process is not None:
                code = child.process.poll()
                if code is None:
                    continue
                child.process = None
                exited.append((name, code))
                if code == 0 or code == EXIT_CONFIG or not self._restart:
                    # 0: it was asked to stop (a signal, or the coordinator); 2: it cannot fix itself.
                    child.gave_up = True
                    if self._restart and code == EXIT_CONFIG:
                        logger.critical("worker {} exited with a configuration error; not restarting it", name)
                    continue
                child.restarts += 1
                delay = min(2.0 ** (child.restarts - 1), MAX_RESTART_DELAY)
                child.next_start = now + delay
                logger.error("worker {} exited with code {}; restarting in {:.0f}s", name, code, delay)
            elif not child.gave_up and now >= child.next_start:
                self._start(child)
        return exited

    def running(self, name: str) -> bool:
        child = self._children.get(name)
        return child is not None and child.process is not None and child.process.poll() is None

    def stop_all(self, timeout: float = 5.0) -> None:
        """Workers were asked to stop over the wire; wait, then signal, then kill what is left."""
        deadline = time.monotonic() + timeout
        for child in self._children.values():
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _interrupt(child.process)
        for child in self._children.values():
            if child.process is None:
                continue
            try:
                child.process.wait(2.0)
            except subprocess.TimeoutExpired:
                logger.warning("worker {} did not stop; killing it", child.terminal.name)
                child.process.kill()
                child.process.wait(2.0)
            child.process = None


def _interrupt(process: subprocess.Popen) -> None:
    if sys.platform == "win32":
        process.send_signal(signal.CTRL_BREAK_EVENT)
    else:
        process.send_signal(signal.SIGTERM)


def _own_pid() -> int:
    import os

    return os.getpid()
