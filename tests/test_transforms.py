"""How a copy differs from its source (coordinator/domain/transforms.py): reverse = true for each of the four
reversible types and the stop-limit skip, copy_sl / copy_tp = false on placement, on later edits and on positions,
[targets.order_type_map] (each accepted and each refused mapping, then with reverse), copies seen in sync without
replacing them again, a reversed copy found again after a lost state, and a reversed copy's position (its SL/TP
swapped, partial closes, on_source_fill = "market"). Decided on the engine over books (tests/enginekit.py: Desk)
and the planner (any sequence of source edits converges, then sends nothing); one ``--once`` over real processes
shows the simulated broker takes every reversed and mapped copy."""

from __future__ import annotations

import itertools
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from config import ConfigError, CopySettings, OrderKind, config_notes, parse_config
from coordinator.domain.link_lifecycle import LinkStatus
from coordinator.domain.planner import SkipReason
from coordinator.domain.transforms import left_out, position_levels, shape
from protocol import CommandKind
from protocol.mt5 import OrderType
from protocol.tags import copy_tag
from tests.enginekit import SOURCE, TARGET, Desk, order, summary_counts
from tests.simhelpers import (
    ALL_PENDING_TYPES,
    BUY_LIMIT,
    BUY_STOP,
    BUY_STOP_LIMIT,
    SELL_LIMIT,
    SELL_STOP,
    SELL_STOP_LIMIT,
    copier_config,
    copies,
    pending,
    place_pending,
    sim_terminals,
    target_login,
    target_section,
)
from tests.test_planner import settings_
from tests.test_planner_properties import EDITS, TargetModel, apply_edit, priced_order

REVERSED = {BUY_LIMIT: SELL_STOP, SELL_STOP: BUY_LIMIT, SELL_LIMIT: BUY_STOP, BUY_STOP: SELL_LIMIT}


@pytest.fixture
def desk(tmp_path) -> Desk:
    return Desk(tmp_path / "state")


def sent(run) -> list[tuple[str, int]]:
    return [(command.kind.value, command.magic) for command in run.commands]


# ---- the rules alone ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source_type", "copy_type"), sorted(REVERSED.items()))
def test_reverse_gives_the_other_side_at_the_same_price_with_sl_and_tp_swapped(source_type, copy_type):
    source = order(1, type=source_type, price_open=1.08, sl=1.07, tp=1.09)

    copy = shape(source, CopySettings(reverse=True))

    assert (copy.order_type, copy.price, copy.stoplimit, copy.sl, copy.tp) == (copy_type, 1.08, 0.0, 1.09, 1.07)
    assert left_out(source_type, CopySettings(reverse=True)) is None


@pytest.mark.parametrize("source_type", [BUY_STOP_LIMIT, SELL_STOP_LIMIT])
def test_a_stop_limit_has_no_reverse_unless_it_is_mapped_to_a_stop(source_type):
    assert "has no exact reverse" in left_out(source_type, CopySettings(reverse=True))
    assert left_out(source_type, CopySettings()) is None
    mapped = CopySettings(reverse=True, order_type_map=((OrderKind.BUY_STOP_LIMIT, OrderKind.BUY_STOP),
                                                        (OrderKind.SELL_STOP_LIMIT, OrderKind.SELL_STOP)))
    assert left_out(source_type, mapped) is None
    source = order(1, type=source_type, price_open=1.08, price_stoplimit=1.079, sl=1.07, tp=1.09)
    # Mapped first (a stop at the trigger price, no limit price), then reversed.
    expected = OrderType.SELL_LIMIT if source_type == BUY_STOP_LIMIT else OrderType.BUY_LIMIT
    copy = shape(source, mapped)
    assert (copy.order_type, copy.price, copy.stoplimit, copy.sl, copy.tp) == (expected, 1.08, 0.0, 1.09, 1.07)


def test_levels_not_copied_are_the_copys_own_and_name_the_copys_levels_after_the_swap():
    source = order(1, type=BUY_LIMIT, sl=1.07, tp=1.09)
    assert (shape(source, CopySettings(copy_sl=False)).sl, shape(source, CopySettings(copy_sl=False)).tp) == \
        (None, 1.09)
    reversed_without_sl = shape(source, CopySettings(reverse=True, copy_sl=False))
    assert (reversed_without_sl.sl, reversed_without_sl.tp) == (None, 1.07)  # the source's TP was the SL
    assert position_levels(1.07, 1.09, opposite=True, settings=CopySettings()) == (1.09, 1.07)
    assert position_levels(1.07, 1.09, opposite=False, settings=CopySettings(copy_tp=False)) == (1.07, None)


# ---- configuration --------------------------------------------------------------------------------------

ACCEPTED = {(OrderKind.BUY_STOP_LIMIT, OrderKind.BUY_STOP), (OrderKind.SELL_STOP_LIMIT, OrderKind.SELL_STOP)}
PAIRS = [(a, b) for a, b in itertools.product(OrderKind, OrderKind) if a is not b]


def config_with(tmp_path: Path, **target: object):
    data = {"source": {"name": SOURCE, "backend": "sim", "path": "s", "login": 1, "server": "S"},
            "targets": [{"name": TARGET, "backend": "sim", "path": "t", "login": 2, "server": "S", **target}]}
    return parse_config(data, base_dir=tmp_path)


def mapping_problems(tmp_path: Path, mapping: dict[str, str]) -> list[str]:
    try:
        config_with(tmp_path, order_type_map=mapping)
    except ConfigError as e:
        return [str(problem) for problem in e.problems]
    return []


@pytest.mark.parametrize(("source", "copy"), PAIRS, ids=[f"{a.value}-{b.value}" for a, b in PAIRS])
def test_each_mapping_is_accepted_only_if_it_keeps_the_trigger(tmp_path, source, copy):
    found = mapping_problems(tmp_path, {source.value: copy.value})

    if (source, copy) in ACCEPTED:
        assert found == []
        return
    [problem] = found
    assert problem.startswith(f"targets[0] ({TARGET}).order_type_map.{source.value}: ")
    if source.mt5_type.is_buy != copy.mt5_type.is_buy:
        assert "a trade the other way" in problem and "reverse = true" in problem
    elif copy.mt5_type.is_stop_limit and not source.mt5_type.is_stop_limit and "stop" in source.value:
        assert "has no limit price to give" in problem
    else:  # a limit and a stop (or stop limit) on one side
        assert "would be on the wrong side of the market, and the broker refuses it" in problem
    assert 'accepted: buy_stop_limit = "buy_stop", sell_stop_limit = "sell_stop"' in problem


def test_a_limit_to_a_stop_on_the_same_side_is_refused_with_why(tmp_path):
    assert mapping_problems(tmp_path, {"buy_limit": "buy_stop"}) == [
        f'targets[0] ({TARGET}).order_type_map.buy_limit: a buy limit waits below the market (it buys on a fall to '
        "its price) and a buy stop above it (it buys on a rise to its price): at the buy limit's price the buy stop "
        "would be on the wrong side of the market, and the broker refuses it; accepted: buy_stop_limit = "
        '"buy_stop", sell_stop_limit = "sell_stop"']


def test_a_mapping_names_order_types_and_a_type_to_itself_changes_nothing(tmp_path):
    assert mapping_problems(tmp_path, {"buy_stp": "buy_stop", "sell_stop": "stop"}) == [
        f"targets[0] ({TARGET}).order_type_map.buy_stp: must be one of 'buy_limit', 'sell_limit', 'buy_stop', "
        "'sell_stop', 'buy_stop_limit', 'sell_stop_limit', got 'buy_stp'",
        f"targets[0] ({TARGET}).order_type_map.sell_stop: must be one of 'buy_limit', 'sell_limit', 'buy_stop', "
        "'sell_stop', 'buy_stop_limit', 'sell_stop_limit', got 'stop'"]
    config = config_with(tmp_path, order_type_map={"buy_limit": "buy_limit", "buy_stop_limit": "buy_stop"})
    assert config.targets[0].copy.order_type_map == ((OrderKind.BUY_LIMIT, OrderKind.BUY_LIMIT),
                                                     (OrderKind.BUY_STOP_LIMIT, OrderKind.BUY_STOP))


def test_check_config_says_what_reverse_leaves_out_and_which_mappings_are_never_used(tmp_path):
    notes = config_notes(config_with(tmp_path, reverse=True, order_types=["buy_limit", "sell_stop_limit"],
                                     order_type_map={"buy_stop_limit": "buy_stop"}))
    assert notes == [
        f"{TARGET}: order_type_map.buy_stop_limit is never used: buy_stop_limit is not in order_types (order_types "
        "picks the source's orders by their own type)",
        f"{TARGET}: reverse = true: sell_stop_limit orders have no exact reverse and are not copied (the summary and "
        "status list them as left out); to copy them reversed, map them to stops in [targets.order_type_map] "
        '(buy_stop_limit = "buy_stop" is then reversed to a sell limit at the trigger price)']
    mapped = {"buy_stop_limit": "buy_stop", "sell_stop_limit": "sell_stop"}
    assert config_notes(config_with(tmp_path, reverse=True, order_type_map=mapped)) == []


# ---- reverse on the engine ------------------------------------------------------------------------------


def test_reverse_copies_each_of_the_four_types_the_other_way_and_leaves_them_in_sync(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    tickets = {kind: master.place(kind) for kind in REVERSED}

    run = desk.once(t1={"reverse": True})

    assert run.code == 0, run.summary
    copies = alpha.copies()
    for kind, ticket in tickets.items():
        source, copy = master.orders[ticket], copies[ticket]
        assert (copy.type, copy.price_open, copy.price_stoplimit) == (REVERSED[kind], source.price_open, 0.0)
        assert (copy.sl, copy.tp) == (source.tp, source.sl)  # valid for the other side: checked by the planner
    again = desk.once(t1={"reverse": True})
    assert (again.code, sent(again)) == (0, []), again.summary
    assert summary_counts(again.summary)["in sync"] == 4

    # An edit of the source's SL moves the copy's TP, and nothing else.
    buy_limit = tickets[BUY_LIMIT]
    master.modify(buy_limit, sl=round(master.orders[buy_limit].sl - 0.001, 5))
    edited = desk.once(t1={"reverse": True})
    assert sent(edited) == [("modify", buy_limit)]
    assert alpha.copies()[buy_limit].tp == master.orders[buy_limit].sl
    assert alpha.copies()[buy_limit].sl == master.orders[buy_limit].tp


def test_a_reversed_copy_is_checked_as_the_order_it_is(desk):
    # A buy limit inside the target's spread: a valid buy limit on the source, but a sell stop above the bid.
    master, alpha = desk[SOURCE], desk[TARGET]
    ticket = master.add(type=BUY_LIMIT, price_open=1.08506, sl=0.0, tp=0.0)

    run = desk.once(t1={"reverse": True})

    assert alpha.copies() == {}
    assert f"source #{ticket}" in run.summary and "already on the far side of the target's market" in run.summary


def test_reverse_leaves_stop_limits_out_without_making_the_run_incomplete(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    buy_stop_limit, sell_stop_limit = master.place(BUY_STOP_LIMIT), master.place(SELL_STOP_LIMIT)
    placed_before = desk.once()  # copied as they are while reverse is off
    assert set(alpha.copies()) == {buy_stop_limit, sell_stop_limit}, placed_before.summary

    run = desk.once(t1={"reverse": True})

    assert run.code == 0, run.summary
    assert alpha.copies() == {}  # the rule changed: their copies go, like a type the target does not copy
    assert sorted(sent(run)) == [("remove", buy_stop_limit), ("remove", sell_stop_limit)]
    assert (f"left out source #{buy_stop_limit}: reverse = true: a buy stop limit has no exact reverse (map it to a "
            "stop in [targets.order_type_map] to copy it reversed)") in run.summary
    assert f"left out source #{sell_stop_limit}: reverse = true: a sell stop limit has no exact reverse" in run.summary
    again = desk.once(t1={"reverse": True})
    assert (again.code, sent(again)) == (0, [])


def test_a_reversed_copy_is_found_again_by_its_tag_after_the_state_is_lost(desk, tmp_path):
    master, alpha = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_STOP)
    desk.once(t1={"reverse": True})
    copy = alpha.copies()[ticket]

    fresh = Desk(tmp_path / "other-state")
    fresh.books = desk.books
    run = fresh.once(t1={"reverse": True})

    assert (run.code, sent(run)) == (0, []), run.summary
    assert alpha.copies()[ticket] == copy
    assert summary_counts(run.summary)["in sync"] == 1, run.summary
    assert [(action, outcome) for _, action, outcome, _ in run.events] == [("adopted", "done")]


# ---- copy_sl / copy_tp ----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["sl", "tp"])
def test_a_level_not_copied_is_left_out_then_its_edits_ignored_and_a_hand_set_one_kept(desk, level):
    master, alpha = desk[SOURCE], desk[TARGET]
    other = "tp" if level == "sl" else "sl"
    rules = {f"copy_{level}": False}
    ticket = master.place(BUY_LIMIT)
    source = master.orders[ticket]

    desk.once(t1=rules)
    copy = alpha.copies()[ticket]
    assert (getattr(copy, level), getattr(copy, other)) == (0.0, getattr(source, other))

    step = -0.001 if level == "sl" else 0.001  # further from the entry: still valid
    master.modify(ticket, **{level: round(getattr(source, level) + step, 5)})
    edit = desk.once(t1=rules)
    assert (edit.code, sent(edit)) == (0, []), edit.summary

    hand_set = round(getattr(source, level) + 2 * step, 5)
    alpha.modify(copy.ticket, **{level: hand_set})
    left_alone = desk.once(t1=rules)
    assert sent(left_alone) == []

    master.modify(ticket, **{other: round(getattr(source, other) - step, 5)})
    followed = desk.once(t1=rules)
    assert sent(followed) == [("modify", ticket)]
    copy = alpha.copies()[ticket]
    assert (getattr(copy, level), getattr(copy, other)) == (hand_set, getattr(master.orders[ticket], other))


@pytest.mark.parametrize("level", ["sl", "tp"])
def test_a_level_not_copied_is_left_alone_on_the_copys_position(desk, level):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={f"copy_{level}": False})
    try:
        ticket, copy = both_filled(desk, session)
        alpha.set_levels(copy, **{"sl": 1.075, "tp": 1.1, level: 1.07 if level == "sl" else 1.11})
        master.set_levels(ticket, sl=1.08, tp=1.095)
        session.run(1.0)
        position = alpha.positions[copy]
        if level == "sl":
            assert (position.sl, position.tp) == (1.07, 1.095)
        else:
            assert (position.sl, position.tp) == (1.08, 1.11)
        assert position_commands(session) == [("sltp", copy)]
    finally:
        session.close()


# ---- order_type_map on the engine -----------------------------------------------------------------------


MAP_STOP_LIMITS = {"order_type_map": {"buy_stop_limit": "buy_stop", "sell_stop_limit": "sell_stop"}}


def test_a_mapped_stop_limit_is_a_stop_at_its_trigger_price_and_stays_in_sync(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    buy, sell = master.place(BUY_STOP_LIMIT), master.place(SELL_STOP_LIMIT)

    run = desk.once(t1=MAP_STOP_LIMITS)

    assert run.code == 0, run.summary
    for ticket, mapped in ((buy, BUY_STOP), (sell, SELL_STOP)):
        source, copy = master.orders[ticket], alpha.copies()[ticket]
        assert (copy.type, copy.price_open, copy.price_stoplimit, copy.sl, copy.tp) == \
            (mapped, source.price_open, 0.0, source.sl, source.tp)
    again = desk.once(t1=MAP_STOP_LIMITS)
    assert (again.code, sent(again)) == (0, [])

    # The source's stop limit triggers: it is a buy limit at its limit price from then on, and so is the copy.
    limit_price = master.orders[buy].price_stoplimit
    master.modify(buy, type=BUY_LIMIT, price_open=limit_price, price_stoplimit=0.0)
    alpha.set_quote("EURUSD", 1.089, 1.08912)  # the market rose: above the limit price, below the copy's stop
    triggered = desk.once(t1=MAP_STOP_LIMITS)
    assert sent(triggered) == [("replace", buy)]
    assert (alpha.copies()[buy].type, alpha.copies()[buy].price_open) == (BUY_LIMIT, limit_price)


def test_a_mapped_stop_limit_is_mapped_first_then_reversed(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    buy, sell = master.place(BUY_STOP_LIMIT), master.place(SELL_STOP_LIMIT)
    rules = {**MAP_STOP_LIMITS, "reverse": True}

    run = desk.once(t1=rules)

    assert run.code == 0, run.summary
    for ticket, copied_as in ((buy, SELL_LIMIT), (sell, BUY_LIMIT)):
        source, copy = master.orders[ticket], alpha.copies()[ticket]
        assert (copy.type, copy.price_open, copy.price_stoplimit, copy.sl, copy.tp) == \
            (copied_as, source.price_open, 0.0, source.tp, source.sl)
    again = desk.once(t1=rules)
    assert (again.code, sent(again)) == (0, [])


# ---- a reversed copy's position -------------------------------------------------------------------------


def both_filled(desk: Desk, session, volume: float = 0.3) -> tuple[int, int]:
    """A source buy limit copied, then both filled: (source position ticket, copy position ticket)."""
    master, alpha = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_LIMIT, volume=volume, with_stops=False)
    session.run(1.0, until=lambda: ticket in alpha.copies())
    copy = alpha.copies()[ticket].ticket
    master.fill(ticket)
    alpha.fill(copy)
    session.run(1.0, until=lambda: session.rig.link(ticket).status is LinkStatus.FILLED)
    return ticket, copy


def position_commands(session) -> list[tuple[str, int]]:
    return [(c.kind.value, c.ticket) for c in session.commands
            if c.kind in (CommandKind.SLTP, CommandKind.CLOSE, CommandKind.MARKET)]


def test_a_reversed_copys_position_takes_the_sources_levels_swapped_and_follows_its_closes(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"reverse": True})
    try:
        ticket, copy = both_filled(desk, session)
        assert (master.positions[ticket].type, alpha.positions[copy].type) == (0, 1)  # a buy, and its copy a sell

        master.set_levels(ticket, sl=1.08, tp=1.095)
        session.step()
        assert (alpha.positions[copy].sl, alpha.positions[copy].tp) == (1.095, 1.08)
        session.run(0.5)
        assert position_commands(session) == [("sltp", copy)]  # in sync from then on

        master.close(ticket, 0.15)
        session.run(2.0, until=lambda: alpha.positions[copy].volume < 0.3)
        assert alpha.positions[copy].volume == 0.15
        master.close(ticket)
        session.run(2.0, until=lambda: copy not in alpha.positions)
    finally:
        session.close()


def test_on_source_fill_market_opens_a_reversed_copy_the_other_way(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"reverse": True,
                               "positions": {"on_source_fill": "market", "max_entry_slippage_points": 20}})
    try:
        ticket = master.place(BUY_LIMIT, volume=0.2)
        session.run(1.0, until=lambda: ticket in alpha.copies())
        pending = alpha.copies()[ticket].ticket
        assert alpha.orders[pending].type == SELL_STOP
        master.fill(ticket)
        fill_price = master.positions[ticket].price_open
        alpha.set_quote("EURUSD", fill_price + 0.0001, fill_price + 0.00022)  # a sell opens at the bid: 10 points
        session.run(2.0, until=lambda: pending not in alpha.orders)
        session.run(0.5)
        [position] = [p for p in alpha.positions.values() if p.comment == copy_tag(ticket)]
        assert (position.type, position.volume, position.price_open) == (1, 0.2, fill_price + 0.0001)
        assert [c.order_type for c in session.commands if c.kind is CommandKind.MARKET] == [1]
    finally:
        session.close()


# ---- in sync after any edits ----------------------------------------------------------------------------


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(edits=EDITS, reverse=st.booleans(), mapped=st.booleans(), copy_sl=st.booleans(),
                  copy_tp=st.booleans())
def test_any_sequence_of_source_edits_converges_to_the_shaped_copies_and_then_sends_nothing(
        edits, reverse, mapped, copy_sl, copy_tp):
    rules = settings_(reverse=reverse, copy_sl=copy_sl, copy_tp=copy_tp,
                      order_type_map=((OrderKind.BUY_STOP_LIMIT, OrderKind.BUY_STOP),
                                      (OrderKind.SELL_STOP_LIMIT, OrderKind.SELL_STOP)) if mapped else ())
    model, described, counter = TargetModel(), {}, [1000]
    for edit in edits:
        apply_edit(described, edit, counter)
        source = {ticket: priced_order(ticket, *fields) for ticket, fields in described.items()}
        model.sync(source, rules)

        second = model.plan(source, rules)
        assert second.actions == [] and second.orphans == []  # no replace loop, no modify loop
        copies = {o.magic: o for o in model.orders.values()}
        # What the target's checks refuse of a shaped copy is said, not sent (a mapped stop keeps the stop limit's
        # SL and TP, set from its limit price: a TP between the limit and the trigger is too close to the stop).
        refused = {skip.source_ticket for skip in second.skips
                   if skip.reason in (SkipReason.CANNOT_COPY, SkipReason.TOO_CLOSE)}
        kept_out = {ticket for ticket, _ in second.kept_out}
        assert kept_out == {t for t, o in source.items() if left_out(o.type, rules) is not None}
        assert set(copies) | refused | kept_out == set(source) and not set(copies) & kept_out
        for ticket, copy in copies.items():
            if ticket in refused:
                continue  # an edit the target refuses: the copy stays as it was, and the plan says why
            wanted = shape(source[ticket], rules)
            assert (copy.type, copy.price_open, copy.price_stoplimit, copy.sl, copy.tp) == (
                wanted.order_type, wanted.price, wanted.stoplimit, wanted.sl or 0.0, wanted.tp or 0.0)


# ---- what the broker accepts ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_reversed_mapped_and_levelless_copies_pass_the_simulated_broker(copier):
    """The real worker's requests for every reversed type, mapped stop limits and a dropped level pass mt5sim's
    rules (sides of the market, stops on the right side of the entry) in one ``--once``."""
    master, reversed_, mapped = sim_terminals(copier.directory, "reversed", "mapped")
    mapping = '[targets.order_type_map]\nbuy_stop_limit = "buy_stop"\nsell_stop_limit = "sell_stop"'
    copier.write_config(copier_config(
        target_section("reversed", target_login(0), "reverse = true\ncopy_tp = false", tables=mapping),
        target_section("mapped", target_login(1), tables=mapping)))
    tickets = {kind: place_pending(master, kind) for kind in ALL_PENDING_TYPES}

    run = copier.once()

    assert run.code == 0, run.output
    on_reversed, on_mapped = copies(reversed_), copies(mapped)
    stops = {BUY_STOP_LIMIT: BUY_STOP, SELL_STOP_LIMIT: SELL_STOP}
    for kind, ticket in tickets.items():
        source = pending(master, ticket)
        copy = on_reversed[ticket]
        assert (copy.type, copy.price_open, copy.price_stoplimit) == (REVERSED[stops.get(kind, kind)],
                                                                     source.price_open, 0.0)
        assert (copy.sl, copy.tp) == (source.tp, 0.0)  # the source's TP is the SL; the TP is not copied
        copy = on_mapped[ticket]
        assert (copy.type, copy.price_open, copy.sl, copy.tp) == (stops.get(kind, kind), source.price_open,
                                                                  source.sl, source.tp)
