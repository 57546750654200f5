"""Webhook receivers on 127.0.0.1 for the alert tests: one that takes alerts (apprise's ``json://`` posts), one that
accepts connections and never answers, and a port where nothing listens."""

from __future__ import annotations

import json
import queue
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Records every JSON body posted to it; answers 500 to the first ``fail_first`` posts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: queue.Queue[dict[str, Any]] = queue.Queue()
        self.fail_first = fail_first
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.refused < receiver.fail_first:
                    receiver.refused += 1
                    self.send_response(500)
                else:
                    receiver.posts.put(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll: shutdown() waits for it.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Its address as an apprise URL (with a user and password, as secrets the copier must never show)."""
        return f"json://alerter:s3cr3t-token@127.0.0.1:{self._server.server_address[1]}/hook"

    def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next alert posted (its ``title``, ``message`` and ``type``)."""
        try:
            return self.posts.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no alert arrived within {timeout}s") from None

    def all_now(self) -> list[dict[str, Any]]:
        found = []
        while not self.posts.empty():
            found.append(self.posts.get_nowait())
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiver(fail_first: int = 0) -> Iterator[Receiver]:
    taker = Receiver(fail_first)
    try:
        yield taker
    finally:
        taker.close()


@contextmanager
def hanging_url() -> Iterator[str]:
    """A receiver that accepts connections (the kernel does, into the listen backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"json://127.0.0.1:{listener.getsockname()[1]}/hook"


def refused_url() -> str:
    """A port where nothing listens: every connection is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"json://127.0.0.1:{port}/hook"
