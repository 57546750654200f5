"""What reaches the disk at once (coordinator/persistence/durability.py): the intents and a target's control are
committed with synchronous=FULL, everything else with NORMAL, and the connection is left at NORMAL."""

from __future__ import annotations

from pathlib import Path

from coordinator.domain.controls import TargetControl, TargetMode
from coordinator.persistence.controls import read_controls, set_control
from coordinator.persistence.state import StateStore
from tests.test_ledger import place


def traced(state: StateStore) -> list[str]:
    statements: list[str] = []
    state.connection.set_trace_callback(statements.append)
    return statements


def synchronous(state: StateStore) -> int:
    return int(state.connection.execute("PRAGMA synchronous").fetchone()[0])


def commits_under_full(statements: list[str]) -> list[bool]:
    """For each COMMIT or RELEASE traced, whether synchronous was FULL at that moment."""
    full = False
    seen = []
    for statement in statements:
        if statement.startswith("PRAGMA synchronous="):
            full = statement.endswith(("FULL", "2"))
        elif statement.startswith(("COMMIT", "RELEASE")):
            seen.append(full)
    return seen


def test_intents_are_committed_synced_and_other_writes_are_not(tmp_path: Path):
    state = StateStore(tmp_path / "state")
    try:
        assert synchronous(state) == 1  # NORMAL
        statements = traced(state)
        action, command = place(1, "c1")
        state.record_intents([("t1", action, command)])
        assert commits_under_full(statements) == [True]
        assert synchronous(state) == 1
        statements.clear()
        state.settle_intent("c1", "done", copy_ticket=9001)
        state.record_event("t1", 1, "placed", "done", copy_ticket=9001)
        assert "PRAGMA synchronous=FULL" not in statements
        assert [intent.command.command_id for intent in state.unsettled_intents()] == []
    finally:
        state.close()


def test_a_control_is_committed_synced(tmp_path: Path):
    state = StateStore(tmp_path / "state")
    try:
        statements = traced(state)
        set_control(state.connection, "t1", TargetControl(mode=TargetMode.PAUSED, reason="test", set_by="op",
                                                          set_at=1.0))
        assert commits_under_full(statements) == [True]
        assert synchronous(state) == 1
        assert read_controls(state.connection)["t1"].mode is TargetMode.PAUSED
    finally:
        state.close()
