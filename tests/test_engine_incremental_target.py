"""Incremental plans of a new TARGET snapshot (coordinator/runtime/engine.py ``_plan_changed``,
coordinator/domain/planner.py ``TargetIndex.updated`` and ``plan_target_incrementally``): when only the copier's
copies changed there (and the fates of those that left), just their source tickets are planned again; anything
else the planner reads of the snapshot makes the plan a full one. Each shortcut and each fallback, with the twin
of tests/test_engine_incremental.py asserting every time that the full engine sent and planned the same.
"""

from __future__ import annotations

import msgspec

from coordinator.domain.planner import TargetIndex
from protocol import ClosedOrder, PositionFacts
from protocol.tags import copy_tag
from tests.enginekit import SOURCE, TARGET, order
from tests.test_engine_incremental import Twin, _edit_first, _settled, _spy


def _sent(twin: Twin, name: str = TARGET) -> list[tuple[str, int]]:
    return [(command.kind.value, command.source_ticket) for command, _ in twin.unanswered[name]]


def _last_plan(twin: Twin):
    return twin.rigs[0].engine.reports[TARGET].last_plan


def test_each_copy_placed_is_followed_by_an_incremental_plan_of_its_snapshot(tmp_path, monkeypatch):
    """The live loop: a source order, its copy placed, the target's snapshot after the batch."""
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        for distance in (300, 400, 500):
            ticket = twin.books[SOURCE].place(3, distance_points=distance)
            twin.report(SOURCE)
            twin.reconcile()
            assert _sent(twin) == [("place", ticket)]
            twin.answer(TARGET, "done")
            twin.reconcile()
            assert ticket in _last_plan(twin).in_sync and twin.unanswered[TARGET] == []
        assert made == ["incremental"] * 6


def test_a_copy_edited_by_hand_is_put_back_by_an_incremental_plan(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        book = twin.books[TARGET]
        copy = book.orders[min(book.orders)]
        book.modify(copy.ticket, sl=round(copy.sl - 0.0004, 5))
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["incremental"] and _sent(twin) == [("modify", copy.magic)]


def test_a_copy_lost_without_a_record_asks_its_fate_and_the_next_plan_is_full(tmp_path, monkeypatch):
    """A copy that vanished: its link's fate is looked for in the history (asked for), never guessed; a plan that
    waits for facts is followed by a full one."""
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        book = twin.books[TARGET]
        lost = book.orders[max(book.orders)]
        book.lose(lost.ticket)
        twin.report(TARGET)
        twin.reconcile()  # the twin answers the history request: no record
        assert made == ["incremental"] and twin.unanswered[TARGET] == []
        assert _last_plan(twin).needed_history == {lost.ticket}
        made.clear()
        twin.report(TARGET)
        twin.reconcile()
        assert made[-1] == "full" and twin.unanswered[TARGET] == []  # never placed again while its fate is unknown


def test_a_fate_that_changed_since_the_last_plan_replans_the_source_ticket_of_its_link(tmp_path):
    """The fates the snapshots carry are followed through ``TerminalView.closed`` (a copy of it kept with each
    plan): a record added, changed or trimmed away re-plans the source ticket whose link names that copy."""
    with _settled(tmp_path, {TARGET: {}}) as twin:
        engine = twin.rigs[0].engine
        basis, view, links = engine._bases[TARGET], engine.views[TARGET], engine.state.links(TARGET)
        copy = twin.books[TARGET].orders[max(twin.books[TARGET].orders)]
        assert engine._fates_changed(view, basis, links) == set()
        record = ClosedOrder(ticket=copy.ticket, symbol=copy.symbol, type=copy.type, state=-1, magic=copy.magic,
                             comment=copy.comment)
        view.closed[copy.ticket] = record
        assert engine._fates_changed(view, basis, links) == {copy.magic}
        basis.closed[copy.ticket] = record
        assert engine._fates_changed(view, basis, links) == set()
        view.closed[copy.ticket] = msgspec.structs.replace(record, state=2)  # its state, from the history
        assert engine._fates_changed(view, basis, links) == {copy.magic}
        del view.closed[copy.ticket]  # trimmed away
        assert engine._fates_changed(view, basis, links) == {copy.magic}
        view.closed[12345] = msgspec.structs.replace(record, ticket=12345)  # no link names it
        basis.closed[12345] = msgspec.structs.replace(record, ticket=12345, state=2)
        del basis.closed[copy.ticket]
        assert engine._fates_changed(view, basis, links) == set()


def test_a_manual_order_makes_the_plan_full(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        manual = twin.books[TARGET].place(3, distance_points=600)  # magic 0, no tag
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["full"]
        made.clear()
        twin.books[TARGET].remove(manual)
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["full"]


def test_a_position_appearing_or_closing_makes_the_plan_full(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        book = twin.books[TARGET]
        book.positions[70_001] = PositionFacts(ticket=70_001, identifier=70_001, symbol="EURUSD", type=0, volume=0.1,
                                               magic=0, comment="")
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["full"]
        made.clear()
        book.fill(max(book.orders))  # a copy filled: it leaves the orders, a copy position appears
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["full"]


def test_a_new_balance_makes_the_plan_full_and_sizes_with_it(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {"volume_mode": "balance_ratio"}}) as twin:
        made = _spy(twin, monkeypatch)
        twin.books[TARGET].balance = 20_000.0
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["full"]
        made.clear()
        ticket = twin.books[SOURCE].place(3, distance_points=500)
        twin.report(SOURCE)
        twin.reconcile()
        [(command, _)] = twin.unanswered[TARGET]
        assert (command.source_ticket, command.volume) == (ticket, 0.2)


def test_equity_moving_is_planned_incrementally_unless_the_sizing_reads_it(tmp_path, monkeypatch):
    """Equity moves with every tick while positions are open: only equity_ratio sizing reads it."""
    with _settled(tmp_path, {TARGET: {}, "t2": {"volume_mode": "equity_ratio"}}) as twin:
        made = _spy(twin, monkeypatch)
        for name in (TARGET, "t2"):
            twin.books[name].equity = 9_500.0
            twin.report(name)
        twin.reconcile()
        assert made == ["incremental", "full"]  # t1, then t2
        made.clear()
        twin.books[SOURCE].equity = 5_000.0
        ticket = twin.books[SOURCE].place(3, distance_points=500)
        twin.report(SOURCE)
        twin.reconcile()
        assert made == ["incremental", "full"]
        assert [(c.source_ticket, c.volume) for c, _ in twin.unanswered["t2"]] == [(ticket, 0.19)]


def test_a_position_whose_current_price_alone_moved_is_planned_incrementally(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        book = twin.books[TARGET]
        book.fill(max(book.orders))  # a copy position, followed
        twin.report(TARGET)
        twin.reconcile()
        made = _spy(twin, monkeypatch)
        [(ticket, position)] = book.positions.items()
        book.positions[ticket] = msgspec.structs.replace(position, price_current=position.price_open + 0.001)
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["incremental"]
        made.clear()
        book.set_levels(ticket, sl=round(position.sl - 0.001, 5), tp=position.tp)  # moved by hand: put back
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["full"] and _sent(twin) == [("sltp", position.magic)]


def test_a_new_snapshot_telling_nothing_new_is_planned_incrementally(tmp_path, monkeypatch):
    """Its number, when it was taken and the server's clock then are not read by any plan."""
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["incremental"] and twin.unanswered[TARGET] == []


def test_a_second_copy_of_one_source_order_makes_the_plan_full_and_removes_it(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        source_ticket = min(twin.books[SOURCE].orders)
        twin.books[TARGET].place(2, distance_points=250, magic=source_ticket, comment=copy_tag(source_ticket))
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["full"] and _sent(twin) == [("remove", source_ticket)]


def test_a_copy_of_no_source_order_makes_the_plan_full(tmp_path, monkeypatch):
    """An orphan appearing on the target (its source order is not pending): for the orphan policy."""
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        twin.books[TARGET].place(2, distance_points=250, magic=99, comment=copy_tag(99))
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["refused", "full"]
        assert [copy.magic for copy in _last_plan(twin).orphans] == [99]


def test_a_copy_on_a_symbol_with_a_volume_limit_makes_the_plan_full(tmp_path, monkeypatch):
    """Every placement on such a symbol sums the target's orders there: a copy deleted by hand makes room for a
    source order that waited for it, which an incremental plan of the deleted copy's ticket alone would miss."""
    with Twin(tmp_path, {TARGET: {}}) as twin:
        twin.books[TARGET].symbols["EURUSD"]["volume_limit"] = 1.0
        source = twin.books[SOURCE]
        first = source.place(2, volume=0.5, distance_points=300)
        source.place(2, volume=0.5, distance_points=400)
        twin.report(SOURCE)
        twin.settle()
        waiting = source.place(2, volume=0.5, distance_points=500)
        twin.report(SOURCE)
        twin.reconcile()
        assert twin.unanswered[TARGET] == [] and "volume limit" in \
            next(skip.detail for skip in _last_plan(twin).skips if skip.source_ticket == waiting)
        made = _spy(twin, monkeypatch)
        book = twin.books[TARGET]
        book.remove(next(copy.ticket for copy in book.orders.values() if copy.magic == first))
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["refused", "full"] and _sent(twin) == [("place", waiting)]


def test_the_updated_index_is_the_index_of_the_new_orders(tmp_path):
    """``TargetIndex.updated`` against ``TargetIndex.of``: appended, edited, removed from the middle, moved."""
    copies = [order(9000 + i, magic=100 + i, comment=copy_tag(100 + i)) for i in range(6)]
    before = tuple(copies)
    index = TargetIndex.of(before, ())
    edited = msgspec.structs.replace(copies[2], sl=1.07)
    added = order(9010, magic=110, comment=copy_tag(110))
    cases = {
        "same": before,
        "appended": (*before, added),
        "edited": (*before[:2], edited, *before[3:]),
        "removed": (*before[:3], *before[4:]),
        "moved": (before[1], before[0], *before[2:]),
        "all": (before[1], edited, *before[4:], added),
    }
    changes = {"same": set(), "appended": {110}, "edited": {102}, "removed": {103}, "moved": {100, 101},
               "all": {100, 101, 102, 103, 104, 105, 110}}
    for name, after in cases.items():
        update = index.updated(before, after, ())
        assert update is not None, name
        new, changed = update
        assert new == TargetIndex.of(after, ()), name
        assert {pending.magic for pending in changed} == changes[name], name
    manual = order(9020)
    assert index.updated(before, (*before, manual), ()) is None
    assert index.updated((*before, manual), before, ()) is None
    second = order(9021, magic=101, comment=copy_tag(101))
    assert index.updated(before, (*before, second), ()) is None
    assert index.updated(before, (*before, before[0]), ()) is None  # a ticket listed twice
    doubled = TargetIndex.of((*before, second), ())
    assert doubled.updated((*before, second), before, ()) is None  # an index with duplicates is not updated


def test_a_copy_removed_from_the_middle_of_the_list_replans_its_ticket_alone(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}, orders=6) as twin:
        made = _spy(twin, monkeypatch)
        book = twin.books[TARGET]
        gone = book.orders[list(book.orders)[2]]
        book.remove(gone.ticket)
        twin.report(TARGET)
        edited = _edit_first(twin)
        twin.reconcile()
        assert made == ["incremental"] and _sent(twin) == [("modify", edited)]
        assert [(u.source_ticket, u.status.value) for u in _last_plan(twin).link_updates] == [(gone.magic, "deleted")]


def test_orders_listed_in_another_order_are_planned_as_the_full_plan_plans_them(tmp_path, monkeypatch):
    """The worker's list order is not relied on: the orders between the first and the last that differ count
    as changed (here most of them, so the plan is a full one)."""
    with _settled(tmp_path, {TARGET: {}}, orders=6) as twin:
        made = _spy(twin, monkeypatch)
        book = twin.books[TARGET]
        tickets = list(book.orders)
        book.orders = {t: book.orders[t] for t in [*tickets[1:], tickets[0]]}
        twin.report(TARGET)
        twin.reconcile()  # the twin asserts the same commands and plans
        assert made == ["full"] and twin.unanswered[TARGET] == []
        made.clear()
        book.orders = {t: book.orders[t] for t in [*tickets[1:3], tickets[4], tickets[3], *tickets[5:], tickets[0]]}
        twin.report(TARGET)
        twin.reconcile()
        assert made == ["incremental"] and twin.unanswered[TARGET] == []


def test_the_timer_pass_after_a_target_snapshot_is_full(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        twin.report(TARGET)
        twin.reconcile(full=True)
        assert made == ["full"]
