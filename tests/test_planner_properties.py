"""Property: for any sequence of source edits, a sync leaves every target holding exactly the copies its
settings call for, with the right fields, and a second sync sends nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from config import CopySettings, OrderKind, VolumeMode
from coordinator.domain.planner import Link, LinkStatus, TargetInputs, plan_target
from coordinator.domain.sizing import size_volume
from protocol import Command, CommandKind, PendingOrder, Quote
from tests.test_planner import EURUSD, GOLD, inputs, settings_

POINT = {"EURUSD": 0.00001, "XAUUSD": 0.01}
DIGITS = {"EURUSD": 5, "XAUUSD": 2}
MARKET = {"EURUSD": (1.08500, 1.08510), "XAUUSD": (2000.00, 2000.30)}
TARGET_SYMBOL = {"EURUSD": "EURUSD.m", "XAUUSD": "GOLD"}
TARGET_QUOTES = {"EURUSD.m": Quote(symbol="EURUSD.m", bid=1.08500, ask=1.08510),
                 "GOLD": Quote(symbol="GOLD", bid=2000.00, ask=2000.30)}
SPECS = {"EURUSD.m": EURUSD, "GOLD": replace(GOLD, tick_size=0.01)}


def priced_order(ticket: int, order_type: int, symbol: str, volume: float, distance: int, sl: int, tp: int,
                 setup: int) -> PendingOrder:
    """A valid pending order ``distance`` points from the source market, SL/TP ``sl``/``tp`` points from entry."""
    point, digits = POINT[symbol], DIGITS[symbol]
    bid, ask = MARKET[symbol]
    buy = order_type in (2, 4, 6)
    below = order_type in (2, 5, 7)
    reference = ask if buy else bid
    price = round(reference - distance * point if below else reference + distance * point, digits)
    stoplimit = 0.0
    if order_type in (6, 7):
        stoplimit = round(price - distance / 2 * point if order_type == 6 else price + distance / 2 * point, digits)
    entry = stoplimit or price
    return PendingOrder(
        ticket=ticket, symbol=symbol, type=order_type, volume=volume, price_open=price, price_stoplimit=stoplimit,
        sl=round(entry - sl * point if buy else entry + sl * point, digits) if sl else 0.0,
        tp=round(entry + tp * point if buy else entry - tp * point, digits) if tp else 0.0,
        type_time=0, time_expiration=0, magic=0, comment="", time_setup_msc=setup,
    )


class TargetModel:
    """A target terminal and the coordinator's links, as far as the planner can tell them apart."""

    def __init__(self) -> None:
        self.orders: dict[int, PendingOrder] = {}
        self.links: dict[int, Link] = {}
        self.next_ticket = 90_000_000

    def apply(self, command: Command, source: dict[int, PendingOrder]) -> None:
        if command.kind in (CommandKind.REMOVE, CommandKind.REPLACE):
            del self.orders[command.ticket]
            self.links.pop(command.source_ticket, None)
        if command.kind in (CommandKind.PLACE, CommandKind.REPLACE):
            assert not any(o.magic == command.source_ticket for o in self.orders.values()), "duplicate copy"
            self.next_ticket += 1
            self.orders[self.next_ticket] = PendingOrder(
                ticket=self.next_ticket, symbol=command.symbol, type=command.order_type, volume=command.volume,
                price_open=command.price, price_stoplimit=command.stoplimit, sl=command.sl, tp=command.tp,
                type_time=command.type_time, time_expiration=command.expiration, magic=command.magic,
                comment=command.comment)
            self.links[command.source_ticket] = Link(
                source_ticket=command.source_ticket, copy_ticket=self.next_ticket, symbol=command.symbol,
                volume=command.volume, source_volume=command.source_volume, status=LinkStatus.ACTIVE)
        if command.kind is CommandKind.MODIFY:
            old = self.orders[command.ticket]
            self.orders[command.ticket] = replace(old, price_open=command.price, price_stoplimit=command.stoplimit,
                                                  sl=command.sl, tp=command.tp, type_time=command.type_time,
                                                  time_expiration=command.expiration)

    def plan(self, source: dict[int, PendingOrder], copy_settings: CopySettings):
        return plan_target(list(source.values()), self.inputs(copy_settings))

    def inputs(self, copy_settings: CopySettings) -> TargetInputs:
        return inputs(list(self.orders.values()), copy_settings, specs=SPECS, quotes=TARGET_QUOTES,
                      links=dict(self.links))

    def sync(self, source: dict[int, PendingOrder], copy_settings: CopySettings) -> int:
        """Plan and apply until nothing is left to do (orphans removed at once); return the rounds needed."""
        for rounds in range(1, 6):
            plan = self.plan(source, copy_settings)
            for orphan in plan.orphans:
                del self.orders[orphan.ticket]
                self.links.pop(orphan.magic, None)
            if not plan.actions and not plan.orphans:
                return rounds
            for command in plan.actions:
                self.apply(command, source)
        raise AssertionError("the plans did not converge in 5 rounds")


ADD = st.tuples(st.just("add"), st.sampled_from([2, 3, 4, 5, 6, 7]), st.sampled_from(["EURUSD", "XAUUSD"]),
                st.sampled_from([0.01, 0.1, 0.33, 1.0, 2.5]), st.integers(50, 800), st.sampled_from([0, 40, 300]),
                st.sampled_from([0, 60, 500]))
MOVE = st.tuples(st.just("move"), st.integers(0, 20), st.integers(50, 800))
RESIZE = st.tuples(st.just("resize"), st.integers(0, 20), st.sampled_from([0.02, 0.2, 0.5, 3.0]))
STOPS = st.tuples(st.just("stops"), st.integers(0, 20), st.sampled_from([0, 25, 200]), st.sampled_from([0, 80, 400]))
DELETE = st.tuples(st.just("delete"), st.integers(0, 20))
EDITS = st.lists(st.one_of(ADD, ADD, MOVE, RESIZE, STOPS, DELETE), min_size=1, max_size=12)


def apply_edit(source: dict[int, tuple], edit: tuple, counter: list[int]) -> None:
    kind = edit[0]
    if kind == "add":
        counter[0] += 1
        _, order_type, symbol, volume, distance, sl, tp = edit
        source[counter[0]] = (order_type, symbol, volume, distance, sl, tp, counter[0])
        return
    if not source:
        return
    ticket = sorted(source)[edit[1] % len(source)]
    order_type, symbol, volume, distance, sl, tp, setup = source[ticket]
    if kind == "move":
        source[ticket] = (order_type, symbol, volume, edit[2], sl, tp, setup)
    elif kind == "resize":
        source[ticket] = (order_type, symbol, edit[2], distance, sl, tp, setup)
    elif kind == "stops":
        source[ticket] = (order_type, symbol, volume, distance, edit[2], edit[3], setup)
    else:
        del source[ticket]


@settings(max_examples=150, deadline=None)
@given(edits=EDITS, types=st.sets(st.sampled_from(list(OrderKind)), min_size=1),
       multiplier=st.sampled_from([0.1, 0.5, 1.0, 2.5]), fixed=st.booleans())
def test_any_sequence_of_source_edits_converges_to_exactly_the_right_copies(edits, types, multiplier, fixed):
    copy_settings = settings_(order_types=frozenset(types), lot_multiplier=multiplier,
                              volume_mode=VolumeMode.FIXED if fixed else VolumeMode.MULTIPLIER,
                              fixed_lot=0.2 if fixed else None)
    model = TargetModel()
    described: dict[int, tuple] = {}
    counter = [1000]
    for edit in edits:
        apply_edit(described, edit, counter)
        source = {ticket: priced_order(ticket, *fields) for ticket, fields in described.items()}
        model.sync(source, copy_settings)

        # A second sync on the same facts sends nothing.
        second = model.plan(source, copy_settings)
        assert second.actions == [] and second.orphans == []

        # Exactly the copies the settings call for, with the right fields.
        wanted = {t: o for t, o in source.items() if OrderKind.from_mt5_type(o.type) in types}
        copies = {o.magic: o for o in model.orders.values()}
        assert len(copies) == len(model.orders), "two copies of one source order"
        assert set(copies) == set(wanted)
        for ticket, copy in copies.items():
            original = wanted[ticket]
            spec = SPECS[TARGET_SYMBOL[original.symbol]]
            expected_volume = size_volume(original.volume, copy_settings, spec,
                                          source_contract_size=spec.contract_size).volume
            assert copy.symbol == TARGET_SYMBOL[original.symbol]
            assert copy.type == original.type
            assert abs(copy.volume - expected_volume) < 1e-9
            assert (copy.price_open, copy.price_stoplimit, copy.sl, copy.tp) == (
                original.price_open, original.price_stoplimit, original.sl, original.tp)
