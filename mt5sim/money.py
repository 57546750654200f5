"""Margin, profit and currency conversion, computed from a terminal's own symbols and quotes.

Formulas follow the MQL5 reference for each SYMBOL_CALC_MODE (margin in the margin currency, profit in the
profit currency) and convert into the account currency through a symbol that quotes the two currencies,
directly, inversely or through USD/EUR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import constants as c

# Modes whose profit is counted in ticks of trade_tick_value (already in the account currency).
_TICK_VALUE_MODES = frozenset(
    {
        c.SYMBOL_CALC_MODE_CFDINDEX,
        c.SYMBOL_CALC_MODE_FUTURES,
        c.SYMBOL_CALC_MODE_EXCH_FUTURES,
        c.SYMBOL_CALC_MODE_EXCH_OPTIONS,
        c.SYMBOL_CALC_MODE_EXCH_OPTIONS_MARGIN,
    }
)
_INITIAL_MARGIN_MODES = frozenset(
    {
        c.SYMBOL_CALC_MODE_FUTURES,
        c.SYMBOL_CALC_MODE_EXCH_FUTURES,
        c.SYMBOL_CALC_MODE_EXCH_OPTIONS,
        c.SYMBOL_CALC_MODE_EXCH_OPTIONS_MARGIN,
    }
)


class ConversionError(LookupError):
    """No symbol of the terminal quotes the two currencies."""


class Rates:
    """Exchange rates taken from the terminal's symbols (base/profit currency and bid/ask)."""

    def __init__(self, symbols: Iterable[Mapping[str, Any]]) -> None:
        self._pairs: dict[tuple[str, str], tuple[float, float]] = {}
        for spec in symbols:
            base, quote = spec["currency_base"], spec["currency_profit"]
            if base and quote and base != quote and spec["bid"] > 0 and spec["ask"] > 0:
                self._pairs.setdefault((base, quote), (spec["bid"], spec["ask"]))

    def _rate(self, source: str, target: str) -> float | None:
        if (source, target) in self._pairs:
            return self._pairs[(source, target)][0]
        if (target, source) in self._pairs:
            return 1.0 / self._pairs[(target, source)][1]
        return None

    def convert(self, amount: float, source: str, target: str) -> float:
        """`amount` of `source` currency in `target` currency."""
        if source == target or amount == 0.0:
            return amount
        rate = self._rate(source, target)
        if rate is not None:
            return amount * rate
        for via in ("USD", "EUR"):
            if via in (source, target):
                continue
            first, second = self._rate(source, via), self._rate(via, target)
            if first is not None and second is not None:
                return amount * first * second
        raise ConversionError(f"no quote converts {source} to {target}")


def margin(spec: Mapping[str, Any], volume: float, price: float, leverage: int, currency: str, rates: Rates) -> float:
    """Margin of `volume` lots at `price`, in the account `currency`."""
    mode = spec["trade_calc_mode"]
    contract = spec["trade_contract_size"]
    leverage = max(int(leverage), 1)
    if mode == c.SYMBOL_CALC_MODE_FOREX:
        amount = volume * contract / leverage
    elif mode == c.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE:
        amount = volume * contract
    elif mode == c.SYMBOL_CALC_MODE_CFD:
        amount = volume * contract * price
    elif mode == c.SYMBOL_CALC_MODE_CFDINDEX:
        tick_size = spec["trade_tick_size"] or spec["point"] or 1.0
        amount = volume * contract * price * spec["trade_tick_value"] / tick_size
    elif mode == c.SYMBOL_CALC_MODE_CFDLEVERAGE:
        amount = volume * contract * price / leverage
    elif mode in _INITIAL_MARGIN_MODES:
        amount = volume * spec["margin_initial"]
    else:
        amount = volume * contract * price
    margin_currency = spec["currency_margin"] or spec["currency_base"] or currency
    if (
        mode in (c.SYMBOL_CALC_MODE_FOREX, c.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE)
        and margin_currency == spec["currency_base"]
        and spec["currency_profit"] == currency
    ):
        # EURUSD on a USD account: the margin in EUR converts at the price the margin is asked for.
        return amount * price
    return rates.convert(amount, margin_currency, currency)


def profit(
    spec: Mapping[str, Any],
    is_buy: bool,
    volume: float,
    price_open: float,
    price_close: float,
    currency: str,
    rates: Rates,
) -> float:
    """Profit of a position from `price_open` to `price_close`, in the account `currency`."""
    difference = (price_close - price_open) if is_buy else (price_open - price_close)
    if spec["trade_calc_mode"] in _TICK_VALUE_MODES:
        tick_size = spec["trade_tick_size"] or spec["point"] or 1.0
        return difference / tick_size * spec["trade_tick_value"] * volume
    amount = difference * spec["trade_contract_size"] * volume
    return rates.convert(amount, spec["currency_profit"] or currency, currency)


def tick_value(spec: Mapping[str, Any], currency: str, rates: Rates) -> float:
    """Value of one tick for one lot in the account currency (what SymbolInfo.trade_tick_value reports)."""
    if spec["trade_calc_mode"] in _TICK_VALUE_MODES:
        return float(spec["trade_tick_value"])
    amount = spec["trade_tick_size"] * spec["trade_contract_size"]
    try:
        return rates.convert(amount, spec["currency_profit"] or currency, currency)
    except ConversionError:
        return float(spec["trade_tick_value"])
