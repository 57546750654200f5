"""The coordinator's engine: turns worker reports into plans, plans into commands, results into state.

Level-triggered: snapshots are the truth and commands are only the delta towards them. A lost command or a
lost result is repaired by the next plan, never by resending. Single-threaded: every method runs on the
coordinator's one loop thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from loguru import logger

from config import AppConfig
from coordinator import __version__
from coordinator.planner import Skip, SkipReason, TargetInputs, TargetPlan, our_copies, plan_target
from coordinator.retcodes import describe, is_retryable
from coordinator.state import StateStore
from coordinator.views import TerminalView
from protocol import (
    PROTOCOL_MINOR,
    Command,
    CommandBatch,
    CommandKind,
    CommandResult,
    CommandResults,
    CommandStatus,
    ErrorMessage,
    Goodbye,
    Heartbeat,
    Hello,
    Message,
    Snapshot,
    SymbolRequest,
    SymbolSpecs,
    Welcome,
)
from protocol.tags import is_copy_of

SYMBOL_REQUEST_RETRY_SECONDS = 10.0
UNKNOWN_OUTCOME_GRACE_MS = 3000  # a request whose fate is unknown may still land: look again after this
RETRY_DELAYS = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)  # retryable rejections
FINAL_FAILURE_RETRY_SECONDS = 300.0  # final rejections: conditions rarely change, but the order may be edited


@dataclass(slots=True)
class InFlight:
    command: Command
    sent_at: float  # monotonic
    unknown_since_ms: int = 0  # wall-clock ms; set once the outcome is unknown


@dataclass(slots=True)
class Failure:
    retcode: int
    message: str
    attempts: int
    retry_at: float  # monotonic
    final: bool


@dataclass(slots=True)
class TargetReport:
    """What happened on one target during this run (for the --once summary and the demo)."""

    placed: dict[int, int] = field(default_factory=dict)  # source ticket -> copy ticket
    adopted: dict[int, int] = field(default_factory=dict)
    failures: dict[int, Failure] = field(default_factory=dict)  # current, cleared on success
    last_plan: TargetPlan | None = None
    unavailable: str = ""  # why the target could not be planned for at the last attempt


SendFunction = Callable[[str, Message], bool]


class Engine:
    def __init__(self, config: AppConfig, state: StateStore, send: SendFunction,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.state = state
        self._send = send
        self._clock = clock
        self.source = TerminalView(config.source)
        self.targets = {target.name: TerminalView(target.terminal, target) for target in config.targets
                        if target.copy.enabled}
        self.views = {self.source.name: self.source, **self.targets}
        self.in_flight: dict[str, dict[int, InFlight]] = {name: {} for name in self.targets}
        self.reports: dict[str, TargetReport] = {name: TargetReport() for name in self.targets}
        self._dirty: set[str] = set()
        self._frozen_reason = ""
        self._logged_skips: dict[tuple[str, int], str] = {}
        self._next_heartbeat = 0.0
        self._recover_unsettled_intents()

    # ---- start-up ------------------------------------------------------------------------------

    def _recover_unsettled_intents(self) -> None:
        """Intents written before a crash may or may not have reached the broker: hold them as unknown
        until the target's first snapshot after this start shows whether the copy exists."""
        for intent in self.state.unsettled_intents():
            if intent.target not in self.in_flight:
                self.state.settle_intent(intent.command.command_id, "abandoned: target no longer configured")
                continue
            logger.warning("{}: {} for source #{} was in flight when the coordinator stopped; checking the "
                           "terminal before doing anything else for it", intent.target, intent.command.kind.value,
                           intent.command.source_ticket)
            self.in_flight[intent.target][intent.command.source_ticket] = InFlight(
                command=intent.command, sent_at=self._clock(), unknown_since_ms=1
            )

    # ---- messages ------------------------------------------------------------------------------

    def on_message(self, name: str, message: Message) -> None:
        view = self.views.get(name)
        if view is None:
            logger.error("a worker calling itself {!r} connected, but no terminal has that name", name)
            self._send(name, ErrorMessage(code="unknown-terminal", fatal=True,
                                          message=f"no terminal named {name!r} in the coordinator's config"))
            return
        now = self._clock()
        view.last_seen = now
        if isinstance(message, Hello):
            self._on_hello(view, message)
        elif isinstance(message, ErrorMessage):
            if message.message != view.last_error:
                logger.error("{}: {}", name, message.message)
            view.last_error = message.message
        elif isinstance(message, Goodbye):
            logger.info("{}: worker is leaving: {}", name, message.reason)
            view.online = False
            view.forget_boot()
        elif not view.welcomed:
            self._send(name, ErrorMessage(code="hello-required", message="send hello first"))
        elif isinstance(message, Snapshot):
            self._on_snapshot(view, message, now)
        elif isinstance(message, Heartbeat):
            if not view.online:
                logger.info("{}: worker is back", name)
                view.online = True
            if view.snapshot is not None and message.boot_id == view.boot_id and message.last_seq == view.snapshot.seq:
                view.confirmed_at = now
        elif isinstance(message, CommandResults):
            self._on_results(view, message)
        elif isinstance(message, SymbolSpecs):
            self._on_specs(view, message)
        else:
            logger.warning("{}: ignored a {} message: workers do not send it", name, type(message).__name__)

    def _on_hello(self, view: TerminalView, hello: Hello) -> None:
        config = view.config
        problems = []
        if hello.terminal != view.name:
            problems.append(f"calls itself {hello.terminal!r} on the link of {view.name!r}")
        if hello.role != config.role.value:
            problems.append(f"runs as {hello.role}, configured as {config.role.value}")
        if hello.account.login != config.login or hello.account.server != config.server:
            problems.append(f"is logged into {hello.account.login}@{hello.account.server}, "
                            f"configured {config.login}@{config.server}")
        if problems:
            message = f"worker {view.name} " + "; ".join(problems)
            logger.error("{}: refusing it", message)
            view.last_error = message
            self._send(view.name, ErrorMessage(code="identity-mismatch", message=message, fatal=True))
            return
        if view.welcomed and view.boot_id and view.boot_id != hello.boot_id:
            logger.warning("{}: a new worker process (boot {}) replaced boot {}", view.name, hello.boot_id,
                           view.boot_id)
        if view.boot_id != hello.boot_id:
            view.forget_boot()
            view.specs.clear()
            view.missing_symbols.clear()
        view.boot_id = hello.boot_id
        view.hello = hello
        view.welcomed = True
        view.online = True
        view.last_error = ""
        view.welcomed_at_ms = _now_ms()
        logger.info("{} ({}) connected: account {}@{}, {} terminal, balance {:.2f} {}", view.name,
                    hello.role, hello.account.login, hello.account.server, hello.backend, hello.account.balance,
                    hello.account.currency)
        self._send(view.name, Welcome(
            coordinator_version=__version__, protocol_minor=PROTOCOL_MINOR,
            heartbeat_interval=self.config.coordinator.heartbeat_interval,
            worker_timeout=self.config.coordinator.worker_timeout,
        ))

    def _on_snapshot(self, view: TerminalView, snapshot: Snapshot, now: float) -> None:
        if snapshot.boot_id != view.boot_id:
            self._send(view.name, ErrorMessage(code="hello-required", message="snapshot from an unknown boot"))
            return
        if snapshot.login != view.config.login:
            logger.error("{}: snapshot of account {} on the link of account {}; ignored", view.name,
                         snapshot.login, view.config.login)
            return
        if view.snapshot is not None and snapshot.seq <= view.snapshot.seq:
            return  # out of order or repeated: the newer one already applies
        previous = view.snapshot
        view.snapshot = snapshot
        view.confirmed_at = now
        view.online = True
        if view is self.source:
            if previous is None or previous.orders != snapshot.orders:
                self._dirty.update(self.targets)
        else:
            self._resolve_unknown_outcomes(view, snapshot)
            self._dirty.add(view.name)

    def _on_specs(self, view: TerminalView, message: SymbolSpecs) -> None:
        for spec in message.specs:
            view.specs[spec.name] = spec
            view.missing_symbols.discard(spec.name)
            view.requested_symbols.pop(spec.name, None)
        for name in message.missing:
            if name not in view.missing_symbols:
                logger.warning("{}: symbol {} does not exist on this terminal", view.name, name)
            view.missing_symbols.add(name)
            view.requested_symbols.pop(name, None)
        self._dirty.add(view.name)

    def _on_results(self, view: TerminalView, message: CommandResults) -> None:
        flights = self.in_flight.get(view.name, {})
        by_id = {flight.command.command_id: (ticket, flight) for ticket, flight in flights.items()}
        for result in message.results:
            entry = by_id.get(result.command_id)
            if entry is None:
                logger.debug("{}: result for command {} that is no longer in flight", view.name, result.command_id)
                continue
            self._settle(view, entry[1], result)
        self._dirty.add(view.name)

    def _settle(self, view: TerminalView, flight: InFlight, result: CommandResult) -> None:
        command = flight.command
        report = self.reports[view.name]
        flights = self.in_flight[view.name]
        if result.status is CommandStatus.DONE:
            flights.pop(command.source_ticket, None)
            self.state.save_link(view.name, command, result.ticket)
            self.state.settle_intent(command.command_id, "done", result.retcode, result.ticket)
            action = "adopted" if result.already_existed else "placed"
            self.state.record_event(view.name, command.source_ticket, action, "done", copy_ticket=result.ticket,
                                    retcode=result.retcode, message=f"{command.symbol} {command.volume} lots")
            (report.adopted if result.already_existed else report.placed)[command.source_ticket] = result.ticket
            report.failures.pop(command.source_ticket, None)
            logger.success("{}: source #{} copied as #{} ({} {} {} lots @ {}){}", view.name, command.source_ticket,
                           result.ticket, command.symbol, _type_name(command.order_type), command.volume,
                           command.price, " - it was already there" if result.already_existed else "")
            return
        if result.status is CommandStatus.UNKNOWN:
            flight.unknown_since_ms = _now_ms()
            logger.warning("{}: outcome of {} for source #{} is unknown ({}); the next snapshots decide",
                           view.name, command.kind.value, command.source_ticket,
                           result.error_message or describe(result.retcode))
            return
        flights.pop(command.source_ticket, None)
        reason = _failure_text(result)
        self.state.settle_intent(command.command_id, result.status.value, result.retcode)
        self.state.record_event(view.name, command.source_ticket, command.kind.value, result.status.value,
                                retcode=result.retcode, message=reason)
        self._record_failure(view.name, command.source_ticket, result.retcode, reason,
                             final=result.status is CommandStatus.REFUSED or not is_retryable(result.retcode))

    def _record_failure(self, target: str, source_ticket: int, retcode: int, reason: str, *, final: bool) -> None:
        report = self.reports[target]
        previous = report.failures.get(source_ticket)
        attempts = previous.attempts + 1 if previous else 1
        delay = FINAL_FAILURE_RETRY_SECONDS if final else RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
        report.failures[source_ticket] = Failure(retcode=retcode, message=reason, attempts=attempts,
                                                 retry_at=self._clock() + delay, final=final)
        if previous is None or previous.message != reason:
            # Once per cause, not once per cycle.
            logger.error("{}: copying source #{} failed: {} ({}; retry in {:.0f}s)", target, source_ticket, reason,
                         "final" if final else "retryable", delay)

    def _resolve_unknown_outcomes(self, view: TerminalView, snapshot: Snapshot) -> None:
        """Settle commands whose fate was unknown, now that a later snapshot shows the terminal's truth."""
        flights = self.in_flight[view.name]
        for source_ticket, flight in list(flights.items()):
            if not flight.unknown_since_ms:
                continue
            earliest = max(flight.unknown_since_ms + UNKNOWN_OUTCOME_GRACE_MS, view.welcomed_at_ms)
            command = flight.command
            if command.kind is CommandKind.PLACE:
                copy = next((o for o in snapshot.orders if is_copy_of(o.magic, o.comment, source_ticket)), None)
                if copy is None:
                    position = next((p for p in snapshot.positions if is_copy_of(p.magic, p.comment, source_ticket)),
                                    None)
                    copy_ticket = position.identifier if position else 0
                else:
                    copy_ticket = copy.ticket
                if copy_ticket:
                    self._settle(view, flight, CommandResult(command_id=command.command_id,
                                                             status=CommandStatus.DONE, ticket=copy_ticket,
                                                             already_existed=True))
                    continue
            if snapshot.taken_at_ms < earliest:
                continue
            flights.pop(source_ticket, None)
            self.state.settle_intent(command.command_id, "absent")
            self.state.record_event(view.name, source_ticket, command.kind.value, "absent",
                                    message="outcome was unknown; the terminal shows it did not happen")
            logger.info("{}: {} for source #{} did not happen; it will be planned again", view.name,
                        command.kind.value, source_ticket)

    # ---- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self._clock()
        coordinator = self.config.coordinator
        for view in self.views.values():
            if view.online and now - view.last_seen > coordinator.worker_timeout:
                view.online = False
                logger.warning("{}: worker silent for {:.1f}s; nothing depending on it is decided until it is back",
                               view.name, now - view.last_seen)
        for name, flights in self.in_flight.items():
            for flight in flights.values():
                if not flight.unknown_since_ms and now - flight.sent_at > coordinator.command_timeout:
                    flight.unknown_since_ms = _now_ms()
                    logger.warning("{}: no answer to {} for source #{} after {:.0f}s; its outcome is unknown", name,
                                   flight.command.kind.value, flight.command.source_ticket, now - flight.sent_at)
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + coordinator.heartbeat_interval
            for view in self.views.values():
                if view.welcomed:
                    self._send(view.name, Heartbeat(sent_at_ms=_now_ms()))

    # ---- planning ------------------------------------------------------------------------------

    def take_dirty(self) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def source_fresh(self) -> tuple[bool, str]:
        now = self._clock()
        source = self.source
        if not source.welcomed:
            return False, f"source {source.name} has not connected"
        if not source.fresh(now, self.config.coordinator.worker_timeout):
            return False, f"source {source.name} is offline or its snapshot is stale"
        if source.snapshot is not None and not source.snapshot.connected:
            return False, f"source {source.name} is not connected to its broker"
        return True, ""

    def reconcile(self, names: set[str] | None = None) -> int:
        """Plan the named targets (all when None) and send what the plans call for; return how many commands
        and symbol requests went out."""
        fresh, why = self.source_fresh()
        if not fresh:
            # A missing or stale source is not an empty one: decide nothing.
            if why != self._frozen_reason:
                logger.warning("copying paused: {}", why)
                self._frozen_reason = why
            return 0
        if self._frozen_reason:
            logger.info("copying resumed: source {} is fresh", self.source.name)
            self._frozen_reason = ""
        sent = 0
        for name in sorted(names if names is not None else self.targets):
            if name in self.targets:
                sent += self._reconcile_target(self.targets[name])
        return sent

    def _reconcile_target(self, view: TerminalView) -> int:
        report = self.reports[view.name]
        now = self._clock()
        if not view.fresh(now, self.config.coordinator.worker_timeout):
            report.unavailable = view.last_error or "worker offline or not yet reporting"
            return 0
        tradeable, why = view.tradeable()
        if not tradeable:
            if report.unavailable != why:
                logger.warning("{}: not copying: {}", view.name, why)
            report.unavailable = why
            return 0
        report.unavailable = ""
        assert view.target is not None and view.snapshot is not None and self.source.snapshot is not None
        backoff = {ticket: failure.message for ticket, failure in report.failures.items() if failure.retry_at > now}
        plan = plan_target(
            self.source.snapshot.orders,
            TargetInputs(
                name=view.name,
                settings=view.target.copy,
                orders=view.snapshot.orders,
                specs=view.specs,
                missing_symbols=frozenset(view.missing_symbols),
                links=self.state.links(view.name),
                in_flight=frozenset(self.in_flight[view.name]),
                backoff=backoff,
            ),
        )
        report.last_plan = plan
        for link in plan.adopt:
            self.state.adopt_link(view.name, link)
            self.state.record_event(view.name, link.source_ticket, "adopted", "done", copy_ticket=link.copy_ticket,
                                    message="copy found on the target with the copier's tag")
            logger.info("{}: found the copy #{} of source #{} on the terminal; tracking it", view.name,
                        link.copy_ticket, link.source_ticket)
        for note in plan.notes:
            logger.info("{}", note)
        self._log_skips(view.name, plan.skips)
        for duplicate in plan.duplicates:
            logger.error("{}: order #{} is a second copy of source #{}; leaving it for a person to check", view.name,
                         duplicate.ticket, duplicate.magic)
        return self._request_symbols(view, plan.needed_symbols, now) + self._send_commands(view, plan.commands, now)

    def _request_symbols(self, view: TerminalView, symbols: set[str], now: float) -> int:
        wanted = sorted(s for s in symbols if now - view.requested_symbols.get(s, -1e9) > SYMBOL_REQUEST_RETRY_SECONDS)
        if not wanted:
            return 0
        if self._send(view.name, SymbolRequest(request_id=uuid.uuid4().hex[:12], symbols=tuple(wanted))):
            for symbol in wanted:
                view.requested_symbols[symbol] = now
            return 1
        return 0

    def _send_commands(self, view: TerminalView, planned: list[Command], now: float) -> int:
        if not planned:
            return 0
        deadline_ms = _now_ms() + int(self.config.coordinator.command_timeout * 1000)
        commands = [replace(command, command_id=uuid.uuid4().hex, deadline_ms=deadline_ms) for command in planned]
        flights = self.in_flight[view.name]
        for command in commands:
            # The intent is durable before the command exists anywhere else: a crash after this line is
            # resolved against the terminal on restart, never by sending blindly again.
            self.state.record_intent(view.name, command)
            flights[command.source_ticket] = InFlight(command=command, sent_at=now)
        if self._send(view.name, CommandBatch(batch_id=uuid.uuid4().hex[:12], commands=tuple(commands))):
            return len(commands)
        # Not delivered (the worker just vanished): nothing can have happened. Settle and let re-planning retry.
        for command in commands:
            flights.pop(command.source_ticket, None)
            self.state.settle_intent(command.command_id, "not-delivered")
        logger.warning("{}: could not deliver {} command(s); will retry when the worker is back", view.name,
                       len(commands))
        return 0

    def _log_skips(self, target: str, skips: list[Skip]) -> None:
        current = {(target, skip.source_ticket): skip for skip in skips}
        for key, skip in current.items():
            text = f"{skip.reason.value}: {skip.detail}" if skip.detail else skip.reason.value
            if self._logged_skips.get(key) != text:
                self._logged_skips[key] = text
                if skip.reason is SkipReason.SYMBOL_MISSING:
                    logger.warning("{}: not copying source #{}: {}", target, skip.source_ticket, text)
                else:
                    logger.debug("{}: source #{} {}", target, skip.source_ticket, text)
        for key in [key for key in self._logged_skips if key[0] == target and key not in current]:
            del self._logged_skips[key]

    # ---- status --------------------------------------------------------------------------------

    def busy(self) -> bool:
        """Commands or symbol requests are still outstanding."""
        return any(self.in_flight.values()) or any(view.requested_symbols for view in self.targets.values())

    def next_retry_in(self) -> float | None:
        now = self._clock()
        pending = [f.retry_at - now for report in self.reports.values() for f in report.failures.values()
                   if not f.final]
        return max(0.0, min(pending)) if pending else None

    def copies_on(self, name: str) -> int:
        view = self.targets[name]
        return len(our_copies(view.snapshot.orders)[0]) if view.snapshot else 0


def _failure_text(result: CommandResult) -> str:
    if result.retcode:
        return f"{describe(result.retcode)} ({result.retcode}{', ' + result.comment if result.comment else ''})"
    return result.comment or result.error_message or result.status.value


_TYPE_NAMES = {2: "buy limit", 3: "sell limit", 4: "buy stop", 5: "sell stop", 6: "buy stop limit",
               7: "sell stop limit"}


def _type_name(order_type: int) -> str:
    return _TYPE_NAMES.get(order_type, f"type {order_type}")


def _now_ms() -> int:
    return int(time.time() * 1000)
