"""The orphan policy at work: one ``OrphanTracker`` per target for its pending copies and one for its copy
positions, their counts kept in the state across restarts, the source's history asked what became of each
orphan's source order (and of its position), and each decision told once.

It decides *which* orphans are confirmed for removal (with the evidence); the planner decides what is sent,
under the rules of every removal. Only ever asked with a fresh source (the engine decides nothing
otherwise), so a source that blinks never counts as "the source has no orders".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from loguru import logger

from config import CopySettings, OrphanPolicy, OrphanSettings, SourceClose, SourceFill
from coordinator.domain.events import EventStream, OrphanDecided
from coordinator.domain.orphans import (
    CLOSED_FATE,
    CONFIRMED_FATES,
    FILLED,
    UNKNOWN_FATE,
    ConfirmedOrphan,
    OrphanCandidate,
    OrphanDecision,
    OrphanTracker,
    source_fate,
)
from coordinator.domain.report import trim
from coordinator.persistence.state import StateStore
from coordinator.runtime.views import TerminalView
from protocol import PendingOrder, PositionFacts
from protocol.mt5 import OrderState

# (view, order tickets, now, position ids) -> requests sent
AskHistory = Callable[[TerminalView, Iterable[int], float, Iterable[int]], int]


class OrphanWatch:
    def __init__(self, targets: Iterable[TerminalView], state: StateStore, events: EventStream,
                 ask_history: AskHistory) -> None:
        self._state = state
        self._events = events
        self._ask_history = ask_history
        self._trackers: dict[str, OrphanTracker] = {}
        # Copy positions: the same confirmations, and on_source_close for what a confirmed one becomes.
        self._position_trackers: dict[str, OrphanTracker] = {}
        self._preserved: dict[tuple[str, int], None] = {}  # (target, copy ticket) told as kept; insertion-ordered
        for view in targets:
            self.add_target(view)

    def add_target(self, view: TerminalView) -> None:
        """Track ``view``'s orphans, from the counts the state kept (a target enabled again resumes them)."""
        if view.target is None or view.name in self._trackers:
            return
        settings = view.target.copy
        self._trackers[view.name] = OrphanTracker(view.name, settings.orphans,
                                                  keep_filled_copies=settings.source_fill is SourceFill.KEEP)
        self._position_trackers[view.name] = OrphanTracker(view.name, _position_settings(settings),
                                                           keep_filled_copies=False, positions=True)
        self._trackers[view.name].restore(self._state.orphan_counts(view.name))
        self._position_trackers[view.name].restore(self._state.orphan_counts(_positions_key(view.name)))

    def settings_changed(self, view: TerminalView) -> None:
        """``view``'s copy rules changed: the next checks confirm under the new ones, with the counts so far."""
        if view.target is None or view.name not in self._trackers:
            return
        settings = view.target.copy
        tracker = self._trackers[view.name]
        tracker.settings = settings.orphans
        tracker.keep_filled_copies = settings.source_fill is SourceFill.KEEP
        self._position_trackers[view.name].settings = _position_settings(settings)

    def remove_target(self, target: str) -> None:
        """``target`` left the config: no more checks. Its counts stay in the state, as its copies stay."""
        self._trackers.pop(target, None)
        self._position_trackers.pop(target, None)
        for key in [key for key in self._preserved if key[0] == target]:
            del self._preserved[key]

    def counts(self, target: str) -> dict[int, int]:
        """Consecutive checks that found each orphan on ``target``, by copy ticket."""
        return self._trackers[target].counts()

    def idle(self, target: str) -> bool:
        """No orphan of ``target`` is being counted (pending copies or positions): with no orphans to show it,
        ``confirm`` and ``confirm_positions`` would decide nothing and ask nothing."""
        return not self._trackers[target].counts() and not self._position_trackers[target].counts()

    def max_checks(self, target: str) -> int:
        return self._trackers[target].settings.max_checks

    def preserved(self, target: str) -> set[int]:
        """Copies on ``target`` confirmed as orphans and kept (the policy, or a filled source kept)."""
        return {copy for (name, copy) in self._preserved if name == target}

    def position_counts(self, target: str) -> dict[int, int]:
        """The same for copy positions, by copy position ticket."""
        return self._position_trackers[target].counts()

    def copy_removed(self, target: str, copy_ticket: int) -> None:
        """A copy (or its position) is gone by the copier's hand: it is no longer an orphan to count."""
        for key, tracker in ((target, self._trackers.get(target)),
                             (_positions_key(target), self._position_trackers.get(target))):
            if tracker is not None and copy_ticket in tracker.counts():
                tracker.forget(copy_ticket)
                self._state.save_orphan_counts(key, tracker.counts())

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
        requests = self._ask_history(source, unknown, now, ()) if unknown else 0
        asking = {ticket for ticket in unknown if source.requests.awaiting_history(ticket, now)}
        candidates = [
            OrphanCandidate(copy_ticket=copy.ticket, source_ticket=copy.magic, symbol=copy.symbol,
                            source_fate=source_fate(source.closed[copy.magic].state
                                                    if copy.magic in source.closed else None))
            for copy in orphans if copy.magic not in asking
        ]
        held = {copy.ticket for copy in orphans if copy.magic in asking}
        checked = self._check(tracker, view.name, view.name, source, candidates, held, now)
        if checked is None:
            return {}, requests
        decision, evidence_id = checked
        for candidate in decision.preserved:
            self._tell_preserved(view.name, candidate, f"source order is {candidate.source_fate}; copy kept")
        removals = {}
        for candidate in decision.kill:
            checks = tracker.counts().get(candidate.copy_ticket, 0)
            evidence = (
                f"the source's history says source order #{candidate.source_ticket} was {candidate.source_fate}"
                if candidate.source_fate in CONFIRMED_FATES else
                f"source order #{candidate.source_ticket} not found in {checks} consecutive checks ({evidence_id})")
            fate = candidate.source_fate if candidate.source_fate != UNKNOWN_FATE else "gone"
            removals[candidate.copy_ticket] = ConfirmedOrphan(
                reason=f"orphan: source order #{candidate.source_ticket} is {fate}", evidence=evidence,
                source_fate=candidate.source_fate)
        return removals, requests

    def confirm_positions(self, view: TerminalView, source: TerminalView, orphans: list[PositionFacts],
                          now: float) -> tuple[dict[int, ConfirmedOrphan], int]:
        """Which copy positions on ``view`` have a source confirmed closed (or never filled), by copy position
        ticket, and how many requests went out. The source's deals confirm a close at once; its order's history
        confirms an order that never filled; otherwise the counted checks decide."""
        tracker = self._position_trackers[view.name]
        if not orphans and not tracker.counts():
            return {}, 0
        sources = {copy.magic for copy in orphans}
        unknown_orders = {ticket for ticket in sources if ticket not in source.closed
                          or source.closed[ticket].state == OrderState.NOT_IN_HISTORY_YET}
        # Deals known from before (a partial close) may predate the close: asked again until they say closed.
        unknown_positions = {ticket for ticket in sources if ticket not in source.positions_without_deals
                             and not (ticket in source.position_history and source.position_history[ticket].closed)}
        requests = self._ask_history(source, unknown_orders, now, unknown_positions) \
            if unknown_orders or unknown_positions else 0
        asking = {ticket for ticket in sources
                  if (ticket in unknown_orders and source.requests.awaiting_history(ticket, now))
                  or (ticket in unknown_positions and source.requests.awaiting_position_history(ticket, now))}
        candidates = [OrphanCandidate(copy_ticket=copy.ticket, source_ticket=copy.magic, symbol=copy.symbol,
                                      source_fate=_position_source_fate(source, copy.magic))
                      for copy in orphans if copy.magic not in asking]
        held = {copy.ticket for copy in orphans if copy.magic in asking}
        checked = self._check(tracker, view.name, _positions_key(view.name), source, candidates, held, now)
        if checked is None:
            return {}, requests
        decision, evidence_id = checked
        for candidate in decision.preserved:
            self._tell_preserved(view.name, candidate, f"source position is {candidate.source_fate}; the copy's "
                                                       "position is kept (on_source_close = keep)")
        closes = {}
        for candidate in decision.kill:
            checks = tracker.counts().get(candidate.copy_ticket, 0)
            evidence = (
                f"the source's history says source #{candidate.source_ticket} was {candidate.source_fate}"
                if candidate.source_fate in CONFIRMED_FATES else
                f"source position #{candidate.source_ticket} not found in {checks} consecutive checks ({evidence_id})")
            closes[candidate.copy_ticket] = ConfirmedOrphan(reason=_position_reason(candidate), evidence=evidence,
                                                            source_fate=candidate.source_fate)
        return closes, requests

    def _check(self, tracker: OrphanTracker, target: str, key: str, source: TerminalView,
               candidates: list[OrphanCandidate], held: set[int],
               now: float) -> tuple[OrphanDecision, str] | None:
        """One check of ``tracker`` (when one is due, or a fate or a count already decides), its evidence logged
        and its counts saved under ``key``; None when there is nothing to decide now."""
        if not candidates and held.issuperset(tracker.counts()):
            return None  # only copies whose fate is being asked: nothing to count or reset yet
        confirmed = any(candidate.source_fate in CONFIRMED_FATES for candidate in candidates)
        if not tracker.due(now) and not confirmed and not any(
                tracker.counts().get(c.copy_ticket, 0) >= tracker.settings.max_checks for c in candidates):
            return None
        snapshot = source.snapshot
        evidence_id = f"{source.name} boot {snapshot.boot_id} seq {snapshot.seq}" if snapshot else "none"
        before = tracker.counts()
        decision = tracker.check(now, candidates, evidence_id, held=held)
        for line in decision.evidence:
            logger.info("{}", line)
        if decision.evidence:
            logger.debug("{}: orphan check on source snapshot {}", target, evidence_id)
        if tracker.counts() != before:
            self._state.save_orphan_counts(key, tracker.counts())
        return decision, evidence_id

    def _tell_preserved(self, target: str, candidate: OrphanCandidate, why: str) -> None:
        """A confirmed orphan that is kept: said once (in the history and the log), then quietly in status."""
        if (target, candidate.copy_ticket) in self._preserved:
            return
        self._preserved[(target, candidate.copy_ticket)] = None
        trim(self._preserved)
        self._events.emit(OrphanDecided(target=target, source_ticket=candidate.source_ticket,
                                        copy_ticket=candidate.copy_ticket, kill=False, why=why))

def _position_reason(candidate: OrphanCandidate) -> str:
    if candidate.source_fate == CLOSED_FATE:
        return f"source position #{candidate.source_ticket} is closed"
    if candidate.source_fate in CONFIRMED_FATES:
        return f"source order #{candidate.source_ticket} never filled (it was {candidate.source_fate})"
    return f"source position #{candidate.source_ticket} is gone"


def _positions_key(target: str) -> str:
    """Where the counts of ``target``'s copy positions are kept ("#" is never part of a terminal's name)."""
    return f"{target}#positions"


def _position_settings(settings: CopySettings) -> OrphanSettings:
    """The orphan confirmations of copy positions: the target's check_interval and max_checks; a confirmed one is
    closed (on_source_close = "close") or kept ("keep")."""
    policy = OrphanPolicy.KILL if settings.positions.on_source_close is SourceClose.CLOSE else OrphanPolicy.PRESERVE
    return OrphanSettings(policy=policy, check_interval=settings.orphans.check_interval,
                          max_checks=settings.orphans.max_checks)


def _position_source_fate(source: TerminalView, source_ticket: int) -> str:
    """What the source's history says of the source of a copy position whose source is neither pending nor
    open: its position closed (its deals), its order never filled (cancelled, expired, rejected), or unknown."""
    history = source.position_history.get(source_ticket)
    if history is not None and history.closed:
        return CLOSED_FATE
    record = source.closed.get(source_ticket)
    fate = source_fate(record.state) if record is not None else UNKNOWN_FATE
    # A filled order says nothing of whether its position is still open: only the deals do.
    return fate if fate in CONFIRMED_FATES and fate != FILLED else UNKNOWN_FATE
