"""TOML text for a document the copier writes itself (``mt5-copier import-config``).

A few lines rather than a dependency: the values are strings, numbers, booleans, arrays of them and tables, and
the one thing to get right is quoting. A string holding a backslash (a Windows path) is written as a literal
string, ``'C:\\MT5\\terminal64.exe'``, as a person would write it; every other string as a basic string with
TOML's escapes. ``tomllib`` reading the text back gives the document again (the tests check it).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# What a literal string cannot hold: its own quote, and control characters other than tab.
_NOT_LITERAL = re.compile(r"['\x00-\x08\x0a-\x1f\x7f]")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_key(key: str) -> str:
    """``key`` as a TOML key: bare when it can be, quoted otherwise (``"NAT.GAS"``, never a dotted key)."""
    return key if _BARE_KEY.fullmatch(key) else _basic_string(key)


def toml_string(text: str) -> str:
    """``text`` as a TOML string: a literal string when it holds a backslash and can be one, else a basic one."""
    if "\\" in text and not _NOT_LITERAL.search(text):
        return f"'{text}'"
    return _basic_string(text)


def _basic_string(text: str) -> str:
    def escape(character: str) -> str:
        if character in _ESCAPES:
            return _ESCAPES[character]
        if ord(character) < 0x20 or ord(character) == 0x7F:
            return f"\\u{ord(character):04X}"
        return character

    return '"' + "".join(escape(character) for character in text) + '"'


def toml_value(value: Any) -> str:
    """A string, number, boolean or array of them as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # always a float's spelling: 10.0, 1e-05
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML value for {type(value).__name__}")


def toml_table(header: str, table: Mapping[str, Any], *, array: bool = False) -> list[str]:
    """The lines of ``[header]`` (``[[header]]`` with ``array``): its values first, then its sub-tables."""
    lines = [f"[[{header}]]" if array else f"[{header}]"]
    lines.extend(f"{toml_key(key)} = {toml_value(value)}" for key, value in table.items()
                 if not isinstance(value, Mapping))
    for key, value in table.items():
        if isinstance(value, Mapping):
            lines.extend(toml_table(f"{header}.{toml_key(key)}", value))
    return lines


def toml_comment(text: str, *, width: int = 118, bullet: str = "") -> list[str]:
    """``text`` as comment lines of at most ``width`` characters (a long word, such as a path, is never cut)."""
    indent = " " * len(bullet)
    wrapped = textwrap.wrap(text, width - 2, initial_indent=bullet, subsequent_indent=indent,
                            break_long_words=False, break_on_hyphens=False)
    return [f"# {line}" for line in wrapped] or ["#"]
