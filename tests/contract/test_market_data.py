"""Contract: symbols are selected and described, missing ones are listed, quotes carry the server's tick time."""

from __future__ import annotations

import math
import time

from coordinator.domain.clocks import estimate_offset
from tests.contract.venue import MT5, PENDING_TYPES, Venue

MISSING_SYMBOL = "NO.SUCH.SYMBOL.MT5COPIER"


def test_symbol_specs_describe_the_symbol_and_list_the_missing(venue: Venue):
    specs, missing = venue.adapter.symbol_specs([venue.symbol, MISSING_SYMBOL])
    assert missing == (MISSING_SYMBOL,)
    [spec] = specs
    assert spec.name == venue.symbol
    assert spec.digits >= 0 and math.isclose(spec.point, 10.0 ** -spec.digits, rel_tol=1e-9)
    assert spec.tick_size >= spec.point > 0
    assert spec.contract_size > 0
    assert 0 < spec.volume_min <= spec.volume_max and spec.volume_step > 0 and spec.volume_limit >= 0
    assert spec.stops_level >= 0 and spec.freeze_level >= 0
    assert spec.trade_mode == MT5.SYMBOL_TRADE_MODE_FULL, f"{venue.symbol} is not fully tradable: choose another"
    assert 0 < spec.expiration_mode <= 15  # GTC, DAY, SPECIFIED, SPECIFIED_DAY bits (mt5-api.md §5)
    assert any(spec.order_mode & (1 << (order_type // 2)) for order_type in PENDING_TYPES)
    assert spec.filling_mode >= 0 and spec.order_gtc_mode in (
        MT5.SYMBOL_ORDERS_GTC, MT5.SYMBOL_ORDERS_DAILY, MT5.SYMBOL_ORDERS_DAILY_NO_STOPS)
    assert 0 < spec.bid <= spec.ask
    assert spec.currency_base and spec.currency_profit and spec.currency_margin


def test_a_symbol_outside_market_watch_is_selected_and_described(venue: Venue):
    name = venue.unselected_symbol()
    try:
        specs, missing = venue.adapter.symbol_specs([name])
        assert missing == () and [spec.name for spec in specs] == [name]
        assert venue.module.inner.symbol_info(name).select
    finally:
        venue.module.inner.symbol_select(name, False)  # leave Market Watch as it was


def test_quotes_carry_bid_ask_and_the_server_tick_time_and_leave_out_missing_symbols(venue: Venue):
    # As in the copier, a symbol is quoted once symbol_specs has put it in Market Watch: symbol_info_tick
    # needs that (mt5-api.md §3), and quotes() does not select.
    venue.adapter.symbol_specs([venue.symbol])
    quotes = venue.adapter.quotes([venue.symbol, MISSING_SYMBOL])
    now = time.time()
    assert [quote.symbol for quote in quotes] == [venue.symbol]
    [quote] = quotes
    assert 0 < quote.bid <= quote.ask
    # Tick times are the broker's server clock as epoch seconds: UTC plus a whole number of quarter hours
    # (the copier works out each server's offset from them; 5 minutes of slack for a quiet market).
    offset = estimate_offset(quote.time, now)
    assert abs(quote.time - now - offset) < 300, (quote.time, now)
    assert abs(offset) <= 14 * 3600
