"""coordinator/domain/order_changes.py: what changed between two order lists, place by place, against the plain
Python reading of it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.order_changes import order_changes
from protocol import PendingOrder


def _order(ticket: int, price: float = 1.1) -> PendingOrder:
    return PendingOrder(ticket=ticket, symbol="EURUSD", type=2, volume=0.1, price_open=price, price_stoplimit=0.0,
                        sl=0.0, tp=0.0, type_time=0, time_expiration=0, magic=0, comment="", time_setup_msc=ticket)


def test_an_edit_in_place_is_that_order_alone():
    before = (_order(1), _order(2), _order(3))
    after = (_order(1), _order(2, 1.2), _order(3))
    changes = order_changes(before, after)
    assert changes.changed == (after[1],)
    assert changes.in_place


def test_equal_lists_change_nothing():
    orders = tuple(_order(ticket) for ticket in range(5))
    changes = order_changes(orders, tuple(_order(ticket) for ticket in range(5)))
    assert changes.changed == () and changes.in_place


def test_an_addition_at_the_end_is_not_in_place():
    before = (_order(1), _order(2))
    changes = order_changes(before, (*before, _order(3)))
    assert changes.changed == (_order(3),)
    assert not changes.in_place


def test_a_removal_shifts_the_rest_into_changed_and_is_not_in_place():
    before = (_order(1), _order(2), _order(3))
    changes = order_changes(before, (_order(1), _order(3)))
    assert changes.changed == (_order(3),)  # at place 1 now, where #2 was
    assert not changes.in_place


def test_a_ticket_at_another_place_is_not_in_place():
    changes = order_changes((_order(1), _order(2)), (_order(2), _order(1)))
    assert set(changes.changed) == {_order(1), _order(2)}
    assert not changes.in_place


_lists = st.lists(st.tuples(st.integers(1, 6), st.sampled_from([1.1, 1.2])), max_size=6).map(
    lambda items: tuple(_order(ticket, price) for ticket, price in items))


@given(_lists, _lists)
def test_it_reads_as_the_place_by_place_loop(before: tuple[PendingOrder, ...], after: tuple[PendingOrder, ...]):
    changes = order_changes(before, after)
    expected = [order for order, old in zip(after, before, strict=False) if order != old] + list(after[len(before):])
    assert list(changes.changed) == expected
    same_tickets = len(before) == len(after) and all(a.ticket == b.ticket for a, b in zip(after, before, strict=True))
    assert changes.in_place == same_tickets
