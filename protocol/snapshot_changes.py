"""A snapshot's orders as their changes to the last snapshot sent (protocol 1.4, ``SnapshotChanges``).

A target of 1000 copies with one of them edited used to send all 1000 orders in its snapshot: the coordinator
decoded them (1-1.5 ms) and compared them with the last ones (~1 ms), 50 times over after one source edit at 50
targets. Sent as its changes, the snapshot carries the orders added or edited and the tickets that left; the
coordinator rebuilds the list from the one it holds, with the very objects of that list for every order that did
not change, so the comparisons that follow stop at the first look (the same object).

Both sides use the one rule here, and the worker sends changes only when that rule gives back exactly its list
(the same orders, in the same places): the list the coordinator holds is then always the one a full snapshot
would have brought.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, count
from operator import ne
from typing import Any

import msgspec

from protocol.messages import PendingOrder, Snapshot, SnapshotChanges


class ChangesDoNotApply(ValueError):
    """The changes do not fit the list they are applied to (another base, or a malformed message)."""


def apply_order_changes(base: Sequence[PendingOrder], changed: Sequence[PendingOrder],
                        removed: Sequence[int]) -> tuple[PendingOrder, ...]:
    """``base`` with the tickets in ``removed`` taken out, each order of ``changed`` in the place of the order
    with its ticket, and the orders of ``changed`` new to ``base`` after the rest, in their order. Raises
    ChangesDoNotApply when a removed ticket is not in ``base``, or a ticket is named twice."""
    by_ticket = {order.ticket: order for order in changed}
    gone = set(removed)
    if len(by_ticket) != len(changed) or len(gone) != len(removed) or not gone.isdisjoint(by_ticket):
        raise ChangesDoNotApply("a ticket is named twice")
    if gone:
        kept = [by_ticket.pop(order.ticket, order) for order in base if order.ticket not in gone]
        if len(kept) != len(base) - len(gone):
            raise ChangesDoNotApply("a removed ticket is not in the base")
    else:  # the usual case (edits, placements): one pass in a comprehension
        kept = [by_ticket.pop(order.ticket, order) for order in base]
    kept += by_ticket.values()  # the new ones, in the order given (dicts keep insertion order)
    return tuple(kept)


def order_changes_since(base: Sequence[PendingOrder], orders: Sequence[PendingOrder]
                        ) -> tuple[tuple[PendingOrder, ...], tuple[int, ...]] | None:
    """(the orders of ``orders`` added or edited since ``base``, the tickets of ``base`` gone from it), or None
    when applying them to ``base`` would not give ``orders`` exactly (a terminal that listed its orders in another
    order): then the snapshot goes whole."""
    base_tickets = {order.ticket for order in base}
    if len(base_tickets) == len(base):  # a terminal's tickets are unique: the quick ways below rest on it
        if len(base) == len(orders):
            # The usual case, an edit: the same tickets in the same places, the unchanged orders the very objects
            # the adapter converted before. Found at C speed, place by place (as coordinator/domain/order_changes).
            places = list(compress(count(), map(ne, orders, base)))
            if all(orders[place].ticket == base[place].ticket for place in places):
                return tuple(orders[place] for place in places), ()
        elif len(orders) > len(base) and next(compress(count(), map(ne, orders, base)), len(base)) == len(base):
            # A placement: the same list with the new orders after it.
            added = tuple(orders[len(base):])
            tickets = {order.ticket for order in added}
            if len(tickets) == len(added) and base_tickets.isdisjoint(tickets):
                return added, ()
    before = {order.ticket: order for order in base}
    changed = tuple(order for order in orders
                    if (was := before.get(order.ticket)) is not order and was != order)
    tickets = {order.ticket for order in orders}
    if len(tickets) != len(orders):
        return None  # a ticket listed twice: only a full list says that as it is
    removed = tuple(ticket for ticket in before if ticket not in tickets)
    try:
        rebuilt = apply_order_changes(base, changed, removed)
    except ChangesDoNotApply:
        return None
    return (changed, removed) if rebuilt == tuple(orders) else None


def as_changes(snapshot: Snapshot, base_seq: int, changed: Sequence[PendingOrder],
               removed: Sequence[int]) -> SnapshotChanges:
    """``snapshot`` sent as the changes (``changed``, ``removed``) of its orders to snapshot ``base_seq``."""
    fields: dict[str, Any] = msgspec.structs.asdict(snapshot)
    fields.update(orders=tuple(changed), removed=tuple(removed), base_seq=base_seq)
    return SnapshotChanges(**fields)


def as_snapshot(changes: SnapshotChanges, orders: tuple[PendingOrder, ...]) -> Snapshot:
    """The whole snapshot ``changes`` stands for, ``orders`` being its rebuilt list."""
    fields: dict[str, Any] = msgspec.structs.asdict(changes)
    del fields["base_seq"], fields["removed"]
    fields["orders"] = orders
    return Snapshot(**fields)


__all__ = ["ChangesDoNotApply", "apply_order_changes", "as_changes", "as_snapshot", "order_changes_since"]
