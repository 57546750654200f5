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


def test_issue_13_figures_run_in_quick_mode(capsys):
    # P1-P4 on tiny sizes: every figure is printed (none is asserted: --quick is for CI).
    from bench.__main__ import main

    assert main(["--quick", "--only", "p1,p2,p3,p4"]) == 0
    output = capsys.readouterr().out
    for figure in ("P1 copy latency", "sequential baseline", "P2 full sync", "P3 idle", "P4 one source edit"):
        assert figure in output
