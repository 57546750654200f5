"""What happened to the copies, as domain events: each outcome is emitted once, by the engine, and everything
that tells of it subscribes (the history in copier.db, the log, the run's report for the ``--once`` summary
and ``status``; next: alerts and metrics). Before, every outcome was written three times by hand.

Events are facts, in the past tense, with what a reader needs and nothing of how the engine got there.
Subscribers are called in the order they subscribed, on the engine's one thread; one that fails is logged
and skipped, never allowed to stop copying or the other subscribers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from coordinator.domain.latency import CopyStages
from coordinator.domain.link_lifecycle import LinkStatus
from coordinator.domain.planner import Skip


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyPlaced:
    target: str
    source_ticket: int
    copy_ticket: int
    description: str  # "EURUSD buy limit 0.1 lots @ 1.08 sl 0 tp 0"
    adjustment: str = ""  # what changed its size from a plain copy (contract sizes, a bound)
    already_there: bool = False  # the worker found the tagged copy in place: adopted, nothing sent
    retcode: int = 0
    stages: CopyStages | None = None  # its latency by stage; None: its way was not seen whole


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyModified:
    target: str
    source_ticket: int
    copy_ticket: int
    description: str
    retcode: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyReplaced:
    target: str
    source_ticket: int
    old_copy_ticket: int
    copy_ticket: int
    description: str
    adjustment: str = ""
    retcode: int = 0
    stages: CopyStages | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyConfirmed:
    """A copy placed or replaced a moment ago shows in its target's snapshot for the first time, after its answer:
    its latency stages are complete (a copy the snapshot showed by the answer's time has them in its event)."""

    target: str
    source_ticket: int
    copy_ticket: int
    stages: CopyStages


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyRemoved:
    target: str
    source_ticket: int
    copy_ticket: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandFailed:
    """The broker (or the worker) said no; nothing changed on the target."""

    target: str
    source_ticket: int
    copy_ticket: int
    kind: str  # the command: place, modify, replace, remove
    status: str  # rejected, refused
    retcode: int
    reason: str
    final: bool  # the broker will refuse it again as it is
    retry_in: float  # seconds until it may be tried again (sooner if the source order changes)
    waits_for_market: str = ""  # a closed market: sent when this symbol trades again
    repeated: bool = False  # the same cause as the last failure of this order (said once, not per cycle)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeSettledUnknown:
    """A command whose outcome stayed unknown was settled from what the terminal shows."""

    target: str
    source_ticket: int
    copy_ticket: int
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyFoundOnTarget:
    """A tagged copy the state had no record of (normal after a lost state file)."""

    target: str
    source_ticket: int
    copy_ticket: int
    expected: bool  # the state was lost or rebuilt, so finding copies again is what should happen


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyLeft:
    """A linked copy is no longer pending: it filled, expired or was deleted on the target."""

    target: str
    source_ticket: int
    copy_ticket: int
    status: LinkStatus
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrphanDecided:
    target: str
    source_ticket: int
    copy_ticket: int
    kill: bool  # False: kept (the orphan policy, or keep_filled_copies)
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSkipped:
    """A source order is not copied to a target, for a reason that is new (said once per cause). Orders that wait
    for the same thing (``SkipReason.waiting``: the target's symbol specification at start-up, a price, a retry)
    are one event: ``skip`` is the first, ``others`` the source tickets of the rest. A target's first plan can
    find a thousand orders waiting for its specification: one line in the log, not a thousand."""

    target: str
    skip: Skip
    others: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceOrderEnded:
    """What the source's history says became of a source order that had copies on ``target``."""

    target: str
    source_ticket: int
    symbol: str
    fate: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionLevelsSynced:
    """The copy's position took its source's SL and TP."""

    target: str
    source_ticket: int
    copy_ticket: int  # the copy's position
    sl: float
    tp: float
    detail: str  # "SL 1.07 -> 1.075, TP 1.1 -> 1.1"
    retcode: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionClosed:
    """The copier closed the copy's position, in whole or in part (or found it closed already)."""

    target: str
    source_ticket: int
    copy_ticket: int
    volume: float  # closed now
    remaining: float  # left open (0: closed in whole)
    price: float  # obtained
    slippage_points: float | None  # from the price asked to the price got: + worse, - better; None: not known
    reason: str  # why: the source closed, in part or in whole
    already_closed: bool = False  # nothing was sent: the position was closed already
    retcode: int = 0

    @property
    def partial(self) -> bool:
        return self.remaining > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyOpenedAtMarket:
    """on_source_fill = "market": the source filled, and its pending copy was replaced by a position."""

    target: str
    source_ticket: int
    old_copy_ticket: int  # the pending copy, removed
    copy_ticket: int  # the position
    volume: float
    price: float  # obtained
    slippage_points: float  # from the source's fill price (translated): how much worse (negative: better)
    retcode: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetControlChanged:
    """A target was paused, set to close-only or resumed (by the operator, a risk guard, or remove-copies)."""

    target: str
    mode: str  # "active", "paused" or "close_only"
    reason: str
    set_by: str  # "operator", "guard:min_equity", "guard:max_drawdown_percent", "remove-copies"


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskGuardTripped:
    """A risk guard of ``[targets.risk]`` tripped (``cleared`` False) or its condition ended (True)."""

    target: str
    guard: str  # the key: "max_total_volume", "min_equity", "max_drawdown_percent"
    reason: str  # what was measured against what: "equity 1890.00 below min_equity 2000.00"
    action: str  # what the copier does about it: "no new copies until equity is back above 2000.00"
    cleared: bool = False


# What happened to the copier itself rather than to a copy: its workers, its terminals' links and accounts, its
# own start and stop. Said in the log where they happen; the alerts tell a person (not history rows). ``terminal``
# is the terminal's name (the source's too), ``role`` "source" or "target".


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerDown:
    """A terminal's worker is gone: silent past worker_timeout, left (a remote worker's goodbye), never said hello
    in time, or killed as hung. Nothing that depends on it is decided until it is back."""

    terminal: str
    role: str
    remote: bool
    why: str  # "silent for 12s", "its worker did not say hello within 30s", ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerBack:
    """The worker of a terminal that was down is heard from again (welcomed, or its heartbeats resumed)."""

    terminal: str
    role: str
    down_for: float  # seconds since it was found down


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerExited:
    """A local worker's process exited when no one asked it to (a crash, a kill, a signal from outside)."""

    terminal: str
    role: str
    code: int  # its exit code (negative: the signal that ended it, on POSIX)
    restart_in: float | None  # seconds until the supervisor starts it again; None: it is not restarted
    restarts: int  # its restarts during this coordinator's life, this one included


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminalDisconnected:
    """A terminal has been out of reach for a while: its worker lost it, or it lost its broker."""

    terminal: str
    role: str
    why: str
    for_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminalReconnected:
    """A terminal said to be disconnected is connected again (worker and broker)."""

    terminal: str
    role: str
    down_for: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WrongAccount:
    """A terminal is logged into another account than its configured one (``cleared``: it is back on it)."""

    terminal: str
    role: str
    account: str  # "login@server" it reports
    configured: str  # "login@server" of its entry
    cleared: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorStarted:
    version: str
    host: str
    source: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorStopped:
    host: str
    reason: str  # "signal SIGTERM", "RuntimeError: see coordinator.log", ...
    crashed: bool = False


OperationalEvent = (WorkerDown | WorkerBack | WorkerExited | TerminalDisconnected | TerminalReconnected
                    | WrongAccount | CoordinatorStarted | CoordinatorStopped)


Event = (CopyPlaced | CopyConfirmed | CopyModified | CopyReplaced | CopyRemoved | CommandFailed | OutcomeSettledUnknown
         | CopyFoundOnTarget | CopyLeft | OrphanDecided | OrderSkipped | SourceOrderEnded | PositionLevelsSynced
         | PositionClosed | CopyOpenedAtMarket | TargetControlChanged | RiskGuardTripped | OperationalEvent)
Subscriber = Callable[[Event], None]


class EventStream:
    """The engine's one outlet for outcomes."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # one teller's failure must not stop copying, nor silence the others
                logger.exception("{} could not take a {} event", _name(subscriber), type(event).__name__)


def _name(subscriber: Subscriber) -> str:
    return getattr(subscriber, "__qualname__", None) or type(subscriber).__name__
