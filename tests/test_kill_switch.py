"""The kill switch (``mt5-copier remove-copies``) on the engine: what it takes off a target and what it leaves
(coordinator/domain/kill_switch.py), and how the running coordinator does it (coordinator/runtime/kill_switch.py),
over terminals kept as books (tests/enginekit.py) on a hand-turned clock."""

from __future__ import annotations

import pytest

from coordinator.domain.controls import TargetMode
from coordinator.domain.kill_switch import KILL_SWITCH_REASON, kill_list, next_batch
from coordinator.domain.link_lifecycle import Link
from coordinator.persistence.controls import read_controls
from coordinator.runtime.kill_switch import (
    CLOSED,
    REMOVE_COPIES,
    REMOVED,
    TO_CLOSE,
    TO_REMOVE,
    KillSwitch,
    KillSwitchAnswer,
    KillSwitchRequest,
)
from coordinator.runtime.operator_requests import Request
from protocol import CommandKind, PositionFacts
from tests.enginekit import SOURCE, TARGET, Desk, EngineRig, Session, copy_of, order, position_of
from tests.simhelpers import BUY_LIMIT, SELL_STOP


class Switch:
    """The kill switch of a Session's engine, turned as the coordinator's loop turns it: each beat the workers
    report and the engine plans (``Session.step``), then the kill switch sends, and the workers answer at once."""

    def __init__(self, session: Session) -> None:
        self.session, self.rig = session, session.rig
        self.kill_switch = KillSwitch(self.rig.engine, clock=lambda: self.rig.clock)

    def ask(self, target: str = TARGET, *, positions: bool = False, preview: bool = False) -> KillSwitchAnswer | None:
        request = KillSwitchRequest(target, positions=positions, preview=preview)
        return self.kill_switch.ask(Request("r1", REMOVE_COPIES, request.to_body()))

    def beat(self, *, answer: bool = True) -> list[KillSwitchAnswer]:
        self.session.step(0.1)
        finished = [found for _, found in self.kill_switch.step()]
        if answer:
            for name, message in list(self.rig.sent):
                self.session._answer(name, message)
        return finished

    def run(self, seconds: float = 30.0) -> KillSwitchAnswer:
        for _ in range(int(seconds / 0.1)):
            finished = self.beat()
            if finished:
                return finished[0]
        raise AssertionError(f"the kill switch did not answer within {seconds}s")


@pytest.fixture
def desk(tmp_path) -> Desk:
    return Desk(tmp_path / "state")


def copied(desk: Desk) -> tuple[Session, dict[int, int]]:
    """Three source orders copied to t1; the third filled on both sides (a copy position). Returns the session and
    each source ticket's copy ticket."""
    master, target = desk[SOURCE], desk[TARGET]
    tickets = [master.place(BUY_LIMIT), master.place(SELL_STOP, symbol="GBPUSD"),
               master.place(BUY_LIMIT, distance_points=800)]
    session = desk.session()
    session.run(5, until=lambda: len(target.copies()) == 3)
    copies = {ticket: copy.ticket for ticket, copy in target.copies().items()}
    master.fill(tickets[2])
    target.fill(copies[tickets[2]])
    session.run(1)
    return session, copies


def add_foreign(desk: Desk) -> tuple[int, int]:
    """A person's pending order and an expert advisor's position on t1."""
    target = desk[TARGET]
    by_hand = target.add(type=BUY_LIMIT, price_open=1.07, volume=0.3, comment="by hand")
    target.positions[777] = PositionFacts(ticket=777, identifier=777, symbol="EURUSD", type=0, volume=0.5, magic=42,
                                          comment="my ea")
    return by_hand, 777


def history(session: Session, action: str) -> list[tuple]:
    return [row for row in session.events() if row[1] == action]


def test_the_kill_switch_removes_the_copiers_pending_copies_only_pauses_the_target_and_records_each_removal(desk):
    session, copies = copied(desk)
    a, b, c = copies
    by_hand, ea_position = add_foreign(desk)
    target = desk[TARGET]
    target.modify(copies[b], comment="")  # a server that cut the comment: only its link says it is a copy
    switch = Switch(session)
    commands_before = len(session.commands)

    assert switch.ask() is None  # under way
    answer = switch.run()

    assert answer.complete, answer
    assert {(item.copy_ticket, item.outcome) for item in answer.items} == {(copies[a], REMOVED), (copies[b], REMOVED)}
    assert any("1 copy position(s) left open (--positions closes them)" in note for note in answer.notes)
    assert any("left alone on t1: 1 pending order(s) and 1 position(s) the copier did not place" in note
               for note in answer.notes), answer.notes
    assert set(target.orders) == {by_hand}
    assert set(target.positions) == {copies[c], ea_position}
    sent = session.commands[commands_before:]
    assert [(command.kind, command.ticket) for command in sent] == \
        [(CommandKind.REMOVE, copies[a]), (CommandKind.REMOVE, copies[b])]
    # Paused, persisted, and told; each removal recorded as an intent, settled, and in the history with its reason.
    engine, state = session.rig.engine, session.rig.state
    assert engine.control(TARGET).mode is TargetMode.PAUSED and engine.control(TARGET).set_by == "remove-copies"
    assert read_controls(state.connection)[TARGET].mode is TargetMode.PAUSED
    outcomes = {command.command_id: session.rig.intent_outcome(command) for command in sent}
    assert set(outcomes.values()) == {"done"}
    removed = history(session, "removed")
    assert [row[3] for row in removed] == [KILL_SWITCH_REASON, KILL_SWITCH_REASON]
    assert history(session, "control")

    # Paused: the source's orders are still pending, but nothing is placed again.
    session.run(3)
    assert not target.copies() and len(session.commands) == commands_before + 2


def test_with_positions_it_closes_the_copy_positions_and_never_a_position_it_did_not_open(desk):
    session, copies = copied(desk)
    a, b, c = copies
    _, ea_position = add_foreign(desk)
    switch = Switch(session)

    assert switch.ask(positions=True) is None
    answer = switch.run()

    assert answer.complete, answer
    assert {(item.what, item.copy_ticket, item.outcome) for item in answer.items} == {
        ("order", copies[a], REMOVED), ("order", copies[b], REMOVED), ("position", copies[c], CLOSED)}
    assert set(desk[TARGET].positions) == {ea_position}
    [closed] = history(session, "position-close")
    assert KILL_SWITCH_REASON in closed[3]


def test_a_preview_lists_what_would_go_and_changes_nothing(desk):
    session, copies = copied(desk)
    a, b, c = copies
    add_foreign(desk)
    switch = Switch(session)
    commands_before = len(session.commands)

    preview = switch.ask(positions=True, preview=True)

    assert preview is not None and not preview.refused
    assert {(item.copy_ticket, item.outcome) for item in preview.items} == {
        (copies[a], TO_REMOVE), (copies[b], TO_REMOVE), (copies[c], TO_CLOSE)}
    assert switch.beat() == []
    assert len(session.commands) == commands_before
    assert session.rig.engine.control(TARGET).mode is TargetMode.ACTIVE


def test_with_no_terminal_to_ask_on_it_refuses_and_touches_nothing(tmp_path):
    rig = EngineRig(tmp_path / "state")
    try:
        rig.hello(SOURCE)
        rig.snapshot(SOURCE, [order(100)])  # t1's worker never connected
        kill_switch = KillSwitch(rig.engine, clock=lambda: rig.clock)
        rig.sent.clear()

        answer = kill_switch.ask(Request("r1", REMOVE_COPIES, KillSwitchRequest(TARGET).to_body()))

        assert answer is not None and "no terminal to ask on: target t1" in answer.refused
        assert kill_switch.ask(Request("r2", REMOVE_COPIES, KillSwitchRequest("nobody").to_body())).refused == \
            "the running coordinator has no target nobody (one added to the config since it started is copied to " \
            "after `mt5-copier reload`)"
        assert rig.engine.control(TARGET).mode is TargetMode.ACTIVE
        assert read_controls(rig.state.connection) == {}
        assert kill_switch.step() == [] and rig.sent == []
    finally:
        rig.close()


def test_a_crash_half_way_settles_from_the_terminal_and_nothing_is_sent_twice(desk):
    session, copies = copied(desk)
    a, b, _ = copies
    switch = Switch(session)
    assert switch.ask() is None
    switch.beat(answer=False)
    [batch] = [message for _, message in session.rig.sent]
    assert {command.ticket for command in batch.commands} == {copies[a], copies[b]}
    for command in batch.commands:
        desk[TARGET].execute(command)  # the broker did it; the coordinator died before the answers came
    session.close()

    restarted = desk.session()
    try:
        restarted.run(10, until=lambda: all(restarted.rig.intent_outcome(command) for command in batch.commands))
        assert {restarted.rig.intent_outcome(command) for command in batch.commands} == {"absent"}
        restarted.run(2)
        assert not any(command.kind is CommandKind.REMOVE for command in restarted.commands)  # never sent again
        assert not any(command.kind is CommandKind.PLACE for command in restarted.commands)  # still paused
        assert not desk[TARGET].copies()
        assert restarted.rig.engine.control(TARGET).mode is TargetMode.PAUSED
    finally:
        restarted.close()


# ---- the decision, pure ------------------------------------------------------------------------------


def test_the_copiers_own_are_told_by_tag_or_by_link_and_positions_by_tag_only():
    source = order(100)
    tagged, extra = copy_of(source, 900), copy_of(source, 901)  # a second copy of one source order: also ours
    untagged = order(902, magic=101)  # its comment cut by the server, but a link records its ticket
    foreign = order(903, magic=101, comment="mtc#101x")  # looks close, is not the copier's
    typed = order(904, magic=0, comment="mtc#104")  # a comment someone typed
    ours, theirs = position_of(order(102), 905), PositionFacts(ticket=906, identifier=906, symbol="EURUSD", type=0,
                                                               volume=1.0, magic=0, comment="")
    linked_position = PositionFacts(ticket=907, identifier=907, symbol="EURUSD", type=0, volume=1.0, magic=0,
                                    comment="")
    links = {101: Link(source_ticket=101, copy_ticket=902), 103: Link(source_ticket=103, copy_ticket=907)}
    orders = [tagged, extra, untagged, foreign, typed]
    positions = [ours, theirs, linked_position]

    kill = kill_list(orders, positions, links, close_positions=True, close_deviation_points=30)

    assert [(a.kind, a.ticket, a.source_ticket) for a in kill.actions] == [
        (CommandKind.REMOVE, 900, 100), (CommandKind.REMOVE, 901, 100), (CommandKind.REMOVE, 902, 101),
        (CommandKind.CLOSE, 905, 102)]
    assert (kill.foreign_orders, kill.foreign_positions) == (2, 2)
    close = kill.closes[0]
    assert (close.volume, close.expected_volume, close.deviation, close.reason) == (0.1, 0.1, 30, KILL_SWITCH_REASON)
    assert kill_list(orders, positions, links, close_positions=False).closes == ()
    netting = kill_list(orders, positions, links, close_positions=True, positions_not_followed="a netting account")
    assert netting.closes == () and netting.positions_kept == "a netting account"
    # One command per source order per batch, none for an order with one in flight, each copy once.
    assert [a.ticket for a in next_batch(kill.actions, busy={102}, tried={902})] == [900]
