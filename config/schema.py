"""A small declarative schema engine for TOML-shaped data.

A schema is a tree of specs: scalars (``String``, ``Integer``, ``Number``, ``Boolean``, ``Choice``) and
containers (``ListOf``, ``SetOf``, ``Table``, ``ArrayOfTables``, ``MapOf``). Validation walks the whole tree and
appends every problem it finds to a list instead of raising at the first one, so a person can fix a
config file in one pass. Valid values come back normalised (ints widened to float, choices converted,
defaults filled in, containers as tuples, sets as frozensets); invalid ones come back as ``INVALID``. Tables
and arrays of tables come back with their valid parts even when something inside them is invalid (a missing
required key reads as ``INVALID`` too), so the cross-field checks can run in the same round on whatever is
valid; a caller knows the whole is valid only when no problem was recorded.

Config keys are not written here: they are declared on the model (``config/model.py``) and their ``Field``s
derived from those declarations (``config/settings.py``).

Why hand-written rather than a library: its messages are what a person fixing a config file reads, and
none of the libraries that fit gives them. msgspec stops at the first error ("Expected `int`, got `str` -
at `$.source.login`"). pydantic collects the type errors, but words them for programmers ("Input should
be a valid integer"), shows the received value unless told not to (a password typed into the wrong key),
offers no "did you mean", and runs its cross-field validators only once every field is valid, so a file
takes two rounds to fix; rewording its errors would cost about as much as this module, plus a compiled
dependency. Here: every problem in one round, with its key path, in TOML's words ("got string 'abc'"),
close matches for unknown keys, and secret values never echoed.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import Enum
from typing import Any, Final

from .errors import ConfigProblem

Problems = list[ConfigProblem]


class _Invalid:
    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()
"""Stands in for a value that failed validation (its problem is already recorded)."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(parent: str, key: str) -> str:
    """The path of ``key`` inside ``parent``, quoting keys TOML would need to quote (``a."b.c"``)."""
    shown = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
    return f"{parent}.{shown}" if parent else shown


def index_path(parent: str, index: int) -> str:
    """The path of item ``index`` of the array at ``parent``."""
    return f"{parent}[{index}]"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: object, *, secret: bool = False) -> str:
    """Name a received value the way a TOML author thinks of it: ``string 'abc'``, ``boolean true``.

    With ``secret`` only the kind is named: the value may be a password typed into the wrong key.
    """
    if isinstance(value, bool):
        kind, shown = "boolean", "true" if value else "false"
    elif isinstance(value, int):
        kind, shown = "integer", str(value)
    elif isinstance(value, float):
        kind, shown = "float", repr(value)
    elif isinstance(value, str):
        kind, shown = "string", _short(repr(value))
    elif isinstance(value, datetime):  # before date: a datetime is a date
        kind, shown = "date-time", value.isoformat()
    elif isinstance(value, date | time):
        kind, shown = ("date" if isinstance(value, date) else "time"), value.isoformat()
    elif isinstance(value, list):
        kind, shown = "array", _short(repr(value))
    elif isinstance(value, dict):
        return "table"
    else:
        kind, shown = type(value).__name__, _short(repr(value))
    return kind if secret else f"{kind} {shown}"


def _fail(problems: Problems, path: str, message: str) -> _Invalid:
    problems.append(ConfigProblem(path, message))
    return INVALID


def _bounds_message(
    number: float, *, gt: float | None, ge: float | None, lt: float | None, le: float | None
) -> str | None:
    if gt is not None and not number > gt:
        return f"must be greater than {gt!r}"
    if ge is not None and not number >= ge:
        return f"must be at least {ge!r}"
    if lt is not None and not number < lt:
        return f"must be less than {lt!r}"
    if le is not None and not number <= le:
        return f"must be at most {le!r}"
    return None


def _is_multiple(number: float, step: float) -> bool:
    # A tolerance, because 0.1 + 0.2 style binary fractions must not make a correct value fail.
    quotient = number / step
    return abs(quotient - round(quotient)) < 1e-9


class Spec(ABC):
    """What one value must look like."""

    __slots__ = ()

    @abstractmethod
    def validate(self, value: object, path: str, problems: Problems) -> Any:
        """Return the normalised value, or record problems under ``path`` and return ``INVALID``."""

    def missing_message(self, path: str) -> str:
        """The message for a required key of this kind that is absent."""
        return "required key is missing"


@dataclass(frozen=True, slots=True, kw_only=True)
class String(Spec):
    """A string, optionally non-blank, matching a pattern, or passing a custom check."""

    non_empty: bool = False
    pattern: re.Pattern[str] | None = None
    pattern_hint: str = ""  # what the pattern means, in words, for the error message
    check: Callable[[str], str | None] | None = None  # returns a problem message, or None when fine
    secret: bool = False  # never echo the value: it may be a password typed into the wrong key

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, str):
            return _fail(problems, path, f"must be a string, got {describe(value, secret=self.secret)}")
        if self.non_empty and not value.strip():
            return _fail(problems, path, "must not be empty")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            received = "" if self.secret else f", got {describe(value)}"
            return _fail(problems, path, f"must be {self.pattern_hint or self.pattern.pattern}{received}")
        if self.check is not None and (message := self.check(value)) is not None:
            return _fail(problems, path, message)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Integer(Spec):
    """An integer; booleans and floats are refused (``true`` is not 1, ``2.0`` is not a count)."""

    gt: int | None = None
    ge: int | None = None
    lt: int | None = None
    le: int | None = None

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return _fail(problems, path, f"must be an integer, got {describe(value)}")
        message = _bounds_message(value, gt=self.gt, ge=self.ge, lt=self.lt, le=self.le)
        if message is not None:
            return _fail(problems, path, f"{message}, got {value}")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Number(Spec):
    """A float; integers are accepted and widened, booleans, NaN and infinities are refused."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    multiple_of: float | None = None  # e.g. 0.25: the value must be a whole number of quarters

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _fail(problems, path, f"must be a number, got {describe(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = math.inf
        if not math.isfinite(number):
            return _fail(problems, path, f"must be a finite number, got {value!r}")
        message = _bounds_message(number, gt=self.gt, ge=self.ge, lt=self.lt, le=self.le)
        if message is None and self.multiple_of is not None and not _is_multiple(number, self.multiple_of):
            message = f"must be a multiple of {self.multiple_of!r}"
        if message is not None:
            return _fail(problems, path, f"{message}, got {value!r}")
        return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Boolean(Spec):
    """``true`` or ``false``; strings such as ``"yes"`` are refused."""

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, bool):
            return _fail(problems, path, f"must be true or false, got {describe(value)}")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice(Spec):
    """One string out of a closed set, optionally converted (to an enum member, say)."""

    values: tuple[str, ...]
    case_insensitive: bool = False  # when set, the canonical spelling from ``values`` is returned
    convert: Callable[[str], Any] | None = None

    @classmethod
    def of_enum(cls, enum_type: type[Enum]) -> Choice:
        """A choice among the values of a string enum, returning its members."""
        return cls(values=tuple(member.value for member in enum_type), convert=enum_type)

    def _allowed(self) -> str:
        return ", ".join(repr(value) for value in self.values)

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, str):
            return _fail(problems, path, f"must be one of {self._allowed()}, got {describe(value)}")
        match = next((v for v in self.values if v == value), None)
        if match is None and self.case_insensitive:
            match = next((v for v in self.values if v.casefold() == value.casefold()), None)
        if match is None:
            return _fail(problems, path, f"must be one of {self._allowed()}, got {value!r}")
        return self.convert(match) if self.convert is not None else match


@dataclass(frozen=True, slots=True, kw_only=True)
class ListOf(Spec):
    """An array whose items all follow ``item``; returned as a tuple."""

    item: Spec
    non_empty: bool = False
    unique: bool = False

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, list):
            return _fail(problems, path, f"must be an array, got {describe(value)}")
        if self.non_empty and not value:
            return _fail(problems, path, "must not be empty")
        before = len(problems)
        items: list[Any] = []
        first_seen: dict[Any, int] = {}
        for index, raw in enumerate(value):
            item_path = index_path(path, index)
            item = self.item.validate(raw, item_path, problems)
            items.append(item)
            if not self.unique or item is INVALID:
                continue
            if item in first_seen:
                also = index_path(path, first_seen[item])
                problems.append(ConfigProblem(item_path, f"duplicate entry {raw!r} (also at {also})"))
            else:
                first_seen[item] = index
        return INVALID if len(problems) > before else tuple(items)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetOf(Spec):
    """An array of distinct items whose order means nothing; returned as a frozenset."""

    item: Spec
    non_empty: bool = False

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        items = ListOf(item=self.item, non_empty=self.non_empty, unique=True).validate(value, path, problems)
        return INVALID if items is INVALID else frozenset(items)


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One key of a table: its spec, whether it is required, its default and what it means."""

    name: str
    spec: Spec
    required: bool = False
    default: Any = None  # used when an optional key is absent; an absent optional Table gets its defaults
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Table(Spec):
    """A table with a fixed set of keys; unknown keys are problems that list the accepted ones."""

    fields: tuple[Field, ...]
    # Extra advice for tempting wrong keys, e.g. ``password`` -> use ``password_env``.
    key_hints: tuple[tuple[str, str], ...] = ()

    def field_names(self) -> tuple[str, ...]:
        """The accepted keys, in declaration order."""
        return tuple(f.name for f in self.fields)

    def missing_message(self, path: str) -> str:
        return f"required table [{path}] is missing"

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            return _fail(problems, path, f"must be a single [{path}] table, not an array of tables")
        if not isinstance(value, dict):
            return _fail(problems, path, f"must be a table, got {describe(value)}")
        accepted = self.field_names()
        for key in value:
            if key not in accepted:
                problems.append(ConfigProblem(key_path(path, key), self._unknown_key_message(key)))
        result: dict[str, Any] = {}
        for spec_field in self.fields:
            child = key_path(path, spec_field.name)
            if spec_field.name in value:
                result[spec_field.name] = spec_field.spec.validate(value[spec_field.name], child, problems)
            elif spec_field.required:
                problems.append(ConfigProblem(child, spec_field.spec.missing_message(child)))
                result[spec_field.name] = INVALID
            elif isinstance(spec_field.spec, Table):
                result[spec_field.name] = spec_field.spec.validate({}, child, problems)
            else:
                result[spec_field.name] = spec_field.default
        return result  # partial when problems were recorded: see the module docstring

    def _unknown_key_message(self, key: str) -> str:
        accepted = self.field_names()
        hint = dict(self.key_hints).get(key)
        if hint is None:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
        text = f"unknown key ({hint})" if hint else "unknown key"
        return f"{text}; accepted keys: {', '.join(sorted(accepted))}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArrayOfTables(Spec):
    """An array of tables (``[[name]]`` sections); returned as a tuple of dicts."""

    table: Table
    min_items: int = 0

    def missing_message(self, path: str) -> str:
        if self.min_items == 1:
            return f"at least one [[{path}]] table is required"
        if self.min_items > 1:
            return f"at least {self.min_items} [[{path}]] tables are required"
        return "required key is missing"

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if isinstance(value, dict):
            return _fail(problems, path, f"must be an array of tables ([[{path}]]), got a single table")
        if not isinstance(value, list):
            return _fail(problems, path, f"must be an array of tables ([[{path}]]), got {describe(value)}")
        if len(value) < self.min_items:
            return _fail(problems, path, self.missing_message(path))
        # Partial, like a Table: the valid parts of each item stay readable for the cross-field checks.
        return tuple(self.table.validate(raw, index_path(path, i), problems) for i, raw in enumerate(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class MapOf(Spec):
    """A table with free-form, non-empty keys (or keys that follow ``key``) and uniform values; returned as
    sorted (key, value) pairs."""

    value: Spec
    key: Spec | None = None  # e.g. a Choice: each key is checked (and converted) as a value would be
    # A problem with a key and its value together (both valid), reported at the key: None when fine.
    check: Callable[[Any, Any], str | None] | None = None

    def validate(self, value: object, path: str, problems: Problems) -> Any:
        if not isinstance(value, dict):
            return _fail(problems, path, f"must be a table of key = value pairs, got {describe(value)}")
        before = len(problems)
        pairs: list[tuple[Any, Any]] = []
        for key, raw in value.items():
            child = key_path(path, key)
            if not key.strip():
                problems.append(ConfigProblem(child, "key must not be empty"))
                continue
            checked_key = key if self.key is None else self.key.validate(key, child, problems)
            checked_value = self.value.validate(raw, child, problems)
            if self.check is not None and INVALID not in (checked_key, checked_value):
                message = self.check(checked_key, checked_value)
                if message is not None:
                    problems.append(ConfigProblem(child, message))
            pairs.append((checked_key, checked_value))
        return INVALID if len(problems) > before else tuple(sorted(pairs))
