"""Copy latency end to end, against the straightforward alternative.

The copier (one worker process per target, diffs planned centrally) is measured against one process that
visits every target in turn and sends each order itself: what a simple copier script does. Each target's
broker is given a realistic round trip with ``mt5sim.set_latency``. Figures: from the moment an order
exists on the source until its copy exists on every target; then the same copies by stage, as the copier
measured them and stored them with their history events (``mt5-copier history`` shows them): the source's poll
(the order placed -> the source worker's poll that saw it), planned, sent, answered (the broker's part of it in
brackets), confirmed.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import mt5sim
from coordinator.domain.latency import CopyStages
from coordinator.persistence.state import DATABASE_NAME, read_events
from protocol.tags import parse_tag

BROKER_ROUND_TRIP = 0.05  # seconds per order_send
# A copy is on its target halfway through the order_send that places it (the simulated broker answers after the
# second half of its round trip). Each single order waits this long after its copies appeared, so the previous
# answer's way back and the worker's read after it are over: else the next order queues behind them, and its
# figures (the latency, and the stages' "answered") carry the previous one's tail.
SETTLE_SECONDS = 2 * BROKER_ROUND_TRIP
CONFIG_HEAD = """
[coordinator]
bind = "tcp://127.0.0.1:*"
state_dir = "state"
interval = 5.0

[source]
name = "master"
backend = "sim"
path = "terminals/master"
login = 1001
server = "Sim"
"""
TARGET = """
[[targets]]
name = "t{index}"
backend = "sim"
path = "terminals/t{index}"
login = {login}
server = "Sim"
"""


def _copies(terminal: mt5sim.Terminal) -> set[int]:
    return {o.magic for o in terminal.orders_get() or () if parse_tag(o.comment) == o.magic}


def _place(source: mt5sim.Terminal, index: int) -> int:
    tick = source.symbol_info_tick("EURUSD")
    if tick is None:
        raise RuntimeError(f"symbol_info_tick('EURUSD') on the source failed: {source.last_error()}")
    result = source.order_send({
        "action": mt5sim.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.1,
        "type": mt5sim.ORDER_TYPE_BUY_LIMIT, "price": round(tick.ask - 0.005 - index * 0.0001, 5),
        "type_filling": mt5sim.ORDER_FILLING_RETURN, "type_time": mt5sim.ORDER_TIME_GTC,
    })
    if result is None or result.retcode != mt5sim.TRADE_RETCODE_DONE:
        raise RuntimeError(f"placing source order {index} failed: {result or source.last_error()}")
    return result.order


def _wait_all(targets: list[mt5sim.Terminal], tickets: set[int], timeout: float = 60.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if all(tickets <= _copies(t) for t in targets):
            return time.perf_counter() - started
        time.sleep(0.002)
    raise TimeoutError(f"copies did not appear within {timeout}s")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def measure_copier(fan_out: int, burst: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        root = Path(folder)
        mt5sim.create_terminal(root / "terminals" / "master", login=1001, server="Sim")
        targets = []
        config = CONFIG_HEAD
        for index in range(fan_out):
            path = root / "terminals" / f"t{index}"
            mt5sim.create_terminal(path, login=2001 + index, server="Sim")
            mt5sim.set_latency(path, BROKER_ROUND_TRIP)
            targets.append(mt5sim.Terminal(path))
            config += TARGET.format(index=index, login=2001 + index)
        (root / "copier.toml").write_text(config)
        source = mt5sim.Terminal(root / "terminals" / "master")
        process = subprocess.Popen([sys.executable, "-m", "coordinator", "run", "--config", str(root / "copier.toml")],
                                   cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        try:
            _wait_all(targets, {_place(source, 0)})  # warm-up: everything connected and planned once
            single, placed_ms = [], {}
            for i in range(3):
                time.sleep(SETTLE_SECONDS)
                ticket = _place(source, 1 + i)
                placed_ms[ticket] = time.time() * 1000
                single.append(_wait_all(targets, {ticket}))
            time.sleep(SETTLE_SECONDS)
            tickets = {_place(source, 10 + i) for i in range(burst)}
            burst_seconds = _wait_all(targets, tickets)
            memory = {"coordinator": _rss_mb(process.pid)}
            workers = _children(process.pid)
            memory["workers"] = sum(_rss_mb(pid) for pid in workers) / max(1, len(workers))
        finally:
            process.terminate()
            process.wait(20)
        stages = _stages(root / "state" / DATABASE_NAME, placed_ms)
    return {"single": sorted(single)[1], "burst": burst_seconds, **memory, **stages}


def _stages(database: Path, placed_ms: dict[int, float]) -> dict[str, float]:
    """The median of each stage (ms) over the copies of the single orders, from the copier's history."""
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
        events = read_events(db, limit=10_000, with_stages=True)
    timed = [(event.source_ticket, stages) for event in events if event.source_ticket in placed_ms
             and (stages := CopyStages.from_json(event.stages)) is not None and stages.complete]
    if not timed:
        return {}
    figures: dict[str, list[float]] = {"poll": [], "total": [], "broker": []}
    for ticket, stages in timed:
        figures["poll"].append(stages.detected - placed_ms[ticket])
        figures["total"].append(stages.total_ms)
        figures["broker"].append(stages.broker_ms or 0.0)
        for stage, took in stages.steps():
            figures.setdefault(stage, []).append(took)
    return {name: statistics.median(values) for name, values in figures.items()}


def measure_sequential(fan_out: int, burst: int) -> float:
    """One process, every target in turn, every order sent by it: the baseline."""
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        root = Path(folder)
        mt5sim.create_terminal(root / "master", login=1001, server="Sim")
        source = mt5sim.Terminal(root / "master")
        targets = []
        for index in range(fan_out):
            mt5sim.create_terminal(root / f"t{index}", login=2001 + index, server="Sim")
            mt5sim.set_latency(root / f"t{index}", BROKER_ROUND_TRIP)
            targets.append(mt5sim.Terminal(root / f"t{index}"))
        for i in range(burst):
            _place(source, i)
        started = time.perf_counter()
        orders = source.orders_get()
        if orders is None:
            raise RuntimeError(f"orders_get() on the source failed: {source.last_error()}")
        for target in targets:
            for order in orders:
                target.order_send({
                    "action": mt5sim.TRADE_ACTION_PENDING, "symbol": order.symbol, "volume": order.volume_current,
                    "type": order.type, "price": order.price_open, "type_filling": mt5sim.ORDER_FILLING_RETURN,
                    "magic": order.ticket, "comment": f"mtc#{order.ticket}",
                })
        return time.perf_counter() - started


def run(*, quick: bool) -> None:
    print(f"end-to-end copy latency, broker round trip {BROKER_ROUND_TRIP * 1000:.0f} ms per order_send")
    print(f"  {'targets':>7} {'one order':>11} {'burst of 10':>12} {'sequential baseline':>20} "
          f"{'coordinator RSS':>16} {'worker RSS':>11}")
    stage_rows: list[tuple[int, dict[str, float]]] = []
    for fan_out in ((2,) if quick else (1, 4, 8)):
        copier = measure_copier(fan_out, 10)
        stage_rows.append((fan_out, copier))
        baseline = measure_sequential(fan_out, 10)
        print(f"  {fan_out:>7} {copier['single'] * 1000:>9.0f}ms {copier['burst'] * 1000:>10.0f}ms "
              f"{baseline * 1000:>18.0f}ms {copier['coordinator']:>13.1f} MB {copier['workers']:>8.1f} MB")
    print("  (one order: median of 3, source order placed -> copy on every target; burst: 10 orders at once;"
          " baseline: one process sending the same 10 orders to each target in turn)")
    print()
    print("the same copies by stage, as the copier measured them (median over the one-order copies, ms)")
    print(f"  {'targets':>7} {'source poll':>12} {'planned':>8} {'sent':>7} {'answered (broker)':>18} "
          f"{'confirmed':>10} {'detected->confirmed':>20}")
    for fan_out, copier in stage_rows:
        if "total" not in copier:
            print(f"  {fan_out:>7} (no copy timed)")
            continue
        answered = f"{copier['answered']:.1f} ({copier['broker']:.1f})"
        print(f"  {fan_out:>7} {copier['poll']:>12.1f} {copier['planned']:>8.1f} {copier['sent']:>7.1f} "
              f"{answered:>18} {copier['confirmed']:>10.1f} {copier['total']:>20.1f}")
    print("  (source poll: the order placed -> the end of the source worker's poll that saw it, up to its "
          "poll_interval and the poll's reads; "
          "sent: includes the intent's durable write; answered: the target worker's round trip, the broker's "
          "order_send in brackets; confirmed: the copy in the target's snapshot)")
    print()
