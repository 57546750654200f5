"""Python's cycle collector, set for an engine that holds a large state for weeks and must answer in milliseconds.

CPython's automatic collections run in the middle of whatever allocates, and a full one walks every tracked object:
at 50 targets x 1000 copies (the links, the copies' indexes, the plans) one took 70-80 ms, in the middle of a copy's
path, and the young ones ran every few plans (``python -m bench --only p4`` measured both). Two settings remove
that without giving up collection:

- the state loaded at start-up and the first plans (most of it lives as long as the process) is collected once and
  then frozen (``gc.freeze``): later collections skip it. A frozen object is still freed when its last reference
  goes (reference counting is untouched); only a reference cycle among frozen objects would outlive its use, and
  the engine's state is acyclic (snapshots, links, plans refer down, never back);
- young collections wait for ``YOUNG_THRESHOLD`` net allocations instead of 700: the engine's plans allocate
  thousands of short-lived objects, freed by reference counting long before a collection could find them.
"""

from __future__ import annotations

import gc

from loguru import logger

YOUNG_THRESHOLD = 20_000  # net new tracked objects before a young collection (CPython's default: 700)
OLDER_THRESHOLDS = (10, 10)  # CPython's defaults: a middle collection per 10 young ones, and so on


def tune() -> None:
    """At process start: collections less often (see the module's docstring)."""
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def settle() -> None:
    """Once the start-up's state is loaded and planned: collect what start-up left behind, then freeze the rest
    out of every later collection."""
    collected = gc.collect()
    gc.freeze()
    logger.debug("start-up settled: {} objects collected, {} frozen out of later collections", collected,
                 gc.get_freeze_count())
