"""Positions after a fill, decided on the engine over fake brokers (tests/enginekit.py): SL/TP following,
partial and whole closes with their history, the orphan confirmations of a vanished source position, what
is never touched, unknown outcomes, and where positions are not followed (netting, older workers)."""

from __future__ import annotations

import pytest

from coordinator.domain.link_lifecycle import LinkStatus
from protocol import CommandKind, CommandStatus
from protocol.mt5 import AccountMarginMode, DealReason
from protocol.tags import copy_tag
from tests.enginekit import SOURCE, TARGET, Desk
from tests.simhelpers import BUY_LIMIT


@pytest.fixture
def desk(tmp_path) -> Desk:
    return Desk(tmp_path / "state")


def both_filled(desk: Desk, session, volume: float = 0.3) -> tuple[int, int]:
    """A source order copied, then both filled: (source position ticket, copy position ticket)."""
    master, alpha = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_LIMIT, volume=volume)
    session.run(1.0, until=lambda: ticket in alpha.copies())
    copy = alpha.copies()[ticket].ticket
    master.fill(ticket)
    alpha.fill(copy)
    session.run(1.0, until=lambda: session.rig.link(ticket).status is LinkStatus.FILLED)
    return ticket, copy


def position_commands(session) -> list[tuple[str, int, float]]:
    return [(c.kind.value, c.ticket, c.volume) for c in session.commands
            if c.kind in (CommandKind.SLTP, CommandKind.CLOSE, CommandKind.MARKET)]


def test_the_copy_follows_sl_tp_then_a_partial_close_then_the_close(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"volume_rounding": "down"})
    try:
        ticket, copy = both_filled(desk, session)
        assert session.rig.link(ticket).status is LinkStatus.FILLED

        master.set_levels(ticket, sl=1.08, tp=1.095)
        session.step()
        assert (alpha.positions[copy].sl, alpha.positions[copy].tp) == (1.08, 1.095)

        master.close(ticket, 0.15)  # half: the copy closes half, on its step of 0.01
        session.run(2.0, until=lambda: alpha.positions[copy].volume < 0.3)
        assert alpha.positions[copy].volume == 0.15

        master.close(ticket)  # the rest: the deals confirm it, so the copy closes at once
        session.run(2.0, until=lambda: copy not in alpha.positions)
        actions = [(target, action, outcome) for target, action, outcome, _ in session.events()
                   if action.startswith("position")]
        assert actions == [(TARGET, "position-sltp", "done"), (TARGET, "position-partial-close", "done"),
                           (TARGET, "position-close", "done")]
        closes = [message for _, action, _, message in session.events() if action == "position-close"]
        assert "closed 0.15 lots at" in closes[0] and f"source position #{ticket} is closed" in closes[0]
        summary = session.summary()
        assert "positions: SL/TP followed 1, closed in part 1, closed 1, opened at market 0" in summary
    finally:
        session.close()


def test_a_partial_close_is_rounded_down_to_the_targets_step(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    alpha.symbol("EURUSD", volume_step=0.1, volume_min=0.1)
    session = desk.session()
    try:
        ticket, copy = both_filled(desk, session)
        master.close(ticket, 0.15)
        session.run(2.0, until=lambda: alpha.positions[copy].volume < 0.3)
        session.run(1.0)
        assert alpha.positions[copy].volume == 0.2  # 0.15 of 0.3 closed: 0.1 on a step of 0.1, never 0.2
        assert position_commands(session) == [("close", copy, 0.1)]
    finally:
        session.close()


def test_a_source_position_that_vanished_without_a_record_is_confirmed_before_its_copy_closes(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"orphans": {"check_interval": 1.0, "max_checks": 3}})
    try:
        ticket, copy = both_filled(desk, session)
        del master.positions[ticket]  # gone from the snapshot, and its deals do not say it closed
        session.run(1.5)
        assert copy in alpha.positions and position_commands(session) == []
        session.run(4.0, until=lambda: copy not in alpha.positions)
        assert position_commands(session) == [("close", copy, 0.3)]
        session.run(1.0)  # a closed copy is done with, not "no longer orphaned"
        assert not [message for _, message in session.logs if "no longer orphaned" in message]
    finally:
        session.close()


def test_a_copy_position_closed_by_hand_is_never_reopened(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session()
    try:
        ticket, copy = both_filled(desk, session)
        alpha.close(copy)  # by hand
        session.run(2.0)
        master.set_levels(ticket, sl=1.07, tp=1.1)
        master.close(ticket)
        session.run(2.0)
        assert alpha.positions == {} and alpha.orders == {}
        assert position_commands(session) == []
        assert session.rig.link(ticket) is None or session.rig.link(ticket).status is LinkStatus.CLOSED
        assert (TARGET, "copy-closed", "noted", f"its copy's position #{copy} was closed by hand (desktop terminal)") \
            in session.events()
        assert [c.kind for c in session.commands if c.magic == ticket] == [CommandKind.PLACE]  # the first copy only
    finally:
        session.close()


def test_a_copy_that_closed_on_its_own_sl_is_left_alone_when_the_source_hits_its_sl(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session()
    try:
        ticket, copy = both_filled(desk, session)
        alpha.close(copy, reason=DealReason.SL)
        master.close(ticket, reason=DealReason.SL)
        session.run(3.0)
        assert position_commands(session) == []
    finally:
        session.close()


def test_a_foreign_position_with_a_colliding_magic_is_never_touched(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session()
    try:
        ticket, copy = both_filled(desk, session)
        alpha.positions[555] = alpha.positions[copy].__class__(
            ticket=555, identifier=555, symbol="EURUSD", type=0, volume=1.0, magic=ticket, comment="manual")
        master.set_levels(ticket, sl=1.07, tp=1.1)
        master.close(ticket)
        session.run(3.0, until=lambda: copy not in alpha.positions)
        assert 555 in alpha.positions and alpha.positions[555].volume == 1.0
        assert all(command.ticket != 555 for command in session.commands)
    finally:
        session.close()


def test_a_source_offline_longer_than_the_confirmations_closes_nothing(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"orphans": {"check_interval": 0.5, "max_checks": 2}})
    try:
        ticket, copy = both_filled(desk, session)
        del master.positions[ticket]
        master.connected = False  # the source lost its broker: its snapshot says nothing of positions
        session.run(5.0)
        assert copy in alpha.positions and position_commands(session) == []
    finally:
        session.close()


def test_an_unknown_close_is_settled_from_the_snapshot_and_never_sent_twice(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session()
    try:
        ticket, copy = both_filled(desk, session)
        rig = session.rig
        master.close(ticket)
        alpha.answers_lost = True
        session.run(2.0, until=lambda: copy not in alpha.positions)
        [close] = [c for c in session.commands if c.kind is CommandKind.CLOSE]
        # The broker did it, but the answer was lost: the outcome is unknown until the terminal shows it.
        rig.result(close, CommandStatus.UNKNOWN)
        alpha.answers_lost = False
        session.run(5.0, until=lambda: not rig.engine.in_flight[TARGET])
        assert [c.kind for c in session.commands].count(CommandKind.CLOSE) == 1
        assert copy not in alpha.positions
    finally:
        session.close()


@pytest.mark.parametrize("terminal", [SOURCE, TARGET])
def test_positions_are_not_followed_with_a_netting_account(desk, terminal):
    master = desk[SOURCE]
    session = desk.session()
    try:
        session.rig.hello(terminal, margin_mode=AccountMarginMode.RETAIL_NETTING)
        ticket, _ = both_filled(desk, session)
        master.set_levels(ticket, sl=1.07, tp=1.1)
        master.close(ticket)
        session.run(3.0)
        assert position_commands(session) == []
        assert any("netting account" in message for _, message in session.logs)
    finally:
        session.close()


def test_positions_are_not_followed_by_a_worker_older_than_0_3(desk):
    master = desk[SOURCE]
    session = desk.session()
    try:
        session.rig.hello(TARGET, protocol_minor=1)
        ticket, _ = both_filled(desk, session)
        master.set_levels(ticket, sl=1.07, tp=1.1)
        session.run(2.0)
        assert position_commands(session) == []
        assert any("older than 0.3" in message for _, message in session.logs)
    finally:
        session.close()


@pytest.mark.parametrize(("ask_offset_points", "opened"), [(10, True), (40, False)])
def test_on_source_fill_market_opens_the_copy_or_removes_it(desk, ask_offset_points, opened):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"positions": {"on_source_fill": "market", "max_entry_slippage_points": 20}})
    try:
        ticket = master.place(BUY_LIMIT, volume=0.2)
        session.run(1.0, until=lambda: ticket in alpha.copies())
        pending = alpha.copies()[ticket].ticket
        master.fill(ticket)
        fill_price = master.positions[ticket].price_open
        alpha.set_quote("EURUSD", fill_price - 0.00012, fill_price + ask_offset_points * 0.00001)
        session.run(2.0, until=lambda: pending not in alpha.orders)
        session.run(0.5)
        assert pending not in alpha.orders
        copies = [p for p in alpha.positions.values() if p.comment == copy_tag(ticket)]
        if opened:
            [position] = copies
            assert (position.volume, position.magic) == (0.2, ticket)
            assert session.rig.link(ticket).copy_ticket == position.ticket
            assert any(action == "opened-at-market" for _, action, _, _ in session.events())
        else:
            assert copies == []
            assert any(action == "removed" for _, action, _, _ in session.events())
    finally:
        session.close()
