"""Those who tell of what happened, each from the one stream of events (coordinator/domain/events.py): the history
kept in copier.db, the log a trader reads, and the run's report behind the ``--once`` summary."""

from __future__ import annotations

from collections.abc import Callable
from functools import singledispatchmethod

from loguru import logger

from coordinator.domain.events import (
    CommandFailed,
    CopyConfirmed,
    CopyFoundOnTarget,
    CopyLeft,
    CopyModified,
    CopyOpenedAtMarket,
    CopyPlaced,
    CopyRemoved,
    CopyReplaced,
    Event,
    OperationalEvent,
    OrderSkipped,
    OrphanDecided,
    OutcomeSettledUnknown,
    PositionClosed,
    PositionLevelsSynced,
    RiskGuardTripped,
    SourceOrderEnded,
    TargetControlChanged,
)
from coordinator.domain.report import TargetReport, trim
from coordinator.persistence.state import StateStore


def _with_adjustment(description: str, adjustment: str) -> str:
    return description + (f" ({adjustment})" if adjustment else "")


class HistoryWriter:
    """Every outcome as a row of the ``events`` table (``mt5-copier history``), in the words it had before."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    def __call__(self, event: Event) -> None:
        if not isinstance(event, OperationalEvent):  # the copier's own health: the log and the alerts tell it
            _handler(HistoryWriter, "_write", event)(self, event)

    @singledispatchmethod
    def _write(self, event: Event) -> None:
        raise TypeError(f"no history row for {type(event).__name__}")

    @_write.register
    def _(self, event: CopyPlaced) -> None:
        self._state.record_event(event.target, event.source_ticket, "adopted" if event.already_there else "placed",
                                 "done", copy_ticket=event.copy_ticket, retcode=event.retcode,
                                 message=_with_adjustment(event.description, event.adjustment),
                                 stages=event.stages.to_json() if event.stages is not None else "")

    @_write.register
    def _(self, event: CopyConfirmed) -> None:
        self._state.complete_event_stages(event.target, event.copy_ticket, event.stages.to_json())

    @_write.register
    def _(self, event: CopyModified) -> None:
        self._state.record_event(event.target, event.source_ticket, "modified", "done", copy_ticket=event.copy_ticket,
                                 retcode=event.retcode, message=event.description)

    @_write.register
    def _(self, event: CopyReplaced) -> None:
        self._state.record_event(event.target, event.source_ticket, "replaced", "done", copy_ticket=event.copy_ticket,
                                 retcode=event.retcode, message=f"old copy #{event.old_copy_ticket}; now "
                                 f"{_with_adjustment(event.description, event.adjustment)}",
                                 stages=event.stages.to_json() if event.stages is not None else "")

    @_write.register
    def _(self, event: CopyRemoved) -> None:
        self._state.record_event(event.target, event.source_ticket, "removed", "done", copy_ticket=event.copy_ticket,
                                 message=event.reason)

    @_write.register
    def _(self, event: CommandFailed) -> None:
        self._state.record_event(event.target, event.source_ticket, event.kind, event.status,
                                 copy_ticket=event.copy_ticket, retcode=event.retcode, message=event.reason)

    @_write.register
    def _(self, event: OutcomeSettledUnknown) -> None:
        self._state.record_event(event.target, event.source_ticket, event.kind, "unknown",
                                 copy_ticket=event.copy_ticket,
                                 message="outcome was unknown; the next plan works from what the terminal shows")

    @_write.register
    def _(self, event: CopyFoundOnTarget) -> None:
        self._state.record_event(event.target, event.source_ticket, "adopted", "done", copy_ticket=event.copy_ticket,
                                 message="copy found on the target with the copier's tag")

    @_write.register
    def _(self, event: CopyLeft) -> None:
        self._state.record_event(event.target, event.source_ticket, "copy-" + event.status.value, "noted",
                                 copy_ticket=event.copy_ticket, message=event.detail)

    @_write.register
    def _(self, event: OrphanDecided) -> None:
        action, outcome = ("orphan-kill", "decided") if event.kill else ("orphan-preserved", "kept")
        self._state.record_event(event.target, event.source_ticket, action, outcome, copy_ticket=event.copy_ticket,
                                 message=event.why)

    @_write.register
    def _(self, event: OrderSkipped) -> None:
        skip = event.skip
        if not skip.reason.waiting:  # a wait resolves by itself: not history
            self._state.record_event(event.target, skip.source_ticket, "skipped", skip.reason.name.lower(),
                                     message=_skip_text(event))

    @_write.register
    def _(self, event: SourceOrderEnded) -> None:
        self._state.record_event(event.target, event.source_ticket, "source", event.fate,
                                 message=f"source order {event.symbol} was {event.fate}")

    @_write.register
    def _(self, event: PositionLevelsSynced) -> None:
        self._state.record_event(event.target, event.source_ticket, "position-sltp", "done",
                                 copy_ticket=event.copy_ticket, retcode=event.retcode, message=event.detail)

    @_write.register
    def _(self, event: PositionClosed) -> None:
        action = "position-partial-close" if event.partial else "position-close"
        if event.already_closed:
            self._state.record_event(event.target, event.source_ticket, action, "already closed",
                                     copy_ticket=event.copy_ticket, message=event.reason)
            return
        self._state.record_event(event.target, event.source_ticket, action, "done", copy_ticket=event.copy_ticket,
                                 retcode=event.retcode, message=f"{_closed_text(event)}: {event.reason}")

    @_write.register
    def _(self, event: CopyOpenedAtMarket) -> None:
        self._state.record_event(event.target, event.source_ticket, "opened-at-market", "done",
                                 copy_ticket=event.copy_ticket, retcode=event.retcode,
                                 message=f"pending copy #{event.old_copy_ticket} replaced by a position of "
                                         f"{event.volume:g} lots at {event.price:g} (slippage "
                                         f"{event.slippage_points:+.0f} points from the source's fill)")

    @_write.register
    def _(self, event: RiskGuardTripped) -> None:
        self._state.record_event(event.target, 0, f"risk-{event.guard}", "cleared" if event.cleared else "tripped",
                                 message=f"{event.reason}: {event.action}")

    @_write.register
    def _(self, event: TargetControlChanged) -> None:
        pass  # a recorded control wrote its own row (coordinator/persistence/controls.py); min_equity's, above


class OutcomeLog:
    """The log lines a trader reads for each outcome."""

    def __call__(self, event: Event) -> None:
        _handler(OutcomeLog, "_log", event)(self, event)

    @singledispatchmethod
    def _log(self, event: Event) -> None:
        pass  # told elsewhere, or not a log line of its own (orphan decisions come with their evidence)

    @_log.register
    def _(self, event: CopyPlaced) -> None:
        logger.success("{}: source #{} copied as #{}: {}{}", event.target, event.source_ticket, event.copy_ticket,
                       _with_adjustment(event.description, event.adjustment),
                       " - it was already there" if event.already_there else "")

    @_log.register
    def _(self, event: CopyConfirmed) -> None:
        logger.debug("{}: copy #{} of source #{} confirmed: {}", event.target, event.copy_ticket, event.source_ticket,
                     event.stages.describe())

    @_log.register
    def _(self, event: CopyModified) -> None:
        logger.success("{}: copy #{} of source #{} modified: {}", event.target, event.copy_ticket,
                       event.source_ticket, event.description)

    @_log.register
    def _(self, event: CopyReplaced) -> None:
        logger.success("{}: copy #{} of source #{} replaced by #{} ({})", event.target, event.old_copy_ticket,
                       event.source_ticket, event.copy_ticket, _with_adjustment(event.description, event.adjustment))

    @_log.register
    def _(self, event: CopyRemoved) -> None:
        logger.success("{}: removed copy #{} of source #{}{}", event.target, event.copy_ticket, event.source_ticket,
                       f" ({event.reason})" if event.reason else "")

    @_log.register
    def _(self, event: CommandFailed) -> None:
        if event.repeated:
            return  # once per cause, not once per cycle
        what = f"{event.target}: {event.kind} of the copy of source #{event.source_ticket}"
        if event.final:
            logger.error("{} failed: {} (the broker will refuse it again as it is; tried again in {:.0f}s or when "
                         "the source order changes)", what, event.reason, event.retry_in)
        elif event.waits_for_market:
            logger.warning("{} waits: {}; sent when {} trades again", what, event.reason, event.waits_for_market)
        else:
            logger.warning("{} was refused for now: {}; retrying in {:.0f}s", what, event.reason, event.retry_in)

    @_log.register
    def _(self, event: OutcomeSettledUnknown) -> None:
        logger.info("{}: {} for source #{} settled from the terminal's state; planning again", event.target,
                    event.kind, event.source_ticket)

    @_log.register
    def _(self, event: CopyFoundOnTarget) -> None:
        # Expected after a lost state file; otherwise someone else placed an order with the copier's tag.
        (logger.info if event.expected else logger.warning)(
            "{}: found the copy #{} of source #{} on the terminal (no record of it in the state); tracking it",
            event.target, event.copy_ticket, event.source_ticket)

    @_log.register
    def _(self, event: CopyLeft) -> None:
        logger.info("{}: source #{}: {}", event.target, event.source_ticket, event.detail)

    @_log.register
    def _(self, event: OrderSkipped) -> None:
        skip = event.skip
        if skip.reason.waiting:
            logger.debug("{}: {} {}: {}", event.target, _tickets(skip.source_ticket, event.others), skip.symbols(),
                         _skip_text(event))
        else:
            logger.warning("{}: not copying source #{} {}: {}", event.target, skip.source_ticket, skip.symbols(),
                           _skip_text(event))

    @_log.register
    def _(self, event: PositionLevelsSynced) -> None:
        logger.success("{}: position #{} of source #{} follows its SL/TP: {}", event.target, event.copy_ticket,
                       event.source_ticket, event.detail)

    @_log.register
    def _(self, event: PositionClosed) -> None:
        if event.already_closed:
            logger.info("{}: position #{} of source #{} was closed already ({})", event.target, event.copy_ticket,
                        event.source_ticket, event.reason)
            return
        logger.success("{}: position #{} of source #{}: {} ({})", event.target, event.copy_ticket,
                       event.source_ticket, _closed_text(event), event.reason)

    @_log.register
    def _(self, event: CopyOpenedAtMarket) -> None:
        logger.success("{}: source #{} filled; its pending copy #{} was opened at market as position #{}: {:g} lots "
                       "at {:g} (slippage {:+.0f} points)", event.target, event.source_ticket, event.old_copy_ticket,
                       event.copy_ticket, event.volume, event.price, event.slippage_points)


class RunReport:
    """What happened on each target during this run: the ``--once`` summary and the demo read it."""

    def __init__(self, reports: dict[str, TargetReport]) -> None:
        self._reports = reports

    def __call__(self, event: Event) -> None:
        if isinstance(event, OperationalEvent):  # of no target's copies
            return
        report = self._reports.get(event.target)
        if report is not None:
            _handler(RunReport, "_count", event)(self, event, report)

    @singledispatchmethod
    def _count(self, event: Event, report: TargetReport) -> None:
        pass

    @_count.register
    def _(self, event: CopyPlaced, report: TargetReport) -> None:
        done = report.adopted if event.already_there else report.placed
        done[event.source_ticket] = event.copy_ticket
        trim(done)
        self._adjusted(event.source_ticket, event.adjustment, report)

    @_count.register
    def _(self, event: CopyModified, report: TargetReport) -> None:
        report.modified[event.source_ticket] = report.modified.get(event.source_ticket, 0) + 1
        trim(report.modified)

    @_count.register
    def _(self, event: CopyReplaced, report: TargetReport) -> None:
        report.replaced[event.source_ticket] = event.copy_ticket
        trim(report.replaced)
        self._adjusted(event.source_ticket, event.adjustment, report)

    @_count.register
    def _(self, event: CopyRemoved, report: TargetReport) -> None:
        report.removed[event.source_ticket] = event.reason
        trim(report.removed)

    @_count.register
    def _(self, event: PositionLevelsSynced, report: TargetReport) -> None:
        report.levels_synced[event.source_ticket] = report.levels_synced.get(event.source_ticket, 0) + 1
        trim(report.levels_synced)

    @_count.register
    def _(self, event: PositionClosed, report: TargetReport) -> None:
        if event.already_closed:
            return
        if event.partial:
            report.partly_closed[event.source_ticket] = report.partly_closed.get(event.source_ticket, 0) + 1
            trim(report.partly_closed)
        else:
            report.closed[event.source_ticket] = event.reason
            trim(report.closed)

    @_count.register
    def _(self, event: CopyOpenedAtMarket, report: TargetReport) -> None:
        report.opened_at_market[event.source_ticket] = event.copy_ticket
        trim(report.opened_at_market)

    @staticmethod
    def _adjusted(source_ticket: int, adjustment: str, report: TargetReport) -> None:
        if adjustment:
            report.adjusted[source_ticket] = adjustment
            trim(report.adjusted)


def _handler(owner: type, method: str, event: Event) -> Callable[..., None]:
    """The function ``owner``'s singledispatchmethod ``method`` runs for ``event``, found by the event's type in
    its registry (cached by type). Calling ``self.method(event)`` would do the same through the descriptor, which
    builds a new wrapper (functools.update_wrapper) at every access: three subscribers per event made that a
    twentieth of the coordinator's time per copy."""
    dispatcher: singledispatchmethod[None] = vars(owner)[method]
    return dispatcher.dispatcher.dispatch(type(event))


def _tickets(first: int, others: tuple[int, ...], shown: int = 5) -> str:
    """"source #5", or "5 source orders (#5, #6, #7, #8, #9)", or "12 source orders (#5, #6, #7, #8, #9, ...)"."""
    if not others:
        return f"source #{first}"
    tickets = (first, *others)
    listed = ", ".join(f"#{ticket}" for ticket in tickets[:shown]) + (", ..." if len(tickets) > shown else "")
    return f"{len(tickets)} source orders ({listed})"


def _skip_text(event: OrderSkipped) -> str:
    skip = event.skip
    return f"{skip.reason.value}: {skip.detail}" if skip.detail else skip.reason.value


def _closed_text(event: PositionClosed) -> str:
    slippage = f" (slippage {event.slippage_points:+.0f} points)" if event.slippage_points is not None else ""
    left = f", {event.remaining:g} left" if event.partial else ""
    return f"closed {event.volume:g} lots at {event.price:g}{slippage}{left}"
