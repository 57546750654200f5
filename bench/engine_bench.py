"""P4: one source edit with many targets holding many copies, measured in the coordinator's engine.

In process, no workers: the real Engine and StateStore are fed the workers' messages (as tests/enginekit.py does),
N targets each reporting M copies in sync with the source's M orders. Then one source order's price changes:
timed from the source's snapshot handed to the engine (``on_message``) to the commands sent (``reconcile`` of what
it marked dirty returning), best and median of a few edits, each measurement in a process of its own. The engine's
memory is reported as that process's RSS. Then every target's answer to each edit, as its worker sends it (the
snapshot with the copy edited, as its changes to the last one, and the results), is timed from its bytes to the
reconcile that follows: what an edit costs the coordinator after its commands.
Python's cycle collector is set as the coordinator sets it (coordinator/runtime/collector.py).
"""

from __future__ import annotations

import gc
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
from loguru import logger

from config.loader import parse_config
from coordinator.domain.link_lifecycle import Link
from coordinator.persistence.state import StateStore
from coordinator.runtime import collector
from coordinator.runtime.engine import Engine
from protocol import (
    PROTOCOL_MINOR,
    AccountFacts,
    CommandBatch,
    CommandResult,
    CommandResults,
    CommandStatus,
    Heartbeat,
    Hello,
    Message,
    PendingOrder,
    Quote,
    Snapshot,
    SymbolSpec,
    SymbolSpecs,
    TerminalFacts,
    decode,
    encode,
)
from protocol.snapshot_changes import as_changes, changes_since
from protocol.tags import copy_tag

SOURCE = "src"
SPEC = dict(digits=5, point=0.00001, tick_size=0.00001, contract_size=100_000, volume_min=0.01, volume_max=50.0,
            volume_step=0.01, volume_limit=0.0, trade_mode=4, stops_level=0, freeze_level=0, expiration_mode=15,
            filling_mode=1, order_mode=127)


def _order(ticket: int, price: float) -> PendingOrder:
    return PendingOrder(ticket=ticket, symbol="EURUSD", type=2, volume=0.1, price_open=price, price_stoplimit=0.0,
                        sl=0.0, tp=0.0, type_time=0, time_expiration=0, magic=0, comment="", time_setup_msc=ticket)


def _copy(source: PendingOrder, ticket: int) -> PendingOrder:
    values = {name: getattr(source, name) for name in PendingOrder.__struct_fields__}
    values.update(ticket=ticket, magic=source.ticket, comment=copy_tag(source.ticket))
    return PendingOrder(**values)


class _Rig:
    def __init__(self, state_dir: Path, targets: int) -> None:
        names = [f"t{i}" for i in range(targets)]
        self.logins = {SOURCE: 1, **{name: 2 + i for i, name in enumerate(names)}}
        data = {
            "coordinator": {"state_dir": str(state_dir)},
            "source": {"name": SOURCE, "backend": "sim", "path": "s", "login": 1, "server": "S",
                       "server_utc_offset": 0},
            "targets": [{"name": name, "backend": "sim", "path": name, "login": self.logins[name], "server": "S",
                         "server_utc_offset": 0} for name in names],
        }
        self.state = StateStore(state_dir)
        self.commands = 0
        self.batches: list[tuple[str, CommandBatch]] = []
        self.engine = Engine(parse_config(data, base_dir=state_dir.parent), self.state, self._send)
        self.seq = dict.fromkeys(self.logins, 0)

    def remember(self, books: dict[str, list[PendingOrder]]) -> None:
        """The links of a copier that placed these copies before (one transaction: adopting 50 000 copies one
        durable write at a time would take minutes, and is not what is measured)."""
        db = self.state.connection
        db.execute("BEGIN")
        for name, book in books.items():
            for copy in book:
                self.state.adopt_link(name, Link(source_ticket=copy.magic, copy_ticket=copy.ticket, symbol=copy.symbol,
                                                 volume=copy.volume, source_volume=copy.volume))
        db.execute("COMMIT")

    def _send(self, name: str, message: Message) -> bool:
        if isinstance(message, CommandBatch):
            self.commands += len(message.commands)
            self.batches.append((name, message))
        return True

    def answers(self, books: dict[str, list[PendingOrder]]) -> list[tuple[str, list[bytes], list[bytes]]]:
        """Each target's answer to the batches sent since the last call, as its worker sends it: its book with the
        commands' prices, as the changes to the snapshot it sent last, then the results (the frames on the wire)."""
        frames = []
        for name, batch in self.batches:
            book = books[name]
            base = tuple(book)
            place = {order.ticket: index for index, order in enumerate(book)}
            for command in batch.commands:
                index = place[command.ticket]
                book[index] = msgspec.structs.replace(book[index], price_open=command.price)
            self.seq[name] += 1
            snapshot = Snapshot(boot_id="b1", seq=self.seq[name], taken_at_ms=int(time.time() * 1000),
                                login=self.logins[name], connected=True, trade_allowed=True, orders=tuple(book),
                                balance=1000.0, equity=1000.0)
            changes = changes_since(base, snapshot.orders)
            sent: Message = snapshot if changes is None else as_changes(snapshot, self.seq[name] - 1, *changes)
            results = CommandResults(batch_id=batch.batch_id, snapshot_seq=self.seq[name], results=tuple(
                CommandResult(command_id=command.command_id, status=CommandStatus.DONE, retcode=10009,
                              ticket=command.ticket) for command in batch.commands))
            frames.append((name, encode(sent), encode(results)))
        self.batches.clear()
        return frames

    def hello(self, name: str) -> None:
        self.engine.on_message(name, Hello(
            terminal=name, role="source" if name == SOURCE else "target", boot_id="b1", protocol_minor=PROTOCOL_MINOR,
            worker_version="x", backend="sim", pid=1, host="h",
            account=AccountFacts(login=self.logins[name], server="S", margin_mode=2),
            terminal_facts=TerminalFacts(connected=True, trade_allowed=True)))

    def snapshot(self, name: str, orders: list[PendingOrder]) -> None:
        self.seq[name] += 1
        self.engine.on_message(name, Snapshot(
            boot_id="b1", seq=self.seq[name], taken_at_ms=int(time.time() * 1000), login=self.logins[name],
            connected=True, trade_allowed=True, orders=tuple(orders), balance=1000.0, equity=1000.0))

    def tick(self, targets: Iterable[str], bid: float) -> None:
        """Each target's heartbeat, with a new EURUSD price."""
        quote = Quote(symbol="EURUSD", bid=round(bid, 5), ask=round(bid + 0.0001, 5), time=int(time.time()))
        for name in targets:
            self.engine.on_message(name, Heartbeat(sent_at_ms=int(time.time() * 1000), boot_id="b1",
                                                   last_seq=self.seq[name], polled_at_ms=0, connected=True,
                                                   quotes=(quote,)))

    def specs(self, name: str) -> None:
        self.engine.on_message(name, SymbolSpecs(request_id="r", specs=(
            SymbolSpec(name="EURUSD", bid=1.09, ask=1.0901, **SPEC),)))  # type: ignore[arg-type]


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass(frozen=True)
class EditFigures:
    times_ms: list[float]  # snapshot -> commands sent, per edit
    commands: int  # sent per edit
    rss_mb: float
    # One target's full plan (the periodic check that nothing was missed, coordinator/runtime/full_plans.py): the
    # longest the coordinator's loop waits for those, since they are made one target at a time. Median of 3.
    full_plan_ms: float
    # Every target's answer to an edit (its snapshot as changes, its results), from bytes to the reconcile after.
    answers_ms: list[float]


def measure(targets: int, copies: int, edits: int, *, prices_move: bool = False) -> EditFigures:
    """The edits timed, and a target's full plan. ``prices_move``: before each edit every target's heartbeat
    brings a new price, as live markets do between two edits."""
    collector.tune()  # the coordinator's settings for Python's cycle collector (coordinator/runtime/collector.py)
    with tempfile.TemporaryDirectory(prefix="mt5-copier-bench-") as folder:
        rig = _Rig(Path(folder) / "state", targets)
        try:
            source = [_order(10_000_000 + i, round(1.08 - i * 1e-5, 5)) for i in range(copies)]
            for name in rig.logins:
                rig.hello(name)
            rig.snapshot(SOURCE, source)
            rig.specs(SOURCE)
            books = {name: [_copy(o, 50_000_000 + index * copies + i) for i, o in enumerate(source)]
                     for index, name in enumerate(n for n in rig.logins if n != SOURCE)}
            rig.remember(books)
            for name, book in books.items():
                rig.snapshot(name, book)
                rig.specs(name)
            rig.engine.reconcile(rig.engine.take_dirty())
            collector.settle()  # as the runner does once its first plans are made
            if rig.commands:
                raise RuntimeError(f"the copies were not in sync: {rig.commands} commands at the start")
            times = []
            for edit in range(edits):
                if prices_move:
                    rig.tick(books, 1.09 + (edit + 1) * 1e-5)
                changed = list(source)
                changed[edit] = _order(source[edit].ticket, round(source[edit].price_open - 0.001, 5))
                started = time.perf_counter()
                rig.snapshot(SOURCE, changed)
                rig.engine.reconcile(rig.engine.take_dirty())
                times.append((time.perf_counter() - started) * 1000)
            commands = rig.commands // max(1, edits)
            answered = _answers_timed(rig, changed if edits else source, books, edits)
            full = []
            for name in list(books)[:3]:
                started = time.perf_counter()
                rig.engine.reconcile({name}, full=True)
                full.append((time.perf_counter() - started) * 1000)
            return EditFigures(times, commands, _rss_mb(), statistics.median(full), answered)
        finally:
            rig.state.close()
            gc.unfreeze()  # the next measurement starts as the first did


def _answers_timed(rig: _Rig, source: list[PendingOrder], books: dict[str, list[PendingOrder]],
                   edits: int) -> list[float]:
    """After the timed edits (whose commands were never answered): ``edits`` more, each answered by every target
    as its worker would (rig.answers), the answers timed from their bytes to the reconcile after them."""
    answered: list[float] = []
    for _ in range(5):  # the edits timed above, answered untimed, until every copy is settled and in sync
        if not rig.batches:
            break
        _deliver(rig, rig.answers(books))
    else:
        raise RuntimeError("the copies did not settle after the timed edits")
    for edit in range(edits):
        source = list(source)
        source[edit] = _order(source[edit].ticket, round(source[edit].price_open - 0.002, 5))
        rig.snapshot(SOURCE, source)
        rig.engine.reconcile(rig.engine.take_dirty())
        answers = rig.answers(books)
        started = time.perf_counter()
        _deliver(rig, answers)
        answered.append((time.perf_counter() - started) * 1000)
        if rig.batches:
            raise RuntimeError(f"the answers to edit {edit} made {len(rig.batches)} more batches")
    return answered


def _deliver(rig: _Rig, answers: list[tuple[str, list[bytes], list[bytes]]]) -> None:
    """The targets' answers handed to the engine from their bytes, as the hub does, then the reconcile after them."""
    for name, snapshot_frames, result_frames in answers:
        rig.engine.on_message(name, decode(snapshot_frames))
        rig.engine.on_message(name, decode(result_frames))
    rig.engine.reconcile(rig.engine.take_dirty())


def _measure_quietly(targets: int, copies: int, edits: int, prices_move: bool) -> EditFigures:
    logger.disable("coordinator")  # the engine's log of a start-up is not the benchmark's output
    return measure(targets, copies, edits, prices_move=prices_move)


def _apart(targets: int, copies: int, edits: int, *, prices_move: bool = False) -> EditFigures:
    """``measure`` in a process of its own, as the coordinator is: its RSS is the engine's alone (not what the
    benchmarks run before left in this process), and its cycle collector starts fresh."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure_quietly, targets, copies, edits, prices_move).result()


def run(*, targets: int, copies: int, edits: int) -> None:
    print(f"P4 one source edit, {targets} targets x {copies} copies in sync (engine in a process of its own, no "
          "workers)")
    figures = _apart(targets, copies, edits)
    moved = _apart(targets, copies, edits, prices_move=True)
    alone = _apart(1, copies, edits) if targets > 1 else figures
    median = statistics.median(figures.times_ms)
    print(f"  snapshot -> commands sent: median {median:.1f} ms, best {min(figures.times_ms):.1f} ms over {edits} "
          f"edits ({figures.commands} commands each); process RSS {figures.rss_mb:.0f} MB")
    if targets > 1:
        # What one more target adds, and what an edit costs whatever the number of targets (the source's orders
        # compared, the intents' durable write): from the same edit with one target.
        per_target = (median - statistics.median(alone.times_ms)) / (targets - 1)
        adds = f"{per_target * 1000:.0f} us" if per_target > 0 else "less than the noise of these sizes"
        print(f"  with 1 target: median {statistics.median(alone.times_ms):.1f} ms; each further target adds {adds}")
    print(f"  the same after every target's price moved (a heartbeat's new tick before each edit): median "
          f"{statistics.median(moved.times_ms):.1f} ms (a moved price re-plans only the orders the last plan acted on "
          "or skipped)")
    answers = statistics.median(figures.answers_ms)
    print(f"  then every target's answer (its snapshot, sent as its changes to the last one, and its results), from "
          f"their bytes to the reconcile after them: median {answers:.1f} ms ({answers * 1000 / targets:.0f} us per "
          "target)")
    every = figures.full_plan_ms * targets / 1000
    print(f"  a target's full plan (the periodic check, made one target at a time: the longest the loop waits for "
          f"it): {figures.full_plan_ms:.0f} ms; all {targets} at once would be ~{every:.1f} s")
    print()
