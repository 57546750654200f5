"""Simulated terminals for the live benchmarks, the copier started on them, and the CPU its processes use.

CPU is read from ``/proc/PID/stat`` (utime + stime of the coordinator and of each worker it spawned), so it is
the copier's own time, not the benchmark's; on a system without ``/proc`` the figures are NaN.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mt5sim
from bench.latency_bench import CONFIG_HEAD, TARGET, _children, _copies, _place

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Fleet:
    """A source and ``len(targets)`` targets under ``root``, each target's broker answering in ``round_trip``."""

    root: Path
    source: mt5sim.Terminal
    targets: list[mt5sim.Terminal]
    config: Path

    @property
    def target_paths(self) -> list[Path]:
        return [self.root / "terminals" / f"t{index}" for index in range(len(self.targets))]

    @property
    def source_path(self) -> Path:
        return self.root / "terminals" / "master"


def make_fleet(root: Path, targets: int, round_trip: float) -> Fleet:
    mt5sim.create_terminal(root / "terminals" / "master", login=1001, server="Sim")
    config = CONFIG_HEAD
    handles = []
    for index in range(targets):
        path = root / "terminals" / f"t{index}"
        mt5sim.create_terminal(path, login=2001 + index, server="Sim")
        mt5sim.set_latency(path, round_trip)
        handles.append(mt5sim.Terminal(path))
        config += TARGET.format(index=index, login=2001 + index)
    (root / "copier.toml").write_text(config)
    return Fleet(root, mt5sim.Terminal(root / "terminals" / "master"), handles, root / "copier.toml")


def place_orders(fleet: Fleet, count: int, first: int = 0) -> set[int]:
    return {_place(fleet.source, first + i) for i in range(count)}


def copier_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "coordinator", "run", "--config", str(config), *extra]


def bench_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


@contextmanager
def running(command: list[str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process for the length of the block, terminated (and waited for) after it."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=bench_env())
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class _ChangeWatch:
    """Tells whether a terminal's database changed since the last look: ``PRAGMA data_version`` on a read-only
    connection of the watcher's own (it moves with every commit by another connection; a few microseconds)."""

    def __init__(self, terminal: mt5sim.Terminal) -> None:
        self._db = sqlite3.connect(f"{(terminal.path / 'terminal.db').as_uri()}?mode=ro", uri=True)
        self._seen: int | None = None

    def changed(self) -> bool:
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if version == self._seen:
            return False
        self._seen = version
        return True

    def close(self) -> None:
        self._db.close()


def wait_copies(targets: list[mt5sim.Terminal], tickets: set[int], timeout: float = 60.0,
                pause: float = 0.001) -> float:
    """Seconds until every target holds a copy of every ticket (looked for every ``pause``).

    The watcher must not steal the CPU it measures (10 targets read every 2 ms would take a third of a core):
    a target is read only when its database changed since it was last read, and no more once it holds every
    copy."""
    started = time.perf_counter()
    watches = {index: _ChangeWatch(terminal) for index, terminal in enumerate(targets)}
    try:
        while time.perf_counter() - started < timeout:
            for index, watch in list(watches.items()):
                if watch.changed() and tickets <= _copies(targets[index]):
                    watch.close()
                    del watches[index]
            if not watches:
                return time.perf_counter() - started
            time.sleep(pause)
    finally:
        for watch in watches.values():
            watch.close()
    raise TimeoutError(f"copies did not appear within {timeout}s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (NaN when it cannot be read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def wake_ups(pid: int) -> int:
    """Times the process's threads have gone to sleep and been woken so far (voluntary context switches, every
    thread; 0 when it cannot be read). Idle, a process's CPU is mostly the cost of its wake-ups."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    except OSError:
        return total
    return total


def process_tree(pid: int) -> list[int]:
    """``pid`` and the processes it spawned (the coordinator's workers)."""
    return [pid, *_children(pid)]


@dataclass
class CpuWindow:
    """CPU seconds of a set of processes between ``start`` and ``stop``, as cores used over the wall time."""

    pids: list[int]
    started_cpu: dict[int, float]
    started_at: float
    cpu: dict[int, float]
    wall: float = 0.0
    started_wakes: dict[int, int] = field(default_factory=dict)
    wakes: dict[int, int] = field(default_factory=dict)

    @classmethod
    def start(cls, pids: list[int]) -> CpuWindow:
        return cls(pids, {pid: cpu_seconds(pid) for pid in pids}, time.perf_counter(), {},
                   started_wakes={pid: wake_ups(pid) for pid in pids})

    def stop(self) -> CpuWindow:
        self.wall = time.perf_counter() - self.started_at
        self.cpu = {pid: cpu_seconds(pid) - self.started_cpu[pid] for pid in self.pids}
        self.wakes = {pid: wake_ups(pid) - self.started_wakes.get(pid, 0) for pid in self.pids}
        return self

    def wakes_per_second(self, pids: list[int]) -> float:
        """Wake-ups a second of ``pids`` together, over the window."""
        return sum(self.wakes.get(pid, 0) for pid in pids) / self.wall if self.wall else float("nan")

    def cores(self, pids: list[int] | None = None) -> float:
        chosen = self.pids if pids is None else pids
        return sum(self.cpu[pid] for pid in chosen) / self.wall if self.wall else float("nan")
