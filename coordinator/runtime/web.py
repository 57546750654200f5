"""The coordinator's HTTP server ([metrics] listen): ``/metrics`` for Prometheus, ``/`` the status page,
``/api/status`` (exactly ``mt5-copier status --json``), ``/api/events`` (the last events of the history) and
``/api/latency`` (the last copies' latency stages).

It runs on threads of its own and never touches the engine: what it shows it reads from ``copier.db`` on
read-only connections of its own (the status board the engine writes every second, the history), and from the
metrics registry, whose counters are thread-safe. A slow or stuck browser therefore costs copying nothing.
Read-only: GET and HEAD only, no state is changed and nothing is cached. No authentication: bound to a
loopback address (the default) it answers only to names of this machine (a web page elsewhere cannot use a
browser on this machine to read it); on another address anyone who reaches the port reads it (the log warns).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loguru import logger
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from config import AppConfig
from config.endpoints import is_loopback_host, split_listen_address
from coordinator.domain.latency import CopyStages
from coordinator.persistence.state import Event, read_events
from coordinator.persistence.status import TerminalStatus, read_status
from coordinator.runtime.metrics import StatusCollector
from coordinator.runtime.status_report import gather_status, iso_time, open_read_only, state_path, status_json
from protocol.mt5 import describe_retcode

PAGE_PATH = Path(__file__).with_name("status_page.html")
MAX_EVENTS = 500
REQUEST_TIMEOUT_SECONDS = 10.0  # a client that stalls mid-request lets go of its thread after this


class WebServer:
    """Serves the pages on ``config.metrics.listen`` (``config`` is read per request: a reload's terminals
    show at once)."""

    def __init__(self, config: Callable[[], AppConfig], registry: CollectorRegistry) -> None:
        self._config = config
        self._registry = registry
        listen = config().metrics.listen
        if listen is None:
            raise ValueError("[metrics] listen is not set")
        self._host, self._port = split_listen_address(listen)
        self._page = _StatusPage(PAGE_PATH.read_text(encoding="utf-8"))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        registry.register(StatusCollector(self._status_rows))

    @property
    def address(self) -> str:
        """Where it listens, as a URL."""
        assert self._server is not None
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._server.server_address[1]}/"

    def start(self) -> None:
        """Bind and serve on a daemon thread; OSError when the address cannot be bound (taken, not ours)."""
        self._server = _Server((self._host, self._port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="web", daemon=True)
        self._thread.start()
        if is_loopback_host(self._host):
            logger.info("status page and metrics at {} (/metrics, /api/status)", self.address)
        else:
            logger.warning("status page and metrics at {} (/metrics, /api/status), on an address other machines "
                           "may reach: the page has no authentication, so anyone who reaches this port reads the "
                           "accounts, orders and errors it shows (bind 127.0.0.1 and use an SSH tunnel, or a "
                           "firewall rule that lets only your monitoring in)", self.address)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ---- what it serves (each on a request's own thread) -----------------------------------------

    def answers_to(self, host_header: str) -> bool:
        """Bound to loopback, only names of this machine are served (no DNS rebinding)."""
        if not is_loopback_host(self._host):
            return True
        return is_loopback_host(_host_of(host_header.strip()))

    def metrics(self, accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(self._registry), content_type

    def page(self) -> tuple[bytes, str, str]:
        return self._page.body, "text/html; charset=utf-8", self._page.policy

    def status(self) -> dict[str, Any]:
        return status_json(gather_status(self._config(), time.time()))

    def events(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        limit = _limit(query, 50)
        target = query.get("target", [None])[0]
        return [_event_json(event) for event in self._read(lambda db: read_events(db, target, 0.0, limit))]

    def latency(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        limit = _limit(query, 100)
        events = self._read(lambda db: read_events(db, None, 0.0, limit, with_stages=True))
        return [_event_json(event) for event in events]

    def _status_rows(self) -> list[TerminalStatus]:
        return self._read(read_status)

    def _read(self, query: Callable[[sqlite3.Connection], list[Any]]) -> list[Any]:
        """``query`` on a read-only connection of this request's own; nothing when there is no state yet."""
        try:
            with closing(open_read_only(state_path(self._config()))) as db:
                return query(db)
        except FileNotFoundError:
            return []


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request still running never holds up the coordinator's exit

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)


class _StatusPage:
    """The page, with a Content-Security-Policy allowing exactly its own inline script and style (by their
    hashes) and requests to this server: nothing from elsewhere runs on it, even if a broker's message held
    markup (the page also only ever sets text)."""

    def __init__(self, html: str) -> None:
        self.body = html.encode("utf-8")
        scripts = " ".join(_hash(text) for text in re.findall(r"<script>(.*?)</script>", html, re.S))
        styles = " ".join(_hash(text) for text in re.findall(r"<style>(.*?)</style>", html, re.S))
        self.policy = (f"default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self'; "
                       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _handler(server: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_SECONDS
        server_version = "mt5-copier"
        sys_version = ""

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def _refuse_method(self) -> None:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET and HEAD only\n", "text/plain; charset=utf-8",
                       extra={"Allow": "GET, HEAD"})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

        def _answer(self, *, with_body: bool) -> None:
            if not server.answers_to(self.headers.get("Host", "")):
                self._send(HTTPStatus.FORBIDDEN, b"this server answers to localhost only\n",
                           "text/plain; charset=utf-8", with_body=with_body)
                return
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            try:
                if url.path == "/metrics":
                    body, content_type = server.metrics(self.headers.get("Accept", ""))
                    self._send(HTTPStatus.OK, body, content_type, with_body=with_body)
                elif url.path in ("/", "/index.html"):
                    body, content_type, policy = server.page()
                    self._send(HTTPStatus.OK, body, content_type, with_body=with_body,
                               extra={"Content-Security-Policy": policy})
                elif url.path == "/api/status":
                    self._json(server.status(), with_body)
                elif url.path == "/api/events":
                    self._json(server.events(query), with_body)
                elif url.path == "/api/latency":
                    self._json(server.latency(query), with_body)
                else:
                    self._send(HTTPStatus.NOT_FOUND, b"not found: /, /metrics, /api/status, /api/events, "
                               b"/api/latency\n", "text/plain; charset=utf-8", with_body=with_body)
            except (sqlite3.DatabaseError, OSError) as e:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, f"cannot read the state: {e}\n".encode(),
                           "text/plain; charset=utf-8", with_body=with_body)
            except Exception:  # a bug shows as a 500 here and in the log; the server goes on
                logger.exception("the status page could not answer {}", url.path)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error (see the coordinator's log)\n",
                           "text/plain; charset=utf-8", with_body=with_body)

        def _json(self, value: object, with_body: bool) -> None:
            self._send(HTTPStatus.OK, json.dumps(value, indent=1).encode("utf-8"), "application/json",
                       with_body=with_body)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str, *, with_body: bool = True,
                  extra: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away: nothing to tell it

        def log_message(self, format: str, *args: Any) -> None:
            logger.trace("web: {} {}", self.address_string(), format % args)

    return Handler


def _host_of(header: str) -> str:
    """The host of a Host header: "localhost:9464" -> "localhost", "[::1]:9464" -> "::1"."""
    if header.startswith("["):
        return header[1:header.find("]")]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _limit(query: dict[str, list[str]], default: int) -> int:
    try:
        return max(1, min(MAX_EVENTS, int(query.get("limit", [default])[0])))
    except ValueError:
        return default


def _event_json(event: Event) -> dict[str, Any]:
    stages = CopyStages.from_json(event.stages)
    return {
        "at": iso_time(event.at),
        "target": event.target,
        "action": event.action,
        "outcome": event.outcome,
        "source_ticket": event.source_ticket,
        "copy_ticket": event.copy_ticket or None,
        "retcode": event.retcode or None,
        "retcode_text": describe_retcode(event.retcode) if event.retcode else None,
        "message": event.message,
        "stages": None if stages is None else {
            "steps": [{"stage": stage, "ms": round(took, 3)} for stage, took in stages.steps()],
            "total_ms": round(stages.total_ms, 3),
            "broker_ms": stages.broker_ms,
            "confirmed": stages.complete,
            "text": stages.describe(),
        },
    }
