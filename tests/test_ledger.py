"""The command ledger alone: durable before sent, one flight per source order, unknown until the terminal says."""

from __future__ import annotations

from pathlib import Path

from coordinator.domain.actions import Action, ActionKind, SourceTicket
from coordinator.persistence.state import StateStore
from coordinator.runtime.ledger import UNKNOWN_OUTCOME_GRACE_SECONDS, CommandLedger
from protocol import Command, CommandResult, CommandStatus, Snapshot
from tests.enginekit import copy_of, order


def place(source_ticket: int, command_id: str) -> tuple[Action, Command]:
    """A placement as the dispatcher hands it to the ledger: the action, and the command sent for it."""
    action = Action(kind=ActionKind.PLACE, source_ticket=SourceTicket(source_ticket), symbol="EURUSD", volume=0.1,
                    price=1.08, magic=source_ticket, comment=f"mtc#{source_ticket}", source_volume=0.1)
    return action, action.command(command_id, deadline_ms=0)


def snapshot(*orders) -> Snapshot:
    return Snapshot(boot_id="b", seq=1, taken_at_ms=0, login=2, connected=True, trade_allowed=True, orders=orders)


def test_an_intent_is_durable_before_it_is_in_flight_and_survives_a_restart(tmp_path: Path):
    state = StateStore(tmp_path / "state")
    ledger = CommandLedger(state, ["t1"])
    ledger.record("t1", [place(1, "c1")], now=0.0, fingerprints={})
    assert set(ledger.in_flight["t1"]) == {1}
    state.close()

    state = StateStore(tmp_path / "state")
    try:
        again = CommandLedger(state, ["t1"])
        abandoned, held = again.recover(now=100.0)
        assert abandoned == [] and [(target, command.command_id) for target, command in held] == [("t1", "c1")]
        flight = again.in_flight["t1"][1]
        assert flight.recovered and flight.unknown_since < 100.0
        assert flight.action == place(1, "c1")[0]  # what the link will be recorded from, as planned
        # The terminal shows the tagged copy: it was placed by the earlier run, and is adopted, never resent.
        [(settled, result)] = again.unknown_to_settle("t1", snapshot(copy_of(order(1), 9001)), 100.0, 99.0)
        assert settled is flight
        assert result is not None and (result.status, result.ticket, result.already_existed) == (
            CommandStatus.DONE, 9001, True)
    finally:
        state.close()


def test_an_intent_for_a_target_no_longer_configured_is_abandoned(tmp_path: Path):
    state = StateStore(tmp_path / "state")
    try:
        CommandLedger(state, ["gone"]).record("gone", [place(1, "c1")], 0.0, {})
        abandoned, held = CommandLedger(state, ["t1"]).recover(now=1.0)
        assert [command.command_id for command in abandoned] == ["c1"] and held == []
    finally:
        state.close()


def test_an_unknown_outcome_is_absent_only_after_the_grace_and_stale_results_match_nothing(tmp_path: Path):
    state = StateStore(tmp_path / "state")
    try:
        ledger = CommandLedger(state, ["t1"])
        ledger.record("t1", [place(1, "c1")], now=0.0, fingerprints={})
        assert ledger.matching("t1", [CommandResult(command_id="other", status=CommandStatus.DONE)]) == []
        [(_, flight)] = ledger.timed_out(now=31.0, command_timeout=30.0)
        assert ledger.unknown_to_settle("t1", snapshot(), now=32.0, welcomed_at=0.0) == []
        [(settled, result)] = ledger.unknown_to_settle("t1", snapshot(), now=31.0 + UNKNOWN_OUTCOME_GRACE_SECONDS,
                                                       welcomed_at=0.0)
        assert settled is flight and result is None
    finally:
        state.close()
