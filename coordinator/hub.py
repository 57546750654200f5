"""The coordinator's end of every worker link: one ROUTER socket, framed messages by terminal name."""

from __future__ import annotations

import zmq
from loguru import logger

from protocol import Message, ProtocolError, decode
from protocol.transport import bind_router, recv_frames, send_message

MAX_MESSAGES_PER_POLL = 1000  # bounded so timers still run under a flood


class Hub:
    def __init__(self, endpoint: str) -> None:
        self._context = zmq.Context()
        try:
            self._socket, self.endpoint = bind_router(self._context, endpoint)
        except zmq.ZMQError as e:
            self._context.destroy(linger=0)
            raise OSError(f"cannot bind the coordinator to {endpoint}: {e}") from e
        self.dropped = 0

    def send(self, name: str, message: Message) -> bool:
        """False when the worker is not connected or its queue is full: the message was not delivered."""
        try:
            send_message(self._socket, message, routing_id=name.encode("utf-8"))
            return True
        except ProtocolError as e:
            logger.error("could not encode a {} for worker {}: {}", type(message).__name__, name, e)
        except zmq.Again:
            logger.warning("worker {} is not reading; {} not delivered", name, type(message).__name__)
        except zmq.ZMQError as e:
            if e.errno != zmq.EHOSTUNREACH:
                logger.warning("sending {} to worker {} failed: {}", type(message).__name__, name, e)
        return False

    def poll(self, timeout_ms: int) -> list[tuple[str, Message]]:
        received: list[tuple[str, Message]] = []
        if not self._socket.poll(timeout_ms, zmq.POLLIN):
            return received
        for _ in range(MAX_MESSAGES_PER_POLL):
            try:
                frames = recv_frames(self._socket)
            except zmq.Again:
                break
            routing_id, body = frames[0], frames[1:]
            name = routing_id.decode("utf-8", "replace")
            try:
                received.append((name, decode(body)))
            except ProtocolError as e:
                self.dropped += 1
                logger.error("dropped a malformed message from worker {!r}: {}", name, e)
        return received

    def close(self) -> None:
        self._socket.close(linger=0)
        self._context.destroy(linger=0)
