"""Which source orders one target copies: ``[targets.filter]``. Pure.

An order is copied when it passes every key that is set; the verdict on one left out names the first key, in the
table's order (symbols, exclude_symbols, magics, exclude_magics, comment_regex), that excludes it, so each order
is counted once, under that key, in ``status`` and the ``--once`` summary. An exclusion always wins over an
inclusion: an order must pass them all.

Symbol patterns are shell-style (``*``, ``?``, ``[seq]``, as ``fnmatch``) and match the SOURCE symbol, before
``symbol_map`` and the prefix and suffix, so one filter reads the same on every target. Letter case is ignored,
although MT5 symbol names are case-sensitive: the seed system (MT5-Order-Copier) matched its symbol filters that
way by default (``case_sensitive: False``), brokers do not list two symbols that differ only in case (they differ
in suffixes such as ``.m`` or ``m``, which a pattern names), and a pattern written in the wrong case would
otherwise match nothing, silently. It is matched the same way on every system (``fnmatch.fnmatch`` would follow
the file system's rules, ignoring case on Windows only).

``comment_regex`` is a Python regular expression searched for anywhere in the source order's comment
(``re.search``: anchor it with ``^`` or ``$``), case-sensitive unless it says ``(?i)``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase

from config import FilterSettings
from protocol import PendingOrder


class FilterKey(str, Enum):
    """A key of [targets.filter], in the order an order is judged by them."""

    SYMBOLS = "symbols"
    EXCLUDE_SYMBOLS = "exclude_symbols"
    MAGICS = "magics"
    EXCLUDE_MAGICS = "exclude_magics"
    COMMENT_REGEX = "comment_regex"


@dataclass(frozen=True, slots=True)
class FilterVerdict:
    """Why [targets.filter] leaves a source order out: the first key that excludes it, and why in words."""

    key: FilterKey
    reason: str


def left_out_by_filter(order: PendingOrder, settings: FilterSettings) -> FilterVerdict | None:
    """The verdict of ``settings`` on ``order``; None when the target copies it."""
    symbol = order.symbol
    if settings.symbols is not None and _matching(symbol, settings.symbols) is None:
        return FilterVerdict(FilterKey.SYMBOLS, f"source symbol {symbol} matches none of [targets.filter] symbols "
                                                f"({_listed(settings.symbols)})")
    pattern = _matching(symbol, settings.exclude_symbols)
    if pattern is not None:
        return FilterVerdict(FilterKey.EXCLUDE_SYMBOLS,
                             f"source symbol {symbol} matches [targets.filter] exclude_symbols {pattern!r}")
    if settings.magics is not None and order.magic not in settings.magics:
        return FilterVerdict(FilterKey.MAGICS, f"magic number {order.magic} is not in [targets.filter] magics "
                                               f"({_listed(settings.magics)})")
    if order.magic in settings.exclude_magics:
        return FilterVerdict(FilterKey.EXCLUDE_MAGICS, f"magic number {order.magic} is in [targets.filter] "
                                                       "exclude_magics")
    if settings.comment_regex is not None and re.search(settings.comment_regex, order.comment) is None:
        return FilterVerdict(FilterKey.COMMENT_REGEX, f"comment {order.comment!r} does not match [targets.filter] "
                                                      f"comment_regex {settings.comment_regex!r}")
    return None


def filter_counts(verdicts: Iterable[FilterVerdict]) -> dict[str, int]:
    """How many orders each key left out, in the table's order; keys that left none out are not named."""
    counts = Counter(verdict.key for verdict in verdicts)
    if not counts:
        return {}  # the usual answer, for every target at every status write: no walk over the keys for it
    return {key.value: counts[key] for key in FilterKey if counts[key]}


def describe_counts(counts: dict[str, int]) -> str:
    """``{"symbols": 3, "magics": 1}`` as a person reads it: "symbols 3, magics 1" ("none" when empty)."""
    return ", ".join(f"{key} {count}" for key, count in counts.items()) or "none"


def _matching(symbol: str, patterns: Sequence[str]) -> str | None:
    """The first of ``patterns`` that ``symbol`` matches, letter case ignored; None when none does."""
    folded = symbol.casefold()
    return next((pattern for pattern in patterns if fnmatchcase(folded, pattern.casefold())), None)


def _listed(values: Sequence[object], limit: int = 5) -> str:
    """At most ``limit`` values, comma-separated: a long list must not flood the log and the summary."""
    shown = ", ".join(str(value) for value in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")
