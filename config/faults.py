"""Crash points for tests: ``MT5_COPIER_CRASH=point[:n]`` makes the process die like ``kill -9`` the n-th
time (default 1st) it reaches ``point``. Unset in production, where ``crash_point`` is one dictionary look-up.

Points: coordinator ``after-intent`` (intent on disk, command not sent), ``after-send`` (command sent, result
not back), ``after-result`` (result received, not yet recorded); worker ``before-order-send``,
``after-order-send`` (the broker answered, the result is not sent), ``mid-batch`` (after the first command
of a batch of several).
"""

from __future__ import annotations

import os

ENVIRONMENT_VARIABLE = "MT5_COPIER_CRASH"
_counts: dict[str, int] = {}


def _parse(value: str) -> tuple[str, int]:
    point, _, count = value.partition(":")
    return point.strip(), int(count) if count.strip().isdigit() else 1


_PLAN = _parse(os.environ[ENVIRONMENT_VARIABLE]) if os.environ.get(ENVIRONMENT_VARIABLE) else None


def crash_point(point: str) -> None:
    if _PLAN is None or _PLAN[0] != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == _PLAN[1]:
        os._exit(137)  # no clean-up, no flush: what SIGKILL leaves behind
