"""Broker server clocks and expirations.

MT5 times are the broker's server clock encoded as epoch seconds, and brokers run their servers at GMT+2,
GMT+3 or elsewhere. An expiration copied as-is would mean another instant on a target in another zone: it
is converted through UTC. Offsets come from the config (``server_utc_offset``) or from tick times.
"""

from __future__ import annotations

import msgspec

from protocol import PendingOrder
from protocol.mt5 import OrderTime

DAY_SECONDS = 86_400
OFFSET_GRANULARITY = 900  # brokers' zones are whole quarter hours from UTC


def estimate_offset(server_time: int, utc_seconds: float) -> int:
    """Seconds the server clock runs ahead of UTC, from a fresh tick time, rounded to a quarter hour."""
    return round((server_time - utc_seconds) / OFFSET_GRANULARITY) * OFFSET_GRANULARITY


def allowed(expiration_mode: int, type_time: int) -> bool:
    """The symbol's expiration_mode flags allow ``type_time`` (shared/mt5-api.md §5: bit 1 << type_time)."""
    return bool(expiration_mode & (1 << type_time))


class Expiration(msgspec.Struct, frozen=True):
    type_time: int
    expiration: int  # target server clock seconds; 0 for GTC and DAY
    fell_back: bool = False


def source_expiry_utc(order: PendingOrder, source_offset: int) -> int | None:
    """The instant (UTC seconds) a source order expires, or None for GTC."""
    if order.type_time == OrderTime.SPECIFIED:
        return order.time_expiration - source_offset
    if order.type_time == OrderTime.SPECIFIED_DAY:
        # "Until 23:59:59 of the specified day", on the source's clock.
        day = order.time_expiration // DAY_SECONDS
        return day * DAY_SECONDS + DAY_SECONDS - 1 - source_offset
    if order.type_time == OrderTime.DAY:
        day = (order.time_setup_msc // 1000) // DAY_SECONDS
        return day * DAY_SECONDS + DAY_SECONDS - 1 - source_offset
    return None


def translate_expiration(order: PendingOrder, source_offset: int, target_offset: int,
                         expiration_mode: int, fallback_to_gtc: bool) -> Expiration | None:
    """The copy's type_time and expiration meaning the same instant as the source's, in a mode the target
    symbol allows; None when it cannot be done and the fallback is to skip."""
    if order.type_time == OrderTime.GTC:
        return Expiration(OrderTime.GTC, 0) if allowed(expiration_mode, OrderTime.GTC) else None
    same_clock = source_offset == target_offset
    day_bound = order.type_time in (OrderTime.DAY, OrderTime.SPECIFIED_DAY)
    if same_clock and day_bound and allowed(expiration_mode, order.type_time):
        return Expiration(order.type_time,
                          order.time_expiration if order.type_time == OrderTime.SPECIFIED_DAY else 0)
    instant = source_expiry_utc(order, source_offset)
    if instant is not None and allowed(expiration_mode, OrderTime.SPECIFIED):
        return Expiration(OrderTime.SPECIFIED, instant + target_offset)
    if fallback_to_gtc and allowed(expiration_mode, OrderTime.GTC):
        return Expiration(OrderTime.GTC, 0, fell_back=True)
    return None


def same_expiration(copy: PendingOrder, wanted: Expiration) -> bool:
    """Does the copy already expire as wanted? DAY and GTC carry no meaningful time; a SPECIFIED_DAY is a day."""
    if copy.type_time != wanted.type_time:
        return False
    if wanted.type_time == OrderTime.SPECIFIED:
        return copy.time_expiration == wanted.expiration
    if wanted.type_time == OrderTime.SPECIFIED_DAY:
        return copy.time_expiration // DAY_SECONDS == wanted.expiration // DAY_SECONDS
    return True
