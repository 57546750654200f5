"""``run --once``: what its summary says and the exit code that goes with it (an engine on a hand-turned clock),
and how long it waits for a terminal that is definitely not coming (real processes)."""

from __future__ import annotations

import time

import pytest

from config.exit_codes import ExitCode
from coordinator.runtime.summary import once_exit_code, render_summary
from protocol import CommandStatus
from tests.enginekit import SOURCE, TARGET, EngineRig, copy_of, order
from tests.simhelpers import BUY_LIMIT, SELL_STOP, copier_config, place_pending, sim_terminals, target_section


@pytest.fixture
def rig(tmp_path):
    made = EngineRig(tmp_path / "state", {"max_pending_orders": 1})
    yield made
    made.close()


def test_orders_waiting_under_the_users_own_cap_are_reported_as_waiting_and_do_not_fail_the_run(rig):
    first, second = order(100), order(101, price_open=1.07)
    rig.start([first, second])
    rig.reconcile()
    [place] = rig.commands()
    rig.result(place, CommandStatus.DONE, ticket=900)
    rig.snapshot(TARGET, [copy_of(first, 900)])
    rig.reconcile()

    summary = render_summary(rig.engine)
    assert once_exit_code(rig.engine) == ExitCode.OK, summary
    assert "skipped 0" in summary and "waiting for room 1" in summary, summary
    assert "waiting  source #101 EURUSD: waiting for room under max_pending_orders = 1" in summary
    assert summary.count("waiting for room under") == 1, summary
    assert "result: complete (exit code 0)" in summary


def test_a_real_skip_next_to_a_capped_order_still_fails_the_run(rig):
    first, elsewhere = order(100), order(101, symbol="GBPUSD")
    rig.start([first, elsewhere])
    rig.engine.targets[TARGET].missing_symbols.add("GBPUSD")
    rig.reconcile()
    summary = render_summary(rig.engine)
    assert once_exit_code(rig.engine) == ExitCode.INCOMPLETE, summary
    assert "skipped  source #101 GBPUSD: symbol not found on target" in summary


def test_an_unavailable_target_is_named_with_the_terminal_path_tried(rig):
    rig.hello(SOURCE)
    rig.snapshot(SOURCE, [order(100)])
    rig.engine.targets[TARGET].last_error = "terminal not found: initialize failed"
    rig.reconcile()
    summary = render_summary(rig.engine)
    path = rig.engine.targets[TARGET].config.path
    assert f"target {TARGET}: NOT SYNCED - terminal not found: initialize failed (terminal {path})" in summary
    assert once_exit_code(rig.engine) == ExitCode.INCOMPLETE


# ---- real processes ----------------------------------------------------------------------------


def test_a_source_whose_terminal_is_not_found_ends_the_run_at_once_with_exit_3_and_nothing_copied(copier):
    master, alpha = sim_terminals(copier.directory, "alpha")
    place_pending(master, BUY_LIMIT)
    place_pending(master, SELL_STOP, symbol="GBPUSD")
    (copier.directory / "terminals" / "master" / "terminal.db").unlink()
    copier.write_config(copier_config(target_section("alpha", 2001), hello_timeout=20))

    started = time.monotonic()
    run = copier.once(timeout=30)
    took = time.monotonic() - started
    assert run.code == 3, run.output
    assert "source master is not available: terminal not found" in run.output, run.output
    assert took < 10, f"waited {took:.1f}s for a source that reported it cannot be found\n{run.output}"
    assert not alpha.orders_get()
