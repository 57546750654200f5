"""What one run of the coordinator did on each target: its counters for the ``--once`` summary, status and the
demo, filled from the event stream, and the current failures the engine's retry policy keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coordinator.domain.planner import TargetPlan

MEMORY_LIMIT = 5000  # per map: a copier running for weeks must not grow without bound


def trim(memory: dict[Any, Any]) -> None:
    """Drop the oldest entries of an insertion-ordered map beyond MEMORY_LIMIT."""
    while len(memory) > MEMORY_LIMIT:
        del memory[next(iter(memory))]


@dataclass(slots=True)
class Failure:
    retcode: int
    message: str
    attempts: int
    retry_at: float  # monotonic
    final: bool
    fingerprint: tuple = ()  # the source order when it failed: an edit of the order retries at once
    symbol: str = ""  # the target symbol of the command that failed


@dataclass(slots=True)
class TargetReport:
    """What happened on one target during this run (for the --once summary, status and the demo)."""

    placed: dict[int, int] = field(default_factory=dict)  # source ticket -> copy ticket
    adopted: dict[int, int] = field(default_factory=dict)
    modified: dict[int, int] = field(default_factory=dict)  # source ticket -> number of modifications
    replaced: dict[int, int] = field(default_factory=dict)
    removed: dict[int, str] = field(default_factory=dict)  # source ticket -> why its copy was removed
    adjusted: dict[int, str] = field(default_factory=dict)  # source ticket -> what changed its copy's size
    levels_synced: dict[int, int] = field(default_factory=dict)  # source ticket -> SL/TP syncs of its position
    partly_closed: dict[int, int] = field(default_factory=dict)  # source ticket -> partial closes of its position
    closed: dict[int, str] = field(default_factory=dict)  # source ticket -> why its copy's position was closed
    opened_at_market: dict[int, int] = field(default_factory=dict)  # source ticket -> the copy's position
    failures: dict[int, Failure] = field(default_factory=dict)  # current, cleared on success
    last_plan: TargetPlan | None = None
    unavailable: str = ""  # why the target could not be planned for at the last attempt
