"""coordinator/domain/order_changes.py: what changed between two order lists, place by place, and what they share
at both ends, against the plain Python reading of each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.order_changes import common_ends, order_changes
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


@given(_lists, _lists)
def test_the_common_ends_read_as_the_two_loops(before: tuple[PendingOrder, ...], after: tuple[PendingOrder, ...]):
    shorter = min(len(before), len(after))
    head = 0
    while head < shorter and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < shorter - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    assert common_ends(before, after) == (head, tail)


def test_an_edit_in_the_middle_leaves_both_ends_common():
    before = tuple(_order(ticket) for ticket in range(10))
    after = (*before[:4], _order(4, 1.2), *before[5:])
    assert common_ends(before, after) == (4, 5)
    assert common_ends(before, before) == (10, 0)  # equal lists: all of it is the head
    assert common_ends(before, (*before, _order(10))) == (10, 0)  # appended: the head, nothing at the end
