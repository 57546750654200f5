"""End to end: what the copier sends to keep copies in sync is accepted by a broker, over real processes.

Which edit becomes which command is the engine's decision and is tested there, in milliseconds, with the same
assertions these process tests made (tests/test_engine_sync.py, same test names):
- edits of price, SL, TP and stop-limit price modify each copy in place;
- expirations are converted between server clocks (configured or measured) and follow edits, DAY orders
  expire at the end of the source's day, and an expiration the target does not allow falls back or is skipped;
- a new lot multiplier replaces every copy once, an activated source stop limit replaces its copy;
- copies of cancelled or filled source orders are killed or kept per policy and keep_filled_copies (also for a
  fill while the copier was stopped);
- a copy filled on the target is never placed again, one deleted by hand stays deleted unless
  replace_deleted_copies, and orders that are not copies are never touched.

What only real processes can show stays here, in one run of each kind: the real worker's modifications and
replacement pass the simulated broker's rules, and the offsets measured from its ticks put expirations where
the broker accepts them.
"""

from __future__ import annotations

import pytest

import mt5sim
from tests.simhelpers import (
    BUY_LIMIT,
    BUY_STOP_LIMIT,
    SELL_STOP,
    SELL_STOP_LIMIT,
    copier_config,
    copies,
    modify_order,
    pending,
    place_at,
    place_pending,
    sim_terminals,
    summary_counts,
    target_login,
    target_section,
)

pytestmark = pytest.mark.e2e

ORDER_TIME_GTC, ORDER_TIME_DAY, ORDER_TIME_SPECIFIED = 0, 1, 2
DAY = 86_400
PIP = 0.0001  # EURUSD: 10 points


def assert_same_levels(copy, source) -> None:
    assert copy.price_open == pytest.approx(source.price_open, abs=1e-9)
    assert copy.price_stoplimit == pytest.approx(source.price_stoplimit, abs=1e-9)
    assert copy.sl == pytest.approx(source.sl, abs=1e-9)
    assert copy.tp == pytest.approx(source.tp, abs=1e-9)


def test_modifications_expirations_and_a_replacement_are_accepted_by_the_broker(copier):
    """Server clocks two and three hours ahead of UTC, measured from the workers' ticks (nothing configured)."""
    master, alpha = sim_terminals(copier.directory, "alpha", master={"server_offset_hours": 2},
                                  alpha={"server_offset_hours": 3})
    copier.write_config(copier_config(target_section("alpha", target_login(0))))
    expiry = (int(mt5sim.server_time(master.path)) // 60) * 60 + 5 * 3600
    limit = place_pending(master, BUY_LIMIT)
    stop_limit = place_pending(master, SELL_STOP_LIMIT)
    specified = place_pending(master, BUY_LIMIT, distance_points=600, type_time=ORDER_TIME_SPECIFIED,
                              expiration=expiry)
    day = place_pending(master, SELL_STOP, type_time=ORDER_TIME_DAY)
    ask = master.symbol_info_tick("EURUSD").ask
    trigger, entry = round(ask + 30 * PIP, 5), round(ask - 30 * PIP, 5)  # a valid buy limit on an unmoved target
    activated = place_at(master, BUY_STOP_LIMIT, trigger, stoplimit=entry, sl=round(entry - 30 * PIP, 5),
                         tp=round(entry + 30 * PIP, 5))
    tickets = {limit, stop_limit, specified, day, activated}

    run = copier.once()
    assert run.code == 0, run.output
    placed = copies(alpha)
    assert set(placed) == tickets
    for ticket in tickets:
        assert_same_levels(placed[ticket], pending(master, ticket))
    assert (placed[specified].type_time, placed[specified].time_expiration) == (ORDER_TIME_SPECIFIED, expiry + 3600)
    end_of_source_day = (pending(master, day).time_setup // DAY) * DAY + DAY + 3600
    assert placed[day].type_time == ORDER_TIME_SPECIFIED
    assert end_of_source_day - 1 <= placed[day].time_expiration <= end_of_source_day

    order = pending(master, limit)
    modify_order(master, limit, price=round(order.price_open - 10 * PIP, 5), sl=round(order.sl - 20 * PIP, 5),
                 tp=round(order.tp + 5 * PIP, 5))
    order = pending(master, stop_limit)
    modify_order(master, stop_limit, price=round(order.price_open - 5 * PIP, 5),
                 stoplimit=round(order.price_stoplimit + 3 * PIP, 5), sl=round(order.sl + 4 * PIP, 5), tp=0.0)
    modify_order(master, specified, expiration=expiry + 2 * 3600)
    modify_order(master, day, type_time=ORDER_TIME_GTC, expiration=0)
    # The source's market rises through the stop limit's trigger: same ticket, now a buy limit.
    mt5sim.set_quote(master.path, "EURUSD", round(trigger + 1 * PIP, 5), round(trigger + 1 * PIP + 0.00012, 5))
    assert pending(master, activated).type == BUY_LIMIT and not master.positions_get()

    run = copier.once()
    assert run.code == 0, run.output
    counts = summary_counts(run.output, "alpha")
    assert (counts["modified"], counts["replaced"], counts["placed"], counts["removed"]) == (4, 1, 0, 0), run.output
    synced = copies(alpha)
    assert len(alpha.orders_get()) == 5 and not alpha.positions_get()
    for ticket in tickets - {activated}:
        assert synced[ticket].ticket == placed[ticket].ticket, "an edit must modify the copy, not replace it"
        assert_same_levels(synced[ticket], pending(master, ticket))
    assert synced[stop_limit].type == SELL_STOP_LIMIT and synced[stop_limit].tp == 0.0
    assert synced[specified].time_expiration == expiry + 3 * 3600
    assert (synced[day].type_time, synced[day].time_expiration) == (ORDER_TIME_GTC, 0)
    copy = synced[activated]
    assert copy.ticket != placed[activated].ticket
    assert (copy.type, copy.price_open, copy.price_stoplimit) == (BUY_LIMIT, pytest.approx(entry), 0.0)
    assert (copy.sl, copy.tp) == (pytest.approx(pending(master, activated).sl),
                                  pytest.approx(pending(master, activated).tp))
