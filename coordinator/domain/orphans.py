"""Which orphaned copies to kill, and when: a pure tracker, one per target and kind of copy (pending orders,
positions), with no I/O and no clock of its own.

An orphan is a copy on a target whose source order no longer exists. A single snapshot that lacks a source
order proves little (a terminal that blinks, history that lags), so a copy is only acted on once the source's
history confirms what became of its order (cancelled, filled, expired: acted on at once), or, without such a
record, once it has been found orphaned in ``max_checks`` consecutive checks, ``check_interval`` seconds apart:
an order is "lost" only after several consecutive not-found results, never after one.

The caller's guarantee: ``check`` is only called with orphans worked out from a *fresh* source snapshot
(worker online, terminal connected to its broker, data newer than ``worker_timeout``). A disconnected or
stale source is never "no orders"; while it lasts the caller does not call ``check`` at all, so counts
neither grow nor reset.

A copy *position* is an orphan when its source has neither a pending order nor an open position: the source's
deals saying the position closed (``CLOSED_FATE``), or its order's history saying it never filled, confirm it
at once; otherwise the same counted checks apply.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum

from config import OrphanPolicy, OrphanSettings
from protocol.mt5 import FINAL_FATES, OrderState, describe_fate, order_state_of

FILLED = describe_fate(OrderState.FILLED)  # the one source fate that keep_filled_copies cares about
# Fates the source's history records: the order is gone for good, no confirmation count needed. The counts
# exist for orders that vanished *without* a record (a terminal that blinks, history that lags).
CLOSED_FATE = "closed"  # a source position whose deals took out all it opened with
CONFIRMED_FATES = FINAL_FATES | {CLOSED_FATE}
UNKNOWN_FATE = "unknown"  # no final state in the source's history (not there yet, no record, or another state)


def source_fate(state: int | None) -> str:
    """An orphan's ``source_fate`` from its source order's history state (None: no record of it at all)."""
    known = order_state_of(state) if state is not None else None
    return (known.fate if known is not None else None) or UNKNOWN_FATE


@dataclass(frozen=True, slots=True)
class OrphanCandidate:
    """A copy on the target whose source order is not among the source's pending orders."""

    copy_ticket: int
    source_ticket: int
    symbol: str
    source_fate: str  # "filled", "cancelled", "expired", "rejected", "unknown": what the source's history says


@dataclass(frozen=True, slots=True)
class ConfirmedOrphan:
    """An orphan the policy confirmed for removal: the planner removes it (under the rules of every removal)
    and its action carries both texts to the log and the history."""

    reason: str  # "orphan: source order #5 is cancelled"
    evidence: str  # what confirmed it: the source's history, or the consecutive checks that found it
    source_fate: str = UNKNOWN_FATE  # what the source's history says ("filled", "closed", ...), if anything


@dataclass(frozen=True, slots=True)
class OrphanDecision:
    """What one check decided. Orphans still being confirmed appear in neither tuple (only in evidence)."""

    kill: tuple[OrphanCandidate, ...]  # remove these copies now
    preserved: tuple[OrphanCandidate, ...]  # confirmed orphans that are kept (policy, or a filled source kept)
    evidence: tuple[str, ...]  # one human-readable line per decision or count change


class _Verdict(Enum):
    KILL = "kill"
    PRESERVE_POLICY = "orphan policy preserve"
    PRESERVE_FILLED = "keep_filled_copies, and its source order was filled"


class OrphanTracker:
    """Per target. Counts consecutive orphan checks per copy ticket."""

    def __init__(self, target: str, settings: OrphanSettings, keep_filled_copies: bool, *,
                 positions: bool = False) -> None:
        """``positions``: the tracker of copy positions (its evidence speaks of positions and of closing)."""
        self.target = target
        self.settings = settings
        self.keep_filled_copies = keep_filled_copies
        self._copy, self._source = ("copy position", "source position") if positions else ("copy", "source order")
        self._act = "closing the copy's position" if positions else "removing the copy"
        self._counts: dict[int, int] = {}  # copy ticket -> consecutive checks that found it orphaned
        self._verdicts: dict[int, _Verdict] = {}  # copy ticket -> decision taken once confirmed
        self._checks = 0
        self._last_check_at: float | None = None

    def due(self, now: float) -> bool:
        """True when ``check_interval`` has passed since the last check (and before the very first)."""
        return self._last_check_at is None or now - self._last_check_at >= self.settings.check_interval

    def check(self, now: float, orphans: Sequence[OrphanCandidate], source_snapshot: str,
              held: Collection[int] = ()) -> OrphanDecision:
        """Count this check's orphans and decide on those confirmed.

        An orphan is confirmed by the source's history (its order was cancelled, filled, expired or rejected:
        decided at once, whenever this is called) or, when the history has no word on it, by ``max_checks``
        consecutive checks ``check_interval`` apart (counted only when ``due``). ``orphans`` must come from a
        fresh source snapshot (see the module docstring); ``source_snapshot`` names that snapshot in the
        evidence; copies in ``held`` (their fate is being asked) are neither counted nor reset. A tracked copy
        missing from both starts again from zero. A copy decided for killing is returned in ``kill`` at every
        call until ``forget`` is called, so a removal that failed is retried.
        """
        counting = self.due(now)
        if counting:
            self._checks += 1
            self._last_check_at = now
        max_checks = self.settings.max_checks
        current = {orphan.copy_ticket: orphan for orphan in orphans}
        evidence: list[str] = []

        for ticket in [t for t in self._counts if t not in current and t not in held]:
            count = self._counts.pop(ticket)
            self._verdicts.pop(ticket, None)
            evidence.append(f"target {self.target}: {self._copy} #{ticket} is no longer orphaned; its count of "
                            f"{count} of {max_checks} checks starts again")

        kill: list[OrphanCandidate] = []
        preserved: list[OrphanCandidate] = []
        for orphan in current.values():
            where = (f"target {self.target}: {self._copy} #{orphan.copy_ticket} {orphan.symbol} of "
                     f"{self._source} #{orphan.source_ticket}")
            confirmed_by_history = orphan.source_fate in CONFIRMED_FATES
            if confirmed_by_history:
                self._counts[orphan.copy_ticket] = max(self._counts.get(orphan.copy_ticket, 0), max_checks)
                where += f": the source's history says it was {orphan.source_fate}"
            elif counting:
                count = self._counts.get(orphan.copy_ticket, 0) + 1
                self._counts[orphan.copy_ticket] = count
                where += f": {self._source} not found in {count} of {max_checks} consecutive checks"
                if count < max_checks:
                    evidence.append(f"{where}; confirming before acting")
                    continue
            elif self._counts.get(orphan.copy_ticket, 0) < max_checks:
                continue  # between checks: nothing new to count
            else:
                where += f": {self._source} not found in {max_checks} consecutive checks"
            verdict = self._verdict(orphan)
            previous = self._verdicts.get(orphan.copy_ticket)
            self._verdicts[orphan.copy_ticket] = verdict
            if verdict is _Verdict.KILL:
                kill.append(orphan)
                if previous is not _Verdict.KILL:
                    evidence.append(f"{where}; {self._act} (orphan policy kill)")
                elif counting:
                    evidence.append(f"{where}; {self._act} again (the last attempt is not confirmed yet)")
            else:
                preserved.append(orphan)
                if previous is not verdict:  # said once; the copy then stays quietly in `preserved`
                    evidence.append(f"{where}; keeping the copy ({verdict.value})")
        return OrphanDecision(kill=tuple(kill), preserved=tuple(preserved), evidence=tuple(evidence))

    def restore(self, counts: dict[int, int]) -> None:
        """Counts saved by an earlier run: confirmations carry over a restart instead of starting again."""
        self._counts.update(counts)

    def forget(self, copy_ticket: int) -> None:
        """Stop tracking a copy that left the target (filled, deleted by hand, or killed)."""
        self._counts.pop(copy_ticket, None)
        self._verdicts.pop(copy_ticket, None)

    def counts(self) -> dict[int, int]:
        """Copy ticket -> consecutive checks that found it orphaned (for status)."""
        return dict(self._counts)

    def _verdict(self, orphan: OrphanCandidate) -> _Verdict:
        # Judged on the latest fate: the source's history may only learn of the fill a moment later.
        if self.keep_filled_copies and orphan.source_fate == FILLED:
            return _Verdict.PRESERVE_FILLED
        if self.settings.policy is OrphanPolicy.PRESERVE:
            return _Verdict.PRESERVE_POLICY
        return _Verdict.KILL
