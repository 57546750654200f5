"""The terminal worker's loop: one thread owns both the terminal and the socket.

It reports facts (hello, snapshots, symbol specifications, command results) and executes commands; it
decides nothing about copying. A single thread on purpose: the MetaTrader5 package is per-process state
with undocumented thread safety, and a worker stuck inside a terminal call stops heartbeating, which is
exactly how the coordinator should learn that it is stuck.

A worker the coordinator started (``parent_pid``) lives and dies with it. One started by hand (another
machine) is a service: it never exits because its coordinator is gone, restarting or unreachable; it keeps its
terminal and its memory of executed commands, says hello until it is welcomed again, and says every 30 s what
it is waiting for. It exits on a signal (0), when told its terminal left the coordinator's config (0), on a
configuration error (2: its key refused, its hello refused, another protocol version) or on a crash (3).
"""

from __future__ import annotations

import math
import os
import socket as socket_module
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import takewhile

import msgspec
import zmq
from loguru import logger

from config.exit_codes import ExitCode
from config.faults import crash_point
from coordinator import __version__ as WORKER_VERSION  # one version for the whole product
from protocol import (
    PROTOCOL_MINOR,
    ClosedOrder,
    Command,
    CommandBatch,
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
    PositionFacts,
    PositionHistory,
    ProtocolError,
    Quote,
    Shutdown,
    Snapshot,
    SymbolRequest,
    SymbolSpecs,
    Welcome,
    decode,
)
from protocol.curve import CurveClient
from protocol.malformed_log import MalformedMessageLog
from protocol.messages import SHUTDOWN_TERMINAL_REMOVED
from protocol.mt5 import LastError, OrderState
from protocol.snapshot_changes import as_changes, changes_since
from protocol.transport import connect_dealer, recv_frames, send_message
from protocol.version import protocol_mismatch
from terminal_worker.adapter import MT5Adapter
from terminal_worker.errors import TerminalError
from terminal_worker.lifeline import parent_alive
from terminal_worker.link_watch import LinkWatch

CLOSED_ORDER_MEMORY_SECONDS = 600.0  # how long a vanished order is repeated in snapshots (level-triggered)
CLOSED_ORDER_MEMORY_COUNT = 500
HISTORY_RETRY_SECONDS = 5.0  # history may lag the order's disappearance: keep asking this long
QUOTES_REFRESH_SECONDS = 1.0
# Every worker reads all of its terminal (orders, positions, account, connection) every poll_interval, and a
# target also right after each batch of commands (their effects go to the coordinator before their results).
# Only the source's detection is on every copy's path: between its full reads it probes its orders alone, and a
# probe that sees a change makes a full read at once. Orders come in bursts (an order, its edits, the next one):
# for SOURCE_BUSY_SECONDS after its orders last changed the source probes every SOURCE_PROBE_SECONDS (a change
# seen within 5 ms), and when quiet every SOURCE_IDLE_PROBE_SECONDS (within 40 ms). A probe is one orders_get
# and a comparison with the last answer, but a process woken from a wait costs ~0.2 ms of CPU on a small VM
# before it does anything, and a terminal's read from cold caches ~0.3 ms more: at 200 a second that is 8-10 %
# of a core, and even 50 a second (20 ms) was 2.6-3 %, the largest part of an idle fleet's cost, spent waiting
# for a trader who is not trading. 40 ms halves it; the first order after a pause is copied ~10 ms later on
# average (a pending order waits for its price anyway), and the rest of its burst within 5 ms as before.
SOURCE_PROBE_SECONDS = 0.005
SOURCE_IDLE_PROBE_SECONDS = 0.04
SOURCE_BUSY_SECONDS = 5.0
# The full-read pace when the config leaves poll_interval out. The source's positions and account are read this
# often (a position closed on the source is copied from its full reads); a target's reads only report what
# happened there by itself (a fill, a person's edit), and every extra wake-up of 20 workers costs CPU.
SOURCE_POLL_SECONDS = 0.1
TARGET_POLL_SECONDS = 1.0
# A quiet source with no open position has little for a full read to find that its probe would not see first:
# a position appears only when a pending order fills (it leaves the pending list: the probe sees that, and a full
# read follows at once), and a switch to an account with other orders changes them too. Its full reads then
# refresh the balance and the connection: once a second, so a broker connection the terminal reports lost
# pauses copying within a second of its report instead of a tenth.
SOURCE_QUIET_POLL_SECONDS = 1.0
# The protocol minor from which a coordinator takes snapshots as their orders' changes (SnapshotChanges), and the
# one from which it takes the closed orders' records as their changes too.
SNAPSHOT_CHANGES_MINOR = 4
CLOSED_CHANGES_MINOR = 5
# The longest wait for a message: a signal's stop request and the parent check are seen within it. Above an idle
# target's pace with the coordinator's pings (PING_SLACK intervals of 1 s): a cap below it woke every idle target
# a second time each second, for nothing, just before the ping that does its read and heartbeat.
MAX_WAIT_MS = 1500
# Whether the coordinator still lives is checked at most this often, not at each wake-up (a busy source wakes 200
# times a second; on Windows each check opens a process handle). A worker without its coordinator is sent nothing
# to execute, so a second's delay in noticing changes nothing but when it exits.
PARENT_CHECK_SECONDS = 0.5
RESULT_MEMORY = 2000  # replayed on duplicate command ids instead of trading twice
MAX_QUOTED_SYMBOLS = 64  # quotes ride on every heartbeat: keep them small
# Hellos that get no welcome for this long reopen the socket: libzmq gives up a connection for good after
# some handshake failures (an oversized frame, a socket of the wrong type on the port), and a DEALER never
# reconnects by itself after that. Doubled per attempt up to the maximum, reset by a welcome.
WELCOME_WAIT_SECONDS = 5.0
WELCOME_WAIT_MAX_SECONDS = 30.0
# While not welcomed, a WARNING says what the worker waits for: first after WELCOME_WAIT_SECONDS, then this often.
WAITING_LOG_INTERVAL_SECONDS = 30.0
# While the coordinator's pings (its heartbeats, to every worker at once) come, a worker's own heartbeat and a
# target's read wait this much longer than their interval, so that the ping's wake-up does them (the coordinator
# sends its pings from timers that run 5 times a second: they come 1.0-1.2 intervals apart).
PING_SLACK = 1.25
# The link's socket events (a refused key, why the coordinator cannot be reached) are read at most this often:
# they change what is logged and, for a refused key, end the worker, neither of which needs the moment. Read on
# every wake-up of a busy source (200 a second), they were a seventh of its CPU.
LINK_WATCH_SECONDS = 0.25


@dataclass
class _TerminalState:
    orders: tuple[PendingOrder, ...] = ()
    positions: tuple[PositionFacts, ...] = ()
    connected: bool = False
    trade_allowed: bool = False
    account: tuple[int, str] | None = None  # (login, server) the terminal was logged into at the last read
    # The orders that left the pending list, by ticket, with when they were seen leaving: in that order, so the
    # times only grow (Worker._track_closed rests on it).
    closed: dict[int, tuple[ClosedOrder, float]] = field(default_factory=dict)
    closed_version: int = 0  # counts the changes to ``closed``: a snapshot's key holds it, not every record


class Worker:
    def __init__(
        self,
        *,
        name: str,
        role: str,
        backend: str,
        adapter: MT5Adapter,
        endpoint: str,
        poll_interval: float | None = None,
        heartbeat_interval: float = 1.0,
        coordinator_timeout: float = 10.0,
        parent_pid: int | None = None,
        worker_file: bool = False,
        curve: CurveClient | None = None,
    ) -> None:
        """``role`` is "" for a worker started from a worker file (``worker_file``): it takes the role the
        coordinator's Welcome names, and executes nothing before. ``parent_pid``: the coordinator that started
        this worker, which it must not outlive; None for a worker started by hand, a service that outlives
        any coordinator. ``curve``: its keys when the link is encrypted."""
        self.name = name
        self.role = role
        self.worker_file = worker_file
        self.curve = curve
        self.backend = backend
        self.adapter = adapter
        self.endpoint = endpoint
        self._poll_setting = poll_interval  # None: by role (a worker file learns its role from the welcome)
        self.heartbeat_interval = heartbeat_interval
        self.coordinator_timeout = coordinator_timeout
        self.parent_pid = parent_pid
        self.boot_id = uuid.uuid4().hex[:12]
        self.exit_code: ExitCode | None = None
        self._stop_reason = ""
        self._context = zmq.Context()
        self._socket: zmq.Socket | None = None
        self._link_watch: LinkWatch | None = None
        self._next_link_watch = 0.0  # monotonic: when the link's socket events are read next (LINK_WATCH_SECONDS)
        self._next_parent_check = 0.0  # monotonic: when the coordinator's process is looked for next
        # One poller for the link, made with it: the source waits here 200 times a second, and building a poller
        # per wait (what Socket.poll does) costs more than the wait's own work.
        self._poller = zmq.Poller()
        self._seq = 0
        self._state = _TerminalState()
        self._sent_key: tuple | None = None
        # The snapshot the next one may be sent as changes to (protocol 1.4): the last one sent since the welcome,
        # as (seq, orders, closed orders' records); None: the next one goes whole. ``_coordinator_minor``: the
        # protocol its welcome named.
        self._changes_base: tuple[int, tuple[PendingOrder, ...], tuple[ClosedOrder, ...]] | None = None
        self._coordinator_minor = 0
        self._welcomed = False
        self._last_heard = time.monotonic()
        self._last_hello = 0.0
        self._hello_unanswered_since: float | None = None  # first hello on this socket still without a welcome
        self._waiting_since: float | None = None  # first hello since the last welcome (for the log)
        self._next_waiting_log = 0.0
        self._welcome_wait = WELCOME_WAIT_SECONDS
        self._malformed = MalformedMessageLog()
        self._next_poll = 0.0
        self._next_full_poll = 0.0
        self._orders_changed_at = -math.inf  # when the terminal's pending orders last changed (the source's pace)
        self._next_heartbeat = 0.0
        self._pinged = False  # the coordinator's heartbeat arrived since the timers last ran
        self._last_ping = -math.inf  # monotonic: when it last did
        self._next_quotes = 0.0
        self._next_connect = 0.0
        self._connect_backoff = 1.0
        self._polled_at_ms = 0
        self._server_time = 0
        self._account_cache = (0.0, 0.0, 0.0)
        self._quotes: tuple[Quote, ...] = ()
        self._watched_symbols: set[str] = set()
        self._results: OrderedDict[str, CommandResult] = OrderedDict()
        self._last_terminal_error = ""

    # ---- lifecycle -----------------------------------------------------------------------------

    def request_stop(self, reason: str, exit_code: ExitCode = ExitCode.OK) -> None:
        if self.exit_code is None:
            self.exit_code = exit_code
            self._stop_reason = reason

    def run(self) -> ExitCode:
        logger.info("worker {} ({}) starting, boot {}, coordinator {} ({})", self.name,
                    self.role or "its role from the coordinator", self.boot_id, self.endpoint,
                    "encrypted" if self.curve is not None else "not encrypted")
        self._open_socket()
        try:
            while self.exit_code is None:
                self._ensure_terminal()
                self._service_socket()
                self._watch_link()
                if self.exit_code is not None:
                    break
                now = time.monotonic()
                self._run_timers(now)
                self._check_coordinator(now)
                self._check_parent(now)
                self._malformed.flush()
        finally:
            self._close(self._stop_reason or "stopped")
        logger.info("worker {} stopped: {} (exit code {})", self.name, self._stop_reason, self.exit_code)
        return self.exit_code or ExitCode.OK

    def _run_timers(self, now: float) -> None:
        """The terminal's read and the heartbeat, when due; one wake-up serves as many of them as it can. A
        heartbeat due within half a poll gap goes with a read. The coordinator pings every worker at once (its
        heartbeat): that wake-up also takes a target's read and any worker's heartbeat due within half their
        interval, and while pings come the worker's own timers wait a little longer than the pings' pace
        (PING_SLACK), so an idle worker wakes about once a second instead of two or three times, and the
        coordinator receives its workers' heartbeats together. Without pings the timers keep their own pace."""
        pinged, self._pinged = self._pinged, False
        gap = self._poll_gap()
        early_poll = gap / 2 if pinged and self.role == "target" and self._paced_like_pings(gap) else 0.0
        early = self.heartbeat_interval / 2 if pinged else 0.0
        if self.adapter.connected and now >= self._next_poll - early_poll:
            self._poll_terminal()
            # Awake anyway: a heartbeat due within half a poll gap goes now, so the two share wake-ups.
            early = max(early, min(self._poll_gap(), self.heartbeat_interval) / 2)
        if now >= self._next_heartbeat - early:
            self._send_heartbeat()

    def _paced_like_pings(self, gap: float) -> bool:
        """Whether a timer of pace ``gap`` can go with the coordinator's pings: within a factor of 2 of their pace
        (reads far apart, or far quicker, keep their own timer: a ping must not make them more frequent)."""
        return self.heartbeat_interval / 2 <= gap <= 2 * self.heartbeat_interval

    def _ping_slack(self, now: float, gap: float) -> float:
        """How much later than ``gap`` a timer of that pace waits for the coordinator's ping to do its work:
        PING_SLACK while pings come and the pace is like theirs, 1 otherwise."""
        pinged_lately = now - self._last_ping <= 2 * self.heartbeat_interval
        return PING_SLACK if pinged_lately and self._paced_like_pings(gap) else 1.0

    def _close(self, reason: str) -> None:
        if self._socket is not None:
            self._send(Goodbye(reason=reason, exit_code=int(self.exit_code or ExitCode.OK)))
            self._close_socket()
        self.adapter.disconnect()
        self._context.destroy(linger=0)

    def _check_parent(self, now: float) -> None:
        if self.parent_pid is None or now < self._next_parent_check:
            return
        self._next_parent_check = now + PARENT_CHECK_SECONDS
        if not parent_alive(self.parent_pid):
            logger.warning("the coordinator (pid {}) is gone; exiting so no orphan keeps trading", self.parent_pid)
            self.request_stop("coordinator process exited", ExitCode.OK)

    # ---- coordinator link ----------------------------------------------------------------------

    def _open_socket(self) -> None:
        problem = self._link_watch.problem if self._link_watch is not None else ""
        self._close_socket()
        # A fresh socket also drops anything still queued for a coordinator that is gone. The coordinator gives
        # it a new routing id; the hello it sends next tells which terminal it serves. Nothing else is reset:
        # the terminal stays attached, and the results of commands already executed stay in memory, so a
        # command sent again after the reconnect is answered, never executed twice.
        def watch(socket: zmq.Socket) -> None:  # before it connects, so the first attempt is seen too
            self._link_watch = LinkWatch(socket, self.endpoint, problem=problem)
            self._next_link_watch = 0.0

        self._socket = connect_dealer(self._context, self.endpoint, self.curve, before_connect=watch)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._welcomed = False
        self._sent_key = None
        self._changes_base = None
        self._last_heard = time.monotonic()
        self._last_hello = 0.0
        self._hello_unanswered_since = None

    def _close_socket(self) -> None:
        self._poller = zmq.Poller()
        if self._link_watch is not None:
            self._link_watch.close()
            self._link_watch = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _send(self, message: Message) -> bool:
        if self._socket is None:
            return False
        try:
            send_message(self._socket, message)
            return True
        except ProtocolError as e:
            logger.error("could not encode a {} for the coordinator: {}", type(message).__name__, e)
        except zmq.Again:
            logger.debug("coordinator link is full; dropped a {} (the next one supersedes it)", type(message).__name__)
        except zmq.ZMQError as e:
            logger.warning("could not send {} to the coordinator: {}", type(message).__name__, e)
        return False

    def _service_socket(self) -> None:
        timeout = self._poll_timeout_ms()
        assert self._socket is not None
        if not self._poller.poll(timeout):
            return
        # Drain what is there, but bounded so polling the terminal is never starved.
        for _ in range(100):
            try:
                frames = recv_frames(self._socket)
            except zmq.Again:
                return
            try:
                message = decode(frames)
            except ProtocolError as e:
                if e.reason == "wrong-version" and frames:
                    # Another major version cannot be talked to at all: a configuration error (install the
                    # same release on both machines), not something a reconnect mends.
                    problem = protocol_mismatch(f"the coordinator at {self.endpoint}", frames[0], "this worker",
                                                WORKER_VERSION)
                    logger.critical("{}: {}", self.name, problem)
                    self.request_stop(problem, ExitCode.CONFIG_ERROR)
                    return
                self._malformed.dropped("the coordinator", e)
                continue
            # Only a valid message proves the coordinator is alive: garbage from anyone on the port does not.
            self._last_heard = time.monotonic()
            self._handle(message)
            if self.exit_code is not None:
                return

    def _poll_timeout_ms(self) -> int:
        now = time.monotonic()
        due = min(self._next_heartbeat, self._next_poll if self.adapter.connected else self._next_connect)
        # Rounded up: a wait cut short by truncation wakes the loop a moment early, to spin once for nothing.
        return max(0, min(math.ceil((due - now) * 1000), MAX_WAIT_MS))

    def _handle(self, message: Message) -> None:
        if isinstance(message, Welcome):
            if self.worker_file and message.role:
                self.role = message.role  # a worker file names no role: the coordinator's config says it
            if not self._welcomed:
                logger.info("coordinator {} accepted {} as {} (protocol 1.{})", message.coordinator_version,
                            self.name, self.role or "a terminal of unknown role", message.protocol_minor)
            self._welcomed = True
            self._hello_unanswered_since = self._waiting_since = None
            self._next_waiting_log = 0.0
            self._welcome_wait = WELCOME_WAIT_SECONDS
            self.heartbeat_interval = message.heartbeat_interval
            self.coordinator_timeout = message.worker_timeout
            self._sent_key = None  # a (re)welcomed worker resends its full state at once
            self._changes_base = None  # whole: the coordinator may hold no snapshot of this worker, or an old one
            self._coordinator_minor = message.protocol_minor
            self._poll_soon()
        elif isinstance(message, CommandBatch):
            self._execute_batch(message)
        elif isinstance(message, SymbolRequest):
            self._describe_symbols(message)
        elif isinstance(message, HistoryRequest):
            self._report_history(message)
        elif isinstance(message, Heartbeat):
            # Proof of life is recorded on receipt; the ping's wake-up also serves the timers (``_run_timers``).
            self._pinged, self._last_ping = True, time.monotonic()
        elif isinstance(message, Shutdown):
            self._on_shutdown(message)
        elif isinstance(message, ErrorMessage):
            self._handle_error(message)
        else:
            logger.warning("ignored a {} message: workers do not accept it", type(message).__name__)

    def _on_shutdown(self, message: Shutdown) -> None:
        if message.code == SHUTDOWN_TERMINAL_REMOVED:
            logger.info("{}: the coordinator's config no longer runs this terminal ({}); stopping", self.name,
                        message.reason)
            self.request_stop(f"terminal removed from the coordinator's config: {message.reason}", ExitCode.OK)
        elif self.parent_pid is not None:
            self.request_stop(f"coordinator asked to stop: {message.reason}", ExitCode.OK)
        else:
            # A worker started by hand is a service: it outlives its coordinator's restarts.
            logger.warning("{}: the coordinator is stopping ({}); staying attached to the terminal and waiting for "
                           "it to come back", self.name, message.reason)
            self._welcomed = False
            self._hello_unanswered_since = None
            self._waiting_since = time.monotonic()
            self._next_waiting_log = 0.0

    def _handle_error(self, message: ErrorMessage) -> None:
        if message.code == "hello-required":
            # A new connection (the coordinator restarted, or this socket reconnected under a new routing id):
            # the coordinator is there and answering, so say hello again at once.
            self._welcomed = False
            self._last_hello = 0.0
            self._hello_unanswered_since = None
            return
        if message.code == "snapshot-required":
            # The coordinator lacks a snapshot (one lost on the way, or changes to one it does not hold): read and
            # send the full state now, not at the next poll (a second away for an idle target).
            self._sent_key = None
            self._changes_base = None
            self._poll_soon()
            return
        if message.fatal:
            logger.critical("coordinator refused this worker: {} ({})", message.message, message.code)
            self.request_stop(message.message, ExitCode.CONFIG_ERROR)
        else:
            logger.error("coordinator reported: {} ({})", message.message, message.code)

    def _watch_link(self) -> None:
        """Read the link's socket events; a key the coordinator refused ends the worker (code 2)."""
        watch = self._link_watch
        now = time.monotonic()
        if watch is None or now < self._next_link_watch:
            return
        self._next_link_watch = now + LINK_WATCH_SECONDS
        watch.drain()
        if watch.key_refused:
            logger.critical("{}: the coordinator at {} refused this worker's key: it does not know this worker's "
                            "public key. Add this worker's .key file (the public half of [link] secret_key_file) as "
                            "public_key_file of terminal {} in the coordinator's config, and reload or restart the "
                            "coordinator; then start this worker again", self.name, self.endpoint, self.name)
            self.request_stop("the coordinator refused this worker's key", ExitCode.CONFIG_ERROR)

    def _check_coordinator(self, now: float) -> None:
        if not self.adapter.connected:
            return
        if not self._welcomed:
            # Hello until welcomed: the coordinator may start after us, or have restarted. A worker started by
            # hand waits for it forever; one the coordinator started stops when that process is gone.
            if self._hello_unanswered_since is not None and now - self._hello_unanswered_since >= self._welcome_wait:
                self._reopen_unanswered_link()
            if now - self._last_hello >= max(1.0, self.heartbeat_interval):
                self._send_hello()
            self._log_waiting(now)
            return
        if now - self._last_heard > self.coordinator_timeout:
            logger.warning("{}: no word from the coordinator for {:.1f}s; reconnecting (the terminal stays attached)",
                           self.name, now - self._last_heard)
            self._open_socket()
            self._waiting_since = now
            self._next_waiting_log = 0.0

    def _reopen_unanswered_link(self) -> None:
        logger.debug("{}: no welcome for {:.0f}s; reopening the link in case it was cut", self.name,
                     self._welcome_wait)
        self._open_socket()
        self._welcome_wait = min(self._welcome_wait * 2, WELCOME_WAIT_MAX_SECONDS)

    def _log_waiting(self, now: float) -> None:
        """Say, at most every 30 s, what this worker waits for: where, for how long, and what went wrong last."""
        if self._waiting_since is None:
            return
        if self._next_waiting_log == 0.0:  # the first line: after giving the coordinator a moment to answer
            self._next_waiting_log = self._waiting_since + WELCOME_WAIT_SECONDS
        if now < self._next_waiting_log:
            return
        self._next_waiting_log = now + WAITING_LOG_INTERVAL_SECONDS
        problem = self._link_watch.problem if self._link_watch is not None else ""
        logger.warning("{}: waiting for the coordinator at {} for {}: {}; still trying", self.name, self.endpoint,
                       _duration(now - self._waiting_since),
                       problem or "connected, but the coordinator has not answered this worker's hello")

    def _send_hello(self) -> None:
        try:
            account = self.adapter.account_facts()
            terminal = self.adapter.terminal_facts()
        except TerminalError as e:
            self._terminal_lost(e)
            return
        self._note_account(account.login, account.server)
        now = time.monotonic()
        self._last_hello = now
        if self._hello_unanswered_since is None:
            self._hello_unanswered_since = now
        if self._waiting_since is None:
            self._waiting_since = now
        self._send(
            Hello(
                terminal=self.name,
                role="" if self.worker_file else self.role,
                boot_id=self.boot_id,
                protocol_minor=PROTOCOL_MINOR,
                worker_version=WORKER_VERSION,
                backend=self.backend,
                pid=os.getpid(),
                host=socket_module.gethostname(),
                account=account,
                terminal_facts=terminal,
                server_time=self._server_time,
                sent_at_ms=_now_ms(),
                configured_login=self.adapter.login,
                configured_server=self.adapter.server,
                worker_file=self.worker_file,
            )
        )

    def _send_heartbeat(self) -> None:
        now = time.monotonic()
        self._next_heartbeat = now + self.heartbeat_interval * self._ping_slack(now, self.heartbeat_interval)
        if self._welcomed:
            self._send(
                Heartbeat(
                    sent_at_ms=_now_ms(),
                    boot_id=self.boot_id,
                    last_seq=self._seq,
                    polled_at_ms=self._polled_at_ms,
                    connected=self.adapter.connected,  # the terminal link; the broker link is in snapshots
                    server_time=self._server_time,
                    quotes=self._quotes,
                    balance=self._account_cache[0],
                    equity=self._account_cache[1],
                )
            )

    # ---- terminal ------------------------------------------------------------------------------

    def _ensure_terminal(self) -> None:
        now = time.monotonic()
        if self.adapter.connected or now < self._next_connect:
            return
        try:
            self.adapter.connect()
        except TerminalError as e:
            if e.fatal:
                logger.critical("{}: {}", self.name, e)
                self._send(self._terminal_error(e, fatal=True))
                self.request_stop(str(e), ExitCode.CONFIG_ERROR)
                return
            self._next_connect = now + self._connect_backoff
            if str(e) != self._last_terminal_error:
                logger.error("{}: cannot use the terminal: {}; retrying every {:.0f}s at most", self.name, e, 30)
                self._last_terminal_error = str(e)
            self._send(self._terminal_error(e))
            self._connect_backoff = min(self._connect_backoff * 2, 30.0)
            return
        logger.info("{}: connected to the terminal at {}", self.name, self.adapter.terminal_path)
        self._last_terminal_error = ""
        self._connect_backoff = 1.0
        self._poll_soon()
        self._next_quotes = 0.0
        self._welcomed = False  # hello again: the coordinator must see fresh account facts
        self._last_hello = 0.0

    def _terminal_lost(self, error: TerminalError) -> None:
        logger.error("{}: lost the terminal: {}", self.name, error)
        self.adapter.disconnect()
        self._next_connect = time.monotonic() + 1.0
        self._send(self._terminal_error(error))

    def _terminal_error(self, error: TerminalError, fatal: bool = False) -> ErrorMessage:
        # The code "terminal-<problem>" (terminal-not_found, terminal-authorization_failed, ...) is what the
        # coordinator keys on: keep it stable. Terminal and boot id say who reports it, also before any hello.
        return ErrorMessage(code="terminal-" + error.problem.name.lower(), message=str(error), fatal=fatal,
                            terminal=self.name, boot_id=self.boot_id)

    @property
    def poll_interval(self) -> float:
        """Seconds between full reads: the configured ``poll_interval``, else by role (and for the source, by
        whether it is busy or holds positions: SOURCE_QUIET_POLL_SECONDS)."""
        if self._poll_setting is not None:
            return self._poll_setting
        if self.role == "target":
            return TARGET_POLL_SECONDS
        return SOURCE_POLL_SECONDS if self._state.positions or self._source_busy() else SOURCE_QUIET_POLL_SECONDS

    def _source_busy(self) -> bool:
        return time.monotonic() - self._orders_changed_at < SOURCE_BUSY_SECONDS

    def _poll_gap(self) -> float:
        if self.role != "source":
            return self.poll_interval
        return min(SOURCE_PROBE_SECONDS if self._source_busy() else SOURCE_IDLE_PROBE_SECONDS, self.poll_interval)

    def _poll_soon(self) -> None:
        """Something happened (a welcome, a reconnect, a command): read everything now."""
        self._next_poll = self._next_full_poll = 0.0

    def _probe_orders(self, now: float) -> bool:
        """Between the source's full reads: read its orders alone. True when they changed (read all now)."""
        try:
            orders = self.adapter.pending_orders()
        except TerminalError as e:
            self._terminal_lost(e)
            return False
        if orders != self._state.orders:
            self._orders_changed_at = now
            return True
        self._next_poll = now + self._poll_gap()
        return False

    def _poll_terminal(self) -> None:
        """Read the terminal; send a snapshot when anything that matters changed."""
        now = time.monotonic()
        probing = self.role == "source" and now < self._next_full_poll and self._sent_key is not None
        if probing and not self._probe_orders(now):
            return
        self._next_full_poll = now + self.poll_interval
        gap = self._poll_gap()
        # A target's reads go with the coordinator's pings while they come (``_run_timers``).
        self._next_poll = now + gap * (self._ping_slack(now, gap) if self.role == "target" else 1.0)
        try:
            orders = self.adapter.pending_orders()
            positions = self.adapter.positions()
            # The broker connection is read on every poll: decisions that depend on "the source has no such
            # order" must never run on a terminal that silently lost its broker a second ago.
            terminal = self.adapter.terminal_facts()
            self._state.connected = terminal.connected
            # The account too, on every poll: a person (or IPC cross-wiring) can switch the terminal to another
            # account at any moment, and nothing read from it may pass for the configured account's.
            account = self.adapter.account_facts()
            self._note_account(account.login, account.server)
            self._state.trade_allowed = terminal.trade_allowed and account.trade_allowed and account.trade_expert
            self._account_cache = (account.balance, account.equity, account.margin_free)
            if now >= self._next_quotes:
                self._refresh_quotes(orders)
                self._next_quotes = now + QUOTES_REFRESH_SECONDS
            self._track_closed(orders, now)
        except TerminalError as e:
            self._terminal_lost(e)
            return
        self._polled_at_ms = _now_ms()
        if orders != self._state.orders:
            self._orders_changed_at = now
            self._next_poll = now + self._poll_gap()  # a busy source probes at the quick pace from now on
        self._state.orders = orders
        self._state.positions = positions
        # A position's current price moves with every tick: it rides along in each snapshot, but a price move
        # alone is no change worth a snapshot (the quotes reach the coordinator with the heartbeats).
        held = tuple(msgspec.structs.replace(position, price_current=0.0) for position in positions)
        key = (orders, held, self._state.connected, self._state.trade_allowed, self._state.account,
               self._state.closed_version)
        if key != self._sent_key and self._welcomed:
            self._send_snapshot(key)

    def _note_account(self, login: int, server: str) -> None:
        """Record the account the terminal is logged into; say so when it turns wrong or right again."""
        before = self._account_problem()
        self._state.account = (login, server)
        after = self._account_problem()
        if after and after != before:
            logger.error("{}: {}; every trade request is refused until the configured account is back", self.name,
                         after)
        elif before and not after:
            logger.info("{}: the terminal is logged into the configured account {}@{} again; trading resumes",
                        self.name, login, server)

    def _account_problem(self) -> str | None:
        """Why this terminal must not trade now (logged into another account), from the last read."""
        if self._state.account is None:
            return None
        return self.adapter.describe_wrong_account(*self._state.account)

    def _refresh_quotes(self, orders: tuple[PendingOrder, ...]) -> None:
        # The symbols of the orders first (they matter now), then the ones the coordinator asked about.
        ordered = dict.fromkeys([*sorted({order.symbol for order in orders}), *sorted(self._watched_symbols)])
        symbols = list(ordered)[:MAX_QUOTED_SYMBOLS]
        self._quotes = self.adapter.quotes(symbols)
        # The real API has no server clock; the freshest tick's time is the broker's clock, to the second.
        server_time = max((quote.time for quote in self._quotes), default=0)
        if server_time:
            self._server_time = server_time

    def _track_closed(self, orders: tuple[PendingOrder, ...], now: float) -> None:
        """Remember orders that left the pending list, with their fate from the history (filled, cancelled,
        expired). Repeated in every snapshot for a while, so one lost snapshot loses nothing.

        Without a pass over every record at each read (a busy account keeps up to 500): the records are held in
        the order the orders left, so their times only grow. Only a changed pending list adds records or takes one
        back; the newest ones are those whose history may still lag; the oldest are those forgotten."""
        state, closed = self._state, self._state.closed
        changed = False
        if orders != state.orders:
            current = {order.ticket for order in orders}
            for order in state.orders:
                if order.ticket not in current and order.ticket not in closed:
                    closed[order.ticket] = (
                        ClosedOrder(ticket=order.ticket, symbol=order.symbol, type=order.type,
                                    state=int(OrderState.NOT_IN_HISTORY_YET), magic=order.magic,
                                    comment=order.comment),
                        now,
                    )
                    changed = True
            for ticket in closed.keys() & current:  # pending again: no longer an order that left
                del closed[ticket]
                changed = True
        recent = list(takewhile(lambda item: now - item[1][1] <= HISTORY_RETRY_SECONDS, reversed(closed.items())))
        for ticket, (record, since) in recent:
            if record.state == OrderState.NOT_IN_HISTORY_YET:
                found = self.adapter.closed_order(ticket)
                if found is not None:
                    closed[ticket] = (found, since)
                    changed = True
        while closed and (len(closed) > CLOSED_ORDER_MEMORY_COUNT
                          or now - next(iter(closed.values()))[1] > CLOSED_ORDER_MEMORY_SECONDS):
            del closed[next(iter(closed))]
            changed = True
        if changed:
            state.closed_version += 1

    def _send_snapshot(self, key: tuple) -> None:
        """The terminal's state as read: whole, or as its orders' changes to the last snapshot sent, when the
        coordinator takes those (protocol 1.4) and they rebuild the list exactly (protocol/snapshot_changes.py); the
        closed orders' records likewise, to a coordinator of 1.5 or newer."""
        self._seq += 1
        balance, equity, margin_free = self._account_cache
        login, server = self._state.account or (0, "")
        orders, base = self._state.orders, self._changes_base
        closed = tuple(record for record, _ in self._state.closed.values())
        changes = closed_changes = None
        if base is not None and self._coordinator_minor >= SNAPSHOT_CHANGES_MINOR:
            changes = changes_since(base[1], orders)
            if self._coordinator_minor >= CLOSED_CHANGES_MINOR:
                closed_changes = changes_since(base[2], closed)  # None: the records go whole
        snapshot = Snapshot(
            boot_id=self.boot_id,
            seq=self._seq,
            taken_at_ms=self._polled_at_ms,
            login=login,
            server=server,
            connected=self._state.connected,
            trade_allowed=self._state.trade_allowed,
            orders=orders,
            positions=self._state.positions,
            closed=closed,
            server_time=self._server_time,
            balance=balance,
            equity=equity,
            margin_free=margin_free,
        )
        message: Message = snapshot if changes is None or base is None else \
            as_changes(snapshot, base[0], *changes, closed=closed_changes)
        if self._send(message):
            self._sent_key = key
            self._changes_base = (self._seq, orders, closed)

    # ---- commands ------------------------------------------------------------------------------

    def _execute_batch(self, batch: CommandBatch) -> None:
        # The deadline guards against stale commands (queued while the link was down), so it is checked when
        # the batch arrives: a long batch must not expire its own tail while the worker works through it.
        arrived_ms = _now_ms()
        results = []
        self.adapter.begin_batch()
        try:
            for command in batch.commands:
                results.append(self._execute(command, arrived_ms))
                if len(batch.commands) > 1:
                    crash_point("mid-batch")
                    self._report_during_batch()
        finally:
            self.adapter.end_batch()
        # Snapshot first, then results: when the coordinator reads the results it already holds the state
        # they produced.
        if self.adapter.connected:
            self._poll_soon()
            self._poll_terminal()
        self._send(CommandResults(batch_id=batch.batch_id, results=tuple(results), snapshot_seq=self._seq))

    def _report_during_batch(self) -> None:
        """A long batch (hundreds of placements at a broker's pace) must not pass for a hung worker: when a heartbeat
        is due, the terminal is read (a snapshot of what the batch did so far goes out if anything changed) and the
        heartbeat confirms that state, never the one from before the batch."""
        if time.monotonic() < self._next_heartbeat or not self.adapter.connected:
            return
        self._poll_soon()
        self._poll_terminal()
        self._send_heartbeat()

    def _execute(self, command: Command, arrived_ms: int) -> CommandResult:
        replay = self._results.get(command.command_id)
        if replay is not None:
            logger.warning("command {} arrived twice; replaying its result, nothing sent", command.command_id)
            return replay
        if self.role != "target":
            # A worker file names no role: until the coordinator's welcome says "target", nothing is traded.
            why = "a source worker never sends trade requests" if self.role == "source" else \
                "this worker does not know its role yet (the coordinator's welcome says it); not sent"
            result = CommandResult(command_id=command.command_id, status=CommandStatus.REFUSED, comment=why)
        elif command.deadline_ms and arrived_ms > command.deadline_ms:
            result = CommandResult(command_id=command.command_id, status=CommandStatus.EXPIRED,
                                   comment="arrived after its deadline; not sent")
        elif not self.adapter.connected:
            result = CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED,
                                   comment="terminal not connected; not sent",
                                   error_code=int(LastError.INTERNAL_FAIL_CONNECT))
        elif (problem := self._account_problem()) is not None:
            # Not final: the coordinator retries, and it passes once the right account is back.
            result = CommandResult(command_id=command.command_id, status=CommandStatus.REJECTED,
                                   comment=f"{problem}; not sent")
        else:
            try:
                result = self.adapter.execute(command)
            except TerminalError as e:
                # The link died around the request: whether it happened is for the next snapshot to say.
                self._terminal_lost(e)
                result = CommandResult(command_id=command.command_id, status=CommandStatus.UNKNOWN,
                                       error_code=e.code, error_message=str(e))
        self._log_result(command, result)
        self._results[command.command_id] = result
        while len(self._results) > RESULT_MEMORY:
            self._results.popitem(last=False)
        return result

    def _log_result(self, command: Command, result: CommandResult) -> None:
        what = f"{command.kind.value} {command.symbol} for source #{command.source_ticket}"
        if result.status is CommandStatus.DONE:
            logger.info("{}: {} -> #{} {} ({:.1f} ms)", self.name, what, result.ticket,
                        "already there" if result.already_existed else "done", result.elapsed_ms)
        else:
            logger.warning("{}: {} -> {} retcode {} {} {}", self.name, what, result.status.value, result.retcode,
                           result.comment, result.error_message)

    def _report_history(self, request: HistoryRequest) -> None:
        """Answer what became of the orders and positions asked about, in one report."""
        if not self.adapter.connected:
            return  # asked again later
        found: list[ClosedOrder] = []
        unknown: list[int] = []
        histories: list[PositionHistory] = []
        unknown_positions: list[int] = []
        try:
            positions = {position.identifier: position for position in self.adapter.positions()}
            for ticket in request.tickets[:500]:
                record = self.adapter.closed_order(ticket)
                if record is not None:
                    found.append(record)
                elif ticket in positions:  # history lags, but the position it opened is there
                    position = positions[ticket]
                    found.append(ClosedOrder(ticket=ticket, symbol=position.symbol, type=position.type,
                                             state=int(OrderState.FILLED), magic=position.magic,
                                             comment=position.comment, position_id=ticket))
                else:
                    unknown.append(ticket)
            for position_id in request.positions[:500]:
                history = self.adapter.position_history(position_id)
                if history is None and position_id in positions:
                    # History lags, but the position is open: nothing of it has been closed yet.
                    history = PositionHistory(position_id=position_id, closed=False,
                                              volume_in=positions[position_id].volume)
                if history is not None:
                    histories.append(history)
                else:
                    unknown_positions.append(position_id)
        except TerminalError as e:
            self._terminal_lost(e)
            return
        self._send(HistoryReport(request_id=request.request_id, orders=tuple(found), unknown=tuple(unknown),
                                 positions=tuple(histories), unknown_positions=tuple(unknown_positions)))

    def _describe_symbols(self, request: SymbolRequest) -> None:
        if not self.adapter.connected:
            return  # the coordinator asks again after the next hello
        try:
            specs, missing = self.adapter.symbol_specs(request.symbols)
        except TerminalError as e:
            self._terminal_lost(e)
            return
        self._watched_symbols.update(spec.name for spec in specs)
        self._send(SymbolSpecs(request_id=request.request_id, specs=specs, missing=missing))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _duration(seconds: float) -> str:
    """``42s``, ``5m07s``, ``3h05m``: how long a person has been waiting, at a glance."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
