"""Every copy stays in sync with its source order (edits, expirations, volumes, stop-limit activation,
cancellations, fills, copies filled or deleted on the target), as the engine decides it: whole ``run --once``
runs and scheduler beats over terminals kept as books (tests/enginekit.py: Desk), on a clock the test turns.

Moved here from tests/test_e2e_sync.py (one process run each, 2-8 s) with every assertion kept: what is placed,
modified, replaced or removed, with which prices, volumes and expirations, what is left out and why (the
``--once`` summary), and the exit code. The book's broker refuses what a broker would (volume steps and bounds,
the tick grid, expirations the symbol does not allow), so a wrong command fails here too; that the real broker
accepts the same requests from the real worker is shown once, in tests/test_e2e_sync.py.
"""

from __future__ import annotations

import pytest

from tests.enginekit import SOURCE, TARGET, Desk, summary_counts
from tests.simhelpers import BUY_LIMIT, BUY_STOP, BUY_STOP_LIMIT, SELL_STOP, SELL_STOP_LIMIT

ORDER_TIME_GTC, ORDER_TIME_DAY, ORDER_TIME_SPECIFIED = 0, 1, 2
DAY = 86_400
PIP = 0.0001  # EURUSD: 10 points
OTHER = "t2"


@pytest.fixture
def desk(tmp_path) -> Desk:
    return Desk(tmp_path / "state", OTHER)


def assert_same_levels(copy, source, offset: float = 0.0) -> None:
    assert copy.price_open == pytest.approx(source.price_open + offset, abs=1e-9)
    assert copy.price_stoplimit == pytest.approx(source.price_stoplimit + offset if source.price_stoplimit else 0.0,
                                                 abs=1e-9)
    assert copy.sl == pytest.approx(source.sl + offset if source.sl else 0.0, abs=1e-9)
    assert copy.tp == pytest.approx(source.tp + offset if source.tp else 0.0, abs=1e-9)


# ---- 1. edits of the source order ----------------------------------------------------------------------


def test_source_price_sl_tp_and_stoplimit_edits_modify_each_copy_in_place(desk):
    master = desk[SOURCE]
    limit = master.place(BUY_LIMIT)
    stop_limit = master.place(SELL_STOP_LIMIT)
    first = desk.once()
    assert first.code == 0, first.summary
    tickets = {name: {t: c.ticket for t, c in desk[name].copies().items()} for name in (TARGET, OTHER)}
    assert all(set(by_source) == {limit, stop_limit} for by_source in tickets.values())

    # Entry, SL and TP of the buy limit move.
    order = master.orders[limit]
    master.modify(limit, price_open=round(order.price_open - 10 * PIP, 5), sl=round(order.sl - 20 * PIP, 5),
                  tp=round(order.tp + 5 * PIP, 5))
    run = desk.once()
    assert run.code == 0, run.summary
    for name in (TARGET, OTHER):
        counts = summary_counts(run.summary, name)
        assert (counts["modified"], counts["placed"], counts["replaced"], counts["removed"]) == (1, 0, 0, 0), \
            run.summary
        copy = desk[name].copies()[limit]
        assert copy.ticket == tickets[name][limit], "a price edit must modify the copy, not replace it"
        assert_same_levels(copy, master.orders[limit])

    # Trigger, stop-limit price and SL of the sell stop limit move; its TP is removed.
    order = master.orders[stop_limit]
    master.modify(stop_limit, price_open=round(order.price_open - 5 * PIP, 5),
                  price_stoplimit=round(order.price_stoplimit + 3 * PIP, 5), sl=round(order.sl + 4 * PIP, 5), tp=0.0)
    run = desk.once()
    assert run.code == 0, run.summary
    source = master.orders[stop_limit]
    for name in (TARGET, OTHER):
        assert summary_counts(run.summary, name)["modified"] == 1, run.summary
        copy = desk[name].copies()[stop_limit]
        assert copy.ticket == tickets[name][stop_limit]
        assert copy.type == SELL_STOP_LIMIT
        assert_same_levels(copy, source)
        assert len(desk[name].orders) == 2


# ---- 2. expirations across server clocks ---------------------------------------------------------------


@pytest.mark.parametrize("offsets_in_config", [
    pytest.param(True, id="configured-offsets"),
    pytest.param(False, id="offsets-from-ticks"),
])
def test_expirations_are_converted_between_server_clocks_and_follow_edits(desk, offsets_in_config):
    master, alpha = desk[SOURCE], desk[TARGET]
    master.server_offset_hours, alpha.server_offset_hours = 2, 3
    settings = dict(fixed_offsets=False, source={"server_utc_offset": 2}, t1={"server_utc_offset": 3},
                    t2={"server_utc_offset": 0}) if offsets_in_config else dict(fixed_offsets=False)
    now = master.server_now()
    expiry = (now // 60) * 60 + 5 * 3600
    specified = master.place(BUY_LIMIT, type_time=ORDER_TIME_SPECIFIED, time_expiration=expiry)
    day = master.place(SELL_STOP, type_time=ORDER_TIME_DAY)

    run = desk.once(**settings)
    assert run.code == 0, run.summary
    on_alpha = alpha.copies()
    assert on_alpha[specified].type_time == ORDER_TIME_SPECIFIED
    assert on_alpha[specified].time_expiration == expiry + 3600, "the same instant on a clock one hour ahead"
    # A DAY order lasts until the end of the source's server day: the copy expires at that instant.
    time_setup = master.orders[day].time_setup_msc // 1000
    end_of_source_day = (time_setup // DAY) * DAY + DAY + 3600
    assert on_alpha[day].type_time == ORDER_TIME_SPECIFIED
    assert end_of_source_day - 1 <= on_alpha[day].time_expiration <= end_of_source_day

    # The trader moves the expiration: the copy's follows, as a modification.
    master.modify(specified, time_expiration=expiry + 2 * 3600)
    run = desk.once(**settings)
    assert run.code == 0, run.summary
    assert summary_counts(run.summary)["modified"] == 1, run.summary
    copy = alpha.copies()[specified]
    assert copy.ticket == on_alpha[specified].ticket
    assert copy.time_expiration == expiry + 3 * 3600

    # ... and makes it good-till-cancelled.
    master.modify(specified, type_time=ORDER_TIME_GTC, time_expiration=0)
    run = desk.once(**settings)
    assert run.code == 0, run.summary
    copy = alpha.copies()[specified]
    assert (copy.ticket, copy.type_time, copy.time_expiration) == (on_alpha[specified].ticket, ORDER_TIME_GTC, 0)


def test_expiration_the_target_symbol_does_not_allow_falls_back_to_gtc_or_is_skipped(desk):
    master, alpha, beta = desk[SOURCE], desk[TARGET], desk[OTHER]
    for target in (alpha, beta):
        target.symbols["EURUSD"]["expiration_mode"] = 1  # GTC only
    expiry = master.server_now() + 4 * 3600
    ticket = master.place(BUY_LIMIT, type_time=ORDER_TIME_SPECIFIED, time_expiration=expiry)
    gtc = master.place(SELL_STOP)

    run = desk.once(t1={"expiration_fallback": "gtc"}, t2={"expiration_fallback": "skip"})
    assert run.code == 1, run.summary
    copy = alpha.copies()[ticket]
    assert (copy.type_time, copy.time_expiration) == (ORDER_TIME_GTC, 0)
    assert set(beta.copies()) == {gtc}
    assert f"skipped  source #{ticket} EURUSD" in run.summary
    assert "does not allow this order's expiration" in run.summary
    assert "result: INCOMPLETE (exit code 1)" in run.summary


# ---- 3. volume changes and stop-limit activation: replace ---------------------------------------------


def test_changing_lot_multiplier_replaces_every_copy_once(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    orders = [master.place(BUY_LIMIT, volume=0.3), master.place(SELL_STOP, volume=0.2)]
    run = desk.once(t1={"lot_multiplier": 1.0})
    assert run.code == 0, run.summary
    before = alpha.copies()
    assert [before[t].volume for t in orders] == [pytest.approx(0.3), pytest.approx(0.2)]

    run = desk.once(t1={"lot_multiplier": 2.0})
    assert run.code == 0, run.summary
    counts = summary_counts(run.summary)
    assert (counts["replaced"], counts["placed"], counts["modified"]) == (2, 0, 0), run.summary
    after = alpha.copies()
    assert set(after) == set(orders)
    assert len(alpha.orders) == 2, "exactly one copy per source order"
    for ticket, volume in zip(orders, (0.6, 0.4), strict=True):
        assert after[ticket].volume == pytest.approx(volume)
        assert after[ticket].ticket != before[ticket].ticket
        assert_same_levels(after[ticket], master.orders[ticket])
        assert f"replaced source #{ticket} -> #{after[ticket].ticket}" in run.summary

    again = desk.once(t1={"lot_multiplier": 2.0})
    assert again.code == 0 and summary_counts(again.summary)["replaced"] == 0, again.summary


def test_activated_source_stop_limit_replaces_the_copy_with_a_limit_order(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    ask = master.quotes["EURUSD"].ask
    trigger, limit = round(ask + 30 * PIP, 5), round(ask - 30 * PIP, 5)  # a valid buy limit on an unmoved target
    ticket = master.add(type=BUY_STOP_LIMIT, price_open=trigger, price_stoplimit=limit, sl=round(limit - 30 * PIP, 5),
                        tp=round(limit + 30 * PIP, 5))
    run = desk.once()
    assert run.code == 0, run.summary
    original = alpha.copies()[ticket]
    assert original.type == BUY_STOP_LIMIT

    # The source's market rises through the trigger but not down to the limit: same ticket, now a buy limit
    # at the limit price (what MetaTrader, and mt5sim, make of it: tests/test_mt5sim_broker.py).
    master.set_quote("EURUSD", round(trigger + 1 * PIP, 5), round(trigger + 1 * PIP + 0.00012, 5))
    master.modify(ticket, type=BUY_LIMIT, price_open=limit, price_stoplimit=0.0)
    activated = master.orders[ticket]

    run = desk.once()
    assert run.code == 0, run.summary
    assert summary_counts(run.summary)["replaced"] == 1, run.summary
    copy = alpha.copies()[ticket]
    assert copy.ticket != original.ticket
    assert (copy.type, copy.price_open, copy.price_stoplimit) == (BUY_LIMIT, pytest.approx(limit), 0.0)
    assert (copy.sl, copy.tp) == (pytest.approx(activated.sl), pytest.approx(activated.tp))
    assert len(alpha.orders) == 1 and not alpha.positions


# ---- 4. source order cancelled or filled: orphans ------------------------------------------------------


def orphans(policy: str, max_checks: int = 2) -> dict:
    return {"orphans": {"policy": policy, "check_interval": 0.2, "max_checks": max_checks}}


def test_copies_of_a_cancelled_source_order_are_killed_or_preserved_per_policy(desk):
    master, alpha, beta = desk[SOURCE], desk[TARGET], desk[OTHER]
    ticket = master.place(BUY_LIMIT)
    keep = master.place(SELL_STOP)
    scheduler = desk.session(t1=orphans("kill"), t2=orphans("preserve"))
    scheduler.step()
    scheduler.step()
    assert set(alpha.copies()) == set(beta.copies()) == {ticket, keep}, "not copied"

    master.remove(ticket)
    beats = 0
    while ticket in alpha.copies():
        beats += 1
        assert beats <= 30, "orphan not removed under policy kill"
        scheduler.step(0.2)
    assert beats * 0.2 < 6
    for _ in range(8):  # several more orphan checks
        scheduler.step(0.2)
    assert set(beta.copies()) == {ticket, keep}, "policy preserve must leave the orphan alone"
    assert set(alpha.copies()) == {keep}
    scheduler.close()


def test_copies_of_a_filled_source_order_are_removed_unless_kept(desk):
    master, alpha, beta = desk[SOURCE], desk[TARGET], desk[OTHER]
    ticket = master.place(BUY_LIMIT)
    scheduler = desk.session(t1=orphans("kill"), t2={"keep_filled_copies": True, **orphans("kill")})
    scheduler.step()
    scheduler.step()
    assert ticket in alpha.copies() and ticket in beta.copies(), "not copied"

    master.fill(ticket)
    for _ in range(40):
        scheduler.step(0.2)
        if ticket not in alpha.copies():
            break
    assert ticket not in alpha.copies(), "copy of a filled order not removed"
    for _ in range(8):
        scheduler.step(0.2)
    assert ticket in beta.copies(), "keep_filled_copies: the copy stays pending on the target"
    assert not alpha.positions and not beta.positions
    scheduler.close()


def test_keep_filled_copies_holds_for_a_fill_that_happened_while_the_copier_was_stopped(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    settings = {"keep_filled_copies": True, **orphans("kill", max_checks=1)}
    ticket = master.place(BUY_LIMIT)
    assert desk.once(t1=settings).code == 0
    master.fill(ticket)  # no worker watching: only the source's history can tell it filled

    run = desk.once(t1=settings)
    assert ticket in alpha.copies(), run.summary


# ---- 5. a copy filled on the target --------------------------------------------------------------------


def test_a_copy_filled_on_the_target_is_never_placed_again(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_LIMIT)
    assert desk.once().code == 0
    copy = alpha.copies()[ticket]
    alpha.fill(copy.ticket)
    assert not alpha.orders and len(alpha.positions) == 1
    assert ticket in master.orders

    for _ in range(2):
        run = desk.once()
        assert run.code == 0, run.summary
        assert summary_counts(run.summary)["placed"] == 0, run.summary
        assert f"left out source #{ticket}: its copy #{copy.ticket} was filled" in run.summary
        assert not alpha.orders
        positions = list(alpha.positions.values())
        assert len(positions) == 1 and positions[0].magic == ticket


# ---- 6. a copy deleted by hand on the target -----------------------------------------------------------


def test_a_copy_deleted_by_hand_stays_deleted_unless_replace_deleted_copies(desk):
    master, alpha, beta = desk[SOURCE], desk[TARGET], desk[OTHER]
    settings = dict(t2={"replace_deleted_copies": True})
    ticket = master.place(BUY_LIMIT)
    assert desk.once(**settings).code == 0
    deleted = {name: desk[name].copies()[ticket].ticket for name in (TARGET, OTHER)}
    alpha.remove(deleted[TARGET])
    beta.remove(deleted[OTHER])

    run = desk.once(**settings)
    assert run.code == 0, run.summary
    assert ticket not in alpha.copies()
    assert summary_counts(run.summary)["placed"] == 0
    assert f"left out source #{ticket}: its copy #{deleted[TARGET]} was deleted on the target" in run.summary
    assert summary_counts(run.summary, OTHER)["placed"] == 1, run.summary
    again = beta.copies()[ticket]
    assert again.ticket != deleted[OTHER]
    assert_same_levels(again, master.orders[ticket])

    run = desk.once(**settings)
    assert run.code == 0, run.summary
    assert ticket not in alpha.copies() and len(beta.orders) == 1


def test_sync_does_not_touch_orders_that_are_not_copies(desk):
    """A manual order and another EA's order with a copy-like magic are never modified, replaced or removed."""
    master, alpha = desk[SOURCE], desk[TARGET]
    settings = dict(t1=orphans("kill", max_checks=1))
    ticket = master.place(BUY_LIMIT)
    manual = alpha.place(SELL_STOP, comment="manual")
    other_ea = alpha.place(BUY_STOP, magic=ticket, comment="other EA")
    assert desk.once(**settings).code == 0
    master.remove(ticket)
    run = desk.once(**settings)
    assert run.code == 0, run.summary
    assert set(alpha.orders) == {manual, other_ea}
    assert not [c for c in run.commands if c.ticket in (manual, other_ea)]
