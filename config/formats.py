"""What free-text keys may contain: terminal names, environment variable names, log levels, regular expressions."""

from __future__ import annotations

import re

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

TERMINAL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
TERMINAL_NAME_HINT = "1 to 64 characters from A-Z a-z 0-9 _ . -"

ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Said instead of the value: a value that is not a variable name may well be the password itself.
ENV_VAR_NAME_HINT = (
    "the NAME of an environment variable holding the password ([A-Za-z_][A-Za-z0-9_]*), "
    "not the password itself (the value is not shown)"
)

# Names become file names; Windows refuses these whatever the extension.
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10)]
)


def terminal_name_problem(name: str) -> str | None:
    """Why ``name`` (already matching ``TERMINAL_NAME``) cannot be a file name stem, or None when it can."""
    if set(name) == {"."}:
        return f"must not consist of dots only (it is used in file names), got {name!r}"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        return f"must not be a name Windows reserves for devices (it is used in file names), got {name!r}"
    return None


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a regular expression Python's ``re`` accepts, or None when it is."""
    try:
        re.compile(pattern)
    except re.error as e:
        return f"is not a valid regular expression ({e}): {pattern!r}"
    return None
