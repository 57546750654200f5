"""The coordinator's engine: turns worker reports into plans, plans into commands, results into state.

Level-triggered: snapshots are the truth and commands are only the delta towards them. A lost command or a
lost result is repaired by the next plan, never by resending. Single-threaded: every method runs on the
coordinator's one loop thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping

import msgspec
from loguru import logger

from config import AppConfig, TargetConfig
from config.faults import crash_point
from coordinator import __version__
from coordinator.clocks import estimate_offset
from coordinator.desired import TargetContext
from coordinator.event_subscribers import HistoryWriter, OutcomeLog, RunReport
from coordinator.events import (
    CommandFailed,
    CopyFoundOnTarget,
    CopyLeft,
    CopyModified,
    CopyPlaced,
    CopyRemoved,
    CopyReplaced,
    EventStream,
    OrderSkipped,
    OrphanDecided,
    OutcomeSettledUnknown,
    SourceOrderEnded,
)
from coordinator.ledger import CommandLedger, InFlight
from coordinator.link_lifecycle import PENDING_STATUSES, LinkMove
from coordinator.orphans import CONFIRMED_FATES, UNKNOWN_FATE, OrphanCandidate, OrphanTracker, source_fate
from coordinator.planner import (
    Link,
    Skip,
    SkipReason,
    TargetInputs,
    TargetPlan,
    find_orphans,
    our_copies,
    plan_target,
)
from coordinator.report import TargetReport, trim
from coordinator.retry_policy import RetryPolicy, failure_text, fingerprint
from coordinator.sizing import Accounts
from coordinator.state import StateStore
from coordinator.status import StatusBoard, TerminalStatus
from coordinator.status_projection import disabled_row, orphan_states, terminal_row
from coordinator.views import TerminalView
from protocol import (
    PROTOCOL_MINOR,
    ClosedOrder,
    Command,
    CommandBatch,
    CommandKind,
    CommandResult,
    CommandResults,
    CommandStatus,
    ErrorMessage,
    Goodbye,
    Heartbeat,
    Hello,
    HistoryReport,
    HistoryRequest,
    Message,
    PendingOrder,
    Snapshot,
    SymbolRequest,
    SymbolSpecs,
    Welcome,
)
from protocol.mt5 import (
    COPIER_ORDER_STATES,
    OrderState,
    Retcode,
    describe_fate,
    describe_order_type,
    describe_retcode,
)

STATUS_INTERVAL_SECONDS = 1.0
OFFSET_WINDOW_SECONDS = 6 * 3600.0  # a clock change (daylight saving) is accepted after this long
# Worker error codes that will not mend themselves within seconds: a --once run stops waiting for that terminal.
DEFINITE_TERMINAL_FAILURES = frozenset({"terminal-not_found", "terminal-authorization_failed",
                                        "terminal-ipc_timeout"})


SendFunction = Callable[[str, Message], bool]


class Engine:
    def __init__(self, config: AppConfig, state: StateStore, send: SendFunction,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.state = state
        self._send = send
        self._clock = clock
        self.source = TerminalView(config.source)
        self.targets = {target.name: TerminalView(target.terminal, target) for target in config.targets
                        if target.copy.enabled}
        self.views = {self.source.name: self.source, **self.targets}
        for view in self.views.values():
            if view.config.server_utc_offset is not None:
                view.server_offset = round(view.config.server_utc_offset * 3600)
        self.ledger = CommandLedger(state, self.targets)
        self.in_flight = self.ledger.in_flight  # read-only view for the summary and the runner
        self.reports: dict[str, TargetReport] = {name: TargetReport() for name in self.targets}
        self.retries = {name: RetryPolicy(report.failures) for name, report in self.reports.items()}
        # Every outcome goes out once, here; the history, the log and this run's report each take it from there.
        self.events = EventStream()
        self.events.subscribe(HistoryWriter(state))
        self.events.subscribe(OutcomeLog())
        self.events.subscribe(RunReport(self.reports))
        self.orphan_trackers = {name: OrphanTracker(name, view.target.copy.orphans, view.target.copy.keep_filled_copies)
                                for name, view in self.targets.items() if view.target is not None}
        for name, tracker in self.orphan_trackers.items():
            tracker.restore(state.orphan_counts(name))
        self._preserved_reported: dict[tuple[str, int], None] = {}  # insertion-ordered, trimmed
        self._kill_evidence: dict[tuple[str, int], str] = {}  # (target, copy ticket) -> why it is removed
        self._removal_reasons: dict[tuple[str, int], str] = {}  # (target, source ticket) -> why, until done
        self.status_board = StatusBoard(state.connection)
        self._next_status = 0.0
        self._next_prune = self._clock() + 86_400.0
        self._dirty: set[str] = set()
        self._frozen_reason = ""
        self._source_ever_fresh = False
        self._logged_skips: dict[tuple[str, int], str] = {}
        self._reported_source_fates: dict[int, None] = {}  # insertion-ordered, trimmed
        self._next_heartbeat = 0.0
        if state.rebuilt:
            logger.critical("the state was rebuilt: copies are recognised again by their tags on the terminals")
        elif state.created:
            logger.warning("no state file at {}: starting with an empty state. If the copier ran here before, its "
                           "copies are recognised by their tags on the terminals and nothing is placed twice",
                           state.path)
        self._recover_unsettled_intents()
        self._report_disabled_targets()

    def _report_disabled_targets(self) -> None:
        for target in self.config.targets:
            left = self.unmanaged_copies(target.name) if not target.copy.enabled else 0
            if left:
                logger.warning("target {} is disabled (enabled = false) and still holds {} copies placed by the "
                               "copier: they are left as they are, unmanaged (no edits, no removals, no orphan "
                               "policy) until it is enabled again", target.name, left)

    # ---- start-up ------------------------------------------------------------------------------

    def _recover_unsettled_intents(self) -> None:
        """Intents written before a crash may or may not have reached the broker: hold them as unknown
        until the target's first snapshot after this start shows what the terminal holds."""
        _, held = self.ledger.recover(self._clock())
        for target, command in held:
            logger.warning("{}: {} for source #{} was in flight when the coordinator stopped; checking the "
                           "terminal before doing anything else for it", target, command.kind.value,
                           command.source_ticket)

    # ---- messages ------------------------------------------------------------------------------

    def on_message(self, name: str, message: Message) -> None:
        view = self.views.get(name)
        if view is None:
            logger.error("a worker calling itself {!r} connected, but no terminal has that name", name)
            self._send(name, ErrorMessage(code="unknown-terminal", fatal=True,
                                          message=f"no terminal named {name!r} in the coordinator's config"))
            return
        now = self._clock()
        view.last_seen = now
        if isinstance(message, Hello):
            self._on_hello(view, message)
        elif isinstance(message, ErrorMessage):
            if message.message != view.last_error:
                logger.error("{}: {}", name, message.message)
            view.last_error = message.message
            if message.code.startswith("terminal-"):
                view.terminal_link_ok = False
            if message.code in DEFINITE_TERMINAL_FAILURES:
                view.definite_failure = message.message
        elif isinstance(message, Goodbye):
            logger.info("{}: worker is leaving: {}", name, message.reason)
            view.online = False
            view.forget_boot()
        elif not view.welcomed:
            self._send(name, ErrorMessage(code="hello-required", message="send hello first"))
        elif isinstance(message, Snapshot):
            self._on_snapshot(view, message, now)
        elif isinstance(message, Heartbeat):
            self._on_heartbeat(view, message, now)
        elif isinstance(message, CommandResults):
            self._on_results(view, message)
        elif isinstance(message, SymbolSpecs):
            self._on_specs(view, message)
        elif isinstance(message, HistoryReport):
            self._on_history(view, message)
        else:
            logger.warning("{}: ignored a {} message: workers do not send it", name, type(message).__name__)

    def _on_hello(self, view: TerminalView, hello: Hello) -> None:
        config = view.config
        problems = []
        if hello.terminal != view.name:
            problems.append(f"calls itself {hello.terminal!r} on the link of {view.name!r}")
        if hello.role != config.role.value:
            problems.append(f"runs as {hello.role}, configured as {config.role.value}")
        if problems:
            message = f"worker {view.name} " + "; ".join(problems)
            logger.error("{}: refusing it", message)
            view.last_error = message
            self._send(view.name, ErrorMessage(code="identity-mismatch", message=message, fatal=True))
            return
        # A terminal on another account is welcomed, not refused: a person may log back in, and the worker
        # keeps reporting. Until then every decision that depends on it is frozen (see _note_account).
        self._note_account(view, hello.account.login, hello.account.server)
        if view.welcomed and view.boot_id and view.boot_id != hello.boot_id:
            logger.warning("{}: a new worker process (boot {}) replaced boot {}", view.name, hello.boot_id,
                           view.boot_id)
        if view.boot_id != hello.boot_id:
            view.forget_boot()
            view.specs.clear()
            view.missing_symbols.clear()
        view.boot_id = hello.boot_id
        view.hello = hello
        view.welcomed = True
        view.online = True
        view.terminal_link_ok = True
        view.last_error = view.account_problem
        view.definite_failure = ""
        view.welcomed_at = self._clock()
        self._update_clock(view, hello.server_time, hello.sent_at_ms)
        logger.info("{} ({}) connected: account {}@{}, {} terminal, balance {:.2f} {}", view.name,
                    hello.role, hello.account.login, hello.account.server, hello.backend, hello.account.balance,
                    hello.account.currency)
        self._send(view.name, Welcome(
            coordinator_version=__version__, protocol_minor=PROTOCOL_MINOR,
            heartbeat_interval=self.config.coordinator.heartbeat_interval,
            worker_timeout=self.config.coordinator.worker_timeout,
        ))

    def _on_snapshot(self, view: TerminalView, snapshot: Snapshot, now: float) -> None:
        if snapshot.boot_id != view.boot_id:
            self._send(view.name, ErrorMessage(code="hello-required", message="snapshot from an unknown boot"))
            return
        if view.snapshot is not None and snapshot.seq <= view.snapshot.seq:
            return  # out of order or repeated: the newer one already applies
        self._note_account(view, snapshot.login, snapshot.server)
        previous = view.snapshot
        view.snapshot = snapshot
        view.confirmed_at = now
        view.online = True
        for record in snapshot.closed:
            # A worker's "not in the history yet" never overwrites an answer already had (a record, or none).
            if record.state != OrderState.NOT_IN_HISTORY_YET or record.ticket not in view.closed:
                view.closed[record.ticket] = record
        trim(view.closed)
        if view is self.source:
            self._report_source_fates(snapshot)
            if previous is None or previous.orders != snapshot.orders:
                self._dirty.update(self.targets)
        else:
            self._resolve_unknown_outcomes(view, snapshot)
            self._dirty.add(view.name)

    def _note_account(self, view: TerminalView, login: int, server: str) -> None:
        """The account a terminal reports, checked against its config on every hello and snapshot. A source on
        the wrong account would have its orders copied everywhere (and the targets' copies orphaned); a target
        on the wrong account would receive trades meant for another: both freeze until the account is back."""
        if not view.report_account(login, server):
            return
        if view.account_problem:
            logger.error("{}", view.account_problem)
            view.last_error = view.account_problem
        else:
            logger.info("{}: logged into the configured account {} again; copying resumes", view.name, view.account)
            if view.last_error.startswith(f"terminal {view.name} is logged into account"):
                view.last_error = ""
        self._mark_dirty(view)

    def _on_heartbeat(self, view: TerminalView, message: Heartbeat, now: float) -> None:
        if message.boot_id != view.boot_id:
            self._send(view.name, ErrorMessage(code="hello-required", message="heartbeat from an unknown boot"))
            return
        if not view.online:
            logger.info("{}: worker is back", view.name)
            view.online = True
        # The worker's clock against ours (to within the link's latency): deadlines are sent in its clock.
        view.clock_skew_ms = message.sent_at_ms - _now_ms()
        snapshot = view.snapshot
        seq = snapshot.seq if snapshot is not None else 0
        if snapshot is not None and message.last_seq == seq:
            view.confirmed_at = now
            if view is not self.source:
                # A quiet terminal sends no snapshots; its heartbeat says the last one still holds.
                self._resolve_unknown_outcomes(view, snapshot)
        elif message.last_seq > seq:
            # A snapshot was lost on the way (a reconnect): without it this terminal would stay stale.
            self._send(view.name, ErrorMessage(code="snapshot-required", message=f"last snapshot seen: {seq}"))
        if view.terminal_link_ok != message.connected:
            view.terminal_link_ok = message.connected
            self._dirty.add(view.name)
        for quote in message.quotes:
            view.quotes[quote.symbol] = quote
            if quote.symbol in view.closed_markets:
                last_tick = view.closed_markets[quote.symbol]
                if last_tick is None:
                    view.closed_markets[quote.symbol] = quote.time  # the first tick seen: what "newer" means
                elif quote.time > last_tick:
                    self._market_opened(view, quote.symbol)
        self._update_clock(view, message.server_time, message.sent_at_ms)

    def _update_clock(self, view: TerminalView, server_time: int, sent_at_ms: int) -> None:
        """A tick's time can only be old, never early: the largest estimate of the last hours is the truth
        (a quiet market would otherwise pull the offset down). Measured against our own clock."""
        if view.config.server_utc_offset is not None or not server_time:
            return
        now = self._clock()
        estimate = estimate_offset(server_time, time.time())
        if view.server_offset is None or estimate > view.server_offset \
                or now - view.offset_measured_at > OFFSET_WINDOW_SECONDS:
            if estimate != view.server_offset:
                logger.info("{}: broker server clock runs at UTC{:+.2f}h", view.name, estimate / 3600)
            view.server_offset = estimate
            view.offset_measured_at = now
        elif estimate == view.server_offset:
            view.offset_measured_at = now

    def _on_specs(self, view: TerminalView, message: SymbolSpecs) -> None:
        for spec in message.specs:
            view.specs[spec.name] = spec
            view.missing_symbols.discard(spec.name)
            view.requests.symbol_answered(spec.name)
        for name in message.missing:
            if name not in view.missing_symbols:
                logger.warning("{}: symbol {} does not exist on this terminal", view.name, name)
            view.missing_symbols.add(name)
            view.requests.symbol_answered(name)
        self._mark_dirty(view)

    def _on_history(self, view: TerminalView, message: HistoryReport) -> None:
        for record in message.orders:
            view.closed[record.ticket] = record
            view.requests.history_found(record.ticket)
        now = self._clock()
        for ticket in message.unknown:
            view.closed[ticket] = ClosedOrder(ticket=ticket, symbol="", type=0, state=OrderState.NO_RECORD, magic=0,
                                              comment="")
            view.requests.history_has_no_record(ticket, now)
        self._mark_dirty(view)

    def _report_source_fates(self, snapshot: Snapshot) -> None:
        """Record once what became of each source order that left the pending list."""
        for record in snapshot.closed:
            if record.state in COPIER_ORDER_STATES or record.ticket in self._reported_source_fates:
                continue  # no history record: nothing to report yet
            self._reported_source_fates[record.ticket] = None
            trim(self._reported_source_fates)
            fate = describe_fate(record.state)
            logger.info("source order #{} {} was {}", record.ticket, record.symbol, fate)
            for name in self.targets:
                if record.ticket in self.state.links(name):
                    self.events.emit(SourceOrderEnded(target=name, source_ticket=record.ticket, symbol=record.symbol,
                                                      fate=fate))

    # ---- results -------------------------------------------------------------------------------

    def _on_results(self, view: TerminalView, message: CommandResults) -> None:
        for flight, result in self.ledger.matching(view.name, message.results):
            crash_point("after-result")
            self._settle(view, flight, result)
        self._dirty.add(view.name)

    def _settle(self, view: TerminalView, flight: InFlight, result: CommandResult) -> None:
        command = flight.command
        if result.status is CommandStatus.UNKNOWN:
            flight.unknown_since = self._clock()
            logger.warning("{}: outcome of {} for source #{} is unknown ({}); the next snapshots decide",
                           view.name, command.kind.value, command.source_ticket,
                           result.error_message or describe_retcode(result.retcode))
            return
        self.ledger.close(view.name, flight)
        if result.status is CommandStatus.DONE:
            self._settle_done(view, command, result, flight.adjustment)
            return
        reason = failure_text(result)
        self.state.settle_intent(command.command_id, result.status.value, result.retcode)
        self._restore_link_if_untouched(view, command)
        if result.status is CommandStatus.EXPIRED:
            # Nothing was sent: planned again after a short pause, with no failure reported.
            logger.info("{}: {} for source #{} reached the worker after its deadline and was not sent; "
                        "planning again", view.name, command.kind.value, command.source_ticket)
            self.retries[view.name].not_sent(command.source_ticket, self._clock(), flight.fingerprint)
            return
        if result.retcode == Retcode.MARKET_CLOSED:
            self._market_closed(view, command)
        self._record_failure(view.name, command, result, reason, fingerprint=flight.fingerprint)

    def _restore_link_if_untouched(self, view: TerminalView, command: Command) -> None:
        """A replacement that did not happen leaves the old copy pending: its link is active again (else a
        later plan would read "replacing, copy gone" as licence to place, even if the copy filled)."""
        if command.kind is not CommandKind.REPLACE or view.snapshot is None:
            return
        if any(order.ticket == command.ticket for order in view.snapshot.orders):
            self.state.move_link(view.name, command.source_ticket, LinkMove.REPLACE_UNDONE)

    def _settle_done(self, view: TerminalView, command: Command, result: CommandResult, adjustment: str = "") -> None:
        target = view.name
        ticket = command.source_ticket
        self.retries[target].succeeded(ticket)
        if command.kind is CommandKind.REMOVE:
            self.state.settle_intent(command.command_id, "done", result.retcode, result.ticket)
            link = self.state.links(target).get(ticket)
            if link is not None and link.copy_ticket == command.ticket:
                # Only the linked copy's removal ends the link; removing a duplicate leaves the kept copy linked.
                self.state.move_link(target, ticket, LinkMove.REMOVED)
            tracker = self.orphan_trackers[target]
            if command.ticket in tracker.counts():
                tracker.forget(command.ticket)
                self.state.save_orphan_counts(target, tracker.counts())
            self.events.emit(CopyRemoved(target=target, source_ticket=ticket, copy_ticket=command.ticket,
                                         reason=self._removal_reasons.pop((target, ticket), "")))
            return
        # One transaction: a crash can never leave the intent settled without the link that records the copy.
        self.state.save_link_and_settle(target, command, result.ticket, result.retcode)
        description = _describe_copy(command)
        if command.kind is CommandKind.MODIFY:
            self.events.emit(CopyModified(target=target, source_ticket=ticket, copy_ticket=result.ticket,
                                          description=description, retcode=result.retcode))
        elif command.kind is CommandKind.REPLACE:
            self.events.emit(CopyReplaced(target=target, source_ticket=ticket, old_copy_ticket=command.ticket,
                                          copy_ticket=result.ticket, description=description, adjustment=adjustment,
                                          retcode=result.retcode))
        else:
            self.events.emit(CopyPlaced(target=target, source_ticket=ticket, copy_ticket=result.ticket,
                                        description=description, adjustment=adjustment,
                                        already_there=result.already_existed, retcode=result.retcode))

    def _market_closed(self, view: TerminalView, command: Command) -> None:
        """The broker said the market of ``command.symbol`` is closed: nothing more is sent for that symbol on
        this target until a tick newer than the refusal shows the session open (see _on_heartbeat). A closed
        market makes no ticks, so "newer" is measured from the broker's clock at the refusal when it is known
        (a second's grace for clocks and whole-second tick times), else from the last tick seen."""
        if command.symbol in view.closed_markets:
            return
        quote = view.quotes.get(command.symbol)
        last_tick = quote.time if quote is not None else None
        if view.server_offset is not None:
            refused_at = int(time.time()) + view.server_offset - 1
            last_tick = max(last_tick or 0, refused_at)
        view.closed_markets[command.symbol] = last_tick
        logger.warning("{}: the market of {} is closed; what waits for it is sent as soon as its next tick shows "
                       "the session open", view.name, command.symbol)

    def _market_opened(self, view: TerminalView, symbol: str) -> None:
        del view.closed_markets[symbol]
        logger.info("{}: {} trades again (a new tick); sending what waited for its session", view.name, symbol)
        if view.name in self.retries:
            self.retries[view.name].market_open(symbol, self._clock())
        self._mark_dirty(view)

    def _record_failure(self, target: str, command: Command, result: CommandResult, reason: str, *,
                        fingerprint: tuple = ()) -> None:
        failure, previous = self.retries[target].refused(command.source_ticket, command.symbol, result, reason,
                                                         self._clock(), fingerprint)
        retcode, final, delay = result.retcode, failure.final, failure.retry_at - self._clock()
        self.events.emit(CommandFailed(
            target=target, source_ticket=command.source_ticket, copy_ticket=command.ticket, kind=command.kind.value,
            status=result.status.value, retcode=retcode, reason=reason, final=final, retry_in=delay,
            waits_for_market=command.symbol if retcode == Retcode.MARKET_CLOSED else "",
            repeated=previous is not None and previous.message == reason))

    def _resolve_unknown_outcomes(self, view: TerminalView, snapshot: Snapshot) -> None:
        """Settle commands whose fate was unknown, now that the terminal's state (a snapshot, or a heartbeat
        saying the last snapshot still holds) arrived well after the outcome became unknown. Judged on the
        coordinator's own clock: a worker's clock may be minutes off."""
        if view.account_problem:
            return  # another account's orders say nothing about what happened on ours
        for flight, result in self.ledger.unknown_to_settle(view.name, snapshot, self._clock(), view.welcomed_at):
            if result is not None:
                self._settle(view, flight, result)
                continue
            command = flight.command
            self.ledger.close(view.name, flight)
            self.state.settle_intent(command.command_id, "absent")
            self._restore_link_if_untouched(view, command)
            self.events.emit(OutcomeSettledUnknown(target=view.name, source_ticket=command.source_ticket,
                                                   copy_ticket=command.ticket, kind=command.kind.value))

    def worker_exited(self, name: str, code: int) -> None:
        """The worker process of ``name`` is gone (the supervisor saw it exit). Nothing it was asked to do can
        still be answered: its commands' outcomes are unknown from now on, settled from what the terminal shows
        once a worker reports again (never resent blindly)."""
        view = self.views.get(name)
        if view is None:
            return
        view.online = False
        view.forget_boot()
        for flight in self.ledger.worker_gone(name, self._clock()):
            logger.warning("{}: the worker exited before answering {} for source #{}; its outcome is unknown "
                           "until the terminal is read again", name, flight.command.kind.value,
                           flight.command.source_ticket)
        if code != 0:
            view.last_error = f"worker exited with code {code}" + (f" ({view.last_error})" if view.last_error else "")
            report = self.reports.get(name)
            if report is not None:
                report.unavailable = view.last_error

    # ---- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self._clock()
        coordinator = self.config.coordinator
        for view in self.views.values():
            if view.online and now - view.last_seen > coordinator.worker_timeout:
                view.online = False
                logger.warning("{}: worker silent for {:.1f}s; nothing depending on it is decided until it is back",
                               view.name, now - view.last_seen)
        for name, flight in self.ledger.timed_out(now, coordinator.command_timeout):
            logger.warning("{}: no answer to {} for source #{} after {:.0f}s; its outcome is unknown", name,
                           flight.command.kind.value, flight.command.source_ticket, now - flight.sent_at)
        if now >= self._next_prune:  # weeks without a restart: trim the history once a day
            self._next_prune = now + 86_400.0
            self.state.prune()
        if now >= self._next_status:
            self._next_status = now + STATUS_INTERVAL_SECONDS
            self.publish_status()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + coordinator.heartbeat_interval
            for view in self.views.values():
                if view.welcomed:
                    self._send(view.name, Heartbeat(sent_at_ms=_now_ms()))

    # ---- planning ------------------------------------------------------------------------------

    def _mark_dirty(self, view: TerminalView) -> None:
        """What ``view`` reported changes the plans that depend on it: every target's for the source."""
        self._dirty.update(self.targets if view is self.source else (view.name,))

    def take_dirty(self) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def source_fresh(self) -> tuple[bool, str]:
        now = self._clock()
        source = self.source
        if not source.welcomed:
            return False, f"source {source.name} has not connected yet"
        if source.snapshot is None:
            return False, f"waiting for the first snapshot of source {source.name}"
        if not source.fresh(now, self.config.coordinator.worker_timeout):
            return False, f"source {source.name} is offline or its snapshot is stale"
        if source.account_problem:
            return False, source.account_problem
        if not source.terminal_link_ok:
            return False, f"source {source.name}'s worker lost its terminal ({source.last_error or 'no link'})"
        if source.snapshot is not None and not source.snapshot.connected:
            return False, f"source {source.name} is not connected to its broker"
        return True, ""

    def reconcile(self, names: set[str] | None = None) -> int:
        """Plan the named targets (all when None) and send what the plans call for; return how many commands
        and requests went out."""
        fresh, why = self.source_fresh()
        if not fresh:
            # A missing or stale source is not an empty one: decide nothing.
            if why != self._frozen_reason:
                starting = self.source.snapshot is None and not self._source_ever_fresh
                (logger.info if starting else logger.warning)("copying {}: {}", "waits" if starting else "paused", why)
                self._frozen_reason = why
            return 0
        self._source_ever_fresh = True
        if self._frozen_reason:
            logger.info("copying resumed: source {} is fresh", self.source.name)
            self._frozen_reason = ""
        self.source.last_sync_at = time.time()
        sent = self._request_source_symbols()
        for name in sorted(names if names is not None else self.targets):
            if name in self.targets:
                try:
                    sent += self._reconcile_target(self.targets[name])
                except Exception:  # a bug or bad data for one target must not stop the others
                    logger.exception("{}: planning failed; the other targets carry on", name)
                    self.reports[name].unavailable = "planning failed (see the log)"
        return sent

    def _request_source_symbols(self) -> int:
        """The source's prices are needed for market_distance pricing: ask its worker to quote its symbols."""
        assert self.source.snapshot is not None
        symbols = {order.symbol for order in self.source.snapshot.orders}
        return self._request_symbols(self.source, symbols, self._clock())

    def _reconcile_target(self, view: TerminalView) -> int:
        report = self.reports[view.name]
        now = self._clock()
        if not view.fresh(now, self.config.coordinator.worker_timeout):
            report.unavailable = view.last_error or "worker offline or not yet reporting"
            return 0
        tradeable, why = view.tradeable()
        if not tradeable:
            if report.unavailable != why:
                logger.warning("{}: not copying: {}", view.name, why)
            report.unavailable = why
            return 0
        report.unavailable = ""
        assert self.source.snapshot is not None and view.snapshot is not None
        orphans = find_orphans(self.source.snapshot.orders, view.snapshot.orders)
        removals, requests = self._confirm_orphans(view, orphans, now)
        plan = plan_target(self.source.snapshot.orders, self._inputs(view, now, removals))
        report.last_plan = plan
        view.last_sync_at = time.time()
        self._apply_bookkeeping(view, plan)
        for command in plan.commands:
            if command.kind is CommandKind.REMOVE and command.ticket in removals:
                self.events.emit(OrphanDecided(target=view.name, source_ticket=command.source_ticket,
                                               copy_ticket=command.ticket, kill=True,
                                               why=self._kill_evidence.get((view.name, command.ticket), "")))
        return (requests + self._request_symbols(view, plan.needed_symbols, now)
                + self._request_history(view, plan.needed_history, now)
                + self._send_commands(view, plan.commands, now, plan.adjustments))

    def _inputs(self, view: TerminalView, now: float, orphan_removals: Mapping[int, str]) -> TargetInputs:
        assert view.target is not None and view.snapshot is not None and self.source.snapshot is not None
        source, target = self.source.snapshot, view.snapshot
        return TargetInputs(
            name=view.name,
            config=view.target,
            orders=target.orders,
            positions=target.positions,
            specs=view.specs,
            quotes=view.quotes,
            closed=view.closed,
            closed_markets=frozenset(view.closed_markets),
            orphan_removals=orphan_removals,
            no_record=view.requests.without_record(),
            missing_symbols=frozenset(view.missing_symbols),
            links=self.state.links(view.name),
            in_flight=frozenset(self.in_flight[view.name]),
            backoff=self.retries[view.name].backoff({order.ticket: order for order in source.orders},
                                                    our_copies(target.orders)[0], now),
            context=TargetContext(
                settings=view.target.copy,
                accounts=Accounts(source_balance=source.balance, source_equity=source.equity,
                                  target_balance=target.balance, target_equity=target.equity),
                source_offset=self.source.server_offset,
                target_offset=view.server_offset,
                source_quotes=self.source.quotes,
                source_specs=self.source.specs,
            ),
        )

    def _apply_bookkeeping(self, view: TerminalView, plan: TargetPlan) -> None:
        for link in plan.adopt:
            self.state.adopt_link(view.name, link)
            self.events.emit(CopyFoundOnTarget(target=view.name, source_ticket=link.source_ticket,
                                               copy_ticket=link.copy_ticket,
                                               expected=self.state.created or self.state.rebuilt))
        for update in plan.link_updates:
            self.state.move_link(view.name, update.source_ticket, LinkMove.arriving_at(update.status))
            self.events.emit(CopyLeft(target=view.name, source_ticket=update.source_ticket,
                                      copy_ticket=update.copy_ticket, status=update.status, detail=update.detail))
        self._removal_reasons.update({(view.name, t): reason for t, reason in plan.removal_reasons.items()})
        trim(self._removal_reasons)
        self._log_skips(view.name, plan.skips)
        for duplicate in plan.duplicates:
            logger.error("{}: order #{} is a second copy of source #{}", view.name, duplicate.ticket, duplicate.magic)
        self._drop_finished_links(view)

    def _drop_finished_links(self, view: TerminalView) -> None:
        """A link whose source order is gone for good and whose copy is no longer pending has done its job."""
        assert self.source.snapshot is not None and view.snapshot is not None
        live_sources = {order.ticket for order in self.source.snapshot.orders}
        copies = our_copies(view.snapshot.orders)[0]
        for ticket in list(self.state.links(view.name)):
            if ticket not in live_sources and ticket not in copies and ticket not in self.in_flight[view.name]:
                self.state.drop_link(view.name, ticket)

    def _confirm_orphans(self, view: TerminalView, orphans: list[PendingOrder],
                         now: float) -> tuple[dict[int, str], int]:
        """The orphan policy's confirmations (a stateful count the tracker owns): which orphans on this target
        are confirmed for removal (copy ticket -> why, for the planner, which decides what is sent) and how
        many requests went out. Only ever called with a fresh source (``reconcile`` returns early otherwise)."""
        tracker = self.orphan_trackers[view.name]
        if not orphans and not tracker.counts():
            return {}, 0
        source = self.source
        # What became of each source order (filled, cancelled, expired) decides at once, and decides
        # keep_filled_copies: ask the source's history for the ones its worker did not see leave. A copy whose
        # answer is on its way is held (neither counted nor reset) for up to the requests' answer wait.
        # One "no record" answer is final here: the orphan then goes through its counted confirmations, which
        # are the bounded looks for a source order (the target's copies have theirs in ``no_record``).
        unknown = {copy.magic for copy in orphans if copy.magic not in source.closed
                   or source.closed[copy.magic].state == OrderState.NOT_IN_HISTORY_YET}
        requests = self._request_history(source, unknown, now) if unknown else 0
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
            self.state.save_orphan_counts(view.name, tracker.counts())
        for candidate in decision.preserved:
            if (view.name, candidate.copy_ticket) not in self._preserved_reported:
                self._preserved_reported[(view.name, candidate.copy_ticket)] = None
                trim(self._preserved_reported)
                self.events.emit(OrphanDecided(target=view.name, source_ticket=candidate.source_ticket,
                                               copy_ticket=candidate.copy_ticket, kill=False,
                                               why=f"source order is {candidate.source_fate}; copy kept"))
        removals = {}
        for candidate in decision.kill:
            checks = tracker.counts().get(candidate.copy_ticket, 0)
            self._kill_evidence[(view.name, candidate.copy_ticket)] = (
                f"the source's history says source order #{candidate.source_ticket} was {candidate.source_fate}"
                if candidate.source_fate in CONFIRMED_FATES else
                f"source order #{candidate.source_ticket} not found in {checks} consecutive checks ({evidence_id})")
            trim(self._kill_evidence)
            fate = candidate.source_fate if candidate.source_fate != UNKNOWN_FATE else "gone"
            removals[candidate.copy_ticket] = f"orphan: source order #{candidate.source_ticket} is {fate}"
        return removals, requests

    def _request_symbols(self, view: TerminalView, symbols: set[str], now: float) -> int:
        wanted = view.requests.symbols_to_ask(symbols, view.specs.keys() | view.missing_symbols, now)
        if not wanted:
            return 0
        if self._send(view.name, SymbolRequest(request_id=uuid.uuid4().hex[:12], symbols=tuple(wanted))):
            view.requests.asked_symbols(wanted, now)
            return 1
        return 0

    def _request_history(self, view: TerminalView, tickets: set[int], now: float) -> int:
        wanted = view.requests.history_to_ask(tickets, now)
        if not wanted:
            return 0
        if self._send(view.name, HistoryRequest(request_id=uuid.uuid4().hex[:12], tickets=tuple(wanted))):
            view.requests.asked_history(wanted, now)
            return 1
        return 0

    def _send_commands(self, view: TerminalView, planned: list[Command], now: float,
                       adjustments: Mapping[int, str] | None = None) -> int:
        if not planned:
            return 0
        # In the worker's clock: a worker whose clock is off must not find fresh commands already expired.
        deadline_ms = _now_ms() + view.clock_skew_ms + int(self.config.coordinator.command_timeout * 1000)
        unique = {command.source_ticket: command for command in reversed(planned)}  # at most one per order
        commands = [msgspec.structs.replace(command, command_id=uuid.uuid4().hex, deadline_ms=deadline_ms)
                    for command in planned if unique[command.source_ticket] is command]
        source_orders = {order.ticket: order for order in self.source.snapshot.orders} if self.source.snapshot else {}
        # The intent is durable before the command exists anywhere else: a crash after this line is resolved
        # against the terminal on restart, never by sending blindly again.
        self.ledger.record(view.name, commands, now,
                           {t: fingerprint(order) for t, order in source_orders.items()}, adjustments or {})
        crash_point("after-intent")
        if self._send(view.name, CommandBatch(batch_id=uuid.uuid4().hex[:12], commands=tuple(commands))):
            crash_point("after-send", flush_seconds=0.2)
            return len(commands)
        self.ledger.not_delivered(view.name, commands)
        logger.warning("{}: could not deliver {} command(s); will retry when the worker is back", view.name,
                       len(commands))
        return 0

    def _log_skips(self, target: str, skips: list[Skip]) -> None:
        current = {(target, skip.source_ticket): skip for skip in skips}
        for key, skip in current.items():
            text = f"{skip.reason.value}: {skip.detail}" if skip.detail else skip.reason.value
            if self._logged_skips.get(key) != text:  # once per cause, not once per cycle
                self._logged_skips[key] = text
                self.events.emit(OrderSkipped(target=target, skip=skip))
        for key in [key for key in self._logged_skips if key[0] == target and key not in current]:
            del self._logged_skips[key]

    # ---- status --------------------------------------------------------------------------------

    def busy(self) -> bool:
        """Commands, symbol or history requests are still outstanding (a request unanswered for long is given
        up: the worker may have gone; it is asked again when needed)."""
        now = self._clock()
        for view in self.views.values():
            view.requests.give_up_old(now)
        return self.ledger.busy() or any(view.requests.outstanding() for view in self.views.values())

    def waiting_for_facts(self) -> bool:
        """Some plan waits for facts that arrive by themselves within seconds: a server clock, prices, a
        symbol specification, a history record."""
        quick = (SkipReason.NOT_YET, SkipReason.SYMBOL_PENDING, SkipReason.HISTORY_PENDING)
        return any(skip.reason in quick for report in self.reports.values() if report.last_plan
                   for skip in report.last_plan.skips)

    def next_retry_in(self) -> float | None:
        now = self._clock()
        pending = [at for retries in self.retries.values() if (at := retries.next_retry_at()) is not None]
        return max(0.0, min(pending) - now) if pending else None

    def publish_status(self, *, final: bool = False) -> None:
        """Write every terminal's status for ``mt5-copier status`` (another process reads it). ``final``: the
        coordinator is stopping; the counts its workers last reported stay readable as the last known ones."""
        rows = [self._status_of(view, final=final) for view in self.views.values()]
        rows += [self._status_of_disabled(target) for target in self.config.targets if not target.copy.enabled]
        try:
            self.status_board.write(rows)
        except Exception as e:  # status is for people; it must never stop copying
            logger.warning("could not write the status table: {}", e)

    def _status_of(self, view: TerminalView, *, final: bool = False) -> TerminalStatus:
        report = self.reports.get(view.name)
        plan = report.last_plan if report else None
        orphans: list[tuple[int, int, str]] = []
        if plan is not None and view.target is not None:
            preserved = {copy for (name, copy) in self._preserved_reported if name == view.name}
            orphans = orphan_states(plan.orphans, self.orphan_trackers[view.name].counts(),
                                    view.target.copy.orphans.max_checks, preserved)
        talking = view.online or (view.last_seen > 0
                                  and self._clock() - view.last_seen <= self.config.coordinator.worker_timeout)
        return terminal_row(view, is_source=view is self.source, report=report, orphans=orphans, talking=talking,
                            final=final)

    def _status_of_disabled(self, target: TargetConfig) -> TerminalStatus:
        return disabled_row(target, self.unmanaged_copies(target.name))

    def unmanaged_copies(self, name: str) -> int:
        """Copies the state records as pending on ``name`` (a disabled target: nobody manages them now)."""
        return sum(1 for link in self.state.links(name).values() if link.status in PENDING_STATUSES)


def _describe_copy(command: Command) -> str:
    """What a placed or modified copy looks like, in the words a trader reads."""
    text = f"{command.symbol} {describe_order_type(command.order_type)} {command.volume:g} lots @ {command.price:g}"
    if command.stoplimit:
        text += f" limit {command.stoplimit:g}"
    return text + f" sl {command.sl:g} tp {command.tp:g}"


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["Engine", "InFlight", "Link", "SkipReason", "TargetReport"]
