"""End to end: every target's own settings and broker rules (volumes, symbols, prices, order types, caps,
pre-send checks, errors and retries), over real processes."""

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
    modify_order,
    pending,
    place_at,
    place_pending,
    remove_order,
    sim_terminals,
    summary_counts,
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


# ---- 7. volume modes -----------------------------------------------------------------------------------


def test_volume_modes_fixed_balance_ratio_and_equity_ratio(copier):
    step_01 = {"EURUSD": {"volume_min": 0.1, "volume_step": 0.1}}
    master, fixed, balance, equity = terminals(
        copier, "fixed", "balance", "equity",
        balance={"balance": 5000.0, "symbols": step_01}, equity={"balance": 5000.0})
    mt5sim.set_account(equity.path, equity=2000.0)  # a floating loss: equity below balance
    copier.write_config(copier_config(
        target_section("fixed", login(0), 'volume_mode = "fixed"\nfixed_lot = 0.07'),
        target_section("balance", login(1), 'volume_mode = "balance_ratio"\nlot_multiplier = 1.0'),
        target_section("equity", login(2), 'volume_mode = "equity_ratio"\nlot_multiplier = 1.0')))
    small = place_pending(master, BUY_LIMIT, volume=0.4)
    large = place_pending(master, SELL_STOP, volume=1.0)
    odd = place_pending(master, SELL_LIMIT, volume=0.58)

    run = copier.once()
    assert run.code == 0, run.output
    volumes = {name: {ticket: copy.volume_current for ticket, copy in copies(target).items()}
               for name, target in (("fixed", fixed), ("balance", balance), ("equity", equity))}
    assert volumes["fixed"] == {small: pytest.approx(0.07), large: pytest.approx(0.07), odd: pytest.approx(0.07)}
    # 5000 / 10000: half the source's lots, down to the target's 0.1 step (0.58 -> 0.29 -> 0.2: never more).
    assert volumes["balance"] == {small: pytest.approx(0.2), large: pytest.approx(0.5), odd: pytest.approx(0.2)}
    # 2000 / 10000 of equity, whatever the balance says (0.58 -> 0.116 -> 0.11).
    assert volumes["equity"] == {small: pytest.approx(0.08), large: pytest.approx(0.2), odd: pytest.approx(0.11)}


# ---- 8. volume bounds, steps and the target's tick size ------------------------------------------------


def test_volume_bounds_clamp_or_skip_and_broker_limits(copier):
    broker_limits = {"EURUSD": {"volume_min": 0.1, "volume_max": 1.0, "volume_step": 0.1}}
    master, clamp, skip, broker = terminals(copier, "clamp", "skip", "broker", broker={"symbols": broker_limits})
    copier.write_config(copier_config(
        target_section("clamp", login(0), "min_lot = 0.2\nmax_lot = 0.5"),
        target_section("skip", login(1), 'min_lot = 0.2\nmax_lot = 0.5\nvolume_out_of_bounds = "skip"'),
        target_section("broker", login(2))))
    tiny = place_pending(master, BUY_LIMIT, volume=0.05)
    middle = place_pending(master, SELL_LIMIT, volume=0.26)
    huge = place_pending(master, BUY_STOP, volume=2.0)

    run = copier.once()
    assert run.code == 1, run.output
    volume = {name: {ticket: copy.volume_current for ticket, copy in copies(target).items()}
              for name, target in (("clamp", clamp), ("skip", skip), ("broker", broker))}
    assert volume["clamp"] == {tiny: pytest.approx(0.2), middle: pytest.approx(0.26), huge: pytest.approx(0.5)}
    assert volume["skip"] == {middle: pytest.approx(0.26)}
    # 0.26 on a 0.1 step: down to 0.2, never up to 0.3.
    assert volume["broker"] == {tiny: pytest.approx(0.1), middle: pytest.approx(0.2), huge: pytest.approx(1.0)}
    assert f"skipped  source #{tiny} EURUSD" in run.output and "below the minimum 0.2" in run.output
    assert f"skipped  source #{huge} EURUSD" in run.output and "above the maximum 0.5" in run.output
    assert summary_counts(run.output, "skip")["skipped"] == 2
    assert summary_counts(run.output, "clamp")["skipped"] == 0
    assert summary_counts(run.output, "broker")["skipped"] == 0


def test_a_copy_whose_volume_falls_out_of_bounds_with_skip_does_not_stay(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    ticket = place_pending(master, BUY_LIMIT, volume=0.3)
    assert copier.once().code == 0 and ticket in copies(alpha)

    bounded = 'max_lot = 0.2\nvolume_out_of_bounds = "skip"'
    copier.write_config(copier_config(target_section("alpha", login(0), bounded)))
    run = copier.once()
    assert run.code == 1, run.output
    assert "above the maximum 0.2" in run.output
    assert all(order.volume_current <= 0.2 for order in alpha.orders_get()), "a 0.3-lot copy is above max_lot"


def test_us500_volume_and_prices_are_rounded_to_the_target_steps(copier):
    master, alpha = terminals(copier, "alpha", alpha={"symbols": {"US500": {"trade_tick_size": 0.5}}})
    copier.write_config(copier_config(target_section("alpha", login(0), "lot_multiplier = 1.3")))
    # Quarter-point prices: on the source's grid, half of them off the target's 0.5 grid.
    ticket = place_at(master, BUY_LIMIT, 4990.25, symbol="US500", volume=0.3, sl=4985.75, tp=4995.25)

    run = copier.once()
    assert run.code == 0, run.output
    copy = copies(alpha)[ticket]
    assert copy.symbol == "US500"
    assert copy.volume_current == pytest.approx(0.3)  # 0.3 x 1.3 = 0.39, down to the 0.1 step
    source = pending(master, ticket)
    for copied, original in ((copy.price_open, source.price_open), (copy.sl, source.sl), (copy.tp, source.tp)):
        assert on_grid(copied, 0.5), copied
        assert abs(copied - original) <= 0.25 + 1e-9, (copied, original)


# ---- 9. symbols ----------------------------------------------------------------------------------------


def test_symbol_prefix_map_market_watch_selection_and_missing_symbols(copier):
    quote = {"bid": 1.085, "ask": 1.08512}
    master, prefixed, mapped, hidden = terminals(
        copier, "prefixed", "mapped", "hidden",
        prefixed={"symbols": {"pro.EURUSD": quote}},
        mapped={"suffix": ".m", "symbols": {"EURUSD.x": quote}},
        hidden={"symbols": {"EURUSD": {"select": False}}})
    assert hidden.symbol_info("EURUSD") is None  # not in Market Watch
    copier.write_config(copier_config(
        target_section("prefixed", login(0), 'symbol_prefix = "pro."'),
        target_section("mapped", login(1), 'symbol_suffix = ".m"', tables='[targets.symbol_map]\nEURUSD = "EURUSD.x"'),
        target_section("hidden", login(2))))
    eurusd = place_pending(master, BUY_LIMIT)
    gbpusd = place_pending(master, SELL_STOP, symbol="GBPUSD")

    run = copier.once()
    assert run.code == 1, run.output  # pro.GBPUSD does not exist
    on_prefixed = copies(prefixed)
    assert set(on_prefixed) == {eurusd} and on_prefixed[eurusd].symbol == "pro.EURUSD"
    # The source's symbol as the source's, the target's as the target's.
    assert f"skipped  source #{gbpusd} GBPUSD (pro.GBPUSD on the target): symbol not found on target" in run.output
    assert summary_counts(run.output, "prefixed")["skipped"] == 1
    on_mapped = copies(mapped)
    assert on_mapped[eurusd].symbol == "EURUSD.x", "symbol_map wins over the suffix"
    assert on_mapped[gbpusd].symbol == "GBPUSD.m"
    on_hidden = copies(hidden)
    assert set(on_hidden) == {eurusd, gbpusd}
    assert hidden.symbol_info("EURUSD").select, "the worker selects the symbol in Market Watch"
    assert summary_counts(run.output, "mapped")["skipped"] == summary_counts(run.output, "hidden")["skipped"] == 0


# ---- 10. market_distance pricing -----------------------------------------------------------------------


def test_market_distance_keeps_the_offset_fixed_at_placement(copier):
    master, alpha = terminals(copier, "alpha")
    mt5sim.set_quote(alpha.path, "EURUSD", 1.086, 1.08612)  # the source quotes 1.08500/1.08512
    copier.write_config(copier_config(target_section("alpha", login(0), 'price_mode = "market_distance"')))
    ticket = place_pending(master, BUY_LIMIT)
    stop = place_pending(master, SELL_STOP, with_stops=False)
    copier.start_scheduler()
    wait_for(lambda: set(copies(alpha)) == {ticket, stop}, timeout=10, message="not copied")

    source, copy = pending(master, ticket), copies(alpha)[ticket]
    assert copy.price_open == pytest.approx(source.price_open + 0.001, abs=1e-9)
    assert copy.sl == pytest.approx(source.sl + 0.001, abs=1e-9)
    assert copy.tp == pytest.approx(source.tp + 0.001, abs=1e-9)
    assert copies(alpha)[stop].price_open == pytest.approx(pending(master, stop).price_open + 0.001, abs=1e-9)
    assert copies(alpha)[stop].sl == 0.0

    # The target's market drifts further; then the trader lowers the source order by 3 pips.
    mt5sim.set_quote(alpha.path, "EURUSD", 1.0875, 1.08762)
    time.sleep(1.2)  # a full reconciliation with the new quotes: nothing may move by itself
    assert copies(alpha)[ticket].price_open == pytest.approx(copy.price_open, abs=1e-9)
    modify_order(master, ticket, price=round(source.price_open - 3 * PIP, 5), sl=round(source.sl - 3 * PIP, 5),
                 tp=round(source.tp - 3 * PIP, 5))
    edited = pending(master, ticket)
    wait_for(lambda: abs(copies(alpha)[ticket].price_open - (edited.price_open + 0.001)) < 1e-9, timeout=8,
             message="the edit did not reach the copy with the offset fixed at placement")
    moved = copies(alpha)[ticket]
    assert moved.ticket == copy.ticket
    assert moved.sl == pytest.approx(edited.sl + 0.001, abs=1e-9)
    assert moved.tp == pytest.approx(edited.tp + 0.001, abs=1e-9)
    assert copies(alpha)[stop].price_open == pytest.approx(pending(master, stop).price_open + 0.001, abs=1e-9)


def test_market_distance_copies_in_a_single_once_run(copier):
    master, alpha = terminals(copier, "alpha")
    mt5sim.set_quote(alpha.path, "EURUSD", 1.086, 1.08612)
    copier.write_config(copier_config(target_section("alpha", login(0), 'price_mode = "market_distance"')))
    ticket = place_pending(master, BUY_LIMIT)
    run = copier.once()
    assert run.code == 0, run.output
    assert copies(alpha)[ticket].price_open == pytest.approx(pending(master, ticket).price_open + 0.001, abs=1e-9)


# ---- 11. order types -----------------------------------------------------------------------------------


def test_filtered_order_types_are_never_placed_and_dropping_a_type_removes_its_copies(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0), 'order_types = ["buy_limit", "buy_stop"]')))
    limit = place_pending(master, BUY_LIMIT)
    stop = place_pending(master, BUY_STOP)
    filtered = place_pending(master, SELL_STOP)

    run = copier.once()
    assert run.code == 0, run.output
    assert set(copies(alpha)) == {limit, stop}
    assert summary_counts(run.output, "alpha")["not copied by type"] == 1
    requests = worker_requests(copier, "alpha")
    assert any(f"place EURUSD for source #{limit} -> #" in line for line in requests), requests
    assert not any(f"#{filtered}" in line for line in requests)

    copier.write_config(copier_config(target_section("alpha", login(0), 'order_types = ["buy_stop"]')))
    run = copier.once()
    assert run.code == 0, run.output
    assert set(copies(alpha)) == {stop}
    assert len(alpha.orders_get()) == 1
    counts = summary_counts(run.output, "alpha")
    assert (counts["removed"], counts["not copied by type"]) == (1, 2), run.output
    assert f"removed  copy of source #{limit}: order type buy_limit is not copied" in run.output


# ---- 12. max_pending_orders ----------------------------------------------------------------------------


def test_max_pending_orders_caps_copies_oldest_first_and_releases_room(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section(
        "alpha", login(0), "max_pending_orders = 2",
        tables='[targets.orphans]\npolicy = "kill"\ncheck_interval = 0.1\nmax_checks = 1')))
    tickets = []
    for order_type in (BUY_LIMIT, SELL_LIMIT, BUY_STOP):
        tickets.append(place_pending(master, order_type))
        time.sleep(0.01)
    first, second, third = tickets

    run = copier.once()
    assert run.code == 0, run.output  # the user's own cap at work: waiting, not a failure
    assert set(copies(alpha)) == {first, second}
    assert f"waiting  source #{third} EURUSD: waiting for room under max_pending_orders = 2" in run.output

    remove_order(master, first)
    run = copier.once()
    assert run.code == 0, run.output
    assert set(copies(alpha)) == {second, third}
    assert len(alpha.orders_get()) == 2


# ---- 13. pre-send checks -------------------------------------------------------------------------------


def test_disabled_symbol_is_skipped_and_copied_once_trading_is_enabled(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    mt5sim.set_symbol(alpha.path, "EURUSD", trade_mode=0)
    ticket = place_pending(master, BUY_LIMIT)

    run = copier.once()
    assert run.code == 1, run.output
    assert f"skipped  source #{ticket} EURUSD: the target cannot take it (trading in EURUSD is disabled" in run.output
    assert not alpha.orders_get()
    assert not worker_requests(copier, "alpha"), "nothing may be sent for a disabled symbol"

    mt5sim.set_symbol(alpha.path, "EURUSD", trade_mode=4)
    run = copier.once()
    assert run.code == 0, run.output
    assert set(copies(alpha)) == {ticket}


def test_closed_market_is_retried_until_the_session_opens(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    mt5sim.set_session(alpha.path, "EURUSD", False)
    ticket = place_pending(master, BUY_LIMIT)
    copier.start_scheduler()
    wait_for(lambda: "market closed (10018" in log_text(copier.directory), timeout=10,
             message="the closed market was not reported")
    assert "sent when EURUSD trades again" in log_text(copier.directory)
    time.sleep(2.5)  # the general backoff would have retried twice by now
    assert not alpha.orders_get()
    assert len(worker_requests(copier, "alpha")) == 1, "a request reached a closed market again"

    mt5sim.set_session(alpha.path, "EURUSD", True)
    opened = time.monotonic()
    wait_for(lambda: ticket in copies(alpha), timeout=8, message="not placed after the session opened")
    assert time.monotonic() - opened < 2.0, "the copy must go out within a second or so of the session opening"


def test_order_within_the_target_stops_level_is_skipped_without_a_request(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    mt5sim.set_symbol(alpha.path, "EURUSD", trade_stops_level=5000)
    bare = place_pending(master, BUY_LIMIT, with_stops=False)  # 500 points from the market
    with_stops = place_pending(master, SELL_STOP)  # SL and TP 500 points from its entry

    run = copier.once()
    assert run.code == 1, run.output
    assert f"skipped  source #{bare} EURUSD: waiting: price too close to the target's market" in run.output
    assert f"skipped  source #{with_stops} EURUSD: the target cannot take it (stop loss" in run.output
    assert not alpha.orders_get()
    assert not worker_requests(copier, "alpha"), "no request may reach the broker"


def test_frozen_copy_is_modified_only_once_the_market_moves_away(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    mt5sim.set_symbol(alpha.path, "EURUSD", trade_freeze_level=300)
    ticket = place_pending(master, BUY_LIMIT)  # 500 points below the market
    assert copier.once().code == 0
    copy = copies(alpha)[ticket]

    # The target's market comes within 200 points of the copy: frozen there.
    mt5sim.set_quote(alpha.path, "EURUSD", round(copy.price_open + 20 * PIP - 0.00012, 5),
                     round(copy.price_open + 20 * PIP, 5))
    assert ticket in copies(alpha)
    modify_order(master, ticket, sl=round(copy.sl - 10 * PIP, 5))
    run = copier.once()
    assert run.code == 1, run.output
    assert f"skipped  source #{ticket} EURUSD: waiting: copy is frozen near the market" in run.output
    assert copies(alpha)[ticket].sl == pytest.approx(copy.sl)
    assert not any(f"modify EURUSD for source #{ticket}" in line for line in worker_requests(copier, "alpha"))

    mt5sim.set_quote(alpha.path, "EURUSD", 1.085, 1.08512)
    run = copier.once()
    assert run.code == 0, run.output
    assert summary_counts(run.output, "alpha")["modified"] == 1
    moved = copies(alpha)[ticket]
    assert moved.ticket == copy.ticket and moved.sl == pytest.approx(copy.sl - 10 * PIP)


def test_not_enough_money_is_reported_once_not_once_per_cycle(copier):
    master, alpha = terminals(copier, "alpha", alpha={"balance": 10.0})
    copier.write_config(copier_config(target_section("alpha", login(0))))
    ticket = place_pending(master, BUY_LIMIT)

    run = copier.once()
    assert run.code == 1, run.output
    assert f"FAILED   source #{ticket}: not enough money (10019" in run.output
    assert not alpha.orders_get()

    before = len(log_text(copier.directory))
    scheduler = copier.start_scheduler()
    wait_for(lambda: "not enough money" in log_text(copier.directory)[before:], timeout=10)
    time.sleep(3.5)  # three more full reconciliations (interval = 1)
    copier.stop(scheduler)
    reported = [line for line in log_text(copier.directory)[before:].splitlines()
                if "ERROR" in line and "not enough money" in line]
    assert len(reported) == 1, reported
    assert not alpha.orders_get()


# ---- 14. errors and retries ----------------------------------------------------------------------------


def test_requotes_are_retried_until_the_copy_is_placed(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    mt5sim.inject_retcode(alpha.path, 10004, count=2)
    ticket = place_pending(master, BUY_LIMIT)
    copier.start_scheduler()
    wait_for(lambda: ticket in copies(alpha), timeout=10, message="not placed after two requotes")
    assert len(alpha.orders_get()) == 1
    assert "requote (10004" in log_text(copier.directory)


def test_invalid_volume_is_a_final_failure(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    mt5sim.inject_retcode(alpha.path, 10014, count=1)
    ticket = place_pending(master, BUY_LIMIT)
    started = time.monotonic()
    run = copier.once()
    assert run.code == 1, run.output
    assert time.monotonic() - started < 10, "a final failure must not be waited on"
    assert f"FAILED   source #{ticket}: invalid volume (10014" in run.output
    assert not alpha.orders_get()


def test_copying_resumes_after_the_target_reconnects_and_autotrading_is_back(copier):
    master, offline, manual = terminals(copier, "offline", "manual")
    copier.write_config(copier_config(target_section("offline", login(0)), target_section("manual", login(1))))
    mt5sim.set_connected(offline.path, False)
    mt5sim.set_autotrading(manual.path, False)
    ticket = place_pending(master, BUY_LIMIT)
    copier.start_scheduler()
    wait_for(lambda: "offline: not copying: terminal not connected to its broker" in log_text(copier.directory)
             and "manual: not copying: trading not allowed" in log_text(copier.directory), timeout=10)
    time.sleep(1.0)
    assert not offline.orders_get() and not manual.orders_get()

    mt5sim.set_connected(offline.path, True)
    mt5sim.set_autotrading(manual.path, True)
    wait_for(lambda: ticket in copies(offline) and ticket in copies(manual), timeout=8,
             message="copying did not resume")
    assert len(offline.orders_get()) == len(manual.orders_get()) == 1


def test_slow_broker_still_gets_every_order(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    mt5sim.set_latency(alpha.path, 0.3)
    tickets = {place_pending(master, order_type, distance_points=300 + 50 * i)
               for i, order_type in enumerate((BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP, BUY_LIMIT))}
    run = copier.once()
    assert run.code == 0, run.output
    assert set(copies(alpha)) == tickets
    assert len(alpha.orders_get()) == 5


def test_slow_broker_with_a_short_command_timeout_still_gets_every_order(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0)), command_timeout=1.0))
    mt5sim.set_latency(alpha.path, 0.3)  # five placements take 1.5 s: the last ones pass the 1 s deadline
    tickets = {place_pending(master, BUY_LIMIT, distance_points=300 + 10 * i) for i in range(5)}
    run = copier.once()
    assert set(copies(alpha)) == tickets, run.output
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
    time.sleep(0.5)  # beta's worker notices at its next poll
    second = place_pending(master, SELL_STOP)
    wait_for(lambda: second in copies(alpha), timeout=5)
    time.sleep(1.0)
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
