"""Worker sessions: who is connected, as which boot, how fresh, on which account, on which server clock, and
what each worker was asked and has not answered yet.

Every message from a worker enters here. The session part of it (hello, goodbye, errors, heartbeats, the
boot and order checks of snapshots, symbol and history answers) is handled here and nowhere else; what it
means for copying (a snapshot, command results, a market that opened) goes on to the ``SessionListener``
(the engine). A new boot or a lost worker resets the session in one place (``TerminalView.forget_boot``).
Single-threaded, on the coordinator's loop; the clock is injected.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from loguru import logger

from config import AppConfig, TargetConfig, TerminalConfig
from coordinator import __version__
from coordinator.domain.clocks import estimate_offset
from coordinator.domain.events import (
    Event,
    TerminalDisconnected,
    TerminalReconnected,
    WorkerBack,
    WorkerDown,
    WorkerExited,
    WrongAccount,
)
from coordinator.domain.report import trim
from coordinator.runtime.views import TerminalView
from protocol import (
    PROTOCOL_MINOR,
    ClosedOrder,
    CommandResults,
    ErrorMessage,
    Goodbye,
    Heartbeat,
    Hello,
    HistoryReport,
    HistoryRequest,
    Message,
    Snapshot,
    SnapshotChanges,
    SymbolRequest,
    SymbolSpecs,
    Welcome,
)
from protocol.mt5 import OrderState
from protocol.snapshot_changes import ChangesDoNotApply, as_snapshot, rebuilt_lists

OFFSET_WINDOW_SECONDS = 6 * 3600.0  # a clock change (daylight saving) is accepted after this long
# Worker error codes that will not mend themselves within seconds: a --once run stops waiting for that terminal.
DEFINITE_TERMINAL_FAILURES = frozenset({"terminal-not_found", "terminal-authorization_failed",
                                        "terminal-ipc_timeout"})
# A terminal out of reach (its worker lost it, or it lost its broker) this long is told of (TerminalDisconnected):
# a terminal reconnecting to its broker takes seconds, and that is no news.
TERMINAL_OUT_OF_REACH_SECONDS = 30.0

SendFunction = Callable[[str, Message], bool]


class _LinkBefore(NamedTuple):
    """A view's link as it was when a hello arrived (``note_welcome`` tells a reconnect from a repeat)."""

    welcomed: bool
    boot_id: str
    terminal_link_ok: bool
    spoke_since_welcome: bool


@dataclass
class _OutOfReach:
    since: float  # clock
    told: bool = False


class SessionListener(Protocol):
    """What the sessions tell the engine: facts that change what is copied."""

    def terminal_changed(self, view: TerminalView) -> None:
        """What ``view`` reported (an account, specs, history, its broker link) changes the plans on it."""

    def snapshot_arrived(self, view: TerminalView, snapshot: Snapshot, previous: Snapshot | None) -> None:
        """A new snapshot of the terminal's orders, from the current boot, in order."""

    def snapshot_still_holds(self, view: TerminalView, snapshot: Snapshot) -> None:
        """A heartbeat said the last snapshot is still the terminal's state."""

    def results_arrived(self, view: TerminalView, message: CommandResults) -> None:
        """Answers to commands sent to ``view``."""

    def market_opened(self, view: TerminalView, symbol: str) -> None:
        """A tick newer than a "market closed" refusal: the session of ``symbol`` is open again."""


class WorkerSessions:
    def __init__(self, config: AppConfig, send: SendFunction, clock: Callable[[], float],
                 listener: SessionListener, wall_ms: Callable[[], int], emit: Callable[[Event], None]) -> None:
        """``emit``: where what happens to the workers, their terminals' links and accounts is told (the engine's
        events: the alerts take it from there)."""
        self._config = config
        self._send = send
        self._emit = emit
        self._clock = clock
        self._wall_ms = wall_ms
        self._listener = listener
        self.source = TerminalView(config.source)
        self.targets = {target.name: TerminalView(target.terminal, target) for target in config.targets
                        if target.copy.enabled}
        self.views = {self.source.name: self.source, **self.targets}
        for view in self.views.values():
            if view.config.server_utc_offset is not None:
                view.server_offset = round(view.config.server_utc_offset * 3600)
        self._next_heartbeat = 0.0
        self._down: dict[str, float] = {}  # terminals whose worker was told of as down: since when (clock)
        self._out_of_reach: dict[str, _OutOfReach] = {}  # terminals whose worker lost them, or they their broker

    # ---- messages in ---------------------------------------------------------------------------

    def receive(self, name: str, message: Message) -> None:
        view = self.views.get(name)
        if view is None:
            logger.error("a worker calling itself {!r} connected, but no terminal has that name", name)
            self._send(name, ErrorMessage(code="unknown-terminal", fatal=True,
                                          message=f"no terminal named {name!r} in the coordinator's config"))
            return
        now = self._clock()
        view.last_seen = now
        if isinstance(message, Hello):
            before = _LinkBefore(view.welcomed, view.boot_id, view.terminal_link_ok, view.spoke_since_welcome)
            self._on_hello(view, message)
            if view.hello is message:  # welcomed (a refused hello leaves the view as it was)
                self.note_welcome(view, message, before)
                self._heard_again(view)
            return
        if view.welcomed:
            view.spoke_since_welcome = True
        if isinstance(message, ErrorMessage):
            self._on_error(view, message)
        elif isinstance(message, Goodbye):
            logger.info("{}: worker is leaving: {}", name, message.reason)
            view.online = False
            view.forget_boot()
            if view.config.remote:  # a local one's exit follows, told by the supervisor if no one asked for it
                self._went_down(view, f"its worker left ({message.reason})")
        elif not view.welcomed:
            self._send(name, ErrorMessage(code="hello-required", message="send hello first"))
        elif isinstance(message, Snapshot):
            self._on_snapshot(view, message, now)
        elif isinstance(message, SnapshotChanges):
            snapshot = self._rebuilt(view, message)
            if snapshot is not None:
                self._on_snapshot(view, snapshot, now)
        elif isinstance(message, Heartbeat):
            self._on_heartbeat(view, message, now)
        elif isinstance(message, CommandResults):
            self._listener.results_arrived(view, message)
        elif isinstance(message, SymbolSpecs):
            self._on_specs(view, message)
        elif isinstance(message, HistoryReport):
            self._on_history(view, message, now)
        else:
            logger.warning("{}: ignored a {} message: workers do not send it", name, type(message).__name__)
        self._heard_again(view)

    def _on_hello(self, view: TerminalView, hello: Hello) -> None:
        config = view.config
        if hello.terminal != view.name:
            problem, code = f"calls itself {hello.terminal!r} on the link of {view.name!r}", "identity-mismatch"
        else:
            problem, code = "; ".join(_hello_mismatches(config, hello)), "hello-mismatch"
        if problem:
            message = f"worker {view.name} {problem}"
            logger.error("{}: refusing it", message)
            view.last_error = message
            self._send(view.name, ErrorMessage(code=code, message=message, fatal=True))
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
        self._update_clock(view, hello.server_time)
        logger.info("{} ({}) connected: account {}@{}, {} terminal, balance {:.2f} {}", view.name,
                    config.role.value, hello.account.login, hello.account.server, hello.backend, hello.account.balance,
                    hello.account.currency)
        coordinator = self._config.coordinator
        self._send(view.name, Welcome(
            coordinator_version=__version__, protocol_minor=PROTOCOL_MINOR,
            heartbeat_interval=coordinator.heartbeat_interval, worker_timeout=coordinator.worker_timeout,
            role=config.role.value,  # a worker from a worker file knows no role: it takes this one
        ))

    def _on_error(self, view: TerminalView, message: ErrorMessage) -> None:
        if message.message != view.last_error:
            logger.error("{}: {}", view.name, message.message)
        view.last_error = message.message
        if message.code.startswith("terminal-"):
            view.terminal_link_ok = False
        if message.code in DEFINITE_TERMINAL_FAILURES:
            view.definite_failure = message.message

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
        view.note_account_figures(snapshot.balance, snapshot.equity)
        view.online = True
        for record in snapshot.closed:
            # A worker's "not in the history yet" never overwrites an answer already had (a record, or none).
            if record.state != OrderState.NOT_IN_HISTORY_YET or record.ticket not in view.closed:
                view.closed[record.ticket] = record
        trim(view.closed)
        self._listener.snapshot_arrived(view, snapshot, previous)

    def _rebuilt(self, view: TerminalView, changes: SnapshotChanges) -> Snapshot | None:
        """The whole snapshot ``changes`` stands for, its orders (and since 1.5 its closed orders' records) rebuilt
        on the snapshot held, whose unchanged entries it shares (protocol/snapshot_changes.py); None when it does not
        apply: old news, or changes to a snapshot not held here (one lost on the way, another boot), for which the
        worker is asked for a whole one."""
        if changes.boot_id != view.boot_id:
            self._send(view.name, ErrorMessage(code="hello-required", message="snapshot from an unknown boot"))
            return None
        base = view.snapshot
        if base is not None and base.boot_id == changes.boot_id and changes.seq <= base.seq:
            return None  # out of order or repeated: the newer one already applies
        problem = ""
        if base is None or base.boot_id != changes.boot_id or base.seq != changes.base_seq:
            held = f"snapshot {base.seq}" if base is not None and base.boot_id == changes.boot_id else \
                "no snapshot of this worker process"
            problem = f"they are changes to snapshot {changes.base_seq}, and the coordinator holds {held}"
        else:
            try:
                orders, closed = rebuilt_lists(base, changes)
            except ChangesDoNotApply as e:
                problem = str(e)
        if problem:
            logger.info("{}: snapshot changes not applied ({}); asking for a whole snapshot", view.name, problem)
            self._send(view.name, ErrorMessage(code="snapshot-required", message=f"snapshot changes not applied: "
                                                                              f"{problem}"))
            return None
        return as_snapshot(changes, orders, closed)

    def _note_account(self, view: TerminalView, login: int, server: str) -> None:
        """The account a terminal reports, checked against its config on every hello and snapshot. A source on
        the wrong account would have its orders copied everywhere (and the targets' copies orphaned); a target
        on the wrong account would receive trades meant for another: both freeze until the account is back."""
        if not view.report_account(login, server):
            return
        config = view.config
        self._emit(WrongAccount(terminal=view.name, role=config.role.value, account=view.account,
                                configured=f"{config.login}@{config.server}", cleared=not view.account_problem))
        if view.account_problem:
            logger.error("{}", view.account_problem)
            view.last_error = view.account_problem
        else:
            logger.info("{}: logged into the configured account {} again; copying resumes", view.name, view.account)
            if view.last_error.startswith(f"terminal {view.name} is logged into account"):
                view.last_error = ""
        self._listener.terminal_changed(view)

    def _on_heartbeat(self, view: TerminalView, message: Heartbeat, now: float) -> None:
        if message.boot_id != view.boot_id:
            self._send(view.name, ErrorMessage(code="hello-required", message="heartbeat from an unknown boot"))
            return
        if not view.online:
            logger.info("{}: worker is back", view.name)
            view.online = True
        # The worker's clock against ours (to within the link's latency): deadlines are sent in its clock.
        view.clock_skew_ms = message.sent_at_ms - self._wall_ms()
        snapshot = view.snapshot
        seq = snapshot.seq if snapshot is not None else 0
        if snapshot is not None and message.last_seq == seq:
            view.confirmed_at = now
            # A quiet terminal sends no snapshots; its heartbeat says the last one still holds.
            self._listener.snapshot_still_holds(view, snapshot)
        elif message.last_seq > seq:
            # A snapshot was lost on the way (a reconnect): without it this terminal would stay stale.
            self._send(view.name, ErrorMessage(code="snapshot-required", message=f"last snapshot seen: {seq}"))
        view.note_account_figures(message.balance, message.equity)  # 0, 0 from a worker older than 1.3: kept
        if view.terminal_link_ok != message.connected:
            view.terminal_link_ok = message.connected
            self._listener.terminal_changed(view)
        for quote in message.quotes:
            view.quotes[quote.symbol] = quote
            if quote.symbol in view.closed_markets:
                last_tick = view.closed_markets[quote.symbol]
                if last_tick is None:
                    view.closed_markets[quote.symbol] = quote.time  # the first tick seen: what "newer" means
                elif quote.time > last_tick:
                    del view.closed_markets[quote.symbol]
                    logger.info("{}: {} trades again (a new tick); sending what waited for its session", view.name,
                                quote.symbol)
                    self._listener.market_opened(view, quote.symbol)
        self._update_clock(view, message.server_time)

    def market_closed(self, view: TerminalView, symbol: str) -> None:
        """The broker said the market of ``symbol`` is closed: nothing more is sent for that symbol on this
        target until a tick newer than the refusal shows the session open (``_on_heartbeat`` watches the ticks).
        A closed market makes no ticks, so "newer" is measured from the broker's clock at the refusal when it is
        known (a second's grace for clocks and whole-second tick times), else from the last tick seen."""
        if symbol in view.closed_markets:
            return
        quote = view.quotes.get(symbol)
        last_tick = quote.time if quote is not None else None
        if view.server_offset is not None:
            refused_at = self._wall_ms() // 1000 + view.server_offset - 1
            last_tick = max(last_tick or 0, refused_at)
        view.closed_markets[symbol] = last_tick
        logger.warning("{}: the market of {} is closed; what waits for it is sent as soon as its next tick shows "
                       "the session open", view.name, symbol)

    def _update_clock(self, view: TerminalView, server_time: int) -> None:
        """A tick's time can only be old, never early: the largest estimate of the last hours is the truth
        (a quiet market would otherwise pull the offset down). Measured against our own clock."""
        if view.config.server_utc_offset is not None or not server_time:
            return
        now = self._clock()
        estimate = estimate_offset(server_time, self._wall_ms() / 1000)
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
        self._listener.terminal_changed(view)

    def _on_history(self, view: TerminalView, message: HistoryReport, now: float) -> None:
        for record in message.orders:
            view.closed[record.ticket] = record
            view.requests.history_found(record.ticket)
        for ticket in message.unknown:
            view.closed[ticket] = ClosedOrder(ticket=ticket, symbol="", type=0, state=OrderState.NO_RECORD, magic=0,
                                              comment="")
            view.requests.history_has_no_record(ticket, now)
        for position in message.positions:
            view.position_history[position.position_id] = position
            view.positions_without_deals.discard(position.position_id)
            view.requests.position_answered(position.position_id, now)
        for position_id in message.unknown_positions:
            view.positions_without_deals.add(position_id)
            view.requests.position_answered(position_id, now)
        trim(view.position_history)
        self._listener.terminal_changed(view)

    # ---- questions out -------------------------------------------------------------------------

    def request_symbols(self, view: TerminalView, symbols: Iterable[str], now: float) -> int:
        """Ask ``view``'s worker to describe the symbols it has not described (or said are missing) and was not
        asked for lately; the number of requests sent (0 or 1)."""
        wanted = view.requests.symbols_to_ask(symbols, view.specs.keys() | view.missing_symbols, now)
        if not wanted:
            return 0
        if self._send(view.name, SymbolRequest(request_id=uuid.uuid4().hex[:12], symbols=tuple(wanted))):
            view.requests.asked_symbols(wanted, now)
            return 1
        return 0

    def request_history(self, view: TerminalView, tickets: Iterable[int], now: float,
                        positions: Iterable[int] = ()) -> int:
        """Ask ``view``'s worker what became of the orders ``tickets`` (those not asked lately, within the bounded
        looks for "no record") and of the positions ``positions`` (their deals; only of a worker that speaks
        protocol 1.2); the number of requests sent (0 or 1)."""
        wanted = view.requests.history_to_ask(tickets, now)
        wanted_positions = view.requests.positions_to_ask(positions, now) if view.protocol_minor >= 2 else []
        if not wanted and not wanted_positions:
            return 0
        request = HistoryRequest(request_id=uuid.uuid4().hex[:12], tickets=tuple(wanted),
                                 positions=tuple(wanted_positions))
        if self._send(view.name, request):
            view.requests.asked_history(wanted, now)
            view.requests.asked_positions(wanted_positions, now)
            return 1
        return 0

    def requests_outstanding(self, now: float) -> bool:
        """Symbol or history requests still unanswered (one unanswered for long is given up: the worker may
        have gone; it is asked again when needed)."""
        for view in self.views.values():
            view.requests.give_up_old(now)
        return any(view.requests.outstanding() for view in self.views.values())

    # ---- time and exits ------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Notice workers gone silent; ping the welcomed ones every ``heartbeat_interval``."""
        coordinator = self._config.coordinator
        for view in self.views.values():
            if view.online and now - view.last_seen > coordinator.worker_timeout:
                view.online = False
                logger.warning("{}: worker silent for {:.1f}s; nothing depending on it is decided until it is back",
                               view.name, now - view.last_seen)
                self._went_down(view, f"its worker has been silent for {now - view.last_seen:.0f} s (worker_timeout "
                                      f"{coordinator.worker_timeout:g} s)", since=view.last_seen)
            self._watch_terminal(view, now)
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + coordinator.heartbeat_interval
            for view in self.views.values():
                if view.welcomed:
                    self._send(view.name, Heartbeat(sent_at_ms=self._wall_ms()))

    def worker_exited(self, view: TerminalView, code: int) -> None:
        """The worker process of ``view`` is gone: its session ends (a new worker starts afresh)."""
        view.online = False
        view.forget_boot()
        if code != 0:
            view.last_error = f"worker exited with code {code}" + (f" ({view.last_error})" if view.last_error else "")

    def note_unavailable(self, view: TerminalView, why: str) -> None:
        """The runner gave up waiting for ``view`` (no hello in time), or killed its worker as hung: ``why`` is
        its last error until it is heard from again."""
        view.last_error = why
        self._went_down(view, why)

    def worker_lost(self, view: TerminalView, code: int, *, restart_in: float | None, restarts: int) -> None:
        """The local worker of ``view`` exited when no one asked it to (the supervisor saw it): told at once, with
        whether and when it is restarted; its return is told too (``_heard_again``)."""
        self._down.setdefault(view.name, self._clock())
        self._emit(WorkerExited(terminal=view.name, role=view.config.role.value, code=code, restart_in=restart_in,
                                restarts=restarts))

    # ---- what is told of the workers and their terminals ---------------------------------------

    def _expected(self, view: TerminalView) -> bool:
        """Whether ``view`` is one the coordinator copies from or to (not one a reload is letting go)."""
        return view is self.source or self.targets.get(view.name) is view

    def _went_down(self, view: TerminalView, why: str, since: float | None = None) -> None:
        """Tell once that ``view``'s worker is gone (``since``: when it was last heard; now by default), until it is
        heard from again."""
        if view.name in self._down or not self._expected(view):
            return
        self._down[view.name] = self._clock() if since is None else since
        self._emit(WorkerDown(terminal=view.name, role=view.config.role.value, remote=view.config.remote, why=why))

    def _heard_again(self, view: TerminalView) -> None:
        """A worker told of as down is welcomed and talking again: tell that it is back."""
        if view.name not in self._down or not (view.welcomed and view.online):
            return
        since = self._down.pop(view.name)
        if self._expected(view):
            self._emit(WorkerBack(terminal=view.name, role=view.config.role.value, down_for=self._clock() - since))

    def _watch_terminal(self, view: TerminalView, now: float) -> None:
        """Tell of a terminal out of reach for ``TERMINAL_OUT_OF_REACH_SECONDS`` (its worker lost it, or it lost its
        broker), and of its return. Only while its worker talks: a worker that is down is told of as such."""
        if not (view.welcomed and view.online):
            return
        why = ""
        if not view.terminal_link_ok:
            why = f"its worker lost the terminal ({view.last_error or 'no link'})"
        elif view.snapshot is not None and not view.snapshot.connected:
            why = "the terminal is not connected to its broker"
        out = self._out_of_reach.get(view.name)
        role = view.config.role.value
        if why and out is None:
            self._out_of_reach[view.name] = _OutOfReach(since=now)
        elif why and out is not None and not out.told and now - out.since >= TERMINAL_OUT_OF_REACH_SECONDS:
            out.told = True
            if self._expected(view):
                self._emit(TerminalDisconnected(terminal=view.name, role=role, why=why, for_seconds=now - out.since))
        elif not why and out is not None:
            del self._out_of_reach[view.name]
            if out.told and self._expected(view):
                self._emit(TerminalReconnected(terminal=view.name, role=role, down_for=now - out.since))

    def note_restarts(self, view: TerminalView, restarts: int) -> None:
        view.restarts = restarts

    def all_stopped(self) -> None:
        """The coordinator stopped its workers: none is online any more."""
        for view in self.views.values():
            view.online = False

    # ---- the link, for status ------------------------------------------------------------------

    def note_welcome(self, view: TerminalView, hello: Hello, before: _LinkBefore) -> None:
        """``view``'s worker was just welcomed: note when its link opened and whether this is a reconnect.

        A reconnect is a welcome after the first one of this coordinator's life that is a new worker process
        (a new boot id) or the same process on a new link (it had gone quiet or been lost, or it spoke on its
        old link before this hello). Not a reconnect: a hello repeated before its welcome reached the worker
        (sent again, or queued while the coordinator was away), one sent because the worker re-attached to its
        terminal, or one the coordinator asked for (``ask_hello``).
        """
        asked, view.hello_asked = view.hello_asked, False
        spoke, view.spoke_since_welcome = before.spoke_since_welcome, False
        now = self._wall_ms() / 1000
        if not view.ever_welcomed:
            view.ever_welcomed = True
            view.connected_since = now
            return
        same_link = (hello.boot_id == before.boot_id and before.welcomed
                     and (asked or not before.terminal_link_ok or not spoke))
        if same_link:
            return
        view.reconnects += 1
        view.connected_since = now

    # ---- the config changes (a reload) ---------------------------------------------------------

    def use_config(self, config: AppConfig) -> None:
        """The coordinator runs ``config`` from now on (heartbeats, timeouts, the checks of hellos)."""
        self._config = config

    def add_view(self, terminal: TerminalConfig, target: TargetConfig | None = None) -> TerminalView:
        """A terminal the config gained (a target, or a disabled one enabled): its worker is welcome from now."""
        view = TerminalView(terminal, target)
        self.configure_view(view, terminal, target)
        self.views[view.name] = view
        if target is not None:
            self.targets[view.name] = view
        return view

    def configure_view(self, view: TerminalView, terminal: TerminalConfig, target: TargetConfig | None) -> None:
        """``view``'s entry is now ``terminal`` (and ``target``): what the coordinator itself reads of it (copy
        rules, a configured server clock) applies at once; its worker's session is left as it is."""
        if terminal.server_utc_offset != view.config.server_utc_offset or view.server_offset is None:
            view.server_offset = round(terminal.server_utc_offset * 3600) \
                if terminal.server_utc_offset is not None else None
            view.offset_measured_at = 0.0
        view.config = terminal
        view.target = target

    def stop_planning(self, name: str) -> TerminalView | None:
        """The target ``name`` left the config (or was disabled): nothing is planned for it any more, but its
        worker's answers to what it was sent are still heard until ``drop_view``."""
        return self.targets.pop(name, None)

    def drop_view(self, name: str) -> None:
        """Forget ``name`` entirely: a worker that says hello for it from now on is refused as unknown."""
        self.targets.pop(name, None)
        self.views.pop(name, None)
        self._down.pop(name, None)
        self._out_of_reach.pop(name, None)

    def ask_hello(self, view: TerminalView, why: str) -> bool:
        """Ask ``view``'s worker to say hello again on its link (its hello is then checked against the entry
        as it is now); not counted as a reconnect."""
        if not view.welcomed:
            return False
        view.hello_asked = True
        return self._send(view.name, ErrorMessage(code="hello-required", message=why))

    def ready(self, view: TerminalView) -> bool:
        """Welcomed, with a first snapshot."""
        return view.welcomed and view.snapshot is not None

    def talking(self, view: TerminalView, now: float) -> bool:
        """The worker is online, or was heard from within ``worker_timeout``."""
        return view.online or (view.last_seen > 0
                               and now - view.last_seen <= self._config.coordinator.worker_timeout)


def _hello_mismatches(config: TerminalConfig, hello: Hello) -> list[str]:
    """How a hello disagrees with the coordinator's entry for its terminal: its role, and the account its own
    config names (protocol 1.3; 0 and "" from older workers are not checked). A worker from a worker file knows
    no role: it says "" and takes the Welcome's."""
    problems = []
    if hello.role != config.role.value and not (hello.worker_file and not hello.role):
        problems.append(f"runs as {hello.role or 'no role'}, the coordinator's config has it as {config.role.value}")
    login = hello.configured_login or config.login
    server = hello.configured_server or config.server
    if (login, server) != (config.login, config.server):
        problems.append(f"is configured for account {login}@{server} in its own config file, and the coordinator's "
                        f"config names {config.login}@{config.server} for it: make the two agree ([terminal] login "
                        "and server of the worker's file, or this terminal's entry in the coordinator's config)")
    return problems


def now_ms() -> int:
    """UTC milliseconds on this machine's clock (what the wire's ``*_ms`` fields carry)."""
    return int(time.time() * 1000)
