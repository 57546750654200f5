"""The periodic full plans, paced so that they never hold the coordinator's loop for long.

Incremental plans follow what changed; under them, every target's plan is made from scratch every ``interval``
seconds, the check that nothing was missed. A full plan costs about 0.1 ms per source order from cold caches: a
few milliseconds for a target of a few dozen copies, but ~100 ms for one of 1000, and ~5 s for 50 such targets.
Made all at once every 5 s, as they were, those held the loop for seconds at that scale (a source edit waited
behind them) and kept a core busy. So a target is given its full plan when it is due (``interval`` since its last
one, whatever made it), one target at a time between two rounds of messages, within FULL_PLAN_SHARE of the
loop's time. A few small targets are all planned in full every ``interval``, as before; 50 targets of 1000 copies
each every ~50 s, and the loop never waits longer than one target's plan. What waits on time (a backoff that
ends, a fact asked for) is not left to them: the runner brings every plan up to date every ``interval``, planning
incrementally what the engine can show gives the same plan.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping

FULL_PLAN_SHARE = 0.1  # of the loop's time, at most, spent on the periodic full plans
BURST_SECONDS = 0.25  # what may be spent at once after a quiet spell: a small fleet's full plans in one round


class FullPlanPace:
    """Which targets get their periodic full plan now (see the module's note). One owner: the runner's loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._allowance = BURST_SECONDS  # seconds of full planning that may be spent now
        self._updated = clock()
        self._asked: dict[str, float] = {}  # when each target was last given its turn (planned or not)

    def due(self, planned_in_full_at: Mapping[str, float], targets: Iterable[str], interval: float) -> list[str]:
        """The targets whose full plan is due (``interval`` since their last one, or since they were last given a
        turn that could not make one: a target offline is tried again an interval later, not at every round),
        most overdue first."""
        now = self._clock()
        last = {name: max(planned_in_full_at.get(name, -math.inf), self._asked.get(name, -math.inf))
                for name in targets}
        return sorted((name for name, at in last.items() if now - at >= interval), key=lambda name: last[name])

    def may_plan(self) -> bool:
        """Whether the allowance leaves room for one more full plan now."""
        now = self._clock()
        self._allowance = min(BURST_SECONDS, self._allowance + (now - self._updated) * FULL_PLAN_SHARE)
        self._updated = now
        return self._allowance > 0

    def planned(self, name: str, seconds: float) -> None:
        """``name`` was given its turn, which took ``seconds``."""
        self._asked[name] = self._clock()
        self._allowance -= seconds
