"""Starts local workers as subprocesses, exactly as a user starts a remote one, and restarts crashed or hung ones.

Real subprocesses (not multiprocessing): the local and the remote start-up path are one code path, and
Windows' spawn-mode re-imports cannot surprise anyone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loguru import logger

from config import CoordinatorConfig, TerminalConfig
from config.exit_codes import ExitCode
from coordinator.runtime.views import TerminalView

MAX_RESTART_DELAY = 30.0
# A worker that ran this long before it exited was working: its next exit is a new incident, restarted after
# the shortest delay again. Twice the longest delay, so a worker that dies soon after every start keeps
# backing off, and a crash loop costs at most about one restart a minute however long it lasts.
HEALTHY_UPTIME_SECONDS = 2 * MAX_RESTART_DELAY
# The longest pause terminal_worker.worker makes between two attempts to attach to its terminal. Before its
# hello a worker says nothing in that pause (it has nothing to say until it holds its terminal).
WORKER_ATTACH_RETRY_PAUSE_MAX = 30.0
# A worker a reload stops (its terminal removed, or its entry changed) was told so over the wire; one that has not
# exited after this long is interrupted, and killed this long after that.
RELOAD_STOP_SECONDS = 5.0


class WorkerProcess(Protocol):
    """What the supervisor needs of a child process (``subprocess.Popen``; a fake in tests)."""

    pid: int

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...
    def send_signal(self, sig: int) -> None: ...


SpawnFunction = Callable[[list[str]], WorkerProcess]


@dataclass(frozen=True)
class WorkerExit:
    """A local worker's exit that no reload asked for: a crash, a kill, a signal from outside."""

    name: str
    code: int
    restart_in: float | None  # seconds until it is started again; None: it is not (asked to stop, a configuration
    # error, or a run that restarts nothing)
    restarts: int  # during this coordinator's life, this one included


ExitListener = Callable[[WorkerExit], None]


@dataclass
class _Child:
    terminal: TerminalConfig
    process: WorkerProcess | None = None
    started_at: float = 0.0  # supervisor clock
    restarts: int = 0  # during this coordinator's life, for status
    failures_in_a_row: int = 0  # sets the restart delay; back to 0 after a healthy run
    next_start: float = 0.0
    gave_up: bool = False
    killed_as_hung: bool = False  # a hung worker's uptime is no proof of health
    # A reload stops it: "retire" (its terminal is gone, or now remote) or "restart" (its entry changed; started
    # again at once, with the new entry, once it exited); "" otherwise. ``stop_deadline``: when it is interrupted.
    stopping: str = ""
    stop_deadline: float = 0.0
    interrupted: bool = False


class Supervisor:
    def __init__(self, config_path: Path, endpoint: str, terminals: list[TerminalConfig], *, restart: bool,
                 console_level: str = "WARNING", clock: Callable[[], float] = time.monotonic,
                 spawn: SpawnFunction | None = None, on_exit: ExitListener | None = None) -> None:
        """``on_exit``: told of every exit no reload asked for, with whether and when the worker starts again
        (the runner raises an alert)."""
        self._config_path = config_path
        self._on_exit = on_exit or (lambda _exit: None)
        self._endpoint = endpoint
        self._restart = restart
        self._console_level = console_level
        self._clock = clock
        self._spawn = spawn or _spawn_process
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
            "--parent-pid", str(os.getpid()),
            "--console-level", self._console_level,
        ]
        child.process = self._spawn(command)
        child.started_at = self._clock()
        child.killed_as_hung = False
        logger.debug("started worker {} (pid {})", child.terminal.name, child.process.pid)

    def check(self) -> list[tuple[str, int]]:
        """Reap exited workers, restart them per policy; return the (name, exit code) of those that exited."""
        exited: list[tuple[str, int]] = []
        now = self._clock()
        for name, child in list(self._children.items()):
            if child.stopping:
                exited += self._check_stopping(name, child, now)
                continue
            if child.process is not None:
                code = child.process.poll()
                if code is None:
                    continue
                child.process = None
                exited.append((name, code))
                if code in (ExitCode.OK, ExitCode.CONFIG_ERROR) or not self._restart:
                    # OK: it was asked to stop (a signal, or the coordinator); CONFIG_ERROR: it cannot fix itself.
                    child.gave_up = True
                    if self._restart and code == ExitCode.CONFIG_ERROR:
                        logger.critical("worker {} exited with a configuration error; not restarting it", name)
                    self._on_exit(WorkerExit(name, code, None, child.restarts))
                    continue
                if now - child.started_at >= HEALTHY_UPTIME_SECONDS and not child.killed_as_hung:
                    child.failures_in_a_row = 0
                child.restarts += 1
                child.failures_in_a_row += 1
                delay = min(2.0 ** (child.failures_in_a_row - 1), MAX_RESTART_DELAY)
                child.next_start = now + delay
                logger.error("worker {} exited with code {}; restarting in {:.0f}s", name, code, delay)
                self._on_exit(WorkerExit(name, code, delay, child.restarts))
            elif not child.gave_up and now >= child.next_start:
                self._start(child)
        return exited

    # ---- a reload -------------------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        """The process id of ``name``'s running worker; None when none runs."""
        child = self._children.get(name)
        return child.process.pid if child is not None and child.process is not None else None

    def names(self) -> list[str]:
        """The terminals this supervisor runs workers for (retiring ones included until they exited)."""
        return list(self._children)

    def add(self, terminal: TerminalConfig) -> None:
        """Start a worker for a terminal a reload added (or made local). One still stopping from an earlier
        change is started again with this entry once it exited."""
        child = self._children.get(terminal.name)
        if child is not None:
            child.terminal = terminal
            if child.stopping:
                child.stopping = "restart"
            elif child.process is None:
                self._start_fresh(child)
            return
        child = _Child(terminal)
        self._children[terminal.name] = child
        self._start(child)

    def restart(self, terminal: TerminalConfig) -> None:
        """``terminal``'s entry changed and its worker was told to stop (``Shutdown``): start it again with the
        new entry once it exited (interrupted after ``RELOAD_STOP_SECONDS``). A worker that is not running (it
        gave up, or waits to be restarted) is started at once: the new entry may be what it needed."""
        child = self._children.get(terminal.name)
        if child is None:
            self.add(terminal)
            return
        child.terminal = terminal
        if child.process is None:
            child.stopping = ""
            self._start_fresh(child)
            return
        self._stop(child, "restart")

    def retire(self, name: str) -> None:
        """``name``'s worker was told to stop for good (its terminal left the config, or is now remote): it is
        reaped once it exited (interrupted after ``RELOAD_STOP_SECONDS``) and never started again."""
        child = self._children.get(name)
        if child is None:
            return
        if child.process is None:
            del self._children[name]
            return
        self._stop(child, "retire")

    def _stop(self, child: _Child, how: str) -> None:
        if not child.stopping:
            child.stop_deadline = self._clock() + RELOAD_STOP_SECONDS
            child.interrupted = False
        child.stopping = how

    def _start_fresh(self, child: _Child) -> None:
        """Started by a reload: a new entry is a new start, not a crash to back off from."""
        child.gave_up = False
        child.failures_in_a_row = 0
        child.next_start = 0.0
        self._start(child)

    def _check_stopping(self, name: str, child: _Child, now: float) -> list[tuple[str, int]]:
        """A worker a reload stops: reaped when it exited, interrupted then killed when it takes too long."""
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            if now >= child.stop_deadline + RELOAD_STOP_SECONDS:
                logger.warning("worker {} did not stop; killing it", name)
                child.process.kill()
            elif now >= child.stop_deadline and not child.interrupted:
                child.interrupted = True
                logger.warning("worker {} did not stop within {:.0f}s of being asked; interrupting it", name,
                               RELOAD_STOP_SECONDS)
                _interrupt(child.process)
            return []
        child.process = None
        how, child.stopping = child.stopping, ""
        if how == "retire":
            del self._children[name]
            logger.info("worker {} stopped (exit code {})", name, code)
        else:
            logger.info("worker {} stopped (exit code {}); starting it again with its new entry", name, code)
            self._start_fresh(child)
        return [(name, code)]

    def restarts(self, name: str) -> int:
        child = self._children.get(name)
        return child.restarts if child is not None else 0

    def watchable_since(self, name: str) -> float | None:
        """When the running worker of ``name`` was started (supervisor clock); None when there is none to
        watch for silence (none running, being killed already, or being stopped by a reload)."""
        child = self._children.get(name)
        if child is None or child.process is None or child.killed_as_hung or child.stopping:
            return None
        return child.started_at

    def kill_hung(self, name: str) -> None:
        """Kill a worker that stopped answering; the next ``check`` reaps it and restarts it per policy.
        SIGKILL, not a polite signal: a hung or stopped (SIGSTOP) process would never act on one."""
        child = self._children.get(name)
        if child is None or child.process is None:
            return
        child.killed_as_hung = True
        try:
            child.process.kill()
        except OSError as e:  # it exited meanwhile: check() reaps it all the same
            logger.debug("killing worker {} failed: {}", name, e)

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


def allowed_silence(view: TerminalView, coordinator: CoordinatorConfig) -> float:
    """Seconds a local worker may stay silent before it counts as hung and is killed to be restarted.

    A worker that holds its terminal heartbeats every ``heartbeat_interval``: ``worker_timeout`` of silence
    means it is stuck (a terminal call that blocks, a stopped process). One that is attaching to its terminal
    (no hello yet, or it reported the terminal lost) legitimately blocks in ``initialize`` for up to the
    terminal's ``connect_timeout`` (60 s by default on real MT5), and before its hello it says nothing in the
    pause between two attempts either: it gets both, plus ``worker_timeout`` as the margin.
    """
    if view.welcomed and view.terminal_link_ok:
        return coordinator.worker_timeout
    return view.config.connect_timeout + WORKER_ATTACH_RETRY_PAUSE_MAX + coordinator.worker_timeout


def _spawn_process(command: list[str]) -> subprocess.Popen:
    if sys.platform == "win32":  # its own group, so CTRL_BREAK reaches the worker alone
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def _interrupt(process: WorkerProcess) -> None:
    if sys.platform == "win32":
        process.send_signal(signal.CTRL_BREAK_EVENT)
    else:
        process.send_signal(signal.SIGTERM)
