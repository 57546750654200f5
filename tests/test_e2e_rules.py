"""End to end: every target's own settings and broker rules, over real processes.

What a target's settings and its broker's rules make of each order is the engine's decision and is tested
there, in milliseconds, with the same assertions these process tests made (tests/test_engine_rules.py, same
test names): volume modes (fixed, balance and equity ratio), volume bounds clamped or skipped and the broker's
limits, a copy whose volume falls out of bounds, US500 volumes and prices on the target's steps, symbol
prefix, suffix, map and missing symbols, market_distance pricing (offset fixed at placement, and in a single
``--once``), filtered order types, max_pending_orders, a disabled symbol, a closed market, the stops level, a
frozen copy, "not enough money" reported once, requotes retried, invalid volume final, and copying resuming
once a target reconnects or AutoTrading is back.

What only real processes can show stays here: that the real worker's requests pass the simulated broker's
rules (volume steps, a tick grid, a mapped, a suffixed and a Market Watch-hidden symbol, market_distance
prices from quotes on their way in heartbeats; one run, several targets), what the workers notice (a market
closed then open again, a lost broker connection, AutoTrading off), a slow broker with a real command timeout,
terminals stopped and started again, and an unknown outcome settled on a quiet target.
"""

from __future__ import annotations

import time

import pytest

import mt5sim
from tests.conftest import wait_for
from tests.simhelpers import (
    BUY_LIMIT,
    BUY_STOP,
    SELL_LIMIT,
    SELL_STOP,
    copier_config,
    copies,
    log_text,
    pending,
    place_at,
    place_pending,
    sim_terminals,
    target_login,
    target_section,
)

pytestmark = pytest.mark.e2e

PIP = 0.0001  # EURUSD: 10 points


def terminals(copier, *names: str, **options):
    return sim_terminals(copier.directory, *names, **options)


def login(index: int) -> int:
    return target_login(index)


def on_grid(price: float, tick: float) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-7


def worker_requests(copier, target: str) -> list[str]:
    """The trade requests a target's worker executed (one log line per command)."""
    return [line for line in log_text(copier.directory, f"worker-{target}").splitlines()
            if " for source #" in line and ("-> " in line)]


# ---- what the broker accepts ---------------------------------------------------------------------------


def test_steps_grids_mapped_hidden_symbols_and_market_distance_pass_the_broker_in_one_once_run(copier):
    master, steps, mapped, hidden = terminals(
        copier, "steps", "mapped", "hidden",
        steps={"symbols": {"EURUSD": {"volume_min": 0.1, "volume_step": 0.1}, "US500": {"trade_tick_size": 0.5}}},
        mapped={"suffix": ".m", "symbols": {"EURUSD.x": {"bid": 1.086, "ask": 1.08612}}},
        hidden={"symbols": {"EURUSD": {"select": False}}})
    assert hidden.symbol_info("EURUSD") is None  # not in Market Watch
    copier.write_config(copier_config(
        target_section("steps", login(0), "lot_multiplier = 1.3"),
        target_section("mapped", login(1), 'symbol_suffix = ".m"\nprice_mode = "market_distance"',
                       tables='[targets.symbol_map]\nEURUSD = "EURUSD.x"'),
        target_section("hidden", login(2))))
    eurusd = place_pending(master, BUY_LIMIT, volume=0.26)
    gbpusd = place_pending(master, SELL_STOP, symbol="GBPUSD")
    # Quarter-point prices: on the source's grid, half of them off the steps target's 0.5 grid.
    us500 = place_at(master, BUY_LIMIT, 4990.25, symbol="US500", volume=0.3, sl=4985.75, tp=4995.25)

    run = copier.once()
    assert run.code == 0, run.output
    on_steps = copies(steps)
    assert set(on_steps) == {eurusd, gbpusd, us500}
    assert on_steps[eurusd].volume_current == pytest.approx(0.3)  # 0.26 x 1.3 = 0.338, down to the 0.1 step
    assert on_steps[us500].volume_current == pytest.approx(0.3)  # 0.39, down to the 0.1 step
    source = pending(master, us500)
    copy = on_steps[us500]
    for copied, original in ((copy.price_open, source.price_open), (copy.sl, source.sl), (copy.tp, source.tp)):
        assert on_grid(copied, 0.5), copied
        assert abs(copied - original) <= 0.25 + 1e-9, (copied, original)

    on_mapped = copies(mapped)
    assert (on_mapped[eurusd].symbol, on_mapped[gbpusd].symbol, on_mapped[us500].symbol) == \
        ("EURUSD.x", "GBPUSD.m", "US500.m")
    # market_distance: the target's EURUSD.x trades 10 pips above the source's EURUSD, GBPUSD.m level with it.
    for ticket, offset in ((eurusd, 0.001), (gbpusd, 0.0)):
        source, copy = pending(master, ticket), on_mapped[ticket]
        assert copy.price_open == pytest.approx(source.price_open + offset, abs=1e-9)
        assert (copy.sl, copy.tp) == (pytest.approx(source.sl + offset, abs=1e-9),
                                      pytest.approx(source.tp + offset, abs=1e-9))

    assert set(copies(hidden)) == {eurusd, gbpusd, us500}
    assert hidden.symbol_info("EURUSD").select, "the worker selects the symbol in Market Watch"


# ---- what the workers notice -----------------------------------------------------------------------------


def test_closed_market_is_retried_until_the_session_opens(copier):
    """The real chain: the broker's 10018, then the session's first tick reaching the coordinator in the worker's
    heartbeats. (The same decisions on a turned clock: tests/test_engine_rules.py's test of the same name.)"""
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    mt5sim.set_session(alpha.path, "EURUSD", False)
    ticket = place_pending(master, BUY_LIMIT)
    copier.start_scheduler()
    wait_for(lambda: "market closed (10018" in log_text(copier.directory), timeout=10,
             message="the closed market was not reported")
    assert "sent when EURUSD trades again" in log_text(copier.directory)
    # Long enough for the general backoff to have retried twice, and for the closed market's last tick to reach
    # the coordinator (the worker reads prices every second; heartbeats carry them): the tick that opens it must
    # be newer than that one.
    time.sleep(2.5)
    assert not alpha.orders_get()
    assert len(worker_requests(copier, "alpha")) == 1, "a request reached a closed market again"

    mt5sim.set_session(alpha.path, "EURUSD", True)
    opened = time.monotonic()
    wait_for(lambda: ticket in copies(alpha), timeout=8, message="not placed after the session opened")
    assert time.monotonic() - opened < 2.0, "the copy must go out within a second or so of the session opening"


def test_copying_resumes_after_the_target_reconnects_and_autotrading_is_back(copier):
    """The workers notice a broker connection lost and AutoTrading off, and both coming back. (That nothing is
    sent meanwhile is tests/test_engine_rules.py's test of the same name.)"""
    master, offline, manual = terminals(copier, "offline", "manual")
    copier.write_config(copier_config(target_section("offline", login(0)), target_section("manual", login(1))))
    mt5sim.set_connected(offline.path, False)
    mt5sim.set_autotrading(manual.path, False)
    ticket = place_pending(master, BUY_LIMIT)
    copier.start_scheduler()
    wait_for(lambda: "offline: not copying: terminal not connected to its broker" in log_text(copier.directory)
             and "manual: not copying: trading not allowed" in log_text(copier.directory), timeout=10)
    assert not offline.orders_get() and not manual.orders_get()

    mt5sim.set_connected(offline.path, True)
    mt5sim.set_autotrading(manual.path, True)
    wait_for(lambda: ticket in copies(offline) and ticket in copies(manual), timeout=8,
             message="copying did not resume")
    assert len(offline.orders_get()) == len(manual.orders_get()) == 1


# ---- slow brokers, stopped terminals, unknown outcomes ------------------------------------------------


def test_slow_broker_with_a_short_command_timeout_still_gets_every_order(copier):
    """(Also what test_slow_broker_still_gets_every_order showed with the default timeout: every pending type,
    each order copied exactly once.)"""
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0)), command_timeout=1.0))
    mt5sim.set_latency(alpha.path, 0.3)  # five placements take 1.5 s: the last ones pass the 1 s deadline
    tickets = {place_pending(master, order_type, distance_points=300 + 50 * i)
               for i, order_type in enumerate((BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP, BUY_LIMIT))}
    run = copier.once()
    assert set(copies(alpha)) == tickets, run.output
    assert len(alpha.orders_get()) == 5
    assert run.code == 0, run.output


def test_a_stopped_target_terminal_never_holds_back_another_target(copier):
    master, alpha, beta = terminals(copier, "alpha", "beta")
    copier.write_config(copier_config(target_section("alpha", login(0)), target_section("beta", login(1))))
    first = place_pending(master, BUY_LIMIT)
    copier.start_scheduler()
    wait_for(lambda: first in copies(alpha) and first in copies(beta), timeout=10, message="not copied")

    mt5sim.stop_terminal(beta.path)
    for order_type in (SELL_STOP, SELL_LIMIT):
        ticket = place_pending(master, order_type)
        started = time.monotonic()
        wait_for(lambda: ticket in copies(alpha), timeout=5, message="alpha held back by a dead beta")  # noqa: B023
        assert time.monotonic() - started < 3
    assert len(alpha.orders_get()) == 3
    assert "beta: " in log_text(copier.directory) and "IPC" in log_text(copier.directory)


def test_a_target_whose_terminal_was_down_catches_up_once_it_is_back(copier):
    master, alpha, beta = terminals(copier, "alpha", "beta")
    copier.write_config(copier_config(target_section("alpha", login(0)), target_section("beta", login(1))))
    first = place_pending(master, BUY_LIMIT)
    copier.start_scheduler()
    wait_for(lambda: first in copies(alpha) and first in copies(beta), timeout=10, message="not copied")

    mt5sim.stop_terminal(beta.path)
    wait_for(lambda: "beta: no IPC connection" in log_text(copier.directory), timeout=5,
             message="beta's worker did not report its terminal gone")
    second = place_pending(master, SELL_STOP)
    wait_for(lambda: second in copies(alpha), timeout=5)
    mt5sim.start_terminal(beta.path)
    wait_for(lambda: second in copies(beta), timeout=8, message="beta did not catch up after its terminal came back")


def test_an_unknown_outcome_on_a_quiet_target_is_settled(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    copier.start_scheduler()
    wait_for(lambda: "alpha (target) connected" in log_text(copier.directory), timeout=10)
    time.sleep(0.5)
    mt5sim.set_latency(alpha.path, 3.0)  # the request waits 1.5 s before it reaches the server
    ticket = place_pending(master, BUY_LIMIT)
    time.sleep(0.6)
    mt5sim.stop_terminal(alpha.path)  # gone before the request arrives: nothing is placed, the outcome unknown
    wait_for(lambda: "is unknown" in log_text(copier.directory), timeout=5)
    mt5sim.set_latency(alpha.path, 0.0)
    mt5sim.start_terminal(alpha.path)
    assert not alpha.orders_get()
    wait_for(lambda: ticket in copies(alpha), timeout=8, message="the unknown outcome was never settled")
