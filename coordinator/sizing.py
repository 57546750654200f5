"""Volumes and prices as a target broker will accept them: rounded to its steps, within its bounds.

MT5 rounds nothing for you (shared/mt5-api.md §7): a volume off the step is 10014, a price off the tick
size risks 10015/10016. Floats are snapped through ``round`` with the step's own number of decimals so
that 0.1 * 3 comes out as 0.3, not 0.30000000000000004.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from config import CopySettings
from protocol import SymbolSpec

_EPSILON = 1e-9


def step_decimals(step: float) -> int:
    """How many decimals a multiple of ``step`` needs (0.01 -> 2, 0.5 -> 1, 1.0 -> 0)."""
    if step <= 0:
        return 8
    decimals = 0
    while decimals < 10 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return decimals


def snap(value: float, step: float) -> float:
    """``value`` rounded to the nearest multiple of ``step``."""
    if step <= 0:
        return value
    return round(round(value / step + _EPSILON) * step, step_decimals(step))


@dataclass(frozen=True, slots=True)
class SizedVolume:
    volume: float
    note: str = ""  # what was adjusted, for the log (clamped to a bound)


def size_volume(source_volume: float, settings: CopySettings, spec: SymbolSpec) -> SizedVolume:
    """Source lots -> target lots: multiplier, the target's configured bounds, the broker's step and bounds."""
    notes: list[str] = []
    volume = source_volume * settings.lot_multiplier
    if settings.min_lot is not None and volume < settings.min_lot:
        notes.append(f"raised to min_lot {settings.min_lot}")
        volume = settings.min_lot
    if settings.max_lot is not None and volume > settings.max_lot:
        notes.append(f"lowered to max_lot {settings.max_lot}")
        volume = settings.max_lot
    step = spec.volume_step if spec.volume_step > 0 else spec.volume_min or 0.01
    volume = snap(volume, step)
    if settings.max_lot is not None and volume > settings.max_lot + _EPSILON:
        # Rounding must not break the user's cap: step down instead.
        volume = snap(math.floor(settings.max_lot / step + _EPSILON) * step, step)
    if spec.volume_min > 0 and volume < spec.volume_min - _EPSILON:
        notes.append(f"raised to the broker minimum {spec.volume_min}")
        volume = spec.volume_min
    if spec.volume_max > 0 and volume > spec.volume_max + _EPSILON:
        notes.append(f"lowered to the broker maximum {spec.volume_max}")
        volume = spec.volume_max
    return SizedVolume(volume=volume, note="; ".join(notes))


def round_price(price: float, spec: SymbolSpec) -> float:
    """A price on the target symbol's tick grid, with its number of digits. 0 stays 0 (no SL/TP)."""
    if price == 0:
        return 0.0
    tick = spec.tick_size if spec.tick_size > 0 else spec.point
    if tick > 0:
        price = round(price / tick + _EPSILON) * tick
    return round(price, spec.digits)
