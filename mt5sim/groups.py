"""The `group` filter grammar of symbols_get, orders_get, positions_get and history_*_get.

Comma-separated conditions, `*` as a wildcard, `!` to exclude; conditions apply in order, so a later
condition overrides an earlier one for the names it matches ("*,!EUR*": everything except EUR...).
Matching ignores case (the real terminal's case rule is undocumented; brokers' names differ only in
suffixes, not in case).
"""

from __future__ import annotations

import re
from collections.abc import Callable


def compile_group(group: str) -> Callable[[str], bool]:
    """A predicate telling whether a symbol name is in the group."""
    conditions: list[tuple[bool, re.Pattern[str]]] = []
    for raw in group.split(","):
        condition = raw.strip()
        if not condition:
            continue
        exclude = condition.startswith("!")
        pattern = condition[1:].strip() if exclude else condition
        regex = ".*".join(re.escape(part) for part in pattern.split("*"))
        conditions.append((exclude, re.compile(regex, re.IGNORECASE)))

    def matches(name: str) -> bool:
        included = False
        for exclude, regex in conditions:
            if regex.fullmatch(name):
                included = not exclude
        return included

    return matches
