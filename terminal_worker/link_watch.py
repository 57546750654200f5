"""What the worker's link to the coordinator is doing, from libzmq's socket events, in words a person can act on.

A DEALER hides its connection: hellos simply go unanswered whether nothing listens on the port, a firewall
drops the packets, the coordinator refused this worker's key or speaks without encryption. The socket's
monitor (``zmq.Socket.get_monitor_socket``) tells them apart; the worker says the last of them in its
"waiting for the coordinator" line, and stops for good when the coordinator refused its key (a configuration
error: no retry mends it).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

# ZAP status codes (RFC 27): 400 is "authentication failure", a verdict on this client's key; 300 and 500 are
# temporary or internal errors of the authenticator.
ZAP_REFUSED = 400
# A connect that fails faster than this was refused (nothing listens); a slower one timed out.
REFUSED_WITHIN_SECONDS = 1.0

_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_CLOSED | zmq.EVENT_DISCONNECTED
           | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
           | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_MONITOR_IDS = itertools.count(1)  # an address of our own: libzmq reuses a closed socket's FD, pyzmq's default


class LinkWatch:
    """The connection events of one DEALER; ``problem`` is the last thing that went wrong ("" while fine)."""

    def __init__(self, socket: zmq.Socket, endpoint: str, *, problem: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``problem``: what went wrong on the socket this one replaces, said until this one has news."""
        self._socket = socket
        self._endpoint = endpoint
        self._clock = clock
        self._monitor = socket.get_monitor_socket(_EVENTS, f"inproc://worker-link-monitor-{next(_MONITOR_IDS)}")
        self._connecting_since: float | None = None
        self._connected = False
        self.problem = problem or "no connection event seen yet"
        self.key_refused = False  # the coordinator's authenticator refused this worker's key (ZAP 400)

    def drain(self) -> None:
        """Read every event that arrived (never blocks; a getsockopt when there is none, no poll)."""
        while int(self._monitor.get(zmq.EVENTS)) & zmq.POLLIN:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.note(int(event["event"]), int(event["value"]))

    def note(self, event: int, value: int) -> None:
        """One socket event (``value`` as libzmq gives it: an errno, a ZAP status, a protocol error code)."""
        now = self._clock()
        if event == zmq.EVENT_CONNECT_DELAYED:
            if self._connecting_since is None:
                self._connecting_since = now
        elif event == zmq.EVENT_CONNECTED:
            self._connecting_since = None
            self._connected = True
        elif event == zmq.EVENT_CLOSED and not self._connected and self._connecting_since is not None:
            took = now - (self._connecting_since if self._connecting_since is not None else now)
            self._connecting_since = None
            if took < REFUSED_WITHIN_SECONDS:
                self.problem = (f"connection refused at {self._endpoint} (nothing listens there: is the coordinator "
                                "running, with this address and port in its bind?)")
            else:
                self.problem = (f"no answer from {self._endpoint} within {took:.0f}s (host unreachable, or a "
                                "firewall drops the connection)")
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.problem = ""
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            if value == ZAP_REFUSED:
                self.key_refused = True
            self.problem = f"the coordinator refused this worker's key (ZAP status {value})"
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                self.problem = ("the coordinator and this worker disagree on encryption: one of them has CURVE keys "
                                "configured and the other has none")
            else:
                self.problem = f"the link's handshake failed (ZMTP protocol error {value:#x})"
        elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            self.problem = ("the connection was closed during the handshake (not a coordinator at that address, or "
                            "with encryption on, coordinator_key_file is not the coordinator's public key)")
        elif event == zmq.EVENT_DISCONNECTED:
            self._connected = False
            if not self.problem:
                self.problem = f"the coordinator at {self._endpoint} closed the connection"

    def close(self) -> None:
        """Stop monitoring; call before closing the socket."""
        self._socket.disable_monitor()
        self._monitor.close(linger=0)
