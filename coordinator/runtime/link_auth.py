"""Who may open a link to the coordinator when links are CurveZMQ: its ZAP handler, and the start-up proof.

libzmq asks a ZAP handler (RFC 27, a socket bound at ``inproc://zeromq.zap.01`` in the server socket's
context) about every CURVE handshake. This one accepts exactly the public keys of the config's terminals and
answers with the terminal's name as the user id, plus the key itself as the connection property
``X-Public-Key``; every message the hub receives carries both, so the hub checks each one against the keys
allowed now (a key removed at a reload stops working on links already open).

It is served from the hub's own poll loop, on the coordinator's one thread: the allowed set has one owner
and needs no lock. A handshake waits at most one loop tick for its answer.

The pyzmq gotcha: a CURVE server with no ZAP handler accepts every client key. ``prove_unknown_keys_refused``
connects a client with a key nobody configured and requires it to be refused before the hub serves.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping

import zmq
from loguru import logger
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from protocol.transport import PUBLIC_KEY_PROPERTY, ZAP_DOMAIN

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by RFC 27: libzmq looks for the handler here
MAX_REQUESTS_PER_SERVE = 100  # bounded so a storm of handshakes cannot starve the engine
REFUSAL_LOG_INTERVAL_SECONDS = 10.0
SELF_CHECK_SECONDS = 2.0

_ZAP_VERSION = b"1.0"
_CURVE = b"CURVE"


class ZapHandler:
    """Answers libzmq's authentication requests for the hub's ROUTER, from the allowed keys."""

    def __init__(self, context: zmq.Context, allowed_keys: Mapping[bytes, str]) -> None:
        self.socket = context.socket(zmq.ROUTER)  # a ROUTER, not a REP: no send/receive lock-step to wedge
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ZAP_ENDPOINT)
        self._allowed: dict[bytes, str] = dict(allowed_keys)
        self._probe_key = b""
        self._last_refusal_line = 0.0
        self._refused_since = 0

    def allow(self, allowed_keys: Mapping[bytes, str]) -> None:
        """Public key (Z85) -> the terminal it may speak as; replaces the whole set."""
        self._allowed = dict(allowed_keys)

    def name_of(self, public_key: bytes) -> str | None:
        """The terminal ``public_key`` may speak as now, or None when it is not allowed (any more)."""
        return self._allowed.get(public_key)

    def expect_probe(self, public_key: bytes) -> None:
        """The start-up check's own key: its refusal is expected, so it is not logged as a stranger's."""
        self._probe_key = public_key

    def serve(self) -> None:
        """Answer the requests waiting, without blocking."""
        for _ in range(MAX_REQUESTS_PER_SERVE):
            try:
                request = self.socket.recv_multipart(flags=zmq.DONTWAIT)
            except zmq.Again:
                return
            reply = self._answer(request)
            if reply is not None:
                try:
                    self.socket.send_multipart(reply, flags=zmq.DONTWAIT)
                except zmq.ZMQError as e:  # the session asking is gone: its handshake is over anyway
                    logger.debug("could not answer an authentication request: {}", e)

    def close(self) -> None:
        self.socket.close(linger=0)

    def _answer(self, request: list[bytes]) -> list[bytes] | None:
        # [peer, b"", version, request id, domain, address, routing id, mechanism, *credentials]
        if len(request) < 8 or request[1] != b"":
            logger.warning("ignored a malformed authentication request ({} frames)", len(request))
            return None
        peer, _, version, request_id, domain, address, _, mechanism, *credentials = request

        def reply(status: bytes, text: bytes, user_id: bytes = b"", metadata: bytes = b"") -> list[bytes]:
            return [peer, b"", _ZAP_VERSION, request_id, status, text, user_id, metadata]

        if version != _ZAP_VERSION:
            return reply(b"500", b"unsupported ZAP version")
        if domain != ZAP_DOMAIN or mechanism != _CURVE or len(credentials) != 1 or len(credentials[0]) != 32:
            return reply(b"400", b"not a CurveZMQ link of this coordinator")
        key = z85.encode(credentials[0])
        name = self._allowed.get(key)
        if name is None:
            self._log_refusal(address.decode("utf-8", "replace"), key)
            return reply(b"400", b"unknown key")
        return reply(b"200", b"OK", name.encode("utf-8"), _property(PUBLIC_KEY_PROPERTY.encode("ascii"), key))

    def _log_refusal(self, address: str, key: bytes) -> None:
        if key == self._probe_key:
            logger.debug("the start-up check's unknown key was refused, as it must be")
            return
        now = time.monotonic()
        if now - self._last_refusal_line < REFUSAL_LOG_INTERVAL_SECONDS:
            self._refused_since += 1
            return
        more = (f" ({self._refused_since} more refused in the last {now - self._last_refusal_line:.0f}s)"
                if self._refused_since else "")
        logger.warning("refused a link from {}: its public key {} is not the public_key_file of any terminal in the "
                       "config (a worker started with the wrong key, or a stranger){}", address or "an unknown address",
                       key.decode("ascii"), more)
        self._last_refusal_line, self._refused_since = now, 0


def prove_unknown_keys_refused(context: zmq.Context, endpoint: str, server_public: bytes,
                               serve: Callable[[], None], *, expect_probe: Callable[[bytes], None],
                               timeout: float | None = None) -> None:
    """Connect to ``endpoint`` with a key nobody configured, answering authentication requests with ``serve``
    meanwhile; raise ``RuntimeError`` unless the handshake is refused within ``timeout`` seconds (default
    ``SELF_CHECK_SECONDS``)."""
    timeout = SELF_CHECK_SECONDS if timeout is None else timeout
    public, secret = zmq.curve_keypair()
    expect_probe(public)
    probe = context.socket(zmq.DEALER)
    probe.setsockopt(zmq.LINGER, 0)
    probe.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    probe.setsockopt(zmq.CURVE_PUBLICKEY, public)
    probe.setsockopt(zmq.CURVE_SECRETKEY, secret)
    target = probe_endpoint(endpoint)
    if "://[" in target:
        probe.setsockopt(zmq.IPV6, 1)
    monitor = probe.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                       | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    outcome = ""
    try:
        probe.connect(target)
        deadline = time.monotonic() + timeout
        while not outcome and time.monotonic() < deadline:
            serve()
            if monitor.poll(10):
                event = recv_monitor_message(monitor)["event"]
                if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    outcome = "refused"
                elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    outcome = "accepted"
                else:
                    outcome = f"failed otherwise ({zmq.Event(event).name})"
    finally:
        probe.disable_monitor()
        monitor.close(linger=0)
        probe.close(linger=0)
    if outcome == "refused":
        logger.info("link authentication checked: a client with an unknown key is refused on {}", endpoint)
        return
    if outcome == "accepted":
        raise RuntimeError(f"refusing to serve on {endpoint}: a client with an unknown CURVE key was accepted, so "
                           "anyone could speak as any terminal (no ZAP handler answers for this coordinator)")
    why = outcome or f"nothing happened within {timeout:.0f}s"
    raise RuntimeError(f"refusing to serve on {endpoint}: could not prove that a client with an unknown CURVE key is "
                       f"refused (its handshake {why}); is {target} reachable from this machine?")


def probe_endpoint(bound: str) -> str:
    """Where a client on this machine reaches ``bound``: a wildcard address means this machine's loopback."""
    transport, separator, address = bound.partition("://")
    if transport != "tcp" or not separator:
        return bound
    host, _, port = address.rpartition(":")
    if host == "0.0.0.0":
        return f"tcp://127.0.0.1:{port}"
    if host in ("[::]", "[::ffff:0.0.0.0]"):
        return f"tcp://[::1]:{port}"
    return bound


def _property(name: bytes, value: bytes) -> bytes:
    """One ZMTP metadata property, as a ZAP reply's metadata frame carries it."""
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value
