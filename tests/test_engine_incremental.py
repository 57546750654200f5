"""Incremental planning (coordinator/runtime/engine.py ``_plan_changed``, coordinator/domain/planner.py
``plan_target_incrementally``): a plan made by re-planning only what changed must be the full plan, to the
command.

The property drives two engines side by side with the very same messages, one planning incrementally and one
always in full, through random source adds, edits, removals and fills, target snapshots (answers, copies deleted,
lost, edited or filled by hand, stray copies, manual orders and positions appearing, the balance changing), lost
and refused commands, time passing and timer passes, and asserts after every reconcile that both sent the same
commands and made the same plans. Focused tests pin each fallback to the full plan (and
tests/test_engine_incremental_target.py those of a new target snapshot).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.domain.planner import TargetPlan
from protocol import (
    Command,
    CommandBatch,
    CommandResults,
    HistoryReport,
    HistoryRequest,
    Message,
    PositionFacts,
    Snapshot,
    SymbolRequest,
)
from protocol.tags import copy_tag, parse_tag
from tests.enginekit import SOURCE, TARGET, Book, EngineRig, now_ms

# Each example runs two engines on disk through up to 30 steps (~1 s): the suite runs a few each time (new ones
# every run); MT5_COPIER_PROPERTY_EXAMPLES=300 runs a deep search.
EXAMPLES = int(os.environ.get("MT5_COPIER_PROPERTY_EXAMPLES", "30"))

CAPPED = "t2"  # a target with max_pending_orders: its plans are always made in full
FILTERED = "t3"  # one that copies EURUSD alone, and places a copy deleted by hand again


def _normal(command: Command) -> dict[str, Any]:
    """A command less what differs between two engines sending the same thing (its id, its deadline)."""
    fields = msgspec.structs.asdict(command)
    fields.pop("command_id")
    fields.pop("deadline_ms")
    return fields


def _plan_value(plan: TargetPlan | None) -> Any:
    """A plan as comparable values: its actions in order, every other list as a sorted list of its entries."""
    if plan is None:
        return None

    def key(item: Any) -> str:
        return repr(item)

    return {
        "actions": plan.actions,
        **{name: sorted(getattr(plan, name), key=key)
           for name in ("skips", "filtered", "in_sync", "adopt", "link_updates", "kept_out", "orphans", "duplicates",
                        "finished_links", "position_orphans")},
        **{name: getattr(plan, name) for name in ("left_out_by_filter", "needed_symbols", "needed_history",
                                                  "followed_positions", "positions_not_followed",
                                                  "needed_position_history", "needed_copy_position_history")},
    }


class Twin:
    """Two engines on the same books: ``incremental`` and ``full``. Every message goes to both; the books carry
    out the incremental engine's commands (the full engine's, asserted equal, get the same answers)."""

    def __init__(self, folder: Path, targets: dict[str, dict[str, Any]]) -> None:
        more = {name: extra for name, extra in targets.items() if name != TARGET}
        self.rigs = [EngineRig(folder / name, targets[TARGET], more_targets=more, incremental=incremental)
                     for name, incremental in (("incremental", True), ("full", False))]
        self.books = {SOURCE: Book(first_ticket=100)}
        for i, name in enumerate(targets):
            self.books[name] = Book(first_ticket=9001 + 10_000 * i)
        self.seq = dict.fromkeys(self.books, 0)
        self.unanswered: dict[str, list[tuple[Command, Command]]] = {name: [] for name in targets}
        for name in self.books:
            for rig in self.rigs:
                rig.hello(name)
            self.report(name)

    def close(self) -> None:
        for rig in self.rigs:
            rig.close()

    def __enter__(self) -> Twin:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def tell(self, name: str, message: Message) -> None:
        for rig in self.rigs:
            rig.engine.on_message(name, message)

    def report(self, name: str) -> None:
        """The worker of ``name`` reports its book: a snapshot, then a heartbeat with its prices."""
        book = self.books[name]
        self.seq[name] += 1
        self.tell(name, Snapshot(
            boot_id="b1", seq=self.seq[name], taken_at_ms=now_ms(), login=self.rigs[0].logins[name], connected=True,
            trade_allowed=True, orders=tuple(book.orders.values()), positions=tuple(book.positions.values()),
            closed=book.left_records(), balance=book.balance,
            equity=book.balance if book.equity is None else book.equity))
        self.heartbeat(name)

    def heartbeat(self, name: str) -> None:
        book = self.books[name]
        for rig in self.rigs:
            rig.heartbeat(name, last_seq=self.seq[name], server_time=book.server_now(),
                          quotes=tuple(book.quotes.values()))

    def advance(self, seconds: float) -> None:
        for rig in self.rigs:
            rig.advance(seconds)
            rig.engine.tick()
        for name in self.books:
            self.heartbeat(name)

    def reconcile(self, *, full: bool = False) -> None:
        """Both engines reconcile what changed (every target with ``full``, as the timer does); they must send the
        same and plan the same; questions are answered at once."""
        for rig in self.rigs:
            rig.sent.clear()
        dirty = [rig.engine.take_dirty() for rig in self.rigs]
        assert dirty[0] == dirty[1]
        incremental = self.rigs[0].engine
        for rig in self.rigs:
            rig.reconcile(None if full else dirty[0])
        sent = [[(to, command) for to, message in rig.sent if isinstance(message, CommandBatch)
                 for command in message.commands] for rig in self.rigs]
        assert [(to, _normal(c)) for to, c in sent[0]] == [(to, _normal(c)) for to, c in sent[1]]
        for name in incremental.reports:
            assert _plan_value(incremental.reports[name].last_plan) == \
                _plan_value(self.rigs[1].engine.reports[name].last_plan), name
        for (to, mine), (_, theirs) in zip(*sent, strict=True):
            self.unanswered[to].append((mine, theirs))
        questions = [(to, message) for to, message in self.rigs[0].sent
                     if isinstance(message, SymbolRequest | HistoryRequest)]
        for to, question in questions:
            self._answer(to, question)

    def _answer(self, name: str, question: SymbolRequest | HistoryRequest) -> None:
        self.tell(name, self.books[name].answer(question))

    def settle(self) -> None:
        """Reconcile and carry out what is sent until nothing more is (the symbols asked for first)."""
        for _ in range(4):
            self.reconcile()
            for name in self.unanswered:
                self.answer(name, "done")

    def answer(self, name: str, outcome: str) -> None:
        """The target's broker carries out what it was sent ("done"), refuses it ("reject"), or carries it out and
        the answers are lost ("lost"); then its worker reports."""
        book, pairs = self.books[name], self.unanswered[name]
        self.unanswered[name] = []
        if not pairs:
            return
        if outcome in ("reject", "closed"):
            book.inject = [10015 if outcome == "reject" else 10018] * len(pairs)  # invalid price, market closed
        executed = [(book.execute(mine), mine, theirs) for mine, theirs in pairs]
        if outcome != "lost":
            for index, rig in enumerate(self.rigs):
                rig.engine.on_message(name, CommandResults(batch_id="b", results=tuple(
                    msgspec.structs.replace(result, command_id=(mine, theirs)[index].command_id)
                    for result, mine, theirs in executed)))
        self.report(name)


def _nth(keys: list[int], index: int) -> int | None:
    return sorted(keys)[index % len(keys)] if keys else None


def _apply(twin: Twin, step: tuple) -> None:
    kind = step[0]
    source = twin.books[SOURCE]
    if kind == "add":
        _, order_type, distance, volume, symbol = step
        source.place(order_type, symbol, volume=volume, distance_points=distance)
        twin.report(SOURCE)
    elif kind == "edit":
        _, index, points, what = step
        ticket = _nth(list(source.orders), index)
        if ticket is None:
            return
        order = source.orders[ticket]
        point = 0.00001  # EURUSD and GBPUSD alike
        if what == "volume":
            source.modify(ticket, volume=round(max(0.01, order.volume + points / 1000), 2))
        elif what == "price":
            source.modify(ticket, price_open=round(order.price_open + points * point, 5))
        else:
            level = getattr(order, what)
            source.modify(ticket, **{what: round((level or order.price_open) + points * point, 5)})
        twin.report(SOURCE)
    elif kind == "remove":
        ticket = _nth(list(source.orders), step[1])
        if ticket is not None:
            source.remove(ticket)
            twin.report(SOURCE)
    elif kind == "source_fill":
        ticket = _nth(list(source.orders), step[1])
        if ticket is not None:
            source.fill(ticket)
            twin.report(SOURCE)
    elif kind == "answer":
        twin.answer(step[1], step[2])
    elif kind in ("delete_copy", "fill_copy"):
        book = twin.books[step[1]]
        ticket = _nth(list(book.orders), step[2])
        if ticket is not None:
            (book.remove if kind == "delete_copy" else book.fill)(ticket)
            twin.report(step[1])
    elif kind == "tick":
        twin.advance(step[1])
    elif kind == "market":  # a price moves on a terminal, told by its heartbeat (live markets tick all the time)
        _, name, symbol, points = step
        book = twin.books[name]
        quote = book.quotes.get(symbol)
        if quote is not None:
            point = 0.001 if symbol.endswith("JPY") else 0.00001
            book.set_quote(symbol, round(quote.bid + points * point, 5), round(quote.ask + points * point, 5))
            twin.heartbeat(name)
    elif kind in TARGET_KINDS:
        _apply_to_target(twin, step)
    twin.reconcile(full=kind == "full")


def _apply_to_target(twin: Twin, step: tuple) -> None:
    """What happens on a target between two of its snapshots, by hand or by the market: each ends in a snapshot
    (some in two, as when a worker reports twice before the coordinator plans)."""
    kind, name = step[0], step[1]
    book = twin.books[name]
    # The copier's copies by source ticket (a stray second copy may be among them: Book.copies would refuse).
    copies = {pending.magic: pending for pending in book.orders.values() if parse_tag(pending.comment) == pending.magic}
    manual = [ticket for ticket, pending in book.orders.items() if parse_tag(pending.comment) != pending.magic]
    if kind == "edit_copy":  # a trader drags a copy's levels: the copier puts them back
        copy = copies.get(_nth(list(copies), step[2]) or 0)
        if copy is None:
            return
        book.modify(copy.ticket, sl=round((copy.sl or copy.price_open) - step[3] * 0.00001, 5))
    elif kind == "lose_copy":  # gone without a history record: its fate is asked for
        ticket = _nth([copy.ticket for copy in copies.values()], step[2])
        if ticket is None:
            return
        book.lose(ticket)
    elif kind == "manual":  # someone places an order of their own on the target
        book.place(step[2], step[3], distance_points=step[4])
    elif kind == "manual_gone":
        ticket = _nth(manual, step[2])
        if ticket is None:
            return
        book.remove(ticket)
    elif kind == "stray_copy":  # a tagged copy the copier did not place: a second copy, or an orphan's
        source = twin.books[SOURCE]
        source_ticket = _nth(list(source.orders), step[2]) if step[3] else 99
        if source_ticket is None:
            return
        like = source.orders.get(source_ticket)
        book.place(like.type if like else 2, like.symbol if like else "EURUSD", distance_points=step[4],
                   magic=source_ticket, comment=copy_tag(source_ticket))
    elif kind == "position":  # a position of someone else's, opened and later closed
        if book.positions and step[2] % 2:
            book.positions.pop(max(book.positions))
        else:
            ticket = 70_000 + len(book.positions) + step[2]
            book.positions[ticket] = PositionFacts(ticket=ticket, identifier=ticket, symbol="EURUSD",
                                                   type=step[2] % 2, volume=0.1, magic=0, comment="")
    elif kind == "balance":  # the ratio sizing modes read it, or the equity
        book.balance = round(book.balance * step[2], 2)
    elif kind == "equity":  # moves with every tick while positions are open
        book.equity = round((book.equity or book.balance) * step[2], 2)
    elif kind == "position_price":  # a position's current price: no plan reads it
        for ticket, position in book.positions.items():
            book.positions[ticket] = msgspec.structs.replace(position, price_current=position.price_open + step[2])
    elif kind == "edit_back":  # an edit undone before the coordinator planned: two snapshots, one plan
        copy = copies.get(_nth(list(copies), step[2]) or 0)
        if copy is None:
            return
        book.modify(copy.ticket, tp=round(copy.tp + 0.0001, 5))
        twin.report(name)
        book.modify(copy.ticket, tp=copy.tp)
    elif kind == "quiet":  # a snapshot that changes nothing (the worker's periodic report)
        pass
    twin.report(name)


TARGETS = st.sampled_from([TARGET, CAPPED, FILTERED])
ADD = st.tuples(st.just("add"), st.sampled_from([2, 3, 4, 5]), st.integers(100, 900),
               st.sampled_from([0.1, 0.2, 0.5]), st.sampled_from(["EURUSD", "EURUSD", "GBPUSD"]))
EDIT = st.tuples(st.just("edit"), st.integers(0, 20), st.integers(-300, 300).filter(bool),
                 st.sampled_from(["price", "price", "sl", "tp", "volume"]))
TARGET_KINDS = ("edit_copy", "lose_copy", "manual", "manual_gone", "stray_copy", "position", "balance", "equity",
                "position_price", "edit_back", "quiet")
TARGET_STEPS = st.one_of(
    st.tuples(st.just("edit_copy"), TARGETS, st.integers(0, 20), st.integers(-300, 300).filter(bool)),
    st.tuples(st.just("lose_copy"), TARGETS, st.integers(0, 20)),
    st.tuples(st.just("manual"), TARGETS, st.sampled_from([2, 3]), st.sampled_from(["EURUSD", "GBPUSD"]),
              st.integers(100, 900)),
    st.tuples(st.just("manual_gone"), TARGETS, st.integers(0, 20)),
    st.tuples(st.just("stray_copy"), TARGETS, st.integers(0, 20), st.booleans(), st.integers(100, 900)),
    st.tuples(st.just("position"), TARGETS, st.integers(0, 20)),
    st.tuples(st.just("balance"), TARGETS, st.sampled_from([0.5, 1.01, 2.0])),
    st.tuples(st.just("equity"), TARGETS, st.sampled_from([0.5, 0.99, 1.01, 2.0])),
    st.tuples(st.just("position_price"), TARGETS, st.sampled_from([-0.001, 0.0005])),
    st.tuples(st.just("edit_back"), TARGETS, st.integers(0, 20)),
    st.tuples(st.just("quiet"), TARGETS),
)
# Source adds and edits, what incremental plans are for, come up most; then what the targets' snapshots tell.
STEPS = st.one_of(
    TARGET_STEPS, TARGET_STEPS,
    ADD, ADD, EDIT, EDIT, EDIT, EDIT,
    st.tuples(st.just("remove"), st.integers(0, 20)),
    st.tuples(st.just("source_fill"), st.integers(0, 20)),
    st.tuples(st.just("answer"), TARGETS, st.sampled_from(["done", "done", "done", "reject", "lost", "closed"])),
    st.tuples(st.just("delete_copy"), TARGETS, st.integers(0, 20)),
    st.tuples(st.just("fill_copy"), TARGETS, st.integers(0, 20)),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 2.0, 12.0, 40.0])),
    # Prices move on the source and the targets: a little (in sync stays in sync), or far enough that pending
    # orders end on the other side of the market (placements and edits refused, held, then possible again).
    st.tuples(st.just("market"), st.sampled_from([SOURCE, TARGET, CAPPED, FILTERED]),
              st.sampled_from(["EURUSD", "GBPUSD"]), st.sampled_from([-2000, -300, -20, 20, 300, 2000])),
    st.tuples(st.just("market"), st.sampled_from([TARGET, CAPPED, FILTERED]),
              st.sampled_from(["EURUSD", "GBPUSD"]), st.sampled_from([-900, -50, 50, 900])),
    st.just(("full",)),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.lists(st.tuples(st.sampled_from([2, 3, 4, 5]), st.integers(100, 900)), min_size=1, max_size=8),
       steps=st.lists(STEPS, min_size=1, max_size=30),
       sizing=st.sampled_from(["multiplier", "balance_ratio", "equity_ratio"]))
def test_incremental_plans_send_what_full_plans_send(start, steps, sizing):
    with tempfile.TemporaryDirectory() as folder:
        twin = Twin(Path(folder), {TARGET: {}, CAPPED: {"max_pending_orders": 4},
                                   FILTERED: {"filter": {"symbols": ["EURUSD"]}, "replace_deleted_copies": True,
                                              "volume_mode": sizing}})
        # Placements on GBPUSD count every order there: a change to one of them is planned in full on t1.
        twin.books[TARGET].symbols["GBPUSD"]["volume_limit"] = 1.0
        try:
            for order_type, distance in start:
                twin.books[SOURCE].place(order_type, distance_points=distance)
            twin.report(SOURCE)
            twin.settle()
            for step in steps:
                _apply(twin, step)
                # Always between the steps: the copies' books settle as a live run's would.
                twin.reconcile()
            twin.reconcile(full=True)
        finally:
            twin.close()


SOURCE_CHURN = st.one_of(ADD, EDIT, EDIT, EDIT,
                         st.tuples(st.just("answer"), st.just(TARGET), st.sampled_from(["reject", "lost"])),
                         st.tuples(st.just("tick"), st.sampled_from([0.5, 2.0, 40.0])))


@settings(max_examples=max(1, EXAMPLES * 2 // 3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.lists(st.tuples(st.sampled_from([2, 3, 4, 5]), st.integers(100, 900)), min_size=1, max_size=12),
       steps=st.lists(SOURCE_CHURN, min_size=1, max_size=25))
def test_incremental_plans_follow_source_churn_as_full_plans_do(start, steps):
    """The source changing while the target's snapshot stays: the incremental engine's plans (nearly all made
    incrementally) over commands in flight, lost, refused and timed out, must be the full engine's."""
    with tempfile.TemporaryDirectory() as folder:
        twin = Twin(Path(folder), {TARGET: {}})
        try:
            for order_type, distance in start:
                twin.books[SOURCE].place(order_type, distance_points=distance)
            twin.report(SOURCE)
            twin.settle()
            for step in steps:
                _apply(twin, step)
            twin.reconcile(full=True)
        finally:
            twin.close()


TARGET_CHURN = st.one_of(ADD, ADD, EDIT, EDIT,
                         st.tuples(st.just("answer"), st.just(TARGET), st.sampled_from(["done", "done", "lost"])),
                         st.tuples(st.just("edit_copy"), st.just(TARGET), st.integers(0, 20),
                                   st.integers(-300, 300).filter(bool)),
                         st.tuples(st.just("delete_copy"), st.just(TARGET), st.integers(0, 20)),
                         st.tuples(st.just("lose_copy"), st.just(TARGET), st.integers(0, 20)),
                         st.tuples(st.just("edit_back"), st.just(TARGET), st.integers(0, 20)),
                         st.tuples(st.just("quiet"), st.just(TARGET)),
                         st.tuples(st.just("manual"), st.just(TARGET), st.just(2), st.just("GBPUSD"),
                                   st.integers(100, 900)),
                         st.tuples(st.just("tick"), st.sampled_from([0.5, 2.0, 40.0])))


@settings(max_examples=max(1, EXAMPLES * 2 // 3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.lists(st.tuples(st.sampled_from([2, 3, 4, 5]), st.integers(100, 900)), min_size=1, max_size=8),
       steps=st.lists(TARGET_CHURN, min_size=1, max_size=25),
       replace_deleted=st.booleans(), volume_limit=st.sampled_from([0.0, 0.5, 1.0]))
def test_incremental_plans_follow_target_snapshots_as_full_plans_do(start, steps, replace_deleted, volume_limit):
    """Every answer followed by the target's snapshot, as a live worker sends it, and the copies edited, deleted
    or lost by hand: the plans of those snapshots (mostly incremental) must be the full engine's. With a volume
    limit on EURUSD, a copy removed makes room for orders waiting for it."""
    with tempfile.TemporaryDirectory() as folder:
        twin = Twin(Path(folder), {TARGET: {"replace_deleted_copies": replace_deleted}})
        twin.books[TARGET].symbols["EURUSD"]["volume_limit"] = volume_limit
        try:
            for order_type, distance in start:
                twin.books[SOURCE].place(order_type, distance_points=distance)
            twin.report(SOURCE)
            twin.settle()
            for step in steps:
                _apply(twin, step)
                twin.answer(TARGET, "done")  # what a step sent is carried out, and a snapshot follows
                twin.reconcile()
            twin.reconcile(full=True)
        finally:
            twin.close()


# ---- each shortcut, and each fallback to the full plan ------------------------------------------


def _settled(folder: Path, targets: dict[str, dict[str, Any]], orders: int = 5) -> Twin:
    twin = Twin(folder, targets)
    for i in range(orders):
        twin.books[SOURCE].place(2, distance_points=200 + 50 * i)
    twin.report(SOURCE)
    twin.settle()
    assert all(len(twin.books[name].copies()) == orders for name in targets)
    return twin


def _edit_first(twin: Twin) -> int:
    source = twin.books[SOURCE]
    ticket = min(source.orders)
    source.modify(ticket, price_open=round(source.orders[ticket].price_open - 0.0005, 5))
    twin.report(SOURCE)
    return ticket


def _spy(twin: Twin, monkeypatch) -> list[str]:
    """Which way each plan of the incremental engine was made: "incremental" or "full"."""
    import coordinator.runtime.engine as engine_module

    made: list[str] = []
    watching = [False]  # only the incremental engine's plans are told
    real_full, real_incremental = engine_module.plan_target, engine_module.plan_target_incrementally
    engine = twin.rigs[0].engine
    real_reconcile = engine.reconcile

    def reconcile(names: set[str] | None = None) -> int:
        watching[0] = True
        try:
            return real_reconcile(names)
        finally:
            watching[0] = False

    def full(*args: Any, **kwargs: Any) -> Any:
        if watching[0]:
            made.append("full")
        return real_full(*args, **kwargs)

    def incremental(*args: Any, **kwargs: Any) -> Any:
        plan = real_incremental(*args, **kwargs)
        if watching[0]:
            made.append("incremental" if plan is not None else "refused")
        return plan

    monkeypatch.setattr(engine, "reconcile", reconcile)
    monkeypatch.setattr(engine_module, "plan_target", full)
    monkeypatch.setattr(engine_module, "plan_target_incrementally", incremental)
    return made


def test_a_source_edit_is_planned_incrementally_and_sends_the_modify(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        ticket = _edit_first(twin)
        twin.reconcile()
        assert made == ["incremental"]
        [(mine, _)] = twin.unanswered[TARGET]
        assert (mine.kind.value, mine.source_ticket) == ("modify", ticket)
        twin.answer(TARGET, "done")  # a new target snapshot, the edited copy alone changed in it
        made.clear()
        twin.reconcile()
        assert made == ["incremental"] and twin.unanswered[TARGET] == []
        assert ticket in twin.rigs[0].engine.reports[TARGET].last_plan.in_sync


def test_a_cap_makes_every_plan_full(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {"max_pending_orders": 10}}) as twin:
        made = _spy(twin, monkeypatch)
        _edit_first(twin)
        twin.reconcile()
        assert made == ["refused", "full"]
        assert len(twin.unanswered[TARGET]) == 1


def test_a_copy_deleted_by_hand_with_a_source_edit_is_planned_incrementally(tmp_path, monkeypatch):
    """The target's snapshot changed only in a copy (and the fate of that copy): both re-planned by ticket."""
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        deleted = twin.books[TARGET].orders[max(twin.books[TARGET].orders)]
        twin.books[TARGET].remove(deleted.ticket)  # a copy deleted by hand
        twin.report(TARGET)
        edited = _edit_first(twin)
        twin.reconcile()
        assert made == ["incremental"]
        assert [(c.kind.value, c.source_ticket) for c, _ in twin.unanswered[TARGET]] == [("modify", edited)]
        plan = twin.rigs[0].engine.reports[TARGET].last_plan
        assert [(u.source_ticket, u.status.value) for u in plan.link_updates] == [(deleted.magic, "deleted")]


def test_a_removed_source_order_makes_the_plan_full_and_its_orphan_is_counted(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        source = twin.books[SOURCE]
        source.remove(max(source.orders))
        twin.report(SOURCE)
        twin.reconcile()
        assert made == ["full"]
        # The orphan's copy is still there, counted by the orphan policy: later source edits stay full plans.
        made.clear()
        _edit_first(twin)
        twin.reconcile()
        assert "incremental" not in made


def test_an_orphan_counted_from_before_makes_the_plan_full(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        engine = twin.rigs[0].engine
        engine.orphans._trackers[TARGET].restore({12345: 1})  # a count the state kept from an earlier run
        made = _spy(twin, monkeypatch)
        _edit_first(twin)
        twin.reconcile()
        assert made == ["full"]


def test_new_prices_replan_only_what_was_not_in_sync_and_a_history_answer_makes_the_plan_full(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        twin.books[TARGET].set_quote("EURUSD", 1.0851, 1.08522)
        twin.heartbeat(TARGET)
        _edit_first(twin)
        twin.reconcile()
        assert made == ["incremental"]  # every copy was in sync: no decision of theirs reads a price
        made.clear()
        twin.tell(TARGET, HistoryReport(request_id="x", orders=(), unknown=(), positions=(),
                                        unknown_positions=()))
        _edit_first(twin)
        twin.reconcile()
        assert made == ["full"]


def test_a_tick_at_the_same_price_keeps_the_plan_incremental(tmp_path, monkeypatch):
    """A heartbeat brings a new tick time every second; the planner reads a quote's time only as "a live price was
    seen", so a later tick at the same bid and ask changes no decision."""
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        quote = twin.books[TARGET].quotes["EURUSD"]
        twin.books[TARGET].set_quote("EURUSD", quote.bid, quote.ask)
        assert twin.books[TARGET].quotes["EURUSD"].time > quote.time
        twin.heartbeat(TARGET)
        _edit_first(twin)
        twin.reconcile()
        assert made == ["incremental"]


def test_an_order_skipped_for_the_price_is_placed_when_the_price_comes_back_by_an_incremental_plan(
        tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        target = twin.books[TARGET]
        was = target.quotes["EURUSD"]
        target.set_quote("EURUSD", round(was.bid - 0.02, 5), round(was.ask - 0.02, 5))
        twin.heartbeat(TARGET)
        new = twin.books[SOURCE].place(2, distance_points=200)  # a buy limit above the target's fallen market
        twin.report(SOURCE)
        twin.reconcile()  # both engines skip it, as the twin asserts
        plan = twin.rigs[0].engine.reports[TARGET].last_plan
        assert plan is not None and [skip.source_ticket for skip in plan.skips] == [new]
        assert new not in target.copies()
        made.clear()
        target.set_quote("EURUSD", was.bid, was.ask)
        twin.heartbeat(TARGET)
        _edit_first(twin)  # any change on the source: the target is planned again, prices moved since
        twin.reconcile()
        assert made == ["incremental"]
        twin.settle()
        assert new in target.copies() and len(target.copies()) == 6


def test_new_prices_with_market_distance_pricing_or_positions_make_the_plan_full(tmp_path, monkeypatch):
    for extra, position in (({"price_mode": "market_distance"}, False), ({}, True)):
        folder = tmp_path / ("distance" if extra else "positions")
        twin = _settled(folder, {TARGET: extra})
        try:
            if position:
                twin.books[TARGET].positions[70_001] = PositionFacts(
                    ticket=70_001, identifier=70_001, symbol="EURUSD", type=0, volume=0.1, magic=0, comment="")
                twin.report(TARGET)
                twin.reconcile()
            made = _spy(twin, monkeypatch)
            quote = twin.books[TARGET].quotes["EURUSD"]
            twin.books[TARGET].set_quote("EURUSD", round(quote.bid + 0.0003, 5), round(quote.ask + 0.0003, 5))
            twin.heartbeat(TARGET)
            _edit_first(twin)
            twin.reconcile()
            assert made == ["full"], extra or "positions"
        finally:
            twin.close()


def test_the_timer_pass_is_always_full(tmp_path, monkeypatch):
    with _settled(tmp_path, {TARGET: {}}) as twin:
        made = _spy(twin, monkeypatch)
        _edit_first(twin)
        twin.reconcile(full=True)
        assert made == ["full"]


def test_one_transaction_records_every_targets_intents_before_any_batch_leaves(tmp_path):
    rig = EngineRig(tmp_path / "state", more_targets={"t2": {}, "t3": {}})
    try:
        from tests.enginekit import order

        commits: list[str] = []
        rig.state.connection.set_trace_callback(
            lambda statement: commits.append(statement) if statement in ("BEGIN IMMEDIATE", "COMMIT") else None)
        sent_with_intents: list[int] = []
        real_send = rig._send

        def send(name: str, message: Message) -> bool:
            if isinstance(message, CommandBatch):  # every target's intents are on disk by now
                sent_with_intents.append(len(rig.state.unsettled_intents()))
            return real_send(name, message)

        rig.engine.dispatcher._send = send  # type: ignore[attr-defined]
        rig.start([order(500), order(501)])
        commits.clear()
        rig.reconcile()
        assert commits == ["BEGIN IMMEDIATE", "COMMIT"]
        assert sent_with_intents == [6, 6, 6]
    finally:
        rig.close()


def test_orders_listed_in_another_order_are_planned_as_the_full_plan_plans_them(tmp_path, monkeypatch):
    """The source's changed orders are found by place in its list (an order equal to the one at the same place
    before is unchanged): orders that swap places count as changed, and an order added at the end is found."""
    with _settled(tmp_path, {TARGET: {}}, orders=6) as twin:
        made = _spy(twin, monkeypatch)
        source = twin.books[SOURCE]
        tickets = list(source.orders)
        edited = tickets[2]
        source.modify(edited, sl=round(source.orders[edited].sl - 0.0003, 5))
        added = source.place(3, distance_points=300)
        source.orders = {t: source.orders[t] for t in [tickets[1], tickets[0], *tickets[2:], added]}  # 0, 1 swap
        twin.report(SOURCE)
        twin.reconcile()  # the twin asserts the same commands and plans
        assert made == ["incremental"]
        assert {(c.kind.value, c.source_ticket) for c, _ in twin.unanswered[TARGET]} == {
            ("place", added), ("modify", edited)}


def test_a_batch_that_fails_to_leave_keeps_the_other_targets_batches_going(tmp_path):
    rig = EngineRig(tmp_path / "state", more_targets={"t2": {}})
    try:
        from tests.enginekit import order

        real_send = rig._send

        def send(name: str, message: Message) -> bool:
            if isinstance(message, CommandBatch) and name == TARGET:
                raise RuntimeError("a bug on the way to t1's worker")
            return real_send(name, message)

        rig.engine.dispatcher._send = send  # type: ignore[attr-defined]
        rig.start([order(500)])
        rig.reconcile()
        assert [c.source_ticket for c in rig.commands("t2")] == [500]
        # t1's intent was recorded before anything left: it stays in flight, its outcome unknown at the timeout.
        assert 500 in rig.engine.in_flight[TARGET]
        assert len(rig.state.unsettled_intents()) == 2
    finally:
        rig.close()
