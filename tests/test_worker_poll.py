"""The worker's adaptive poll: fast right after a change or a command, backing off step by step to the idle
pace when nothing changes; the source probes its orders alone between full reads."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from protocol import AccountFacts, PendingOrder, PositionFacts, TerminalFacts
from terminal_worker import worker as worker_module
from terminal_worker.worker import FAST_POLL_SECONDS, SOURCE_PROBE_MAX_SECONDS, Worker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingAdapter:
    """A terminal whose orders the test sets, counting the reads of each kind."""

    connected = True
    login = 2001
    server = "Sim-Server"
    terminal_path = "fake"

    def __init__(self) -> None:
        self.orders: tuple[PendingOrder, ...] = ()
        self.reads: dict[str, int] = {"orders": 0, "account": 0}

    def pending_orders(self) -> tuple[PendingOrder, ...]:
        self.reads["orders"] += 1
        return self.orders

    def positions(self) -> tuple[PositionFacts, ...]:
        return ()

    def terminal_facts(self) -> TerminalFacts:
        return TerminalFacts(connected=True, trade_allowed=True)

    def account_facts(self) -> AccountFacts:
        self.reads["account"] += 1
        return AccountFacts(login=2001, server="Sim-Server", trade_allowed=True, trade_expert=True)

    def describe_wrong_account(self, login: int, server: str) -> str | None:
        return None

    def quotes(self, symbols: Any) -> tuple:
        return ()

    def closed_order(self, ticket: int) -> None:
        return None

    def disconnect(self) -> None:
        pass


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    clock = Clock()
    monkeypatch.setattr(worker_module.time, "monotonic", clock)
    made: list[Worker] = []

    def make(role: str, poll_interval: float = 0.25) -> tuple[Worker, CountingAdapter, list[Any]]:
        adapter = CountingAdapter()
        worker = Worker(name="alpha", role=role, backend="sim", adapter=adapter,  # type: ignore[arg-type]
                        endpoint="tcp://127.0.0.1:1", poll_interval=poll_interval)
        sent: list[Any] = []
        worker._send = lambda message: sent.append(message) or True  # type: ignore[method-assign]
        worker._welcomed = True
        made.append(worker)
        return worker, adapter, sent

    yield clock, make
    for worker in made:
        worker._context.destroy(linger=0)


def order(ticket: int) -> PendingOrder:
    return PendingOrder(ticket=ticket, symbol="EURUSD", type=2, volume=0.1, price_open=1.0, price_stoplimit=0.0,
                        sl=0.0, tp=0.0, type_time=0, time_expiration=0, magic=0, comment="")


def run_polls(clock: Clock, worker: Worker, seconds: float) -> list[float]:
    """Poll whenever due for ``seconds`` of fake time; return the gaps between polls."""
    end = clock.now + seconds
    gaps = []
    while True:
        clock.now = max(clock.now, worker._next_poll)
        if clock.now > end:
            return gaps
        before = clock.now
        worker._poll_terminal()
        gaps.append(worker._next_poll - before)


def test_a_target_polls_fast_after_a_command_then_backs_off_step_by_step_to_the_idle_pace(rig):
    clock, make = rig
    worker, _adapter, _sent = make("target")
    worker._poll_soon()  # what a command batch does
    gaps = run_polls(clock, worker, 5.0)
    assert gaps[0] == pytest.approx(FAST_POLL_SECONDS)  # the first read sent a snapshot: look again soon
    assert gaps[1] == pytest.approx(FAST_POLL_SECONDS * 2)
    assert gaps == sorted(gaps) and gaps[-1] == pytest.approx(0.25)
    assert all(later <= earlier * 2 + 1e-9 for earlier, later in pairwise(gaps))
    assert len(gaps) < 5.0 / 0.25 + 10  # idle: about one read per poll_interval


def test_a_change_brings_the_fast_pace_back(rig):
    clock, make = rig
    worker, adapter, sent = make("target")
    run_polls(clock, worker, 3.0)
    assert worker._poll_gap == pytest.approx(0.25)
    adapter.orders = (order(1),)
    clock.now = worker._next_poll
    worker._poll_terminal()
    assert sent[-1].orders == (order(1),)
    assert worker._poll_gap == pytest.approx(FAST_POLL_SECONDS)


def test_the_source_probes_its_orders_between_full_reads_and_reads_all_on_a_change(rig):
    clock, make = rig
    worker, adapter, sent = make("source", poll_interval=1.0)
    gaps = run_polls(clock, worker, 10.0)
    assert max(gaps) == pytest.approx(SOURCE_PROBE_MAX_SECONDS)  # never further apart: on the copy's path
    # The account (a full read) is read about once per poll_interval, the orders every probe.
    assert 9 <= adapter.reads["account"] <= 12
    assert adapter.reads["orders"] > 10 * adapter.reads["account"]
    snapshots = len(sent)
    adapter.orders = (order(7),)
    clock.now = worker._next_poll  # a probe, not a full read, is due
    accounts = adapter.reads["account"]
    worker._poll_terminal()
    assert len(sent) == snapshots + 1 and sent[-1].orders == (order(7),)
    assert adapter.reads["account"] == accounts + 1  # the snapshot rests on a full read of this moment
    assert worker._poll_gap == pytest.approx(FAST_POLL_SECONDS)


def test_a_poll_interval_below_the_fast_pace_is_kept(rig):
    clock, make = rig
    worker, _adapter, _sent = make("source", poll_interval=0.01)
    gaps = run_polls(clock, worker, 1.0)
    assert max(gaps) == pytest.approx(0.01)
