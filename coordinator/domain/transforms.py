"""How a copy differs from its source order, by the target's copy rules. Pure.

In this order:

1. ``[targets.order_type_map]`` gives the copy's type (only mappings that keep the trigger are accepted at load,
   ``config/type_mapping.py``): a stop limit mapped to the stop on its side is a stop at the trigger price, with
   no stop-limit price.
2. ``reverse = true`` turns it into the pending order of the other side that triggers at the same price (buy
   limit <-> sell stop, sell limit <-> buy stop), with SL and TP swapped: the source's take profit is the copy's
   stop loss. A stop limit has no exact reverse (a limit that waits for a stop on the other side does not exist):
   it is left out, unless step 1 made a stop of it.
3. ``copy_sl = false`` / ``copy_tp = false`` leave the copy's level to the copy: none when it is placed, and
   whatever someone sets on the target is left alone (never cleared, never moved when the source's level moves).
   They name the copy's levels, after the swap: with reverse, ``copy_sl = false`` drops what would have been the
   source's take profit.

``order_types`` picks source orders by their own type, before any of this. The planner asks ``left_out`` first
(an order a rule leaves out is not copied, and a copy of it is removed, like a type the target does not copy),
then ``desire`` (``coordinator/domain/desired.py``) shapes the copy with ``shape``. A copy's position follows its
source's SL and TP with ``position_levels``: swapped when the two positions are on opposite sides.

Prices here are the source's; the price offset of ``price_mode = "market_distance"`` and the target's tick
rounding are applied afterwards, to the shape's prices alike (a level of ``None`` is the copy's own, in the
target's prices already).
"""

from __future__ import annotations

import msgspec

from config import CopySettings, OrderKind
from protocol import PendingOrder
from protocol.mt5 import OrderType

# The pending order of the other side that triggers at the same price: a buy limit fills when the ask falls to
# its price, the sell stop when the bid does; a buy stop when the ask rises to it, the sell limit when the bid does.
REVERSED: dict[OrderType, OrderType] = {
    OrderType.BUY_LIMIT: OrderType.SELL_STOP,
    OrderType.SELL_STOP: OrderType.BUY_LIMIT,
    OrderType.SELL_LIMIT: OrderType.BUY_STOP,
    OrderType.BUY_STOP: OrderType.SELL_LIMIT,
}


class CopyShape(msgspec.Struct, frozen=True, kw_only=True):
    """The copy's type and prices in the source's terms. A level of None is the copy's own, left as it is."""

    order_type: OrderType
    price: float
    stoplimit: float  # 0 unless the copy is a stop limit
    sl: float | None
    tp: float | None


def mapped_type(order_type: OrderType, settings: CopySettings) -> OrderType:
    """The copy's type by ``order_type_map`` alone (before ``reverse``)."""
    kind = OrderKind.from_mt5_type(order_type)
    for source, copy in settings.order_type_map:
        if source is kind:
            return copy.mt5_type
    return order_type


def left_out(order_type: int, settings: CopySettings) -> str | None:
    """Why the target's copy rules leave a source order of this type out (None: they copy it)."""
    source_type = OrderType(order_type)
    if settings.reverse and mapped_type(source_type, settings) not in REVERSED:
        return (f"reverse = true: a {source_type.label} has no exact reverse (map it to a stop in "
                "[targets.order_type_map] to copy it reversed)")
    return None


def shape(order: PendingOrder, settings: CopySettings) -> CopyShape:
    """The copy of ``order`` by the copy rules; ``order`` is one that ``left_out`` lets through."""
    order_type = mapped_type(OrderType(order.type), settings)
    # A stop mapped from a stop limit sits at the trigger price (price_open); the limit price goes.
    stoplimit = order.price_stoplimit if order_type.is_stop_limit else 0.0
    sl, tp = order.sl, order.tp
    if settings.reverse:
        order_type = REVERSED[order_type]
        sl, tp = tp, sl
    return CopyShape(order_type=order_type, price=order.price_open, stoplimit=stoplimit,
                     sl=sl if settings.copy_sl else None, tp=tp if settings.copy_tp else None)


def position_levels(source_sl: float, source_tp: float, *, opposite: bool,
                    settings: CopySettings) -> tuple[float | None, float | None]:
    """The SL and TP a copy's position takes from its source (the source's position, or its order while that is
    pending), in the source's prices: swapped when the copy's position is on the other side of the source's
    (a reversed copy; decided by the sides, so a copy placed before reverse was switched on keeps following
    as it was placed); None where the copy keeps its own level (copy_sl / copy_tp = false)."""
    sl, tp = (source_tp, source_sl) if opposite else (source_sl, source_tp)
    return (sl if settings.copy_sl else None), (tp if settings.copy_tp else None)
