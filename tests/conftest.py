"""Shared fixtures: simulated terminals, config files and real copier processes on loopback."""

from __future__ import annotations

import compileall
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from coordinator.persistence.state import StateStore
from coordinator.persistence.status import StatusBoard
from coordinator.runtime.instance_lock import CoordinatorLock
from tests.enginekit import EngineRig

REPO = Path(__file__).resolve().parents[1]
PRODUCT_PACKAGES = ("coordinator", "terminal_worker", "protocol", "config", "mt5sim")


# Python may be told not to write bytecode (PYTHONDONTWRITEBYTECODE, as here and in many CI images). A run
# rewrites every test module in each of its xdist runners and starts hundreds of coordinator and worker
# processes: compiling all of that again every time costs seconds per runner and about a quarter of a second of
# CPU per process. So the suite keeps Python's default cache: ``__pycache__``, ignored by git, each file checked
# against its source's size and time (an edited source is simply compiled again).
sys.dont_write_bytecode = False


@pytest.fixture(scope="session", autouse=True)
def product_bytecode() -> None:
    """The product compiled once for the whole run: the processes it starts inherit the environment, and with
    PYTHONDONTWRITEBYTECODE they would each compile every module again rather than cache it."""
    for package in PRODUCT_PACKAGES:
        compileall.compile_dir(REPO / package, quiet=2)


@pytest.fixture(autouse=True)
def sinks_end_with_their_test() -> Iterator[None]:
    """The loguru sinks a test adds go when it ends. A command run in-process (``main([...])``) sets the console
    sink up on the test's captured stderr, which pytest closes after the test: a line logged later, by a thread
    that outlives its test (an alert sender giving up on a URL), hit that closed file ("Logging error in Loguru
    Handler ... I/O operation on closed file" in the run's output)."""
    before = set(logger._core.handlers)  # loguru keeps no public list of its sinks
    yield
    for sink in set(logger._core.handlers) - before:
        with contextlib.suppress(ValueError):  # removed meanwhile
            logger.remove(sink)


@dataclass
class CopierRun:
    code: int
    output: str


class Copier:
    """Runs ``mt5-copier`` as real processes against a config file in a test's folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config_path = directory / "copier.toml"
        self._background: list[subprocess.Popen] = []

    def write_config(self, text: str) -> Path:
        self.config_path.write_text(textwrap.dedent(text), encoding="utf-8")
        return self.config_path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "coordinator", *args]

    def run(self, *args: str, timeout: float = 90.0, env: dict[str, str] | None = None) -> CopierRun:
        """``env``: extra environment variables for this run (and the workers it spawns)."""
        completed = subprocess.run(
            self.command(*args), cwd=self.directory, capture_output=True, text=True, timeout=timeout,
            env=_env(env),
        )
        return CopierRun(completed.returncode, completed.stdout + completed.stderr)

    def once(self, timeout: float = 90.0, env: dict[str, str] | None = None) -> CopierRun:
        return self.run("run", "--config", str(self.config_path), "--once", timeout=timeout, env=env)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """A long-running process (scheduler or worker); stopped and reaped at the end of the test.
        ``env``: extra environment variables for it (and the workers it spawns)."""
        process = subprocess.Popen(
            self.command(*args) if args[0] != "--raw" else list(args[1:]),
            cwd=self.directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(env),
            start_new_session=True,
        )
        self._background.append(process)
        return process

    def start_scheduler(self, env: dict[str, str] | None = None) -> subprocess.Popen:
        return self.start("run", "--config", str(self.config_path), env=env)

    def stop(self, process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, str]:
        if process.poll() is None:
            process.send_signal(sig)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            output, _ = process.communicate(timeout=5)
            raise AssertionError(f"process did not stop within {timeout}s:\n{output}") from None
        return process.returncode, output or ""

    def cleanup(self) -> None:
        for process in self._background:
            if process.poll() is None:
                _kill_group(process)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.communicate(timeout=5)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MT5SIM_PATH", None)
    env.pop("MT5_COPIER_CRASH", None)  # crash points only where a test asks for them
    env.update(extra or {})
    return env


@pytest.fixture
def copier(tmp_path: Path) -> Iterator[Copier]:
    helper = Copier(tmp_path)
    yield helper
    helper.cleanup()


def wait_for(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, message: str = ""):
    """Poll until ``condition()`` is truthy; return its value or fail with ``message``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., EngineRig]]:
    """Makes engine rigs (tests/enginekit.py), each with its own state folder, and closes them afterwards."""
    rigs: list[EngineRig] = []

    def make(**kwargs: Any) -> EngineRig:
        rig = EngineRig(tmp_path / f"state{len(rigs)}", **kwargs)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """The coordinator's state in the test's ``state`` folder."""
    state = StateStore(tmp_path / "state")
    yield state
    state.close()


@pytest.fixture
def board(store: StateStore) -> Iterator[StatusBoard]:
    """The status table of ``store``, on a connection of its own, as ``mt5-copier status`` reads it."""
    db = sqlite3.connect(store.path, isolation_level=None)
    yield StatusBoard(db)
    db.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[int]:
    """A coordinator holding the state folder's lock (this test process): status sees it as running."""
    with CoordinatorLock(tmp_path / "state"):
        yield os.getpid()


# ---- the long tests start early ------------------------------------------------------------------------------
# The suite runs four at a time with --dist worksteal, which hands each runner one contiguous slice of the
# collection and later lets an idle runner take the tail half of the longest queue. In file order the process
# tests (up to 30 s each) pile up in one or two slices and end the run alone. So the long tests are dealt over the
# slices, longest first, each to the slice with the least work so far, and each slice runs its long tests in that
# order, short ones between them (a process test mostly waits on the copier's timers: a short one on another
# runner uses the CPU meanwhile) and a tail of short ones last: what stealing moves to a runner that ran dry.
# How long a test takes: as the last run that ran it measured (pytest's cache, kept by the controller and handed
# to every runner), else as tests/data/durations.json says (the long tests' times, committed: a fresh clone, as
# CI's, has no cache, and ordered by guesses its suite took ~20 s longer), else a guess: one that starts real
# processes is long. Without xdist the order is left alone. MT5_COPIER_STORE_DURATIONS=1 writes the file anew
# from a whole run's times.

DURATIONS_CACHE_KEY = "mt5-copier/durations"
COMMITTED_DURATIONS = REPO / "tests" / "data" / "durations.json"
COMMITTED_FROM_SECONDS = 0.5  # the tests the file keeps: those that count for the order (a few dozen KB at most)
PROCESS_FIXTURES = frozenset({"copier"})
GUESS_PROCESS_SECONDS = 6.0
GUESS_OTHER_SECONDS = 0.1
LONG_SECONDS = 1.0  # a long test: dealt over the slices
SHORT_TAIL = 0.25  # the share of each slice's short tests kept for its end


def _guess_seconds(item: pytest.Item) -> float:
    if item.get_closest_marker("e2e") is not None or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
        return GUESS_PROCESS_SECONDS
    return GUESS_OTHER_SECONDS


def _known_durations(config: pytest.Config) -> dict[str, float]:
    """The committed times, with the cache's over them (newer, and of this machine)."""
    known = _committed_durations()
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    cached = cache.get(DURATIONS_CACHE_KEY, {}) if cache is not None else {}
    if isinstance(cached, dict):
        known.update(cached)
    return known


def _committed_durations() -> dict[str, float]:
    try:
        committed = json.loads(COMMITTED_DURATIONS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # only the order of the tests is at stake: guesses then
    return {str(nodeid): float(seconds) for nodeid, seconds in committed.items()} if isinstance(committed, dict) \
        else {}


def long_tests_first(seconds: list[float], runners: int) -> list[int]:
    """A new order of the indices of ``seconds`` for ``runners`` slices cut as worksteal cuts them (the first
    ``n // runners`` items, then a fair share of the rest, ...): the long items dealt over the slices so their
    totals stay even; in each slice its long items longest first with short ones between them, then the rest of
    its short ones (SHORT_TAIL of them)."""
    count = len(seconds)
    sizes = []
    remaining = count
    for index in range(runners):
        sizes.append(remaining // (runners - index))
        remaining -= sizes[-1]
    slices: list[list[int]] = [[] for _ in range(runners)]
    loads = [0.0] * runners
    for item in sorted(range(count), key=lambda i: -seconds[i]):  # stable: equal ones keep the file order
        open_slices = [index for index in range(runners) if len(slices[index]) < sizes[index]]
        chosen = min(open_slices, key=lambda index: (loads[index], index))
        slices[chosen].append(item)
        loads[chosen] += seconds[item]
    order: list[int] = []
    for dealt in slices:
        long = [item for item in dealt if seconds[item] >= LONG_SECONDS]
        short = sorted(item for item in dealt if seconds[item] < LONG_SECONDS)  # file order
        between = len(short) - int(len(short) * SHORT_TAIL)
        for rank, item in enumerate(long):
            order.append(item)
            order += short[rank * between // len(long):(rank + 1) * between // len(long)]
        order += short[between if long else 0:]
    return order


_controller_durations: dict[str, float] | None = None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist's controller hands every runner the same times, read once: runners that read the cache themselves
    could see different versions (another run finishing) and collect different orders, which xdist refuses."""
    global _controller_durations
    if _controller_durations is None:
        _controller_durations = _known_durations(node.config)
    node.workerinput[DURATIONS_CACHE_KEY] = _controller_durations


@pytest.hookimpl(trylast=True)  # after the deselections: the slices are cut from what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    runners = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    workerinput = getattr(config, "workerinput", None)
    if runners < 2 or len(items) < runners or workerinput is None:
        return
    known = workerinput.get(DURATIONS_CACHE_KEY) or {}
    seconds = [float(known.get(item.nodeid, _guess_seconds(item))) for item in items]
    items[:] = [items[index] for index in long_tests_first(seconds, runners)]


_measured: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's time (set-up, call and teardown), seen by the controller (every runner's reports reach it)."""
    _measured[report.nodeid] = _measured.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or not _measured or getattr(config, "cache", None) is None:
        return  # a runner: the controller keeps the times
    known = _known_durations(config)
    known.update({nodeid: round(seconds, 3) for nodeid, seconds in _measured.items()})
    config.cache.set(DURATIONS_CACHE_KEY, known)
    if os.environ.get("MT5_COPIER_STORE_DURATIONS") == "1" and session.testsfailed == 0:
        long = {nodeid: round(seconds, 1) for nodeid, seconds in sorted(_measured.items())
                if seconds >= COMMITTED_FROM_SECONDS}
        COMMITTED_DURATIONS.write_text(json.dumps(long, indent=0) + "\n", encoding="utf-8")
