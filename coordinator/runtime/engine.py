"""The coordinator's engine: turns worker reports into plans, plans into commands, results into state.

Level-triggered: snapshots are the truth and commands are only the delta towards them. A lost command or a
lost result is repaired by the next plan, never by resending. Single-threaded: every method runs on the
coordinator's one loop thread, and the clock is injected.

The engine wires the parts and orchestrates them; each piece of state has one owner:

- ``WorkerSessions`` (sessions.py): every message enters there; hello, boot, heartbeats, server clocks,
  accounts, the questions asked to workers. What matters for copying comes back here as a listener call.
- ``plan_target`` (planner.py): the one decider, pure. ``OrphanWatch`` (orphan_watch.py) only confirms
  orphans for it, with the counts it owns. A source change re-plans only the tickets it touched
  (``plan_target_incrementally``, the same decisions), and so does a target snapshot in which only the copier's
  copies changed (the snapshot after each batch), when the engine can show nothing else about a target changed
  since its last plan (``_plan_changed`` says what that takes); otherwise plans are full, and so is each target's
  periodic check (``reconcile(full=True)``, paced by the runner: runtime/full_plans.py).
- ``Dispatcher`` (dispatch.py): actions become wire commands, durably: every target's intents of one reconcile in
  one transaction, before any batch leaves. ``CommandLedger`` (ledger.py): what is in flight. ``Settlement``
  (settlement.py): what each outcome means. ``RetryPolicy``: backoff.
- ``TargetControls`` (target_controls.py) and ``ScheduleGate`` (schedule_gate.py): what of a plan may go now (a
  pause, close-only, a risk guard; between two runs of [coordinator] schedule, nothing).
- ``EventStream`` (events.py): every outcome, once, for the history, the log, the run's report, the status and
  the metrics (metrics.py). ``LatencyTracker`` (latency.py): each copy's stages, a clock read where each is reached.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

import msgspec
from loguru import logger

from config import AppConfig, OrderKind, PriceMode, TargetConfig, VolumeMode
from coordinator.domain.actions import Action
from coordinator.domain.controls import TargetControl
from coordinator.domain.desired import TargetContext
from coordinator.domain.events import CopyFoundOnTarget, CopyLeft, EventStream, OrderSkipped, SourceOrderEnded
from coordinator.domain.link_lifecycle import Link, LinkMove
from coordinator.domain.order_changes import OrderChanges, order_changes
from coordinator.domain.orphans import ConfirmedOrphan
from coordinator.domain.planner import (
    Skip,
    SkipReason,
    TargetIndex,
    TargetInputs,
    TargetPlan,
    plan_target,
    plan_target_incrementally,
)
from coordinator.domain.positions import position_orphans
from coordinator.domain.report import TargetReport, trim
from coordinator.domain.retry_policy import RetryPolicy, fingerprint
from coordinator.domain.sizing import Accounts
from coordinator.persistence.state import StateStore
from coordinator.runtime.config_changes import ConfigChanges, config_changes
from coordinator.runtime.dispatch import Dispatch, Dispatcher, Outgoing
from coordinator.runtime.event_subscribers import HistoryWriter, OutcomeLog, RunReport
from coordinator.runtime.latency import LatencyTracker, wall_clock_ms
from coordinator.runtime.ledger import CommandLedger
from coordinator.runtime.metrics import CopierMetrics
from coordinator.runtime.orphan_watch import OrphanWatch
from coordinator.runtime.schedule_gate import ScheduleGate
from coordinator.runtime.sessions import SendFunction, WorkerSessions, now_ms
from coordinator.runtime.settlement import Settlement
from coordinator.runtime.status_projection import StatusPublisher
from coordinator.runtime.target_controls import TargetControls
from coordinator.runtime.views import TerminalView
from protocol import ClosedOrder, CommandResults, Message, PendingOrder, PositionFacts, Quote, Shutdown, Snapshot
from protocol.messages import SHUTDOWN_COORDINATOR_STOPPING, SHUTDOWN_TERMINAL_REMOVED
from protocol.mt5 import COPIER_ORDER_STATES, AccountMarginMode, describe_fate

STATUS_INTERVAL_SECONDS = 1.0
PRUNE_INTERVAL_SECONDS = 86_400.0  # weeks without a restart: the history is trimmed once a day
# A target removed by a reload still hears its worker (its answers to what was in flight, its goodbye) until the
# worker left, for command_timeout and this long at most; what is still unanswered then is abandoned (recorded,
# never resent).
LEAVING_GRACE_SECONDS = 5.0
SOURCE_CHANGES_KEPT = 64  # source snapshots whose changed tickets are kept for incremental plans


class _Basis(msgspec.Struct, frozen=True):
    """What a target's last plan was made of, for the next one to tell what changed since (see
    ``Engine._plan_changed``)."""

    plan: TargetPlan
    source_generation: int  # the source orders it planned (``Engine._source_generation``)
    snapshot: Snapshot  # the target's
    index: TargetIndex  # of that snapshot
    in_flight: frozenset[int]
    backoff: Mapping[int, str]
    facts: tuple  # every other input the planner reads (``Engine._facts``), compared by value
    prices: tuple  # the target's and the source's quotes as the planner reads them (``_prices``)
    closed: dict[int, ClosedOrder]  # a copy of the target's ``TerminalView.closed`` (the fates of orders that left)


def _figures_read(mode: VolumeMode) -> tuple[bool, bool]:
    """(balances, equities): the account figures a plan reads with this sizing mode. Their one reader is
    ``sizing.raw_volume``: the ratio modes read the source's and the target's balances, or equities; the others
    none. Equity moves with every tick while positions are open, so it is compared only where it sizes. A mode
    not named here reads both, to be safe."""
    if mode in (VolumeMode.MULTIPLIER, VolumeMode.FIXED):
        return False, False
    if mode is VolumeMode.BALANCE_RATIO:
        return True, False
    if mode is VolumeMode.EQUITY_RATIO:
        return False, True
    return True, True


def _unpriced(positions: tuple[PositionFacts, ...]) -> tuple[PositionFacts, ...]:
    """``positions`` less their current price, which moves with every tick and which no plan reads (the worker
    does not send a snapshot for it alone either)."""
    return tuple(msgspec.structs.replace(position, price_current=0.0) for position in positions)


class _Fingerprints(Mapping[int, tuple]):
    """The source orders' fingerprints, each computed when the ledger first asks for it (only the orders a command
    is sent for, once however many targets it goes to), not for every order of every target."""

    def __init__(self, orders: Mapping[int, PendingOrder]) -> None:
        self._orders = orders
        self._made: dict[int, tuple] = {}

    def __getitem__(self, ticket: int) -> tuple:
        made = self._made.get(ticket)
        if made is None:
            made = self._made[ticket] = fingerprint(self._orders[ticket])
        return made

    def get(self, ticket: int, default: object = None) -> object:  # type: ignore[override]
        return self[ticket] if ticket in self._orders else default

    def __iter__(self) -> Iterator[int]:
        return iter(self._orders)

    def __len__(self) -> int:
        return len(self._orders)


class Engine:
    def __init__(self, config: AppConfig, state: StateStore, send: SendFunction,
                 clock: Callable[[], float] = time.monotonic, wall_ms: Callable[[], int] = now_ms, *,
                 dispatcher: Dispatch | None = None, stage_clock: Callable[[], float] = wall_clock_ms,
                 incremental: bool = True) -> None:
        """``clock``: monotonic seconds, for every delay and timeout. ``wall_ms``: UTC milliseconds, for what is
        compared with a worker's own clock (its skew, and the deadlines sent in its clock). ``dispatcher``: where
        plans go instead of the Dispatcher (a dry run's, which sends nothing). ``stage_clock``: UTC milliseconds with a
        fraction, for the copies' latency stages. ``incremental``: plan only what changed when that provably gives
        the full plan's answer (False: every plan in full, for tests to compare with)."""
        self.config = config
        self.state = state
        self._clock = clock
        self._wall_ms = wall_ms
        self._send = send
        # Every outcome goes out once, here; the history, the log and this run's report each take it from there (and
        # the alerts, subscribed by the runner). The sessions tell what happens to the workers through it too.
        self.events = EventStream()
        self.sessions = WorkerSessions(config, send, clock, listener=self, wall_ms=wall_ms, emit=self.events.emit)
        self.source = self.sessions.source
        self.targets = self.sessions.targets
        self.views = self.sessions.views
        self.ledger = CommandLedger(state, self.targets)
        self.in_flight = self.ledger.in_flight  # read-only view for the summary and the runner
        self.reports: dict[str, TargetReport] = {name: TargetReport() for name in self.targets}
        self.retries = {name: RetryPolicy(report.failures) for name, report in self.reports.items()}
        self.events.subscribe(HistoryWriter(state))
        self.events.subscribe(OutcomeLog())
        self.events.subscribe(RunReport(self.reports))
        # Commands and copies counted, each copy's way timed by stage: for /metrics, the history and the page.
        self.metrics = CopierMetrics()
        self.events.subscribe(self.metrics)
        self.latency = LatencyTracker(self.events, self.metrics, stage_clock)
        self.orphans = OrphanWatch(self.targets.values(), state, self.events, self.sessions.request_history)
        self._stand_in = dispatcher
        self.dispatcher: Dispatch = dispatcher or Dispatcher(self.ledger, send, self.events,
                                                             config.coordinator.command_timeout, wall_ms,
                                                             self.latency)
        self.settlement = Settlement(state, self.ledger, self.retries, self.events, clock, self.orphans.copy_removed,
                                     self.sessions.market_closed, self.latency)
        # Targets a reload removed from the config during this run: their copies stay, unmanaged (status says so).
        self.removed_targets: dict[str, None] = {}
        self._leaving: dict[str, float] = {}  # removed or disabled by a reload, answers still awaited: deadline
        self._hello_deadlines: dict[str, float] = {}  # terminals a reload added: when to say they never came
        # Pause, close-only and the risk guards: the gate between each plan and the dispatcher. A dry run (a
        # stand-in dispatcher) judges them but records nothing.
        self.controls = TargetControls(config, state, self.events, clock, persist=dispatcher is None)
        # [coordinator] schedule: between its boundaries every plan is held back whole (after the controls).
        self.schedule = ScheduleGate(config.coordinator, clock, lambda: self._wall_ms() / 1000,
                                     lambda: self.source.server_offset)
        self.status = StatusPublisher(config, self.sessions, self.reports, self.orphans, state, clock,
                                      removed=self.removed_targets, wall_ms=wall_ms, controls=self.controls,
                                      schedule=self.schedule)
        self._next_status = 0.0
        self._next_prune = self._clock() + PRUNE_INTERVAL_SECONDS
        self._dirty: set[str] = set()
        self._frozen_reason = ""
        self._source_ever_fresh = False
        self._logged_skips: dict[str, dict[int, str]] = {}  # target -> source ticket -> the skip as logged
        # Incremental planning. The source orders as last planned, by ticket; a generation counted up whenever they
        # change, and the tickets each recent change touched (and whether it removed any).
        self._incremental = incremental
        self._source_orders: tuple[PendingOrder, ...] | None = None  # the snapshot tuple the map was made from
        self._source_map: dict[int, PendingOrder] = {}
        self._source_live: frozenset[int] = frozenset()  # tickets of the source orders of a type that is copied
        self._source_symbols: set[str] = set()
        self._source_generation = 0
        self._source_doubled = False  # a ticket listed twice in the source orders last noted
        self._last_order_changes: tuple[tuple[PendingOrder, ...], tuple[PendingOrder, ...], OrderChanges] | None = None
        self._source_changes: deque[tuple[int, frozenset[int], bool]] = deque(maxlen=SOURCE_CHANGES_KEPT)
        self._bases: dict[str, _Basis] = {}
        self._plan_in_full: set[str] = set()  # targets whose next plan must be a full one
        # When each target's plan was last made in full (this engine's clock), for the runner's paced full plans.
        self.planned_in_full_at: dict[str, float] = {}
        self._logged_not_followed: dict[str, str] = {}  # target -> why its positions are not followed, as logged
        self._unpriced_source: tuple[Snapshot | None, tuple[PositionFacts, ...]] = (None, ())
        self._reported_source_fates: dict[int, None] = {}  # insertion-ordered, trimmed
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
            left = self.state.pending_copies(target.name) if not target.copy.enabled else 0
            if left:
                logger.warning("target {} is disabled (enabled = false) and still holds {} copies placed by the "
                               "copier: they are left as they are, unmanaged (no edits, no removals, no orphan "
                               "policy) until it is enabled again", target.name, left)

    def _recover_unsettled_intents(self) -> None:
        """Intents written before a crash may or may not have reached the broker: hold them as unknown
        until the target's first snapshot after this start shows what the terminal holds."""
        _, held = self.ledger.recover(self._clock())
        for target, command in held:
            logger.warning("{}: {} for source #{} was in flight when the coordinator stopped; checking the "
                           "terminal before doing anything else for it", target, command.kind.value,
                           command.source_ticket)

    # ---- what the workers report (the sessions' listener) --------------------------------------

    def on_message(self, name: str, message: Message) -> None:
        self.sessions.receive(name, message)

    def terminal_changed(self, view: TerminalView) -> None:
        """What ``view`` reported changes the plans that depend on it: every target's for the source. Those plans
        are made in full (facts such as history answers are not kept by ticket)."""
        names = self.targets if view is self.source else (view.name,)
        self._dirty.update(names)
        self._plan_in_full.update(names)

    def snapshot_arrived(self, view: TerminalView, snapshot: Snapshot, previous: Snapshot | None) -> None:
        if view is self.source:
            self._report_source_fates(snapshot)
            changes = self._order_changes(previous.orders if previous is not None else (), snapshot.orders)
            if previous is None or changes.changed or not changes.in_place:
                self.latency.source_orders(snapshot, view.clock_skew_ms, changes)
                self._dirty.update(self.targets)
        else:
            self.settlement.resolve_unknown(view, snapshot)
            self.latency.target_snapshot(view.name, snapshot)
            self._dirty.add(view.name)

    def snapshot_still_holds(self, view: TerminalView, snapshot: Snapshot) -> None:
        if view is not self.source:
            self.settlement.resolve_unknown(view, snapshot)

    def results_arrived(self, view: TerminalView, message: CommandResults) -> None:
        self.settlement.results(view, message)
        self._dirty.add(view.name)

    def market_opened(self, view: TerminalView, symbol: str) -> None:
        if view.name in self.retries:
            self.retries[view.name].market_open(symbol, self._clock())
        self.terminal_changed(view)

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

    def worker_exited(self, name: str, code: int) -> None:
        """The worker process of ``name`` is gone (the supervisor saw it exit). Nothing it was asked to do can
        still be answered: its commands' outcomes are unknown from now on, settled from what the terminal shows
        once a worker reports again (never resent blindly)."""
        view = self.views.get(name)
        if view is None:
            return
        self.sessions.worker_exited(view, code)
        self.settlement.worker_exited(name)
        report = self.reports.get(name)
        if code != 0 and report is not None:
            report.unavailable = view.last_error

    # ---- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self._clock()
        self.sessions.tick(now)
        self._dirty.update(self.controls.poll(now))  # a pause or resume applies within a second
        self._dirty.update(self.schedule.poll(self.targets))  # a scheduled run: every target at once
        for name, flight in self.ledger.timed_out(now, self.config.coordinator.command_timeout):
            logger.warning("{}: no answer to {} for source #{} after {:.0f}s; its outcome is unknown", name,
                           flight.action.kind.value, flight.action.source_ticket, now - flight.sent_at)
        self._finish_leaving(now)
        self._report_hello_overdue(now)
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL_SECONDS
            self.state.prune()
        if now >= self._next_status:
            self._next_status = now + STATUS_INTERVAL_SECONDS
            self.publish_status()

    # ---- a reload: the config changes while it runs --------------------------------------------

    def apply_config(self, config: AppConfig) -> ConfigChanges:
        """Run ``config`` from now on. Every part that keeps something per target (the sessions' views, the
        ledger, the reports, the retries, the orphan trackers, the status) learns here, and only here, of the
        targets added, removed or disabled. Added targets are planned at the next reconcile; removed and disabled
        ones are sent nothing more (their workers are told to stop) and their copies stay as they are; changed
        copy rules apply at the next plan; a terminal whose worker reads a changed entry has its session reset
        (a local worker is told to stop, for its supervisor to start it again; a remote one to say hello again).
        Terminals whose entry did not change keep their session. Processes and keys are the caller's
        (coordinator/runtime/reload.py). ValueError for a change only a restart applies (``needs_restart``)."""
        changes = config_changes(self.config, config)
        if changes.needs_restart:
            raise ValueError("; ".join(changes.needs_restart))
        old, self.config = self.config, config
        self.sessions.use_config(config)
        self.status.use_config(config)
        self.controls.use_config(config)
        self.schedule.use_config(config.coordinator)
        self.dispatcher = self._stand_in or Dispatcher(self.ledger, self._send, self.events,
                                                       config.coordinator.command_timeout, self._wall_ms,
                                                       self.latency)
        targets = {target.name: target for target in config.targets}
        for name in changes.stopped:
            self._stop_target(name, removed=name in changes.removed)
        for name in changes.added:
            self._start_target(targets[name])
        self.sessions.configure_view(self.source, config.source, None)
        for name, view in self.targets.items():
            self.sessions.configure_view(view, targets[name].terminal, targets[name])
            self.orphans.settings_changed(view)
        for name in changes.restarted:
            self._reset_session(self.views[name], was_remote=old.terminal(name).remote)
        self._dirty.update(self.targets)
        self._bases.clear()  # settings changed: every next plan is a full one
        return changes

    def _start_target(self, target: TargetConfig) -> None:
        name = target.name
        view = self.views.get(name)  # still leaving (removed or disabled a moment ago): it is taken back
        if view is not None:
            self._leaving.pop(name, None)
            self.targets[name] = view
            self.sessions.configure_view(view, target.terminal, target)
        else:
            view = self.sessions.add_view(target.terminal, target)
        self.ledger.add_target(name)
        report = self.reports.setdefault(name, TargetReport())
        self.retries.setdefault(name, RetryPolicy(report.failures))
        self.orphans.add_target(view)
        self.removed_targets.pop(name, None)
        self._hello_deadlines[name] = self._clock() + self.config.coordinator.hello_timeout
        if target.terminal.remote:
            logger.info("target {} added; waiting for remote worker {} to connect", name, name)
        else:
            logger.info("target {} added; starting its worker", name)

    def _stop_target(self, name: str, *, removed: bool) -> None:
        """Nothing more is planned for ``name``; its worker is told to stop (the answers to what it was sent
        still settle); its copies, links and orphan counts stay as they are."""
        view = self.sessions.stop_planning(name)
        if view is None:
            return
        if removed:
            self.removed_targets[name] = None
        self._hello_deadlines.pop(name, None)
        why = "removed from the config" if removed else "disabled (enabled = false)"
        self._send(name, Shutdown(reason=f"terminal {name} was {why}", code=SHUTDOWN_TERMINAL_REMOVED))
        left = self.state.pending_copies(name)
        logger.warning("target {} was {}: its worker stops{}", name, why,
                       f"; its {left} copies are left as they are, unmanaged (no edits, no removals, no orphan "
                       "policy)" if left else "")
        self._leaving[name] = self._clock() + self.config.coordinator.command_timeout + LEAVING_GRACE_SECONDS

    def _finish_leaving(self, now: float) -> None:
        """Forget the targets a reload stopped once their worker left (its goodbye, its exit, or never connected):
        until then its answers to what it was sent still settle."""
        for name, deadline in list(self._leaving.items()):
            view = self.views.get(name)
            if view is None or not view.welcomed or now >= deadline:
                self._forget_target(name)

    def _forget_target(self, name: str) -> None:
        self._leaving.pop(name, None)
        for flight in self.ledger.remove_target(name, "target removed from the config or disabled"):
            logger.warning("{}: {} for source #{} was not answered before the target left the config; its outcome "
                           "is unknown and the terminal is no longer watched (recorded as abandoned)", name,
                           flight.action.kind.value, flight.action.source_ticket)
        self.orphans.remove_target(name)
        self.latency.forget_target(name)
        self.controls.forget(name)
        self.reports.pop(name, None)
        self.retries.pop(name, None)
        self.sessions.drop_view(name)
        self._logged_not_followed.pop(name, None)
        self._logged_skips.pop(name, None)
        self._bases.pop(name, None)
        self.planned_in_full_at.pop(name, None)

    def _reset_session(self, view: TerminalView, *, was_remote: bool) -> None:
        """``view``'s worker reads an entry that changed: a remote worker (still remote) is asked to say hello
        again, checked against the new entry, on the link it has; any other is told to stop (a local one is
        started again by the supervisor, with the new entry; a remote one that became local makes way for it)."""
        name = view.name
        if was_remote and view.config.remote:
            self.sessions.ask_hello(view, f"the coordinator's entry for {name} changed: say hello again")
            logger.info("{}: its entry changed; its remote worker is asked to say hello again", name)
            return
        if was_remote:
            self._send(name, Shutdown(reason=f"terminal {name} is no longer remote: the coordinator runs its worker",
                                      code=SHUTDOWN_TERMINAL_REMOVED))
            logger.info("{}: its entry changed and it is no longer remote: its remote worker is told to stop, and a "
                        "local one is started", name)
            return
        self._send(name, Shutdown(reason=f"the entry of terminal {name} changed: restarting its worker",
                                  code=SHUTDOWN_COORDINATOR_STOPPING))
        if view.config.remote:
            logger.info("{}: its entry changed and it is now remote: its local worker stops; waiting for remote "
                        "worker {} to connect", name, name)
        else:
            logger.info("{}: its entry changed; its worker is restarted", name)

    def _report_hello_overdue(self, now: float) -> None:
        """A terminal a reload added whose worker has not said hello within hello_timeout: said once."""
        for name, deadline in list(self._hello_deadlines.items()):
            view = self.views.get(name)
            if view is None or view.welcomed:
                del self._hello_deadlines[name]
            elif now >= deadline:
                del self._hello_deadlines[name]
                why = view.last_error or \
                    f"its worker did not say hello within {self.config.coordinator.hello_timeout:.0f}s"
                logger.error("terminal {} is not available: {}", name, why)
                self.sessions.note_unavailable(view, why)

    # ---- planning ------------------------------------------------------------------------------

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

    def reconcile(self, names: set[str] | None = None, *, full: bool | None = None) -> int:
        """Plan the named targets (all when None) and send what the plans call for; return how many commands and
        requests went out. ``full``: every plan made from scratch, the check that nothing was missed (by default
        when all targets are planned), rather than incrementally where that is shown to give the same plan."""
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
        self.source.last_sync_at = self._wall_ms() / 1000
        assert self.source.snapshot is not None
        self._note_source_orders(self.source.snapshot)
        # The source's prices are needed for market_distance pricing: ask its worker to quote its symbols.
        sent = self.sessions.request_symbols(self.source, self._source_symbols, self._clock())
        outgoing: list[Outgoing] = []
        source_prices = _prices(self.source.quotes)  # read by every target's plan
        for name in sorted(names if names is not None else self.targets):
            if name in self.targets:
                try:
                    sent += self._reconcile_target(self.targets[name], outgoing, source_prices,
                                                   full=names is None if full is None else full)
                except Exception:  # a bug or bad data for one target must not stop the others
                    self._bases.pop(name, None)
                    logger.exception("{}: planning failed; the other targets carry on", name)
                    self.reports[name].unavailable = "planning failed (see the log)"
        try:
            # Every target's intents in one transaction, then every batch: one write to disk per reconcile.
            sent += self.dispatcher.send_all(outgoing, self._clock(), _Fingerprints(self._source_map))
        except Exception:
            for each in outgoing:
                self._bases.pop(each.view.name, None)
            logger.exception("sending the plans of {} failed; they are planned again at the next reconcile",
                             ", ".join(each.view.name for each in outgoing))
        return sent

    def _note_source_orders(self, snapshot: Snapshot) -> None:
        """The source orders by ticket, and which tickets changed since the orders last planned: computed once per
        source snapshot, for every target's plan."""
        orders, previous = snapshot.orders, self._source_orders
        if orders is previous:
            return
        before = self._source_map
        changes = None if previous is None else self._order_changes(previous, orders)
        removed: set[int] = set()
        if changes is not None and changes.in_place and not self._source_doubled:
            # Edits only, each at its own place: the same tickets (none removed), so the map is the last one with
            # the edited orders put in (no pass over every order in Python).
            after = dict(before)
            after.update((order.ticket, order) for order in changes.changed)
        else:
            after = {order.ticket: order for order in orders}
            removed = before.keys() - after.keys()
        # An order equal to the one at the same place before is that order unchanged (same ticket, same values);
        # any other counts as changed (an insertion that shifts the rest only makes more of them "changed").
        changed = set(after) if changes is None else {order.ticket for order in changes.changed}
        # A removed order leaves its copies orphans, for the orphan policy of a full plan; a ticket listed twice (now
        # or in the orders before) is not something the by-ticket map can plan the way the full plan does: all count
        # as removals, which incremental plans do not cross.
        doubled = len(after) != len(orders)
        self._source_generation += 1
        self._source_changes.append((self._source_generation, frozenset(changed | removed),
                                     bool(removed) or doubled or self._source_doubled))
        self._source_doubled = doubled
        self._source_orders, self._source_map = orders, after
        if previous is None or removed or len(changed) > 64:
            self._source_live = frozenset(order.ticket for order in orders
                                          if OrderKind.from_mt5_type(order.type) is not None)
            self._source_symbols = {order.symbol for order in orders}
        else:  # what an edit or an addition can change of them, without a pass over every order
            self._source_live = self._source_live.difference(changed).union(
                ticket for ticket in changed if OrderKind.from_mt5_type(after[ticket].type) is not None)
            if any(before[ticket].symbol != after[ticket].symbol for ticket in changed if ticket in before):
                self._source_symbols = {order.symbol for order in orders}
            else:
                self._source_symbols = self._source_symbols | {after[ticket].symbol for ticket in changed}

    def _order_changes(self, before: tuple[PendingOrder, ...], after: tuple[PendingOrder, ...]) -> OrderChanges:
        """``order_changes(before, after)``, remembered for the last pair of source order lists: a source snapshot's
        arrival (the latency stages) and the plans that follow it ask the same question."""
        remembered = self._last_order_changes
        if remembered is not None and remembered[0] is before and remembered[1] is after:
            return remembered[2]
        changes = order_changes(before, after)
        self._last_order_changes = (before, after, changes)
        return changes

    def _source_changed_since(self, generation: int) -> frozenset[int] | None:
        """The source tickets added or edited since ``generation``; None when one was removed since, or that is
        too long ago to tell."""
        if generation == self._source_generation:
            return frozenset()
        tickets: set[int] = set()
        seen = 0
        for at, changed, removed in reversed(self._source_changes):  # newest first: usually one or two
            if at <= generation:
                break
            if removed:
                return None
            tickets |= changed
            seen += 1
        return frozenset(tickets) if seen == self._source_generation - generation else None

    def _reconcile_target(self, view: TerminalView, outgoing: list[Outgoing],
                          source_prices: dict[str, tuple[float, float, bool]], *, full: bool) -> int:
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
        source, target = self.source.snapshot, view.snapshot
        links_changed = self.state.take_link_changes(view.name)
        basis = self._bases.pop(view.name, None)  # gone while this plan is made: a failure leaves none behind
        incremental = self._incremental and not full and basis is not None and view.name not in self._plan_in_full
        # The target's orders added, edited or removed since the last plan (None: not followed by ticket).
        orders_changed: list[PendingOrder] | None = None
        if basis is not None and basis.snapshot is target:
            index, orders_changed = basis.index, []
        else:
            update = None
            if incremental and basis is not None:
                update = basis.index.updated(basis.snapshot.orders, target.orders, target.positions)
            if update is not None:
                index, orders_changed = update
            else:
                index = TargetIndex.of(target.orders, target.positions)
        not_followed = self._positions_not_followed(view)
        in_flight = frozenset(self.in_flight[view.name])
        backoff = self.retries[view.name].backoff(self._source_map, index.copies, now)
        facts = self._facts(view, not_followed)
        prices = (_prices(view.quotes), source_prices)
        requests = 0
        plan = None
        if incremental and basis is not None and orders_changed is not None:
            inputs = self._inputs(view, {}, {}, not_followed, in_flight, backoff)
            plan = self._plan_changed(view, basis, inputs, index, facts, prices, links_changed, orders_changed)
        if plan is None:
            self._plan_in_full.discard(view.name)
            self.planned_in_full_at[view.name] = now
            orphans = [copy for ticket, copy in sorted(index.copies.items()) if ticket not in self._source_live]
            removals, requests = self.orphans.confirm(view, self.source, orphans, now)
            closes: dict[int, ConfirmedOrphan] = {}
            if not not_followed:
                position_orphans_ = position_orphans(source.orders, source.positions, target.positions)
                closes, asked = self.orphans.confirm_positions(view, self.source, position_orphans_, now)
                requests += asked
            plan = plan_target(source.orders, self._inputs(view, removals, closes, not_followed, in_flight, backoff),
                               index=index)
        report.last_plan = plan
        view.last_sync_at = self._wall_ms() / 1000
        self._apply_bookkeeping(view, plan)
        # (Nothing to ask is nothing asked: these calls change nothing for empty sets, so they are skipped.)
        if plan.needed_symbols:
            requests += self.sessions.request_symbols(view, plan.needed_symbols, now)
        if plan.needed_history:
            requests += self.sessions.request_history(view, plan.needed_history, now)
        if plan.needed_position_history:
            requests += self.sessions.request_history(self.source, (), now, plan.needed_position_history)
        if plan.needed_copy_position_history:
            requests += self.sessions.request_history(view, (), now, plan.needed_copy_position_history)
        outgoing.append(Outgoing(view, self._gate(view, plan), self.latency.now()))
        # The fates as they are now (a copy of up to CLOSED_ORDER_MEMORY_COUNT entries, kept from the last plan's
        # when equal: the usual case).
        closed = basis.closed if basis is not None and basis.closed == view.closed else dict(view.closed)
        self._bases[view.name] = _Basis(plan=plan, source_generation=self._source_generation, snapshot=target,
                                        index=index, in_flight=in_flight, backoff=backoff, facts=facts,
                                        prices=prices, closed=closed)
        return requests

    def _facts(self, view: TerminalView, positions_not_followed: str) -> tuple:
        """Every input of ``view``'s plan other than the source orders, its links, what is in flight, the backoff,
        the target's orders and the fates of the orders that left it (which incremental plans follow by ticket),
        as values to compare with the last plan's. Of the target's snapshot that is every field but its orders,
        its fates (``TerminalView.closed`` is followed instead: it keeps them), and what no plan reads: its number,
        when it was taken, the server's clock of that moment (the heartbeats measure the offset from theirs), the
        free margin, the positions' current prices, and the account figures the sizing mode does not read
        (``_figures_read``). A field added to snapshots counts by default. The position history only grows or is
        trimmed between answers, and every answer marks the plan as one to make in full (``terminal_changed``):
        its size is compared as a second guard."""
        source, snapshot, target = self.source, self.source.snapshot, view.snapshot
        assert snapshot is not None and target is not None and view.target is not None
        balances, equities = _figures_read(view.target.copy.volume_mode)
        target = msgspec.structs.replace(target, seq=0, taken_at_ms=0, server_time=0, orders=(), closed=(),
                                         positions=_unpriced(target.positions), margin_free=0.0,
                                         balance=target.balance if balances else 0.0,
                                         equity=target.equity if equities else 0.0)
        return (view.target, target, positions_not_followed, dict(view.specs),
                frozenset(view.missing_symbols), dict(view.closed_markets), view.requests.without_record(),
                view.server_offset, len(view.position_history),
                self._source_positions(snapshot), snapshot.balance if balances else 0.0,
                snapshot.equity if equities else 0.0, source.server_offset,
                dict(source.specs), len(source.position_history))

    def _source_positions(self, snapshot: Snapshot) -> tuple[PositionFacts, ...]:
        """``_unpriced`` source positions, made once per source snapshot (every target's facts read them)."""
        if self._unpriced_source[0] is not snapshot:
            self._unpriced_source = (snapshot, _unpriced(snapshot.positions))
        return self._unpriced_source[1]

    def _plan_changed(self, view: TerminalView, basis: _Basis, inputs: TargetInputs, index: TargetIndex,
                      facts: tuple, prices: tuple, links_changed: set[int],
                      orders_changed: list[PendingOrder]) -> TargetPlan | None:
        """``view``'s plan made by planning only the source tickets whose decision may differ from the last plan's
        (``basis``), or None when that cannot be shown to give the full plan's answer. Safe because:

        - every other input of the plan is the same (``_facts``: the target's positions, connection and account,
          the account figures its sizing reads, settings, specifications, prices, the history answers, clocks, the
          source's positions), so a ticket's decision can only change with its own source order, link, in-flight
          command, backoff, copy or copy's fate, and those changes are collected here: the source tickets added or
          edited since (none removed: a removal makes orphans, for the full plan), the links written since (the
          state logs every write), the symmetric difference of what is in flight and of the backoff, the source
          tickets of the copies added, edited or removed on the target since (``orders_changed``, from
          ``TargetIndex.updated``, which gives none when anything but a copy changed there), and those whose link's
          copy has a new fate (``_fates_changed``);
        - prices moved (live markets tick between any two plans): a ticket the last plan found in sync, or left out
          for its type, a filter or its link's fate, was decided without a price (``desire`` reads one only for
          ``price_mode = "market_distance"``, and a copy in sync is compared level by level), so only the tickets
          the last plan acted on or skipped are planned again. Not so, and planned in full, with market_distance
          pricing or with positions on either side (their closes, levels and market openings read prices);
        - the orphan policy has nothing to count or confirm on this target (no orphan in the last plan, none
          since, and no counts kept), so the full plan would be given no removals and no closes either;
        - ``plan_target_incrementally`` refuses what couples tickets to each other (a pending-order cap,
          duplicates, orphans, facts still asked for, a copy on a symbol with a volume limit).
        """
        if basis.facts != facts or not self.orphans.idle(view.name):
            return None
        priced: set[int] = set()
        if prices != basis.prices:
            if (inputs.config.copy.price_mode is PriceMode.MARKET_DISTANCE or inputs.positions
                    or inputs.source_positions):
                return None
            priced = {action.source_ticket for action in basis.plan.actions} | {
                skip.source_ticket for skip in basis.plan.skips}
        source_changed = self._source_changed_since(basis.source_generation)
        if source_changed is None:
            return None
        changed = source_changed | links_changed | (inputs.in_flight ^ basis.in_flight) | {
            ticket for ticket in inputs.backoff.keys() | basis.backoff.keys()
            if inputs.backoff.get(ticket) != basis.backoff.get(ticket)}
        # A copy's source ticket is its magic (plan_target_incrementally refuses an order that is not a copy).
        changed |= {order.magic for order in orders_changed}
        changed |= self._fates_changed(view, basis, inputs.links)
        changed |= priced
        if len(changed) * 4 > len(self._source_map) + 16:
            return None  # most of it changed: the full plan is as quick
        return plan_target_incrementally(self._source_map, inputs, index, basis.plan, changed, orders_changed)

    @staticmethod
    def _fates_changed(view: TerminalView, basis: _Basis, links: Mapping[int, Link]) -> set[int]:
        """The source tickets whose link's copy has another fate in ``view.closed`` than at the last plan (a
        snapshot tells of orders that left, and every history answer makes the plan a full one): the planner
        reads a fate only there (``_fate_of``, ``_filled``: by the link's copy ticket). An entry trimmed away
        counts as changed too."""
        if view.closed == basis.closed:  # the usual case; entries a snapshot repeats are equal by value
            return set()
        tickets = {ticket for ticket, _ in view.closed.items() ^ basis.closed.items()}
        return {source_ticket for source_ticket, link in links.items() if link.copy_ticket in tickets}

    def _gate(self, view: TerminalView, plan: TargetPlan) -> list[Action]:
        """What of ``plan`` may be sent now (a pause, close-only, a risk guard, and between two scheduled runs the
        schedule, hold the rest back, unsent: nothing of a held action reaches the state, so the next plan finds it
        as if it had never been planned)."""
        # Read only when a max_total_volume guard is set: not built for every plan.
        in_flight = (flight.action for flight in self.in_flight[view.name].values())
        allowed = self.controls.gate(view, plan.actions, in_flight)
        return self.schedule.gate(view.name, allowed, plan,
                                  busy=self.outstanding(view.name) or self.source.requests.outstanding())

    def _positions_not_followed(self, view: TerminalView) -> str:
        """Why the positions of ``view``'s copies are not followed ("" when they are): a worker too old to
        speak of positions, or a netting account, where a copy's position is not its own (fills merge per
        symbol), so following it could close or move someone else's trade. Said once per cause."""
        why = ""
        for terminal in (self.source, view):
            if terminal.protocol_minor < 2:
                why = (f"the worker of {terminal.name} is older than 0.3 (protocol 1.{terminal.protocol_minor}): "
                       "positions are followed with workers of 0.3 or newer")
            elif terminal.margin_mode is not None and terminal.margin_mode != AccountMarginMode.RETAIL_HEDGING:
                why = (f"{terminal.name} is a netting account: positions merge per symbol there, so a copy's "
                       "position is not its own; positions are not followed on this target (pending orders are "
                       "still copied)")
            if why:
                break
        if self._logged_not_followed.get(view.name) != why:
            if why:
                logger.warning("{}: {}", view.name, why)
            self._logged_not_followed[view.name] = why
        return why

    def _inputs(self, view: TerminalView, orphan_removals: Mapping[int, ConfirmedOrphan],
                position_closes: Mapping[int, ConfirmedOrphan], positions_not_followed: str,
                in_flight: frozenset[int], backoff: Mapping[int, str]) -> TargetInputs:
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
            in_flight=in_flight,
            backoff=backoff,
            source_positions=source.positions,
            source_position_history=self.source.position_history,
            position_history=view.position_history,
            position_closes=position_closes,
            positions_not_followed=positions_not_followed,
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
        """What the plan found (copies to adopt, copies that left, links done with) goes to the state."""
        for link in plan.adopt:
            self.state.adopt_link(view.name, link)
            self.events.emit(CopyFoundOnTarget(target=view.name, source_ticket=link.source_ticket,
                                               copy_ticket=link.copy_ticket,
                                               expected=self.state.created or self.state.rebuilt))
        for update in plan.link_updates:
            self.state.move_link(view.name, update.source_ticket, LinkMove.arriving_at(update.status))
            self.events.emit(CopyLeft(target=view.name, source_ticket=update.source_ticket,
                                      copy_ticket=update.copy_ticket, status=update.status, detail=update.detail))
        for ticket in plan.finished_links:
            self.state.drop_link(view.name, ticket)
        self._log_skips(view.name, plan.skips)
        for duplicate in plan.duplicates:
            logger.error("{}: order #{} is a second copy of source #{}", view.name, duplicate.ticket, duplicate.magic)

    def _log_skips(self, target: str, skips: list[Skip]) -> None:
        current = {skip.source_ticket: skip for skip in skips}
        logged = self._logged_skips.setdefault(target, {})
        waiting: dict[tuple[str, str], list[Skip]] = {}  # orders newly waiting for the same thing: one event
        for ticket, skip in current.items():
            text = f"{skip.reason.value}: {skip.detail}" if skip.detail else skip.reason.value
            if logged.get(ticket) != text:  # once per cause, not once per cycle
                logged[ticket] = text
                if skip.reason.waiting:
                    waiting.setdefault((text, skip.symbols()), []).append(skip)
                else:
                    self.events.emit(OrderSkipped(target=target, skip=skip))
        for first, *rest in waiting.values():
            self.events.emit(OrderSkipped(target=target, skip=first,
                                          others=tuple(skip.source_ticket for skip in rest)))
        for ticket in [ticket for ticket in logged if ticket not in current]:
            del logged[ticket]

    # ---- for the runner and the summary --------------------------------------------------------

    def control(self, name: str) -> TargetControl:
        """The mode in force on target ``name`` (active, paused, close-only), why, by whom, since when."""
        return self.controls.control(name)

    def apply_control(self, name: str, control: TargetControl) -> None:
        """``control`` was just recorded for target ``name`` (``coordinator.persistence.controls.set_control``) by
        a part of the coordinator that tells of it itself (remove-copies): in force at once, not told again."""
        self.controls.apply(name, control)

    def positions_not_followed(self, view: TerminalView) -> str:
        """Why the copier does not act on ``view``'s copy positions ("" when it does): for the kill switch."""
        return self._positions_not_followed(view)

    def outstanding(self, name: str) -> bool:
        """Commands or questions sent to ``name``'s worker and not answered yet."""
        view = self.views[name]
        return bool(self.in_flight.get(name)) or view.requests.outstanding()

    def busy(self) -> bool:
        """Commands, symbol or history requests are still outstanding (a request unanswered for long is given
        up: the worker may have gone; it is asked again when needed)."""
        return self.sessions.requests_outstanding(self._clock()) or self.ledger.busy()

    def waiting_for_facts(self) -> bool:
        """Some plan waits for facts that arrive by themselves within seconds: a server clock, prices, a
        symbol specification, a history record."""
        quick = (SkipReason.NOT_YET, SkipReason.SYMBOL_PENDING, SkipReason.HISTORY_PENDING)
        return any(skip.reason in quick for report in self.reports.values() if report.last_plan
                   for skip in report.last_plan.skips) or any(
            report.last_plan.needed_position_history for report in self.reports.values() if report.last_plan)

    def next_retry_in(self) -> float | None:
        now = self._clock()
        pending = [at for retries in self.retries.values() if (at := retries.next_retry_at()) is not None]
        return max(0.0, min(pending) - now) if pending else None

    def publish_status(self, *, final: bool = False) -> None:
        """Write every terminal's status for ``mt5-copier status`` (another process reads it)."""
        self.status.publish(final=final)


def _prices(quotes: Mapping[str, Quote]) -> dict[str, tuple[float, float, bool]]:
    """Quotes as the planner reads them: bid, ask, and whether a live tick was seen at all (``quote.time`` is
    read only as that, coordinator/domain/planner.py). Each heartbeat brings a new tick time even when the price
    stands still; that alone must not make the next plan a full one."""
    return {symbol: (quote.bid, quote.ask, bool(quote.time)) for symbol, quote in quotes.items()}


__all__ = ["Engine"]
