"""Checks before sending, against the target symbol's specification and current prices.

The broker has the last word (and the worker runs ``order_check`` before every placement), but what can be
known here is said here, with a reason a person understands, and is re-evaluated on every plan: a price too
close to the market today may be fine after the market moves.
"""

from __future__ import annotations

from protocol import PendingOrder, Quote, SymbolSpec

BUY_TYPES = frozenset({2, 4, 6})
# SYMBOL_TRADE_MODE_*: which order sides may be opened
_TRADE_DISABLED, _LONG_ONLY, _SHORT_ONLY, _CLOSE_ONLY = 0, 1, 2, 3
_ORDER_MODE_SL, _ORDER_MODE_TP = 16, 32
_TOLERANCE = 1e-9


def trade_mode_problem(order_type: int, spec: SymbolSpec) -> str | None:
    mode = spec.trade_mode
    if mode == _TRADE_DISABLED:
        return f"trading in {spec.name} is disabled on the target"
    if mode == _CLOSE_ONLY:
        return f"{spec.name} is close-only on the target"
    if mode == _LONG_ONLY and order_type not in BUY_TYPES:
        return f"{spec.name} allows buy orders only on the target"
    if mode == _SHORT_ONLY and order_type in BUY_TYPES:
        return f"{spec.name} allows sell orders only on the target"
    return None


def order_mode_problem(order_type: int, sl: float, tp: float, spec: SymbolSpec) -> str | None:
    # A pending type is allowed when order_mode has bit 1 << (type // 2) (shared/mt5-api.md §5).
    if not spec.order_mode & (1 << (order_type // 2)):
        return f"the target's broker does not allow this order type on {spec.name}"
    if sl and not spec.order_mode & _ORDER_MODE_SL:
        return f"the target's broker does not allow stop losses on {spec.name}"
    if tp and not spec.order_mode & _ORDER_MODE_TP:
        return f"the target's broker does not allow take profits on {spec.name}"
    return None


def activation_distance(order_type: int, price: float, quote: Quote) -> float:
    """How far the market is from triggering the order (negative: it is already past)."""
    if order_type == 2:  # buy limit: fills when ask falls to it
        return quote.ask - price
    if order_type in (4, 6):  # buy stop (limit): triggers when ask rises to it
        return price - quote.ask
    if order_type == 3:  # sell limit: fills when bid rises to it
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
    minimum = spec.stops_level * spec.point
    buy = order_type in BUY_TYPES
    if sl:
        gap = entry - sl if buy else sl - entry
        if gap <= _TOLERANCE or gap < minimum - _TOLERANCE:
            return f"stop loss {sl} is on the wrong side of, or within {spec.stops_level} points of, the entry {entry}"
    if tp:
        gap = tp - entry if buy else entry - tp
        if gap <= _TOLERANCE or gap < minimum - _TOLERANCE:
            return (f"take profit {tp} is on the wrong side of, or within {spec.stops_level} points of, "
                    f"the entry {entry}")
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
    buy = order_type in BUY_TYPES
    pending = sum(o.volume for o in orders if o.symbol == symbol and (o.type in BUY_TYPES) == buy)
    held = sum(v for position_type, v in position_volumes if (position_type == 0) == buy)
    if pending + held + volume > spec.volume_limit + _TOLERANCE:
        return (f"{symbol} volume limit {spec.volume_limit} lots would be exceeded "
                f"({pending + held:g} already, {volume:g} more)")
    return None
