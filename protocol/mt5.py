"""The MetaTrader 5 values the copier uses, as typed enums, in one place.

They live beside the wire because both ends share them (order types, states and retcodes travel in the
messages as plain ints) and because this package imports nothing from the coordinator or the worker.

Each value is the real ``MetaTrader5`` package's (``tests/test_mt5_enums.py`` checks every member against
``tests/data/mt5-constants.json``, the package's own table). The copier never reads them from the module it
drives: the coordinator has no such module, and code that leaned on ``mt5sim`` would hide a difference
from the real package. ``mt5sim`` keeps its own full table, as the package it simulates does.

Values from a terminal or the wire arrive as plain ints and may be ones this module does not know (a newer
terminal); the ``*_of``/``describe_*`` helpers take any int. The wire and the MT5 package get plain ints.
IntEnums compare as ints, across enums too (``LastError.FAIL == OrderState.NOT_IN_HISTORY_YET == -1``): test
a value only against the enum of the field it came from.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class OrderType(IntEnum):
    """ORDER_TYPE_*."""

    BUY = 0
    SELL = 1
    BUY_LIMIT = 2
    SELL_LIMIT = 3
    BUY_STOP = 4
    SELL_STOP = 5
    BUY_STOP_LIMIT = 6
    SELL_STOP_LIMIT = 7
    CLOSE_BY = 8

    @property
    def label(self) -> str:
        """In a trader's words: "buy stop limit"."""
        return self.name.lower().replace("_", " ")

    @property
    def is_pending(self) -> bool:
        """A pending order (limit, stop, stop limit); ``orders_get`` also lists market orders not yet executed."""
        return self in PENDING_ORDER_TYPES

    @property
    def is_stop_limit(self) -> bool:
        return self in (OrderType.BUY_STOP_LIMIT, OrderType.SELL_STOP_LIMIT)

    @property
    def is_buy(self) -> bool:
        return self in BUY_ORDER_TYPES

    @property
    def triggered_type(self) -> OrderType | None:
        """The limit order a stop limit becomes once its stop price is reached; None for other types."""
        return {OrderType.BUY_STOP_LIMIT: OrderType.BUY_LIMIT,
                OrderType.SELL_STOP_LIMIT: OrderType.SELL_LIMIT}.get(self)

    @property
    def order_mode_flag(self) -> SymbolOrderFlag:
        """The bit of a symbol's ``order_mode`` that allows this type (shared/mt5-api.md §5)."""
        if self is OrderType.CLOSE_BY:
            return SymbolOrderFlag.CLOSEBY
        return SymbolOrderFlag(1 << (self // 2))  # market, limit, stop, stop limit: one bit per buy/sell pair


PENDING_ORDER_TYPES = frozenset({OrderType.BUY_LIMIT, OrderType.SELL_LIMIT, OrderType.BUY_STOP,
                                 OrderType.SELL_STOP, OrderType.BUY_STOP_LIMIT, OrderType.SELL_STOP_LIMIT})
BUY_ORDER_TYPES = frozenset({OrderType.BUY, OrderType.BUY_LIMIT, OrderType.BUY_STOP, OrderType.BUY_STOP_LIMIT})


def order_type_of(value: int) -> OrderType | None:
    """The type of an order as a terminal reported it; None for a value this copier does not know."""
    try:
        return OrderType(value)
    except ValueError:
        return None


def describe_order_type(value: int) -> str:
    """The type in a trader's words ("buy stop limit"); "type 12" for a value this copier does not know."""
    order_type = order_type_of(value)
    return order_type.label if order_type is not None else f"type {value}"


class OrderState(IntEnum):
    """ORDER_STATE_*, and the copier's two answers for an order that left the pending list with no history
    record to read. Those two are negative, so no real state can ever be taken for one; the wire carries
    them as these same ints (a ``ClosedOrder.state`` is an int)."""

    # The copier's own. Not yet: the order has just left the pending list and the terminal's history has no
    # record of it *yet* (history can lag); a worker reports it so, and it is asked again.
    NOT_IN_HISTORY_YET = -1
    # The coordinator asked the terminal's history and it answered it has no record of this ticket. One such
    # answer is one look, not a verdict: who reads it decides after how many looks it is final.
    NO_RECORD = -2

    STARTED = 0
    PLACED = 1
    CANCELED = 2
    PARTIAL = 3
    FILLED = 4
    REJECTED = 5
    EXPIRED = 6
    REQUEST_ADD = 7
    REQUEST_MODIFY = 8
    REQUEST_CANCEL = 9

    @property
    def in_history(self) -> bool:
        """A real state read from the terminal's history, not one of the copier's two answers for "none"."""
        return self >= 0

    @property
    def fate(self) -> str | None:
        """What became of a pending order in this final state ("cancelled", "filled", "expired", "rejected"),
        in the words history, logs and the summary use; None for any other state."""
        return _FATES.get(self)


COPIER_ORDER_STATES = frozenset({OrderState.NOT_IN_HISTORY_YET, OrderState.NO_RECORD})  # not MT5 values
_FATES = {OrderState.CANCELED: "cancelled", OrderState.FILLED: "filled", OrderState.EXPIRED: "expired",
          OrderState.REJECTED: "rejected"}
FINAL_FATES = frozenset(_FATES.values())


def order_state_of(value: int) -> OrderState | None:
    """The state of a history record as reported; None for a value this copier does not know."""
    try:
        return OrderState(value)
    except ValueError:
        return None


def describe_fate(value: int) -> str:
    """The fate of a closed order's state for a person: "cancelled", ..., or "state 3" for the others."""
    state = order_state_of(value)
    fate = state.fate if state is not None else None
    return fate or f"state {value}"


class OrderTime(IntEnum):
    """ORDER_TIME_*: how long a pending order lives."""

    GTC = 0
    DAY = 1
    SPECIFIED = 2
    SPECIFIED_DAY = 3


class OrderFilling(IntEnum):
    """ORDER_FILLING_*. Pending orders always use RETURN (shared/mt5-api.md §7)."""

    FOK = 0
    IOC = 1
    RETURN = 2
    BOC = 3


class TradeAction(IntEnum):
    """TRADE_ACTION_*: the ``action`` of an ``order_send`` request."""

    DEAL = 1
    PENDING = 5
    SLTP = 6
    MODIFY = 7
    REMOVE = 8
    CLOSE_BY = 10


class PositionType(IntEnum):
    """POSITION_TYPE_*."""

    BUY = 0
    SELL = 1


class AccountMarginMode(IntEnum):
    """ACCOUNT_MARGIN_MODE_*: how an account books positions."""

    RETAIL_NETTING = 0  # one position per symbol: fills merge, an opposite fill reduces or reverses it
    EXCHANGE = 1  # netting too, on an exchange
    RETAIL_HEDGING = 2  # one position per fill: each copy's position is its own


class DealEntry(IntEnum):
    """DEAL_ENTRY_*: what a deal did to its position."""

    IN = 0
    OUT = 1
    INOUT = 2  # a netting reversal: closed the position and opened the opposite one
    OUT_BY = 3


class DealReason(IntEnum):
    """DEAL_REASON_*: who or what made a deal."""

    CLIENT = 0
    MOBILE = 1
    WEB = 2
    EXPERT = 3
    SL = 4
    TP = 5
    SO = 6  # stop out
    ROLLOVER = 7
    VMARGIN = 8
    SPLIT = 9

    @property
    def label(self) -> str:
        """In a trader's words: "its stop loss"."""
        return _DEAL_REASON_LABELS[self]


_DEAL_REASON_LABELS = {
    DealReason.CLIENT: "by hand (desktop terminal)", DealReason.MOBILE: "by hand (mobile)",
    DealReason.WEB: "by hand (web terminal)",
    DealReason.EXPERT: "by an expert advisor or a script (such as the copier)",
    DealReason.SL: "by its stop loss", DealReason.TP: "by its take profit", DealReason.SO: "by a stop out",
    DealReason.ROLLOVER: "by a rollover", DealReason.VMARGIN: "by variation margin", DealReason.SPLIT: "by a split",
}


def describe_deal_reason(reason: int) -> str:
    """How a position was closed, from its last deal's DEAL_REASON_* (any int)."""
    try:
        return DealReason(reason).label
    except ValueError:
        return f"(deal reason {reason})"


class SymbolTradeMode(IntEnum):
    """SYMBOL_TRADE_MODE_*: which sides of a symbol may be opened."""

    DISABLED = 0
    LONGONLY = 1
    SHORTONLY = 2
    CLOSEONLY = 3
    FULL = 4


class SymbolOrderFlag(IntFlag):
    """The bits of ``SymbolInfo.order_mode`` (MQL5's SYMBOL_ORDER_*). The Python package does not export these
    names (shared/mt5-api.md §1): only the values exist there, inside ``order_mode``."""

    MARKET = 1
    LIMIT = 2
    STOP = 4
    STOP_LIMIT = 8
    SL = 16
    TP = 32
    CLOSEBY = 64


class Retcode(IntEnum):
    """TRADE_RETCODE_*: the trade server's answer to a request (shared/mt5-api.md §6.4)."""

    REQUOTE = 10004
    REJECT = 10006
    CANCEL = 10007
    PLACED = 10008
    DONE = 10009
    DONE_PARTIAL = 10010
    ERROR = 10011
    TIMEOUT = 10012
    INVALID = 10013
    INVALID_VOLUME = 10014
    INVALID_PRICE = 10015
    INVALID_STOPS = 10016
    TRADE_DISABLED = 10017
    MARKET_CLOSED = 10018
    NO_MONEY = 10019
    PRICE_CHANGED = 10020
    PRICE_OFF = 10021
    INVALID_EXPIRATION = 10022
    ORDER_CHANGED = 10023
    TOO_MANY_REQUESTS = 10024
    NO_CHANGES = 10025
    SERVER_DISABLES_AT = 10026
    CLIENT_DISABLES_AT = 10027
    LOCKED = 10028
    FROZEN = 10029
    INVALID_FILL = 10030
    CONNECTION = 10031
    ONLY_REAL = 10032
    LIMIT_ORDERS = 10033
    LIMIT_VOLUME = 10034
    INVALID_ORDER = 10035
    POSITION_CLOSED = 10036
    INVALID_CLOSE_VOLUME = 10038
    CLOSE_ORDER_EXIST = 10039
    LIMIT_POSITIONS = 10040
    REJECT_CANCEL = 10041
    LONG_ONLY = 10042
    SHORT_ONLY = 10043
    CLOSE_ONLY = 10044
    FIFO_CLOSE = 10045

    @property
    def description(self) -> str:
        return _RETCODE_DESCRIPTIONS[self]

    @property
    def is_success(self) -> bool:
        return self in SUCCESS_RETCODES

    @property
    def is_retryable(self) -> bool:
        return self in RETRYABLE_RETCODES

    @property
    def is_ambiguous(self) -> bool:
        return self in AMBIGUOUS_RETCODES


_RETCODE_DESCRIPTIONS = {
    Retcode.REQUOTE: "requote", Retcode.REJECT: "request rejected", Retcode.CANCEL: "request canceled by trader",
    Retcode.PLACED: "order placed", Retcode.DONE: "request executed",
    Retcode.DONE_PARTIAL: "only part of the request was completed", Retcode.ERROR: "request processing error",
    Retcode.TIMEOUT: "request canceled by timeout", Retcode.INVALID: "invalid request",
    Retcode.INVALID_VOLUME: "invalid volume", Retcode.INVALID_PRICE: "invalid price",
    Retcode.INVALID_STOPS: "invalid stops", Retcode.TRADE_DISABLED: "trade disabled",
    Retcode.MARKET_CLOSED: "market closed", Retcode.NO_MONEY: "not enough money",
    Retcode.PRICE_CHANGED: "prices changed", Retcode.PRICE_OFF: "no quotes",
    Retcode.INVALID_EXPIRATION: "invalid expiration", Retcode.ORDER_CHANGED: "order state changed",
    Retcode.TOO_MANY_REQUESTS: "too frequent requests", Retcode.NO_CHANGES: "no changes in request",
    Retcode.SERVER_DISABLES_AT: "autotrading disabled by server",
    Retcode.CLIENT_DISABLES_AT: "autotrading disabled by client", Retcode.LOCKED: "request locked for processing",
    Retcode.FROZEN: "order or position frozen", Retcode.INVALID_FILL: "unsupported filling mode",
    Retcode.CONNECTION: "no connection with the trade server", Retcode.ONLY_REAL: "allowed for live accounts only",
    Retcode.LIMIT_ORDERS: "pending-order limit reached", Retcode.LIMIT_VOLUME: "volume limit reached",
    Retcode.INVALID_ORDER: "invalid or prohibited order type", Retcode.POSITION_CLOSED: "position already closed",
    Retcode.INVALID_CLOSE_VOLUME: "close volume exceeds position",
    Retcode.CLOSE_ORDER_EXIST: "close order already exists", Retcode.LIMIT_POSITIONS: "position limit reached",
    Retcode.REJECT_CANCEL: "pending activation rejected", Retcode.LONG_ONLY: "only long positions allowed",
    Retcode.SHORT_ONLY: "only short positions allowed", Retcode.CLOSE_ONLY: "only position closing allowed",
    Retcode.FIFO_CLOSE: "FIFO rule",
}

# The request was carried out (shared/mt5-api.md §6.3).
SUCCESS_RETCODES = frozenset({Retcode.PLACED, Retcode.DONE, Retcode.DONE_PARTIAL})
# Answers that can pass by themselves: the market, the connection or the server's load changes.
RETRYABLE_RETCODES = frozenset({
    Retcode.REQUOTE, Retcode.REJECT, Retcode.ERROR, Retcode.TIMEOUT, Retcode.MARKET_CLOSED, Retcode.PRICE_CHANGED,
    Retcode.PRICE_OFF, Retcode.ORDER_CHANGED, Retcode.TOO_MANY_REQUESTS, Retcode.LOCKED, Retcode.FROZEN,
    Retcode.CONNECTION,
})
# The server may still have executed the request: only a fresh look at the terminal can tell. Every other
# answer is definite.
AMBIGUOUS_RETCODES = frozenset({Retcode.TIMEOUT})


# order_check's retcode when every check passed: not a TRADE_RETCODE_* (the request was not sent).
ORDER_CHECK_PASSED = 0


def describe_retcode(value: int) -> str:
    """The retcode in words ("market closed"); "retcode 10099" for a value this copier does not know."""
    try:
        return Retcode(value).description
    except ValueError:
        return f"retcode {value}"


def is_retryable(value: int) -> bool:
    """Whether a request rejected with this retcode may pass later by itself (unknown retcodes: no)."""
    return value in RETRYABLE_RETCODES


class LastError(IntEnum):
    """RES_S_OK and RES_E_*: the codes of ``last_error()`` (shared/mt5-api.md §2)."""

    OK = 1
    FAIL = -1
    INVALID_PARAMS = -2  # refused by the package itself: the request never reached the terminal
    NO_MEMORY = -3
    NOT_FOUND = -4
    INVALID_VERSION = -5
    AUTH_FAILED = -6
    UNSUPPORTED = -7
    AUTO_TRADING_DISABLED = -8
    INTERNAL_FAIL = -10000
    INTERNAL_FAIL_SEND = -10001
    INTERNAL_FAIL_RECEIVE = -10002
    INTERNAL_FAIL_INIT = -10003
    INTERNAL_FAIL_CONNECT = -10004
    INTERNAL_FAIL_TIMEOUT = -10005

    @property
    def constant_name(self) -> str:
        """The package's name for it: RES_S_OK, RES_E_AUTH_FAILED, ..."""
        return "RES_S_OK" if self is LastError.OK else f"RES_E_{self.name}"
