"""How an operator's command (``reload``, ``remove-copies``) asks the running coordinator something, and hears
the answer.

Files in ``state_dir/requests/``, not a signal or a socket: Windows has no SIGHUP, a file waits for a coordinator
that is busy for a moment, and only who may write the state folder may ask. The command writes ``ID.request``
(its kind and what it asks, JSON); the coordinator's loop looks every ``POLL_SECONDS``, takes the request (deletes
it), serves it and writes ``ID.result``; the command reads that and deletes it. Each file appears whole (written
beside, then renamed), so neither side ever reads half of one. What a kind of request carries and answers is its
own module's business (coordinator/runtime/reload_requests.py, coordinator/runtime/kill_switch.py): here a body is
a JSON object.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

FOLDER_NAME = "requests"
POLL_SECONDS = 0.25  # how often the coordinator looks for a request
ANSWER_TIMEOUT_SECONDS = 15.0  # how long a command waits for the answer, unless its kind needs longer
_REQUEST, _RESULT, _PARTIAL = ".request", ".result", ".partial"

Body = dict[str, Any]  # a JSON object


@dataclass(frozen=True)
class Request:
    request_id: str
    kind: str  # "reload", "remove-copies"; "" when the request could not be read
    body: Body = field(default_factory=dict)  # what the command asked


def requests_folder(state_dir: Path) -> Path:
    return state_dir / FOLDER_NAME


def _write_whole(path: Path, data: Body) -> None:
    partial = path.with_name(path.name + _PARTIAL)
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, path)


class RequestInbox:
    """The coordinator's side: requests in, results out. Single-threaded, on the coordinator's loop."""

    def __init__(self, state_dir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._folder = requests_folder(state_dir)
        self._clock = clock
        self._next_look = 0.0

    def clear(self) -> None:
        """At start-up: requests and results left by an earlier coordinator answer nobody now."""
        if not self._folder.is_dir():
            return
        for path in self._folder.iterdir():
            with contextlib.suppress(OSError):
                path.unlink()

    def take(self) -> list[Request]:
        """The requests waiting, oldest first (at most one look every ``POLL_SECONDS``), each removed as it is
        taken."""
        now = self._clock()
        if now < self._next_look:
            return []
        self._next_look = now + POLL_SECONDS
        try:
            paths = sorted(self._folder.glob(f"*{_REQUEST}"), key=lambda path: path.stat().st_mtime)
        except OSError:
            return []  # no folder yet (no request ever), or one vanished while sorting: the next look sees it
        requests = []
        for path in paths:
            request_id = path.name[:-len(_REQUEST)]
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                path.unlink()
            except OSError:
                continue  # its command took it back (it gave up waiting): nobody asks any more
            except ValueError:
                data = None
                with contextlib.suppress(OSError):
                    path.unlink()
            kind = data.get("kind") if isinstance(data, dict) else None
            body = data.get("body") if isinstance(data, dict) else None
            if isinstance(kind, str) and isinstance(body, dict):
                requests.append(Request(request_id, kind, body))
            else:
                requests.append(Request(request_id, ""))  # answered as unreadable: its command stops waiting
        return requests

    def answer(self, request: Request, body: Body) -> None:
        try:
            _write_whole(self._folder / f"{request.request_id}{_RESULT}", body)
        except OSError as e:
            logger.error("could not answer {} request {}: {}", request.kind or "a", request.request_id, e)


class NoAnswer(Exception):
    """No answer in time; ``str()`` says whether the coordinator took the request (``taken``)."""

    def __init__(self, message: str, *, taken: bool) -> None:
        super().__init__(message)
        self.taken = taken


class CoordinatorGone(Exception):
    """The coordinator stopped before it answered."""


def ask_coordinator(state_dir: Path, kind: str, body: Body, *, still_running: Callable[[], bool],
                    timeout: float = ANSWER_TIMEOUT_SECONDS) -> Body:
    """The command's side: ask the coordinator on ``state_dir`` and wait for its answer. Raises ``NoAnswer``,
    ``CoordinatorGone``, or ``OSError`` when the request cannot be written."""
    folder = requests_folder(state_dir)
    folder.mkdir(exist_ok=True)
    request_id = uuid.uuid4().hex[:12]
    request, result = folder / f"{request_id}{_REQUEST}", folder / f"{request_id}{_RESULT}"
    _write_whole(request, {"kind": kind, "body": body, "pid": os.getpid(), "at": time.time()})
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + 1.0
    while True:
        if result.exists():
            try:
                data = json.loads(result.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None  # being replaced this instant (Windows): read it again
            if isinstance(data, dict):
                with contextlib.suppress(OSError):
                    result.unlink()
                return data
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 1.0
            if not still_running():
                _withdraw(request)
                raise CoordinatorGone("the coordinator stopped before it answered")
        if now >= deadline:
            taken = not _withdraw(request)
            raise NoAnswer(
                f"the coordinator took the request but did not answer within {timeout:.0f}s; its log says what "
                "happened" if taken else
                f"the coordinator did not take the request within {timeout:.0f}s (is it stuck?); the request was "
                "withdrawn", taken=taken)
        time.sleep(0.05)


def _withdraw(request: Path) -> bool:
    """Take a request back; False when the coordinator took it already."""
    try:
        request.unlink()
        return True
    except OSError:
        return False
