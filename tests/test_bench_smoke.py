"""The benchmarks still run (their figures are not asserted: speed belongs in bench/, not in tests)."""

from __future__ import annotations

from bench import codec_bench, planner_bench
from coordinator.domain.planner import plan_target
from tests.test_planner import inputs


def test_codec_and_planner_benchmarks_run(capsys):
    codec_bench.run(quick=True)
    planner_bench.run(quick=True)
    output = capsys.readouterr().out
    assert "per round trip" in output and "per plan" in output


def test_planner_benchmark_orders_are_all_placeable():
    # The benchmark measures real placements, not a planner that skips everything.
    orders = [planner_bench._order(1000 + i, 2 + i % 6, i) for i in range(12)]
    plan = plan_target(orders, inputs(quotes=planner_bench.QUOTES))
    assert len(plan.actions) == 12 and not plan.skips
