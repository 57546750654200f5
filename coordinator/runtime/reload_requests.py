"""How ``mt5-copier reload`` asks the running coordinator to re-read its config, and hears the answer.

Files in ``state_dir/reload/``, not a signal: Windows has no SIGHUP, and a file waits for a coordinator that is
busy for a moment. The command writes ``ID.request`` (the config file it names); the coordinator's loop looks
every ``POLL_SECONDS``, takes the request (deletes it), applies it and writes ``ID.result`` (applied, or refused
with every problem); the command reads that and deletes it. Each file appears whole (written beside, then
renamed), so neither side ever reads half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

FOLDER_NAME = "reload"
POLL_SECONDS = 0.25  # how often the coordinator looks for a request
ANSWER_TIMEOUT_SECONDS = 15.0  # how long the command waits for the answer
_REQUEST, _RESULT, _PARTIAL = ".request", ".result", ".partial"


@dataclass(frozen=True)
class ReloadRequest:
    request_id: str
    config: Path | None  # the config file the command named (None: unreadable request)


@dataclass(frozen=True)
class ReloadResult:
    applied: bool
    problems: tuple[str, ...] = ()  # why it was refused, one problem a line
    changes: tuple[str, ...] = ()  # what the reload changed, one kind of change a line


def reload_folder(state_dir: Path) -> Path:
    return state_dir / FOLDER_NAME


def _write_whole(path: Path, data: dict[str, object]) -> None:
    partial = path.with_name(path.name + _PARTIAL)
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, path)


class ReloadInbox:
    """The coordinator's side: requests in, results out. Single-threaded, on the coordinator's loop."""

    def __init__(self, state_dir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._folder = reload_folder(state_dir)
        self._clock = clock
        self._next_look = 0.0

    def clear(self) -> None:
        """At start-up: requests and results left by an earlier coordinator answer nobody now."""
        if not self._folder.is_dir():
            return
        for path in self._folder.iterdir():
            with contextlib.suppress(OSError):
                path.unlink()

    def take(self) -> list[ReloadRequest]:
        """The requests waiting (at most one look every ``POLL_SECONDS``), each removed as it is taken."""
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
                data = {}
                with contextlib.suppress(OSError):
                    path.unlink()
            config = data.get("config") if isinstance(data, dict) else None
            requests.append(ReloadRequest(request_id, Path(config) if isinstance(config, str) else None))
        return requests

    def answer(self, request: ReloadRequest, result: ReloadResult) -> None:
        try:
            _write_whole(self._folder / f"{request.request_id}{_RESULT}",
                         {"applied": result.applied, "problems": list(result.problems),
                          "changes": list(result.changes)})
        except OSError as e:
            logger.error("could not answer reload request {}: {}", request.request_id, e)


class ReloadTimeout(Exception):
    """No answer in time; ``str()`` says whether the coordinator took the request."""


class CoordinatorGone(Exception):
    """The coordinator stopped before it answered."""


def request_reload(state_dir: Path, config: Path, *, still_running: Callable[[], bool],
                   timeout: float = ANSWER_TIMEOUT_SECONDS) -> ReloadResult:
    """The command's side: ask the coordinator on ``state_dir`` to reload ``config`` and wait for its answer.
    Raises ``ReloadTimeout``, ``CoordinatorGone``, or ``OSError`` when the request cannot be written."""
    folder = reload_folder(state_dir)
    folder.mkdir(exist_ok=True)
    request_id = uuid.uuid4().hex[:12]
    request, result = folder / f"{request_id}{_REQUEST}", folder / f"{request_id}{_RESULT}"
    _write_whole(request, {"config": str(config), "pid": os.getpid(), "at": time.time()})
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
                return ReloadResult(applied=bool(data.get("applied")),
                                    problems=tuple(str(p) for p in data.get("problems", ())),
                                    changes=tuple(str(c) for c in data.get("changes", ())))
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 1.0
            if not still_running():
                _withdraw(request)
                raise CoordinatorGone("the coordinator stopped before it answered")
        if now >= deadline:
            taken = not _withdraw(request)
            raise ReloadTimeout(
                f"the coordinator took the request but did not answer within {timeout:.0f}s; its log says what "
                "happened" if taken else
                f"the coordinator did not take the request within {timeout:.0f}s (is it stuck?); the request was "
                "withdrawn")
        time.sleep(0.05)


def _withdraw(request: Path) -> bool:
    """Take a request back; False when the coordinator took it already."""
    try:
        request.unlink()
        return True
    except OSError:
        return False
