"""The pure planner: what one target must receive so that it mirrors the source.

``plan_target`` is a function of its inputs alone (no I/O, no clock): the source's pending orders, the
target's orders, its settings and symbol specifications, the copier's links and what is in flight. It
returns the commands to send and an account of everything it did not do and why. The coordinator runs it
on every source change and on a timer; running it twice on the same facts yields the same plan, and a
plan computed after its commands took effect is empty. That is what makes re-planning safe.

No place is ever planned for a source ticket that (a) has a copy on the target (magic = source ticket and
the copier's comment tag), (b) has a link in the state (the copier placed it earlier), or (c) has a command
in flight. (a) survives a lost state file, (b) survives a copy that filled or was deleted, (c) covers the
time between sending and seeing the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from config import CopySettings, OrderKind
from coordinator.sizing import round_price, size_volume
from protocol import Command, CommandKind, PendingOrder, SymbolSpec
from protocol.tags import copy_tag, parse_tag

STOP_LIMIT_TYPES = frozenset({6, 7})


class SkipReason(str, Enum):
    """Why a source order is not (yet) on a target. ``waiting`` reasons resolve by themselves."""

    SYMBOL_MISSING = "symbol not found on target"
    SYMBOL_PENDING = "waiting for the target's symbol specification"
    CAPPED = "waiting: target is at its pending-order cap"
    BACKOFF = "waiting to retry after a failure"
    FAILED = "the target's broker rejected it"

    @property
    def waiting(self) -> bool:
        return self in (SkipReason.SYMBOL_PENDING, SkipReason.CAPPED, SkipReason.BACKOFF)


@dataclass(frozen=True, slots=True)
class Skip:
    source_ticket: int
    symbol: str
    reason: SkipReason
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """The copier's record that it placed ``copy_ticket`` as the copy of ``source_ticket``."""

    source_ticket: int
    copy_ticket: int
    symbol: str = ""
    volume: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetInputs:
    name: str
    settings: CopySettings
    orders: Sequence[PendingOrder]
    specs: Mapping[str, SymbolSpec]
    missing_symbols: frozenset[str] = frozenset()
    links: Mapping[int, Link] = field(default_factory=dict)
    in_flight: frozenset[int] = frozenset()  # source tickets with a command outstanding
    backoff: Mapping[int, str] = field(default_factory=dict)  # source ticket -> why it waits to retry


@dataclass(slots=True)
class TargetPlan:
    commands: list[Command] = field(default_factory=list)  # command_id and deadline are filled by the sender
    skips: list[Skip] = field(default_factory=list)
    filtered: list[int] = field(default_factory=list)  # order types this target does not copy
    in_sync: list[int] = field(default_factory=list)  # source tickets whose copy is there
    adopt: list[Link] = field(default_factory=list)  # copies found on the target that no link records
    copied_earlier: list[int] = field(default_factory=list)  # linked, but the copy is no longer pending
    orphans: list[PendingOrder] = field(default_factory=list)  # our copies whose source is not pending
    duplicates: list[PendingOrder] = field(default_factory=list)  # a second copy of one source (never ours to add)
    needed_symbols: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)  # volume adjustments and the like, for the log


def our_copies(orders: Sequence[PendingOrder]) -> tuple[dict[int, PendingOrder], list[PendingOrder]]:
    """The target's orders that are copies placed by the copier, by source ticket, and any extra copies."""
    copies: dict[int, PendingOrder] = {}
    extras: list[PendingOrder] = []
    for order in orders:
        source_ticket = parse_tag(order.comment)
        if source_ticket is None or order.magic != source_ticket:
            continue  # a manual order, another EA's, or a comment someone typed: never ours
        if source_ticket in copies:
            extras.append(order)
        else:
            copies[source_ticket] = order
    return copies, extras


def plan_target(source_orders: Sequence[PendingOrder], target: TargetInputs) -> TargetPlan:
    plan = TargetPlan()
    copies, plan.duplicates = our_copies(target.orders)
    source_by_ticket = {order.ticket: order for order in source_orders}
    plan.orphans = [copy for ticket, copy in sorted(copies.items()) if ticket not in source_by_ticket]

    capacity = _free_slots(target, copies)
    # Oldest source orders first: when the cap leaves room for some, the earliest intent goes out first.
    for order in sorted(source_orders, key=lambda o: (o.time_setup_msc, o.ticket)):
        kind = OrderKind.from_mt5_type(order.type)
        if kind is None:
            continue
        if kind not in target.settings.order_types:
            plan.filtered.append(order.ticket)
            continue
        copy = copies.get(order.ticket)
        if copy is not None:
            plan.in_sync.append(order.ticket)
            # A copy whose own command is still in flight is linked by its result, not adopted.
            if order.ticket not in target.links and order.ticket not in target.in_flight:
                plan.adopt.append(
                    Link(source_ticket=order.ticket, copy_ticket=copy.ticket, symbol=copy.symbol, volume=copy.volume)
                )
            continue
        if order.ticket in target.links:
            plan.copied_earlier.append(order.ticket)
            continue
        if order.ticket in target.in_flight:
            continue
        symbol = target.settings.map_symbol(order.symbol)
        if order.ticket in target.backoff:
            plan.skips.append(Skip(order.ticket, symbol, SkipReason.BACKOFF, target.backoff[order.ticket]))
            continue
        if symbol in target.missing_symbols:
            plan.skips.append(Skip(order.ticket, symbol, SkipReason.SYMBOL_MISSING,
                                   f"{symbol} (from source {order.symbol}) does not exist on {target.name}"))
            continue
        spec = target.specs.get(symbol)
        if spec is None:
            plan.needed_symbols.add(symbol)
            plan.skips.append(Skip(order.ticket, symbol, SkipReason.SYMBOL_PENDING))
            continue
        if capacity is not None and capacity <= 0:
            plan.skips.append(Skip(order.ticket, symbol, SkipReason.CAPPED,
                                   f"max_pending_orders = {target.settings.max_pending_orders}"))
            continue
        plan.commands.append(_place_command(order, symbol, spec, target, plan))
        if capacity is not None:
            capacity -= 1
    return plan


def _free_slots(target: TargetInputs, copies: Mapping[int, PendingOrder]) -> int | None:
    cap = target.settings.max_pending_orders
    if cap is None:
        return None
    pending_places = len(target.in_flight - copies.keys())
    return cap - len(copies) - pending_places


def _place_command(
    order: PendingOrder, symbol: str, spec: SymbolSpec, target: TargetInputs, plan: TargetPlan
) -> Command:
    sized = size_volume(order.volume, target.settings, spec)
    if sized.note:
        plan.notes.append(f"{target.name}: source #{order.ticket} {order.volume} lots -> {sized.volume}: {sized.note}")
    return Command(
        command_id="",
        kind=CommandKind.PLACE,
        source_ticket=order.ticket,
        symbol=symbol,
        order_type=order.type,
        volume=sized.volume,
        price=round_price(order.price_open, spec),
        stoplimit=round_price(order.price_stoplimit, spec) if order.type in STOP_LIMIT_TYPES else 0.0,
        sl=round_price(order.sl, spec),
        tp=round_price(order.tp, spec),
        type_time=order.type_time,
        expiration=order.time_expiration if order.type_time in (2, 3) else 0,  # SPECIFIED, SPECIFIED_DAY
        magic=order.ticket,
        comment=copy_tag(order.ticket),
    )
