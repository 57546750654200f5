"""Every target's own settings and broker rules (volumes, symbols, prices, order types, caps, pre-send checks,
errors and retries), as the engine decides them: whole ``run --once`` runs and scheduler beats over terminals
kept as books (tests/enginekit.py: Desk), on a clock the test turns.

Moved here from tests/test_e2e_rules.py (one process run each, 1-6 s) with every assertion kept: the copies'
volumes, symbols and prices, what is skipped, waits or fails and why (the ``--once`` summary and the log), the
exit code, and what reached the broker at all (``Book.requests``, where the process tests read the worker's
log). The book's broker refuses what a broker would (volume steps and bounds, the tick grid, expirations the
symbol does not allow). That the real worker and broker accept the same requests (steps, grids, Market Watch
selection, market_distance in one ``--once``) is shown once, in tests/test_e2e_rules.py, next to what only
processes can show: slow brokers, terminals stopped and started, unknown outcomes.
"""

from __future__ import annotations

import pytest

from protocol.mt5 import Retcode
from tests.enginekit import SOURCE, TARGET, Desk, summary_counts
from tests.simhelpers import BUY_LIMIT, BUY_STOP, SELL_LIMIT, SELL_STOP

PIP = 0.0001  # EURUSD: 10 points
T2, T3 = "t2", "t3"


def on_grid(price: float, tick: float) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-7


def volumes(desk: Desk, name: str) -> dict[int, float]:
    return {ticket: copy.volume for ticket, copy in desk[name].copies().items()}


def logged(logs: list[tuple[str, str]], text: str, level: str | None = None) -> list[str]:
    return [line for lvl, line in logs if text in line and (level is None or lvl == level)]


# ---- 7. volume modes -----------------------------------------------------------------------------------


def test_volume_modes_fixed_balance_ratio_and_equity_ratio(tmp_path):
    desk = Desk(tmp_path / "state", T2, T3)
    desk[T2].balance = desk[T3].balance = 5000.0
    desk[T2].symbols["EURUSD"].update(volume_min=0.1, volume_step=0.1)
    desk[T3].equity = 2000.0  # a floating loss: equity below balance
    small = desk[SOURCE].place(BUY_LIMIT, volume=0.4)
    large = desk[SOURCE].place(SELL_STOP, volume=1.0)
    odd = desk[SOURCE].place(SELL_LIMIT, volume=0.58)

    run = desk.once(t1={"volume_mode": "fixed", "fixed_lot": 0.07},
                    t2={"volume_mode": "balance_ratio", "lot_multiplier": 1.0},
                    t3={"volume_mode": "equity_ratio", "lot_multiplier": 1.0})
    assert run.code == 0, run.summary
    assert volumes(desk, TARGET) == {small: pytest.approx(0.07), large: pytest.approx(0.07), odd: pytest.approx(0.07)}
    # 5000 / 10000: half the source's lots, down to the target's 0.1 step (0.58 -> 0.29 -> 0.2: never more).
    assert volumes(desk, T2) == {small: pytest.approx(0.2), large: pytest.approx(0.5), odd: pytest.approx(0.2)}
    # 2000 / 10000 of equity, whatever the balance says (0.58 -> 0.116 -> 0.11).
    assert volumes(desk, T3) == {small: pytest.approx(0.08), large: pytest.approx(0.2), odd: pytest.approx(0.11)}


# ---- 8. volume bounds, steps and the target's tick size ------------------------------------------------


def test_volume_bounds_clamp_or_skip_and_broker_limits(tmp_path):
    desk = Desk(tmp_path / "state", T2, T3)
    desk[T3].symbols["EURUSD"].update(volume_min=0.1, volume_max=1.0, volume_step=0.1)
    tiny = desk[SOURCE].place(BUY_LIMIT, volume=0.05)
    middle = desk[SOURCE].place(SELL_LIMIT, volume=0.26)
    huge = desk[SOURCE].place(BUY_STOP, volume=2.0)

    run = desk.once(t1={"min_lot": 0.2, "max_lot": 0.5},
                    t2={"min_lot": 0.2, "max_lot": 0.5, "volume_out_of_bounds": "skip"})
    assert run.code == 1, run.summary
    assert volumes(desk, TARGET) == {tiny: pytest.approx(0.2), middle: pytest.approx(0.26), huge: pytest.approx(0.5)}
    assert volumes(desk, T2) == {middle: pytest.approx(0.26)}
    # 0.26 on a 0.1 step: down to 0.2, never up to 0.3.
    assert volumes(desk, T3) == {tiny: pytest.approx(0.1), middle: pytest.approx(0.2), huge: pytest.approx(1.0)}
    assert f"skipped  source #{tiny} EURUSD" in run.summary and "below the minimum 0.2" in run.summary
    assert f"skipped  source #{huge} EURUSD" in run.summary and "above the maximum 0.5" in run.summary
    assert summary_counts(run.summary, T2)["skipped"] == 2
    assert summary_counts(run.summary, TARGET)["skipped"] == 0
    assert summary_counts(run.summary, T3)["skipped"] == 0


def test_a_copy_whose_volume_falls_out_of_bounds_with_skip_does_not_stay(tmp_path):
    desk = Desk(tmp_path / "state")
    ticket = desk[SOURCE].place(BUY_LIMIT, volume=0.3)
    assert desk.once().code == 0 and ticket in desk[TARGET].copies()

    run = desk.once(t1={"max_lot": 0.2, "volume_out_of_bounds": "skip"})
    assert run.code == 1, run.summary
    assert "above the maximum 0.2" in run.summary
    assert all(order.volume <= 0.2 for order in desk[TARGET].orders.values()), "a 0.3-lot copy is above max_lot"


def test_us500_volume_and_prices_are_rounded_to_the_target_steps(tmp_path):
    desk = Desk(tmp_path / "state")
    desk[TARGET].symbols["US500"]["tick_size"] = 0.5
    # Quarter-point prices: on the source's grid, half of them off the target's 0.5 grid.
    ticket = desk[SOURCE].add(symbol="US500", type=BUY_LIMIT, volume=0.3, price_open=4990.25, sl=4985.75,
                              tp=4995.25)

    run = desk.once(t1={"lot_multiplier": 1.3})
    assert run.code == 0, run.summary
    copy = desk[TARGET].copies()[ticket]
    assert copy.symbol == "US500"
    assert copy.volume == pytest.approx(0.3)  # 0.3 x 1.3 = 0.39, down to the 0.1 step
    source = desk[SOURCE].orders[ticket]
    for copied, original in ((copy.price_open, source.price_open), (copy.sl, source.sl), (copy.tp, source.tp)):
        assert on_grid(copied, 0.5), copied
        assert abs(copied - original) <= 0.25 + 1e-9, (copied, original)


# ---- 9. symbols ----------------------------------------------------------------------------------------


def test_symbol_prefix_map_and_missing_symbols(tmp_path):
    """(That the worker selects a symbol hidden from Market Watch is a process fact: tests/test_e2e_rules.py.)"""
    desk = Desk(tmp_path / "state", T2, T3)
    prefixed, mapped = desk[TARGET], desk[T2]
    prefixed.symbol("pro.EURUSD")
    mapped.symbols.clear()  # a broker whose every symbol ends in ".m", plus one named its own way
    for name in ("EURUSD.m", "GBPUSD.m", "EURUSD.x"):
        mapped.symbol(name, like="GBPUSD" if name.startswith("GBPUSD") else "EURUSD")
    eurusd = desk[SOURCE].place(BUY_LIMIT)
    gbpusd = desk[SOURCE].place(SELL_STOP, symbol="GBPUSD")

    run = desk.once(t1={"symbol_prefix": "pro."},
                    t2={"symbol_suffix": ".m", "symbol_map": {"EURUSD": "EURUSD.x"}})
    assert run.code == 1, run.summary  # pro.GBPUSD does not exist
    on_prefixed = prefixed.copies()
    assert set(on_prefixed) == {eurusd} and on_prefixed[eurusd].symbol == "pro.EURUSD"
    # The source's symbol as the source's, the target's as the target's.
    assert f"skipped  source #{gbpusd} GBPUSD (pro.GBPUSD on the target): symbol not found on target" in run.summary
    assert summary_counts(run.summary, TARGET)["skipped"] == 1
    on_mapped = mapped.copies()
    assert on_mapped[eurusd].symbol == "EURUSD.x", "symbol_map wins over the suffix"
    assert on_mapped[gbpusd].symbol == "GBPUSD.m"
    assert set(desk[T3].copies()) == {eurusd, gbpusd}
    assert summary_counts(run.summary, T2)["skipped"] == summary_counts(run.summary, T3)["skipped"] == 0


# ---- 10. market_distance pricing -----------------------------------------------------------------------


def test_market_distance_keeps_the_offset_fixed_at_placement(tmp_path):
    desk = Desk(tmp_path / "state")
    master, alpha = desk[SOURCE], desk[TARGET]
    alpha.set_quote("EURUSD", 1.086, 1.08612)  # the source quotes 1.08500/1.08512
    ticket = master.place(BUY_LIMIT)
    stop = master.place(SELL_STOP, with_stops=False)
    scheduler = desk.session(t1={"price_mode": "market_distance"})
    for _ in range(3):
        scheduler.step(0.1)
    assert set(alpha.copies()) == {ticket, stop}, "not copied"

    source, copy = master.orders[ticket], alpha.copies()[ticket]
    assert copy.price_open == pytest.approx(source.price_open + 0.001, abs=1e-9)
    assert copy.sl == pytest.approx(source.sl + 0.001, abs=1e-9)
    assert copy.tp == pytest.approx(source.tp + 0.001, abs=1e-9)
    assert alpha.copies()[stop].price_open == pytest.approx(master.orders[stop].price_open + 0.001, abs=1e-9)
    assert alpha.copies()[stop].sl == 0.0

    # The target's market drifts further; then the trader lowers the source order by 3 pips.
    alpha.set_quote("EURUSD", 1.0875, 1.08762)
    scheduler.step(1.2)  # a full reconciliation with the new quotes: nothing may move by itself
    assert alpha.copies()[ticket].price_open == pytest.approx(copy.price_open, abs=1e-9)
    master.modify(ticket, price_open=round(source.price_open - 3 * PIP, 5), sl=round(source.sl - 3 * PIP, 5),
                  tp=round(source.tp - 3 * PIP, 5))
    edited = master.orders[ticket]
    scheduler.step(0.1)
    moved = alpha.copies()[ticket]
    assert moved.price_open == pytest.approx(edited.price_open + 0.001, abs=1e-9), \
        "the edit did not reach the copy with the offset fixed at placement"
    assert moved.ticket == copy.ticket
    assert moved.sl == pytest.approx(edited.sl + 0.001, abs=1e-9)
    assert moved.tp == pytest.approx(edited.tp + 0.001, abs=1e-9)
    assert alpha.copies()[stop].price_open == pytest.approx(master.orders[stop].price_open + 0.001, abs=1e-9)
    scheduler.close()


def test_market_distance_copies_in_a_single_once_run(tmp_path):
    desk = Desk(tmp_path / "state")
    desk[TARGET].set_quote("EURUSD", 1.086, 1.08612)
    ticket = desk[SOURCE].place(BUY_LIMIT)
    run = desk.once(t1={"price_mode": "market_distance"})
    assert run.code == 0, run.summary
    assert desk[TARGET].copies()[ticket].price_open == pytest.approx(desk[SOURCE].orders[ticket].price_open + 0.001,
                                                                     abs=1e-9)


# ---- 11. order types -----------------------------------------------------------------------------------


def test_filtered_order_types_are_never_placed_and_dropping_a_type_removes_its_copies(tmp_path):
    desk = Desk(tmp_path / "state")
    master, alpha = desk[SOURCE], desk[TARGET]
    limit = master.place(BUY_LIMIT)
    stop = master.place(BUY_STOP)
    filtered = master.place(SELL_STOP)

    run = desk.once(t1={"order_types": ["buy_limit", "buy_stop"]})
    assert run.code == 0, run.summary
    assert set(alpha.copies()) == {limit, stop}
    assert summary_counts(run.summary)["not copied by type"] == 1
    assert any(c.kind.value == "place" and c.source_ticket == limit for c in alpha.requests), alpha.requests
    assert not any(c.source_ticket == filtered for c in alpha.requests)

    run = desk.once(t1={"order_types": ["buy_stop"]})
    assert run.code == 0, run.summary
    assert set(alpha.copies()) == {stop}
    assert len(alpha.orders) == 1
    counts = summary_counts(run.summary)
    assert (counts["removed"], counts["not copied by type"]) == (1, 2), run.summary
    assert f"removed  copy of source #{limit}: order type buy_limit is not copied" in run.summary


# ---- 12. max_pending_orders ----------------------------------------------------------------------------


def test_max_pending_orders_caps_copies_oldest_first_and_releases_room(tmp_path):
    desk = Desk(tmp_path / "state")
    master, alpha = desk[SOURCE], desk[TARGET]
    settings = {"max_pending_orders": 2, "orphans": {"policy": "kill", "check_interval": 0.1, "max_checks": 1}}
    first, second, third = (master.place(order_type) for order_type in (BUY_LIMIT, SELL_LIMIT, BUY_STOP))

    run = desk.once(t1=settings)
    assert run.code == 0, run.summary  # the user's own cap at work: waiting, not a failure
    assert set(alpha.copies()) == {first, second}
    assert f"waiting  source #{third} EURUSD: waiting for room under max_pending_orders = 2" in run.summary

    master.remove(first)
    run = desk.once(t1=settings)
    assert run.code == 0, run.summary
    assert set(alpha.copies()) == {second, third}
    assert len(alpha.orders) == 2


# ---- 13. pre-send checks -------------------------------------------------------------------------------


def test_disabled_symbol_is_skipped_and_copied_once_trading_is_enabled(tmp_path):
    desk = Desk(tmp_path / "state")
    alpha = desk[TARGET]
    alpha.symbols["EURUSD"]["trade_mode"] = 0
    ticket = desk[SOURCE].place(BUY_LIMIT)

    run = desk.once()
    assert run.code == 1, run.summary
    assert f"skipped  source #{ticket} EURUSD: the target cannot take it (trading in EURUSD is disabled" \
        in run.summary
    assert not alpha.orders
    assert not alpha.requests, "nothing may be sent for a disabled symbol"

    alpha.symbols["EURUSD"]["trade_mode"] = 4
    run = desk.once()
    assert run.code == 0, run.summary
    assert set(alpha.copies()) == {ticket}


def test_closed_market_is_retried_until_the_session_opens(tmp_path):
    desk = Desk(tmp_path / "state")
    alpha = desk[TARGET]
    alpha.refuse["EURUSD"] = Retcode.MARKET_CLOSED
    ticket = desk[SOURCE].place(BUY_LIMIT)
    scheduler = desk.session()
    scheduler.step()
    scheduler.step()
    assert logged(scheduler.logs, "market closed (10018"), "the closed market was not reported"
    assert logged(scheduler.logs, "sent when EURUSD trades again")
    for _ in range(25):  # 2.5 s of beats with no new tick: the general backoff would have retried twice by now
        scheduler.step(0.1)
    assert not alpha.orders
    assert len(alpha.requests) == 1, "a request reached a closed market again"

    del alpha.refuse["EURUSD"]
    alpha.set_quote("EURUSD", 1.085, 1.08512)  # the session opens: a new tick
    scheduler.step(0.1)
    assert ticket in alpha.copies(), "the copy must go out with the first tick of the session"
    scheduler.close()


def test_order_within_the_target_stops_level_is_skipped_without_a_request(tmp_path):
    desk = Desk(tmp_path / "state")
    alpha = desk[TARGET]
    alpha.symbols["EURUSD"]["stops_level"] = 5000
    bare = desk[SOURCE].place(BUY_LIMIT, with_stops=False)  # 500 points from the market
    with_stops = desk[SOURCE].place(SELL_STOP)  # SL and TP 500 points from its entry

    run = desk.once()
    assert run.code == 1, run.summary
    assert f"skipped  source #{bare} EURUSD: waiting: price too close to the target's market" in run.summary
    assert f"skipped  source #{with_stops} EURUSD: the target cannot take it (stop loss" in run.summary
    assert not alpha.orders
    assert not alpha.requests, "no request may reach the broker"


def test_frozen_copy_is_modified_only_once_the_market_moves_away(tmp_path):
    desk = Desk(tmp_path / "state")
    master, alpha = desk[SOURCE], desk[TARGET]
    alpha.symbols["EURUSD"]["freeze_level"] = 300
    ticket = master.place(BUY_LIMIT)  # 500 points below the market
    assert desk.once().code == 0
    copy = alpha.copies()[ticket]

    # The target's market comes within 200 points of the copy: frozen there.
    alpha.set_quote("EURUSD", round(copy.price_open + 20 * PIP - 0.00012, 5), round(copy.price_open + 20 * PIP, 5))
    master.modify(ticket, sl=round(copy.sl - 10 * PIP, 5))
    run = desk.once()
    assert run.code == 1, run.summary
    assert f"skipped  source #{ticket} EURUSD: waiting: copy is frozen near the market" in run.summary
    assert alpha.copies()[ticket].sl == pytest.approx(copy.sl)
    assert not any(c.kind.value == "modify" for c in alpha.requests)

    alpha.set_quote("EURUSD", 1.085, 1.08512)
    run = desk.once()
    assert run.code == 0, run.summary
    assert summary_counts(run.summary)["modified"] == 1
    moved = alpha.copies()[ticket]
    assert moved.ticket == copy.ticket and moved.sl == pytest.approx(copy.sl - 10 * PIP)


def test_not_enough_money_is_reported_once_not_once_per_cycle(tmp_path):
    desk = Desk(tmp_path / "state")
    alpha = desk[TARGET]
    alpha.refuse["EURUSD"] = Retcode.NO_MONEY
    ticket = desk[SOURCE].place(BUY_LIMIT)

    run = desk.once()
    assert run.code == 1, run.summary
    assert f"FAILED   source #{ticket}: not enough money (10019" in run.summary
    assert not alpha.orders

    scheduler = desk.session()
    scheduler.step()  # the symbol's specification
    scheduler.step()
    assert logged(scheduler.logs, "not enough money")
    for _ in range(4):  # more full reconciliations (interval = 1)
        scheduler.step(1.0)
    scheduler.step(301.0)  # and past the final failure's retry, refused again in the same words
    assert len(alpha.requests) == 3
    assert len(logged(scheduler.logs, "not enough money", "ERROR")) == 1, scheduler.logs
    assert not alpha.orders
    scheduler.close()


# ---- 14. errors and retries ----------------------------------------------------------------------------


def test_requotes_are_retried_until_the_copy_is_placed(tmp_path):
    desk = Desk(tmp_path / "state")
    alpha = desk[TARGET]
    alpha.inject.extend([Retcode.REQUOTE, Retcode.REQUOTE])
    ticket = desk[SOURCE].place(BUY_LIMIT)
    scheduler = desk.session()
    for _ in range(100):  # ten seconds of beats at most
        scheduler.step(0.1)
        if ticket in alpha.copies():
            break
    assert ticket in alpha.copies(), "not placed after two requotes"
    assert len(alpha.orders) == 1 and len(alpha.requests) == 3
    assert logged(scheduler.logs, "requote (10004")
    scheduler.close()


def test_invalid_volume_is_a_final_failure(tmp_path):
    desk = Desk(tmp_path / "state")
    alpha = desk[TARGET]
    alpha.inject.append(Retcode.INVALID_VOLUME)
    ticket = desk[SOURCE].place(BUY_LIMIT)
    run = desk.once()
    assert run.code == 1, run.summary
    assert run.seconds < 10 and len(alpha.requests) == 1, "a final failure must not be waited on"
    assert f"FAILED   source #{ticket}: invalid volume (10014" in run.summary
    assert not alpha.orders


def test_copying_resumes_after_the_target_reconnects_and_autotrading_is_back(tmp_path):
    desk = Desk(tmp_path / "state", T2)
    offline, manual = desk[TARGET], desk[T2]
    offline.connected = False
    manual.trade_allowed = False
    ticket = desk[SOURCE].place(BUY_LIMIT)
    scheduler = desk.session()
    scheduler.step()
    assert logged(scheduler.logs, f"{TARGET}: not copying: terminal not connected to its broker")
    assert logged(scheduler.logs, f"{T2}: not copying: trading not allowed")
    for _ in range(10):
        scheduler.step(0.1)
    assert not offline.orders and not manual.orders and not offline.requests and not manual.requests

    offline.connected = manual.trade_allowed = True
    scheduler.step(0.1)
    scheduler.step(0.1)
    assert ticket in offline.copies() and ticket in manual.copies(), "copying did not resume"
    assert len(offline.orders) == len(manual.orders) == 1
    scheduler.close()
