"""Snapshots sent as their changes (protocol 1.4; their closed orders' records too since 1.5): the one rule both
sides use (protocol/snapshot_changes.py), and the coordinator's side: it rebuilds exactly the whole snapshot, shares
the unchanged entries' objects, and asks for a whole snapshot whenever the changes are not to the snapshot it
holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ClosedOrder, ErrorMessage, PendingOrder, Snapshot, SnapshotChanges
from protocol.snapshot_changes import (
    ChangesDoNotApply,
    apply_changes,
    as_changes,
    as_snapshot,
    changes_since,
    rebuilt_lists,
)
from tests.enginekit import TARGET, EngineRig, order


def orders(*tickets: int, price: float = 1.08) -> tuple[PendingOrder, ...]:
    return tuple(order(ticket, price_open=price) for ticket in tickets)


def test_changes_give_back_the_list_with_the_unchanged_orders_shared():
    base = orders(1, 2, 3, 4)
    edited = msgspec.structs.replace(base[1], price_open=1.07)
    after = (base[0], edited, base[3], order(5))
    changes = changes_since(base, after)
    assert changes == ((edited, order(5)), (3,))
    rebuilt = apply_changes(base, *changes)
    assert rebuilt == after
    assert rebuilt[0] is base[0] and rebuilt[2] is base[3]  # the very objects: later comparisons stop at once


def test_an_equal_order_read_again_is_no_change():
    base = orders(1, 2)
    assert changes_since(base, orders(1, 2)) == ((), ())


def test_a_list_in_another_order_goes_whole():
    base = orders(1, 2, 3)
    assert changes_since(base, (base[2], base[0], base[1])) is None
    assert changes_since(base, (base[0], base[0])) is None  # a ticket twice: only the whole list says so


@pytest.mark.parametrize(("changed", "removed", "why"), [
    (orders(9), (7,), "a removed ticket is not in the base"),
    (orders(2, 2), (), "a ticket is named twice"),
    (orders(2), (2,), "a ticket is named twice"),
    ((), (1, 1), "a ticket is named twice"),
])
def test_changes_that_do_not_fit_their_base_are_refused(changed, removed, why):
    with pytest.raises(ChangesDoNotApply, match=why):
        apply_changes(orders(1, 2, 3), changed, removed)


def records(*tickets: int, state: int = 1) -> tuple[ClosedOrder, ...]:
    return tuple(ClosedOrder(ticket=ticket, symbol="EURUSD", type=2, state=state, magic=0, comment="")
                 for ticket in tickets)


def test_changes_carry_every_field_of_a_snapshot_and_give_it_back():
    assert set(SnapshotChanges.__struct_fields__) == {*Snapshot.__struct_fields__, "base_seq", "removed",
                                                      "closed_removed", "closed_as_changes"}
    whole = Snapshot(boot_id="b", seq=8, taken_at_ms=5, login=2, connected=True, trade_allowed=False,
                     orders=orders(1, 2), closed=records(5, 6), server_time=9, balance=1.5, equity=2.5,
                     margin_free=0.5, server="S")
    changes = as_changes(whole, 7, orders(2), (3,))
    assert (changes.base_seq, changes.orders, changes.removed, changes.server) == (7, orders(2), (3,), "S")
    assert (changes.closed, changes.closed_as_changes) == (records(5, 6), False)  # the records whole (1.4)
    assert as_snapshot(changes, whole.orders, whole.closed) == whole
    with_records = as_changes(whole, 7, orders(2), (3,), closed=(records(6), (4,)))
    assert (with_records.closed, with_records.closed_removed, with_records.closed_as_changes) == \
        (records(6), (4,), True)


def test_the_closed_orders_records_are_rebuilt_from_their_changes_or_taken_whole():
    base = Snapshot(boot_id="b", seq=1, taken_at_ms=1, login=2, connected=True, trade_allowed=True,
                    orders=orders(1), closed=records(10, 11, 12))
    whole = Snapshot(boot_id="b", seq=2, taken_at_ms=1, login=2, connected=True, trade_allowed=True,
                     orders=orders(1), closed=records(11, 12, 13))
    as_sent = as_changes(whole, 1, (), (), closed=changes_since(base.closed, whole.closed))
    assert (as_sent.closed, as_sent.closed_removed) == (records(13), (10,))  # the oldest forgotten, one new
    rebuilt_orders, rebuilt_closed = rebuilt_lists(base, as_sent)
    assert rebuilt_orders == base.orders and rebuilt_closed == whole.closed
    assert rebuilt_closed[0] is base.closed[1]  # shared: the coordinator's merge compares the very objects
    assert rebuilt_lists(base, as_changes(whole, 1, (), ()))[1] == whole.closed  # a 1.4 worker's: whole
    with pytest.raises(ChangesDoNotApply):
        rebuilt_lists(base, as_changes(whole, 1, (), (), closed=((), (99,))))


def test_the_oldest_entries_dropped_and_new_ones_after_are_found_without_a_map_of_the_list():
    base = records(*range(1, 501))
    found = records(3, state=2)
    after = base[2:] + records(501, 502)
    assert changes_since(base, after) == (records(501, 502), (1, 2))
    everything_forgotten = records(600, 601)
    assert changes_since(base, everything_forgotten) == (everything_forgotten, tuple(range(1, 501)))
    edited = (found[0], *base[3:])  # a record's state found in the history as older ones go: the slower way
    assert changes_since(base, edited) == (found, (1, 2))


TICKET_LISTS = st.lists(st.integers(1, 30), unique=True, max_size=12)


@given(TICKET_LISTS, st.integers(0, 12), st.lists(st.integers(31, 40), unique=True, max_size=4))
def test_the_oldest_dropped_and_new_ones_after_always_go_as_changes(before, dropped, appended):
    base = orders(*before)
    new = base[dropped:] + orders(*appended)
    changes = changes_since(base, new)
    assert changes is not None
    assert changes[1] == tuple(before[:dropped]) and apply_changes(base, *changes) == new


@given(TICKET_LISTS, TICKET_LISTS, st.sets(st.integers(1, 30)))
def test_whenever_changes_are_given_they_rebuild_the_list_exactly(before, after, edited):
    base = orders(*before)
    new = tuple(order(ticket, price_open=1.07) if ticket in edited else order(ticket) for ticket in after)
    changes = changes_since(base, new)
    kept = [ticket for ticket in before if ticket in set(after)]
    if [ticket for ticket in after if ticket in set(before)] == kept:  # the survivors in their places, new at the end
        appended = after[len(kept):]
        if after[:len(kept)] == kept and set(appended).isdisjoint(before):
            assert changes is not None
    if changes is not None:
        assert apply_changes(base, *changes) == new


# ---- the coordinator ----------------------------------------------------------------------------


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[EngineRig]:
    engine_rig = EngineRig(tmp_path / "state")
    engine_rig.start()
    yield engine_rig
    engine_rig.close()


def send_changes(rig: EngineRig, base_seq: int, changed: tuple[PendingOrder, ...], removed: tuple[int, ...] = (),
                 boot: str = "b1", closed: tuple[tuple[ClosedOrder, ...], tuple[int, ...]] | None = None) -> int:
    """The target's next snapshot as its changes to ``base_seq``; ``closed``: its closed orders' records as their
    changes too (1.5), or None for none at all, whole."""
    rig.seq[TARGET] += 1
    records, records_removed = closed or ((), ())
    rig.engine.on_message(TARGET, SnapshotChanges(
        boot_id=boot, seq=rig.seq[TARGET], base_seq=base_seq, taken_at_ms=1, login=rig.logins[TARGET],
        connected=True, trade_allowed=True, orders=changed, removed=removed, balance=1000.0, equity=1000.0,
        closed=records, closed_removed=records_removed, closed_as_changes=closed is not None))
    return rig.seq[TARGET]


def held(rig: EngineRig):
    snapshot = rig.engine.views[TARGET].snapshot
    assert snapshot is not None
    return snapshot


def asked_for_a_whole_snapshot(rig: EngineRig) -> list[ErrorMessage]:
    return [message for name, message in rig.sent
            if name == TARGET and isinstance(message, ErrorMessage) and message.code == "snapshot-required"]


def test_the_coordinator_rebuilds_the_whole_snapshot_from_its_changes(rig):
    first = orders(101, 102, 103)
    base_seq = rig.snapshot(TARGET, first)
    edited = msgspec.structs.replace(first[0], price_open=1.05)
    seq = send_changes(rig, base_seq, (edited, order(104)), (102,))
    snapshot = held(rig)
    assert snapshot.seq == seq
    assert snapshot.orders == (edited, first[2], order(104))
    assert snapshot.orders[1] is first[2]
    assert (snapshot.balance, snapshot.connected) == (1000.0, True)
    assert not asked_for_a_whole_snapshot(rig)


def test_the_coordinator_rebuilds_the_closed_orders_records_and_learns_the_fates_they_bring(rig):
    copies = orders(101, 102, 103)
    base_seq = rig.snapshot(TARGET, copies, closed=records(90, 91, state=2))
    filled = records(102, state=4)  # ORDER_STATE_FILLED
    send_changes(rig, base_seq, (), (102,), closed=(filled, (90,)))
    snapshot = held(rig)
    assert snapshot.closed == records(91, state=2) + filled and not asked_for_a_whole_snapshot(rig)
    assert rig.engine.views[TARGET].closed[102] == filled[0]
    send_changes(rig, snapshot.seq, (), (), closed=((), (77,)))  # a record the held snapshot lacks
    assert held(rig) is snapshot and "not in the base" in asked_for_a_whole_snapshot(rig)[0].message


def test_changes_to_a_snapshot_not_held_here_are_not_applied_and_a_whole_one_is_asked_for(rig):
    base_seq = rig.snapshot(TARGET, orders(101, 102))
    send_changes(rig, base_seq + 5, orders(103))  # a snapshot lost on the way
    assert held(rig).seq == base_seq and [o.ticket for o in held(rig).orders] == [101, 102]
    assert "to snapshot" in asked_for_a_whole_snapshot(rig)[0].message
    send_changes(rig, rig.seq[TARGET], (), (999,))  # malformed: a ticket the held snapshot lacks
    assert held(rig).seq == base_seq
    assert len(asked_for_a_whole_snapshot(rig)) == 2
    again = rig.snapshot(TARGET, orders(101, 102, 103))  # the whole snapshot that follows applies
    assert held(rig).seq == again


def test_changes_from_another_boot_ask_for_a_hello_and_old_changes_are_ignored(rig):
    base_seq = rig.snapshot(TARGET, orders(101))
    send_changes(rig, base_seq, orders(102), boot="other")
    assert [m.code for n, m in rig.sent if n == TARGET and isinstance(m, ErrorMessage)] == ["hello-required"]
    newer = rig.snapshot(TARGET, orders(101, 103))
    rig.engine.on_message(TARGET, SnapshotChanges(
        boot_id="b1", seq=newer - 1, base_seq=newer - 2, taken_at_ms=1, login=rig.logins[TARGET], connected=True,
        trade_allowed=True, orders=orders(104)))
    assert held(rig).seq == newer and not asked_for_a_whole_snapshot(rig)


@given(st.lists(st.integers(1, 8), max_size=8), st.lists(st.integers(1, 8), max_size=10), st.sets(st.integers(0, 9)))
def test_even_lists_with_a_ticket_twice_are_rebuilt_exactly_or_sent_whole(before, after, edited_places):
    base = orders(*before)
    new = tuple(order(ticket, price_open=1.07) if place in edited_places else
                (base[place] if place < len(base) and base[place].ticket == ticket else order(ticket))
                for place, ticket in enumerate(after))
    changes = changes_since(base, new)
    if changes is not None:
        assert apply_changes(base, *changes) == new
