"""The worker's adaptive poll: fast right after a change or a command, backing off step by step to the idle
pace when nothing changes; the source probes its orders alone between full reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from protocol import (
    AccountFacts,
    ClosedOrder,
    Command,
    CommandBatch,
    CommandKind,
    CommandResult,
    CommandStatus,
    ErrorMessage,
    Heartbeat,
    PendingOrder,
    PositionFacts,
    Snapshot,
    SnapshotChanges,
    TerminalFacts,
    Welcome,
)
from terminal_worker import worker as worker_module
from terminal_worker.worker import (
    CLOSED_ORDER_MEMORY_COUNT,
    CLOSED_ORDER_MEMORY_SECONDS,
    HISTORY_RETRY_SECONDS,
    MAX_WAIT_MS,
    PARENT_CHECK_SECONDS,
    PING_SLACK,
    SOURCE_BUSY_SECONDS,
    SOURCE_IDLE_PROBE_SECONDS,
    SOURCE_POLL_SECONDS,
    SOURCE_PROBE_SECONDS,
    SOURCE_QUIET_POLL_SECONDS,
    Worker,
)


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
        self.held: tuple[PositionFacts, ...] = ()
        self.reads: dict[str, int] = {"orders": 0, "account": 0}
        self.history: dict[int, ClosedOrder] = {}  # what the terminal's history says of an order that left

    def pending_orders(self) -> tuple[PendingOrder, ...]:
        self.reads["orders"] += 1
        return self.orders

    def positions(self) -> tuple[PositionFacts, ...]:
        return self.held

    def terminal_facts(self) -> TerminalFacts:
        return TerminalFacts(connected=True, trade_allowed=True)

    def account_facts(self) -> AccountFacts:
        self.reads["account"] += 1
        return AccountFacts(login=2001, server="Sim-Server", trade_allowed=True, trade_expert=True)

    def describe_wrong_account(self, login: int, server: str) -> str | None:
        return None

    def quotes(self, symbols: Any) -> tuple:
        return ()

    def closed_order(self, ticket: int) -> ClosedOrder | None:
        self.reads["history"] = self.reads.get("history", 0) + 1
        return self.history.get(ticket)

    def disconnect(self) -> None:
        pass


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    clock = Clock()
    monkeypatch.setattr(worker_module.time, "monotonic", clock)
    made: list[Worker] = []

    def make(role: str, poll_interval: float | None = 0.25) -> tuple[Worker, CountingAdapter, list[Any]]:
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


def test_a_target_reads_its_terminal_at_its_idle_pace_and_at_once_after_a_command(rig):
    clock, make = rig
    worker, adapter, _sent = make("target")
    gaps = run_polls(clock, worker, 5.0)
    assert gaps and all(gap == pytest.approx(0.25) for gap in gaps)  # only the source's detection is hurried
    worker._poll_soon()  # what a command batch does before it sends its results
    assert worker._next_poll == 0.0
    reads = adapter.reads["account"]
    worker._poll_terminal()
    assert adapter.reads["account"] == reads + 1


def test_a_change_on_a_target_is_reported_at_its_next_read(rig):
    clock, make = rig
    worker, adapter, sent = make("target")
    run_polls(clock, worker, 3.0)
    adapter.orders = (order(1),)
    clock.now = worker._next_poll
    worker._poll_terminal()
    assert sent[-1].orders == (order(1),)
    assert worker._next_poll - clock.now == pytest.approx(0.25)


def test_the_source_probes_its_orders_between_full_reads_and_reads_all_on_a_change(rig):
    clock, make = rig
    worker, adapter, sent = make("source", poll_interval=1.0)
    gaps = run_polls(clock, worker, 10.0)
    assert max(gaps) == pytest.approx(SOURCE_IDLE_PROBE_SECONDS)  # quiet: on every copy's path all the same
    # The account (a full read) is read about once per poll_interval, the orders every probe.
    assert 9 <= adapter.reads["account"] <= 12
    assert adapter.reads["orders"] > 0.8 * (1.0 / SOURCE_IDLE_PROBE_SECONDS) * adapter.reads["account"]
    snapshots = len(sent)
    adapter.orders = (order(7),)
    clock.now = worker._next_poll  # a probe, not a full read, is due
    accounts = adapter.reads["account"]
    worker._poll_terminal()
    assert len(sent) == snapshots + 1 and sent[-1].orders == (order(7),)
    assert adapter.reads["account"] == accounts + 1  # the snapshot rests on a full read of this moment


def test_a_source_whose_orders_changed_probes_quickly_for_a_while_then_slows_down(rig):
    clock, make = rig
    worker, adapter, _sent = make("source", poll_interval=1.0)
    run_polls(clock, worker, 2.0)
    adapter.orders = (order(7),)
    changed_at = clock.now = worker._next_poll
    worker._poll_terminal()
    busy = run_polls(clock, worker, SOURCE_BUSY_SECONDS - 0.5)
    assert max(busy) == pytest.approx(SOURCE_PROBE_SECONDS)  # the next order of a burst is seen within 5 ms
    quiet = run_polls(clock, worker, 3.0)
    assert clock.now - changed_at > SOURCE_BUSY_SECONDS
    assert quiet[-1] == pytest.approx(SOURCE_IDLE_PROBE_SECONDS)


def test_by_default_a_quiet_source_without_positions_reads_all_once_a_second_and_probes_between(rig):
    clock, make = rig
    worker, adapter, sent = make("source", poll_interval=None)
    run_polls(clock, worker, SOURCE_BUSY_SECONDS + 1.0)  # the start counts as quiet: nothing changed yet
    accounts = adapter.reads["account"]
    gaps = run_polls(clock, worker, 10.0)
    assert max(gaps) == pytest.approx(SOURCE_IDLE_PROBE_SECONDS)  # its orders are still watched as closely
    assert 9 <= adapter.reads["account"] - accounts <= 11  # full reads: once a second
    # An order arrives: seen by the next probe, read whole at once, and full reads at the quick pace for a while.
    adapter.orders = (order(7),)
    clock.now = worker._next_poll
    worker._poll_terminal()
    assert sent[-1].orders == (order(7),)
    accounts = adapter.reads["account"]
    run_polls(clock, worker, 2.0)
    assert adapter.reads["account"] - accounts >= 15  # about every SOURCE_POLL_SECONDS while busy
    assert worker.poll_interval == SOURCE_POLL_SECONDS


def test_by_default_a_source_holding_positions_reads_all_at_the_quick_pace_when_quiet(rig):
    clock, make = rig
    worker, adapter, _sent = make("source", poll_interval=None)
    adapter.held = (PositionFacts(ticket=5, identifier=5, symbol="EURUSD", type=0, volume=0.1, magic=0, comment="",
                                  price_open=1.0, sl=0.0, tp=0.0),)
    run_polls(clock, worker, SOURCE_BUSY_SECONDS + 1.0)
    accounts = adapter.reads["account"]
    run_polls(clock, worker, 2.0)
    # A position's close or SL/TP edit is seen only by a full read: they stay at SOURCE_POLL_SECONDS.
    assert adapter.reads["account"] - accounts >= 15  # (each at the first probe due after SOURCE_POLL_SECONDS)
    assert worker.poll_interval == SOURCE_POLL_SECONDS
    adapter.held = ()
    run_polls(clock, worker, 1.0)
    assert worker.poll_interval == SOURCE_QUIET_POLL_SECONDS


def test_a_source_poll_interval_below_the_probe_pace_makes_every_read_a_full_one(rig):
    clock, make = rig
    worker, adapter, _sent = make("source", poll_interval=0.002)
    gaps = run_polls(clock, worker, 1.0)
    assert max(gaps) == pytest.approx(0.002)
    assert adapter.reads["account"] == len(gaps)


def test_a_long_batch_reports_the_terminal_and_heartbeats_while_it_runs(rig):
    """Hundreds of placements at a broker's pace take longer than worker_timeout: the worker must not pass for
    hung meanwhile, and what its heartbeats confirm is the terminal as the batch left it so far."""
    clock, make = rig
    worker, adapter, sent = make("target")
    worker.heartbeat_interval = 1.0
    placed: list[PendingOrder] = []

    def execute(command: Command) -> CommandResult:
        clock.now += 0.3  # the broker's round trip
        placed.append(order(command.source_ticket))
        adapter.orders = tuple(placed)
        return CommandResult(command_id=command.command_id, status=CommandStatus.DONE, ticket=command.source_ticket)

    adapter.execute = execute  # type: ignore[attr-defined]
    adapter.begin_batch = adapter.end_batch = lambda: None  # type: ignore[attr-defined]
    worker._poll_terminal()
    worker._send_heartbeat()
    sent.clear()
    commands = tuple(Command(command_id=f"c{i}", kind=CommandKind.PLACE, source_ticket=i, symbol="EURUSD")
                     for i in range(1, 11))
    worker._execute_batch(CommandBatch(batch_id="b", commands=commands))
    # 3 s of placements: a heartbeat is due after the 4th (1.2 s) and the 8th (2.4 s), each right after a
    # snapshot of what was placed by then; then the final snapshot and the results.
    assert [type(message).__name__ for message in sent] == [
        "Snapshot", "Heartbeat", "Snapshot", "Heartbeat", "Snapshot", "CommandResults"]
    assert [len(message.orders) for message in sent if isinstance(message, Snapshot)] == [4, 8, 10]
    assert all(heartbeat.last_seq == snapshot.seq for snapshot, heartbeat in zip(sent[0:4:2], sent[1:4:2], strict=True))
    assert len(sent[-1].results) == 10


def _ping(worker: Worker) -> None:
    """The coordinator's heartbeat arriving (what ``_handle`` does with it)."""
    worker._handle(Heartbeat(sent_at_ms=0))


def test_the_coordinators_ping_takes_a_targets_read_and_heartbeat_due_within_half_an_interval(rig):
    clock, make = rig
    worker, adapter, sent = make("target", poll_interval=1.0)
    worker._run_timers(clock.now)  # the first read and heartbeat
    reads, beats = adapter.reads["account"], sum(isinstance(m, Heartbeat) for m in sent)
    clock.now += 0.4
    worker._run_timers(clock.now)  # a wake-up for something else, nothing due
    assert adapter.reads["account"] == reads
    clock.now += 0.2  # 0.6 s after: both due within half their interval
    _ping(worker)
    worker._run_timers(clock.now)
    assert adapter.reads["account"] == reads + 1
    assert sum(isinstance(m, Heartbeat) for m in sent) == beats + 1


def test_while_pings_come_a_workers_own_timers_wait_for_them_and_keep_their_pace_without(rig):
    clock, make = rig
    worker, _adapter, _sent = make("target", poll_interval=1.0)
    _ping(worker)
    worker._run_timers(clock.now)
    # Pinged lately: its own timers give the next ping (1.0-1.2 s away) the time to come first.
    assert worker._next_heartbeat - clock.now == pytest.approx(PING_SLACK)
    assert worker._next_poll - clock.now == pytest.approx(PING_SLACK)
    clock.now += 3.0  # no ping for three intervals: the coordinator is gone or slow
    worker._run_timers(clock.now)
    assert worker._next_heartbeat - clock.now == pytest.approx(1.0)
    assert worker._next_poll - clock.now == pytest.approx(1.0)


def test_a_ping_does_not_hurry_the_sources_probes(rig):
    clock, make = rig
    worker, _adapter, _sent = make("source", poll_interval=1.0)
    run_polls(clock, worker, 10.0)
    _ping(worker)
    worker._run_timers(clock.now)
    assert worker._next_poll - clock.now <= SOURCE_IDLE_PROBE_SECONDS + 1e-9


def test_pings_much_quicker_than_a_targets_reads_do_not_make_its_reads_more_frequent(rig):
    clock, make = rig
    worker, adapter, _sent = make("target", poll_interval=1.0)
    worker.heartbeat_interval = 0.2  # the coordinator pings five times a second
    worker._run_timers(clock.now)
    reads = adapter.reads["account"]
    for _ in range(4):  # pings 0.2 s apart, up to 0.8 s after the read
        clock.now += 0.2
        _ping(worker)
        worker._run_timers(clock.now)
    assert adapter.reads["account"] == reads  # the read waits for its own poll_interval
    clock.now += 0.2
    worker._run_timers(clock.now)
    assert adapter.reads["account"] == reads + 1


def test_an_idle_target_waits_for_the_ping_that_does_its_read_in_one_wait(rig):
    clock, make = rig
    worker, _adapter, _sent = make("target", poll_interval=1.0)
    _ping(worker)
    worker._run_timers(clock.now)
    # Its read and heartbeat wait PING_SLACK intervals for the next ping: one wait reaches them, no wake-up between.
    assert worker._poll_timeout_ms() == pytest.approx(PING_SLACK * 1000, abs=1)
    assert PING_SLACK * 1000 < MAX_WAIT_MS


def test_the_coordinators_process_is_looked_for_at_its_own_pace_not_at_every_wake_up(rig, monkeypatch):
    clock, make = rig
    worker, _adapter, _sent = make("source", poll_interval=1.0)
    worker.parent_pid = 4242
    looked: list[int] = []
    monkeypatch.setattr(worker_module, "parent_alive", lambda pid: looked.append(pid) or True)
    for _ in range(100):  # a quiet source's wake-ups over 4 s
        clock.now += SOURCE_IDLE_PROBE_SECONDS
        worker._check_parent(clock.now)
    assert len(looked) == pytest.approx(100 * SOURCE_IDLE_PROBE_SECONDS / PARENT_CHECK_SECONDS, abs=1)
    monkeypatch.setattr(worker_module, "parent_alive", lambda pid: False)
    clock.now += PARENT_CHECK_SECONDS
    worker._check_parent(clock.now)
    assert worker.exit_code is not None  # gone: the worker stops (no orphan keeps trading)


def welcome(worker: Worker, protocol_minor: int) -> None:
    worker._handle(Welcome(coordinator_version="x", protocol_minor=protocol_minor, heartbeat_interval=1.0,
                           worker_timeout=10.0))


def snapshots(sent: list[Any]) -> list[Any]:
    return [message for message in sent if isinstance(message, (Snapshot, SnapshotChanges))]


def test_after_a_whole_snapshot_a_1_4_coordinator_is_sent_the_orders_changes(rig):
    clock, make = rig
    worker, adapter, sent = make("target", poll_interval=1.0)
    welcome(worker, 4)
    adapter.orders = (order(1), order(2), order(3))
    worker._poll_terminal()
    first = snapshots(sent)[-1]
    assert isinstance(first, Snapshot) and len(first.orders) == 3  # the first after a welcome: whole
    adapter.orders = (order(1), order(3), order(4))
    clock.now = worker._next_poll
    worker._poll_terminal()
    changes = snapshots(sent)[-1]
    assert isinstance(changes, SnapshotChanges)
    assert (changes.base_seq, changes.seq) == (first.seq, first.seq + 1)
    assert changes.orders == (order(4),) and changes.removed == (2,)
    assert changes.login == first.login and changes.connected
    # The coordinator did not hold the base: the next snapshot is whole.
    worker._handle(ErrorMessage(code="snapshot-required", message="snapshot changes not applied"))
    assert worker._next_poll == 0.0  # read and sent at once, not at the next poll
    worker._poll_terminal()
    assert isinstance(snapshots(sent)[-1], Snapshot) and len(snapshots(sent)[-1].orders) == 3


def test_a_coordinator_before_1_4_and_a_list_in_another_order_get_whole_snapshots(rig):
    clock, make = rig
    worker, adapter, sent = make("target", poll_interval=1.0)
    welcome(worker, 3)
    for orders in ((order(1),), (order(1), order(2))):
        adapter.orders = orders
        clock.now = worker._next_poll
        worker._poll_terminal()
    assert [type(message) for message in snapshots(sent)] == [Snapshot, Snapshot]
    welcome(worker, 4)
    clock.now = worker._next_poll
    worker._poll_terminal()  # whole after every welcome
    adapter.orders = (order(2), order(1))
    clock.now = worker._next_poll
    worker._poll_terminal()
    assert [type(message) for message in snapshots(sent)][-2:] == [Snapshot, Snapshot]


def test_a_1_5_coordinator_is_sent_the_closed_orders_records_as_their_changes_a_1_4_one_whole(rig):
    clock, make = rig
    for minor, as_changes in ((5, True), (4, False)):
        worker, adapter, sent = make("target", poll_interval=1.0)
        welcome(worker, minor)
        adapter.orders = (order(1), order(2), order(3))
        worker._poll_terminal()
        adapter.orders = (order(1), order(3))  # #2 left: its record is kept ("not in the history yet")
        clock.now = worker._next_poll
        worker._poll_terminal()
        adapter.orders = (order(3),)  # #1 left too
        clock.now = worker._next_poll
        worker._poll_terminal()
        first, second = snapshots(sent)[-2:]
        assert isinstance(second, SnapshotChanges) and second.closed_as_changes is as_changes
        if as_changes:
            assert [record.ticket for record in second.closed] == [1] and second.closed_removed == ()
        else:  # whole, as a 1.4 coordinator reads them
            assert [record.ticket for record in second.closed] == [2, 1]
        assert [record.ticket for record in first.closed] == [2]


def test_orders_that_leave_are_told_with_their_fate_and_forgotten_oldest_first(rig):
    clock, make = rig
    worker, adapter, sent = make("target", poll_interval=1.0)

    def poll(seconds: float = 1.0) -> list[tuple[int, int]]:
        clock.now += seconds
        worker._poll_terminal()
        return [(record.ticket, record.state) for record, _ in worker._state.closed.values()]

    adapter.orders = (order(1), order(2), order(3))
    poll()
    adapter.orders = (order(3),)
    assert poll() == [(1, -1), (2, -1)]  # not in the history yet
    adapter.history[2] = ClosedOrder(ticket=2, symbol="EURUSD", type=2, state=4, magic=0, comment="")
    assert poll() == [(1, -1), (2, 4)]  # filled, as the history now says
    told = len(snapshots(sent))
    assert poll() == [(1, -1), (2, 4)] and len(snapshots(sent)) == told  # nothing new: no snapshot
    asked = adapter.reads["history"]
    poll(HISTORY_RETRY_SECONDS)
    assert adapter.reads["history"] == asked  # no longer looked for once the history had time to catch up
    adapter.orders = (order(1), order(3))  # #1 is pending again
    assert poll() == [(2, 4)]
    assert poll(CLOSED_ORDER_MEMORY_SECONDS) == []  # forgotten
    adapter.orders = tuple(order(ticket) for ticket in range(10, 10 + CLOSED_ORDER_MEMORY_COUNT + 3))
    poll()
    adapter.orders = ()
    kept = poll()
    assert [ticket for ticket, _ in kept] == list(range(13, 10 + CLOSED_ORDER_MEMORY_COUNT + 3))  # the newest
    assert snapshots(sent)[-1].closed[0].ticket == 13
