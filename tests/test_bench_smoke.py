"""The benchmarks still run (their figures are not asserted: speed belongs in bench/, not in tests)."""

from __future__ import annotations

import pytest

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


# One test per figure, so the suite's runners take them in parallel (together they take 20-30 s); those that start
# the copier's processes are marked as such, for the suite's ordering of its long tests (tests/conftest.py).
@pytest.mark.parametrize(("section", "figures"), [
    pytest.param("p1", ("P1 copy latency", "sequential baseline"), marks=pytest.mark.e2e),
    pytest.param("p2", ("P2 full sync",), marks=pytest.mark.e2e),
    pytest.param("p3", ("P3 idle", "the source's", "wake-ups a second"), marks=pytest.mark.e2e),
    pytest.param("p4", ("P4 one source edit", "each further target adds", "every target's answer",
                        "a target's full plan")),
])
def test_issue_13_figures_run_in_quick_mode(section, figures, capsys):
    # P1-P4 on tiny sizes: every figure is printed (none is asserted: --quick is for CI).
    from bench.__main__ import main

    assert main(["--quick", "--only", section]) == 0
    output = capsys.readouterr().out
    for figure in figures:
        assert figure in output
