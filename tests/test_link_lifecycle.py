"""The link lifecycle: its transition table, and the one place (StateStore.move_link) that applies it."""

from __future__ import annotations

from pathlib import Path

import pytest
from loguru import logger

from coordinator.domain.actions import Action, ActionKind, SourceTicket
from coordinator.domain.link_lifecycle import InvalidLinkMove, LinkMove, LinkStatus, allowed_moves, next_status
from coordinator.persistence.state import StateStore

ACTIVE, REPLACING, FILLED, DELETED, EXPIRED, REMOVED, CLOSED = (
    LinkStatus.ACTIVE, LinkStatus.REPLACING, LinkStatus.FILLED, LinkStatus.DELETED, LinkStatus.EXPIRED,
    LinkStatus.REMOVED, LinkStatus.CLOSED)

EXPECTED = {
    ACTIVE: {LinkMove.REPLACE_STARTED: REPLACING, LinkMove.REMOVED: REMOVED, LinkMove.FILLED: FILLED,
             LinkMove.EXPIRED: EXPIRED, LinkMove.DELETED: DELETED},
    REPLACING: {LinkMove.REPLACE_STARTED: REPLACING, LinkMove.REPLACE_UNDONE: ACTIVE, LinkMove.REMOVED: REMOVED,
                LinkMove.FILLED: FILLED},
    # A filled copy's position closes once; a copy that left for good moves no more: only a new copy (placed or
    # adopted) starts a new life.
    FILLED: {LinkMove.POSITION_CLOSED: CLOSED}, DELETED: {}, EXPIRED: {}, REMOVED: {}, CLOSED: {},
}


@pytest.mark.parametrize("status", list(LinkStatus))
def test_every_status_allows_exactly_its_moves(status):
    assert allowed_moves(status) == frozenset(EXPECTED[status])
    for move in LinkMove:
        if move in EXPECTED[status]:
            assert next_status(status, move) is EXPECTED[status][move]
        else:
            with pytest.raises(InvalidLinkMove, match=f"a link that is {status.value} cannot be {move.value}"):
                next_status(status, move)


def test_each_action_makes_the_moves_its_kind_calls_for():
    moves = {kind: (Action(kind=kind, source_ticket=SourceTicket(1), symbol="S").link_move_on_record,
                    Action(kind=kind, source_ticket=SourceTicket(1), symbol="S").link_move_on_done)
             for kind in ActionKind}
    assert moves == {ActionKind.PLACE: (None, None), ActionKind.MODIFY: (None, None),
                     ActionKind.REPLACE: (LinkMove.REPLACE_STARTED, None), ActionKind.REMOVE: (None, LinkMove.REMOVED),
                     # Positions: an SLTP or a close leaves the link as it is (it ends once nothing of it is open);
                     # MARKET binds the new position to the link, or removes the copy, as its result says.
                     ActionKind.SLTP: (None, None), ActionKind.CLOSE: (None, None), ActionKind.MARKET: (None, None)}


def test_a_filled_copy_can_never_be_made_pending_again_by_a_move():
    for start in (FILLED, CLOSED):
        for move in LinkMove:
            if move in EXPECTED[start]:
                assert next_status(start, move) not in (ACTIVE, REPLACING)
            else:
                with pytest.raises(InvalidLinkMove):
                    next_status(start, move)


def placed(store: StateStore, source_ticket: int = 1, copy_ticket: int = 9001) -> None:
    store.save_link("t1", Action(kind=ActionKind.PLACE, source_ticket=SourceTicket(source_ticket), symbol="EURUSD",
                                 volume=0.1, price=1.08), copy_ticket)


def test_the_store_applies_allowed_moves_and_keeps_them_across_a_restart(tmp_path: Path):
    state = StateStore(tmp_path / "state")
    placed(state)
    assert state.move_link("t1", 1, LinkMove.REPLACE_STARTED)
    assert state.move_link("t1", 1, LinkMove.FILLED)
    state.close()
    again = StateStore(tmp_path / "state")
    try:
        assert again.links("t1")[1].status is FILLED
    finally:
        again.close()


def test_the_store_refuses_a_move_the_table_does_not_hold_and_keeps_the_status(store: StateStore):
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="ERROR")
    try:
        placed(store)
        assert store.move_link("t1", 1, LinkMove.FILLED)
        assert not store.move_link("t1", 1, LinkMove.REPLACE_UNDONE)  # would make a filled copy placeable again
    finally:
        logger.remove(sink)
    assert store.links("t1")[1].status is FILLED
    assert lines == ["t1: link of source #1 (copy #9001): a link that is filled cannot be replace undone; "
                     "its status stays filled"]


def test_a_move_of_a_link_that_does_not_exist_changes_nothing(store: StateStore):
    assert not store.move_link("t1", 42, LinkMove.REMOVED)
    assert store.links("t1") == {}


def test_a_new_copy_starts_a_new_life_whatever_the_old_status(store: StateStore):
    placed(store)
    store.move_link("t1", 1, LinkMove.DELETED)
    placed(store, copy_ticket=9002)  # replace_deleted_copies placed it again
    link = store.links("t1")[1]
    assert (link.status, link.copy_ticket) == (ACTIVE, 9002)
