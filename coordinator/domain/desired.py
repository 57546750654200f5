"""What a copy of one source order should look like on one target, from the source order alone plus the
target's settings, symbol specification, prices and clock. Pure."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from config import CopySettings, ExpirationFallback, PriceMode, VolumeMode
from coordinator.domain.clocks import Expiration, translate_expiration
from coordinator.domain.sizing import Accounts, round_price, size_volume
from coordinator.domain.transforms import left_out, shape
from protocol import PendingOrder, Quote, SymbolSpec
from protocol.mt5 import OrderTime, OrderType


class Anchor(msgspec.Struct, frozen=True, kw_only=True):
    """What was fixed when the copy was placed and must not drift with the market or the balance."""

    source_volume: float  # the source volume the copy was sized from
    volume: float  # the copy's volume
    price_offset: float  # copy price - source price (market_distance mode; 0 otherwise)
    # The copy's SL and TP as they are on the target: kept where the target does not copy the source's (copy_sl,
    # copy_tp = false), so a level someone set there by hand is left alone.
    sl: float = 0.0
    tp: float = 0.0


class DesiredCopy(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    order_type: OrderType
    volume: float
    price: float
    stoplimit: float
    sl: float
    tp: float
    expiration: Expiration
    source_volume: float
    price_offset: float
    note: str = ""


class TargetContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything about the target (and the source's market) that shapes a copy."""

    settings: CopySettings
    accounts: Accounts
    source_offset: int | None  # seconds each server clock runs ahead of UTC; None = not known yet
    target_offset: int | None
    source_quotes: dict[str, Quote]
    # The source's symbols (contract sizes).
    source_specs: Mapping[str, SymbolSpec] = msgspec.field(default_factory=dict)


class NotYet(Exception):
    """The copy cannot be computed yet; the reason resolves by itself (clocks, prices, balances)."""


class CannotCopy(Exception):
    """The target cannot take this order as it is (a setting or the broker's rules say so)."""


def desire(order: PendingOrder, symbol: str, spec: SymbolSpec, target_quote: Quote | None, context: TargetContext,
           anchor: Anchor | None) -> DesiredCopy:
    """The copy of ``order``, a pending order of a type the target copies (the planner filters the others), shaped
    by the target's copy rules (``coordinator/domain/transforms.py``: type map, reverse, copy_sl / copy_tp)."""
    settings = context.settings
    rule = left_out(order.type, settings)
    if rule:  # the planner leaves these out before asking
        raise CannotCopy(rule)
    shaped = shape(order, settings)
    note = ""
    ratio_sizing = settings.volume_mode in (VolumeMode.BALANCE_RATIO, VolumeMode.EQUITY_RATIO)
    if ratio_sizing and anchor is not None and abs(anchor.source_volume - order.volume) < 1e-9 and anchor.volume > 0:
        # Sized once from the balances of that moment: balances drift all day, copies must not follow them.
        volume, source_volume = anchor.volume, anchor.source_volume
    else:
        source_spec = context.source_specs.get(order.symbol)
        sized = size_volume(order.volume, settings, spec, context.accounts,
                            source_contract_size=source_spec.contract_size if source_spec else None)
        if sized.problem:
            raise (NotYet if sized.waiting else CannotCopy)(sized.problem)
        volume, source_volume, note = sized.volume, order.volume, sized.note

    offset = 0.0
    if settings.price_mode is PriceMode.MARKET_DISTANCE:
        if anchor is not None:
            offset = anchor.price_offset
        else:
            source_quote = context.source_quotes.get(order.symbol)
            if source_quote is None or target_quote is None:
                raise NotYet("waiting for the source's and the target's prices")
            # The target's market minus the source's market, fixed from now on for this copy.
            offset = _mid(target_quote) - _mid(source_quote)

    expiration = Expiration(OrderTime.GTC, 0)
    if order.type_time == OrderTime.GTC and not translate_expiration(order, 0, 0, spec.expiration_mode,
                                                                     fallback_to_gtc=False):
        raise CannotCopy(f"{symbol} on the target does not allow good-till-cancelled orders")
    if order.type_time != OrderTime.GTC:
        if context.source_offset is None or context.target_offset is None:
            raise NotYet("waiting to learn the brokers' server clocks")
        translated = translate_expiration(order, context.source_offset, context.target_offset,
                                          spec.expiration_mode,
                                          settings.expiration_fallback is ExpirationFallback.GTC)
        if translated is None:
            raise CannotCopy(f"{symbol} on the target does not allow this order's expiration "
                             f"(expiration_fallback = {settings.expiration_fallback.value})")
        expiration = translated
        if translated.fell_back:
            note = (note + "; " if note else "") + "expiration not allowed on the target: placed as GTC"

    def shifted(price: float) -> float:
        return round_price(price + offset, spec) if price else 0.0

    return DesiredCopy(
        symbol=symbol,
        order_type=shaped.order_type,
        volume=volume,
        price=shifted(shaped.price),
        stoplimit=shifted(shaped.stoplimit),
        sl=shifted(shaped.sl) if shaped.sl is not None else (anchor.sl if anchor is not None else 0.0),
        tp=shifted(shaped.tp) if shaped.tp is not None else (anchor.tp if anchor is not None else 0.0),
        expiration=expiration,
        source_volume=source_volume,
        price_offset=offset,
        note=note,
    )


def _mid(quote: Quote) -> float:
    return (quote.bid + quote.ask) / 2.0
