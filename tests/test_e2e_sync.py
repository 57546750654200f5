"""End to end: every copy stays in sync with its source order (edits, expirations, volumes, stop-limit
activation, cancellations, fills, copies filled or deleted on the target), over real processes."""

from __future__ import annotations

import time

import pytest

import mt5sim
from tests.conftest import wait_for
from tests.simhelpers import (
    BUY_LIMIT,
    BUY_STOP,
    BUY_STOP_LIMIT,
    SELL_STOP,
    SELL_STOP_LIMIT,
    copier_config,
    copies,
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

ORDER_TIME_GTC, ORDER_TIME_DAY, ORDER_TIME_SPECIFIED = 0, 1, 2
DAY = 86_400
PIP = 0.0001  # EURUSD: 10 points


def terminals(copier, *names: str, **options):
    return sim_terminals(copier.directory, *names, **options)


def login(index: int) -> int:
    return target_login(index)


def assert_same_levels(copy, source, offset: float = 0.0) -> None:
    assert copy.price_open == pytest.approx(source.price_open + offset, abs=1e-9)
    assert copy.price_stoplimit == pytest.approx(source.price_stoplimit + offset if source.price_stoplimit else 0.0,
                                                 abs=1e-9)
    assert copy.sl == pytest.approx(source.sl + offset if source.sl else 0.0, abs=1e-9)
    assert copy.tp == pytest.approx(source.tp + offset if source.tp else 0.0, abs=1e-9)


# ---- 1. edits of the source order ----------------------------------------------------------------------


def test_source_price_sl_tp_and_stoplimit_edits_modify_each_copy_in_place(copier):
    master, alpha, beta = terminals(copier, "alpha", "beta")
    copier.write_config(copier_config(target_section("alpha", login(0)), target_section("beta", login(1))))
    limit = place_pending(master, BUY_LIMIT)
    stop_limit = place_pending(master, SELL_STOP_LIMIT)
    first = copier.once()
    assert first.code == 0, first.output
    tickets = {name: {t: c.ticket for t, c in copies(target).items()} for name, target in
               (("alpha", alpha), ("beta", beta))}
    assert all(set(by_source) == {limit, stop_limit} for by_source in tickets.values())

    # Entry, SL and TP of the buy limit move.
    order = pending(master, limit)
    modify_order(master, limit, price=round(order.price_open - 10 * PIP, 5), sl=round(order.sl - 20 * PIP, 5),
                 tp=round(order.tp + 5 * PIP, 5))
    run = copier.once()
    assert run.code == 0, run.output
    for name, target in (("alpha", alpha), ("beta", beta)):
        counts = summary_counts(run.output, name)
        assert (counts["modified"], counts["placed"], counts["replaced"], counts["removed"]) == (1, 0, 0, 0), run.output
        copy = copies(target)[limit]
        assert copy.ticket == tickets[name][limit], "a price edit must modify the copy, not replace it"
        assert_same_levels(copy, pending(master, limit))

    # Trigger, stop-limit price and SL of the sell stop limit move; its TP is removed.
    order = pending(master, stop_limit)
    modify_order(master, stop_limit, price=round(order.price_open - 5 * PIP, 5),
                 stoplimit=round(order.price_stoplimit + 3 * PIP, 5), sl=round(order.sl + 4 * PIP, 5), tp=0.0)
    run = copier.once()
    assert run.code == 0, run.output
    source = pending(master, stop_limit)
    assert source.tp == 0.0
    for name, target in (("alpha", alpha), ("beta", beta)):
        assert summary_counts(run.output, name)["modified"] == 1, run.output
        copy = copies(target)[stop_limit]
        assert copy.ticket == tickets[name][stop_limit]
        assert copy.type == SELL_STOP_LIMIT
        assert_same_levels(copy, source)
        assert len(target.orders_get()) == 2


# ---- 2. expirations across server clocks ---------------------------------------------------------------


@pytest.mark.parametrize("offsets_in_config", [
    pytest.param(True, id="configured-offsets"),
    pytest.param(False, id="offsets-from-ticks"),
])
def test_expirations_are_converted_between_server_clocks_and_follow_edits(copier, offsets_in_config):
    master, alpha = terminals(copier, "alpha", master={"server_offset_hours": 2},
                              alpha={"server_offset_hours": 3})
    copier.write_config(copier_config(
        target_section("alpha", login(0), "server_utc_offset = 3" if offsets_in_config else ""),
        source="server_utc_offset = 2" if offsets_in_config else ""))
    now = int(mt5sim.server_time(copier.directory / "terminals" / "master"))
    expiry = (now // 60) * 60 + 5 * 3600
    specified = place_pending(master, BUY_LIMIT, type_time=ORDER_TIME_SPECIFIED, expiration=expiry)
    day = place_pending(master, SELL_STOP, type_time=ORDER_TIME_DAY)

    run = copier.once()
    assert run.code == 0, run.output
    on_alpha = copies(alpha)
    assert on_alpha[specified].type_time == ORDER_TIME_SPECIFIED
    assert on_alpha[specified].time_expiration == expiry + 3600, "the same instant on a clock one hour ahead"
    # A DAY order lasts until the end of the source's server day: the copy expires at that instant.
    source_day = pending(master, day)
    end_of_source_day = (source_day.time_setup // DAY) * DAY + DAY + 3600
    assert on_alpha[day].type_time == ORDER_TIME_SPECIFIED
    assert end_of_source_day - 1 <= on_alpha[day].time_expiration <= end_of_source_day

    # The trader moves the expiration: the copy's follows, as a modification.
    modify_order(master, specified, expiration=expiry + 2 * 3600)
    run = copier.once()
    assert run.code == 0, run.output
    assert summary_counts(run.output, "alpha")["modified"] == 1, run.output
    copy = copies(alpha)[specified]
    assert copy.ticket == on_alpha[specified].ticket
    assert copy.time_expiration == expiry + 3 * 3600

    # ... and makes it good-till-cancelled.
    modify_order(master, specified, type_time=ORDER_TIME_GTC, expiration=0)
    run = copier.once()
    assert run.code == 0, run.output
    copy = copies(alpha)[specified]
    assert (copy.ticket, copy.type_time, copy.time_expiration) == (on_alpha[specified].ticket, ORDER_TIME_GTC, 0)


def test_expiration_the_target_symbol_does_not_allow_falls_back_to_gtc_or_is_skipped(copier):
    master, alpha, beta = terminals(copier, "alpha", "beta")
    copier.write_config(copier_config(
        target_section("alpha", login(0), 'expiration_fallback = "gtc"\nserver_utc_offset = 0'),
        target_section("beta", login(1), 'expiration_fallback = "skip"\nserver_utc_offset = 0'),
        source="server_utc_offset = 0"))
    for target in (alpha, beta):
        mt5sim.set_symbol(target.path, "EURUSD", expiration_mode=1)  # GTC only
    expiry = int(mt5sim.server_time(master.path)) + 4 * 3600
    ticket = place_pending(master, BUY_LIMIT, type_time=ORDER_TIME_SPECIFIED, expiration=expiry)
    gtc = place_pending(master, SELL_STOP)

    run = copier.once()
    assert run.code == 1, run.output
    copy = copies(alpha)[ticket]
    assert (copy.type_time, copy.time_expiration) == (ORDER_TIME_GTC, 0)
    assert set(copies(beta)) == {gtc}
    assert f"skipped  source #{ticket} EURUSD" in run.output
    assert "does not allow this order's expiration" in run.output
    assert "result: INCOMPLETE (exit code 1)" in run.output


# ---- 3. volume changes and stop-limit activation: replace ---------------------------------------------


def test_changing_lot_multiplier_replaces_every_copy_once(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0), "lot_multiplier = 1.0")))
    orders = [place_pending(master, BUY_LIMIT, volume=0.3), place_pending(master, SELL_STOP, volume=0.2)]
    run = copier.once()
    assert run.code == 0, run.output
    before = copies(alpha)
    assert [before[t].volume_current for t in orders] == [pytest.approx(0.3), pytest.approx(0.2)]

    copier.write_config(copier_config(target_section("alpha", login(0), "lot_multiplier = 2.0")))
    run = copier.once()
    assert run.code == 0, run.output
    counts = summary_counts(run.output, "alpha")
    assert (counts["replaced"], counts["placed"], counts["modified"]) == (2, 0, 0), run.output
    after = copies(alpha)
    assert set(after) == set(orders)
    assert len(alpha.orders_get()) == 2, "exactly one copy per source order"
    for ticket, volume in zip(orders, (0.6, 0.4), strict=True):
        assert after[ticket].volume_current == pytest.approx(volume)
        assert after[ticket].ticket != before[ticket].ticket
        assert_same_levels(after[ticket], pending(master, ticket))
        assert f"replaced source #{ticket} -> #{after[ticket].ticket}" in run.output

    again = copier.once()
    assert again.code == 0 and summary_counts(again.output, "alpha")["replaced"] == 0, again.output


def test_activated_source_stop_limit_replaces_the_copy_with_a_limit_order(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    tick = master.symbol_info_tick("EURUSD")
    trigger = round(tick.ask + 30 * PIP, 5)
    limit = round(tick.ask - 30 * PIP, 5)  # below the market: a valid buy limit on an unmoved target
    ticket = place_at(master, BUY_STOP_LIMIT, trigger, stoplimit=limit, sl=round(limit - 30 * PIP, 5),
                      tp=round(limit + 30 * PIP, 5))
    run = copier.once()
    assert run.code == 0, run.output
    original = copies(alpha)[ticket]
    assert original.type == BUY_STOP_LIMIT

    # The source's market rises through the trigger but not down to the limit: same ticket, now a buy limit.
    mt5sim.set_quote(master.path, "EURUSD", round(trigger + 1 * PIP, 5), round(trigger + 1 * PIP + 0.00012, 5))
    activated = pending(master, ticket)
    assert activated is not None and activated.type == BUY_LIMIT and activated.price_open == pytest.approx(limit)
    assert not master.positions_get()

    run = copier.once()
    assert run.code == 0, run.output
    assert summary_counts(run.output, "alpha")["replaced"] == 1, run.output
    copy = copies(alpha)[ticket]
    assert copy.ticket != original.ticket
    assert (copy.type, copy.price_open, copy.price_stoplimit) == (BUY_LIMIT, pytest.approx(limit), 0.0)
    assert (copy.sl, copy.tp) == (pytest.approx(activated.sl), pytest.approx(activated.tp))
    assert len(alpha.orders_get()) == 1 and not alpha.positions_get()


# ---- 4. source order cancelled or filled: orphans ------------------------------------------------------

ORPHANS_FAST = "[targets.orphans]\npolicy = \"{policy}\"\ncheck_interval = 0.2\nmax_checks = 2\n"


def test_copies_of_a_cancelled_source_order_are_killed_or_preserved_per_policy(copier):
    master, alpha, beta = terminals(copier, "alpha", "beta")
    copier.write_config(copier_config(
        target_section("alpha", login(0), tables=ORPHANS_FAST.format(policy="kill")),
        target_section("beta", login(1), tables=ORPHANS_FAST.format(policy="preserve"))))
    ticket = place_pending(master, BUY_LIMIT)
    keep = place_pending(master, SELL_STOP)
    copier.start_scheduler()
    wait_for(lambda: set(copies(alpha)) == set(copies(beta)) == {ticket, keep}, timeout=10,
             message="not copied")

    remove_order(master, ticket)
    started = time.monotonic()
    wait_for(lambda: ticket not in copies(alpha), timeout=8, message="orphan not removed under policy kill")
    assert time.monotonic() - started < 6
    time.sleep(1.5)  # several more orphan checks
    assert set(copies(beta)) == {ticket, keep}, "policy preserve must leave the orphan alone"
    assert set(copies(alpha)) == {keep}


def test_copies_of_a_filled_source_order_are_removed_unless_kept(copier):
    master, alpha, beta = terminals(copier, "alpha", "beta")
    copier.write_config(copier_config(
        target_section("alpha", login(0), tables=ORPHANS_FAST.format(policy="kill")),
        target_section("beta", login(1), "keep_filled_copies = true", tables=ORPHANS_FAST.format(policy="kill"))))
    ticket = place_pending(master, BUY_LIMIT)
    copier.start_scheduler()
    wait_for(lambda: ticket in copies(alpha) and ticket in copies(beta), timeout=10, message="not copied")

    price = pending(master, ticket).price_open
    mt5sim.set_quote(master.path, "EURUSD", round(price - 0.00022, 5), round(price - 0.0001, 5))
    assert pending(master, ticket) is None and len(master.positions_get()) == 1

    wait_for(lambda: ticket not in copies(alpha), timeout=8, message="copy of a filled order not removed")
    time.sleep(1.5)
    assert ticket in copies(beta), "keep_filled_copies: the copy stays pending on the target"
    assert not alpha.positions_get() and not beta.positions_get()


def test_keep_filled_copies_holds_for_a_fill_that_happened_while_the_copier_was_stopped(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section(
        "alpha", login(0), "keep_filled_copies = true",
        tables=ORPHANS_FAST.format(policy="kill").replace("max_checks = 2", "max_checks = 1"))))
    ticket = place_pending(master, BUY_LIMIT)
    assert copier.once().code == 0
    price = pending(master, ticket).price_open
    mt5sim.set_quote(master.path, "EURUSD", round(price - 0.00022, 5), round(price - 0.0001, 5))
    assert pending(master, ticket) is None and len(master.positions_get()) == 1

    run = copier.once()
    assert ticket in copies(alpha), run.output


# ---- 5. a copy filled on the target --------------------------------------------------------------------


def test_a_copy_filled_on_the_target_is_never_placed_again(copier):
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0))))
    ticket = place_pending(master, BUY_LIMIT)
    assert copier.once().code == 0
    copy = copies(alpha)[ticket]
    mt5sim.set_quote(alpha.path, "EURUSD", round(copy.price_open - 0.00022, 5), round(copy.price_open - 0.0001, 5))
    assert not alpha.orders_get() and len(alpha.positions_get()) == 1
    assert pending(master, ticket) is not None

    for _ in range(2):
        run = copier.once()
        assert run.code == 0, run.output
        assert summary_counts(run.output, "alpha")["placed"] == 0, run.output
        assert f"left out source #{ticket}: its copy #{copy.ticket} was filled" in run.output
        assert not alpha.orders_get()
        positions = alpha.positions_get()
        assert len(positions) == 1 and positions[0].magic == ticket


# ---- 6. a copy deleted by hand on the target -----------------------------------------------------------


def test_a_copy_deleted_by_hand_stays_deleted_unless_replace_deleted_copies(copier):
    master, alpha, beta = terminals(copier, "alpha", "beta")
    copier.write_config(copier_config(target_section("alpha", login(0)),
                                      target_section("beta", login(1), "replace_deleted_copies = true")))
    ticket = place_pending(master, BUY_LIMIT)
    assert copier.once().code == 0
    deleted = {name: copies(target)[ticket].ticket for name, target in (("alpha", alpha), ("beta", beta))}
    remove_order(alpha, deleted["alpha"])
    remove_order(beta, deleted["beta"])

    run = copier.once()
    assert run.code == 0, run.output
    assert ticket not in copies(alpha)
    assert summary_counts(run.output, "alpha")["placed"] == 0
    assert f"left out source #{ticket}: its copy #{deleted['alpha']} was deleted on the target" in run.output
    assert summary_counts(run.output, "beta")["placed"] == 1, run.output
    again = copies(beta)[ticket]
    assert again.ticket != deleted["beta"]
    assert_same_levels(again, pending(master, ticket))

    run = copier.once()
    assert run.code == 0, run.output
    assert ticket not in copies(alpha) and len(beta.orders_get()) == 1


def test_sync_does_not_touch_orders_that_are_not_copies(copier):
    """A manual order and another EA's order with a copy-like magic are never modified, replaced or removed."""
    master, alpha = terminals(copier, "alpha")
    copier.write_config(copier_config(target_section("alpha", login(0), tables=ORPHANS_FAST.format(policy="kill")
                                                     .replace("max_checks = 2", "max_checks = 1"))))
    ticket = place_pending(master, BUY_LIMIT)
    manual = place_pending(alpha, SELL_STOP, comment="manual")
    other_ea = place_pending(alpha, BUY_STOP, magic=ticket, comment="other EA")
    assert copier.once().code == 0
    remove_order(master, ticket)
    run = copier.once()
    assert run.code == 0, run.output
    assert {order.ticket for order in alpha.orders_get()} == {manual, other_ea}
