"""The typed, frozen configuration objects the rest of the copier reads.

They are plain values: built and validated by ``config.loader``, never mutated afterwards, hashable,
and safe to log (no secret lives in them, only the names of environment variables holding secrets).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from protocol.mt5 import OrderType


class _TextEnum(str, Enum):
    # str() and f-strings give the config spelling ("buy_limit"), the same on Python 3.10 to 3.13.
    def __str__(self) -> str:
        return str.__str__(self)


class Backend(_TextEnum):
    """Which MetaTrader 5 module a worker drives."""

    MT5 = "mt5"  # the real MetaTrader5 package and terminal (Windows)
    SIM = "sim"  # mt5sim, the simulated terminal used by tests and the demo


class Role(_TextEnum):
    """What a terminal is for: the one source that is copied, or a target that copies it."""

    SOURCE = "source"
    TARGET = "target"


class OrderKind(_TextEnum):
    """The six pending order types the copier can mirror; each member is named as its ``OrderType``."""

    BUY_LIMIT = "buy_limit"
    SELL_LIMIT = "sell_limit"
    BUY_STOP = "buy_stop"
    SELL_STOP = "sell_stop"
    BUY_STOP_LIMIT = "buy_stop_limit"
    SELL_STOP_LIMIT = "sell_stop_limit"

    @property
    def mt5_type(self) -> OrderType:
        """The MetaTrader5 ``ORDER_TYPE_*`` value of this kind."""
        return OrderType[self.name]

    @classmethod
    def from_mt5_type(cls, order_type: int) -> OrderKind | None:
        """The kind for a MetaTrader5 ``ORDER_TYPE_*`` value, or None for market and close-by types."""
        # A table, not a scan: the planner asks for every order on every plan.
        return _KIND_BY_MT5_TYPE.get(order_type)


_KIND_BY_MT5_TYPE: dict[int, OrderKind] = {kind.mt5_type: kind for kind in OrderKind}


class VolumeMode(_TextEnum):
    """How a copy's volume is worked out from the source order's volume."""

    MULTIPLIER = "multiplier"  # source lots x lot_multiplier
    FIXED = "fixed"  # always fixed_lot
    BALANCE_RATIO = "balance_ratio"  # source lots x (target balance / source balance) x lot_multiplier
    EQUITY_RATIO = "equity_ratio"  # the same with equity


class OutOfBounds(_TextEnum):
    """What happens to a volume outside min_lot/max_lot or the broker's volume_min/volume_max."""

    CLAMP = "clamp"  # placed at the nearest bound
    SKIP = "skip"  # not placed; reported as skipped


class VolumeRounding(_TextEnum):
    """How a sized volume is brought onto the broker's volume_step."""

    DOWN = "down"  # never more than the sizing gives (the default)
    NEAREST = "nearest"  # the nearest step, which may be up to half a step more


class PriceMode(_TextEnum):
    """Where a copy's prices come from."""

    ABSOLUTE = "absolute"  # the source's prices as they are
    # The source order's distance from the source's market, measured from the target's market at placement;
    # later source edits move the copy by the same amount.
    MARKET_DISTANCE = "market_distance"


class ExpirationFallback(_TextEnum):
    """What to do when the target symbol does not allow the source order's expiration mode."""

    GTC = "gtc"  # place the copy good-till-cancelled
    SKIP = "skip"  # do not place it


class OrphanPolicy(_TextEnum):
    """What happens to a copy whose source order no longer exists."""

    KILL = "kill"  # removed, once confirmed by OrphanSettings.max_checks consecutive checks
    PRESERVE = "preserve"  # left on the target and reported


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorConfig:
    """Settings of the coordinator process ([coordinator])."""

    bind: str  # ZeroMQ endpoint the workers connect to
    interval: float  # seconds between full reconciliations
    state_dir: Path  # absolute
    hello_timeout: float
    heartbeat_interval: float
    worker_timeout: float
    command_timeout: float
    log_level: str  # upper case, e.g. "INFO"


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminalConfig:
    """One MT5 terminal and the account logged into it ([source] or one [[targets]])."""

    name: str  # routing id and file-name stem; unique across the config
    role: Role
    backend: Backend
    path: Path  # absolute: terminal64.exe for mt5, the terminal directory for sim
    login: int
    server: str
    # Only the NAME of the environment variable: the password itself is never stored, so the
    # object can be logged, printed and sent to a worker as it is.
    password_env: str | None
    remote: bool  # True: the coordinator waits for this worker to connect instead of spawning it
    poll_interval: float
    portable: bool
    connect_timeout: float
    # Hours the broker's server clock runs ahead of UTC; None: worked out from the terminal's tick times.
    # Defaulted so that code building a TerminalConfig by hand need not know about it.
    server_utc_offset: float | None = None

    def password(self) -> str | None:
        """The password from the environment variable named by ``password_env``.

        None when no variable is configured, or when it is unset or empty.
        """
        if self.password_env is None:
            return None
        return os.environ.get(self.password_env) or None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrphanSettings:
    """What happens to copies whose source order is gone ([targets.orphans])."""

    policy: OrphanPolicy = OrphanPolicy.KILL
    check_interval: float = 5.0  # seconds between orphan checks
    # Consecutive checks that must find the same orphan before it is killed: a source terminal that blinks
    # (or whose snapshot briefly lacks an order) must not wipe the targets.
    max_checks: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class CopySettings:
    """How orders are copied onto one target."""

    lot_multiplier: float
    min_lot: float | None
    max_lot: float | None
    order_types: frozenset[OrderKind]
    symbol_suffix: str
    symbol_prefix: str
    symbol_map: tuple[tuple[str, str], ...]  # sorted pairs: keeps the dataclass hashable and frozen
    max_pending_orders: int | None  # cap on the copier's own pending orders on the target
    enabled: bool
    # The keys below have defaults (the same as config/keys.py) so that code and tests building settings by
    # hand need not spell out every one of them.
    volume_mode: VolumeMode = VolumeMode.MULTIPLIER
    fixed_lot: float | None = None  # set exactly when volume_mode is FIXED
    volume_out_of_bounds: OutOfBounds = OutOfBounds.CLAMP
    volume_rounding: VolumeRounding = VolumeRounding.DOWN
    scale_by_contract_size: bool = True  # lots x source contract size / target contract size
    price_mode: PriceMode = PriceMode.ABSOLUTE
    expiration_fallback: ExpirationFallback = ExpirationFallback.GTC
    replace_deleted_copies: bool = False  # False: a copy a person deleted by hand stays deleted
    keep_filled_copies: bool = False  # True: copies of a filled source order stay pending (not orphans)
    orphans: OrphanSettings = OrphanSettings()

    def map_symbol(self, source_symbol: str) -> str:
        """The target's symbol for a source symbol: ``symbol_map`` first, else prefix + symbol + suffix."""
        for source, target in self.symbol_map:
            if source == source_symbol:
                return target
        return f"{self.symbol_prefix}{source_symbol}{self.symbol_suffix}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetConfig:
    """A target terminal and how orders are copied onto it."""

    terminal: TerminalConfig  # role TARGET
    copy: CopySettings

    @property
    def name(self) -> str:
        """The target terminal's name."""
        return self.terminal.name


@dataclass(frozen=True, slots=True, kw_only=True)
class AppConfig:
    """The whole validated configuration."""

    path: Path | None  # the config file; None when parsed from a dict
    coordinator: CoordinatorConfig
    source: TerminalConfig  # role SOURCE
    targets: tuple[TargetConfig, ...]

    def terminals(self) -> tuple[TerminalConfig, ...]:
        """Every terminal: the source first, then the targets in file order."""
        return (self.source, *(target.terminal for target in self.targets))

    def terminal(self, name: str) -> TerminalConfig:
        """The terminal called ``name``; KeyError naming the configured terminals if there is none."""
        for terminal in self.terminals():
            if terminal.name == name:
                return terminal
        known = ", ".join(terminal.name for terminal in self.terminals())
        raise KeyError(f"unknown terminal {name!r}; configured terminals: {known}")

    def target(self, name: str) -> TargetConfig:
        """The target called ``name``; KeyError if there is none (or ``name`` is the source)."""
        for target in self.targets:
            if target.name == name:
                return target
        if name == self.source.name:
            raise KeyError(f"{name!r} is the source terminal, not a target")
        known = ", ".join(target.name for target in self.targets)
        raise KeyError(f"unknown target {name!r}; configured targets: {known}")
