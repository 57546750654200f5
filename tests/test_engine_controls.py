"""Pause, close-only and the risk guards of [targets.risk], decided on the engine over fake brokers
(tests/enginekit.py): what reaches a target's broker under each mode, what waits and why, that a held action
leaves nothing half-done in the state, and that the guards trip, persist and clear as they should."""

from __future__ import annotations

import time

import pytest

from coordinator.cli.controls import control_command
from coordinator.domain.controls import TargetMode, operator_control
from coordinator.domain.link_lifecycle import LinkStatus
from coordinator.persistence.controls import read_controls, read_peak, set_control
from protocol import CommandKind
from protocol.tags import copy_tag
from tests.enginekit import SOURCE, TARGET, Desk, Session, order
from tests.simhelpers import BUY_LIMIT, SELL_STOP

OTHER = "t2"


@pytest.fixture
def desk(tmp_path) -> Desk:
    return Desk(tmp_path / "state", OTHER)


def set_mode(session: Session, mode: TargetMode, target: str = TARGET) -> None:
    """As `mt5-copier pause` / `resume` do from another process: the change is recorded, and the engine reads it
    at its next look (within half a second)."""
    set_control(session.rig.state.connection, target, operator_control(mode, time.time()))
    session.step(0.6)


def intents(session: Session, target: str = TARGET) -> int:
    return session.rig.state.connection.execute("SELECT COUNT(*) FROM intents WHERE target = ?",
                                                (target,)).fetchone()[0]


def held(session: Session, target: str = TARGET) -> list[tuple[str, int, str]]:
    return [(item.action.kind.value, item.action.source_ticket, item.reason)
            for item in session.rig.engine.controls.held(target)]


def status_row(session: Session, target: str = TARGET):
    return next(row for row in session.rig.engine.status.rows() if row.name == target)


def test_a_paused_target_is_sent_nothing_while_the_others_go_on_and_resume_sends_the_backlog(desk):
    master, alpha, beta = desk[SOURCE], desk[TARGET], desk[OTHER]
    edited, cancelled = master.place(BUY_LIMIT), master.place(SELL_STOP)
    session = desk.session(t1={"orphans": {"check_interval": 0, "max_checks": 1}})
    try:
        session.run(1.0, until=lambda: len(alpha.copies()) == len(beta.copies()) == 2)
        set_mode(session, TargetMode.PAUSED)
        requests, recorded, links = len(alpha.requests), intents(session), dict(session.rig.state.links(TARGET))

        new = master.place(BUY_LIMIT, distance_points=700)
        master.modify(edited, price_open=round(master.orders[edited].price_open - 0.0005, 5))
        master.remove(cancelled)
        session.run(2.0)

        assert len(alpha.requests) == requests, "nothing at all reaches a paused target's broker"
        assert intents(session) == recorded and dict(session.rig.state.links(TARGET)) == links
        assert set(beta.copies()) == {edited, new}
        assert beta.copies()[edited].price_open == master.orders[edited].price_open
        assert sorted((kind, ticket) for kind, ticket, _ in held(session)) == [
            ("modify", edited), ("place", new), ("remove", cancelled)]
        assert all(reason.startswith("paused by the operator (since ") for _, _, reason in held(session))
        assert not any(action == "orphan-kill" and target == TARGET for target, action, _, _ in session.events())
        row = status_row(session)
        assert (row.control_mode, row.control_set_by) == ("paused", "operator")
        assert row.control_reason == "paused by the operator" and row.control_since is not None
        assert any("place held back: paused by the operator" in reason for ticket, reason in row.skipped
                   if ticket == new)
        assert session.rig.engine.control(TARGET).mode is TargetMode.PAUSED

        set_mode(session, TargetMode.ACTIVE)
        session.run(1.0, until=lambda: set(alpha.copies()) == {edited, new})
        assert alpha.copies()[edited].price_open == master.orders[edited].price_open
        assert held(session) == [] and status_row(session).control_mode == "active"
        controls = [(action, outcome) for target, action, outcome, _ in session.events() if action == "control"]
        assert controls == [("control", "paused"), ("control", "active")]
    finally:
        session.close()


def test_close_only_lets_edits_removals_sl_tp_and_closes_through_but_places_nothing(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"orphans": {"check_interval": 0, "max_checks": 1}})
    try:
        edited, cancelled = master.place(BUY_LIMIT), master.place(SELL_STOP)
        filled = master.place(BUY_LIMIT, volume=0.4)
        session.run(1.0, until=lambda: len(alpha.copies()) == 3)
        master.fill(filled)
        alpha.fill(alpha.copies()[filled].ticket)
        session.run(1.0, until=lambda: session.rig.link(filled).status is LinkStatus.FILLED)
        position = session.rig.link(filled).copy_ticket
        set_mode(session, TargetMode.CLOSE_ONLY)
        before = len(alpha.requests)

        new = master.place(BUY_LIMIT, distance_points=700)
        master.modify(edited, sl=round(master.orders[edited].price_open - 0.002, 5))
        master.remove(cancelled)
        master.set_levels(filled, sl=1.07, tp=1.1)
        session.run(2.0, until=lambda: cancelled not in alpha.copies() and alpha.positions[position].sl == 1.07)
        master.close(filled, 0.2)
        session.run(2.0, until=lambda: alpha.positions[position].volume < 0.4)

        kinds = sorted(request.kind.value for request in alpha.requests[before:])
        assert kinds == ["close", "modify", "remove", "sltp"]
        assert alpha.copies()[edited].sl == master.orders[edited].sl
        assert new not in alpha.copies()
        assert [(kind, ticket) for kind, ticket, _ in held(session)] == [("place", new)]
        assert held(session)[0][2].startswith("close-only by the operator (since ")
        assert status_row(session).control_mode == "close_only"
        assert "  control: close-only by the operator (since " in session.summary()
        assert session.result().code == 0, "a held placement is waiting, not a failure"
    finally:
        session.close()


def test_close_only_keeps_a_copy_whose_volume_changed_and_its_link_is_left_as_it_was(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_LIMIT, volume=0.1)
    session = desk.session()
    try:
        session.run(1.0, until=lambda: ticket in alpha.copies())
        copy = alpha.copies()[ticket].ticket
        set_mode(session, TargetMode.CLOSE_ONLY)
        recorded = intents(session)

        master.modify(ticket, volume=0.3)  # a replacement: remove + place, and the place would be new exposure
        session.run(2.0)

        assert alpha.copies()[ticket].ticket == copy and alpha.copies()[ticket].volume == 0.1
        link = session.rig.link(ticket)
        assert (link.status, link.copy_ticket) == (LinkStatus.ACTIVE, copy), "never marked as being replaced"
        assert intents(session) == recorded
        [(kind, _, reason)] = held(session)
        assert kind == "replace" and "kept as it is rather than replaced" in reason

        set_mode(session, TargetMode.ACTIVE)
        session.run(1.0, until=lambda: alpha.copies()[ticket].volume == 0.3)
        assert session.rig.link(ticket).copy_ticket == alpha.copies()[ticket].ticket != copy
    finally:
        session.close()


def test_close_only_removes_a_copy_whose_source_filled_rather_than_open_it_at_market(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"positions": {"on_source_fill": "market", "max_entry_slippage_points": 50}})
    try:
        ticket = master.place(BUY_LIMIT, volume=0.2)
        session.run(1.0, until=lambda: ticket in alpha.copies())
        pending = alpha.copies()[ticket].ticket
        set_mode(session, TargetMode.CLOSE_ONLY)
        master.fill(ticket)
        price = master.positions[ticket].price_open
        alpha.set_quote("EURUSD", price - 0.00012, price + 0.0001)  # within the slippage: it would open
        session.run(2.0, until=lambda: pending not in alpha.orders)

        assert not alpha.positions, "no position opened in close-only"
        assert not any(c.kind is CommandKind.MARKET for c in session.commands)
        removed = [message for _, action, _, message in session.events() if action == "removed"]
        assert removed and "close-only" in removed[0] and "not opened at market" in removed[0]
        assert session.rig.link(ticket).status is LinkStatus.REMOVED
    finally:
        session.close()


def test_max_total_volume_holds_back_the_placement_that_would_pass_it_and_places_it_once_there_is_room(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    first, second = master.place(BUY_LIMIT, volume=0.3), master.place(BUY_LIMIT, volume=0.3, distance_points=700)
    session = desk.session(t1={"risk": {"max_total_volume": 0.5}, "orphans": {"check_interval": 0, "max_checks": 1}})
    try:
        session.run(1.0, until=lambda: first in alpha.copies())
        session.run(0.5)
        assert set(alpha.copies()) == {first}
        [(kind, ticket, reason)] = held(session)
        assert (kind, ticket, reason) == ("place", second, "max_total_volume 0.5: 0.3 lots held, this copy 0.3")
        assert session.rig.engine.control(TARGET).mode is TargetMode.ACTIVE, "no pause"
        assert session.result().code == 0
        assert [(a, o) for _, a, o, _ in session.events() if a.startswith("risk")] == [
            ("risk-max_total_volume", "tripped")]

        master.remove(first)
        session.run(2.0, until=lambda: set(alpha.copies()) == {second})
        assert held(session) == []
        assert [(a, o) for _, a, o, _ in session.events() if a.startswith("risk")][-1] == (
            "risk-max_total_volume", "cleared")
    finally:
        session.close()


def test_max_total_volume_counts_the_copies_positions_too(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"risk": {"max_total_volume": 0.5}})
    try:
        filled = master.place(BUY_LIMIT, volume=0.4)
        session.run(1.0, until=lambda: filled in alpha.copies())
        master.fill(filled)
        alpha.fill(alpha.copies()[filled].ticket)
        session.run(1.0, until=lambda: session.rig.link(filled).status is LinkStatus.FILLED)
        waiting = master.place(BUY_LIMIT, volume=0.2, distance_points=700)
        session.run(1.0)
        assert waiting not in alpha.copies()
        assert held(session)[0][2] == "max_total_volume 0.5: 0.4 lots held, this copy 0.2"
    finally:
        session.close()


def test_min_equity_trips_close_only_and_clears_by_itself(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    session = desk.session(t1={"risk": {"min_equity": 2000}})
    try:
        alpha.equity = 1890.0
        ticket = master.place(BUY_LIMIT)
        session.run(1.0)
        assert ticket not in alpha.copies()
        control = session.rig.engine.control(TARGET)
        assert (control.mode, control.set_by) == (TargetMode.CLOSE_ONLY, "guard:min_equity")
        assert control.reason == "close-only: risk guard min_equity 2000: equity 1890.00"
        assert read_controls(session.rig.state.connection) == {}, "it ends by itself: nothing recorded"
        assert status_row(session).control_set_by == "guard:min_equity"

        alpha.equity = None  # back to the balance, 10000
        session.run(1.0, until=lambda: ticket in alpha.copies())
        assert session.rig.engine.control(TARGET).active
        guards = [(action, outcome) for _, action, outcome, _ in session.events() if action.startswith("risk")]
        assert guards == [("risk-min_equity", "tripped"), ("risk-min_equity", "cleared")]
    finally:
        session.close()


def test_max_drawdown_trips_a_recorded_close_only_that_survives_a_restart_and_only_resume_clears(desk, tmp_path):
    master, alpha = desk[SOURCE], desk[TARGET]
    risk = {"risk": {"max_drawdown_percent": 20}}
    session = desk.session(t1=risk)
    try:
        session.run(0.5)  # the peak: 10000
        alpha.equity = 9000.0  # 10 % down: nothing yet
        session.run(0.5)
        assert session.rig.engine.control(TARGET).active
        assert read_peak(session.rig.state.connection, TARGET) == 10_000.0
    finally:
        session.close()

    alpha.equity = 7900.0  # 21 % below the peak the first engine saw: the new one remembers it
    session = desk.session(t1=risk)
    try:
        session.run(0.5)
        control = session.rig.engine.control(TARGET)
        assert (control.mode, control.set_by) == (TargetMode.CLOSE_ONLY, "guard:max_drawdown_percent")
        assert "is 21.0% below its peak 10000.00" in control.reason
        assert read_controls(session.rig.state.connection)[TARGET].set_by == "guard:max_drawdown_percent"
        guards = [(action, outcome) for _, action, outcome, _ in session.events() if action.startswith("risk")]
        assert guards == [("risk-max_drawdown_percent", "tripped")]

        alpha.equity = 10_500.0  # the equity coming back does not clear it
        ticket = master.place(BUY_LIMIT)
        session.run(1.0)
        assert ticket not in alpha.copies() and not session.rig.engine.control(TARGET).active
    finally:
        session.close()

    session = desk.session(t1=risk)
    try:
        session.run(0.5)
        assert not session.rig.engine.control(TARGET).active, "still close-only after a restart"
        alpha.equity = 9000.0
        assert control_command(session.rig.config, TargetMode.ACTIVE, target=TARGET) == 0  # another connection
        session.run(1.0, until=lambda: ticket in alpha.copies())
        assert session.rig.engine.control(TARGET).active
        alpha.equity = 8000.0  # 11 % below the new peak, 9000 (24 % below the old one)
        session.run(0.5)
        assert session.rig.engine.control(TARGET).active
    finally:
        session.close()


def test_a_paused_target_keeps_counting_its_orphans_and_removes_them_after_resume(desk):
    master, alpha = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_LIMIT)
    session = desk.session(t1={"orphans": {"check_interval": 0.2, "max_checks": 3}})
    try:
        session.run(1.0, until=lambda: ticket in alpha.copies())
        copy = alpha.copies()[ticket].ticket
        set_mode(session, TargetMode.PAUSED)
        master.lose(ticket)  # gone without a record: only the counted checks confirm it
        session.run(2.0)
        assert session.rig.engine.orphans.counts(TARGET)[copy] >= 3
        assert ticket in alpha.copies()
        assert session.rig.link(ticket).status is LinkStatus.ACTIVE
        assert [kind for kind, _, _ in held(session)] == ["remove"]

        set_mode(session, TargetMode.ACTIVE)
        session.run(1.0, until=lambda: ticket not in alpha.copies())
        assert any(action == "orphan-kill" for _, action, _, _ in session.events())
        assert any(c.kind is CommandKind.REMOVE and c.comment == copy_tag(ticket) for c in session.commands)
    finally:
        session.close()


def test_min_equity_trips_on_the_equity_a_heartbeat_reports_while_no_snapshot_changes(make_rig):
    # A quiet target sends no snapshot while its open positions lose: its equity reaches the guards with the
    # heartbeats (every second), or a falling account would never be seen.
    rig = make_rig(target={"risk": {"min_equity": 900}})
    source = order(10)
    rig.start()  # snapshots say balance = equity = 1000
    rig.heartbeat(TARGET, balance=1000.0, equity=850.0)
    rig.snapshot(SOURCE, [source])
    rig.reconcile()
    assert rig.commands() == []
    control = rig.engine.control(TARGET)
    assert (control.mode, control.set_by) == (TargetMode.CLOSE_ONLY, "guard:min_equity")

    rig.heartbeat(TARGET)  # no figures (an older worker): the last ones reported stand
    rig.reconcile()
    assert rig.engine.control(TARGET).mode is TargetMode.CLOSE_ONLY
    rig.heartbeat(TARGET, balance=1000.0, equity=950.0)
    rig.reconcile()
    assert [command.kind for command in rig.commands()] == [CommandKind.PLACE]
