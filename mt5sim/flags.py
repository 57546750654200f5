"""Bit flags of SymbolInfo's expiration_mode, filling_mode and order_mode (mt5-api.md §5).

The real package does not export these (they are SYMBOL_EXPIRATION_*, SYMBOL_FILLING_*, SYMBOL_ORDER_* in
MQL5). mt5sim keeps them here, under other names, and never re-exports them: code that relied on them would
work against the simulator and raise AttributeError against the real package.
"""

from __future__ import annotations

EXPIRATION_GTC = 1
EXPIRATION_DAY = 2
EXPIRATION_SPECIFIED = 4
EXPIRATION_SPECIFIED_DAY = 8

FILLING_FOK = 1
FILLING_IOC = 2
FILLING_BOC = 4

ORDER_MARKET = 1
ORDER_LIMIT = 2
ORDER_STOP = 4
ORDER_STOP_LIMIT = 8
ORDER_SL = 16
ORDER_TP = 32
ORDER_CLOSEBY = 64

ORDER_FILLING_RETURN = 2  # mirrors the exported constant; RETURN has no bit in filling_mode


def expiration_allowed(expiration_mode: int, type_time: int) -> bool:
    """Whether `type_time` (ORDER_TIME_*) is allowed: the BOOK's `(1 << duration) & modes`."""
    return 0 <= type_time <= 3 and bool(expiration_mode & (1 << type_time))


def order_type_allowed(order_mode: int, order_type: int) -> bool:
    """Whether an order type 0..7 is allowed: market, limit, stop and stop-limit share a bit per pair."""
    return 0 <= order_type <= 7 and bool(order_mode & (1 << (order_type // 2)))


def filling_allowed(filling_mode: int, type_filling: int) -> bool:
    """Pending-order filling rule of the simulator: RETURN always, FOK/IOC/BOC only if their bit is set."""
    if type_filling == ORDER_FILLING_RETURN:
        return True
    return type_filling in (0, 1, 3) and bool(filling_mode & (type_filling + 1))
