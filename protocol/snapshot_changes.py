"""A snapshot's lists as their changes to the last snapshot sent (``SnapshotChanges``): its pending orders since
protocol 1.4, the records of the orders that left it (``closed``) since 1.5.

A target of 1000 copies with one of them edited used to send all 1000 orders in its snapshot: the coordinator
decoded them (1-1.5 ms) and compared them with the last ones (~1 ms), 50 times over after one source edit at 50
targets. Sent as its changes, the snapshot carries the orders added or edited and the tickets that left; the
coordinator rebuilds the list from the one it holds, with the very objects of that list for every order that did
not change, so the comparisons that follow stop at the first look (the same object). The same goes for the
records of the orders that left, which a worker repeats for ten minutes (up to 500 of them: a busy account's
snapshots carried all of them, ~0.4 ms to encode and decode each time).

Both sides use the one rule here, and the worker sends changes only when that rule gives back exactly its list
(the same entries, in the same places): the lists the coordinator holds are then always the ones a full snapshot
would have brought.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, count
from operator import ne
from typing import Any, Protocol, TypeVar

import msgspec

from protocol.messages import ClosedOrder, PendingOrder, Snapshot, SnapshotChanges


class _Ticketed(Protocol):
    @property
    def ticket(self) -> int: ...


_E = TypeVar("_E", bound=_Ticketed)  # an entry of a list a snapshot carries: a pending order, a closed order's record


class ChangesDoNotApply(ValueError):
    """The changes do not fit the list they are applied to (another base, or a malformed message)."""


def apply_changes(base: Sequence[_E], changed: Sequence[_E], removed: Sequence[int]) -> tuple[_E, ...]:
    """``base`` with the tickets in ``removed`` taken out, each entry of ``changed`` in the place of the entry
    with its ticket, and the entries of ``changed`` new to ``base`` after the rest, in their order. Raises
    ChangesDoNotApply when a removed ticket is not in ``base``, or a ticket is named twice."""
    by_ticket = {entry.ticket: entry for entry in changed}
    gone = set(removed)
    if len(by_ticket) != len(changed) or len(gone) != len(removed) or not gone.isdisjoint(by_ticket):
        raise ChangesDoNotApply("a ticket is named twice")
    if gone:
        kept = [by_ticket.pop(entry.ticket, entry) for entry in base if entry.ticket not in gone]
        if len(kept) != len(base) - len(gone):
            raise ChangesDoNotApply("a removed ticket is not in the base")
    else:  # the usual case (edits, placements): one pass in a comprehension
        kept = [by_ticket.pop(entry.ticket, entry) for entry in base]
    kept += by_ticket.values()  # the new ones, in the order given (dicts keep insertion order)
    return tuple(kept)


def changes_since(base: Sequence[_E], after: Sequence[_E]) -> tuple[tuple[_E, ...], tuple[int, ...]] | None:
    """(the entries of ``after`` added or edited since ``base``, the tickets of ``base`` gone from it), or None
    when applying them to ``base`` would not give ``after`` exactly (a terminal that listed its orders in another
    order): then the list goes whole."""
    base_tickets = {entry.ticket for entry in base}
    if len(base_tickets) == len(base):  # a terminal's tickets are unique: the quick ways below rest on it
        quick = _quick_changes(base, base_tickets, after)
        if quick is not None:
            return quick
    before = {entry.ticket: entry for entry in base}
    changed = tuple(entry for entry in after if (was := before.get(entry.ticket)) is not entry and was != entry)
    tickets = {entry.ticket for entry in after}
    if len(tickets) != len(after):
        return None  # a ticket listed twice: only a full list says that as it is
    removed = tuple(ticket for ticket in before if ticket not in tickets)
    try:
        rebuilt = apply_changes(base, changed, removed)
    except ChangesDoNotApply:
        return None
    return (changed, removed) if rebuilt == tuple(after) else None


def _quick_changes(base: Sequence[_E], base_tickets: set[int], after: Sequence[_E]
                   ) -> tuple[tuple[_E, ...], tuple[int, ...]] | None:
    """``changes_since`` for the usual shapes, found at C speed place by place (as coordinator/domain/
    order_changes), the unchanged entries being the very objects converted before; None for any other shape."""
    if len(base) == len(after):
        # An edit (an order's levels, a record's state found in the history): the same tickets in the same places.
        places = list(compress(count(), map(ne, after, base)))
        if all(after[place].ticket == base[place].ticket for place in places):
            return tuple(after[place] for place in places), ()
        return None
    # The oldest entries dropped (records forgotten) and new ones after the rest (an order placed, a record of one
    # that left): ``after`` starts with ``base`` from its first entry still there.
    first = 0
    if after and base and after[0].ticket != base[0].ticket:
        first = next((place for place, entry in enumerate(base) if entry.ticket == after[0].ticket), len(base))
    kept = len(base) - first
    if len(after) < kept or next(compress(count(), map(ne, after, base[first:])), kept) != kept:
        return None
    added = tuple(after[kept:])
    tickets = {entry.ticket for entry in added}
    if len(tickets) != len(added) or not base_tickets.isdisjoint(tickets):
        return None
    return added, tuple(entry.ticket for entry in base[:first])


def as_changes(snapshot: Snapshot, base_seq: int, changed: Sequence[PendingOrder], removed: Sequence[int],
               closed: tuple[Sequence[ClosedOrder], Sequence[int]] | None = None) -> SnapshotChanges:
    """``snapshot`` sent as the changes (``changed``, ``removed``) of its orders to snapshot ``base_seq``, and
    ``closed``: the changes of its closed orders' records (protocol 1.5), or None to send those whole."""
    fields: dict[str, Any] = msgspec.structs.asdict(snapshot)
    fields.update(orders=tuple(changed), removed=tuple(removed), base_seq=base_seq)
    if closed is not None:
        fields.update(closed=tuple(closed[0]), closed_removed=tuple(closed[1]), closed_as_changes=True)
    return SnapshotChanges(**fields)


def as_snapshot(changes: SnapshotChanges, orders: tuple[PendingOrder, ...],
                closed: tuple[ClosedOrder, ...]) -> Snapshot:
    """The whole snapshot ``changes`` stands for, ``orders`` and ``closed`` being its rebuilt lists."""
    fields: dict[str, Any] = msgspec.structs.asdict(changes)
    del fields["base_seq"], fields["removed"], fields["closed_removed"], fields["closed_as_changes"]
    fields.update(orders=orders, closed=closed)
    return Snapshot(**fields)


def rebuilt_lists(base: Snapshot, changes: SnapshotChanges) -> tuple[tuple[PendingOrder, ...], tuple[ClosedOrder, ...]]:
    """The orders and closed orders' records ``changes`` stand for, rebuilt on ``base`` (the snapshot it names as
    its base). Raises ChangesDoNotApply when they do not fit it."""
    orders = apply_changes(base.orders, changes.orders, changes.removed)
    if not changes.closed_as_changes:
        return orders, changes.closed  # a 1.4 worker's, or a list that did not rebuild exactly: whole
    return orders, apply_changes(base.closed, changes.closed, changes.closed_removed)


__all__ = ["ChangesDoNotApply", "apply_changes", "as_changes", "as_snapshot", "changes_since", "rebuilt_lists"]
