"""Contract: a copy followed as a position. Opened at market with the copier's tag (after its pending copy is
removed, or directly), read back with every field, given SL and TP, closed in part and in whole, never closed
twice, and its deals history read back. Positions of other experts are never touched.

On a real demo account every position here is of the smallest volume that closes in two parts, and the test
that opens it closes it (its teardown too, pass or fail). A pending copy that fills by itself needs the market
moved: that runs on the simulator only."""

from __future__ import annotations

import pytest

from protocol import CommandStatus
from protocol.mt5 import DealReason
from tests.contract.test_pending_orders import SAME_CLOCK_SLACK_SECONDS, same_price
from tests.contract.venue import MT5, SUCCESS_RETCODES, Venue, market_filling


def test_a_copy_is_opened_read_back_given_levels_closed_in_part_and_in_whole_and_its_history_read(venue: Venue):
    volume, part = venue.position_volume, venue.spec.volume_min
    command = venue.market_copy()
    opened = venue.adapter.execute(command)
    venue.expect_done(opened, "the opening at market")
    assert opened.retcode in SUCCESS_RETCODES and not opened.already_existed and opened.ticket > 0, opened
    assert opened.volume == pytest.approx(volume) and opened.price > 0

    position = venue.opened(opened.ticket)
    assert (position.ticket, position.identifier, position.symbol, position.type) == (
        opened.ticket, opened.ticket, venue.symbol, MT5.POSITION_TYPE_BUY)
    assert (position.volume, position.magic, position.comment) == (
        pytest.approx(volume), command.source_ticket, command.comment)
    assert position.price_open == same_price(venue, opened.price)
    assert (position.sl, position.tp) == (0.0, 0.0)
    assert position.price_current > 0
    assert abs(position.time_msc / 1000 - venue.server_time()) < SAME_CLOCK_SLACK_SECONDS, (
        "time_msc is not on the clock of the tick times")
    assert venue.adapter.find_copy(command.source_ticket) == position.ticket

    # SL and TP, in one request carrying both; the same levels again change nothing and count as done.
    levels = venue.far_levels(position)
    result = venue.adapter.execute(venue.sltp(position, levels.sl, levels.tp))
    venue.expect_done(result, "the SLTP")
    position = venue.eventually(lambda: (found := venue.position(opened.ticket)) and found.sl and found,
                                "the new SL and TP")
    assert (position.sl, position.tp) == (same_price(venue, levels.sl), same_price(venue, levels.tp))
    again = venue.adapter.execute(venue.sltp(position, levels.sl, levels.tp))
    assert again.status is CommandStatus.DONE, again
    assert again.retcode in (MT5.TRADE_RETCODE_NO_CHANGES, *SUCCESS_RETCODES)

    # A close planned on another volume is never sent.
    venue.module.forget()
    stale = venue.adapter.execute(venue.close(position, part, expected_volume=volume + part))
    assert stale.status is CommandStatus.STALE, stale
    assert venue.module.sent == [] and venue.module.checked == []

    first = venue.adapter.execute(venue.close(position, part, expected_volume=volume))
    venue.expect_done(first, "the partial close")
    assert first.volume == pytest.approx(part) and first.price > 0
    sent = venue.module.sent[-1]
    assert (sent["action"], sent["type"], sent["position"], sent["volume"]) == (
        MT5.TRADE_ACTION_DEAL, MT5.ORDER_TYPE_SELL, position.ticket, pytest.approx(part))
    assert sent["type_filling"] == market_filling(venue.spec.filling_mode)
    position = venue.eventually(lambda: (found := venue.position(opened.ticket)) and found.volume < volume and found,
                                "the position reduced")
    assert position.volume == pytest.approx(volume - part) and position.comment == command.comment

    rest = venue.adapter.execute(venue.close(position, volume - part, expected_volume=volume - part))
    venue.expect_done(rest, "the close of the rest")
    venue.closed(opened.ticket)
    venue.module.forget()
    twice = venue.adapter.execute(venue.close(position, volume - part, expected_volume=volume - part))
    assert twice.status is CommandStatus.DONE and twice.already_existed, twice
    assert venue.module.sent == []

    history = venue.eventually(lambda: (found := venue.adapter.position_history(opened.ticket)) and found.closed
                               and found, f"position #{opened.ticket} closed in the deals history")
    assert (history.volume_in, history.volume_out) == (pytest.approx(volume), pytest.approx(volume))
    assert history.close_price == same_price(venue, rest.price)
    assert history.close_reason == DealReason.EXPERT
    assert history.close_time_msc >= position.time_msc


def test_market_removes_the_pending_copy_and_opens_the_copy(venue: Venue):
    venue.require_type(MT5.ORDER_TYPE_BUY_LIMIT)
    _, order = venue.place(venue.command())
    result = venue.adapter.execute(venue.market_copy(order.magic, ticket=order.ticket))
    venue.expect_done(result, "the market copy")
    assert result.ticket not in (0, order.ticket) and not result.already_existed, result
    venue.gone(order.ticket)
    removed = venue.eventually(lambda: venue.adapter.closed_order(order.ticket), "the pending copy in history")
    assert removed.state == MT5.ORDER_STATE_CANCELED
    position = venue.opened(result.ticket)
    assert (position.magic, position.comment, position.type) == (order.magic, order.comment, MT5.POSITION_TYPE_BUY)
    assert venue.adapter.find_copy(order.magic) == position.ticket

    venue.module.forget()
    again = venue.adapter.execute(venue.market_copy(order.magic, ticket=order.ticket))
    assert again.status is CommandStatus.DONE and again.already_existed and again.ticket == position.ticket, again
    assert venue.module.sent == []

    closed = venue.adapter.execute(venue.close(position, position.volume, expected_volume=position.volume))
    venue.expect_done(closed, "the close")
    venue.closed(position.ticket)


def test_market_far_from_the_sources_fill_price_only_removes_the_pending_copy(venue: Venue):
    venue.require_type(MT5.ORDER_TYPE_BUY_LIMIT)
    _, order = venue.place(venue.command())
    venue.module.forget()
    far = venue.snap(venue.quote().ask * 0.98)  # the source filled 2 % away; 1 % is allowed
    result = venue.adapter.execute(venue.market_copy(order.magic, ticket=order.ticket, price=far))
    venue.expect_done(result, "the removal")
    assert result.ticket == 0 and "not opened" in result.comment, result
    venue.gone(order.ticket)
    assert [sent["action"] for sent in venue.module.sent] == [MT5.TRADE_ACTION_REMOVE]
    assert [position for position in venue.adapter.positions() if position.magic == order.magic] == []


def test_a_position_with_the_copy_magic_but_without_the_tag_is_never_touched(venue: Venue):
    source = venue.next_source_ticket()
    quote, info = venue.quote(), venue.spec
    # Another expert advisor's position that happens to use the source ticket as its magic number.
    foreign = venue.module.inner.order_send({
        "action": MT5.TRADE_ACTION_DEAL, "symbol": venue.symbol, "volume": venue.position_volume,
        "type": MT5.ORDER_TYPE_BUY, "price": quote.ask, "deviation": venue.deviation,
        "type_filling": market_filling(info.filling_mode), "magic": source, "comment": "grid EA",
    })
    assert foreign is not None and foreign.retcode in SUCCESS_RETCODES, (foreign, venue.module.inner.last_error())
    position = venue.opened(foreign.order)
    assert venue.adapter.find_copy(source) is None
    venue.module.forget()
    levels = venue.far_levels(position)
    for command in (venue.sltp(position, levels.sl, levels.tp),
                    venue.close(position, position.volume, expected_volume=position.volume)):
        result = venue.adapter.execute(command)
        assert result.status is CommandStatus.REFUSED, result
    assert venue.module.sent == [] and venue.module.checked == []
    assert venue.position(foreign.order) == position
    # The teardown closes it: its magic is in the test's block.


def test_market_after_the_pending_copy_filled_by_itself_sends_nothing(venue: Venue):
    market = venue.require_market()
    _, order = venue.place(venue.command(order_type=MT5.ORDER_TYPE_BUY_LIMIT))
    market.cross(order, venue.spec.tick_size, venue.spec.digits)
    position = venue.opened(order.ticket)
    venue.module.forget()
    result = venue.adapter.execute(venue.market_copy(order.magic, ticket=order.ticket))
    assert result.status is CommandStatus.DONE and result.already_existed and result.ticket == position.ticket
    assert venue.module.sent == [] and venue.module.checked == []
