"""Outcomes are events, emitted once: the history, the log and the run's report all take them from one stream."""

from __future__ import annotations

from dataclasses import replace

from loguru import logger

from coordinator.domain.events import CommandFailed, CopyPlaced, CopyRemoved, Event, EventStream, OrderSkipped
from coordinator.domain.planner import SkipReason
from protocol import CommandStatus, SymbolSpecs
from protocol.mt5 import Retcode
from tests.enginekit import SOURCE, TARGET, closed, copy_of, order

CANCELLED = 2


def collect(rig) -> list[Event]:
    seen: list[Event] = []
    rig.engine.events.subscribe(seen.append)
    return seen


def history(rig) -> list[tuple[str, str]]:
    return [tuple(row) for row in rig.state.connection.execute("SELECT action, outcome FROM events ORDER BY id")]


def test_a_placement_is_one_event_told_once_by_the_history_the_log_and_the_report(make_rig):
    rig = make_rig()
    seen = collect(rig)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="SUCCESS")
    try:
        rig.start([order(1)])
        rig.reconcile()
        [place] = rig.commands()
        rig.result(place, CommandStatus.DONE, ticket=9001)
    finally:
        logger.remove(sink)
    # Timed by stage (tests/test_latency_stages.py says how): the rest of the event is the placement's.
    assert [replace(event, stages=None) for event in seen] == [CopyPlaced(
        target=TARGET, source_ticket=1, copy_ticket=9001, description="EURUSD buy limit 0.1 lots @ 1.08 sl 0 tp 0")]
    assert history(rig) == [("placed", "done")]
    assert [line for line in lines if "copied as" in line] == [
        "t1: source #1 copied as #9001: EURUSD buy limit 0.1 lots @ 1.08 sl 0 tp 0"]
    assert rig.engine.reports[TARGET].placed == {1: 9001}


def test_a_failure_and_a_removal_are_events_too(make_rig):
    rig = make_rig(target={"orphans": {"max_checks": 1}})
    seen = collect(rig)
    source = order(1)
    rig.start([], [copy_of(source, 9001)], source_closed=[closed(1, CANCELLED)])
    rig.reconcile()
    [removal] = rig.commands()
    rig.result(removal, CommandStatus.REJECTED, retcode=Retcode.REQUOTE)
    rig.advance(1.5)
    rig.snapshot(SOURCE, [], closed=[closed(1, CANCELLED)])
    rig.snapshot(TARGET, [copy_of(source, 9001)])
    rig.reconcile()
    [again] = rig.commands()
    rig.result(again, CommandStatus.DONE, ticket=9001)
    kinds = [type(event).__name__ for event in seen]
    assert kinds == ["OrphanDecided", "CommandFailed", "OrphanDecided", "CopyRemoved"]
    failed = next(event for event in seen if isinstance(event, CommandFailed))
    assert (failed.kind, failed.status, failed.retcode, failed.final, failed.retry_in) == (
        "remove", "rejected", Retcode.REQUOTE, False, 1.0)
    removed = seen[-1]
    assert isinstance(removed, CopyRemoved) and removed.reason == "orphan: source order #1 is cancelled"
    assert rig.engine.reports[TARGET].removed == {1: "orphan: source order #1 is cancelled"}


def test_a_subscriber_that_fails_stops_neither_copying_nor_the_others():
    stream = EventStream()
    told: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("a notifier is down")

    stream.subscribe(broken)
    stream.subscribe(told.append)
    event = CopyRemoved(target="t1", source_ticket=1, copy_ticket=2, reason="")
    stream.emit(event)
    assert told == [event]


def test_orders_waiting_for_the_same_thing_are_one_event_and_one_log_line(make_rig):
    """A target's first plans can find a thousand orders waiting for its symbol specification: one event and one
    line say it, naming the orders. What is no wait (a symbol the target does not have) is still said per order."""
    rig = make_rig()
    seen = collect(rig)
    lines: list[tuple[str, str]] = []
    sink = logger.add(lambda message: lines.append((message.record["level"].name, message.record["message"])),
                      level="DEBUG")
    try:
        rig.start([order(ticket, symbol="GBPUSD") for ticket in range(1, 8)])
        rig.reconcile()
        skipped = [event for event in seen if isinstance(event, OrderSkipped)]
        assert [(event.skip.source_ticket, event.skip.reason, event.others) for event in skipped] == [
            (1, SkipReason.SYMBOL_PENDING, (2, 3, 4, 5, 6, 7))]
        assert [text for level, text in lines if "GBPUSD" in text] == [
            "t1: 7 source orders (#1, #2, #3, #4, #5, ...) GBPUSD: waiting for the target's symbol specification"]
        rig.reconcile()  # said once per cause
        assert len([event for event in seen if isinstance(event, OrderSkipped)]) == 1
        rig.engine.on_message(TARGET, SymbolSpecs(request_id="r", specs=(), missing=("GBPUSD",)))
        lines.clear()
        rig.reconcile()
    finally:
        logger.remove(sink)
    missing = [event for event in seen if isinstance(event, OrderSkipped)][1:]
    assert [(event.skip.source_ticket, event.skip.reason, event.others) for event in missing] == [
        (ticket, SkipReason.SYMBOL_MISSING, ()) for ticket in range(1, 8)]
    assert [level for level, text in lines if "GBPUSD" in text] == ["WARNING"] * 7
