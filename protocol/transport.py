"""ZeroMQ socket presets for both ends of a worker link, and framed send/receive.

Pattern: the coordinator binds one ROUTER; every worker connects one DEALER. DEALER/ROUTER (not REQ/REP)
because both sides must be able to talk at any time: snapshots and heartbeats flow up while commands flow
down, and a lost message must never wedge a lock-step protocol.

Routing ids are the ROUTER's own: a worker does not choose one, so every connection gets a fresh id and the
hub binds a terminal name to it when a hello arrives (``coordinator.runtime.hub``). No ROUTER_HANDOVER: with it, two
connections claiming one routing id take it from each other, and libzmq 4.3.5 aborts the whole coordinator
(``Assertion failed: !_io_error``) when that happens back and forth. Without it a second connection with a
routing id already in use is simply ignored by libzmq.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq

from protocol.codec import MAX_MESSAGE_BYTES, decode, encode
from protocol.curve import CurveClient, CurveKeyPair
from protocol.messages import Message

# Heartbeats at the ZMTP layer cut dead TCP links; the application layer (Heartbeat messages) catches a
# peer whose I/O thread is alive while its Python code is stuck, which ZMTP pings cannot see. The application's
# silence check (worker_timeout, 10 s by default: the worker reopens its link) acts first; the ZMTP pings are the
# backstop, and each one wakes the I/O threads of both ends: every 2 s, they were 0.3 % of a core for 20 idle
# workers and their coordinator.
_ZMTP_HEARTBEAT_IVL_MS = 5000
_ZMTP_HEARTBEAT_TIMEOUT_MS = 15000
_HIGH_WATER_MARK = 1000
# The ZAP domain the coordinator's ROUTER asks its handler about (``coordinator.runtime.link_auth``).
ZAP_DOMAIN = b"mt5-copier"
# The connection property, set by the coordinator's ZAP handler, holding the peer's public key (Z85).
PUBLIC_KEY_PROPERTY = "X-Public-Key"


def _common_options(socket: zmq.Socket, endpoint: str) -> None:
    if "://[" in endpoint:  # libzmq reaches IPv6 addresses only when told to ("No such device" otherwise)
        socket.setsockopt(zmq.IPV6, 1)
    socket.setsockopt(zmq.LINGER, 0)  # never block shutdown on undelivered messages: stale orders are worse
    socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES + 4096)  # oversize peers are cut off by libzmq
    socket.setsockopt(zmq.SNDHWM, _HIGH_WATER_MARK)
    socket.setsockopt(zmq.RCVHWM, _HIGH_WATER_MARK)


def bind_router(context: zmq.Context, endpoint: str, curve: CurveKeyPair | None = None) -> tuple[zmq.Socket, str]:
    """Bind the coordinator's ROUTER; return it and the endpoint actually bound (resolves ``:*`` ports).

    With ``curve`` every connection is a CurveZMQ one: encrypted, and authenticated by the ZAP handler on
    ``context`` (without a handler libzmq accepts any client key: the hub checks that at start-up).
    Options must be set before ``bind``: each accepted connection takes the listener's copy of them.
    """
    socket = context.socket(zmq.ROUTER)
    _common_options(socket, endpoint)
    if curve is not None:
        socket.setsockopt(zmq.CURVE_SERVER, 1)
        socket.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, curve.public)
        socket.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a gone worker raises instead of vanishing
    # libzmq 4.3.5 asserts (``!_io_error``, stream_engine_base.cpp:310) and aborts the whole process when a
    # connection whose input is stopped at the receive high-water mark is hung up by its peer and then has
    # to write (its ping timer fires, or it answers a ping it had buffered). Any peer can get there: flood,
    # ping, leave. So the coordinator's input never stops (no receive limit: the hub drains every poll, and
    # a flood costs memory for as long as it lasts instead of killing every worker link), and it sends no
    # ZMTP pings of its own. Dead links are still cut: every worker pings and asks for a time-to-live
    # (HEARTBEAT_TTL), after which this side drops a silent connection.
    socket.setsockopt(zmq.RCVHWM, 0)
    socket.setsockopt(zmq.HEARTBEAT_IVL, 0)
    try:
        socket.bind(endpoint)
    except zmq.ZMQError:
        socket.close(linger=0)
        raise
    bound = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    return socket, bound


def connect_dealer(context: zmq.Context, endpoint: str, curve: CurveClient | None = None, *,
                   before_connect: Callable[[zmq.Socket], None] | None = None) -> zmq.Socket:
    """Connect a worker's DEALER to the coordinator. It names its terminal in its hello, not in a routing id.

    With ``curve`` the link is CurveZMQ: the coordinator is recognised by its public key, and recognises the
    worker by the worker's. A coordinator that refuses the key fails the handshake: a socket monitor sees
    ``EVENT_HANDSHAKE_FAILED_AUTH`` (its value is the ZAP status, 400), and libzmq does not retry.
    ``before_connect`` runs on the ready socket before it connects: a monitor attached there sees the first
    attempt's events too.
    """
    socket = context.socket(zmq.DEALER)
    _common_options(socket, endpoint)
    if curve is not None:
        socket.setsockopt(zmq.CURVE_SERVERKEY, curve.server_public)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, curve.keys.public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, curve.keys.secret)
    socket.setsockopt(zmq.HEARTBEAT_IVL, _ZMTP_HEARTBEAT_IVL_MS)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ZMTP_HEARTBEAT_TIMEOUT_MS)
    socket.setsockopt(zmq.HEARTBEAT_TTL, _ZMTP_HEARTBEAT_TIMEOUT_MS)  # the coordinator cuts us after this silence
    socket.setsockopt(zmq.RECONNECT_IVL, 200)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
    socket.setsockopt(zmq.CONNECT_TIMEOUT, 5000)
    if before_connect is not None:
        before_connect(socket)
    socket.connect(endpoint)
    return socket


def send_message(socket: zmq.Socket, message: Message, routing_id: bytes | None = None) -> None:
    """Send without blocking. Raises ``zmq.Again`` when the peer's queue is full, and with ROUTER_MANDATORY
    ``zmq.ZMQError(EHOSTUNREACH)`` when the peer is not connected: callers treat both as "not delivered"."""
    frames = encode(message)
    if routing_id is not None:
        frames = [routing_id, *frames]
    socket.send_multipart(frames, flags=zmq.DONTWAIT, copy=True)


def recv_frames(socket: zmq.Socket) -> list[bytes]:
    """Receive one multipart message without blocking (call after poll says it is readable)."""
    return socket.recv_multipart(flags=zmq.DONTWAIT)


def recv_authenticated_frames(socket: zmq.Socket) -> tuple[list[bytes], str, str]:
    """Like ``recv_frames``, with who the connection authenticated as: (frames, user id, public key).

    Both come from the coordinator's ZAP handler and are the same on every frame of a connection; empty on
    a connection that was not authenticated.
    """
    frames = socket.recv_multipart(flags=zmq.DONTWAIT, copy=False)
    first = frames[0]
    return [frame.bytes for frame in frames], _property(first, "User-Id"), _property(first, PUBLIC_KEY_PROPERTY)


def _property(frame: zmq.Frame, name: str) -> str:
    try:
        value = frame.get(name)
    except zmq.ZMQError:  # EINVAL: the connection has no such property
        return ""
    return value if isinstance(value, str) else ""


__all__ = [
    "PUBLIC_KEY_PROPERTY",
    "ZAP_DOMAIN",
    "bind_router",
    "connect_dealer",
    "decode",
    "recv_authenticated_frames",
    "recv_frames",
    "send_message",
]
