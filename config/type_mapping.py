"""Which entries of [targets.order_type_map] are accepted: only those that keep the order's trigger meaningful.

A copy is placed at its source order's price. Mapping its type is sound only when the mapped type, at that price,
waits for the same market move and then trades the same way:

- a stop limit to the stop on its side (``buy_stop_limit = "buy_stop"``): both wait for the market to reach the
  stop price; the stop then fills at market instead of placing a limit (for brokers without stop limits);
- a type to itself: changes nothing.

Everything else is refused at load, with why: a limit and a stop (or stop limit) on one side wait on opposite
sides of the market (at the same price one of them is past it, and the broker refuses it); a stop has no limit
price to give a stop limit; and a buy mapped to a sell is what ``reverse = true`` does properly (it swaps SL and
TP too).
"""

from __future__ import annotations

from .choices import OrderKind

ACCEPTED_HINT = 'accepted: buy_stop_limit = "buy_stop", sell_stop_limit = "sell_stop"'


def order_type_mapping_problem(source: OrderKind, copy: OrderKind) -> str | None:
    """Why copying a ``source`` order as a ``copy`` is refused; None when the trigger keeps its meaning."""
    if source is copy:
        return None
    source_type, copy_type = source.mt5_type, copy.mt5_type
    if source_type.is_buy != copy_type.is_buy:
        return (f"a {source_type.label} would be copied as a {copy_type.label}, a trade the other way: copies that "
                f"trade the other way are made with reverse = true, which keeps the trigger price and swaps SL and "
                f"TP; {ACCEPTED_HINT}")
    if _waits_above(source) != _waits_above(copy):
        return (f"a {source_type.label} waits {_where(source)} the market (it {_trades_on(source)}) and a "
                f"{copy_type.label} {_where(copy)} it (it {_trades_on(copy)}): at the {source_type.label}'s price "
                f"the {copy_type.label} would be on the wrong side of the market, and the broker refuses it; "
                f"{ACCEPTED_HINT}")
    # The same side and the same direction: a stop limit and the stop it triggers like.
    if source_type.is_stop_limit:
        return None  # a stop at the stop limit's trigger price
    return f"a {source_type.label} has no limit price to give a {copy_type.label}; {ACCEPTED_HINT}"


def _waits_above(kind: OrderKind) -> bool:
    """Whether an order of this kind is placed above the market (buy stops, sell limits) or below it."""
    return kind in (OrderKind.BUY_STOP, OrderKind.BUY_STOP_LIMIT, OrderKind.SELL_LIMIT)


def _where(kind: OrderKind) -> str:
    return "above" if _waits_above(kind) else "below"


def _trades_on(kind: OrderKind) -> str:
    move = "rise" if _waits_above(kind) else "fall"
    return f"{kind.mt5_type.label.split()[0]}s on a {move} to its price"
