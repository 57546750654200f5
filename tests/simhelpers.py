"""Helpers for tests that drive simulated terminals the way a trader would."""

from __future__ import annotations

from pathlib import Path

import mt5sim
from protocol.tags import parse_tag

BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP, BUY_STOP_LIMIT, SELL_STOP_LIMIT = 2, 3, 4, 5, 6, 7
ALL_PENDING_TYPES = (BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP, BUY_STOP_LIMIT, SELL_STOP_LIMIT)


def place_pending(terminal: mt5sim.Terminal, order_type: int, symbol: str = "EURUSD", volume: float = 0.1,
                  distance_points: int = 500, *, with_stops: bool = True, type_time: int = 0,
                  expiration: int = 0, magic: int = 0, comment: str = "trader") -> int:
    """Place a valid pending order ``distance_points`` away from the market; return its ticket."""
    info = terminal.symbol_info(symbol)
    tick = terminal.symbol_info_tick(symbol)
    distance = distance_points * info.point
    buy = order_type in (BUY_LIMIT, BUY_STOP, BUY_STOP_LIMIT)
    reference = tick.ask if buy else tick.bid
    below = order_type in (BUY_LIMIT, SELL_STOP, SELL_STOP_LIMIT)
    price = round(reference - distance if below else reference + distance, info.digits)
    stoplimit = 0.0
    if order_type == BUY_STOP_LIMIT:
        stoplimit = round(price - distance / 2, info.digits)
    elif order_type == SELL_STOP_LIMIT:
        stoplimit = round(price + distance / 2, info.digits)
    entry = stoplimit or price
    sl = tp = 0.0
    if with_stops:
        sl = round(entry - distance if buy else entry + distance, info.digits)
        tp = round(entry + distance if buy else entry - distance, info.digits)
    result = terminal.order_send({
        "action": mt5sim.TRADE_ACTION_PENDING, "symbol": symbol, "volume": volume, "type": order_type,
        "price": price, "stoplimit": stoplimit, "sl": sl, "tp": tp, "type_time": type_time,
        "expiration": expiration, "type_filling": mt5sim.ORDER_FILLING_RETURN, "magic": magic, "comment": comment,
    })
    assert result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE, result
    return result.order


def copies(terminal: mt5sim.Terminal) -> dict[int, object]:
    """The copier's pending copies on a target, by source ticket."""
    found = {}
    for order in terminal.orders_get() or ():
        if parse_tag(order.comment) == order.magic:
            assert order.magic not in found, f"two copies of source #{order.magic}"
            found[order.magic] = order
    return found


def create(path: Path, login: int, server: str = "Sim-Server", **options) -> mt5sim.Terminal:
    mt5sim.create_terminal(path, login=login, server=server, **options)
    return mt5sim.Terminal(path)
