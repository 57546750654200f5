"""The periodic full plans, paced (coordinator/runtime/full_plans.py): a few cheap plans all go every interval, as
they did; costly ones go one target at a time within their share of the loop's time, most overdue first, and a
target that could not be planned waits an interval before its next turn. With the engine: which plans count as
full ones."""

from __future__ import annotations

from coordinator.runtime.full_plans import BURST_SECONDS, FULL_PLAN_SHARE, FullPlanPace
from tests.enginekit import TARGET, EngineRig, order

INTERVAL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _round(pace: FullPlanPace, planned_at: dict[str, float], clock: Clock, cost: float,
           plannable: frozenset[str] | None = None) -> list[str]:
    """One round of the runner's loop: the due targets planned in full as far as the pace allows, each taking
    ``cost`` seconds (recorded by the engine when it is ``plannable``)."""
    done = []
    for name in pace.due(planned_at, sorted(planned_at), INTERVAL):
        if not pace.may_plan():
            break
        if plannable is None or name in plannable:
            planned_at[name] = clock.now
        pace.planned(name, cost)
        done.append(name)
    return done


def test_cheap_full_plans_all_go_every_interval():
    clock = Clock()
    pace = FullPlanPace(clock)
    planned_at = {f"t{index}": 100.0 for index in range(20)}  # just planned (their first plans are full ones)
    assert _round(pace, planned_at, clock, cost=0.002) == []
    clock.now += INTERVAL
    assert _round(pace, planned_at, clock, cost=0.002) == sorted(planned_at)
    clock.now += 1.0
    assert _round(pace, planned_at, clock, cost=0.002) == []  # not due again before an interval


def test_costly_full_plans_go_one_at_a_time_within_their_share():
    clock = Clock()
    pace = FullPlanPace(clock)
    planned_at = {f"t{index:02}": 100.0 - index * 0.01 for index in range(50)}  # t49 planned earliest
    clock.now += INTERVAL
    cost = 0.1  # 1000 copies each, from cold caches
    first = _round(pace, planned_at, clock, cost)
    # The burst allowance first (what a quiet spell saved), then one plan at a time, never two back to back.
    assert first == ["t49", "t48", "t47"] and len(first) * cost >= BURST_SECONDS
    planned = list(first)
    spent = len(first) * cost
    began = clock.now
    for _ in range(2000):  # rounds of the loop, 0.05 s apart
        clock.now += 0.05
        done = _round(pace, planned_at, clock, cost)
        assert len(done) <= 1
        planned += done
        spent += len(done) * cost
    elapsed = clock.now - began
    assert spent <= FULL_PLAN_SHARE * elapsed + BURST_SECONDS + cost
    assert spent >= FULL_PLAN_SHARE * elapsed - cost
    # Most overdue first: every target had its full plan before any had a second one.
    assert sorted(planned[:50]) == sorted(planned_at) and planned[:50] == sorted(planned_at, reverse=True)


def test_a_target_that_could_not_be_planned_waits_an_interval_for_its_next_turn():
    clock = Clock()
    pace = FullPlanPace(clock)
    planned_at = {"online": 100.0, "offline": 100.0}
    clock.now += INTERVAL
    assert _round(pace, planned_at, clock, 0.0001, plannable=frozenset({"online"})) == ["offline", "online"]
    clock.now += 0.2
    assert _round(pace, planned_at, clock, 0.0001, plannable=frozenset({"online"})) == []
    clock.now += INTERVAL
    assert _round(pace, planned_at, clock, 0.0001, plannable=frozenset({"online"})) == ["offline", "online"]


def test_the_engine_records_the_plans_it_makes_in_full(tmp_path):
    rig = EngineRig(tmp_path)
    try:
        rig.start(source_orders=[order(1)])
        assert TARGET not in rig.engine.planned_in_full_at
        rig.engine.reconcile({TARGET})
        first = rig.engine.planned_in_full_at[TARGET]  # the first plan has nothing to follow: full
        rig.advance(1.0)
        rig.snapshot("src", [order(1), order(2)])
        rig.engine.reconcile({TARGET})  # a new source order: planned incrementally
        assert rig.engine.planned_in_full_at[TARGET] == first
        rig.advance(1.0)
        rig.engine.reconcile({TARGET}, full=True)
        assert rig.engine.planned_in_full_at[TARGET] == rig.clock
        rig.advance(1.0)
        rig.engine.reconcile()  # all targets: full by default, as --once plans
        assert rig.engine.planned_in_full_at[TARGET] == rig.clock
    finally:
        rig.close()
