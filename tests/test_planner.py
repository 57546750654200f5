"""The pure planner and the sizing rules it uses."""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec.structs import replace

from config import (
    Backend,
    CopySettings,
    OrderKind,
    OutOfBounds,
    Role,
    TargetConfig,
    TerminalConfig,
    VolumeMode,
    VolumeRounding,
)
from coordinator.domain.desired import TargetContext
from coordinator.domain.orphans import ConfirmedOrphan
from coordinator.domain.planner import Link, LinkStatus, LinkUpdate, SkipReason, TargetInputs, plan_target
from coordinator.domain.sizing import Accounts, round_price, size_volume, snap, step_decimals
from protocol import ClosedOrder, CommandKind, PendingOrder, PositionFacts, Quote, SymbolSpec
from protocol.mt5 import OrderState
from protocol.tags import copy_tag

EURUSD = SymbolSpec(name="EURUSD.m", digits=5, point=0.00001, tick_size=0.00001, contract_size=100_000,
                    volume_min=0.01, volume_max=50.0, volume_step=0.01, volume_limit=0.0, trade_mode=4,
                    stops_level=10, freeze_level=0, expiration_mode=15, filling_mode=1, order_mode=127)
GOLD = replace(EURUSD, name="GOLD", digits=2, point=0.01, tick_size=0.05, contract_size=100, volume_step=0.1,
               volume_min=0.1, volume_max=20.0)


def settings_(**overrides) -> CopySettings:
    values = dict(lot_multiplier=1.0, min_lot=None, max_lot=None, order_types=frozenset(OrderKind), symbol_suffix=".m",
                  symbol_prefix="", symbol_map=(("XAUUSD", "GOLD"),), max_pending_orders=None, enabled=True)
    values.update(overrides)
    return CopySettings(**values)


TERMINAL = TerminalConfig(name="broker-a", role=Role.TARGET, backend=Backend.SIM, path=Path("t"), login=2001,
                          server="S", password_env=None, remote=False, poll_interval=0.1, portable=False,
                          connect_timeout=60.0)
# The source's own symbols, as its worker describes them: the same contract sizes as the target's by default.
SOURCE_SPECS = {"EURUSD": replace(EURUSD, name="EURUSD"), "XAUUSD": replace(GOLD, name="XAUUSD")}
QUOTES = {"EURUSD.m": Quote(symbol="EURUSD.m", bid=1.09000, ask=1.09010),
          "GOLD": Quote(symbol="GOLD", bid=2660.0, ask=2660.3)}


def source_order(ticket: int, order_type: int = 2, symbol: str = "EURUSD", volume: float = 0.1, **fields):
    values = dict(ticket=ticket, symbol=symbol, type=order_type, volume=volume, price_open=1.08500,
                  price_stoplimit=0.0, sl=1.08000, tp=1.09500, type_time=0, time_expiration=0, magic=0,
                  comment="", time_setup_msc=ticket)
    values.update(fields)
    return PendingOrder(**values)


def copy_of(order: PendingOrder, ticket: int, symbol: str = "EURUSD.m", volume: float | None = None) -> PendingOrder:
    return replace(order, ticket=ticket, symbol=symbol, volume=order.volume if volume is None else volume,
                   magic=order.ticket, comment=copy_tag(order.ticket))


def inputs(orders=(), settings=None, *, accounts=None, source_offset=0, target_offset=0, source_quotes=None,
           source_specs=None, **fields) -> TargetInputs:
    settings = settings or settings_()
    values = dict(name="broker-a", config=TargetConfig(terminal=TERMINAL, copy=settings), orders=tuple(orders),
                  specs={"EURUSD.m": EURUSD, "GOLD": GOLD}, quotes=QUOTES,
                  context=TargetContext(settings=settings, accounts=accounts or Accounts(),
                                        source_offset=source_offset, target_offset=target_offset,
                                        source_quotes=source_quotes or {},
                                        source_specs=SOURCE_SPECS if source_specs is None else source_specs))
    values.update(fields)
    return TargetInputs(**values)


# ---- placing -----------------------------------------------------------------------------------


def test_new_source_order_is_placed_with_magic_tag_and_mapped_symbol():
    order = source_order(501, order_type=6, price_open=1.095, price_stoplimit=1.093, sl=1.09, tp=1.1)
    plan = plan_target([order], inputs(settings=settings_(lot_multiplier=2.0)))
    [command] = plan.actions
    assert command.kind is CommandKind.PLACE
    assert (command.symbol, command.order_type, command.volume) == ("EURUSD.m", 6, 0.2)
    assert (command.price, command.stoplimit, command.sl, command.tp) == (1.095, 1.093, 1.09, 1.1)
    assert command.magic == 501 and command.comment == copy_tag(501)


def test_symbol_map_wins_over_the_suffix_and_prices_snap_to_the_tick_size():
    order = source_order(502, symbol="XAUUSD", price_open=2650.07, sl=2640.02, tp=2700.0, volume=0.25)
    [command] = plan_target([order], inputs()).actions
    assert command.symbol == "GOLD"
    assert (command.price, command.sl, command.tp) == (2650.05, 2640.0, 2700.0)
    assert command.volume == 0.2  # 0.25 rounds down to the 0.1 step: never more than the sizing gives


def test_expiration_is_copied_for_specified_orders_only():
    specified = source_order(503, type_time=2, time_expiration=1_900_000_000)
    gtc = source_order(504, type_time=0, time_expiration=123)
    commands = {c.source_ticket: c for c in plan_target([specified, gtc], inputs()).actions}
    assert (commands[503].type_time, commands[503].expiration) == (2, 1_900_000_000)
    assert (commands[504].type_time, commands[504].expiration) == (0, 0)


def test_stoplimit_price_is_only_sent_for_stop_limit_orders():
    order = source_order(505, order_type=2, price_stoplimit=1.07)
    assert plan_target([order], inputs()).actions[0].stoplimit == 0.0


def test_filtered_types_are_never_placed():
    orders = [source_order(506, order_type=4), source_order(507, order_type=2)]
    plan = plan_target(orders, inputs(settings=settings_(order_types=frozenset({OrderKind.BUY_LIMIT}))))
    assert [c.source_ticket for c in plan.actions] == [507]
    assert plan.filtered == [506]


def test_market_orders_on_the_source_are_ignored():
    assert plan_target([source_order(508, order_type=0)], inputs()).actions == []


# ---- never twice -------------------------------------------------------------------------------


def test_existing_copy_on_the_target_means_nothing_to_do_and_is_adopted_without_a_link():
    order = source_order(510)
    plan = plan_target([order], inputs([copy_of(order, 9001)]))
    assert plan.actions == [] and plan.in_sync == [510]
    assert plan.adopt == [Link(source_ticket=510, copy_ticket=9001, symbol="EURUSD.m", volume=0.1,
                               source_volume=0.1)]


def test_copy_seen_before_its_result_arrives_is_not_adopted():
    order = source_order(516)
    plan = plan_target([order], inputs([copy_of(order, 9008)], in_flight=frozenset({516})))
    assert plan.actions == [] and plan.adopt == []


def test_copy_gone_with_unknown_fate_waits_for_its_history():
    order = source_order(511)
    plan = plan_target([order], inputs(links={511: Link(source_ticket=511, copy_ticket=9002)}))
    assert plan.actions == [] and plan.needed_history == {9002}
    assert plan.skips[0].reason is SkipReason.HISTORY_PENDING


@pytest.mark.parametrize("state", [OrderState.NOT_IN_HISTORY_YET, OrderState.NO_RECORD])
def test_copy_gone_whose_history_has_no_record_yet_or_only_from_one_look_waits_for_its_history(state):
    order = source_order(520)
    closed = {9012: ClosedOrder(ticket=9012, symbol="EURUSD.m", type=2, state=state, magic=520, comment="")}
    plan = plan_target([order], inputs(links={520: Link(source_ticket=520, copy_ticket=9012)}, closed=closed))
    assert plan.actions == [] and plan.link_updates == [] and plan.needed_history == {9012}
    assert plan.skips[0].reason is SkipReason.HISTORY_PENDING


def test_copy_gone_with_no_record_after_the_bounded_looks_is_decided_deleted():
    order = source_order(521)
    closed = {9013: ClosedOrder(ticket=9013, symbol="EURUSD.m", type=2, state=OrderState.NO_RECORD, magic=521,
                                comment="")}
    plan = plan_target([order], inputs(links={521: Link(source_ticket=521, copy_ticket=9013)}, closed=closed,
                                       no_record=frozenset({9013})))
    assert plan.actions == [] and not plan.needed_history
    assert [update.status for update in plan.link_updates] == [LinkStatus.DELETED]


@pytest.mark.parametrize(("state", "status"), [(OrderState.FILLED, LinkStatus.FILLED),
                                               (OrderState.EXPIRED, LinkStatus.EXPIRED),
                                               (OrderState.CANCELED, LinkStatus.DELETED),
                                               (OrderState.REJECTED, LinkStatus.DELETED)])
def test_copy_that_filled_expired_or_was_deleted_is_not_placed_again(state, status):
    order = source_order(517)
    closed = {9010: ClosedOrder(ticket=9010, symbol="EURUSD.m", type=2, state=state, magic=517, comment="")}
    plan = plan_target([order], inputs(links={517: Link(source_ticket=517, copy_ticket=9010)}, closed=closed))
    assert plan.actions == []
    assert plan.link_updates == [LinkUpdate(517, 9010, status, plan.link_updates[0].detail)]
    assert plan.kept_out and plan.kept_out[0][0] == 517


def test_copy_that_became_a_position_counts_as_filled_without_history():
    order = source_order(518)
    position = PositionFacts(ticket=9011, identifier=9011, symbol="EURUSD.m", type=0, volume=0.1, magic=518,
                             comment=copy_tag(518), sl=order.sl, tp=order.tp)  # a fill carries the order's levels
    plan = plan_target([order], inputs(links={518: Link(source_ticket=518, copy_ticket=9011)}, positions=[position]))
    assert plan.actions == [] and plan.link_updates[0].status is LinkStatus.FILLED


def test_deleted_copy_is_placed_again_when_the_settings_say_so():
    order = source_order(519)
    links = {519: Link(source_ticket=519, copy_ticket=9012, status=LinkStatus.DELETED)}
    assert plan_target([order], inputs(links=links)).actions == []
    again = plan_target([order], inputs(links=links, settings=settings_(replace_deleted_copies=True)))
    assert [c.kind for c in again.actions] == [CommandKind.PLACE]


def test_copy_removed_half_way_through_a_replacement_is_placed():
    order = source_order(520)
    links = {520: Link(source_ticket=520, copy_ticket=9013, status=LinkStatus.REPLACING)}
    assert [c.kind for c in plan_target([order], inputs(links=links)).actions] == [CommandKind.PLACE]


def test_order_with_a_command_in_flight_is_not_placed_again():
    assert plan_target([source_order(512)], inputs(in_flight=frozenset({512}))).actions == []


def test_foreign_orders_with_the_source_ticket_as_magic_are_not_copies():
    order = source_order(513)
    another_ea = replace(order, ticket=9003, magic=513, comment="grid EA")
    typed_by_hand = replace(order, ticket=9004, magic=0, comment=copy_tag(513))
    plan = plan_target([order], inputs([another_ea, typed_by_hand]))
    assert [c.source_ticket for c in plan.actions] == [513]
    assert plan.orphans == []


def test_second_copy_of_one_source_is_removed_and_the_first_kept():
    order = source_order(514)
    plan = plan_target([order], inputs([copy_of(order, 9005), copy_of(order, 9006)]))
    assert [d.ticket for d in plan.duplicates] == [9006]
    assert [(c.kind, c.ticket) for c in plan.actions] == [(CommandKind.REMOVE, 9006)]


def test_copy_whose_source_is_gone_is_reported_as_an_orphan():
    gone = source_order(515)
    plan = plan_target([], inputs([copy_of(gone, 9007)]))
    assert [o.ticket for o in plan.orphans] == [9007] and plan.actions == []


def test_an_orphan_the_policy_confirmed_is_removed_by_the_plan_under_the_rules_of_every_removal():
    gone, other = source_order(515), source_order(516)
    orphans = [copy_of(gone, 9007), copy_of(other, 9008)]
    confirmed = {9007: ConfirmedOrphan("orphan: source order #515 is cancelled", "the history says so"),
                 9008: ConfirmedOrphan("orphan: source order #516 is gone", "not found in 3 checks")}
    plan = plan_target([], inputs(orphans, orphan_removals=confirmed))
    assert [(c.kind, c.ticket) for c in plan.actions] == [(CommandKind.REMOVE, 9007), (CommandKind.REMOVE, 9008)]
    # Each removal carries its reason and its evidence to the log and the history.
    assert [(c.reason, c.evidence) for c in plan.actions] == [(confirmed[9007].reason, confirmed[9007].evidence),
                                                              (confirmed[9008].reason, confirmed[9008].evidence)]
    assert all(c.orphan_removal for c in plan.actions)
    # Not while a command for it is in flight or its last removal backs off; never into a closed market.
    waiting = plan_target([], inputs(orphans, orphan_removals=confirmed, in_flight=frozenset({515}),
                                     backoff={516: "requote"}))
    assert waiting.actions == []
    closed = plan_target([], inputs(orphans, orphan_removals=confirmed, closed_markets=frozenset({"EURUSD.m"})))
    assert closed.actions == [] and {s.reason for s in closed.skips} == {SkipReason.MARKET_CLOSED}


def test_an_unconfirmed_orphan_is_only_reported():
    plan = plan_target([], inputs([copy_of(source_order(515), 9007)], orphan_removals={}))
    assert plan.actions == [] and [o.ticket for o in plan.orphans] == [9007]


# ---- skips -------------------------------------------------------------------------------------


def test_missing_symbol_is_skipped_with_a_reason():
    plan = plan_target([source_order(520, symbol="GBPUSD")], inputs(missing_symbols=frozenset({"GBPUSD.m"})))
    [skip] = plan.skips
    assert skip.reason is SkipReason.SYMBOL_MISSING and "GBPUSD.m" in skip.detail
    assert plan.actions == []


def test_unknown_symbol_specification_is_requested_first():
    plan = plan_target([source_order(521, symbol="GBPUSD")], inputs())
    assert plan.needed_symbols == {"GBPUSD.m"}
    assert plan.skips[0].reason is SkipReason.SYMBOL_PENDING and plan.actions == []


def test_pending_order_cap_copies_oldest_first_up_to_the_cap():
    orders = [source_order(530 + i, time_setup_msc=1000 - i) for i in range(5)]  # 534 is the oldest
    existing = copy_of(source_order(599), 9100)
    plan = plan_target([*orders, source_order(599)], inputs([existing], settings=settings_(max_pending_orders=3)))
    assert [c.source_ticket for c in plan.actions] == [534, 533]
    assert {s.source_ticket for s in plan.skips if s.reason is SkipReason.CAPPED} == {530, 531, 532}


def test_cap_counts_places_in_flight():
    orders = [source_order(540), source_order(541)]
    plan = plan_target(orders, inputs(settings=settings_(max_pending_orders=1), in_flight=frozenset({540})))
    assert plan.actions == [] and plan.skips[0].reason is SkipReason.CAPPED


def test_order_in_backoff_waits():
    plan = plan_target([source_order(550)], inputs(backoff={550: "market closed"}))
    assert plan.actions == [] and plan.skips[0].reason is SkipReason.BACKOFF


# ---- sizing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("step", "decimals"), [(0.01, 2), (0.1, 1), (1.0, 0), (0.5, 1), (0.001, 3), (0.05, 2)])
def test_step_decimals(step, decimals):
    assert step_decimals(step) == decimals


def test_snap_gives_clean_multiples():
    assert snap(0.1 * 3, 0.01) == 0.3
    assert snap(0.125, 0.01) == 0.13
    assert snap(1.26, 0.5) == 1.5


@pytest.mark.parametrize(
    ("volume", "multiplier", "min_lot", "max_lot", "expected"),
    [
        (0.1, 1.5, None, None, 0.15),
        (0.33, 1.0, None, None, 0.33),
        (0.01, 0.1, None, None, 0.01),  # below the broker minimum: raised to it
        (0.01, 0.5, 0.05, None, 0.05),  # config floor
        (10.0, 1.0, None, 2.0, 2.0),  # config cap
        (100.0, 1.0, None, None, 50.0),  # broker maximum, never "half of it"
    ],
)
def test_size_volume(volume, multiplier, min_lot, max_lot, expected):
    sized = size_volume(volume, settings_(lot_multiplier=multiplier, min_lot=min_lot, max_lot=max_lot), EURUSD,
                        source_contract_size=EURUSD.contract_size)
    assert sized.volume == expected


def test_rounding_never_exceeds_max_lot():
    # step 0.1: 0.25 would round up to 0.3
    sized = size_volume(1.0, settings_(max_lot=0.25), GOLD, source_contract_size=GOLD.contract_size)
    assert sized.volume == 0.2


def test_clamping_is_explained():
    assert "raised to the minimum 0.01" in size_volume(0.001, settings_(), EURUSD,
                                                       source_contract_size=EURUSD.contract_size).note


# ---- field trials: sizing never gives more than the configured sizing (issue 7, points 1 and 2) ---------

COARSE = replace(EURUSD, volume_min=0.1, volume_step=0.1)  # volume_min = volume_step = 0.1


def test_a_volume_is_rounded_down_to_the_step_by_default_and_to_the_nearest_on_request():
    down = size_volume(0.157, settings_(), EURUSD, source_contract_size=EURUSD.contract_size)
    nearest = size_volume(0.157, settings_(volume_rounding=VolumeRounding.NEAREST), EURUSD,
                          source_contract_size=EURUSD.contract_size)
    assert (down.volume, nearest.volume) == (0.15, 0.16)


def test_half_the_minimum_is_skipped_with_its_reason_under_skip_never_rounded_up():
    settings = settings_(lot_multiplier=0.5, volume_out_of_bounds=OutOfBounds.SKIP)
    sized = size_volume(0.1, settings, COARSE, source_contract_size=COARSE.contract_size)
    assert sized.volume == 0.0
    assert "below the minimum 0.1" in sized.problem and "skip" in sized.problem
    # The planner reports it and sends nothing.
    plan = plan_target([source_order(1, volume=0.1)], inputs(settings=settings, specs={"EURUSD.m": COARSE}))
    assert plan.actions == []
    [skip] = plan.skips
    assert skip.reason is SkipReason.CANNOT_COPY and "below the minimum 0.1" in skip.detail


def test_half_the_minimum_is_raised_under_clamp_and_says_so():
    settings = settings_(lot_multiplier=0.5)
    sized = size_volume(0.1, settings, COARSE, source_contract_size=COARSE.contract_size)
    assert sized.volume == 0.1
    assert sized.note == "0.05 raised to the minimum 0.1"
    plan = plan_target([source_order(1, volume=0.1)], inputs(settings=settings, specs={"EURUSD.m": COARSE}))
    [command] = plan.actions
    assert command.volume == 0.1 and command.adjustment == "0.05 raised to the minimum 0.1"


def test_lots_follow_the_contract_sizes_so_the_notional_matches():
    us500_source = replace(EURUSD, name="US500", contract_size=1.0, volume_min=0.1, volume_step=0.1)
    us500_target = replace(us500_source, name="US500.m", contract_size=10.0)
    settings = settings_()
    sized = size_volume(2.0, settings, us500_target, source_contract_size=1.0)
    assert sized.volume == 0.2
    assert "scaled to 0.2 for the contract sizes (source 1, target 10)" in sized.note
    order = source_order(7, symbol="US500", volume=2.0, price_open=5000.0, sl=0.0, tp=0.0)
    plan = plan_target([order], inputs(settings=settings, specs={"US500.m": us500_target},
                                       quotes={"US500.m": Quote(symbol="US500.m", bid=5100.0, ask=5100.5)},
                                       source_specs={"US500": us500_source}))
    [command] = plan.actions
    assert command.volume == 0.2 and "contract sizes" in command.adjustment
    # Then the multiplier applies.
    assert size_volume(2.0, settings_(lot_multiplier=3.0), us500_target, source_contract_size=1.0).volume == 0.6


def test_contract_scaling_can_be_turned_off_and_never_touches_a_fixed_lot():
    target = replace(EURUSD, contract_size=10_000)
    assert size_volume(0.1, settings_(scale_by_contract_size=False), target).volume == 0.1
    fixed = settings_(volume_mode=VolumeMode.FIXED, fixed_lot=0.3)
    assert size_volume(0.1, fixed, target).volume == 0.3


def test_an_unknown_source_contract_size_waits_instead_of_guessing():
    plan = plan_target([source_order(1)], inputs(source_specs={}))
    assert plan.actions == []
    [skip] = plan.skips
    assert skip.reason is SkipReason.NOT_YET and "contract size" in skip.detail


def test_round_price_keeps_zero_and_snaps():
    assert round_price(0.0, EURUSD) == 0.0
    assert round_price(1.0850049, EURUSD) == 1.085
    assert round_price(2650.07, GOLD) == 2650.05
