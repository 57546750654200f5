"""Settlement: what a command's outcome means, told once.

A result from a worker (or, for an outcome that stayed unknown, what the terminal shows afterwards) settles
the command's intent in the state, moves its link as its action says, feeds the retry policy, and is
emitted as one domain event for the history, the log, the run's report and the status board. The ledger
says *which* command settled; this module says what that means. Single-threaded; the clock is injected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from loguru import logger

from config.faults import crash_point
from coordinator.domain.actions import Action, ActionKind
from coordinator.domain.events import (
    CommandFailed,
    CopyModified,
    CopyOpenedAtMarket,
    CopyPlaced,
    CopyRemoved,
    CopyReplaced,
    EventStream,
    OutcomeSettledUnknown,
    PositionClosed,
    PositionLevelsSynced,
)
from coordinator.domain.link_lifecycle import PENDING_STATUSES, LinkMove
from coordinator.domain.retry_policy import RetryPolicy, failure_text
from coordinator.persistence.state import StateStore
from coordinator.runtime.latency import LatencyTracker
from coordinator.runtime.ledger import CommandLedger, InFlight
from coordinator.runtime.views import TerminalView
from protocol import CommandResult, CommandResults, CommandStatus, Snapshot
from protocol.mt5 import PositionType, Retcode, describe_retcode

CopyRemovedHook = Callable[[str, int], None]  # (target, copy ticket): the orphan policy forgets its count
_POSITION_KINDS = frozenset({ActionKind.SLTP, ActionKind.CLOSE, ActionKind.MARKET})
MarketClosedHook = Callable[[TerminalView, str], None]  # (target, symbol): the sessions hold it until a new tick


class Settlement:
    def __init__(self, state: StateStore, ledger: CommandLedger, retries: Mapping[str, RetryPolicy],
                 events: EventStream, clock: Callable[[], float], copy_removed: CopyRemovedHook,
                 market_closed: MarketClosedHook, latency: LatencyTracker | None = None) -> None:
        self._state = state
        self._ledger = ledger
        self._retries = retries
        self._events = events
        self._clock = clock
        self._copy_removed = copy_removed
        self._market_closed = market_closed
        self._latency = latency  # the copies' stages (answered, confirmed) and the metrics' command counts

    def results(self, view: TerminalView, message: CommandResults) -> None:
        answered = self._latency.now() if self._latency is not None else 0.0
        for flight, result in self._ledger.matching(view.name, message.results):
            crash_point("after-result")
            if self._latency is not None:
                self._latency.answered(view.name, flight.command, result, answered)
            self._settle(view, flight, result)

    def _settle(self, view: TerminalView, flight: InFlight, result: CommandResult) -> None:
        action = flight.action
        if result.status is CommandStatus.UNKNOWN:
            flight.unknown_since = self._clock()
            logger.warning("{}: outcome of {} for source #{} is unknown ({}); the next snapshots decide",
                           view.name, action.kind.value, action.source_ticket,
                           result.error_message or describe_retcode(result.retcode))
            return
        self._ledger.close(view.name, flight)
        if result.status is CommandStatus.DONE:
            self._done(view, flight, result)
            return
        reason = failure_text(result)
        self._state.settle_intent(flight.command.command_id, result.status.value, result.retcode)
        self._restore_link_if_untouched(view, action)
        if result.status is CommandStatus.EXPIRED:
            # Nothing was sent: planned again after a short pause, with no failure reported.
            logger.info("{}: {} for source #{} reached the worker after its deadline and was not sent; "
                        "planning again", view.name, action.kind.value, action.source_ticket)
            self._retries[view.name].not_sent(action.source_ticket, self._clock(), flight.fingerprint)
            return
        if result.status is CommandStatus.STALE:
            # Nothing was sent: the terminal moved on (a close done already, in part or whole). The next plan
            # starts from what it shows now; a short pause lets its snapshot arrive first.
            logger.info("{}: {} for source #{} was not sent: {}; planning again from the terminal's state",
                        view.name, action.kind.value, action.source_ticket, result.comment or "the terminal changed")
            self._retries[view.name].not_sent(action.source_ticket, self._clock(), flight.fingerprint)
            return
        if result.retcode == Retcode.MARKET_CLOSED:
            self._market_closed(view, action.symbol)
        self._failed(view.name, flight, result, reason)

    def _restore_link_if_untouched(self, view: TerminalView, action: Action) -> None:
        """A replacement that did not happen leaves the old copy pending: its link is active again (else a
        later plan would read "replacing, copy gone" as licence to place, even if the copy filled)."""
        if action.link_move_on_record is not LinkMove.REPLACE_STARTED or view.snapshot is None:
            return
        if any(order.ticket == action.ticket for order in view.snapshot.orders):
            self._state.move_link(view.name, action.source_ticket, LinkMove.REPLACE_UNDONE)

    def _done(self, view: TerminalView, flight: InFlight, result: CommandResult) -> None:
        action, command_id = flight.action, flight.command.command_id
        target, ticket = view.name, action.source_ticket
        self._retries[target].succeeded(ticket)
        if action.kind in _POSITION_KINDS:
            self._position_done(view, flight, result)
            return
        if action.kind is ActionKind.REMOVE:
            self._state.settle_intent(command_id, "done", result.retcode, result.ticket)
            move = action.link_move_on_done
            if move is not None:
                self._link_removed(target, ticket, action.ticket)
            self._copy_removed(target, action.ticket)
            self._events.emit(CopyRemoved(target=target, source_ticket=ticket, copy_ticket=action.ticket,
                                          reason=action.reason))
            return
        # One transaction: a crash can never leave the intent settled without the link that records the copy.
        self._state.save_link_and_settle(target, action, command_id, result.ticket, result.retcode)
        # Placements and replacements were timed (None for a modification, or when the way was not seen whole).
        stages = self._latency.finish(target, flight.command, result.ticket, view.snapshot) if self._latency else None
        if action.kind is ActionKind.MODIFY:
            self._events.emit(CopyModified(target=target, source_ticket=ticket, copy_ticket=result.ticket,
                                           description=action.describe(), retcode=result.retcode))
        elif action.kind is ActionKind.REPLACE:
            self._events.emit(CopyReplaced(target=target, source_ticket=ticket, old_copy_ticket=action.ticket,
                                           copy_ticket=result.ticket, description=action.describe(),
                                           adjustment=action.adjustment, retcode=result.retcode, stages=stages))
        else:
            self._events.emit(CopyPlaced(target=target, source_ticket=ticket, copy_ticket=result.ticket,
                                         description=action.describe(), adjustment=action.adjustment,
                                         already_there=result.already_existed, retcode=result.retcode,
                                         stages=stages))

    def _position_done(self, view: TerminalView, flight: InFlight, result: CommandResult) -> None:
        """SLTP, CLOSE and MARKET: the intent settles, and the outcome is told with the price obtained."""
        action, command_id = flight.action, flight.command.command_id
        target, ticket = view.name, action.source_ticket
        spec = view.specs.get(action.symbol)
        point = (spec.point or spec.tick_size) if spec is not None else 0.0
        if action.kind is ActionKind.SLTP:
            self._state.settle_intent(command_id, "done", result.retcode, action.ticket)
            self._events.emit(PositionLevelsSynced(target=target, source_ticket=ticket, copy_ticket=action.ticket,
                                                   sl=action.sl, tp=action.tp, detail=action.reason,
                                                   retcode=result.retcode))
        elif action.kind is ActionKind.CLOSE:
            self._state.settle_intent(command_id, "done", result.retcode, action.ticket)
            volume = result.volume or action.volume
            # A buy position closes by selling: a lower price than asked is worse, and the other way round. Asked
            # and got are both the worker's, of the moment it sent (the coordinator's prices may be a second old).
            asked = result.requested_price
            worse = (asked - result.price) if action.order_type == PositionType.BUY else (result.price - asked)
            slippage = worse / point if point and asked and result.price else None
            remaining = max(0.0, round(action.expected_volume - volume, 8))
            if result.already_existed or remaining <= 0:
                self._copy_removed(target, action.ticket)  # closed: no longer an orphan to count
            self._events.emit(PositionClosed(
                target=target, source_ticket=ticket, copy_ticket=action.ticket,
                volume=0.0 if result.already_existed else volume,
                remaining=0.0 if result.already_existed else remaining,
                price=result.price, slippage_points=slippage, reason=action.reason,
                already_closed=result.already_existed, retcode=result.retcode))
        elif result.ticket:  # MARKET, opened: the link now records the position as the copy
            self._state.save_link_and_settle(target, action, command_id, result.ticket, result.retcode)
            self._state.move_link(target, ticket, LinkMove.FILLED)
            worse = (result.price - action.price) if action.order_type == PositionType.BUY else \
                (action.price - result.price)
            slippage = worse / point if point and action.price and result.price else 0.0
            self._events.emit(CopyOpenedAtMarket(
                target=target, source_ticket=ticket, old_copy_ticket=action.ticket, copy_ticket=result.ticket,
                volume=result.volume or action.volume, price=result.price, slippage_points=slippage,
                retcode=result.retcode))
        else:  # MARKET, the price had moved too far: the pending copy was only removed
            self._state.settle_intent(command_id, "done", result.retcode, 0)
            self._link_removed(target, ticket, action.ticket)
            self._copy_removed(target, action.ticket)
            self._events.emit(CopyRemoved(target=target, source_ticket=ticket, copy_ticket=action.ticket,
                                          reason=f"its source order filled; not opened at market: "
                                                 f"{result.comment or 'the price had moved too far'}"))

    def _link_removed(self, target: str, source_ticket: int, copy_ticket: int) -> None:
        """The copier removed ``copy_ticket`` (or found it no longer pending): its link says so, unless the target
        already showed what became of it. A copy that filled (or expired) while its removal was on the way is
        answered "done, nothing to remove", and its link keeps the fate the target's snapshot gave it."""
        link = self._state.links(target).get(source_ticket)
        if link is None or link.copy_ticket != copy_ticket:
            return
        if link.status not in PENDING_STATUSES:
            logger.info("{}: copy #{} of source #{} was already {} when its removal reached the terminal; its link "
                        "stays {}", target, copy_ticket, source_ticket, link.status.value, link.status.value)
            return
        self._state.move_link(target, source_ticket, LinkMove.REMOVED)

    def _failed(self, target: str, flight: InFlight, result: CommandResult, reason: str) -> None:
        action = flight.action
        failure, previous = self._retries[target].refused(action.source_ticket, action.symbol, result, reason,
                                                          self._clock(), flight.fingerprint)
        retcode = result.retcode
        self._events.emit(CommandFailed(
            target=target, source_ticket=action.source_ticket, copy_ticket=action.ticket, kind=action.kind.value,
            status=result.status.value, retcode=retcode, reason=reason, final=failure.final,
            retry_in=failure.retry_at - self._clock(),
            waits_for_market=action.symbol if retcode == Retcode.MARKET_CLOSED else "",
            repeated=previous is not None and previous.message == reason))

    def resolve_unknown(self, view: TerminalView, snapshot: Snapshot) -> None:
        """Settle commands whose fate was unknown, now that the terminal's state (a snapshot, or a heartbeat
        saying the last snapshot still holds) arrived well after the outcome became unknown. Judged on the
        coordinator's own clock: a worker's clock may be minutes off."""
        if view.account_problem:
            return  # another account's orders say nothing about what happened on ours
        for flight, result in self._ledger.unknown_to_settle(view.name, snapshot, self._clock(), view.welcomed_at):
            if result is not None:
                self._settle(view, flight, result)
                continue
            action = flight.action
            self._ledger.close(view.name, flight)
            self._state.settle_intent(flight.command.command_id, "absent")
            self._restore_link_if_untouched(view, action)
            self._events.emit(OutcomeSettledUnknown(target=view.name, source_ticket=action.source_ticket,
                                                    copy_ticket=action.ticket, kind=action.kind.value))

    def worker_exited(self, name: str) -> None:
        """Nothing a dead worker was asked can still be answered: its commands' outcomes are unknown from now
        on, settled from what the terminal shows once a worker reports again (never resent blindly)."""
        for flight in self._ledger.worker_gone(name, self._clock()):
            logger.warning("{}: the worker exited before answering {} for source #{}; its outcome is unknown "
                           "until the terminal is read again", name, flight.action.kind.value,
                           flight.action.source_ticket)

