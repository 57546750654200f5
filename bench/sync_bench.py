"""P2: a full sync, ``run --once`` placing every copy of M source orders on N targets, against the baseline.

Two figures for the copier: ``from launch`` (the process started -> every copy on every target, start-up included:
what a person waits for) and ``sync`` (the first copy's ``planned`` stage, i.e. the coordinator holding every
snapshot and planning, -> the last copy's ``answered`` stage, from the copier's own history of its copies). The
floor is M x the broker's round trip: the orders of one target go one after the other, the targets in parallel.
The baseline places the same copies target after target from one process (``bench.sequential_copier``).
"""

from __future__ import annotations

import sqlite3
import subprocess
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import mt5sim
from bench.fleet import bench_env, copier_command, make_fleet, place_orders
from bench.latency_bench import _copies
from bench.sequential_copier import sync_all
from coordinator.domain.latency import CopyStages
from coordinator.persistence.state import DATABASE_NAME, read_events


@dataclass(frozen=True)
class Sync:
    from_launch: float
    sync: float  # NaN when the copier's history held no stages
    baseline: float


def _sync_seconds(database: Path, copies: int) -> float:
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
        events = read_events(db, limit=copies * 2 + 100, with_stages=True)
    stages = [s for event in events if (s := CopyStages.from_json(event.stages)) is not None]
    if not stages:
        return float("nan")
    return (max(s.answered for s in stages) - min(s.planned for s in stages)) / 1000


def _wait_sync(process: subprocess.Popen[bytes], targets: list[mt5sim.Terminal], tickets: set[int],
               timeout: float) -> float:
    """Seconds until every copy is on every target; NaN (with a note) when ``run --once`` ended without them."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if all(tickets <= _copies(t) for t in targets):
            process.wait(60)
            return time.perf_counter() - started
        if process.poll() is not None and not all(tickets <= _copies(t) for t in targets):
            placed = sum(len(tickets & _copies(t)) for t in targets)
            print(f"  (run --once exited {process.returncode} with {placed} of {len(tickets) * len(targets)} copies)")
            return float("nan")
        time.sleep(0.02)
    print(f"  (not every copy placed within {timeout:.0f} s)")
    return float("nan")


def measure(targets: int, orders: int, round_trip: float) -> Sync:
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        fleet = make_fleet(Path(folder), targets, round_trip)
        tickets = place_orders(fleet, orders)
        process = subprocess.Popen(copier_command(fleet.config, "--once"), cwd=fleet.root,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=bench_env())
        try:
            from_launch = _wait_sync(process, fleet.targets, tickets, timeout=orders * round_trip * 10 + 60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
        sync = _sync_seconds(fleet.root / "state" / DATABASE_NAME, orders * targets)
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        fleet = make_fleet(Path(folder), targets, round_trip)
        place_orders(fleet, orders)
        started = time.perf_counter()
        sync_all(fleet.source, fleet.targets)
        baseline = time.perf_counter() - started
    return Sync(from_launch, sync, baseline)


def run(*, target_counts: tuple[int, ...], orders: int, round_trip: float) -> None:
    floor = orders * round_trip
    print(f"P2 full sync: {orders} orders, broker round trip {round_trip * 1000:.0f} ms, floor {floor:.2f} s "
          "(orders x round trip, targets in parallel)")
    print(f"  {'targets':>7} {'from launch':>12} {'sync':>8} {'sync/floor':>11} {'sync/baseline':>14} "
          f"{'baseline':>9} {'baseline/floor':>15}")
    for targets in target_counts:
        figure = measure(targets, orders, round_trip)
        print(f"  {targets:>7} {figure.from_launch:>11.2f}s {figure.sync:>7.2f}s {figure.sync / floor:>11.2f} "
              f"{figure.sync / figure.baseline:>14.2f} {figure.baseline:>8.2f}s {figure.baseline / floor:>15.2f}")
    print("  (from launch: `run --once` started -> every copy on every target; sync: the copier's first copy planned ->"
          " its last copy answered, from its history; baseline: one process, target after target)")
    print()
