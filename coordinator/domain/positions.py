"""Following a copy's position once its order filled: the position part of the plan, pure.

What follows what: in MT5 a position keeps the ticket of the order that opened it (``identifier``), and that
order's magic and comment. So the link from a source order to its copy is also the link between the two
positions once both filled: the source position is the one whose identifier is the source ticket; the copy's
is the target position with the copier's tag for that ticket (magic = source ticket, comment ``mtc#...``).
Positions are never matched by symbol or volume, and a position without the tag is never touched.

What it decides, for each copy position (``PositionPlanner.plan``):

- its source position is open: a partial close on the source closes the same share of the copy (rounded
  down to the step, a remainder below the minimum closes all); otherwise its SL and TP follow the source's
  (one SLTP with both, translated like pending prices, checked against the stops and freeze levels first; by the
  copy rules of ``coordinator/domain/transforms.py``: swapped for a position on the other side of its source's,
  a reversed copy's, and a level the target does not copy, copy_sl / copy_tp = false, left as the copy has it);
- its source order is still pending (the copy filled first, on its own market): SL and TP follow the source
  order's;
- its source has neither (closed, or the order never filled): the orphan policy confirms it (the source's
  history at once, else counted checks), then ``on_source_close`` closes it or keeps it.

A copy position that is gone (closed by a person or its own SL/TP) is never reopened: nothing here opens a
position except ``on_source_fill = "market"``, for a copy that is still pending. A volume that went *up* on
the source (netting) is never mirrored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from config import CopySettings, PositionSettings, PriceMode, SourceClose
from coordinator.domain import market_checks as checks
from coordinator.domain.actions import Action, ActionKind, CopyTicket, SourceTicket
from coordinator.domain.link_lifecycle import Link
from coordinator.domain.orphans import ConfirmedOrphan
from coordinator.domain.sizing import round_price, snap_down, step_decimals
from coordinator.domain.transforms import position_levels
from protocol import PendingOrder, PositionFacts, PositionHistory, Quote, SymbolSpec
from protocol.mt5 import BUY_ORDER_TYPES, PositionType
from protocol.tags import copy_tag, parse_tag

_TOLERANCE = 1e-9
_VOLUME_TOLERANCE = 1e-6  # volumes are multiples of a step of 0.001 or more: anything closer is the same volume
_EVERY_LEVEL_AS_IT_IS = CopySettings()  # the default copy rules: SL and TP copied, not reversed


def tagged_positions(positions: Sequence[PositionFacts]) -> dict[int, PositionFacts]:
    """The copier's copy positions, by source ticket: tag and magic both name it (the oldest if two do)."""
    copies: dict[int, PositionFacts] = {}
    for position in sorted(positions, key=lambda p: p.ticket):
        source_ticket = parse_tag(position.comment)
        if source_ticket is not None and position.magic == source_ticket:
            copies.setdefault(source_ticket, position)
    return copies


def position_orphans(source_orders: Sequence[PendingOrder], source_positions: Sequence[PositionFacts],
                     target_positions: Sequence[PositionFacts]) -> list[PositionFacts]:
    """Copy positions whose source has neither a pending order nor an open position (by copy ticket)."""
    live = {order.ticket for order in source_orders} | {position.identifier for position in source_positions}
    return [copy for ticket, copy in sorted(tagged_positions(target_positions).items()) if ticket not in live]


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionStep:
    """One decision about one copy position: an action, or why it waits."""

    action: Action | None = None
    waiting: str = ""  # why nothing is sent now (re-evaluated at every plan)
    frozen: bool = False  # the wait is the freeze level
    needs_history: bool = False  # the source position's deals are needed to decide (partial closes)


class PositionPlanner:
    """Decides for the copy positions of one target. Built per plan by the planner, which merges the steps."""

    def __init__(self, settings: PositionSettings, price_mode: PriceMode, specs: Mapping[str, SymbolSpec],
                 quotes: Mapping[str, Quote], source_history: Mapping[int, PositionHistory], *,
                 copy_rules: CopySettings = _EVERY_LEVEL_AS_IT_IS) -> None:
        self.settings = settings
        self.price_mode = price_mode
        self.copy_rules = copy_rules  # reverse, copy_sl, copy_tp: which levels follow the source, and how
        self.specs = specs
        self.quotes = quotes
        self.source_history = source_history

    def follow(self, copy: PositionFacts, link: Link, source: PositionFacts | None,
               source_order: PendingOrder | None) -> PositionStep:
        """What the copy position ``copy`` of ``link`` needs, given its source position or pending order."""
        spec = self.specs.get(copy.symbol)
        if spec is None:
            return PositionStep(waiting="waiting for the target's symbol specification")
        if source is not None and self.settings.partial_closes:
            step = self._partial_close(copy, link, source, spec)
            if step is not None:
                return step
        if not self.settings.sync_sltp:
            return PositionStep()
        if source is not None:
            source_buys = source.type == PositionType.BUY
            levels: PositionFacts | PendingOrder = source
        elif source_order is not None:
            source_buys, levels = source_order.type in BUY_ORDER_TYPES, source_order
        else:
            return PositionStep()
        opposite = source_buys != (copy.type == PositionType.BUY)
        return self._sync_levels(copy, link, levels.sl, levels.tp, spec, opposite=opposite)

    def close(self, copy: PositionFacts, confirmed: ConfirmedOrphan) -> PositionStep:
        """The orphan policy confirmed that the source of ``copy`` is closed (or never filled)."""
        if self.settings.on_source_close is SourceClose.KEEP:
            return PositionStep()
        spec = self.specs.get(copy.symbol)
        if spec is None:
            return PositionStep(waiting="waiting for the target's symbol specification")
        return self._close_volume(copy, copy.volume, spec, confirmed.reason, confirmed.evidence)

    # ---- partial closes ------------------------------------------------------------------------

    def _partial_close(self, copy: PositionFacts, link: Link, source: PositionFacts,
                       spec: SymbolSpec) -> PositionStep | None:
        """The source closed a share of its position: close the same share of the copy's. The share is judged
        against the volume the source position opened with (its deals), so an order that filled only in part
        is never read as a close; and against the copy's volume when it was placed, so each plan works out the
        whole target again (a close that landed is never repeated)."""
        if link.source_volume <= 0 or link.volume <= 0 or source.volume >= link.source_volume - _TOLERANCE:
            return None  # the source holds all it was copied from (or more: netting adds are never mirrored)
        history = self.source_history.get(source.identifier)
        # Deals that do not add up to what the position holds now are from before its latest change (or the
        # history lags): read them again rather than decide on them.
        if history is None or history.volume_in <= 0 \
                or abs(history.volume_in - history.volume_out - source.volume) > _VOLUME_TOLERANCE:
            return PositionStep(waiting=f"source position #{source.identifier} holds {source.volume:g} lots of "
                                        f"{link.source_volume:g}: reading its deals", needs_history=True)
        share_left = min(1.0, source.volume / history.volume_in)
        keep = link.volume * share_left
        step = spec.volume_step or 0.01
        volume = snap_down(copy.volume - keep, step)
        if volume < step - _TOLERANCE:
            return None  # the copy already holds its share (to within a step)
        if copy.volume - volume < (spec.volume_min or step) - _TOLERANCE:
            volume = copy.volume  # a remainder the broker could not hold: close all
        closed_share = 1.0 - share_left
        reason = (f"source position #{source.identifier} closed {closed_share:.0%} "
                  f"({history.volume_in:g} -> {source.volume:g} lots)")
        return self._close_volume(copy, volume, spec, reason, "")

    # ---- closing -------------------------------------------------------------------------------

    def _close_volume(self, copy: PositionFacts, volume: float, spec: SymbolSpec, reason: str,
                      evidence: str) -> PositionStep:
        quote = self._quote(spec)
        if quote is not None:
            frozen = checks.position_frozen_problem(copy, quote, spec)
            if frozen:
                return PositionStep(waiting=frozen, frozen=True)
        volume = round(volume, step_decimals(spec.volume_step or 0.01))
        # No price: the worker closes at the tick of the moment it sends (and says what it asked and got).
        return PositionStep(action=Action(
            kind=ActionKind.CLOSE, source_ticket=SourceTicket(copy.magic), symbol=copy.symbol,
            ticket=CopyTicket(copy.ticket), order_type=copy.type, volume=volume,
            expected_volume=copy.volume, deviation=self.settings.close_deviation_points, magic=copy.magic,
            comment=copy_tag(copy.magic), reason=reason, evidence=evidence))

    # ---- SL and TP -----------------------------------------------------------------------------

    def _sync_levels(self, copy: PositionFacts, link: Link, source_sl: float, source_tp: float,
                     spec: SymbolSpec, *, opposite: bool) -> PositionStep:
        offset = link.price_offset if self.price_mode is PriceMode.MARKET_DISTANCE else 0.0
        wanted_sl, wanted_tp = position_levels(source_sl, source_tp, opposite=opposite, settings=self.copy_rules)

        def translated(level: float | None, own: float) -> float:
            if level is None:
                return own  # a level this target does not copy: the copy's own, whatever it is
            return round_price(level + offset, spec) if level else 0.0

        sl, tp = translated(wanted_sl, copy.sl), translated(wanted_tp, copy.tp)
        half_tick = (spec.tick_size or spec.point or 1e-9) / 2
        if abs(copy.sl - sl) < half_tick and abs(copy.tp - tp) < half_tick:
            return PositionStep()
        quote = self._quote(spec)
        if quote is None:
            return PositionStep(waiting="waiting for the target's prices")
        frozen = checks.position_frozen_problem(copy, quote, spec)
        if frozen:
            return PositionStep(waiting=frozen, frozen=True)
        problem = checks.position_levels_problem(copy, sl, tp, quote, spec)
        if problem:
            return PositionStep(waiting=problem)
        return PositionStep(action=Action(
            kind=ActionKind.SLTP, source_ticket=SourceTicket(copy.magic), symbol=copy.symbol,
            ticket=CopyTicket(copy.ticket), order_type=copy.type, volume=copy.volume, sl=sl, tp=tp,
            magic=copy.magic, comment=copy_tag(copy.magic),
            reason=f"SL {copy.sl:g} -> {sl:g}, TP {copy.tp:g} -> {tp:g}"))

    def _quote(self, spec: SymbolSpec) -> Quote | None:
        quote = self.quotes.get(spec.name)
        if quote is None and spec.bid > 0 and spec.ask > 0:
            quote = Quote(symbol=spec.name, bid=spec.bid, ask=spec.ask)
        return quote


def entry_slippage_points(order_type: int, reference: float, quote: Quote, spec: SymbolSpec) -> float:
    """How far the target's entry price (ask for a buy, bid for a sell) is from ``reference``, in points."""
    entry = quote.ask if order_type == PositionType.BUY else quote.bid
    point = spec.point or spec.tick_size or 1e-9
    return abs(entry - reference) / point
