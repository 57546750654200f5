"""coordinator/runtime/collector.py: the cycle collector set for a long-running engine, and what it still does."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from coordinator.runtime import collector


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_tune_makes_young_collections_rarer(restored: None):
    collector.tune()
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, *collector.OLDER_THRESHOLDS)
    assert gc.isenabled()


def test_settle_freezes_what_lives_and_later_garbage_is_still_collected(restored: None):
    kept = [_Node() for _ in range(10)]
    collector.settle()
    assert gc.get_freeze_count() > 0
    assert kept[0] is not None
    # A reference cycle made after settling is found by the next collection, as always.
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None
    # An acyclic frozen object is still freed when its last reference goes (reference counting is untouched).
    frozen = weakref.ref(kept[0])
    kept.clear()
    assert frozen() is None
