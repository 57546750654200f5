"""Symbol specifications: the defaults of every SymbolInfo field and a few realistic broker presets.

A symbol is stored as a full SymbolInfo dict (the "spec"); quotes live beside it and are merged in when the
symbol is read. Values follow what retail brokers publish (MT5 contract specifications) and the sample
values of mt5-api.md §4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, get_type_hints

from . import constants as c
from . import flags
from .types import SYMBOL_INFO_FIELDS, SymbolInfo

ALL_EXPIRATIONS = (
    flags.EXPIRATION_GTC | flags.EXPIRATION_DAY | flags.EXPIRATION_SPECIFIED | flags.EXPIRATION_SPECIFIED_DAY
)
ALL_ORDERS = (
    flags.ORDER_MARKET
    | flags.ORDER_LIMIT
    | flags.ORDER_STOP
    | flags.ORDER_STOP_LIMIT
    | flags.ORDER_SL
    | flags.ORDER_TP
    | flags.ORDER_CLOSEBY
)

# Fields the broker moves with every tick: set through set_quote, never through set_symbol.
QUOTE_FIELDS = frozenset({"bid", "ask", "bidhigh", "bidlow", "askhigh", "asklow", "time", "spread"})

# Each field's Python type (bool, int, float or str), as types.SymbolInfo declares it.
_FIELD_KINDS: dict[str, type] = get_type_hints(SymbolInfo)


def field_kind(name: str) -> type:
    """The Python type of a SymbolInfo field (bool, int, float or str)."""
    return _FIELD_KINDS[name]


def coerce_field(name: str, value: Any) -> Any:
    """Convert an override to the field's type; unknown names and unconvertible values raise."""
    if name not in SYMBOL_INFO_FIELDS:
        raise ValueError(f"unknown SymbolInfo field {name!r}")
    kind = field_kind(name)
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(f"SymbolInfo.{name} must be a str, got {value!r}")
        return value
    if isinstance(value, str) or value is None:
        raise TypeError(f"SymbolInfo.{name} must be a number, got {value!r}")
    if kind is float and not math.isfinite(float(value)):
        raise ValueError(f"SymbolInfo.{name} must be finite, got {value!r}")
    return kind(value)


def default_spec(name: str) -> dict[str, Any]:
    """Every SymbolInfo field of a plain FX-like symbol; currencies guessed from a 6-letter name."""
    spec: dict[str, Any] = {}
    for field in SYMBOL_INFO_FIELDS:
        kind = field_kind(field)
        spec[field] = kind()
    letters = name[:6]
    base, quote = (letters[:3], letters[3:6]) if len(letters) == 6 and letters.isalpha() else ("USD", "USD")
    spec.update(
        name=name,
        select=True,
        visible=True,
        spread_float=True,
        digits=5,
        point=1e-5,
        trade_tick_size=1e-5,
        trade_tick_value=1.0,
        trade_tick_value_profit=1.0,
        trade_tick_value_loss=1.0,
        trade_contract_size=100000.0,
        trade_calc_mode=c.SYMBOL_CALC_MODE_FOREX,
        trade_mode=c.SYMBOL_TRADE_MODE_FULL,
        trade_exemode=c.SYMBOL_TRADE_EXECUTION_MARKET,
        trade_stops_level=10,
        trade_freeze_level=0,
        swap_mode=c.SYMBOL_SWAP_MODE_POINTS,
        swap_rollover3days=c.DAY_OF_WEEK_WEDNESDAY,
        expiration_mode=ALL_EXPIRATIONS,
        filling_mode=flags.FILLING_FOK | flags.FILLING_IOC,
        order_mode=ALL_ORDERS,
        order_gtc_mode=c.SYMBOL_ORDERS_GTC,
        chart_mode=c.SYMBOL_CHART_MODE_BID,
        ticks_bookdepth=10,
        volume_min=0.01,
        volume_max=100.0,
        volume_step=0.01,
        volume_limit=0.0,
        swap_long=-5.0,
        swap_short=1.0,
        margin_hedged=50000.0,
        currency_base=base,
        currency_profit=quote,
        currency_margin=base,
        description=name,
        path=f"Custom\\{name}",
    )
    return spec


# name -> overrides of default_spec, plus the initial bid/ask.
PRESETS: dict[str, dict[str, Any]] = {
    "EURUSD": {
        "description": "Euro vs US Dollar",
        "path": "Forex\\Majors\\EURUSD",
        "volume_max": 500.0,
        "trade_stops_level": 10,
        "trade_freeze_level": 5,
        "swap_long": -6.9,
        "swap_short": 1.4,
        "bid": 1.085,
        "ask": 1.08512,
    },
    "GBPUSD": {
        "description": "Great Britain Pound vs US Dollar",
        "path": "Forex\\Majors\\GBPUSD",
        "volume_max": 500.0,
        "trade_stops_level": 15,
        "trade_freeze_level": 5,
        "swap_long": -4.1,
        "swap_short": -0.9,
        "bid": 1.27,
        "ask": 1.27015,
    },
    "USDJPY": {
        "description": "US Dollar vs Japanese Yen",
        "path": "Forex\\Majors\\USDJPY",
        "digits": 3,
        "point": 0.001,
        "trade_tick_size": 0.001,
        "volume_max": 500.0,
        "trade_stops_level": 10,
        "trade_freeze_level": 3,
        "swap_long": 12.3,
        "swap_short": -25.6,
        "bid": 150.0,
        "ask": 150.012,
    },
    "XAUUSD": {
        "description": "Gold vs US Dollar",
        "path": "Metals\\XAUUSD",
        "digits": 2,
        "point": 0.01,
        "trade_tick_size": 0.01,
        "trade_contract_size": 100.0,
        "margin_hedged": 50.0,
        "currency_base": "XAU",
        "currency_margin": "XAU",
        "currency_profit": "USD",
        "filling_mode": flags.FILLING_FOK,
        "trade_stops_level": 20,
        "trade_freeze_level": 10,
        "swap_long": -35.2,
        "swap_short": 18.4,
        "bid": 2000.0,
        "ask": 2000.25,
    },
    "US500": {
        # Index CFD quoted in quarter points like the underlying future: a symbol whose tick size is not
        # its point, so price normalisation to the tick size is exercised.
        "description": "US 500 Cash Index",
        "path": "Indices\\US500",
        "digits": 2,
        "point": 0.01,
        "trade_tick_size": 0.25,
        "trade_contract_size": 1.0,
        "trade_calc_mode": c.SYMBOL_CALC_MODE_CFDLEVERAGE,
        "currency_base": "USD",
        "currency_margin": "USD",
        "currency_profit": "USD",
        "filling_mode": flags.FILLING_IOC,
        "volume_min": 0.1,
        "volume_step": 0.1,
        "volume_max": 100.0,
        "trade_stops_level": 50,
        "trade_freeze_level": 0,
        "margin_hedged": 0.0,
        "swap_mode": c.SYMBOL_SWAP_MODE_CURRENCY_DEPOSIT,
        "swap_long": -1.2,
        "swap_short": -0.4,
        "bid": 5000.0,
        "ask": 5000.5,
    },
}


def build_spec(name: str, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], float, float]:
    """A full spec from default_spec plus overrides; returns (spec, bid, ask).

    Changing `digits` alone also moves `point` and `trade_tick_size`, so a user-defined symbol stays
    self-consistent.
    """
    spec = default_spec(name)
    bid = float(overrides.get("bid", 1.0))
    ask = float(overrides.get("ask", bid))
    if "digits" in overrides:
        point = 10.0 ** -int(overrides["digits"])
        spec["point"] = round(point, 12)
        spec["trade_tick_size"] = round(point, 12)
    for key, value in overrides.items():
        if key in ("bid", "ask"):
            continue
        if key in QUOTE_FIELDS:
            raise ValueError(f"SymbolInfo.{key} follows the quotes; set bid/ask instead")
        spec[key] = coerce_field(key, value)
    spec["name"] = name
    if bid <= 0 or ask < bid:
        raise ValueError(f"{name}: need 0 < bid <= ask, got bid={bid} ask={ask}")
    return spec, bid, ask


def preset_symbols(
    suffix: str = "", symbols: Mapping[str, Mapping[str, Any] | None] | None = None
) -> list[tuple[dict[str, Any], float, float]]:
    """The presets renamed with `suffix`, then `symbols` applied.

    A key of `symbols` naming a preset (with or without the suffix) overrides its fields, None removes it;
    any other key defines a new symbol under exactly that name.
    """
    extra = dict(symbols or {})
    result: list[tuple[dict[str, Any], float, float]] = []
    for base, preset in PRESETS.items():
        name = base + suffix
        overrides: dict[str, Any] = dict(preset)
        overrides["path"] = preset["path"] + suffix
        removed = False
        for key in (base, name):
            if key in extra:
                change = extra.pop(key)
                if change is None:
                    removed = True
                else:
                    overrides.update(change)
        if not removed:
            result.append(build_spec(name, overrides))
    for name, change in extra.items():
        if change is None:
            continue
        result.append(build_spec(name, change))
    return result
