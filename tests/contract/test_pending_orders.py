"""Contract: copies are placed, read back with every field, found by their tag, modified, replaced and removed;
a copy is never placed twice; what the terminal's own check refuses is never sent."""

from __future__ import annotations

import pytest

from protocol import CommandKind, CommandStatus, PendingOrder
from tests.contract.venue import (
    DAY_SECONDS,
    EXPIRATION_NAMES,
    MT5,
    PENDING_TYPES,
    STOP_LIMIT_TYPES,
    SUCCESS_RETCODES,
    TYPE_NAMES,
    Venue,
)

# A setup time more than this away from the last tick's time is on another clock (brokers' servers run whole
# hours from UTC; the copier reads a DAY order's day from time_setup_msc, on the clock of the tick times).
SAME_CLOCK_SLACK_SECONDS = 1800


def same_price(venue: Venue, value: float):
    return pytest.approx(value, abs=venue.spec.point / 100)


def assert_levels(venue: Venue, order: PendingOrder, price: float, stoplimit: float, sl: float, tp: float):
    assert order.price_open == same_price(venue, price)
    assert order.price_stoplimit == same_price(venue, stoplimit)
    assert order.sl == same_price(venue, sl)
    assert order.tp == same_price(venue, tp)


def orders_with_magic(venue: Venue, magic: int) -> list[PendingOrder]:
    return [order for order in venue.adapter.pending_orders() if order.magic == magic]


@pytest.mark.parametrize("order_type", PENDING_TYPES, ids=[TYPE_NAMES[t] for t in PENDING_TYPES])
def test_each_pending_type_is_placed_and_read_back_with_every_field(venue: Venue, order_type: int):
    venue.require_type(order_type)
    command = venue.command(order_type=order_type)
    result, order = venue.place(command)
    assert result.retcode in SUCCESS_RETCODES and not result.already_existed and result.ticket == order.ticket
    assert (order.symbol, order.type) == (venue.symbol, order_type)
    assert order.volume == order.volume_initial == pytest.approx(command.volume)
    assert_levels(venue, order, command.price, command.stoplimit, command.sl, command.tp)
    if order_type in STOP_LIMIT_TYPES:
        assert order.price_stoplimit != 0.0
    assert (order.type_time, order.time_expiration) == (MT5.ORDER_TIME_GTC, 0)
    assert order.type_filling == MT5.ORDER_FILLING_RETURN
    assert (order.magic, order.comment) == (command.source_ticket, command.comment)
    assert order.state == MT5.ORDER_STATE_PLACED
    assert abs(order.time_setup_msc / 1000 - venue.server_time()) < SAME_CLOCK_SLACK_SECONDS, (
        "time_setup_msc is not on the clock of the tick times")
    assert venue.adapter.find_copy(command.source_ticket) == order.ticket


@pytest.mark.parametrize("type_time", list(EXPIRATION_NAMES), ids=list(EXPIRATION_NAMES.values()))
def test_each_expiration_mode_is_placed_and_read_back(venue: Venue, type_time: int):
    venue.require_expiration(type_time)
    now = venue.server_time()
    expiration = {
        MT5.ORDER_TIME_SPECIFIED: (now // 3600 + 3 * 24) * 3600,  # a whole hour, three days ahead
        MT5.ORDER_TIME_SPECIFIED_DAY: (now // DAY_SECONDS + 3) * DAY_SECONDS + DAY_SECONDS // 2,  # noon
    }.get(type_time, 0)
    _, order = venue.place(venue.command(type_time=type_time, expiration=expiration))
    assert order.type_time == type_time
    if type_time == MT5.ORDER_TIME_GTC:
        assert order.time_expiration == 0
    elif type_time == MT5.ORDER_TIME_SPECIFIED:
        assert order.time_expiration == expiration
    elif type_time == MT5.ORDER_TIME_SPECIFIED_DAY:
        assert order.time_expiration // DAY_SECONDS == expiration // DAY_SECONDS  # some time that day
    # DAY: the copier reads the day from time_setup_msc (checked above), not from time_expiration.


def test_a_copy_is_placed_found_by_its_tag_modified_and_removed(venue: Venue):
    order_type = MT5.ORDER_TYPE_BUY_LIMIT
    venue.require_type(order_type)
    command = venue.command(order_type=order_type)
    _, order = venue.place(command)
    assert venue.adapter.find_copy(command.source_ticket) == order.ticket

    # Entry price and SL/TP move together, in one MODIFY carrying the full desired state.
    moved = venue.levels(order_type, further=1)
    result = venue.adapter.execute(venue.modify(order, price=moved.price, sl=moved.sl, tp=moved.tp))
    assert result.status is CommandStatus.DONE and result.retcode in SUCCESS_RETCODES, result
    order = venue.eventually(lambda: (found := venue.pending(order.ticket)) and found.price_open != command.price
                             and found, "the modified price")
    assert_levels(venue, order, moved.price, 0.0, moved.sl, moved.tp)
    assert (order.volume, order.magic, order.comment, order.type) == (
        pytest.approx(command.volume), command.magic, command.comment, order_type)

    # SL and TP of 0 delete them.
    result = venue.adapter.execute(venue.modify(order, sl=0.0, tp=0.0))
    assert result.status is CommandStatus.DONE, result
    order = venue.eventually(lambda: (found := venue.pending(order.ticket)) and found.sl == 0.0 and found,
                             "SL and TP removed")
    assert order.tp == 0.0 and order.price_open == same_price(venue, moved.price)

    # The expiration changes from GTC to a specified time.
    if venue.spec.expiration_mode & (1 << MT5.ORDER_TIME_SPECIFIED):
        expiration = (venue.server_time() // 3600 + 48) * 3600
        result = venue.adapter.execute(
            venue.modify(order, type_time=MT5.ORDER_TIME_SPECIFIED, expiration=expiration))
        assert result.status is CommandStatus.DONE, result
        order = venue.eventually(lambda: (found := venue.pending(order.ticket)) and found.time_expiration and found,
                                 "the new expiration")
        assert (order.type_time, order.time_expiration) == (MT5.ORDER_TIME_SPECIFIED, expiration)

    result = venue.adapter.execute(venue.remove(order.ticket, command.source_ticket))
    assert result.status is CommandStatus.DONE and result.retcode in SUCCESS_RETCODES, result
    venue.gone(order.ticket)
    assert venue.adapter.find_copy(command.source_ticket) is None


@pytest.mark.parametrize("order_type", sorted(STOP_LIMIT_TYPES), ids=[TYPE_NAMES[t] for t in sorted(STOP_LIMIT_TYPES)])
def test_a_stop_limit_copy_moves_its_trigger_its_limit_price_and_its_stops(venue: Venue, order_type: int):
    venue.require_type(order_type)
    _, order = venue.place(venue.command(order_type=order_type))
    moved = venue.levels(order_type, further=1)
    result = venue.adapter.execute(venue.modify(order, price=moved.price, stoplimit=moved.stoplimit, sl=moved.sl,
                                                tp=moved.tp))
    assert result.status is CommandStatus.DONE, result
    order = venue.eventually(lambda: (found := venue.pending(order.ticket)) and found.price_open != order.price_open
                             and found, "the modified stop-limit order")
    assert_levels(venue, order, moved.price, moved.stoplimit, moved.sl, moved.tp)
    assert order.type == order_type


def test_a_second_place_of_the_same_copy_answers_already_there_and_sends_nothing(venue: Venue):
    command = venue.command()
    first, order = venue.place(command)
    venue.module.forget()
    again = venue.adapter.execute(venue.command(source_ticket=command.source_ticket, command_id="again"))
    assert again.status is CommandStatus.DONE and again.already_existed and again.ticket == first.ticket
    # The tag decides, not the values: a copy of the same source order at other prices is the same copy.
    elsewhere = venue.levels(MT5.ORDER_TYPE_BUY_LIMIT, further=1)
    moved = venue.adapter.execute(venue.command(source_ticket=command.source_ticket, command_id="moved",
                                                levels=elsewhere))
    assert moved.status is CommandStatus.DONE and moved.already_existed and moved.ticket == first.ticket
    assert venue.module.sent == [] and venue.module.checked == []
    assert orders_with_magic(venue, command.source_ticket) == [order]


def test_an_order_with_the_copy_magic_but_without_the_tag_is_not_taken_for_the_copy(venue: Venue):
    source = venue.next_source_ticket()
    at = venue.levels(MT5.ORDER_TYPE_BUY_LIMIT)
    # Another expert advisor's order that happens to use the source ticket as its magic number.
    foreign = venue.module.inner.order_send({
        "action": MT5.TRADE_ACTION_PENDING, "symbol": venue.symbol, "volume": venue.smallest_volume,
        "type": MT5.ORDER_TYPE_BUY_LIMIT, "price": at.price, "stoplimit": 0.0, "sl": at.sl, "tp": at.tp,
        "type_time": MT5.ORDER_TIME_GTC, "expiration": 0, "type_filling": MT5.ORDER_FILLING_RETURN,
        "magic": source, "comment": "grid EA",
    })
    assert foreign is not None and foreign.retcode in SUCCESS_RETCODES, (foreign, venue.module.inner.last_error())
    venue.listed(foreign.order)
    assert venue.adapter.find_copy(source) is None
    result, copy = venue.place(venue.command(source_ticket=source))
    assert not result.already_existed and copy.ticket != foreign.order
    assert sorted(order.ticket for order in orders_with_magic(venue, source)) == sorted([foreign.order, copy.ticket])
    assert venue.adapter.find_copy(source) == copy.ticket


def test_a_place_without_the_copier_tag_or_magic_is_refused_and_sends_nothing(venue: Venue):
    untagged = venue.command(comment="whatever")
    source = venue.next_source_ticket()
    wrong_magic = venue.command(source_ticket=source, magic=source + 1)
    for command in (untagged, wrong_magic):
        result = venue.adapter.execute(command)
        assert result.status is CommandStatus.REFUSED, result
        assert orders_with_magic(venue, command.magic) == []
    assert venue.module.sent == [] and venue.module.checked == []


def test_replace_removes_the_old_copy_and_places_the_new_one(venue: Venue):
    # What the copier does when a source stop-limit activates, or the volume changes: type and volume cannot
    # be modified, so the copy is replaced, in one command.
    venue.require_type(MT5.ORDER_TYPE_BUY_STOP)
    venue.require_type(MT5.ORDER_TYPE_BUY_LIMIT)
    _, old = venue.place(venue.command(order_type=MT5.ORDER_TYPE_BUY_STOP))
    replacement = venue.command(CommandKind.REPLACE, MT5.ORDER_TYPE_BUY_LIMIT, source_ticket=old.magic,
                                ticket=old.ticket)
    result = venue.adapter.execute(replacement)
    assert result.status is CommandStatus.DONE and not result.already_existed, result
    assert result.ticket not in (0, old.ticket)
    venue.gone(old.ticket)
    new = venue.listed(result.ticket)
    assert (new.type, new.magic, new.comment) == (MT5.ORDER_TYPE_BUY_LIMIT, old.magic, old.comment)
    assert_levels(venue, new, replacement.price, 0.0, replacement.sl, replacement.tp)
    assert venue.adapter.find_copy(old.magic) == new.ticket
    closed = venue.eventually(lambda: venue.adapter.closed_order(old.ticket), "the old copy in history")
    assert closed.state == MT5.ORDER_STATE_CANCELED


def test_a_modify_to_the_values_already_there_counts_as_done(venue: Venue):
    _, order = venue.place(venue.command())
    result = venue.adapter.execute(venue.modify(order))
    assert result.status is CommandStatus.DONE, result
    assert result.retcode in (MT5.TRADE_RETCODE_NO_CHANGES, *SUCCESS_RETCODES)
    assert venue.pending(order.ticket) == order


def test_removing_a_copy_that_is_already_gone_counts_as_done(venue: Venue):
    _, order = venue.place(venue.command())
    assert venue.adapter.execute(venue.remove(order.ticket, order.magic)).status is CommandStatus.DONE
    venue.gone(order.ticket)
    again = venue.adapter.execute(venue.remove(order.ticket, order.magic))
    assert again.status is CommandStatus.DONE, f"a second REMOVE of #{order.ticket} answered {again}"


def _invalid_volumes(venue: Venue) -> dict[str, float]:
    spec = venue.spec
    return {"below-minimum": spec.volume_min / 2, "off-step": spec.volume_min + spec.volume_step / 2}


@pytest.mark.parametrize("case", ["below-minimum", "off-step"])
def test_order_check_refuses_an_invalid_volume_and_nothing_is_sent(venue: Venue, case: str):
    command = venue.command(volume=_invalid_volumes(venue)[case])
    venue.module.forget()
    result = venue.adapter.execute(command)
    venue.expect_rejected(result, MT5.TRADE_RETCODE_INVALID_VOLUME)
    assert result.comment.startswith("order_check")
    assert len(venue.module.checked) == 1 and venue.module.sent == []
    assert orders_with_magic(venue, command.magic) == []


def test_order_check_refuses_stops_on_the_wrong_side_and_nothing_is_sent(venue: Venue):
    at = venue.levels(MT5.ORDER_TYPE_BUY_LIMIT)
    command = venue.command(sl=at.tp, tp=at.sl)  # a buy's stop loss above its entry, take profit below
    venue.module.forget()
    result = venue.adapter.execute(command)
    venue.expect_rejected(result, MT5.TRADE_RETCODE_INVALID_STOPS)
    assert len(venue.module.checked) == 1 and venue.module.sent == []
    assert orders_with_magic(venue, command.magic) == []
