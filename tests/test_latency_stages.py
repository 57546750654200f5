"""Each copy is timed by stage (detected, planned, sent, answered, confirmed): on its history event, in ``history``,
and in the metrics. On the engine, with the stages' clock and the wall clock in the test's hands."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from coordinator.cli.operator import history_command
from coordinator.domain.events import CopyConfirmed, CopyPlaced, CopyReplaced, Event
from coordinator.domain.latency import CopyStages
from protocol import CommandKind, CommandStatus
from protocol.mt5 import Retcode
from tests.enginekit import SOURCE, TARGET, copy_of, order

WALL = 1_800_000_000_000  # the coordinator's wall clock, frozen (UTC ms)
SKEW = 5_000  # the source worker's clock runs 5 s ahead of the coordinator's


@dataclass
class StageClock:
    ms: float = WALL

    def __call__(self) -> float:
        return self.ms


def timed_rig(make_rig) -> tuple:
    clock = StageClock()
    rig = make_rig(wall_ms=lambda: WALL, stage_clock=clock)
    seen: list[Event] = []
    rig.engine.events.subscribe(seen.append)
    rig.hello(SOURCE)
    rig.hello(TARGET)
    rig.heartbeat(SOURCE, sent_at_ms=WALL + SKEW)  # the skew the source's poll times are translated with
    return rig, clock, seen


def place_one(rig, clock, *, snapshot_first: bool):
    """Source order 1, seen by the source's poll 10 ms before its snapshot arrives, planned 2.5 ms later, answered
    after 37.5 ms (30 of them the broker's); the target's snapshot showing the copy before the answer (as a worker
    sends them) or 6 ms after it."""
    source = order(1)
    clock.ms = WALL + 1000
    rig.snapshot(SOURCE, [source], taken_at_ms=WALL + 990 + SKEW)
    rig.specs(SOURCE)
    rig.snapshot(TARGET, [])
    rig.specs(TARGET)
    clock.ms = WALL + 1002.5
    rig.reconcile()
    [place] = rig.commands()
    clock.ms = WALL + 1040
    if snapshot_first:
        rig.snapshot(TARGET, [copy_of(source, 9001)])
    rig.result(place, CommandStatus.DONE, ticket=9001, elapsed_ms=30.0)
    if not snapshot_first:
        clock.ms = WALL + 1046
        rig.snapshot(TARGET, [copy_of(source, 9001)])
    return source


def sample(rig, name: str, **labels: str) -> float | None:
    return rig.engine.metrics.registry.get_sample_value(name, labels)


def stored_stages(rig) -> list[CopyStages | None]:
    return [CopyStages.from_json(text) for (text,) in
            rig.state.connection.execute("SELECT stages FROM events WHERE action = 'placed' ORDER BY id")]


def test_a_copy_the_targets_snapshot_shows_by_its_answer_is_confirmed_with_it(make_rig):
    rig, clock, seen = timed_rig(make_rig)
    place_one(rig, clock, snapshot_first=True)

    [placed] = [event for event in seen if isinstance(event, CopyPlaced)]
    expected = CopyStages(detected=WALL + 990, planned=WALL + 1002.5, sent=WALL + 1002.5, answered=WALL + 1040,
                          confirmed=WALL + 1040, broker_ms=30.0)
    assert placed.stages == expected
    assert not any(isinstance(event, CopyConfirmed) for event in seen)
    assert stored_stages(rig) == [expected]
    assert expected.describe() == ("detected→confirmed 50 ms (planned +12.5, sent +0, answered +37.5 (broker 30), "
                                   "confirmed +0)")


def test_a_copy_a_later_snapshot_shows_completes_its_history_event(make_rig, capsys):
    rig, clock, seen = timed_rig(make_rig)
    place_one(rig, clock, snapshot_first=False)

    placed = next(event for event in seen if isinstance(event, CopyPlaced))
    assert placed.stages is not None and not placed.stages.complete
    [confirmed] = [event for event in seen if isinstance(event, CopyConfirmed)]
    assert (confirmed.target, confirmed.source_ticket, confirmed.copy_ticket) == (TARGET, 1, 9001)
    assert confirmed.stages.confirmed == WALL + 1046 and confirmed.stages.total_ms == 56
    assert stored_stages(rig) == [confirmed.stages]  # the placement's row, completed

    history_command(rig.config, target=None, since=None, limit=5)
    line = next(line for line in capsys.readouterr().out.splitlines() if "  placed  " in line)
    assert line.endswith("detected→confirmed 56 ms (planned +12.5, sent +0, answered +37.5 (broker 30), "
                         "confirmed +6)")


def test_the_metrics_count_commands_and_observe_each_stage_once(make_rig):
    rig, clock, _ = timed_rig(make_rig)
    place_one(rig, clock, snapshot_first=False)

    assert sample(rig, "mt5_copier_commands_sent_total", target=TARGET, kind="place") == 1
    assert sample(rig, "mt5_copier_commands_total", target=TARGET, kind="place", result="done") == 1
    assert sample(rig, "mt5_copier_copy_events_total", target=TARGET, event="copy_placed") == 1
    for stage, seconds in (("planned", 0.0125), ("sent", 0.0), ("answered", 0.0375), ("confirmed", 0.006)):
        assert sample(rig, "mt5_copier_copy_stage_seconds_count", target=TARGET, stage=stage) == 1, stage
        assert sample(rig, "mt5_copier_copy_stage_seconds_sum", target=TARGET, stage=stage) == \
            pytest.approx(seconds), stage
    assert sample(rig, "mt5_copier_copy_latency_seconds_sum", target=TARGET) == pytest.approx(0.056)
    assert sample(rig, "mt5_copier_broker_request_seconds_sum", target=TARGET) == pytest.approx(0.030)


def test_a_refused_placement_is_counted_and_not_timed(make_rig):
    rig, clock, _ = timed_rig(make_rig)
    clock.ms = WALL + 1000
    rig.snapshot(SOURCE, [order(1)], taken_at_ms=WALL + 990 + SKEW)
    rig.specs(SOURCE)
    rig.snapshot(TARGET, [])
    rig.specs(TARGET)
    rig.reconcile()
    [place] = rig.commands()
    rig.result(place, CommandStatus.REJECTED, retcode=Retcode.NO_MONEY)

    assert sample(rig, "mt5_copier_commands_total", target=TARGET, kind="place", result="rejected") == 1
    assert sample(rig, "mt5_copier_copy_stage_seconds_count", target=TARGET, stage="planned") is None
    assert rig.engine.latency._journeys == {}  # nothing kept for a copy that never came


def test_a_replacement_is_timed_from_the_source_change_it_follows(make_rig):
    rig, clock, seen = timed_rig(make_rig)
    place_one(rig, clock, snapshot_first=True)
    bigger = order(1, volume=0.2)  # MT5 cannot change a pending order's volume: the copy is replaced
    clock.ms = WALL + 5000
    rig.snapshot(SOURCE, [bigger], taken_at_ms=WALL + 4995 + SKEW)
    clock.ms = WALL + 5001
    rig.reconcile()
    [replace] = rig.commands()
    assert replace.kind is CommandKind.REPLACE
    clock.ms = WALL + 5050
    rig.snapshot(TARGET, [copy_of(bigger, 9002)])
    rig.result(replace, CommandStatus.DONE, ticket=9002)

    [replaced] = [event for event in seen if isinstance(event, CopyReplaced)]
    assert replaced.stages == CopyStages(detected=WALL + 4995, planned=WALL + 5001, sent=WALL + 5001,
                                         answered=WALL + 5050, confirmed=WALL + 5050)


def test_a_poll_time_that_cannot_be_compared_yet_counts_from_the_snapshots_arrival(make_rig):
    rig, clock, seen = timed_rig(make_rig)
    clock.ms = WALL + 1000
    rig.snapshot(SOURCE, [order(1)], taken_at_ms=WALL + 990 + SKEW + 3_600_000)  # a clock an hour off, unmeasured
    rig.specs(SOURCE)
    rig.snapshot(TARGET, [])
    rig.specs(TARGET)
    clock.ms = WALL + 1001
    rig.reconcile()
    [place] = rig.commands()
    rig.snapshot(TARGET, [copy_of(order(1), 9001)])
    rig.result(place, CommandStatus.DONE, ticket=9001)
    placed = next(event for event in seen if isinstance(event, CopyPlaced))
    assert placed.stages is not None and placed.stages.detected == WALL + 1000


def test_stages_read_back_from_json_and_unreadable_ones_are_none():
    stages = CopyStages(detected=1.0, planned=2.0, sent=2.5, answered=40.0, broker_ms=30.0)
    assert CopyStages.from_json(stages.to_json()) == stages
    assert stages.describe() == "detected→answered (not confirmed yet) 39 ms (planned +1, sent +0.5, answered +37.5 " \
                                "(broker 30))"
    assert CopyStages.from_json("") is None
    assert CopyStages.from_json("[1, 2]") is None
    assert CopyStages.from_json('{"detected": 1}') is None


def test_the_bench_reads_the_stages_back_from_the_history(store):
    from bench.latency_bench import _stages

    stages = CopyStages(detected=1050.0, planned=1052.0, sent=1057.0, answered=1119.3, confirmed=1119.3,
                        broker_ms=53.9)
    store.record_event("t1", 5, "placed", "done", copy_ticket=9005, stages=stages.to_json())
    store.record_event("t1", 6, "placed", "done", copy_ticket=9006, stages=stages.to_json())  # not one of its orders
    figures = _stages(store.path, {5: 1000.0})
    assert figures == pytest.approx({"poll": 50.0, "planned": 2.0, "sent": 5.0, "answered": 62.3, "confirmed": 0.0,
                                     "total": 69.3, "broker": 53.9})


def test_history_reads_a_state_file_from_before_the_stages_column(tmp_path):
    import sqlite3

    from coordinator.persistence.state import read_events

    db = sqlite3.connect(tmp_path / "old.db")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, at REAL, target TEXT, source_ticket INTEGER, copy_ticket"
               " INTEGER, action TEXT, outcome TEXT, retcode INTEGER, message TEXT)")
    db.execute("INSERT INTO events VALUES (1, 1.0, 't1', 5, 9005, 'placed', 'done', 10009, 'EURUSD')")
    [event] = read_events(db)
    assert (event.copy_ticket, event.stages) == (9005, "")
    assert read_events(db, with_stages=True) == []
    db.close()
