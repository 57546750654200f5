"""The closed sets of values some config keys take, as string enums spelled as in the file."""

from __future__ import annotations

from enum import Enum

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


class SourceFill(_TextEnum):
    """What happens to a copy still pending when its source order fills ([targets.positions] on_source_fill)."""

    REMOVE = "remove"  # the copy is removed (it would open a position the source no longer waits for)
    KEEP = "keep"  # the copy stays pending and triggers on its own market
    # The copy is opened at market if the target's entry price is within max_entry_slippage_points of the
    # source's fill price; else it is removed.
    MARKET = "market"


class SourceClose(_TextEnum):
    """What happens to a copy's position when its source position closes ([targets.positions] on_source_close)."""

    CLOSE = "close"  # closed at market
    KEEP = "keep"  # left open, reported


class Timeframe(_TextEnum):
    """The timeframes a scheduled copier acts on ([coordinator] schedule): it syncs at each boundary of one."""

    M1 = "M1"
    M5 = "M5"
    M15 = "M15"
    M30 = "M30"
    H1 = "H1"
    H4 = "H4"
    D1 = "D1"

    @property
    def seconds(self) -> int:
        return _TIMEFRAME_SECONDS[self.value]


_TIMEFRAME_SECONDS = {"M1": 60, "M5": 300, "M15": 900, "M30": 1800, "H1": 3600, "H4": 14_400, "D1": 86_400}


class ScheduleClock(_TextEnum):
    """Which clock a schedule's boundaries are on ([coordinator] schedule_clock)."""

    SERVER = "server"  # the source broker's server clock (its D1 boundary is the broker's midnight)
    UTC = "utc"
