"""Argument handling of the MetaTrader5 functions: call forms, type checks and trade-request validation.

The real package validates locally before anything reaches the terminal: a bad call returns the function's
failure value with last_error() = (-2, <text>) (mt5-api.md §2, §3). Every check here raises ApiError.
"""

from __future__ import annotations

import calendar
import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from . import constants as c
from .errors import (
    ApiError,
    invalid_argument,
    invalid_arguments,
    invalid_number_of_arguments,
    invalid_unnamed,
    unnamed_not_allowed,
)
from .types import TRADE_REQUEST_FIELDS, TradeRequest

ULONG_MAX = 2**64 - 1
COMMENT_MAX_LENGTH = 31
TRADE_ACTIONS = frozenset(
    {
        c.TRADE_ACTION_DEAL,
        c.TRADE_ACTION_PENDING,
        c.TRADE_ACTION_SLTP,
        c.TRADE_ACTION_MODIFY,
        c.TRADE_ACTION_REMOVE,
        c.TRADE_ACTION_CLOSE_BY,
    }
)

_MISSING: Any = object()


class Bound:
    """Arguments bound to parameter names, remembering whether they came positionally (for error texts)."""

    def __init__(self, values: dict[str, Any], positions: dict[str, int]) -> None:
        self.values = values
        self.positions = positions

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name, _MISSING)
        return default if value is _MISSING else value

    def given(self, name: str) -> bool:
        return name in self.values

    def error(self, name: str) -> ApiError:
        """'Invalid 2nd unnamed argument' for a positional value, 'Invalid "x" argument' for a named one."""
        if name in self.positions:
            return invalid_unnamed(self.positions[name])
        return invalid_argument(name)


def bind_either(args: Sequence[Any], kwargs: Mapping[str, Any], names: Sequence[str], required: int) -> Bound:
    """Bind a function that takes its arguments all positionally or all by name, never both.

    Mixing the forms answers (-2, 'Unnamed arguments not allowed') like the real package. (The real one also
    rejects an empty `**{}` splat, which Python cannot detect.)
    """
    if args and kwargs:
        raise unnamed_not_allowed()
    if kwargs:
        if any(name not in names for name in kwargs):
            raise invalid_arguments()
        values = {name: kwargs[name] for name in names if name in kwargs}
        positions: dict[str, int] = {}
    else:
        if len(args) > len(names):
            raise invalid_number_of_arguments()
        values = dict(zip(names, args, strict=False))
        positions = {name: index + 1 for index, name in enumerate(names[: len(args)])}
    if any(name not in values for name in names[:required]):
        raise invalid_number_of_arguments()
    return Bound(values, positions)


def bind_mixed(
    args: Sequence[Any], kwargs: Mapping[str, Any], positional: Sequence[str], keywords: Sequence[str]
) -> Bound:
    """Bind a function whose leading parameters may be positional or named and the rest keyword-only."""
    if len(args) > len(positional):
        raise invalid_number_of_arguments()
    allowed = set(positional) | set(keywords)
    if any(name not in allowed for name in kwargs):
        raise invalid_arguments()
    values = dict(zip(positional, args, strict=False))
    for name, value in kwargs.items():
        if name in values:
            raise invalid_arguments()
        values[name] = value
    positions = {name: index + 1 for index, name in enumerate(positional[: len(args)])}
    return Bound(values, positions)


def bind_keywords(args: Sequence[Any], kwargs: Mapping[str, Any], names: Sequence[str]) -> Bound:
    """Bind a function that takes keyword filters only (orders_get, positions_get).

    `positions_get("EURUSD")` returns None on the real package, and `positions_get(None, ticket=1)` too.
    """
    if args:
        raise unnamed_not_allowed() if kwargs else invalid_arguments()
    if any(name not in names for name in kwargs):
        raise invalid_arguments()
    return Bound(dict(kwargs), {})


def as_str(value: Any, error: ApiError) -> str:
    if not isinstance(value, str):
        raise error
    return value


def as_int(value: Any, error: ApiError, low: int | None = None, high: int | None = None) -> int:
    """An integer (bool and numpy integers included, as PyLong conversion accepts them) within bounds."""
    if not isinstance(value, numbers.Integral):
        raise error
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise error
    return number


def as_float(value: Any, error: ApiError) -> float:
    """A finite float; ints are accepted (PyFloat_AsDouble converts them), None and NaN are not."""
    if not isinstance(value, numbers.Real):
        raise error
    number = float(value)
    if not math.isfinite(number):
        raise error
    return number


def as_time(value: Any, error: ApiError) -> int:
    """Epoch seconds from an int, a float or a datetime.

    A naive datetime is read field by field as a server-clock time (calendar.timegm), which is how the
    terminal's epoch-encoded server times round-trip; an aware one converts through its offset.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return calendar.timegm(value.timetuple())
        return int(value.timestamp())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise error
    return int(number)


def parse_request(args: Sequence[Any], kwargs: Mapping[str, Any]) -> TradeRequest:
    """Validate an order_send/order_check call into a TradeRequest with every field typed and defaulted.

    Accepts `fn(request_dict)` or `fn(**request_fields)`. Unknown keys are ignored (as the real core reads
    only the keys it knows); omitted ones default to 0, 0.0 or '' as the result's echo shows.
    """
    if args and kwargs:
        raise unnamed_not_allowed()
    if kwargs:
        source: Mapping[str, Any] = kwargs
    elif len(args) == 1:
        if not isinstance(args[0], Mapping):
            raise invalid_unnamed(1)
        source = args[0]
    else:
        raise invalid_number_of_arguments()

    def field(name: str, default: Any) -> Any:
        return source.get(name, default)

    action = as_int(field("action", 0), invalid_argument("action"))
    if action not in TRADE_ACTIONS:
        raise invalid_argument("action")
    values: dict[str, Any] = {"action": action}
    for name in TRADE_REQUEST_FIELDS[1:]:
        error = invalid_argument(name)
        if name in ("magic", "order", "deviation", "position", "position_by"):
            values[name] = as_int(field(name, 0), error, 0, ULONG_MAX)
        elif name in ("volume", "price", "stoplimit", "sl", "tp"):
            values[name] = as_float(field(name, 0.0), error)
        elif name in ("type", "type_filling", "type_time"):
            values[name] = as_int(field(name, 0), error, -(2**31), 2**31 - 1)
        elif name == "expiration":
            values[name] = as_time(field(name, 0), error)
        elif name == "symbol":
            values[name] = as_str(field(name, ""), error)
        elif name == "comment":
            comment = as_str(field(name, ""), error)
            if len(comment) > COMMENT_MAX_LENGTH:
                raise error
            values[name] = comment
    return TradeRequest(**values)
