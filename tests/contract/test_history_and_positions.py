"""Contract: what became of an order that left the pending list (history and its state), and positions.

Fills and expiries need the market moved or the clock advanced: those run on the simulator only (the suite
never lets an order fill or expire on a real account)."""

from __future__ import annotations

from protocol import CommandStatus
from tests.contract.venue import MT5, Venue

UNKNOWN_TICKET = 999_999_999_999_999


def test_a_removed_copy_is_found_in_history_as_cancelled(venue: Venue):
    command = venue.command()
    _, order = venue.place(command)
    assert venue.adapter.execute(venue.remove(order.ticket, order.magic)).status is CommandStatus.DONE
    venue.gone(order.ticket)
    closed = venue.eventually(lambda: venue.adapter.closed_order(order.ticket), f"#{order.ticket} in history")
    assert (closed.ticket, closed.symbol, closed.type, closed.state) == (
        order.ticket, venue.symbol, order.type, MT5.ORDER_STATE_CANCELED)
    assert (closed.magic, closed.comment) == (command.magic, command.comment)
    assert closed.time_done_msc >= order.time_setup_msc
    assert closed.position_id == 0


def test_history_has_no_record_of_an_unknown_ticket(venue: Venue):
    assert venue.adapter.closed_order(UNKNOWN_TICKET) is None


def test_positions_are_listed_with_well_formed_facts(venue: Venue):
    positions = venue.adapter.positions()
    assert isinstance(positions, tuple)
    for position in positions:
        assert position.ticket > 0 and position.identifier > 0 and position.symbol
        assert position.type in (MT5.POSITION_TYPE_BUY, MT5.POSITION_TYPE_SELL) and position.volume > 0


def test_a_filled_copy_is_a_position_named_by_its_order_and_is_never_placed_again(venue: Venue):
    market = venue.require_market()
    command = venue.command(order_type=MT5.ORDER_TYPE_BUY_LIMIT)
    placed, order = venue.place(command)
    market.cross(order, venue.spec.tick_size, venue.spec.digits)
    venue.gone(order.ticket)

    [position] = [position for position in venue.adapter.positions() if position.magic == command.magic]
    assert (position.identifier, position.symbol, position.type, position.comment) == (
        order.ticket, venue.symbol, MT5.POSITION_TYPE_BUY, command.comment)
    assert position.volume == order.volume
    closed = venue.adapter.closed_order(order.ticket)
    assert closed is not None and closed.state == MT5.ORDER_STATE_FILLED and closed.position_id == order.ticket

    assert venue.adapter.find_copy(command.source_ticket) == order.ticket
    venue.module.forget()
    again = venue.adapter.execute(venue.command(source_ticket=command.source_ticket, command_id="again"))
    assert again.status is CommandStatus.DONE and again.already_existed and again.ticket == placed.ticket
    assert venue.module.sent == [] and venue.adapter.pending_orders() == ()


def test_an_expired_copy_is_found_in_history_as_expired(venue: Venue):
    market = venue.require_market()
    venue.require_expiration(MT5.ORDER_TIME_SPECIFIED)
    expiration = venue.server_time() + 3600
    _, order = venue.place(venue.command(type_time=MT5.ORDER_TIME_SPECIFIED, expiration=expiration))
    market.pass_time(2 * 3600)
    venue.gone(order.ticket)
    closed = venue.adapter.closed_order(order.ticket)
    assert closed is not None and closed.state == MT5.ORDER_STATE_EXPIRED
    assert venue.adapter.find_copy(order.magic) is None
