"""ZeroMQ socket presets for both ends of a worker link, and framed send/receive.

Pattern: the coordinator binds one ROUTER; every worker connects one DEALER whose ROUTING_ID is its
terminal name. DEALER/ROUTER (not REQ/REP) because both sides must be able to talk at any time: snapshots
and heartbeats flow up while commands flow down, and a lost message must never wedge a lock-step protocol.
"""

from __future__ import annotations

import zmq

from protocol.codec import MAX_MESSAGE_BYTES, decode, encode
from protocol.messages import Message

# Heartbeats at the ZMTP layer cut dead TCP links; the application layer (Heartbeat messages) catches a
# peer whose I/O thread is alive while its Python code is stuck, which ZMTP pings cannot see.
_ZMTP_HEARTBEAT_IVL_MS = 2000
_ZMTP_HEARTBEAT_TIMEOUT_MS = 6000
_HIGH_WATER_MARK = 1000


def _common_options(socket: zmq.Socket) -> None:
    socket.setsockopt(zmq.LINGER, 0)  # never block shutdown on undelivered messages: stale orders are worse
    socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES + 4096)  # oversize peers are cut off by libzmq
    socket.setsockopt(zmq.SNDHWM, _HIGH_WATER_MARK)
    socket.setsockopt(zmq.RCVHWM, _HIGH_WATER_MARK)
    socket.setsockopt(zmq.HEARTBEAT_IVL, _ZMTP_HEARTBEAT_IVL_MS)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ZMTP_HEARTBEAT_TIMEOUT_MS)


def bind_router(context: zmq.Context, endpoint: str) -> tuple[zmq.Socket, str]:
    """Bind the coordinator's ROUTER; return it and the endpoint actually bound (resolves ``:*`` ports)."""
    socket = context.socket(zmq.ROUTER)
    _common_options(socket)
    socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a gone worker raises instead of vanishing
    socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted worker takes over its routing id at once
    try:
        socket.bind(endpoint)
    except zmq.ZMQError:
        socket.close(linger=0)
        raise
    bound = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    return socket, bound


def connect_dealer(context: zmq.Context, endpoint: str, routing_id: str) -> zmq.Socket:
    """Connect a worker's DEALER to the coordinator, identified by its terminal name."""
    socket = context.socket(zmq.DEALER)
    _common_options(socket)
    socket.setsockopt(zmq.ROUTING_ID, routing_id.encode("utf-8"))
    socket.setsockopt(zmq.HEARTBEAT_TTL, _ZMTP_HEARTBEAT_TIMEOUT_MS)
    socket.setsockopt(zmq.RECONNECT_IVL, 200)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
    socket.setsockopt(zmq.CONNECT_TIMEOUT, 5000)
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


__all__ = ["bind_router", "connect_dealer", "decode", "recv_frames", "send_message"]
