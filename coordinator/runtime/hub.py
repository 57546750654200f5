"""The coordinator's end of every worker link: one ROUTER socket, framed messages by terminal name.

Who is who. The ROUTER gives every connection a routing id of its own; workers do not choose one, so no peer
can take over another's id (and libzmq's ROUTER_HANDOVER, which let two connections take one id from each
other until libzmq aborted, is off). A worker says which terminal it serves in its hello (or in an error it
reports before it can say hello), and the hub binds that terminal name to the connection. The engine only
ever sees terminal names.

One worker per terminal. A claim for a terminal already bound to another connection is
- the same worker process on a fresh socket (same boot id): it moves over at once;
- a predecessor that is gone (its connection is closed: a send raises EHOSTUNREACH) or silent longer than
  ``worker_timeout`` (hung, or its machine vanished): the newcomer takes over, so a restarted worker is
  accepted at once;
- otherwise a second worker for the terminal while the first is alive (started on two machines, or by hand
  for a terminal the coordinator starts itself). It is refused with a fatal "duplicate-worker" error naming
  both; it exits, and the attached worker is told too. The two would otherwise take turns trading one account.
Any other message from a connection that has not said hello is answered with "hello-required": a DEALER
that reconnects gets a new routing id, and re-sending its hello is how its worker finds its way back.

With CurveZMQ (``curve`` given: the config's coordinator.secret_key_file) a connection is also someone: the
ZAP handler (``coordinator.runtime.link_auth``) lets in only the allowed public keys and names the terminal
each may speak as. Every message then carries that name and its key, and the hub holds each one to them: a
claim for another terminal ("identity-mismatch") and anything on a link whose key is no longer allowed
("key-not-allowed", after a reload) are refused as fatal, logged, and change nothing.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

import zmq
from loguru import logger

from coordinator import __version__
from coordinator.runtime.link_auth import ZapHandler, prove_unknown_keys_refused
from protocol import ErrorMessage, Goodbye, Heartbeat, Hello, Message, ProtocolError, decode
from protocol.curve import CurveKeyPair
from protocol.malformed_log import MalformedMessageLog
from protocol.transport import bind_router, recv_authenticated_frames, recv_frames, send_message
from protocol.version import protocol_mismatch

MAX_MESSAGES_PER_POLL = 1000  # bounded so timers still run under a flood
DEFAULT_WORKER_TIMEOUT = 10.0  # the config's default coordinator.worker_timeout
MAX_BINDINGS = 256  # far above any real number of terminals; hellos naming random terminals cannot fill memory
REFUSAL_LOG_INTERVAL_SECONDS = 10.0


@dataclass
class _Attachment:
    """The connection that speaks for one terminal, and the worker process behind it."""

    routing_id: bytes
    boot_id: str
    host: str
    pid: int
    last_heard: float  # monotonic

    def describe(self) -> str:
        if not self.pid:
            return "a worker that has not said hello yet"
        return f"pid {self.pid} on {self.host or 'an unknown host'} (boot {self.boot_id})"


@dataclass(frozen=True)
class _Claim:
    """A connection saying "I am the worker of terminal ``name``"."""

    name: str
    boot_id: str
    host: str = ""
    pid: int = 0


class Hub:
    def __init__(self, endpoint: str, *, worker_timeout: float = DEFAULT_WORKER_TIMEOUT,
                 curve: CurveKeyPair | None = None, allowed_keys: Mapping[bytes, str] | None = None) -> None:
        """Bind ``endpoint``; with ``curve``, links are CurveZMQ and ``allowed_keys`` (public key, Z85 -> the
        terminal it may speak as) say who may connect. Raises ``OSError`` when the endpoint cannot be bound or
        an unknown key is not refused."""
        self._context = zmq.Context()
        self._zap: ZapHandler | None = None
        try:
            if curve is not None:  # the handler first: a connection accepted before it exists is not checked
                self._zap = ZapHandler(self._context, allowed_keys or {})
            self._socket, self.endpoint = bind_router(self._context, endpoint, curve)
        except zmq.ZMQError as e:
            self._close_authentication()
            self._context.destroy(linger=0)
            raise OSError(f"cannot bind the coordinator to {endpoint}: {e}") from e
        self.worker_timeout = worker_timeout
        self.dropped = 0
        self._by_name: dict[str, _Attachment] = {}
        self._name_of: dict[bytes, str] = {}
        self._malformed = MalformedMessageLog()
        self._refusals_logged: dict[str, tuple[float, int]] = {}  # topic -> (last line at, refused since)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._wakeup: tuple[socket.socket, socket.socket] | None = None  # (reader, writer): wake_on_signals
        if self._zap is not None and curve is not None:
            self._poller.register(self._zap.socket, zmq.POLLIN)
            try:
                prove_unknown_keys_refused(self._context, self.endpoint, curve.public, self._zap.serve,
                                           expect_probe=self._zap.expect_probe)
            except RuntimeError as e:
                self.close()
                raise OSError(str(e)) from e

    @property
    def authenticated(self) -> bool:
        """Links are CurveZMQ and only allowed keys get in."""
        return self._zap is not None

    def allow_keys(self, allowed_keys: Mapping[bytes, str]) -> None:
        """Replace who may connect (public key, Z85 -> terminal name), e.g. at a reload. Links already open
        with a key no longer allowed are refused at their next message. Without CURVE there is nothing to do."""
        if self._zap is not None:
            self._zap.allow(allowed_keys)

    def send(self, name: str, message: Message) -> bool:
        """False when the worker is not connected or its queue is full: the message was not delivered."""
        attachment = self._by_name.get(name)
        if attachment is None:
            return False
        try:
            send_message(self._socket, message, routing_id=attachment.routing_id)
            return True
        except ProtocolError as e:
            logger.error("could not encode a {} for worker {}: {}", type(message).__name__, name, e)
        except zmq.Again:
            logger.warning("worker {} is not reading; {} not delivered", name, type(message).__name__)
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                self._unbind(name)  # its connection is closed: whoever says hello next for it is welcome
            else:
                logger.warning("sending {} to worker {} failed: {}", type(message).__name__, name, e)
        return False

    def poll(self, timeout_ms: int) -> list[tuple[str, Message]]:
        received: list[tuple[str, Message]] = []
        ready = dict(self._poller.poll(timeout_ms))
        if self._wakeup is not None and self._wakeup[0].fileno() in ready:  # (the poller names a plain socket by fd)
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while self._wakeup[0].recv(256):  # what the signals wrote: they only had to end the wait
                    pass
        if self._zap is not None and self._zap.socket in ready:
            self._zap.serve()
        if self._socket in ready:
            for _ in range(MAX_MESSAGES_PER_POLL):
                try:
                    routing_id, body, identity = self._receive()
                except zmq.Again:
                    break
                if identity == "":
                    continue  # its key is not allowed (any more): refused, nothing to route
                try:
                    message = decode(body)
                except ProtocolError as e:
                    self.dropped += 1
                    self._malformed.dropped(self._describe_peer(routing_id), e)
                    if e.reason == "wrong-version" and body:  # tell it: it exits 2 naming both versions
                        self._refuse(routing_id, "protocol-mismatch",
                                     protocol_mismatch("a worker", body[0], "this coordinator", __version__))
                    continue
                name = self._route(routing_id, message, identity)
                if name is not None:
                    received.append((name, message))
        self._malformed.flush()
        return received

    def wake_on_signals(self) -> None:
        """From now on a signal (a stop, a reload) ends the current wait at once: Python's own signal handling
        writes a byte to a socket this poller watches (``signal.set_wakeup_fd``). Without it the wait usually
        runs its full time: pyzmq resumes a poll a signal interrupted once the Python handler has run (most runs
        of a test that asserted it waited the full second; some returned at once, so it is not tested). Call it
        from the main thread, where signal handlers run."""
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._poller.register(reader, zmq.POLLIN)
        self._wakeup = (reader, writer)

    def close(self) -> None:
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
            for end in self._wakeup:
                end.close()
            self._wakeup = None
        self._socket.close(linger=0)
        self._close_authentication()
        self._context.destroy(linger=0)

    def _close_authentication(self) -> None:
        if self._zap is not None:
            self._zap.close()

    def _receive(self) -> tuple[bytes, list[bytes], str | None]:
        """(routing id, body, the terminal the link may speak as): None without CURVE, "" when the link's key
        is not allowed now (it has been told, and unbound)."""
        if self._zap is None:
            frames = recv_frames(self._socket)
            return frames[0], frames[1:], None
        frames, user_id, key = recv_authenticated_frames(self._socket)
        routing_id = frames[0]
        allowed_as = self._zap.name_of(key.encode("ascii"))
        if user_id and allowed_as == user_id:
            return routing_id, frames[1:], user_id
        # Only a reload gets here: the key was removed from the config, or now belongs to another terminal.
        bound = self._name_of.get(routing_id)
        if bound is not None:
            self._unbind(bound)
        message = (f"this link's key ({key or 'none'}) is no longer allowed to speak as terminal {user_id!r}: the "
                   "coordinator's config changed; start the worker with the key its entry names now")
        self._refuse(routing_id, "key-not-allowed", message)
        self._log_refusal(f"key-not-allowed {user_id}", message)
        return routing_id, [], ""

    # ---- who is who ----------------------------------------------------------------------------

    def _route(self, routing_id: bytes, message: Message, identity: str | None) -> str | None:
        """The terminal name ``message`` is from, or None when it is not for the engine. ``identity``: the
        terminal the link authenticated as (None without CURVE)."""
        now = time.monotonic()
        name = self._name_of.get(routing_id)
        if name is not None:
            attachment = self._by_name[name]
            attachment.last_heard = now
            if isinstance(message, Hello):
                if message.terminal != name:
                    self._refuse(routing_id, "identity-mismatch",
                                 f"this connection already speaks for terminal {name!r}, not {message.terminal!r}")
                    return None
                attachment.boot_id, attachment.host, attachment.pid = message.boot_id, message.host, message.pid
            elif isinstance(message, Goodbye):
                self._unbind(name)  # it is leaving: its successor must not wait for it
            return name
        claim = _claim_in(message)
        if claim is None:
            if not isinstance(message, Goodbye):  # a stranger leaving needs no answer
                self._refuse(routing_id, "hello-required", "send hello first", fatal=False)
            return None
        if identity is not None and claim.name != identity:
            self._refuse_impostor(routing_id, claim, identity)
            return None
        if not self._bind(routing_id, claim, now):
            return None
        return claim.name

    def _bind(self, routing_id: bytes, claim: _Claim, now: float) -> bool:
        current = self._by_name.get(claim.name)
        if current is not None:
            same_process = bool(claim.boot_id) and claim.boot_id == current.boot_id
            if not same_process:
                still_there = self._still_attached(current, now)
                if still_there:
                    self._refuse_duplicate(routing_id, claim, current)
                    return False
                silent = now - current.last_heard
                why = f"silent for {silent:.0f}s" if silent > self.worker_timeout else "its connection is closed"
                logger.warning("worker {}: {} takes over from {} ({})", claim.name, _describe_claim(claim),
                               current.describe(), why)
            self._name_of.pop(current.routing_id, None)
        elif len(self._by_name) >= MAX_BINDINGS:
            self._forget_silent(now)
        self._by_name[claim.name] = _Attachment(routing_id, claim.boot_id, claim.host, claim.pid, now)
        self._name_of[routing_id] = claim.name
        return True

    def _still_attached(self, attachment: _Attachment, now: float) -> bool:
        """Heard within worker_timeout and its connection still open (with ROUTER_MANDATORY a send to a
        closed connection raises EHOSTUNREACH; the probe is a heartbeat, harmless to a live worker)."""
        if now - attachment.last_heard > self.worker_timeout:
            return False
        try:
            send_message(self._socket, Heartbeat(sent_at_ms=int(time.time() * 1000)),
                         routing_id=attachment.routing_id)
        except zmq.Again:
            return True  # connected, its queue is full: not gone
        except zmq.ZMQError:
            return False
        return True

    def _refuse_duplicate(self, routing_id: bytes, claim: _Claim, current: _Attachment) -> None:
        name = claim.name
        message = (f"terminal {name} already has a worker attached: {current.describe()}; refusing "
                   f"{_describe_claim(claim)}. Two workers for one terminal would take turns trading one "
                   "account: stop one of them (a worker started on two machines, or started by hand for a "
                   "terminal the coordinator starts itself: set remote = true for it)")
        self._refuse(routing_id, "duplicate-worker", message)
        if self._log_refusal(name, message):
            # The attached worker's log says it too: the person may be watching that machine.
            self._refuse(current.routing_id, "duplicate-worker-refused", message, fatal=False)

    def _refuse_impostor(self, routing_id: bytes, claim: _Claim, identity: str) -> None:
        message = (f"refused {_describe_claim(claim, worker='a worker')}: it claims terminal {claim.name!r}, but "
                   f"its link authenticated with the key of terminal {identity!r}: a worker speaks only for the "
                   "terminal whose public_key_file holds its key. Start it for its own terminal, or with that "
                   "terminal's key pair; nothing was changed")
        self._refuse(routing_id, "identity-mismatch", message)
        self._log_refusal(f"identity-mismatch {identity}", message)

    def _log_refusal(self, topic: str, message: str) -> bool:
        """Log ``message`` at ERROR unless a refusal on ``topic`` was logged lately (then counted, and said with
        the next line); True when it was logged."""
        last_line, refused_since = self._refusals_logged.get(topic, (0.0, 0))
        now = time.monotonic()
        if now - last_line < REFUSAL_LOG_INTERVAL_SECONDS:
            self._refusals_logged[topic] = (last_line, refused_since + 1)
            return False
        more = f" ({refused_since} more refused in the last {now - last_line:.0f}s)" if refused_since else ""
        logger.error("{}{}", message, more)
        self._refusals_logged[topic] = (now, 0)
        return True

    def _refuse(self, routing_id: bytes, code: str, message: str, fatal: bool = True) -> None:
        with contextlib.suppress(zmq.ZMQError):  # gone already, or not reading: nothing more to tell it
            send_message(self._socket, ErrorMessage(code=code, message=message, fatal=fatal), routing_id=routing_id)

    def _unbind(self, name: str) -> None:
        attachment = self._by_name.pop(name, None)
        if attachment is not None:
            self._name_of.pop(attachment.routing_id, None)

    def _forget_silent(self, now: float) -> None:
        for name, attachment in list(self._by_name.items()):
            if now - attachment.last_heard > self.worker_timeout:
                self._unbind(name)

    def _describe_peer(self, routing_id: bytes) -> str:
        name = self._name_of.get(routing_id)
        if name is not None:
            return f"worker {name!r}"
        return f"an unidentified connection (id {routing_id[:8].hex()})"


def _claim_in(message: Message) -> _Claim | None:
    if isinstance(message, Hello):
        return _Claim(message.terminal, message.boot_id, message.host, message.pid)
    if isinstance(message, ErrorMessage) and message.terminal:
        return _Claim(message.terminal, message.boot_id)  # e.g. "terminal not found", sent before any hello
    return None


def _describe_claim(claim: _Claim, worker: str = "another worker") -> str:
    if not claim.pid:
        return f"{worker} (boot {claim.boot_id or 'unknown'})"
    return f"{worker}, pid {claim.pid} on {claim.host or 'an unknown host'} (boot {claim.boot_id})"
