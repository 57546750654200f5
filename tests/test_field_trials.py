"""Issue 7, the field trials: each defect a trader found, as the engine decides it, on a hand-turned clock.

Every test here failed on the code before the fix. The wire, the processes and the command line have their
own tests (test_wire_*, test_supervision*, test_once*, test_status_*).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from loguru import logger

from coordinator.domain.planner import LinkStatus, SkipReason
from protocol import (
    CommandKind,
    CommandResult,
    CommandResults,
    CommandStatus,
    ErrorMessage,
    HistoryReport,
    HistoryRequest,
    Quote,
    SymbolSpecs,
)
from protocol.mt5 import OrderState, Retcode
from tests.enginekit import SOURCE, TARGET, EngineRig, closed, copy_of, order

CANCELLED, FILLED = OrderState.CANCELED, OrderState.FILLED
MARKET_CLOSED, REQUOTE = Retcode.MARKET_CLOSED, Retcode.REQUOTE


@pytest.fixture
def logs() -> Iterator[list[tuple[str, str]]]:
    """(level, message) of every log line written during the test."""
    lines: list[tuple[str, str]] = []
    sink = logger.add(lambda message: lines.append((message.record["level"].name, message.record["message"])),
                      level="DEBUG")
    yield lines
    logger.remove(sink)


def events(rig: EngineRig, action: str | None = None) -> list[tuple[str, str, str]]:
    rows = rig.state.connection.execute("SELECT action, outcome, message FROM events ORDER BY id").fetchall()
    return [tuple(row) for row in rows if action is None or row[0] == action]


# ---- 1, 2: what changed a copy's size is said in the log and the history ---------------------------


def test_a_volume_raised_to_the_minimum_is_said_in_the_history_and_the_log(make_rig, logs):
    rig = make_rig(target={"lot_multiplier": 0.5})
    rig.start([order(1, volume=0.01)])
    rig.reconcile()
    [place] = rig.commands()
    assert place.volume == 0.01
    rig.result(place, CommandStatus.DONE, ticket=9001)
    [(_, _, message)] = events(rig, "placed")
    assert "0.005 raised to the minimum 0.01" in message
    assert any("0.005 raised to the minimum 0.01" in line for _, line in logs)
    assert rig.engine.reports[TARGET].adjusted == {1: "0.005 raised to the minimum 0.01"}


def test_a_placement_log_line_shows_its_sl_and_tp(make_rig, logs):
    rig = make_rig()
    rig.start([order(1, sl=1.07, tp=1.1)])
    rig.reconcile()
    [place] = rig.commands()
    rig.result(place, CommandStatus.DONE, ticket=9001)
    [line] = [line for level, line in logs if level == "SUCCESS"]
    assert "sl 1.07 tp 1.1" in line


def test_a_copy_waits_for_the_sources_contract_size(make_rig):
    rig = make_rig()
    for name in (SOURCE, TARGET):
        rig.hello(name)
    rig.snapshot(SOURCE, [order(1)])
    rig.snapshot(TARGET)
    rig.specs(TARGET)
    rig.reconcile()
    assert rig.commands() == []
    [skip] = rig.engine.reports[TARGET].last_plan.skips
    assert skip.reason is SkipReason.NOT_YET and "contract size" in skip.detail
    rig.specs(SOURCE, contract_size=10_000)  # the source's lots are ten times smaller than the target's
    rig.reconcile()
    [place] = rig.commands()
    assert place.volume == 0.01


# ---- 3: a terminal on another account freezes everything that depends on it -----------------------


def test_a_source_on_another_account_is_never_copied_and_its_absence_kills_nothing(make_rig, logs):
    rig = make_rig(target={"orphans": {"max_checks": 1, "check_interval": 0}})
    source = order(1)
    rig.start([source], [copy_of(source, 9001)])
    rig.reconcile()
    assert rig.commands() == []

    # Someone logs the source terminal into account 77: other orders, and ours are "gone".
    rig.snapshot(SOURCE, [order(5)], login=77)
    rig.advance(1)
    rig.reconcile()
    assert rig.commands() == []
    assert any(level == "ERROR" and "logged into account 77@S" in line for level, line in logs)
    fresh, why = rig.engine.source_fresh()
    assert not fresh and "77@S" in why

    # The right account is back: copying resumes by itself, the copy of #1 was never touched.
    rig.snapshot(SOURCE, [source, order(2)])
    rig.reconcile()
    assert [(c.kind, c.source_ticket) for c in rig.commands()] == [(CommandKind.PLACE, 2)]


def test_a_target_on_another_account_gets_no_trade_request(make_rig):
    rig = make_rig()
    rig.start([order(1)])
    rig.snapshot(TARGET, login=99)
    rig.reconcile()
    assert rig.commands() == []
    assert "99@S" in rig.engine.reports[TARGET].unavailable
    rig.snapshot(TARGET)
    rig.reconcile()
    assert [c.kind for c in rig.commands()] == [CommandKind.PLACE]


def test_a_worker_whose_terminal_is_on_another_account_is_welcomed_not_refused(make_rig):
    rig = make_rig()
    rig.hello(TARGET, login=99)
    assert not [m for m in rig.messages(ErrorMessage, TARGET) if m.fatal]
    view = rig.engine.views[TARGET]
    assert view.welcomed and "99@S" in view.account_problem
    [status] = [row for row in rig.engine.status.rows() if row.name == TARGET]
    assert status.account == "99@S" and status.account_ok is False


# ---- 4: a fate the source's history confirms acts at the next plan ---------------------------------


def test_a_cancel_confirmed_by_the_history_removes_the_copy_at_the_next_plan(make_rig):
    rig = make_rig()  # default confirmations: 3 checks 5 s apart
    source = order(1)
    rig.start([source], [copy_of(source, 9001)])
    rig.reconcile()
    rig.commands()
    rig.advance(0.5)
    rig.snapshot(SOURCE, [], closed=[closed(1, CANCELLED)])
    rig.reconcile()
    assert [(c.kind, c.ticket) for c in rig.commands()] == [(CommandKind.REMOVE, 9001)]
    [(_, _, why)] = events(rig, "orphan-kill")
    assert "history says source order #1 was cancelled" in why


def test_a_vanished_source_order_without_a_record_still_waits_for_its_confirmations(make_rig):
    rig = make_rig(target={"orphans": {"max_checks": 2, "check_interval": 1}})
    source = order(1)
    rig.start([source], [copy_of(source, 9001)])
    rig.reconcile()
    rig.snapshot(SOURCE, [])
    rig.reconcile()
    [request] = rig.messages(HistoryRequest, SOURCE)
    rig.engine.on_message(SOURCE, HistoryReport(request_id=request.request_id, orders=(), unknown=(1,)))
    rig.sent.clear()
    rig.reconcile()
    assert rig.commands() == []
    rig.advance(1)
    rig.snapshot(SOURCE, [])
    rig.reconcile()
    assert [c.kind for c in rig.commands()] == [CommandKind.REMOVE]


# ---- 5: a closed market holds requests until its next tick ------------------------------------------


def test_a_closed_market_holds_every_request_until_a_new_tick_then_sends_at_once(make_rig):
    rig = make_rig()  # the brokers' clocks run at UTC (configured)
    closed_at = int(time.time()) - 3600  # the last tick before the session closed
    rig.start([order(1)])
    rig.heartbeat(TARGET, quotes=[Quote(symbol="EURUSD", bid=1.09, ask=1.0901, time=closed_at)])
    rig.reconcile()
    [place] = rig.commands()
    rig.result(place, CommandStatus.REJECTED, retcode=MARKET_CLOSED)

    # Ten minutes of a closed market: the same tick, new source orders too: nothing reaches the broker.
    for _ in range(10):
        rig.advance(60)
        rig.snapshot(SOURCE, [order(1), order(2)])
        rig.heartbeat(TARGET, quotes=[Quote(symbol="EURUSD", bid=1.09, ask=1.0901, time=closed_at)])
        rig.snapshot(TARGET)
        rig.reconcile()
        assert rig.commands() == []
    reasons = {skip.source_ticket: skip.reason for skip in rig.engine.reports[TARGET].last_plan.skips}
    assert reasons[2] is SkipReason.MARKET_CLOSED

    # The session opens: the next heartbeat carries a newer tick, and both copies go out at once.
    rig.advance(0.2)
    rig.heartbeat(TARGET, quotes=[Quote(symbol="EURUSD", bid=1.09, ask=1.0901, time=int(time.time()) + 1)])
    rig.reconcile(rig.engine.take_dirty())
    assert sorted(c.source_ticket for c in rig.commands()) == [1, 2]


def test_a_market_closed_before_any_tick_was_seen_opens_with_the_first_tick_after_the_refusal(make_rig):
    rig = make_rig()  # no heartbeat has brought a tick of EURUSD yet when the broker refuses
    rig.start([order(1)])
    rig.reconcile()
    [place] = rig.commands()
    rig.result(place, CommandStatus.REJECTED, retcode=MARKET_CLOSED)
    rig.reconcile(rig.engine.take_dirty() | {TARGET})
    assert rig.commands() == []
    # The session opens: the very first tick seen after the refusal says so (it is newer than the refusal on
    # the broker's clock), not only the one after it.
    rig.heartbeat(TARGET, quotes=[Quote(symbol="EURUSD", bid=1.09, ask=1.0901, time=int(time.time()) + 1)])
    rig.reconcile(rig.engine.take_dirty())
    assert [c.source_ticket for c in rig.commands()] == [1]


def test_a_retryable_rejection_is_a_warning_that_says_it_will_be_retried(make_rig, logs):
    rig = make_rig()
    rig.start([order(1)])
    rig.reconcile()
    [place] = rig.commands()
    rig.result(place, CommandStatus.REJECTED, retcode=REQUOTE)
    [line] = [(level, line) for level, line in logs if "requote" in line]
    assert line[0] == "WARNING" and "retrying in 1s" in line[1] and "failed" not in line[1]


# ---- 10: a copy that vanished without a record gets a decided outcome ------------------------------


def test_a_vanished_copy_without_any_record_is_decided_after_a_bounded_number_of_looks(make_rig):
    rig = make_rig()
    source = order(1)
    rig.start([source], [copy_of(source, 9001)])
    rig.reconcile()
    rig.snapshot(TARGET, [])  # the copy is gone: no order, no position
    looks = 0
    for _ in range(20):
        rig.reconcile()
        for request in rig.messages(HistoryRequest, TARGET):
            looks += 1
            rig.engine.on_message(TARGET, HistoryReport(request_id=request.request_id, orders=(), unknown=(9001,)))
        assert not [c for c in rig.commands() if c.kind is CommandKind.PLACE], "never placed twice"
        rig.advance(2)
    assert looks == 3
    assert rig.link(1).status is LinkStatus.DELETED
    plan = rig.engine.reports[TARGET].last_plan
    assert not plan.skips and not plan.needed_history
    assert [reason for _, reason in plan.kept_out] == [
        "its copy #9001 was deleted on the target; not placed again (replace_deleted_copies = false)"]
    [(_, _, message)] = events(rig, "copy-deleted")
    assert "no record" in message


# ---- 13: a cap held by orphans says so ----------------------------------------------------------------


def test_a_cap_held_by_preserved_orphans_says_so(make_rig):
    rig = make_rig(target={"max_pending_orders": 1, "orphans": {"policy": "preserve"}})
    gone = order(1)
    rig.start([order(2)], [copy_of(gone, 9001)], source_closed=[closed(1, CANCELLED)])
    rig.reconcile()
    [skip] = [s for s in rig.engine.reports[TARGET].last_plan.skips if s.source_ticket == 2]
    assert skip.reason is SkipReason.CAPPED
    assert "max_pending_orders = 1" in skip.detail and "orphans" in skip.detail


# ---- 15: a disabled target still holding copies -------------------------------------------------------


def test_a_disabled_target_with_copies_is_reported_at_start_up_and_in_status(tmp_path, logs):
    rig = EngineRig(tmp_path / "state", more_targets={"t2": {}})
    source = order(1)
    rig.start([source])
    rig.reconcile()
    [place] = [c for c in rig.commands("t2")]
    rig.engine.on_message("t2", done_result(place, 9002))
    rig.close()

    logs.clear()
    disabled = EngineRig(tmp_path / "state", more_targets={"t2": {"enabled": False}})
    try:
        assert any("t2 is disabled" in line and "1 copies" in line for _, line in logs)
        rows = {row.name: row for row in disabled.engine.status.rows()}
        assert rows["t2"].enabled is False and rows["t2"].unmanaged_copies == 1
        assert rows["t2"].copies is None  # unknown, never 0
    finally:
        disabled.close()


def done_result(command, ticket):
    return CommandResults(batch_id="b", results=(
        CommandResult(command_id=command.command_id, status=CommandStatus.DONE, ticket=ticket),))


# ---- 19: a dead worker's commands are unknown at once and settle from its successor ----------------


def test_commands_of_a_worker_that_died_settle_from_the_next_workers_first_snapshot(make_rig):
    rig = make_rig()
    rig.start([order(1)])
    rig.reconcile()
    [place] = rig.commands()
    rig.advance(0.1)
    rig.engine.worker_exited(TARGET, -9)
    rig.advance(1.0)  # the supervisor restarts it
    rig.hello(TARGET, boot="b2")
    rig.seq[TARGET] = 0
    rig.snapshot(TARGET, boot="b2")
    rig.specs(TARGET)
    assert rig.in_flight()  # too early: the request may still land
    rig.advance(2.5)
    rig.heartbeat(TARGET, boot="b2")
    assert not rig.in_flight()  # settled about 3 s after the death, not command_timeout (30 s) later
    rig.reconcile()
    [again] = rig.commands()
    assert again.kind is CommandKind.PLACE and again.command_id != place.command_id


def test_a_dead_worker_whose_copy_landed_settles_done_without_placing_again(make_rig):
    rig = make_rig()
    source = order(1)
    rig.start([source])
    rig.reconcile()
    rig.commands()
    rig.engine.worker_exited(TARGET, -9)
    rig.hello(TARGET, boot="b2")
    rig.seq[TARGET] = 0
    rig.snapshot(TARGET, [copy_of(source, 9001)], boot="b2")
    assert not rig.in_flight()
    assert rig.link(1).copy_ticket == 9001
    rig.specs(TARGET)
    rig.reconcile()
    assert rig.commands() == []


def test_definite_terminal_failures_are_marked_and_cleared_by_a_hello(make_rig):
    rig = make_rig()
    rig.engine.on_message(TARGET, ErrorMessage(code="terminal-not_found", message="terminal not found: C:/x"))
    assert rig.engine.views[TARGET].definite_failure == "terminal not found: C:/x"
    rig.hello(TARGET)
    assert rig.engine.views[TARGET].definite_failure == ""


# ---- 14: log lines a trader reads ---------------------------------------------------------------------


def test_a_skip_names_the_source_symbol_as_the_sources_and_the_target_symbol_as_the_targets(make_rig, logs):
    rig = make_rig(target={"symbol_map": {"XAUUSD": "GOLD"}})
    rig.start([order(1, symbol="XAUUSD", price_open=2000.0)])
    rig.engine.on_message(TARGET, SymbolSpecs(request_id="r", specs=(), missing=("GOLD",)))
    rig.reconcile()
    [skip] = rig.engine.reports[TARGET].last_plan.skips
    assert skip.symbols() == "XAUUSD (GOLD on the target)"
    assert any(level == "WARNING" and "source #1 XAUUSD (GOLD on the target)" in line for level, line in logs)
