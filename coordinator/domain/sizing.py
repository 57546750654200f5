"""Volumes and prices as a target broker will accept them: rounded to its steps, within its bounds.

MT5 rounds nothing for you (shared/mt5-api.md §7): a volume off the step is 10014, a price off the tick
size risks 10015/10016. Floats are snapped through ``round`` with the step's own number of decimals so
that 0.1 * 3 comes out as 0.3, not 0.30000000000000004.
"""

from __future__ import annotations

import math
from functools import cache

import msgspec

from config import CopySettings, OutOfBounds, VolumeMode, VolumeRounding
from protocol import SymbolSpec

_EPSILON = 1e-9


@cache
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


class SizedVolume(msgspec.Struct, frozen=True):
    volume: float
    note: str = ""  # what changed the size, for the log and the history (contract sizes, a bound)
    problem: str = ""  # set when the order must be skipped (out of bounds with volume_out_of_bounds = skip)
    waiting: bool = False  # the problem resolves by itself (balances not reported yet)


class Accounts(msgspec.Struct, frozen=True):
    """Balances and equities of the source and the target account, for the ratio sizing modes."""

    source_balance: float = 0.0
    source_equity: float = 0.0
    target_balance: float = 0.0
    target_equity: float = 0.0


def raw_volume(source_volume: float, settings: CopySettings, accounts: Accounts) -> tuple[float, str]:
    """The target volume the sizing mode asks for, before any bound or step; a problem text if none."""
    mode = settings.volume_mode
    if mode is VolumeMode.FIXED:
        return float(settings.fixed_lot or 0.0), ""
    ratio = 1.0
    if mode is VolumeMode.BALANCE_RATIO:
        if accounts.source_balance <= 0 or accounts.target_balance <= 0:
            return 0.0, "balances of the source and the target are not known yet"
        ratio = accounts.target_balance / accounts.source_balance
    elif mode is VolumeMode.EQUITY_RATIO:
        if accounts.source_equity <= 0 or accounts.target_equity <= 0:
            return 0.0, "equities of the source and the target are not known yet"
        ratio = accounts.target_equity / accounts.source_equity
    return source_volume * ratio * settings.lot_multiplier, ""


def size_volume(source_volume: float, settings: CopySettings, spec: SymbolSpec,
                accounts: Accounts | None = None, source_contract_size: float | None = None) -> SizedVolume:
    """Source lots -> target lots: the sizing mode, the contract sizes, the target's configured bounds, the
    broker's step and bounds.

    The money guarantee lives here: the result never exceeds what the configured sizing gives, unless the user
    asked for more (``volume_rounding = "nearest"``: up to half a step; ``volume_out_of_bounds = "clamp"``: a
    volume below the minimum raised to it, said in ``note`` every time). ``source_contract_size`` is the source
    symbol's contract size, required when ``scale_by_contract_size`` applies (None: not known yet).
    """
    volume, problem = raw_volume(source_volume, settings, accounts or Accounts())
    if problem:
        return SizedVolume(volume=0.0, problem=problem, waiting=True)
    notes: list[str] = []
    if settings.scale_by_contract_size and settings.volume_mode is not VolumeMode.FIXED:
        if source_contract_size is None:
            return SizedVolume(volume=0.0, problem="waiting for the source symbol's contract size", waiting=True)
        factor = contract_factor(source_contract_size, spec.contract_size)
        if factor != 1.0:
            scaled = volume * factor
            notes.append(f"{volume:g} lots scaled to {scaled:g} for the contract sizes "
                         f"(source {source_contract_size:g}, target {spec.contract_size:g})")
            volume = scaled
    step = spec.volume_step if spec.volume_step > 0 else spec.volume_min or 0.01
    lowest = max(settings.min_lot or 0.0, spec.volume_min)
    highest = min(settings.max_lot or math.inf, spec.volume_max if spec.volume_max > 0 else math.inf)
    skip = settings.volume_out_of_bounds is OutOfBounds.SKIP
    # Down by default: rounding up could place up to twice the intended size on a coarse step.
    rounded = snap(volume, step) if settings.volume_rounding is VolumeRounding.NEAREST else snap_down(volume, step)
    if rounded < lowest - _EPSILON:
        below = f"volume {volume:g}" + (f" (rounded to {rounded:g})" if abs(rounded - volume) > _EPSILON else "")
        if skip:
            return SizedVolume(volume=0.0, problem=f"{below} is below the minimum {lowest:g} "
                                                   "(volume_out_of_bounds = skip)")
        notes.append(f"{volume:g} raised to the minimum {lowest:g}")
        return SizedVolume(volume=snap_up(lowest, step), note="; ".join(notes))
    if rounded > highest + _EPSILON:
        if skip:
            return SizedVolume(volume=0.0, problem=f"volume {volume:g} is above the maximum {highest:g} "
                                                   "(volume_out_of_bounds = skip)")
        notes.append(f"{volume:g} lowered to the maximum {highest:g}")
        return SizedVolume(volume=snap_down(highest, step), note="; ".join(notes))
    return SizedVolume(volume=rounded, note="; ".join(notes))


def contract_factor(source_contract_size: float, target_contract_size: float) -> float:
    """Lots on the target per lot on the source for the same notional; 1 when either size is unknown (0)."""
    if source_contract_size <= 0 or target_contract_size <= 0:
        return 1.0
    return source_contract_size / target_contract_size


def snap_down(value: float, step: float) -> float:
    return round(math.floor(value / step + _EPSILON) * step, step_decimals(step))


def snap_up(value: float, step: float) -> float:
    return round(math.ceil(value / step - _EPSILON) * step, step_decimals(step))


def round_price(price: float, spec: SymbolSpec) -> float:
    """A price on the target symbol's tick grid, with its number of digits. 0 stays 0 (no SL/TP)."""
    if price == 0:
        return 0.0
    tick = spec.tick_size if spec.tick_size > 0 else spec.point
    if tick > 0:
        price = round(price / tick + _EPSILON) * tick
    return round(price, spec.digits)
