"""The position part of the plan (coordinator/domain/positions.py through plan_target): what follows what,
SL/TP, partial and whole closes, on_source_fill = "market", and what is never touched."""

from __future__ import annotations

import dataclasses

from msgspec.structs import replace

from config import PositionSettings, PriceMode, SourceClose, SourceFill
from coordinator.domain.link_lifecycle import Link, LinkStatus
from coordinator.domain.orphans import CLOSED_FATE, ConfirmedOrphan
from coordinator.domain.planner import SkipReason, plan_target
from protocol import CommandKind, PositionFacts, PositionHistory, Quote
from protocol.mt5 import PositionType
from protocol.tags import copy_tag
from tests.test_planner import EURUSD, GOLD, copy_of, inputs, settings_, source_order

SOURCE_TICKET = 700
COPY_TICKET = 9700


def source_position(volume: float = 0.3, sl: float = 1.08, tp: float = 1.095, **fields) -> PositionFacts:
    values = dict(ticket=SOURCE_TICKET, identifier=SOURCE_TICKET, symbol="EURUSD", type=PositionType.BUY,
                  volume=volume, magic=0, comment="", price_open=1.085, sl=sl, tp=tp)
    values.update(fields)
    return PositionFacts(**values)


def copy_position(volume: float = 0.3, sl: float = 1.08, tp: float = 1.095, **fields) -> PositionFacts:
    values = dict(ticket=COPY_TICKET, identifier=COPY_TICKET, symbol="EURUSD.m", type=PositionType.BUY,
                  volume=volume, magic=SOURCE_TICKET, comment=copy_tag(SOURCE_TICKET), price_open=1.0851, sl=sl,
                  tp=tp)
    values.update(fields)
    return PositionFacts(**values)


def filled_link(volume: float = 0.3, source_volume: float = 0.3, price_offset: float = 0.0) -> Link:
    return Link(source_ticket=SOURCE_TICKET, copy_ticket=COPY_TICKET, status=LinkStatus.FILLED, symbol="EURUSD.m",
                volume=volume, source_volume=source_volume, price_offset=price_offset)


IN_STEP = object()  # plan()'s default: the source position and its copy, in step


def plan(source_positions=IN_STEP, positions=IN_STEP, source_orders=(), *, link=None, settings=None, **fields):
    source_positions = (source_position(),) if source_positions is IN_STEP else source_positions
    positions = (copy_position(),) if positions is IN_STEP else positions
    return plan_target(list(source_orders), inputs(
        settings=settings, positions=tuple(positions), source_positions=tuple(source_positions),
        links={SOURCE_TICKET: link or filled_link()}, **fields))


def positions_settings(**overrides) -> PositionSettings:
    return dataclasses.replace(PositionSettings(), **overrides)


# ---- SL and TP ------------------------------------------------------------------------------------


def test_a_copy_position_in_step_with_its_source_needs_nothing():
    result = plan()
    assert result.actions == [] and result.skips == [] and result.followed_positions == {SOURCE_TICKET: COPY_TICKET}


def test_sl_and_tp_of_the_source_position_are_applied_together_rounded_to_the_targets_tick():
    result = plan(source_positions=(source_position(sl=1.083004, tp=1.1),))
    [action] = result.actions
    assert (action.kind, action.ticket, action.source_ticket) == (CommandKind.SLTP, COPY_TICKET, SOURCE_TICKET)
    assert (action.sl, action.tp) == (1.083, 1.1)
    assert action.comment == copy_tag(SOURCE_TICKET)


def test_a_removed_tp_is_removed_on_the_copy_too():
    [action] = plan(source_positions=(source_position(tp=0.0),)).actions
    assert (action.kind, action.sl, action.tp) == (CommandKind.SLTP, 1.08, 0.0)


def test_market_distance_moves_the_levels_by_the_copys_own_offset():
    settings = settings_(price_mode=PriceMode.MARKET_DISTANCE)
    result = plan(source_positions=(source_position(sl=1.081),), settings=settings,
                  positions=(copy_position(sl=1.0802, tp=1.0952),), link=filled_link(price_offset=0.0002))
    [action] = result.actions
    assert (action.sl, action.tp) == (1.0812, 1.0952)


def test_levels_too_close_to_the_targets_market_wait_and_are_not_sent():
    # Bid 1.09000 and a stops level of 10 points: an SL at 1.08995 is too close for a buy.
    result = plan(source_positions=(source_position(sl=1.08995),))
    assert result.actions == []
    [skip] = result.skips
    assert skip.reason is SkipReason.POSITION_WAITING and "stop loss 1.08995" in skip.detail


def test_a_position_frozen_near_the_market_is_left_alone_until_the_market_moves():
    frozen_spec = replace(EURUSD, freeze_level=50)
    result = plan(source_positions=(source_position(sl=1.07),), positions=(copy_position(sl=1.0897),),
                  specs={"EURUSD.m": frozen_spec, "GOLD": GOLD})
    assert result.actions == [] and [skip.reason for skip in result.skips] == [SkipReason.FROZEN]


def test_sl_tp_are_not_followed_when_sync_sltp_is_off():
    settings = settings_(positions=positions_settings(sync_sltp=False))
    assert plan(source_positions=(source_position(sl=1.07),), settings=settings).actions == []


def test_a_copy_that_filled_before_its_source_follows_the_source_orders_levels():
    order = source_order(SOURCE_TICKET, volume=0.3, sl=1.075, tp=1.1)
    result = plan(source_positions=(), source_orders=(order,))
    [action] = result.actions
    assert (action.kind, action.sl, action.tp) == (CommandKind.SLTP, 1.075, 1.1)


# ---- partial closes -------------------------------------------------------------------------------


def history(volume_in: float = 0.3, volume_out: float = 0.15, closed: bool = False) -> dict[int, PositionHistory]:
    return {SOURCE_TICKET: PositionHistory(position_id=SOURCE_TICKET, closed=closed, volume_in=volume_in,
                                           volume_out=volume_out)}


def test_a_partial_close_closes_the_same_share_rounded_down_to_the_step():
    # The example: the source closes 0.15 of 0.3; a copy of 0.3 on a step of 0.1 closes 0.1.
    gold_like = replace(EURUSD, volume_step=0.1, volume_min=0.1)
    result = plan(source_positions=(source_position(volume=0.15),), source_position_history=history(),
                  specs={"EURUSD.m": gold_like, "GOLD": GOLD})
    [action] = result.actions
    assert (action.kind, action.ticket, action.volume, action.expected_volume) == (CommandKind.CLOSE, COPY_TICKET,
                                                                                   0.1, 0.3)
    assert action.order_type == PositionType.BUY and action.price == 0.0  # the worker closes at its own tick
    assert "closed 50%" in action.reason
    # Once it landed (0.2 left), the same share is held to within a step: nothing more is closed.
    after = plan(source_positions=(source_position(volume=0.15),), positions=(copy_position(volume=0.2),),
                 source_position_history=history(), specs={"EURUSD.m": gold_like, "GOLD": GOLD})
    assert [a.kind for a in after.actions] != [CommandKind.CLOSE]


def test_a_partial_close_waits_for_the_sources_deals_and_asks_for_them():
    result = plan(source_positions=(source_position(volume=0.15),))
    assert result.actions == [] and result.needed_position_history == {SOURCE_TICKET}
    assert [skip.reason for skip in result.skips] == [SkipReason.POSITION_WAITING]


def test_deals_that_do_not_add_up_to_the_position_are_read_again_before_deciding():
    # Known from the first partial close (0.3 in, 0.15 out); the source has closed more since (0.1 left).
    result = plan(source_positions=(source_position(volume=0.1),), source_position_history=history())
    assert result.actions == [] and result.needed_position_history == {SOURCE_TICKET}
    fresh = plan(source_positions=(source_position(volume=0.1),), source_position_history=history(volume_out=0.2))
    [action] = fresh.actions
    assert (action.kind, action.volume) == (CommandKind.CLOSE, 0.2)


def test_a_source_order_that_filled_only_in_part_is_not_read_as_a_close():
    # 0.15 of 0.3 filled and the rest was cancelled: the deals put in 0.15, so nothing was closed.
    result = plan(source_positions=(source_position(volume=0.15),),
                  source_position_history=history(volume_in=0.15, volume_out=0.0))
    assert [action.kind for action in result.actions] == []


def test_a_remainder_below_the_minimum_volume_closes_everything():
    coarse = replace(EURUSD, volume_step=0.1, volume_min=0.2)
    result = plan(source_positions=(source_position(volume=0.1),), source_position_history=history(volume_out=0.2),
                  specs={"EURUSD.m": coarse, "GOLD": GOLD})
    [action] = result.actions
    assert (action.kind, action.volume) == (CommandKind.CLOSE, 0.3)


def test_a_source_volume_that_went_up_is_never_mirrored():
    result = plan(source_positions=(source_position(volume=0.5),))
    assert result.actions == []


def test_partial_closes_off_leaves_the_copys_volume_alone():
    settings = settings_(positions=positions_settings(partial_closes=False))
    result = plan(source_positions=(source_position(volume=0.15),), source_position_history=history(),
                  settings=settings)
    assert result.actions == []


def test_a_partial_close_goes_before_an_sl_tp_change_one_action_per_order():
    result = plan(source_positions=(source_position(volume=0.15, sl=1.07),), source_position_history=history())
    assert [action.kind for action in result.actions] == [CommandKind.CLOSE]


# ---- the source closed ----------------------------------------------------------------------------


def confirmed_close() -> dict[int, ConfirmedOrphan]:
    return {COPY_TICKET: ConfirmedOrphan(reason=f"source position #{SOURCE_TICKET} is closed",
                                         evidence="the source's history says so", source_fate=CLOSED_FATE)}


def test_a_copy_position_whose_source_is_gone_waits_for_the_orphan_policy():
    result = plan(source_positions=())
    assert result.actions == [] and [p.ticket for p in result.position_orphans] == [COPY_TICKET]


def test_a_confirmed_source_close_closes_the_whole_copy_position():
    result = plan(source_positions=(), position_closes=confirmed_close())
    [action] = result.actions
    assert (action.kind, action.volume, action.expected_volume) == (CommandKind.CLOSE, 0.3, 0.3)
    assert action.evidence == "the source's history says so" and "is closed" in action.reason


def test_on_source_close_keep_leaves_the_copy_position_open():
    settings = settings_(positions=positions_settings(on_source_close=SourceClose.KEEP))
    assert plan(source_positions=(), position_closes=confirmed_close(), settings=settings).actions == []


def test_nothing_is_done_while_something_is_in_flight_or_backing_off_for_that_order():
    assert plan(source_positions=(), position_closes=confirmed_close(),
                in_flight=frozenset({SOURCE_TICKET})).actions == []
    backing_off = plan(source_positions=(), position_closes=confirmed_close(), backoff={SOURCE_TICKET: "retcode"})
    assert backing_off.actions == []


def test_closing_into_a_closed_market_is_held():
    result = plan(source_positions=(), position_closes=confirmed_close(), closed_markets=frozenset({"EURUSD.m"}))
    assert result.actions == [] and [skip.reason for skip in result.skips] == [SkipReason.MARKET_CLOSED]


# ---- never touched --------------------------------------------------------------------------------


def test_foreign_positions_are_never_touched_whatever_their_magic():
    manual = copy_position(ticket=9801, identifier=9801, magic=SOURCE_TICKET, comment="")  # colliding magic
    other_ea = copy_position(ticket=9802, identifier=9802, magic=12345, comment=copy_tag(SOURCE_TICKET))
    result = plan(source_positions=(), positions=(manual, other_ea), position_closes={
        9801: confirmed_close()[COPY_TICKET], 9802: confirmed_close()[COPY_TICKET]})
    assert result.actions == [] and result.followed_positions == {} and result.position_orphans == []


def test_positions_are_not_followed_where_the_engine_says_so():
    result = plan(source_positions=(), position_closes=confirmed_close(),
                  positions_not_followed="broker-a is a netting account")
    assert result.actions == [] and result.positions_not_followed == "broker-a is a netting account"


def test_a_link_stays_while_either_position_is_open_and_goes_when_both_are_closed():
    assert plan().finished_links == []
    assert plan(source_positions=()).finished_links == []
    assert plan(positions=()).finished_links == []
    assert plan(source_positions=(), positions=()).finished_links == [SOURCE_TICKET]


def test_a_copy_position_no_link_records_is_adopted_with_todays_volumes():
    result = plan_target([], inputs(positions=(copy_position(),), source_positions=(source_position(volume=0.2),)))
    [link] = result.adopt
    assert (link.copy_ticket, link.status, link.volume, link.source_volume) == (COPY_TICKET, LinkStatus.FILLED,
                                                                                0.3, 0.2)


# ---- on_source_fill = "market" --------------------------------------------------------------------


def pending_copy_of_a_filled_source(price_open: float = 1.0851):
    order = source_order(SOURCE_TICKET, volume=0.3)
    copy = copy_of(order, COPY_TICKET)
    filled = ConfirmedOrphan(reason=f"orphan: source order #{SOURCE_TICKET} is filled", evidence="history: filled",
                             source_fate="filled")
    source = source_position(price_open=price_open)
    link = Link(source_ticket=SOURCE_TICKET, copy_ticket=COPY_TICKET, symbol="EURUSD.m", volume=0.3,
                source_volume=0.3)
    return copy, filled, source, link


LIVE = {"EURUSD.m": Quote(symbol="EURUSD.m", bid=1.09000, ask=1.09010, time=1_800_000_000)}  # a tick, not a spec


def market_settings(points: int = 20):
    return settings_(positions=positions_settings(on_source_fill=SourceFill.MARKET, max_entry_slippage_points=points))


def test_on_source_fill_market_opens_the_copy_at_market_within_the_slippage():
    copy, filled, source, link = pending_copy_of_a_filled_source(price_open=1.0900)  # ask 1.0901: 10 points
    result = plan_target([], inputs([copy], market_settings(), orphan_removals={COPY_TICKET: filled},
                                    source_positions=(source,), links={SOURCE_TICKET: link}, quotes=LIVE))
    [action] = result.actions
    assert (action.kind, action.ticket, action.order_type, action.volume) == (CommandKind.MARKET, COPY_TICKET,
                                                                              PositionType.BUY, 0.3)
    assert (action.price, action.deviation) == (1.09, 20) and action.comment == copy_tag(SOURCE_TICKET)


def test_on_source_fill_market_removes_the_copy_when_the_price_moved_too_far():
    copy, filled, source, link = pending_copy_of_a_filled_source(price_open=1.0880)  # 21 points away
    result = plan_target([], inputs([copy], market_settings(), orphan_removals={COPY_TICKET: filled},
                                    source_positions=(source,), links={SOURCE_TICKET: link}, quotes=LIVE))
    assert [(a.kind, a.ticket) for a in result.actions] == [(CommandKind.REMOVE, COPY_TICKET)]


def test_on_source_fill_market_is_only_for_a_source_that_filled():
    copy, _, _, link = pending_copy_of_a_filled_source(price_open=1.0900)
    cancelled = ConfirmedOrphan(reason="orphan: cancelled", evidence="history", source_fate="cancelled")
    result = plan_target([], inputs([copy], market_settings(), orphan_removals={COPY_TICKET: cancelled},
                                    source_positions=(), links={SOURCE_TICKET: link}))
    assert [a.kind for a in result.actions] == [CommandKind.REMOVE]


def test_a_sell_is_opened_at_the_bid():
    order = source_order(SOURCE_TICKET, order_type=3, volume=0.3, price_open=1.095, sl=1.1, tp=1.08)
    copy = copy_of(order, COPY_TICKET)
    filled = ConfirmedOrphan(reason="filled", evidence="history", source_fate="filled")
    source = source_position(type=PositionType.SELL, price_open=1.09002)  # bid 1.09000: 2 points
    result = plan_target([], inputs([copy], market_settings(points=5), orphan_removals={COPY_TICKET: filled},
                                    source_positions=(source,),
                                    quotes={"EURUSD.m": Quote(symbol="EURUSD.m", bid=1.09, ask=1.0901, time=1)}))
    [action] = result.actions
    assert (action.kind, action.order_type) == (CommandKind.MARKET, PositionType.SELL)


def test_on_source_fill_market_waits_for_a_live_price_rather_than_judge_on_an_old_one():
    copy, filled, source, link = pending_copy_of_a_filled_source(price_open=1.0900)
    result = plan_target([], inputs([copy], market_settings(), orphan_removals={COPY_TICKET: filled},
                                    source_positions=(source,), links={SOURCE_TICKET: link}))  # no tick yet
    assert result.actions == [] and [skip.reason for skip in result.skips] == [SkipReason.NOT_YET]


def test_on_source_fill_market_waits_while_the_pending_copy_is_frozen():
    copy, filled, source, link = pending_copy_of_a_filled_source(price_open=1.0900)
    frozen_spec = replace(EURUSD, freeze_level=1000)  # the copy at 1.085 sits within 1000 points of the ask
    result = plan_target([], inputs([copy], market_settings(), orphan_removals={COPY_TICKET: filled},
                                    source_positions=(source,), links={SOURCE_TICKET: link}, quotes=LIVE,
                                    specs={"EURUSD.m": frozen_spec, "GOLD": GOLD}))
    assert result.actions == [] and [skip.reason for skip in result.skips] == [SkipReason.FROZEN]


def test_a_filled_copy_whose_position_is_gone_ends_its_link_once_the_targets_deals_say_it_closed():
    waiting = plan(positions=())
    assert waiting.link_updates == [] and waiting.needed_copy_position_history == {COPY_TICKET}
    closed = {COPY_TICKET: PositionHistory(position_id=COPY_TICKET, closed=True, volume_in=0.3, volume_out=0.3,
                                           close_reason=4)}  # DEAL_REASON_SL
    [update] = plan(positions=(), position_history=closed).link_updates
    assert (update.status, update.detail) == (LinkStatus.CLOSED,
                                               f"its copy's position #{COPY_TICKET} was closed by its stop loss")


def test_a_position_beside_a_pending_copy_of_the_same_source_does_not_take_its_link():
    # The copy filled in part (a position of 0.1) and its rest was replaced by a new pending copy #9701.
    order = source_order(SOURCE_TICKET, volume=0.3)
    pending = copy_of(order, COPY_TICKET + 1)
    link = Link(source_ticket=SOURCE_TICKET, copy_ticket=COPY_TICKET + 1, symbol="EURUSD.m", volume=0.3,
                source_volume=0.3)
    result = plan_target([order], inputs([pending], positions=(copy_position(volume=0.1),),
                                         links={SOURCE_TICKET: link}))
    assert result.adopt == []
