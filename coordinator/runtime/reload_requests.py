"""What ``mt5-copier reload`` asks the running coordinator, and what it answers, on the operator request channel
(coordinator/runtime/operator_requests.py): the config file the command named; applied, or refused with every
problem."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coordinator.runtime.operator_requests import ANSWER_TIMEOUT_SECONDS, Body, Request, ask_coordinator

RELOAD = "reload"  # the request's kind


@dataclass(frozen=True)
class ReloadRequest:
    config: Path | None  # the config file the command named (None: unreadable request)

    @classmethod
    def from_request(cls, request: Request) -> ReloadRequest:
        config = request.body.get("config")
        return cls(Path(config) if isinstance(config, str) else None)


@dataclass(frozen=True)
class ReloadResult:
    applied: bool
    problems: tuple[str, ...] = ()  # why it was refused, one problem a line
    changes: tuple[str, ...] = ()  # what the reload changed, one kind of change a line

    def to_body(self) -> Body:
        return {"applied": self.applied, "problems": list(self.problems), "changes": list(self.changes)}

    @classmethod
    def from_body(cls, body: Body) -> ReloadResult:
        return cls(applied=bool(body.get("applied")), problems=tuple(str(p) for p in body.get("problems", ())),
                   changes=tuple(str(c) for c in body.get("changes", ())))


def request_reload(state_dir: Path, config: Path, *, still_running: Callable[[], bool],
                   timeout: float = ANSWER_TIMEOUT_SECONDS) -> ReloadResult:
    """Ask the coordinator on ``state_dir`` to reload ``config`` and wait for its answer. Raises ``NoAnswer``,
    ``CoordinatorGone`` (coordinator/runtime/operator_requests.py), or ``OSError`` when the request cannot be
    written."""
    answer = ask_coordinator(state_dir, RELOAD, {"config": str(config)}, still_running=still_running,
                             timeout=timeout)
    return ReloadResult.from_body(answer)
