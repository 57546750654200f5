"""The command ledger: every command the coordinator sent and has not seen settled, per target, with the
intent that made it durable first.

The guarantee it keeps: no order is sent twice for one intent. An intent is committed to the state *before*
its command exists anywhere else (``record``), at most one command is in flight per source order, and a
command whose outcome is unknown (no answer in time, its worker died, the coordinator restarted) stays here
until the terminal itself shows what happened (``unknown_to_settle``): it is never resent blindly. What a
settled command means for links, history and retries is the engine's business; the ledger only says which
command settled and how.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from coordinator.domain.actions import Action
from coordinator.domain.link_lifecycle import LinkMove
from coordinator.persistence.state import StateStore
from protocol import Command, CommandKind, CommandResult, CommandStatus, Snapshot
from protocol.tags import find_tagged

UNKNOWN_OUTCOME_GRACE_SECONDS = 3.0  # a request whose fate is unknown may still land: look again after this
RECOVERED_AGE_SECONDS = 3600.0  # an intent from before this start is "unknown since long ago"


@dataclass(slots=True)
class InFlight:
    action: Action  # what the plan decided
    command: Command  # what was sent for it (its command_id answers)
    sent_at: float  # the engine's clock
    fingerprint: tuple = ()  # the source order as it was when the command was planned
    unknown_since: float = 0.0  # set once the outcome is unknown (0 = known so far)
    recovered: bool = False  # found unsettled in the state at start-up (sent by an earlier run)
    worker_gone: bool = False  # the worker process that had it exited: any later worker's report is newer


class CommandLedger:
    def __init__(self, state: StateStore, targets: Iterable[str]) -> None:
        self._state = state
        self.in_flight: dict[str, dict[int, InFlight]] = {name: {} for name in targets}  # target -> source ticket

    def recover(self, now: float) -> tuple[list[Command], list[tuple[str, Command]]]:
        """Intents an earlier run left unsettled: (abandoned ones, whose target is no longer configured; and
        (target, command) held as unknown until the target's first snapshot of this run shows what happened)."""
        abandoned, held = [], []
        for intent in self._state.unsettled_intents():
            if intent.target not in self.in_flight:
                self._state.settle_intent(intent.command.command_id, "abandoned: target no longer configured")
                abandoned.append(intent.command)
                continue
            self.in_flight[intent.target][intent.command.source_ticket] = InFlight(
                action=intent.action, command=intent.command, sent_at=now,
                unknown_since=now - RECOVERED_AGE_SECONDS, recovered=True)
            held.append((intent.target, intent.command))
        return abandoned, held

    def record(self, target: str, sends: Sequence[tuple[Action, Command]], now: float,
               fingerprints: Mapping[int, tuple]) -> None:
        """Make each intent durable (the action and its command, with the link move the action makes on
        recording: a replacement marks its link first, so a copy found missing later is known to be ours to
        place again), then hold it as in flight."""
        self.record_all([(target, sends)], now, fingerprints)

    def record_all(self, batches: Sequence[tuple[str, Sequence[tuple[Action, Command]]]], now: float,
                   fingerprints: Mapping[int, tuple]) -> None:
        """``record`` for several targets' sends at once: every intent durable in one transaction (all or none),
        then each held as in flight."""
        held = [(self.in_flight[target], sends) for target, sends in batches]  # an unknown target: nothing written
        self._state.record_intents([(target, action, command) for target, sends in batches
                                    for action, command in sends])
        for flights, sends in held:
            for action, command in sends:
                flights[command.source_ticket] = InFlight(
                    action=action, command=command, sent_at=now,
                    fingerprint=fingerprints.get(command.source_ticket, ()))

    def not_delivered(self, target: str, commands: Sequence[Command]) -> None:
        """The batch never left (the worker just vanished): nothing can have happened; the next plan retries."""
        for command in commands:
            self.in_flight[target].pop(command.source_ticket, None)
            self._state.settle_intent(command.command_id, "not-delivered")
            if command.kind is CommandKind.REPLACE:
                self._state.move_link(target, command.source_ticket, LinkMove.REPLACE_UNDONE)

    def matching(self, target: str, results: Iterable[CommandResult]) -> list[tuple[InFlight, CommandResult]]:
        """The flights these results answer (a result for a command no longer in flight is stale)."""
        by_id = {flight.command.command_id: flight for flight in self.in_flight.get(target, {}).values()}
        return [(by_id[result.command_id], result) for result in results if result.command_id in by_id]

    def close(self, target: str, flight: InFlight) -> None:
        """The flight's outcome is known: it leaves the ledger (the caller settles its intent)."""
        self.in_flight[target].pop(flight.command.source_ticket, None)

    def unknown_to_settle(self, target: str, snapshot: Snapshot, now: float,
                          welcomed_at: float) -> list[tuple[InFlight, CommandResult | None]]:
        """Flights whose outcome was unknown and that the terminal's state (``snapshot``, confirmed current) now
        settles: a placement whose tagged copy is there is DONE (its result); anything else is absent (None)
        once it had time to land. Judged on the coordinator's clock: a worker's clock may be minutes off."""
        settled: list[tuple[InFlight, CommandResult | None]] = []
        for source_ticket, flight in self.in_flight[target].items():
            if not flight.unknown_since:
                continue
            command = flight.command
            if command.kind in (CommandKind.PLACE, CommandKind.REPLACE, CommandKind.MARKET):
                copy_ticket = find_tagged(source_ticket, snapshot.orders, snapshot.positions, command.ticket) or 0
                if copy_ticket:
                    settled.append((flight, CommandResult(command_id=command.command_id, status=CommandStatus.DONE,
                                                          ticket=copy_ticket, already_existed=flight.recovered)))
                    continue
            if command.kind is CommandKind.CLOSE:
                closed = _closed_volume(command, snapshot)
                if closed:
                    # The position holds less than the close was planned on: it happened (an unknown close is
                    # never sent again; a resend would be refused anyway, its expected volume no longer held).
                    settled.append((flight, CommandResult(command_id=command.command_id, status=CommandStatus.DONE,
                                                          ticket=command.ticket, volume=closed)))
                    continue
            waited = now - flight.unknown_since >= UNKNOWN_OUTCOME_GRACE_SECONDS
            # After a worker (re)connects, its first reports may predate what it finds settling: give it time too.
            # A worker that exited can no longer be busy with the request: the next worker's reports suffice.
            worker_settled = flight.worker_gone or welcomed_at <= flight.unknown_since or \
                now - welcomed_at >= UNKNOWN_OUTCOME_GRACE_SECONDS
            if waited and worker_settled:
                settled.append((flight, None))
        return settled

    def timed_out(self, now: float, command_timeout: float) -> list[tuple[str, InFlight]]:
        """Flights unanswered for ``command_timeout``: their outcome is unknown from now on."""
        expired = []
        for target, flights in self.in_flight.items():
            for flight in flights.values():
                if not flight.unknown_since and now - flight.sent_at > command_timeout:
                    flight.unknown_since = now
                    expired.append((target, flight))
        return expired

    def worker_gone(self, target: str, now: float) -> list[InFlight]:
        """The target's worker exited: none of its flights can still be answered. Returns those whose outcome
        turned unknown just now."""
        turned = []
        for flight in self.in_flight.get(target, {}).values():
            flight.worker_gone = True
            if not flight.unknown_since:
                flight.unknown_since = now
                turned.append(flight)
        return turned

    def busy(self) -> bool:
        return any(self.in_flight.values())

    def add_target(self, target: str) -> None:
        """A target the config gained: nothing in flight for it yet (kept if it was still leaving)."""
        self.in_flight.setdefault(target, {})

    def remove_target(self, target: str, why: str) -> list[InFlight]:
        """A target that left the config: what was still in flight for it can no longer be settled from its
        terminal. Each intent keeps its record in the state, settled as abandoned with ``why`` (as ``recover``
        does for a target gone at start-up); the abandoned flights are returned for the log."""
        flights = list(self.in_flight.pop(target, {}).values())
        for flight in flights:
            self._state.settle_intent(flight.command.command_id, f"abandoned: {why}")
        return flights


def _closed_volume(command: Command, snapshot: Snapshot) -> float:
    """How much of the position a CLOSE was for is no longer there (0: all of it still is)."""
    position = next((p for p in snapshot.positions if p.ticket == command.ticket), None)
    held = position.volume if position is not None else 0.0
    return max(0.0, round(command.expected_volume - held, 8)) if held < command.expected_volume - 1e-9 else 0.0
