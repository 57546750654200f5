"""Checks before sending, against the target symbol's specification and current prices.

The broker has the last word (and the worker runs ``order_check`` before every placement), but what can be
known here is said here, with a reason a person understands, and is re-evaluated on every plan: a price too
close to the market today may be fine after the market moves.
"""

from __future__ import annotations

from protocol import PendingOrder, PositionFacts, Quote, SymbolSpec
from protocol.mt5 import BUY_ORDER_TYPES, OrderType, PositionType, SymbolOrderFlag, SymbolTradeMode

_TOLERANCE = 1e-9


def trade_mode_problem(order_type: int, spec: SymbolSpec) -> str | None:
    mode = spec.trade_mode
    if mode == SymbolTradeMode.DISABLED:
        return f"trading in {spec.name} is disabled on the target"
    if mode == SymbolTradeMode.CLOSEONLY:
        return f"{spec.name} is close-only on the target"
    if mode == SymbolTradeMode.LONGONLY and order_type not in BUY_ORDER_TYPES:
        return f"{spec.name} allows buy orders only on the target"
    if mode == SymbolTradeMode.SHORTONLY and order_type in BUY_ORDER_TYPES:
        return f"{spec.name} allows sell orders only on the target"
    return None


def order_mode_problem(order_type: OrderType, sl: float, tp: float, spec: SymbolSpec) -> str | None:
    if not spec.order_mode & order_type.order_mode_flag:
        return f"the target's broker does not allow this order type on {spec.name}"
    if sl and not spec.order_mode & SymbolOrderFlag.SL:
        return f"the target's broker does not allow stop losses on {spec.name}"
    if tp and not spec.order_mode & SymbolOrderFlag.TP:
        return f"the target's broker does not allow take profits on {spec.name}"
    return None


def activation_distance(order_type: int, price: float, quote: Quote) -> float:
    """How far the market is from triggering the order (negative: it is already past)."""
    if order_type == OrderType.BUY_LIMIT:  # fills when ask falls to it
        return quote.ask - price
    if order_type in (OrderType.BUY_STOP, OrderType.BUY_STOP_LIMIT):  # triggers when ask rises to it
        return price - quote.ask
    if order_type == OrderType.SELL_LIMIT:  # fills when bid rises to it
        return price - quote.bid
    return quote.bid - price  # sell stop (limit)


def price_problem(order_type: int, price: float, quote: Quote, spec: SymbolSpec) -> str | None:
    """The entry must be on the right side of the target's market and at least stops_level points away."""
    distance = activation_distance(order_type, price, quote)
    minimum = spec.stops_level * spec.point
    if distance < -_TOLERANCE:
        return f"price {price} is already on the far side of the target's market ({quote.bid}/{quote.ask})"
    if distance < minimum - _TOLERANCE:
        return (f"price {price} is within the target's stops level ({spec.stops_level} points) of its market "
                f"({quote.bid}/{quote.ask})")
    return None


def stops_problem(order_type: int, entry: float, sl: float, tp: float, spec: SymbolSpec) -> str | None:
    """SL and TP on the right side of the entry (the limit price of a stop-limit) and far enough from it."""
    return _levels_problem(order_type in BUY_ORDER_TYPES, entry, sl, tp, spec, "the entry")


def position_levels_problem(position: PositionFacts, sl: float, tp: float, quote: Quote,
                            spec: SymbolSpec) -> str | None:
    """A position's SL and TP on the right side of its closing price (bid for a buy, ask for a sell) and at
    least stops_level points from it."""
    return _levels_problem(position.type == PositionType.BUY, closing_price(position, quote), sl, tp, spec,
                           "the target's market")


def _levels_problem(buy: bool, reference: float, sl: float, tp: float, spec: SymbolSpec, what: str) -> str | None:
    minimum = spec.stops_level * spec.point
    for name, level, gap in (("stop loss", sl, reference - sl), ("take profit", tp, tp - reference)):
        gap = gap if buy else -gap
        if level and (gap <= _TOLERANCE or gap < minimum - _TOLERANCE):
            return f"{name} {level:g} is on the wrong side of, or within {spec.stops_level} points of, {what} " \
                   f"{reference:g}"
    return None


def closing_price(position: PositionFacts, quote: Quote) -> float:
    """A buy position closes at the bid, a sell at the ask."""
    return quote.bid if position.type == PositionType.BUY else quote.ask


def position_frozen_problem(position: PositionFacts, quote: Quote, spec: SymbolSpec) -> str | None:
    """A position whose SL or TP is within freeze_level points of the market can be neither modified nor
    closed until the market moves away."""
    if spec.freeze_level <= 0:
        return None
    price = closing_price(position, quote)
    limit = spec.freeze_level * spec.point + _TOLERANCE
    for name, level in (("stop loss", position.sl), ("take profit", position.tp)):
        if level and abs(price - level) <= limit:
            return (f"the copy's position #{position.ticket} has its {name} within the freeze level "
                    f"({spec.freeze_level} points) of the market")
    return None


def frozen_problem(copy: PendingOrder, quote: Quote, spec: SymbolSpec) -> str | None:
    """A pending order within freeze_level points of activation cannot be modified or removed."""
    if spec.freeze_level <= 0:
        return None
    distance = activation_distance(copy.type, copy.price_open, quote)
    if distance <= spec.freeze_level * spec.point + _TOLERANCE:
        return f"the copy #{copy.ticket} is within the freeze level ({spec.freeze_level} points) of the market"
    return None


def volume_limit_problem(order_type: int, volume: float, symbol: str, spec: SymbolSpec,
                         orders: list[PendingOrder], position_volumes: list[tuple[int, float]]) -> str | None:
    """Positions plus pending orders in one direction on a symbol may not exceed volume_limit (0 = none)."""
    if spec.volume_limit <= 0:
        return None
    buy = order_type in BUY_ORDER_TYPES
    pending = sum(o.volume for o in orders if o.symbol == symbol and (o.type in BUY_ORDER_TYPES) == buy)
    held = sum(v for position_type, v in position_volumes if (position_type == PositionType.BUY) == buy)
    if pending + held + volume > spec.volume_limit + _TOLERANCE:
        return (f"{symbol} volume limit {spec.volume_limit} lots would be exceeded "
                f"({pending + held:g} already, {volume:g} more)")
    return None
