"""The pure planner: what one target must receive so that it mirrors the source.

``plan_target`` is a function of its inputs alone (no I/O, no clock): the source's pending orders, the
target's orders, positions and history, its settings, symbol specifications, prices and clock, the
copier's links and what is in flight. It returns the actions to take (``coordinator/domain/actions.py``: each with
its reason and its link move; they become wire commands only when sent) and an account of everything it did
not do and why. The coordinator runs it on every change and on a timer; running it twice on the same facts
yields the same plan, and a plan computed after its actions took effect is empty. That is what makes
re-planning safe.

No place is ever planned for a source ticket that (a) has a copy on the target (magic = source ticket and
the copier's comment tag), (b) has a link in the state whose copy was filled, expired or deleted (unless
the settings ask to replace deleted copies), or (c) has a command in flight. (a) survives a lost state file,
(b) survives a copy that left the pending list, (c) covers the time between sending and seeing the result.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

import msgspec

from config import OrderKind, PriceMode, SourceFill, TargetConfig
from coordinator.domain import market_checks as checks
from coordinator.domain.actions import Action, ActionKind, CopyTicket, SourceTicket
from coordinator.domain.clocks import same_expiration
from coordinator.domain.desired import Anchor, CannotCopy, DesiredCopy, NotYet, TargetContext, desire
from coordinator.domain.filters import FilterVerdict, left_out_by_filter
from coordinator.domain.link_lifecycle import PENDING_STATUSES, Link, LinkStatus
from coordinator.domain.order_changes import common_ends
from coordinator.domain.orphans import FILLED, ConfirmedOrphan
from coordinator.domain.positions import PositionPlanner, entry_slippage_points, position_orphans, tagged_positions
from coordinator.domain.sizing import round_price
from coordinator.domain.transforms import left_out as left_out_by_rule
from protocol import ClosedOrder, PendingOrder, PositionFacts, PositionHistory, Quote, SymbolSpec
from protocol.mt5 import BUY_ORDER_TYPES, OrderState, PositionType, describe_deal_reason, order_state_of
from protocol.tags import copy_tag, parse_tag


class SkipReason(str, Enum):
    """Why a source order is not (yet) as it should be on a target."""

    SYMBOL_MISSING = "symbol not found on target"
    SYMBOL_PENDING = "waiting for the target's symbol specification"
    NOT_YET = "waiting"
    CAPPED = "waiting: target is at its pending-order cap"
    BACKOFF = "waiting to retry after a failure"
    HISTORY_PENDING = "waiting to learn what became of the copy"
    TOO_CLOSE = "waiting: price too close to the target's market"
    FROZEN = "waiting: copy is frozen near the market"
    MARKET_CLOSED = "waiting: the target's market is closed"
    POSITION_WAITING = "waiting to follow the source's position"
    CANNOT_COPY = "the target cannot take it"

    @property
    def waiting(self) -> bool:
        return self not in (SkipReason.SYMBOL_MISSING, SkipReason.CANNOT_COPY)


@dataclass(frozen=True, slots=True)
class Skip:
    source_ticket: int
    symbol: str  # the target's symbol
    reason: SkipReason
    detail: str = ""
    source_symbol: str = ""  # the source order's symbol, when the skip concerns a source order

    def symbols(self) -> str:
        """Both symbols in the words a trader reads: "XAUUSD (GOLD on the target)", or one when they agree."""
        if self.source_symbol and self.source_symbol != self.symbol:
            return f"{self.source_symbol} ({self.symbol} on the target)"
        return self.symbol or self.source_symbol


@dataclass(frozen=True, slots=True)
class LinkUpdate:
    source_ticket: int
    copy_ticket: int
    status: LinkStatus
    detail: str


# The values made for every target at every plan (these inputs, the actions, the desired copies, their sizes and
# shapes) are frozen msgspec Structs rather than frozen dataclasses: a frozen dataclass's __init__ sets each field
# through object.__setattr__, 4 us for ten fields against 0.4 us for a Struct, and at 50 targets those inits were
# an eighth of a source edit's planning (python -m bench --only p4). Same value semantics: equal by fields,
# immutable, hashable; changed copies are made with msgspec.structs.replace.
class TargetInputs(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    config: TargetConfig
    orders: Sequence[PendingOrder]
    specs: Mapping[str, SymbolSpec]
    context: TargetContext
    positions: Sequence[PositionFacts] = ()
    quotes: Mapping[str, Quote] = msgspec.field(default_factory=dict)
    closed: Mapping[int, ClosedOrder] = msgspec.field(default_factory=dict)  # copy ticket -> its fate, when known
    # Copy tickets the terminal's history has no record of, after the engine's bounded number of looks.
    no_record: frozenset[int] = frozenset()
    closed_markets: frozenset[str] = frozenset()  # target symbols the broker said are closed, until a new tick
    # Orphans (copies whose source order is gone) the orphan policy confirmed for removal, by copy ticket.
    orphan_removals: Mapping[int, ConfirmedOrphan] = msgspec.field(default_factory=dict)
    missing_symbols: frozenset[str] = frozenset()
    links: Mapping[int, Link] = msgspec.field(default_factory=dict)
    in_flight: frozenset[int] = frozenset()  # source tickets with a command outstanding
    backoff: Mapping[int, str] = msgspec.field(default_factory=dict)  # source ticket -> why it waits to retry
    # Positions: the source's open positions, what the source's deals say of them (by position id), copy
    # positions whose source's close the orphan policy confirmed (by copy position ticket), and, when
    # positions are not followed on this target, why not ("" = they are).
    source_positions: Sequence[PositionFacts] = ()
    source_position_history: Mapping[int, PositionHistory] = msgspec.field(default_factory=dict)
    position_history: Mapping[int, PositionHistory] = msgspec.field(default_factory=dict)  # the target's copy positions
    position_closes: Mapping[int, ConfirmedOrphan] = msgspec.field(default_factory=dict)
    positions_not_followed: str = ""


@dataclass(slots=True)
class TargetPlan:
    actions: list[Action] = field(default_factory=list)  # at most one per source order
    skips: list[Skip] = field(default_factory=list)
    filtered: list[int] = field(default_factory=list)  # order types this target does not copy
    # Source orders [targets.filter] leaves out (coordinator/domain/filters.py), by source ticket.
    left_out_by_filter: dict[int, FilterVerdict] = field(default_factory=dict)
    in_sync: list[int] = field(default_factory=list)  # source tickets whose copy is as it should be
    adopt: list[Link] = field(default_factory=list)  # copies found on the target that no link records
    link_updates: list[LinkUpdate] = field(default_factory=list)  # copies that left: filled, deleted, expired
    kept_out: list[tuple[int, str]] = field(default_factory=list)  # source orders deliberately not (re)copied
    orphans: list[PendingOrder] = field(default_factory=list)  # our copies whose source order is not pending
    duplicates: list[PendingOrder] = field(default_factory=list)  # extra copies of one source order
    needed_symbols: set[str] = field(default_factory=set)
    needed_history: set[int] = field(default_factory=set)  # copy tickets whose fate is unknown
    # Links that have done their job (source order gone, copy no longer pending, nothing in flight): dropped.
    finished_links: list[int] = field(default_factory=list)
    # Positions: the copy positions here (source ticket -> copy position ticket), those whose source has no
    # pending order and no open position (for the orphan policy), and source positions whose deals are needed.
    followed_positions: dict[int, int] = field(default_factory=dict)
    positions_not_followed: str = ""  # why the copy positions here are not followed ("" = they are)
    position_orphans: list[PositionFacts] = field(default_factory=list)
    needed_position_history: set[int] = field(default_factory=set)
    needed_copy_position_history: set[int] = field(default_factory=set)  # copy positions gone: did they close?
    # ``in_sync`` as a set, handed from plan to plan by ``plan_target_incrementally`` (None: not built yet). Not
    # part of the plan's value.
    in_sync_index: set[int] | None = field(default=None, compare=False, repr=False)


def our_copies(orders: Sequence[PendingOrder]) -> tuple[dict[int, PendingOrder], list[PendingOrder]]:
    """The target's orders that are copies placed by the copier, by source ticket, and any extra copies."""
    copies: dict[int, PendingOrder] = {}
    extras: list[PendingOrder] = []
    for order in sorted(orders, key=lambda o: o.ticket):
        source_ticket = parse_tag(order.comment)
        if source_ticket is None or order.magic != source_ticket:
            continue  # a manual order, another EA's, or a comment someone typed: never ours
        if source_ticket in copies:
            extras.append(order)
        else:
            copies[source_ticket] = order
    return copies, extras


def find_orphans(source_orders: Sequence[PendingOrder], target_orders: Sequence[PendingOrder]) -> list[PendingOrder]:
    """The copier's copies whose source order is no longer pending (by copy ticket)."""
    copies = our_copies(target_orders)[0]
    live = {order.ticket for order in source_orders if OrderKind.from_mt5_type(order.type) is not None}
    return [copy for ticket, copy in sorted(copies.items()) if ticket not in live]


@dataclass(frozen=True, slots=True)
class TargetIndex:
    """What the planner reads of a target's orders and positions alone, parsed once per target snapshot (tags of
    every copy): the engine keeps it while the snapshot stays the same."""

    copies: Mapping[int, PendingOrder]  # the copier's pending copies, by source ticket
    duplicates: tuple[PendingOrder, ...]  # extra copies of one source order
    filled_copies: frozenset[int]  # source tickets with a tagged copy position
    tagged: Mapping[int, PositionFacts]  # the copier's copy positions, by source ticket

    @classmethod
    def of(cls, orders: Sequence[PendingOrder], positions: Sequence[PositionFacts]) -> TargetIndex:
        copies, duplicates = our_copies(orders)
        filled = frozenset(ticket for position in positions
                           if (ticket := parse_tag(position.comment)) is not None and ticket == position.magic)
        return cls(copies=copies, duplicates=tuple(duplicates), filled_copies=filled,
                   tagged=tagged_positions(positions))

    def updated(self, before: Sequence[PendingOrder], after: Sequence[PendingOrder],
                positions: Sequence[PositionFacts]) -> tuple[TargetIndex, list[PendingOrder]] | None:
        """This index, of the orders ``before`` and some positions, made the index of ``after`` and ``positions``
        (equal to ``TargetIndex.of``'s), with the orders that may differ between the two lists (both versions of
        an edited one); None when an order that is not the copier's copy may differ, or either list holds a second
        copy of one source order (then ``TargetIndex.of``, and a full plan)."""
        if self.duplicates:
            return None
        # Only the stretch between the longest common head and tail can differ: the worker lists orders in the
        # terminal's order, so a copy placed is appended, an edit stays in place, a removal only closes the gap.
        # Orders are compared by value (each snapshot decodes fresh ones). An order that merely moved within the
        # stretch counts as changed: planned again for nothing, but never missed.
        head, tail = common_ends(before, after)
        gone, came = before[head:len(before) - tail], after[head:len(after) - tail]
        copies = dict(self.copies)
        for order in gone:
            source_ticket = parse_tag(order.comment)
            if source_ticket is None or order.magic != source_ticket:
                return None  # not a copy (a manual order, another EA's): the plan is made in full
            if copies.pop(source_ticket, None) != order:  # this index has no duplicates: that order is the copy
                return None
        for order in came:
            source_ticket = parse_tag(order.comment)
            if source_ticket is None or order.magic != source_ticket or source_ticket in copies:
                return None  # not a copy, or a second copy of one source order (our_copies keeps the lowest)
            copies[source_ticket] = order
        filled = frozenset(ticket for position in positions
                           if (ticket := parse_tag(position.comment)) is not None and ticket == position.magic)
        return replace(self, copies=copies, filled_copies=filled, tagged=tagged_positions(positions)), [*gone, *came]


def plan_target(source_orders: Sequence[PendingOrder], target: TargetInputs, *,
                index: TargetIndex | None = None) -> TargetPlan:
    """``index``: ``TargetIndex.of(target.orders, target.positions)`` when the caller has it already."""
    return _Planner(source_orders, target, index).run()


def plan_target_incrementally(source: Mapping[int, PendingOrder], target: TargetInputs, index: TargetIndex,
                              previous: TargetPlan, changed: Collection[int],
                              changed_orders: Collection[PendingOrder] = ()) -> TargetPlan | None:
    """``plan_target(source.values(), target)``, computed by planning only the source tickets in ``changed``.

    The caller's promise: ``previous`` is the plan ``plan_target`` made of inputs that differ from ``target`` and
    ``source`` only in what concerns the tickets in ``changed`` (their source order, link, in-flight command,
    backoff, their copy on the target, the history record of their link's copy): the same target positions, the
    same target orders but ``changed_orders`` (those added, edited or removed since, both versions of an edited
    one), the same settings, specifications, prices, other history, clocks, accounts and source positions, and no
    source order removed since. Under that promise every decision of the full plan about a ticket outside
    ``changed`` is the one ``previous`` holds, because those decisions read nothing of the other tickets, except
    where checked here: None (plan in full) when a pending-order cap is configured (slots are filled oldest first
    across orders), when ``previous`` or the tickets in ``changed`` have orphans, copy positions without a source
    or duplicates (the orphan policy and the duplicate pass look across tickets), when ``previous`` waits for
    facts it asked for (those sets are not kept by ticket), when an order of ``changed_orders`` is not a copy of a
    ticket in ``changed``, or when its symbol has a volume limit (every placement on that symbol counts the
    target's orders there).

    The result holds the same actions in the same order as ``plan_target``'s; its other lists hold the same
    entries, in an order that may differ."""
    if target.config.copy.max_pending_orders is not None or previous.orphans or previous.duplicates \
            or index.duplicates or previous.position_orphans or previous.needed_symbols or previous.needed_history \
            or previous.needed_position_history or previous.needed_copy_position_history \
            or previous.positions_not_followed != target.positions_not_followed:
        return None
    for order in changed_orders:
        if parse_tag(order.comment) != order.magic or order.magic not in changed:
            return None  # not a copy of a ticket planned here: a decision elsewhere may read it
        spec = target.specs.get(order.symbol)
        if spec is not None and spec.volume_limit > 0:
            # Placing or replacing any copy on that symbol sums the target's orders there
            # (market_checks.volume_limit_problem). Without the specification no such decision is made (it waits
            # for it), and its arrival makes the next plan a full one.
            return None
    return _Planner((), target, index).run_changed(source, previous, frozenset(changed))


def _order_key(order: PendingOrder) -> tuple[int, int]:
    """The order in which the plan takes source orders: oldest first (when the cap leaves room for some, the
    earliest intent goes out first)."""
    return order.time_setup_msc, order.ticket


def _copyable(order: PendingOrder | None) -> bool:
    return order is not None and OrderKind.from_mt5_type(order.type) is not None


_POSITION_KINDS = frozenset((ActionKind.SLTP, ActionKind.CLOSE))  # the only kinds _plan_positions decides


class _Planner:
    def __init__(self, source_orders: Sequence[PendingOrder], target: TargetInputs,
                 index: TargetIndex | None = None) -> None:
        self.source_orders = source_orders
        self.target = target
        self.settings = target.config.copy
        self.plan = TargetPlan()
        index = index or TargetIndex.of(target.orders, target.positions)
        self.copies = index.copies
        self.plan.duplicates = list(index.duplicates)
        self.filled_copies = index.filled_copies
        self.tagged = index.tagged
        self.capacity = self._free_slots()

    def run(self) -> TargetPlan:
        plan = self.plan
        live = {order.ticket for order in self.source_orders if OrderKind.from_mt5_type(order.type) is not None}
        plan.orphans = [copy for ticket, copy in sorted(self.copies.items()) if ticket not in live]
        # Oldest source orders first: when the cap leaves room for some, the earliest intent goes out first.
        for order in sorted(self.source_orders, key=_order_key):
            if OrderKind.from_mt5_type(order.type) is not None:
                self._plan_order(order)
        self._plan_duplicates()
        self._plan_orphan_removals()
        self._note_filled_copies()
        plan.followed_positions = {ticket: copy.ticket for ticket, copy in self.tagged.items()}
        plan.positions_not_followed = self.target.positions_not_followed
        if not plan.positions_not_followed:
            self._plan_positions()
        self._hold_closed_markets()
        self._finish_links()
        plan.in_sync_index = set(plan.in_sync)  # for the incremental plans that may follow (a pass is made anyway)
        return plan

    def run_changed(self, source: Mapping[int, PendingOrder], previous: TargetPlan,
                    changed: frozenset[int]) -> TargetPlan | None:
        """``run`` for the tickets in ``changed`` alone, merged into ``previous`` (see plan_target_incrementally):
        each pass of ``run`` below, restricted to those tickets."""
        plan = self.plan
        self.source_orders = [source[ticket] for ticket in changed if ticket in source]
        if any(ticket in self.copies and not _copyable(source.get(ticket)) for ticket in changed):
            return None  # a copy whose source order is not pending: an orphan, for the full plan's orphan policy
        for order in sorted(self.source_orders, key=_order_key):
            if OrderKind.from_mt5_type(order.type) is not None:
                self._plan_order(order)
        # No duplicates (the same target orders as ``previous``, which had none) and no orphans (checked above):
        # the duplicate and orphan-removal passes would add nothing.
        self._note_filled_copies(changed)
        plan.positions_not_followed = self.target.positions_not_followed
        if not plan.positions_not_followed and not changed.isdisjoint(self.tagged):  # else: no copy position to plan
            if self._position_orphans(changed):
                return None
            self._plan_positions(changed)
        self._hold_closed_markets()
        self._finish_links(changed)
        return _merged(previous, plan, changed, source)

    # ---- one source order ----------------------------------------------------------------------

    def _plan_order(self, order: PendingOrder) -> None:
        ticket = order.ticket
        copy = self.copies.get(ticket)
        left_out = self._left_out(order)
        if ticket in self.target.in_flight:
            return
        symbol = self.settings.map_symbol(order.symbol)
        if ticket in self.target.backoff:
            self._skip(order, symbol, SkipReason.BACKOFF, self.target.backoff[ticket])
            return
        if left_out:
            if copy is not None:
                self._remove(copy, left_out)
            return
        if copy is not None:
            self._sync(order, copy)
        elif self._may_place(order):
            self._place(order, symbol)

    def _left_out(self, order: PendingOrder) -> str:
        """Why this target does not copy ``order`` at all ("" when it does), recorded in the plan: its type is not
        in order_types, [targets.filter] leaves it out, or a copy rule has no copy to make of it (reverse = true and
        a stop limit: coordinator/domain/transforms.py). Either way it is never placed and a copy of it already
        there (the rules changed) is removed; a copy that filled goes on following its source's position."""
        kind = OrderKind.from_mt5_type(order.type)
        if kind not in self.settings.order_types:
            self.plan.filtered.append(order.ticket)
            return f"order type {kind.value if kind else order.type} is not copied to this target"
        verdict = left_out_by_filter(order, self.settings.filter)
        if verdict is not None:
            self.plan.left_out_by_filter[order.ticket] = verdict
            return verdict.reason
        # A copy rule with no copy to make of it (reverse = true and a stop limit): the rule the user chose.
        rule = left_out_by_rule(order.type, self.settings)
        if rule:
            self.plan.kept_out.append((order.ticket, rule))
        return rule or ""

    def _may_place(self, order: PendingOrder) -> bool:
        """No copy is pending. Place one unless an earlier copy filled, expired, or was deleted by someone
        (and the settings do not ask to replace deleted copies)."""
        link = self.target.links.get(order.ticket)
        if link is None:
            return True
        status = link.status
        if status is LinkStatus.REPLACING and self._filled(link):
            # The old copy filled before the copier could remove it: the replacement must not go out.
            status = LinkStatus.FILLED
            self.plan.link_updates.append(LinkUpdate(order.ticket, link.copy_ticket, status,
                                                     _FATE_TEXT[status].format(copy=link.copy_ticket)))
        if status is LinkStatus.ACTIVE:
            fate = self._fate_of(link)
            if fate is None:
                return False
            detail = _FATE_TEXT[fate].format(copy=link.copy_ticket)
            if link.copy_ticket in self.target.no_record and fate is LinkStatus.DELETED:
                detail = (f"its copy #{link.copy_ticket} vanished and the target's history has no record of it: "
                          "treated as deleted")
            self.plan.link_updates.append(LinkUpdate(order.ticket, link.copy_ticket, fate, detail))
            status = fate
        if status in (LinkStatus.REPLACING, LinkStatus.REMOVED):
            return True
        if status is LinkStatus.DELETED and self.settings.replace_deleted_copies:
            return True
        reason = _FATE_TEXT[status].format(copy=link.copy_ticket)
        if status is LinkStatus.DELETED:
            reason += "; not placed again (replace_deleted_copies = false)"
        self.plan.kept_out.append((order.ticket, reason))
        return False

    def _filled(self, link: Link) -> bool:
        record = self.target.closed.get(link.copy_ticket)
        return link.source_ticket in self.filled_copies or (record is not None and record.state == OrderState.FILLED)

    def _fate_of(self, link: Link) -> LinkStatus | None:
        """What became of a copy that is no longer pending; None while that is not known yet."""
        if link.source_ticket in self.filled_copies:
            return LinkStatus.FILLED
        if link.copy_ticket in self.target.no_record:
            # Gone without a trace (no pending order, no position, no history record after several looks): the
            # decided outcome is "deleted", the choice that can never place a second copy of one source order.
            return LinkStatus.DELETED
        record = self.target.closed.get(link.copy_ticket)
        state = order_state_of(record.state) if record is not None else OrderState.NOT_IN_HISTORY_YET
        if state is OrderState.NOT_IN_HISTORY_YET or state is OrderState.NO_RECORD:
            # Not in the history yet, or "no record" from fewer looks than decide it (``no_record``, above): the
            # history may still lag, so look again.
            self.plan.needed_history.add(link.copy_ticket)
            self.plan.skips.append(Skip(link.source_ticket, link.symbol, SkipReason.HISTORY_PENDING,
                                        f"copy #{link.copy_ticket} is no longer pending"))
            return None
        if state is OrderState.FILLED:
            return LinkStatus.FILLED
        if state is OrderState.EXPIRED:
            return LinkStatus.EXPIRED
        return LinkStatus.DELETED  # cancelled, rejected, or a state this copier does not know

    # ---- placing -------------------------------------------------------------------------------

    def _place(self, order: PendingOrder, symbol: str) -> None:
        if symbol in self.target.missing_symbols:
            self._skip(order, symbol, SkipReason.SYMBOL_MISSING,
                       f"{symbol} (from source {order.symbol}) does not exist on {self.target.name}")
            return
        spec = self.target.specs.get(symbol)
        if spec is None:
            self.plan.needed_symbols.add(symbol)
            self._skip(order, symbol, SkipReason.SYMBOL_PENDING)
            return
        quote = self._quote(spec)
        wanted = self._desire(order, symbol, spec, quote, anchor=None)
        if wanted is None:
            return
        problem, waiting = self._placement_problem(wanted, spec, quote, replacing_volume=0.0)
        if problem:
            self._skip(order, symbol, SkipReason.TOO_CLOSE if waiting else SkipReason.CANNOT_COPY, problem)
            return
        if self.capacity is not None and self.capacity <= 0:
            self._skip(order, symbol, SkipReason.CAPPED, self._cap_detail())
            return
        self.plan.actions.append(_action(ActionKind.PLACE, order, wanted))
        if self.capacity is not None:
            self.capacity -= 1

    def _placement_problem(self, wanted: DesiredCopy, spec: SymbolSpec, quote: Quote | None,
                           replacing_volume: float) -> tuple[str | None, bool]:
        """(problem, whether it resolves by itself) for placing ``wanted`` on the target now."""
        problem = checks.trade_mode_problem(wanted.order_type, spec) or checks.order_mode_problem(
            wanted.order_type, wanted.sl, wanted.tp, spec)
        if problem:
            return problem, False
        entry = wanted.stoplimit or wanted.price
        problem = checks.stops_problem(wanted.order_type, entry, wanted.sl, wanted.tp, spec)
        if problem:
            return problem, False
        if quote is None:
            return "waiting for the target's prices", True
        problem = checks.price_problem(wanted.order_type, wanted.price, quote, spec)
        if problem:
            return problem, True
        positions = [(p.type, p.volume) for p in self.target.positions if p.symbol == wanted.symbol]
        problem = checks.volume_limit_problem(wanted.order_type, wanted.volume - replacing_volume, wanted.symbol, spec,
                                              list(self.target.orders), positions)
        return problem, True

    # ---- keeping a copy in sync ----------------------------------------------------------------

    def _sync(self, order: PendingOrder, copy: PendingOrder) -> None:
        plan = self.plan
        link = self.target.links.get(order.ticket)
        if link is None or link.copy_ticket != copy.ticket:
            link = Link(source_ticket=order.ticket, copy_ticket=copy.ticket, symbol=copy.symbol, volume=copy.volume,
                        source_volume=order.volume,
                        price_offset=(copy.price_open - order.price_open
                                      if self.settings.price_mode is PriceMode.MARKET_DISTANCE else 0.0))
            plan.adopt.append(link)
        spec = self.target.specs.get(copy.symbol)
        if spec is None:
            plan.needed_symbols.add(copy.symbol)
            plan.in_sync.append(order.ticket)  # cannot be judged before the specification arrives
            return
        quote = self._quote(spec)
        anchor = Anchor(source_volume=link.source_volume, volume=link.volume or copy.volume,
                        price_offset=link.price_offset, sl=copy.sl, tp=copy.tp)
        try:
            wanted = desire(order, copy.symbol, spec, quote, self.target.context, anchor)
        except NotYet as e:
            self._skip(order, copy.symbol, SkipReason.NOT_YET, str(e))
            return
        except CannotCopy as e:
            # The settings would not copy this order now (e.g. its volume fell out of bounds with "skip"): a
            # copy of it must not stay, as for a type this target does not copy.
            self._skip(order, copy.symbol, SkipReason.CANNOT_COPY, str(e))
            self._remove(copy, str(e))
            return
        triggered = wanted.order_type.triggered_type
        if triggered is not None and copy.type == triggered:
            # The copy's own market reached its trigger first: it is now the limit order the source's stop-limit
            # will become. It matches; only its levels are compared.
            wanted = msgspec.structs.replace(wanted, order_type=triggered, price=wanted.stoplimit, stoplimit=0.0)
        step = spec.volume_step or 0.01
        # A partly filled copy keeps its original volume as the one it was placed with.
        placed_volume = copy.volume_initial or copy.volume
        if copy.type != wanted.order_type or abs(placed_volume - wanted.volume) > step / 2:
            # MT5 cannot modify a pending order's volume or type: replace it, old copy out, new copy in.
            problem, waiting = self._placement_problem(wanted, spec, quote, replacing_volume=copy.volume)
            frozen = checks.frozen_problem(copy, quote, spec) if quote else None
            if problem or frozen:
                self._skip(order, copy.symbol, SkipReason.FROZEN if frozen else
                           (SkipReason.TOO_CLOSE if waiting else SkipReason.CANNOT_COPY), problem or frozen or "")
                return
            plan.actions.append(_action(ActionKind.REPLACE, order, wanted, ticket=copy.ticket))
            return
        if _same_levels(copy, wanted, spec):
            plan.in_sync.append(order.ticket)
            return
        problem = checks.stops_problem(wanted.order_type, wanted.stoplimit or wanted.price, wanted.sl, wanted.tp, spec)
        if problem:
            self._skip(order, copy.symbol, SkipReason.CANNOT_COPY, problem)
            return
        if quote is not None:
            price_moved = abs(copy.price_open - wanted.price) > _half_tick(spec)
            problem = checks.price_problem(wanted.order_type, wanted.price, quote, spec) if price_moved else None
            frozen = checks.frozen_problem(copy, quote, spec)
            if problem or frozen:
                self._skip(order, copy.symbol, SkipReason.FROZEN if frozen else SkipReason.TOO_CLOSE,
                           frozen or problem or "")
                return
        plan.actions.append(_action(ActionKind.MODIFY, order, wanted, ticket=copy.ticket))

    def _remove(self, copy: PendingOrder, reason: str, evidence: str = "") -> None:
        spec = self.target.specs.get(copy.symbol)
        quote = self._quote(spec) if spec else None
        frozen = checks.frozen_problem(copy, quote, spec) if spec and quote else None
        if frozen:
            self.plan.skips.append(Skip(copy.magic, copy.symbol, SkipReason.FROZEN, frozen))
            return
        self.plan.actions.append(Action(kind=ActionKind.REMOVE, source_ticket=SourceTicket(copy.magic),
                                        symbol=copy.symbol, ticket=CopyTicket(copy.ticket), magic=copy.magic,
                                        comment=copy.comment, reason=reason, evidence=evidence))

    def _plan_duplicates(self) -> None:
        """A second copy of one source order is the copier's own mistake (or a second copier): remove it, one
        per source order per plan, keeping the oldest (lowest ticket) one."""
        seen: set[int] = {action.source_ticket for action in self.plan.actions}  # one action per order per plan
        for extra in self.plan.duplicates:
            if extra.magic in seen or extra.magic in self.target.in_flight or extra.magic in self.target.backoff:
                continue
            seen.add(extra.magic)
            self._remove(extra, "a second copy of the same source order")

    def _plan_orphan_removals(self) -> None:
        """Orphans the orphan policy confirmed are removed, under the same rules as every removal: one command
        per source order per plan, nothing while one is in flight or its last failure backs off, not while
        frozen near the market, not into a closed market."""
        seen: set[int] = {action.source_ticket for action in self.plan.actions}
        for copy in self.plan.orphans:
            confirmed = self.target.orphan_removals.get(copy.ticket)
            if confirmed is None or copy.magic in seen or copy.magic in self.target.in_flight \
                    or copy.magic in self.target.backoff:
                continue
            seen.add(copy.magic)
            if not self._open_at_market(copy, confirmed):
                self._remove(copy, confirmed.reason, confirmed.evidence)

    def _hold_closed_markets(self) -> None:
        """Nothing reaches a broker whose market for the symbol is closed: it would only be refused again."""
        closed = self.target.closed_markets
        if not closed:
            return
        held = [action for action in self.plan.actions if action.symbol in closed]
        if not held:
            return
        self.plan.actions = [action for action in self.plan.actions if action.symbol not in closed]
        for action in held:
            self.plan.skips.append(Skip(action.source_ticket, action.symbol, SkipReason.MARKET_CLOSED,
                                        f"{action.kind.value} held until {action.symbol} trades again"))

    def _open_at_market(self, copy: PendingOrder, confirmed: ConfirmedOrphan) -> bool:
        """on_source_fill = "market": a copy still pending when its source order filled is opened at market
        instead of removed, if the target's entry price is within max_entry_slippage_points of the source's
        fill price (and positions are followed here). True when that is decided here: a MARKET action, or a
        wait for the target's live price (a price from the symbol's description may be minutes old)."""
        settings = self.settings.positions
        if self.settings.source_fill is not SourceFill.MARKET or confirmed.source_fate != FILLED \
                or self.target.positions_not_followed:
            return False
        source = {position.identifier: position for position in self.target.source_positions}.get(copy.magic)
        spec = self.target.specs.get(copy.symbol)
        if source is None or spec is None:
            return False  # the source's position (its fill price) is not there: nothing to open against
        quote = self.target.quotes.get(copy.symbol)
        if quote is None or not quote.time:
            self.plan.skips.append(Skip(copy.magic, copy.symbol, SkipReason.NOT_YET,
                                        "its source order filled: waiting for the target's live price to open the "
                                        "copy at market (on_source_fill = \"market\")"))
            return True
        frozen = checks.frozen_problem(copy, quote, spec)
        if frozen:  # the pending copy cannot be removed now, so it cannot be swapped for a position either
            self.plan.skips.append(Skip(copy.magic, copy.symbol, SkipReason.FROZEN, frozen))
            return True
        link = self.target.links.get(copy.magic)
        offset = link.price_offset if link is not None and self.settings.price_mode is PriceMode.MARKET_DISTANCE \
            else 0.0
        reference = round_price(source.price_open + offset, spec)
        side = PositionType.BUY if copy.type in BUY_ORDER_TYPES else PositionType.SELL
        slippage = entry_slippage_points(side, reference, quote, spec)
        if slippage > settings.max_entry_slippage_points + 1e-6:
            return False
        self.plan.actions.append(Action(
            kind=ActionKind.MARKET, source_ticket=SourceTicket(copy.magic), symbol=copy.symbol,
            ticket=CopyTicket(copy.ticket), order_type=int(side), volume=copy.volume, price=reference,
            deviation=settings.max_entry_slippage_points, magic=copy.magic, comment=copy.comment,
            source_volume=link.source_volume if link is not None else source.volume,
            price_offset=offset,
            reason=f"source order #{copy.magic} filled at {source.price_open:g}; the target's entry is "
                   f"{slippage:.0f} points from it (at most {settings.max_entry_slippage_points})",
            evidence=confirmed.evidence))
        return True

    # ---- positions -----------------------------------------------------------------------------

    def _note_filled_copies(self, only: frozenset[int] | None = None) -> None:
        """A copy that filled after its source order left the pending list: its link says so now (a source order
        still pending has it said by ``_may_place``). A filled copy whose position is no longer open: its link
        ends once the target's deals say the position closed (a position list that blinks proves nothing).
        ``only``: for these source tickets alone (each one's decision reads nothing of the others)."""
        updated = {update.source_ticket for update in self.plan.link_updates}
        open_copies = self.tagged
        links: Mapping[int, Link] = self.target.links
        if only is not None:
            open_copies = {ticket: open_copies[ticket] for ticket in only if ticket in open_copies}
            links = {ticket: links[ticket] for ticket in only if ticket in links}
        for source_ticket, copy in open_copies.items():
            link = self.target.links.get(source_ticket)
            if link is not None and link.copy_ticket == copy.identifier and link.status in PENDING_STATUSES \
                    and source_ticket not in self.copies and source_ticket not in updated:
                self.plan.link_updates.append(LinkUpdate(source_ticket, link.copy_ticket, LinkStatus.FILLED,
                                                         _FATE_TEXT[LinkStatus.FILLED].format(copy=link.copy_ticket)))
        for source_ticket, link in links.items():
            if link.status is not LinkStatus.FILLED or source_ticket in self.tagged or source_ticket in updated \
                    or source_ticket in self.target.in_flight:
                continue
            deals = self.target.position_history.get(link.copy_ticket)
            if deals is None or not deals.closed:
                self.plan.needed_copy_position_history.add(link.copy_ticket)
                continue
            self.plan.link_updates.append(LinkUpdate(
                source_ticket, link.copy_ticket, LinkStatus.CLOSED,
                f"its copy's position #{link.copy_ticket} was closed {describe_deal_reason(deals.close_reason)}"))

    def _position_orphans(self, only: frozenset[int]) -> bool:
        """Whether any copy position of the source tickets ``only`` has neither a pending source order nor an open
        source position (``position_orphans``, for those tickets)."""
        live = {order.ticket for order in self.source_orders}
        live |= {position.identifier for position in self.target.source_positions}
        return any(ticket in self.tagged and ticket not in live for ticket in only)

    def _plan_positions(self, only: frozenset[int] | None = None) -> None:
        """Each copy position follows its source (``coordinator/domain/positions.py``), one action per source
        order per plan like everything else. ``only``: the copy positions of these source tickets alone, the
        caller having checked that none of them is an orphan (each one's decision reads nothing of the others)."""
        target = self.target
        planner = PositionPlanner(self.settings.positions, self.settings.price_mode, target.specs,
                                  target.quotes, target.source_position_history, copy_rules=self.settings)
        sources = {position.identifier: position for position in target.source_positions}
        pending = {order.ticket: order for order in self.source_orders}
        seen: set[int] = {action.source_ticket for action in self.plan.actions}
        tagged = self.tagged
        if only is None:
            self.plan.position_orphans = position_orphans(self.source_orders, target.source_positions,
                                                          target.positions)
        else:
            tagged = {ticket: tagged[ticket] for ticket in only if ticket in tagged}
        for source_ticket, copy in sorted(tagged.items()):
            link = target.links.get(source_ticket)
            source = sources.get(source_ticket)
            if link is None or link.copy_ticket != copy.identifier:
                # A copy position no link records as this copy (a lost state file): followed from now on, its
                # volumes of this moment being what a later partial close is measured against. Recorded only
                # while no pending copy of the same source holds the link (a copy that filled in part and was
                # replaced): the link stays the pending copy's, and the position is followed all the same.
                link = Link(source_ticket=source_ticket, copy_ticket=copy.identifier, status=LinkStatus.FILLED,
                            symbol=copy.symbol, volume=copy.volume,
                            source_volume=source.volume if source is not None else 0.0,
                            price_offset=link.price_offset if link is not None else 0.0)
                if source_ticket not in self.copies:
                    self.plan.adopt.append(link)
            if source_ticket in seen or source_ticket in target.in_flight or source_ticket in target.backoff:
                continue
            if copy.symbol not in target.specs:
                self.plan.needed_symbols.add(copy.symbol)
                self.plan.skips.append(Skip(source_ticket, copy.symbol, SkipReason.SYMBOL_PENDING))
                continue
            confirmed = target.position_closes.get(copy.ticket)
            if source is None and source_ticket not in pending:
                step = planner.close(copy, confirmed) if confirmed is not None else None
            else:
                step = planner.follow(copy, link, source, pending.get(source_ticket))
            if step is None:
                continue
            if step.needs_history and source is not None:
                self.plan.needed_position_history.add(source.identifier)
            if step.waiting:
                self.plan.skips.append(Skip(source_ticket, copy.symbol,
                                            SkipReason.FROZEN if step.frozen else SkipReason.POSITION_WAITING,
                                            step.waiting))
            if step.action is not None:
                seen.add(source_ticket)
                self.plan.actions.append(step.action)

    def _finish_links(self, only: frozenset[int] | None = None) -> None:
        """A link has done its job once its source order is gone for good and nothing of it is left open: no
        pending copy, no copy position, no source position, nothing in flight. ``only``: of these tickets alone
        (then ``source_orders`` holds those of them that are pending)."""
        links: Collection[int] = self.target.links if only is None else \
            [ticket for ticket in only if ticket in self.target.links]
        if not links:
            return
        live = {order.ticket for order in self.source_orders}
        live |= {position.identifier for position in self.target.source_positions}
        self.plan.finished_links = [ticket for ticket in links if ticket not in live and ticket not in self.tagged
                                    and ticket not in self.copies and ticket not in self.target.in_flight]

    # ---- helpers -------------------------------------------------------------------------------

    def _desire(self, order: PendingOrder, symbol: str, spec: SymbolSpec, quote: Quote | None,
                anchor: Anchor | None) -> DesiredCopy | None:
        try:
            return desire(order, symbol, spec, quote, self.target.context, anchor)
        except NotYet as e:
            self._skip(order, symbol, SkipReason.NOT_YET, str(e))
        except CannotCopy as e:
            self._skip(order, symbol, SkipReason.CANNOT_COPY, str(e))
        return None

    def _quote(self, spec: SymbolSpec) -> Quote | None:
        quote = self.target.quotes.get(spec.name)
        if quote is None and spec.bid > 0 and spec.ask > 0:
            quote = Quote(symbol=spec.name, bid=spec.bid, ask=spec.ask)
        return quote

    def _skip(self, order: PendingOrder, symbol: str, reason: SkipReason, detail: str = "") -> None:
        self.plan.skips.append(Skip(order.ticket, symbol, reason, detail, source_symbol=order.symbol))

    def _cap_detail(self) -> str:
        detail = f"waiting for room under max_pending_orders = {self.settings.max_pending_orders}"
        orphans = len(self.plan.orphans)
        if orphans:
            detail += (f"; {orphans} of the copies holding it are orphans (their source order is gone): kept by the "
                       "orphan policy, or still being confirmed")
        return detail

    def _free_slots(self) -> int | None:
        cap = self.settings.max_pending_orders
        if cap is None:
            return None
        places_in_flight = len(self.target.in_flight - self.copies.keys())
        return cap - len(self.copies) - places_in_flight


def _merged(previous: TargetPlan, partial: TargetPlan, changed: frozenset[int],
            source: Mapping[int, PendingOrder]) -> TargetPlan:
    """``previous`` with what it decided about the tickets in ``changed`` replaced by ``partial``'s decisions.
    Actions keep ``run``'s order: the pending orders' oldest first, then the copy positions' by source ticket."""

    def order_of(action: Action) -> tuple[int, int, int]:
        if action.kind in _POSITION_KINDS:
            return 1, action.source_ticket, 0
        return 0, *_order_key(source[action.source_ticket])

    actions = [action for action in previous.actions if action.source_ticket not in changed] + partial.actions
    # Most tickets are in sync: their list, with a set of it, is taken over from ``previous`` and updated in place
    # (not copied, nor searched once per changed ticket). ``previous`` is the plan this one replaces: it keeps
    # empty ones.
    index = previous.in_sync_index if previous.in_sync_index is not None else set(previous.in_sync)
    in_sync = previous.in_sync
    previous.in_sync, previous.in_sync_index = [], None
    for ticket in changed:
        if ticket in index:
            index.discard(ticket)
            in_sync.remove(ticket)
    in_sync += partial.in_sync
    index.update(partial.in_sync)
    return TargetPlan(
        actions=sorted(actions, key=order_of),
        skips=[skip for skip in previous.skips if skip.source_ticket not in changed] + partial.skips,
        filtered=[ticket for ticket in previous.filtered if ticket not in changed] + partial.filtered,
        left_out_by_filter={**{ticket: verdict for ticket, verdict in previous.left_out_by_filter.items()
                               if ticket not in changed}, **partial.left_out_by_filter},
        in_sync=in_sync,
        in_sync_index=index,
        adopt=[link for link in previous.adopt if link.source_ticket not in changed] + partial.adopt,
        link_updates=[update for update in previous.link_updates if update.source_ticket not in changed]
        + partial.link_updates,
        kept_out=[kept for kept in previous.kept_out if kept[0] not in changed] + partial.kept_out,
        # Both empty (plan_target_incrementally's conditions), as are the sets of facts asked for in ``previous``.
        orphans=partial.orphans,
        duplicates=partial.duplicates,
        needed_symbols=partial.needed_symbols,
        needed_history=partial.needed_history,
        finished_links=[ticket for ticket in previous.finished_links if ticket not in changed]
        + partial.finished_links,
        followed_positions=previous.followed_positions,  # the same target positions
        positions_not_followed=partial.positions_not_followed,
        position_orphans=partial.position_orphans,
        needed_position_history=partial.needed_position_history,
        needed_copy_position_history=partial.needed_copy_position_history,
    )


_FATE_TEXT = {
    LinkStatus.FILLED: "its copy #{copy} was filled on the target",
    LinkStatus.EXPIRED: "its copy #{copy} expired on the target",
    LinkStatus.DELETED: "its copy #{copy} was deleted on the target",
    LinkStatus.REMOVED: "its copy #{copy} was removed by the copier",
    LinkStatus.REPLACING: "its copy #{copy} is being replaced",
    LinkStatus.ACTIVE: "its copy #{copy} is pending",
    LinkStatus.CLOSED: "its copy #{copy} filled, and its position was closed",
}


def _half_tick(spec: SymbolSpec) -> float:
    return (spec.tick_size or spec.point or 1e-9) / 2


def _same_levels(copy: PendingOrder, wanted: DesiredCopy, spec: SymbolSpec) -> bool:
    tolerance = _half_tick(spec)
    return (
        abs(copy.price_open - wanted.price) < tolerance
        and abs(copy.price_stoplimit - wanted.stoplimit) < tolerance
        and abs(copy.sl - wanted.sl) < tolerance
        and abs(copy.tp - wanted.tp) < tolerance
        and same_expiration(copy, wanted.expiration)
    )


def _action(kind: ActionKind, order: PendingOrder, wanted: DesiredCopy, ticket: int = 0) -> Action:
    return Action(
        kind=kind,
        source_ticket=SourceTicket(order.ticket),
        symbol=wanted.symbol,
        ticket=CopyTicket(ticket),
        order_type=int(wanted.order_type),
        volume=wanted.volume,
        price=wanted.price,
        stoplimit=wanted.stoplimit,
        sl=wanted.sl,
        tp=wanted.tp,
        type_time=int(wanted.expiration.type_time),
        expiration=wanted.expiration.expiration,
        magic=order.ticket,
        comment=copy_tag(order.ticket),
        source_volume=wanted.source_volume,
        price_offset=wanted.price_offset,
        adjustment=wanted.note,
    )
