"""The gate between a plan and the dispatcher (coordinator/domain/controls.py) and where controls are recorded
(coordinator/persistence/controls.py): what each mode lets through, what waits and why, and the records."""

from __future__ import annotations

import sqlite3

import pytest

from coordinator.domain.actions import Action, ActionKind, CopyTicket, SourceTicket
from coordinator.domain.controls import (
    ACTIVE,
    TargetControl,
    TargetMode,
    VolumeRoom,
    adds_exposure,
    gate,
    operator_control,
)
from coordinator.persistence.controls import forget_peak, read_controls, read_peak, save_peak, set_control
from coordinator.persistence.state import StateStore

PAUSED = operator_control(TargetMode.PAUSED, 1_700_000_000.0)
CLOSE_ONLY = operator_control(TargetMode.CLOSE_ONLY, 1_700_000_000.0)


def action(kind: ActionKind, source: int, volume: float = 0.1, ticket: int = 0, **fields) -> Action:
    return Action(kind=kind, source_ticket=SourceTicket(source), symbol="EURUSD", ticket=CopyTicket(ticket),
                  volume=volume, magic=source, comment=f"mt5c:{source}", **fields)


EVERY_KIND = [action(ActionKind.PLACE, 1), action(ActionKind.MODIFY, 2, ticket=902),
              action(ActionKind.REPLACE, 3, ticket=903), action(ActionKind.REMOVE, 4, ticket=904),
              action(ActionKind.SLTP, 5, ticket=905), action(ActionKind.CLOSE, 6, ticket=906),
              action(ActionKind.MARKET, 7, ticket=907, price=1.08, deviation=20, evidence="its history says filled")]


def kinds(actions) -> list[str]:
    return [a.kind.value for a in actions]


def test_active_sends_everything_as_planned():
    gated = gate(EVERY_KIND, ACTIVE)
    assert gated.sent == EVERY_KIND and gated.withheld == []


def test_paused_sends_nothing_and_says_why_for_each():
    gated = gate(EVERY_KIND, PAUSED)
    assert gated.sent == []
    assert [item.action for item in gated.withheld] == EVERY_KIND
    reasons = {item.reason for item in gated.withheld}
    assert len(reasons) == 1 and reasons.pop().startswith("paused by the operator (since ")
    assert gated.withheld[0].describe().startswith("waiting: place held back: paused by the operator")


def test_close_only_holds_new_exposure_and_lets_the_rest_through():
    gated = gate(EVERY_KIND, CLOSE_ONLY)
    assert kinds(gated.sent) == ["modify", "remove", "sltp", "close", "remove"]
    assert [(item.action.kind.value, item.action.source_ticket) for item in gated.withheld] == [("place", 1),
                                                                                              ("replace", 3)]
    assert gated.withheld[0].reason.endswith(": no new copies")
    assert "kept as it is rather than replaced" in gated.withheld[1].reason


def test_close_only_removes_a_copy_whose_source_filled_instead_of_opening_it_at_market():
    [removal] = [a for a in gate(EVERY_KIND, CLOSE_ONLY).sent if a.source_ticket == 7]
    assert (removal.kind, removal.ticket, removal.magic, removal.comment) == (ActionKind.REMOVE, 907, 7, "mt5c:7")
    assert removal.evidence == "its history says filled" and removal.orphan_removal
    assert "not opened at market" in removal.reason and removal.volume == 0.0


def test_only_placements_replacements_and_market_opens_add_exposure():
    assert [a.kind.value for a in EVERY_KIND if adds_exposure(a)] == ["place", "replace", "market"]


def test_max_total_volume_holds_the_placement_that_would_pass_it_counting_what_this_plan_places():
    room = VolumeRoom(limit=0.5, held=0.1, copy_volumes={})
    gated = gate([action(ActionKind.PLACE, 1, 0.3), action(ActionKind.PLACE, 2, 0.2), action(ActionKind.PLACE, 3, 0.1)],
                 ACTIVE, room)
    assert [a.source_ticket for a in gated.sent] == [1, 3]
    assert [(item.action.source_ticket, item.reason) for item in gated.withheld] == [
        (2, "max_total_volume 0.5: 0.4 lots held, this copy 0.2")]
    assert gated.over_volume == [2]


def test_max_total_volume_counts_a_replacement_by_what_it_adds_and_never_holds_a_removal():
    room = VolumeRoom(limit=0.5, held=0.4, copy_volumes={903: 0.2})
    grows = action(ActionKind.REPLACE, 3, 0.3, ticket=903)  # adds 0.1: 0.5, at the limit
    shrinks = action(ActionKind.REPLACE, 3, 0.1, ticket=903)
    assert gate([grows], ACTIVE, room).sent == [grows]
    assert gate([shrinks], ACTIVE, VolumeRoom(limit=0.5, held=0.9, copy_volumes={903: 0.2})).sent == [shrinks]
    too_much = gate([action(ActionKind.REPLACE, 3, 0.5, ticket=903)], ACTIVE, room)
    assert too_much.withheld[0].reason == "max_total_volume 0.5: 0.4 lots held, this copy adds 0.3"
    removal = action(ActionKind.REMOVE, 4, ticket=904)
    assert gate([removal], ACTIVE, VolumeRoom(limit=0.5, held=9.0, copy_volumes={})).sent == [removal]


def test_a_description_says_the_mode_and_since_when():
    assert ACTIVE.describe() == "active"
    assert TargetControl(TargetMode.PAUSED).describe() == "paused by the operator"
    assert PAUSED.describe().startswith("paused by the operator (since 2023-11-1")
    guard = TargetControl(TargetMode.CLOSE_ONLY, reason="close-only: risk guard x", set_by="guard:x")
    assert guard.by_guard and not PAUSED.by_guard


# ---- recorded in copier.db ------------------------------------------------------------------------


@pytest.fixture
def db(store: StateStore) -> sqlite3.Connection:
    return store.connection


def test_a_control_is_recorded_with_its_history_row(db):
    set_control(db, "t1", PAUSED)
    assert read_controls(db) == {"t1": PAUSED}
    assert db.execute("SELECT target, source_ticket, action, outcome, message FROM events").fetchall() == [
        ("t1", 0, "control", "paused", "paused by the operator")]


def test_a_resume_is_recorded_as_active_and_starts_the_drawdown_peak_again(db):
    set_control(db, "t1", PAUSED)
    assert save_peak(db, "t1", 10_000.0, control_set_at=PAUSED.set_at)
    set_control(db, "t1", operator_control(TargetMode.ACTIVE, PAUSED.set_at + 5))
    assert read_controls(db)["t1"].mode is TargetMode.ACTIVE
    assert read_peak(db, "t1") is None


def test_a_peak_is_written_only_over_the_control_row_it_was_judged_with(db):
    assert save_peak(db, "t1", 100.0, control_set_at=None) and read_peak(db, "t1") == 100.0
    set_control(db, "t1", operator_control(TargetMode.ACTIVE, 5.0))  # a resume from another process
    assert not save_peak(db, "t1", 120.0, control_set_at=None), "a peak from before the resume must not come back"
    assert read_peak(db, "t1") is None
    assert save_peak(db, "t1", 90.0, control_set_at=5.0) and read_peak(db, "t1") == 90.0
    forget_peak(db, "t1")
    assert read_peak(db, "t1") is None


def test_a_mode_this_version_does_not_know_reads_as_paused(db):
    db.execute("INSERT INTO target_controls (target, mode, set_at) VALUES ('t1', 'frozen', 1.0)")
    assert read_controls(db)["t1"].mode is TargetMode.PAUSED


def test_a_state_file_without_the_table_has_no_controls():
    assert read_controls(sqlite3.connect(":memory:")) == {}
