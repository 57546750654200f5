"""The orphan policy at work: one ``OrphanTracker`` per target, its counts kept in the state across restarts,
the source's history asked what became of each orphan's source order, and each decision told once.

It decides *which* orphans are confirmed for removal (with the evidence); the planner decides what is sent,
under the rules of every removal. Only ever asked with a fresh source (the engine decides nothing
otherwise), so a source that blinks never counts as "the source has no orders".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from loguru import logger

from coordinator.domain.events import EventStream, OrphanDecided
from coordinator.domain.orphans import (
    CONFIRMED_FATES,
    UNKNOWN_FATE,
    ConfirmedOrphan,
    OrphanCandidate,
    OrphanTracker,
    source_fate,
)
from coordinator.domain.report import trim
from coordinator.persistence.state import StateStore
from coordinator.runtime.views import TerminalView
from protocol import PendingOrder
from protocol.mt5 import OrderState

AskHistory = Callable[[TerminalView, Iterable[int], float], int]  # (view, tickets, now) -> requests sent


class OrphanWatch:
    def __init__(self, targets: Iterable[TerminalView], state: StateStore, events: EventStream,
                 ask_history: AskHistory) -> None:
        self._state = state
        self._events = events
        self._ask_history = ask_history
        self._trackers = {view.name: OrphanTracker(view.name, view.target.copy.orphans,
                                                   keep_filled_copies=view.target.copy.keep_filled_copies)
                          for view in targets if view.target is not None}
        for name, tracker in self._trackers.items():
            tracker.restore(state.orphan_counts(name))
        self._preserved: dict[tuple[str, int], None] = {}  # (target, copy ticket) told as kept; insertion-ordered

    def counts(self, target: str) -> dict[int, int]:
        """Consecutive checks that found each orphan on ``target``, by copy ticket."""
        return self._trackers[target].counts()

    def max_checks(self, target: str) -> int:
        return self._trackers[target].settings.max_checks

    def preserved(self, target: str) -> set[int]:
        """Copies on ``target`` confirmed as orphans and kept (the policy, or a filled source kept)."""
        return {copy for (name, copy) in self._preserved if name == target}

    def copy_removed(self, target: str, copy_ticket: int) -> None:
        """A copy is gone by the copier's hand: it is no longer an orphan to count."""
        tracker = self._trackers.get(target)
        if tracker is not None and copy_ticket in tracker.counts():
            tracker.forget(copy_ticket)
            self._state.save_orphan_counts(target, tracker.counts())

    def confirm(self, view: TerminalView, source: TerminalView, orphans: list[PendingOrder],
                now: float) -> tuple[dict[int, ConfirmedOrphan], int]:
        """Which orphans on ``view`` are confirmed for removal (by copy ticket) and how many requests went out."""
        tracker = self._trackers[view.name]
        if not orphans and not tracker.counts():
            return {}, 0
        # What became of each source order (filled, cancelled, expired) decides at once, and decides
        # keep_filled_copies: ask the source's history for the ones its worker did not see leave. A copy whose
        # answer is on its way is held (neither counted nor reset) for up to the requests' answer wait.
        # One "no record" answer is final here: the orphan then goes through its counted confirmations, which
        # are the bounded looks for a source order (the target's copies have theirs in ``no_record``).
        unknown = {copy.magic for copy in orphans if copy.magic not in source.closed
                   or source.closed[copy.magic].state == OrderState.NOT_IN_HISTORY_YET}
        requests = self._ask_history(source, unknown, now) if unknown else 0
        asking = {ticket for ticket in unknown if source.requests.awaiting_history(ticket, now)}
        candidates = [
            OrphanCandidate(copy_ticket=copy.ticket, source_ticket=copy.magic, symbol=copy.symbol,
                            source_fate=source_fate(source.closed[copy.magic].state
                                                    if copy.magic in source.closed else None))
            for copy in orphans if copy.magic not in asking
        ]
        held = {copy.ticket for copy in orphans if copy.magic in asking}
        if not candidates and held.issuperset(tracker.counts()):
            return {}, requests  # only copies whose fate is being asked: nothing to count or reset yet
        confirmed = any(candidate.source_fate in CONFIRMED_FATES for candidate in candidates)
        if not tracker.due(now) and not confirmed and not any(
                tracker.counts().get(c.copy_ticket, 0) >= tracker.settings.max_checks for c in candidates):
            return {}, requests
        snapshot = source.snapshot
        evidence_id = f"{source.name} boot {snapshot.boot_id} seq {snapshot.seq}" if snapshot else "none"
        before = tracker.counts()
        decision = tracker.check(now, candidates, evidence_id, held=held)
        for line in decision.evidence:
            logger.info("{}", line)
        if decision.evidence:
            logger.debug("orphan check on source snapshot {}", evidence_id)
        if tracker.counts() != before:
            self._state.save_orphan_counts(view.name, tracker.counts())
        for candidate in decision.preserved:
            if (view.name, candidate.copy_ticket) not in self._preserved:
                self._preserved[(view.name, candidate.copy_ticket)] = None
                trim(self._preserved)
                self._events.emit(OrphanDecided(target=view.name, source_ticket=candidate.source_ticket,
                                                copy_ticket=candidate.copy_ticket, kill=False,
                                                why=f"source order is {candidate.source_fate}; copy kept"))
        removals = {}
        for candidate in decision.kill:
            checks = tracker.counts().get(candidate.copy_ticket, 0)
            evidence = (
                f"the source's history says source order #{candidate.source_ticket} was {candidate.source_fate}"
                if candidate.source_fate in CONFIRMED_FATES else
                f"source order #{candidate.source_ticket} not found in {checks} consecutive checks ({evidence_id})")
            fate = candidate.source_fate if candidate.source_fate != UNKNOWN_FATE else "gone"
            removals[candidate.copy_ticket] = ConfirmedOrphan(
                reason=f"orphan: source order #{candidate.source_ticket} is {fate}", evidence=evidence)
        return removals, requests
