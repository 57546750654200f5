"""P1 (copy latency, live) and P3 (idle load), measured on running processes over simulated terminals.

P1: the copier runs (``run``) on a source and N targets; K single orders are placed on the source one after the
other, each timed from ``order_send`` on the source returning to its copy being on every target (the targets are
read every 2 ms). The same K orders are then timed against the sequential baseline (``bench.sequential_copier``,
one process polling flat out). CPU: utime + stime from /proc of the coordinator and its workers (or of the
baseline's process) over the K orders, as cores used.
P3: the copier on 1 source + T-1 targets, everything copied and nothing changing; the CPU of all its processes
over a window, in % of one core.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mt5sim
from bench.fleet import (
    CpuWindow,
    copier_command,
    make_fleet,
    place_orders,
    process_tree,
    running,
    wait_copies,
)
from bench.latency_bench import _place
from terminal_worker.worker import SOURCE_BUSY_SECONDS, SOURCE_IDLE_PROBE_SECONDS


@dataclass(frozen=True)
class Latency:
    median_ms: float
    max_ms: float
    cores: float
    # The copier's cores by process: the coordinator, the source's worker, the targets' workers together.
    coordinator_cores: float = float("nan")
    source_cores: float = float("nan")
    targets_cores: float = float("nan")
    copies_per_second: float = float("nan")


def broker_cpu_per_copy(copies: int) -> float:
    """Seconds of CPU the simulated terminal itself spends on what one copy asks of it (the guard's reads, the
    account check, order_check, order_send, the snapshot's reads after it) while its orders grow to ``copies``,
    as they do on each target in P1, measured in this process. It is
    part of every target worker's CPU and of the baseline's: a floor under the copier's cores on mt5sim that no
    change to the copier moves."""
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        path = Path(folder) / "t"
        mt5sim.create_terminal(path, login=2001, server="Sim")
        terminal = mt5sim.Terminal(path)
        tick = terminal.symbol_info_tick("EURUSD")
        if tick is None:
            raise RuntimeError(f"symbol_info_tick('EURUSD') failed: {terminal.last_error()}")
        started = time.process_time()
        for index in range(copies):
            request = {"action": mt5sim.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.1,
                       "type": mt5sim.ORDER_TYPE_BUY_LIMIT, "price": round(tick.ask - 0.005 - index * 0.0001, 5),
                       "type_filling": mt5sim.ORDER_FILLING_RETURN, "type_time": mt5sim.ORDER_TIME_GTC,
                       "magic": index + 1, "comment": "bench"}
            terminal.orders_get()
            terminal.positions_get()
            terminal.account_info()
            terminal.order_check(request)
            terminal.order_send(request)
            terminal.orders_get()
            terminal.positions_get()
            terminal.terminal_info()
            terminal.account_info()
        return (time.process_time() - started) / copies


def _time_singles(source: mt5sim.Terminal, targets: list[mt5sim.Terminal], rounds: int, first: int) -> list[float]:
    times = []
    for i in range(rounds):
        ticket = _place(source, first + i)
        times.append(wait_copies(targets, {ticket}) * 1000)
    return times


def _latency(times: list[float], window: CpuWindow, source_pid: int | None = None, copies: int = 0) -> Latency:
    if source_pid is None:
        return Latency(statistics.median(times), max(times), window.cores())
    coordinator, *workers = window.pids
    targets = [pid for pid in workers if pid != source_pid]
    return Latency(statistics.median(times), max(times), window.cores(), window.cores([coordinator]),
                   window.cores([source_pid]), window.cores(targets), copies / window.wall)


def _source_worker(pids: list[int]) -> int | None:
    for pid in pids[1:]:
        try:
            if "--terminal\0master\0" in Path(f"/proc/{pid}/cmdline").read_text():
                return pid
        except OSError:
            pass
    return None


def measure_p1(targets: int, rounds: int, round_trip: float, quiet_rounds: int = 0
               ) -> tuple[Latency, Latency, list[float]]:
    """(the copier, the sequential baseline, the copier's latency of orders placed after the source was quiet for
    longer than its quick-probing window: ``quiet_rounds`` of them, in ms)."""
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        fleet = make_fleet(Path(folder), targets, round_trip)
        with running(copier_command(fleet.config), fleet.root) as process:
            wait_copies(fleet.targets, place_orders(fleet, 1))  # warm-up: connected, planned once
            time.sleep(0.5)
            pids = process_tree(process.pid)
            window = CpuWindow.start(pids)
            times = _time_singles(fleet.source, fleet.targets, rounds, 1)
            copier = _latency(times, window.stop(), _source_worker(pids) or 0, rounds * targets)
            quiet = []
            for i in range(quiet_rounds):
                time.sleep(SOURCE_BUSY_SECONDS + 1.0)
                quiet += _time_singles(fleet.source, fleet.targets, 1, 1 + rounds + i)
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        fleet = make_fleet(Path(folder), targets, round_trip)
        command = [sys.executable, "-m", "bench.sequential_copier", str(fleet.source_path),
                   *map(str, fleet.target_paths)]
        with running(command, fleet.root) as process:
            wait_copies(fleet.targets, place_orders(fleet, 1))
            window = CpuWindow.start([process.pid])
            baseline = _latency(_time_singles(fleet.source, fleet.targets, rounds, 1), window.stop())
    return copier, baseline, quiet


@dataclass(frozen=True)
class Idle:
    total_pct: float
    coordinator_pct: float
    worker_pct: float  # the mean over the workers
    seconds: float
    source_pct: float = float("nan")
    target_pct: float = float("nan")  # the mean over the targets' workers
    # Wake-ups a second (every thread): the coordinator, the source's worker, a target's worker on average.
    coordinator_wakes: float = float("nan")
    source_wakes: float = float("nan")
    target_wakes: float = float("nan")


def measure_p3(terminals: int, seconds: float) -> Idle:
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        fleet = make_fleet(Path(folder), terminals - 1, 0.0)
        with running(copier_command(fleet.config), fleet.root) as process:
            wait_copies(fleet.targets, place_orders(fleet, 1), pause=0.05)
            # Settle: the confirmations, the first heartbeats after the copy, and the source's quick probing after
            # its last change (SOURCE_BUSY_SECONDS): idle is the pace of a source nobody has touched for a while.
            time.sleep(min(SOURCE_BUSY_SECONDS + 1.0, max(2.0, seconds)))
            pids = process_tree(process.pid)
            source = _source_worker(pids)
            window = CpuWindow.start(pids)
            time.sleep(seconds)
            window.stop()
    workers = pids[1:]
    targets = [pid for pid in workers if pid != source]
    sources = [source] if source is not None else []
    each = max(1, len(targets))
    return Idle(window.cores() * 100, window.cores(pids[:1]) * 100,
                window.cores(workers) * 100 / max(1, len(workers)), seconds,
                source_pct=window.cores(sources) * 100 if sources else float("nan"),
                target_pct=window.cores(targets) * 100 / each,
                coordinator_wakes=window.wakes_per_second(pids[:1]),
                source_wakes=window.wakes_per_second(sources) if sources else float("nan"),
                target_wakes=window.wakes_per_second(targets) / each)


def run(*, targets: int, rounds: int, round_trip: float, idle_terminals: int, idle_seconds: float, p1: bool = True,
        p3: bool = True, quiet_rounds: int = 3) -> None:
    if p1:
        _run_p1(targets, rounds, round_trip, quiet_rounds)
    if p3:
        _run_p3(idle_terminals, idle_seconds)


def _run_p1(targets: int, rounds: int, round_trip: float, quiet_rounds: int) -> None:
    print(f"P1 copy latency, live: {targets} targets, {rounds} single orders, broker round trip "
          f"{round_trip * 1000:.0f} ms (floor: one round trip)")
    copier, baseline, quiet = measure_p1(targets, rounds, round_trip, quiet_rounds)
    floor_ms = round_trip * 1000
    print(f"  {'':<22} {'median':>8} {'max':>8} {'cores':>6} {'median/baseline':>16} {'median/floor':>13}")
    for label, figure in (("mt5-copier", copier), ("sequential baseline", baseline)):
        ratio_floor = f"{figure.median_ms / floor_ms:.2f}" if floor_ms else "n/a"
        print(f"  {label:<22} {figure.median_ms:>6.1f}ms {figure.max_ms:>6.1f}ms {figure.cores:>6.2f} "
              f"{figure.median_ms / baseline.median_ms:>16.2f} {ratio_floor:>13}")
    if quiet:
        print(f"  mt5-copier, an order after {SOURCE_BUSY_SECONDS + 1:.0f} s of quiet (the source probing every "
              f"{SOURCE_IDLE_PROBE_SECONDS * 1000:.0f} ms): median {statistics.median(quiet):.1f} ms, max "
              f"{max(quiet):.1f} ms over {len(quiet)}")
    print(f"  mt5-copier's cores by process: coordinator {copier.coordinator_cores:.2f}, source worker "
          f"{copier.source_cores:.2f}, {targets} target workers {copier.targets_cores:.2f}")
    floor = broker_cpu_per_copy(rounds + 1)
    print(f"  the simulated broker's own CPU per copy (guard, checks, order_send, the reads after it): "
          f"{floor * 1000:.2f} ms; at this run's {copier.copies_per_second:.0f} copies/s that alone is "
          f"{floor * copier.copies_per_second:.2f} cores, in the target workers' figure")
    print("  (source order_send returned -> its copy on every target, each target looked at when its database "
          "changed; cores: utime+stime from /proc of the coordinator and its workers, or of the baseline's one "
          "process, over the orders)")
    print()


def _run_p3(idle_terminals: int, idle_seconds: float) -> None:
    print(f"P3 idle: {idle_terminals} terminals (1 source + {idle_terminals - 1} targets), nothing changing, "
          f"{idle_seconds:.0f} s")
    idle = measure_p3(idle_terminals, idle_seconds)
    print(f"  all processes {idle.total_pct:.1f}% of one core (coordinator {idle.coordinator_pct:.1f}%, "
          f"each worker {idle.worker_pct:.2f}% on average: the source's {idle.source_pct:.2f}%, each target's "
          f"{idle.target_pct:.2f}%)")
    print(f"  wake-ups a second, every thread (idle, a process's CPU is mostly its wake-ups): coordinator "
          f"{idle.coordinator_wakes:.0f}, the source's worker {idle.source_wakes:.0f}, each target's "
          f"{idle.target_wakes:.1f}")
    print()
