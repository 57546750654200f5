"""Crash points for tests: ``MT5_COPIER_CRASH=point[:n]`` makes the process die like ``kill -9`` the n-th
time (default 1st) it reaches ``point``. Unset in production, where ``crash_point`` is one dictionary look-up.

Points: coordinator ``after-intent`` (intent on disk, command not sent), ``after-send`` (command sent, result
not back), ``after-result`` (result received, not yet recorded); worker ``before-order-send``,
``after-order-send`` (the broker answered, the result is not sent), ``mid-batch`` (after the first command
of a batch of several).
"""

from __future__ import annotations

import os
import time

ENVIRONMENT_VARIABLE = "MT5_COPIER_CRASH"
_counts: dict[str, int] = {}


def _parse(value: str) -> tuple[str, int]:
    point, _, count = value.partition(":")
    return point.strip(), int(count) if count.strip().isdigit() else 1


_PLAN = _parse(os.environ[ENVIRONMENT_VARIABLE]) if os.environ.get(ENVIRONMENT_VARIABLE) else None


def crash_point(point: str, flush_seconds: float = 0.0) -> None:
    """Die here if the environment says so. ``flush_seconds``: let ZeroMQ's I/O thread put what was just
    queued on the wire first (a send only queues), so "after-send" means the peer really got it."""
    if _PLAN is None or _PLAN[0] != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] == _PLAN[1]:
        if flush_seconds:
            time.sleep(flush_seconds)
        os._exit(137)  # no clean-up, no flush: what SIGKILL leaves behind
