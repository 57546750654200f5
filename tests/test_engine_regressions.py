"""Regression tests for the review findings fixed in a92fe5a: the coordinator engine on a hand-turned clock
(tests/enginekit.py), the planner alone, and the adapter against a scripted terminal module."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from msgspec.structs import replace

import coordinator.runtime.engine as engine_module
from config import OrderKind
from coordinator.domain.planner import Link, LinkStatus, SkipReason, plan_target
from protocol import (
    ClosedOrder,
    Command,
    CommandBatch,
    CommandKind,
    CommandStatus,
    ErrorMessage,
    HistoryReport,
    HistoryRequest,
    Quote,
)
from protocol.mt5 import OrderState, Retcode
from protocol.tags import copy_tag
from terminal_worker.adapter import MT5Adapter
from terminal_worker.errors import TerminalError
from tests.enginekit import SOURCE, TARGET, closed, copy_of, now_ms, order, position_of
from tests.test_planner import EURUSD, inputs, settings_, source_order
from tests.test_planner import copy_of as planner_copy_of

FILLED, CANCELLED = OrderState.FILLED, OrderState.CANCELED
REQUOTE, FROZEN = Retcode.REQUOTE, Retcode.FROZEN  # retryable answers: the general backoff applies
HOUR = 3600


def kinds(commands: list[Command]) -> list[tuple[str, int, int]]:
    return [(c.kind.value, c.source_ticket, c.ticket) for c in commands]


# ---- 1. failed replacements (t_engine9) ------------------------------------------------------------


def test_rejected_replace_leaves_the_link_active_and_a_later_fill_is_not_placed_again(make_rig):
    rig = make_rig()
    source = order(500, volume=0.2)
    rig.start([source], [copy_of(source, 9100, volume=0.1)])
    rig.reconcile()
    [command] = rig.commands()
    assert (command.kind, command.ticket) == (CommandKind.REPLACE, 9100)
    assert rig.link(500).status is LinkStatus.REPLACING

    rig.result(command, CommandStatus.REJECTED, retcode=FROZEN)  # the broker refused to touch the old copy
    link = rig.link(500)
    assert (link.status, link.copy_ticket) == (LinkStatus.ACTIVE, 9100)

    # The old copy then fills on the target before the next plan.
    rig.advance(100)
    rig.snapshot(SOURCE, [source])
    rig.snapshot(TARGET, [], closed=[closed(9100, FILLED, 500)])
    rig.reconcile()
    assert rig.commands() == []
    assert rig.link(500).status is LinkStatus.FILLED
    assert [ticket for ticket, _ in rig.engine.reports[TARGET].last_plan.kept_out] == [500]


@pytest.mark.parametrize("evidence", ["history", "position"])
def test_replacing_link_whose_old_copy_filled_is_not_placed_again(make_rig, evidence):
    """A REPLACE whose outcome stays unknown while the old copy fills: once settled 'absent', the link is still
    'replacing' with no copy pending, which must not read as licence to place."""
    rig = make_rig()
    source = order(500, volume=0.2)
    rig.start([source], [copy_of(source, 9100, volume=0.1)])
    rig.reconcile()
    [command] = rig.commands()
    assert command.kind is CommandKind.REPLACE
    rig.result(command, CommandStatus.UNKNOWN, retcode=Retcode.TIMEOUT)

    filled = dict(closed=[closed(9100, FILLED, 500)]) if evidence == "history" \
        else dict(positions=[position_of(source, 9100)])
    rig.advance(4)  # past the coordinator's grace for unknown outcomes
    rig.snapshot(SOURCE, [source])
    rig.snapshot(TARGET, [], **filled)
    assert rig.in_flight() == {}
    assert rig.intent_outcome(command) == "absent"
    assert rig.link(500).status is LinkStatus.REPLACING  # the old copy is not pending: nothing to restore

    rig.reconcile()
    assert rig.commands() == []
    assert rig.link(500).status is LinkStatus.FILLED


def test_unknown_replace_settled_absent_with_the_old_copy_still_pending_restores_the_link(make_rig):
    rig = make_rig()
    source = order(500, volume=0.2)
    old = copy_of(source, 9100, volume=0.1)
    rig.start([source], [old])
    rig.reconcile()
    [command] = rig.commands()
    rig.result(command, CommandStatus.UNKNOWN, retcode=Retcode.TIMEOUT)
    rig.advance(4)
    rig.snapshot(SOURCE, [source])
    rig.snapshot(TARGET, [old])
    assert rig.intent_outcome(command) == "absent"
    assert rig.link(500).status is LinkStatus.ACTIVE


@pytest.mark.parametrize("evidence", ["history", "position"])
def test_planner_does_not_place_for_a_replacing_link_whose_copy_filled(evidence):
    order_ = source_order(602)
    link = Link(source_ticket=602, copy_ticket=9201, status=LinkStatus.REPLACING, symbol="EURUSD.m", volume=0.1,
                source_volume=0.1)
    if evidence == "history":
        facts = dict(closed={9201: ClosedOrder(ticket=9201, symbol="EURUSD.m", type=2, state=FILLED, magic=602,
                                               comment=copy_tag(602))})
    else:
        facts = dict(positions=(position_of(replace(order_, symbol="EURUSD.m"), 9201),))
    plan = plan_target([order_], inputs([], links={602: link}, **facts))
    assert plan.actions == []
    assert [(u.source_ticket, u.status) for u in plan.link_updates] == [(602, LinkStatus.FILLED)]
    assert [ticket for ticket, _ in plan.kept_out] == [602]


def test_planner_still_places_for_a_replacing_link_whose_old_copy_was_removed():
    order_ = source_order(603)
    link = Link(source_ticket=603, copy_ticket=9202, status=LinkStatus.REPLACING, symbol="EURUSD.m", volume=0.1,
                source_volume=0.1)
    cancelled = {9202: ClosedOrder(ticket=9202, symbol="EURUSD.m", type=2, state=CANCELLED, magic=603,
                                   comment=copy_tag(603))}
    plan = plan_target([order_], inputs([], links={603: link}, closed=cancelled))
    assert [c.kind for c in plan.actions] == [CommandKind.PLACE]


# ---- 2. one command per source order per plan (t_engine1) ------------------------------------------


def test_replace_of_the_main_copy_and_a_duplicate_removal_never_share_a_plan(make_rig):
    rig = make_rig()
    source = order(500)
    rig.start([source], [copy_of(source, 9001, volume=0.2), copy_of(source, 9002)])
    rig.reconcile()
    commands = rig.commands()
    assert kinds(commands) == [("replace", 500, 9001)]
    assert rig.in_flight()[500].kind is CommandKind.REPLACE

    [command] = commands
    rig.result(command, CommandStatus.DONE, ticket=9003)
    rig.snapshot(TARGET, [copy_of(source, 9002), copy_of(source, 9003)])
    assert rig.state.unsettled_intents() == []
    assert rig.intent_outcome(command) == "done"
    link = rig.link(500)
    assert (link.copy_ticket, link.status) == (9003, LinkStatus.ACTIVE)

    # The duplicate goes in a later plan, alone.
    rig.reconcile()
    [removal] = rig.commands()
    assert removal.kind is CommandKind.REMOVE and removal.source_ticket == 500
    assert rig.link(500).copy_ticket in {9002, 9003} - {removal.ticket}  # linked to the copy that stays


def test_engine_sends_at_most_one_command_per_source_order(make_rig, monkeypatch):
    """Whatever a plan says, one batch never carries two commands for one order (the second would overwrite
    the first in flight, leaving its intent unsettled)."""
    real_plan = engine_module.plan_target

    def doubled(source_orders, target, **options):
        plan = real_plan(source_orders, target, **options)
        plan.actions.extend(replace(c, kind=CommandKind.REMOVE, ticket=9999) for c in list(plan.actions))
        return plan

    monkeypatch.setattr(engine_module, "plan_target", doubled)
    rig = make_rig()
    rig.start([order(500)], [])
    rig.reconcile()
    [command] = rig.commands()
    assert command.kind is CommandKind.PLACE
    assert rig.in_flight() == {500: command}
    assert [i.command.command_id for i in rig.state.unsettled_intents()] == [command.command_id]


def test_planner_plans_one_command_per_source_order():
    order_ = source_order(600, volume=0.1)
    plan = plan_target([order_], inputs([planner_copy_of(order_, 9001, volume=0.2),
                                         planner_copy_of(order_, 9002, volume=0.1)]))
    assert kinds(plan.actions) == [("replace", 600, 9001)]

    filtered = source_order(601, order_type=4, price_open=1.095, sl=1.09, tp=1.1)
    settings = settings_(order_types=frozenset({OrderKind.BUY_LIMIT}))
    plan = plan_target([filtered], inputs([planner_copy_of(filtered, 9101), planner_copy_of(filtered, 9102)],
                                          settings=settings))
    assert kinds(plan.actions) == [("remove", 601, 9101)]


def test_planner_removes_no_duplicate_of_an_order_in_backoff():
    order_ = source_order(600)
    plan = plan_target([order_], inputs([planner_copy_of(order_, 9001), planner_copy_of(order_, 9002)],
                                        backoff={600: "market closed"}))
    assert plan.actions == []


def test_removing_a_duplicate_leaves_the_kept_copy_linked(make_rig):
    rig = make_rig()
    source = order(500)
    rig.start([source], [copy_of(source, 9001), copy_of(source, 9002)])
    rig.reconcile()
    [removal] = rig.commands()
    assert kinds([removal]) == [("remove", 500, 9002)]
    rig.result(removal, CommandStatus.DONE, ticket=9002)
    rig.snapshot(TARGET, [copy_of(source, 9001)])
    rig.reconcile()
    assert rig.commands() == []

    # The kept copy fills: nothing may be placed again.
    rig.snapshot(TARGET, [], positions=[position_of(source, 9001)], closed=[closed(9001, FILLED, 500)])
    rig.reconcile()
    assert rig.commands() == []
    link = rig.link(500)
    assert (link.copy_ticket, link.status) == (9001, LinkStatus.FILLED)


# ---- 3. unknown outcomes and deadlines on the coordinator's clock (t_engine4) -------------------------


@pytest.mark.parametrize("skew_ms", [0, 60_000, -60_000])
def test_unknown_place_is_not_settled_absent_before_the_coordinators_grace(make_rig, skew_ms):
    rig = make_rig()
    source = order(500)
    rig.start([source], [])
    rig.reconcile()
    [command] = rig.commands()
    rig.result(command, CommandStatus.UNKNOWN, retcode=Retcode.TIMEOUT)

    # The worker's clock is off: its snapshot and heartbeat times say nothing about our grace period.
    rig.advance(0.5)
    rig.snapshot(TARGET, [], taken_at_ms=now_ms() + skew_ms)
    rig.advance(1.0)
    rig.heartbeat(TARGET, sent_at_ms=now_ms() + skew_ms)
    rig.reconcile()
    assert list(rig.in_flight()) == [500]
    assert rig.intent_outcome(command) is None
    assert rig.commands() == []

    rig.advance(2.0)  # 3.5 s after the outcome became unknown
    rig.heartbeat(TARGET, sent_at_ms=now_ms() + skew_ms)
    assert rig.in_flight() == {}
    assert rig.intent_outcome(command) == "absent"
    rig.reconcile()
    assert kinds(rig.commands()) == [("place", 500, 0)]


def test_unknown_place_found_on_the_terminal_settles_at_once(make_rig):
    rig = make_rig()
    source = order(500)
    rig.start([source], [])
    rig.reconcile()
    [command] = rig.commands()
    rig.result(command, CommandStatus.UNKNOWN, retcode=Retcode.TIMEOUT)
    rig.snapshot(TARGET, [copy_of(source, 9100)], taken_at_ms=now_ms() + 60_000)
    assert rig.in_flight() == {}
    assert rig.link(500).copy_ticket == 9100


@pytest.mark.parametrize("skew_ms", [60_000, -45_000])
def test_deadlines_are_sent_in_the_workers_clock(make_rig, skew_ms):
    ours = 1_800_000_000_000
    rig = make_rig(wall_ms=lambda: ours)
    source = order(500)
    rig.start([source], [])
    rig.heartbeat(SOURCE, sent_at_ms=ours)
    rig.heartbeat(TARGET, sent_at_ms=ours + skew_ms)
    assert rig.engine.targets[TARGET].clock_skew_ms == skew_ms
    rig.reconcile()
    [command] = rig.commands()
    timeout_ms = int(rig.config.coordinator.command_timeout * 1000)
    assert command.deadline_ms == ours + skew_ms + timeout_ms


# ---- 4. lost snapshots (t_engine6) ----------------------------------------------------------------


def test_heartbeat_ahead_of_the_last_snapshot_asks_for_the_snapshot_again(make_rig):
    rig = make_rig()
    rig.start([], [])
    rig.sent.clear()
    rig.heartbeat(TARGET, last_seq=rig.seq[TARGET])
    assert rig.messages(ErrorMessage) == []

    rig.heartbeat(TARGET, last_seq=rig.seq[TARGET] + 1)  # the snapshot in between was lost in transit
    [error] = rig.messages(ErrorMessage, TARGET)
    assert error.code == "snapshot-required" and not error.fatal

    # The resent snapshot makes the target fresh again.
    rig.sent.clear()
    rig.advance(30)
    rig.snapshot(SOURCE, [order(500)])
    rig.seq[TARGET] += 1
    rig.snapshot(TARGET, [])
    rig.reconcile()
    assert kinds(rig.commands()) == [("place", 500, 0)]


def test_worker_resends_its_full_state_when_asked_for_a_snapshot():
    from terminal_worker.worker import Worker

    worker = Worker(name=TARGET, role="target", backend="sim", adapter=SimpleNamespace(connected=True),
                    endpoint="tcp://127.0.0.1:1")
    try:
        worker._sent_key = ("what was sent last",)
        worker._handle_error(ErrorMessage(code="snapshot-required", message="last snapshot seen: 1"))
        assert worker._sent_key is None
        assert worker.exit_code is None
    finally:
        worker._context.term()


# ---- 5. orphans whose source history lags (t_engine3) --------------------------------------------


@pytest.mark.parametrize(("fate", "removed"), [(FILLED, False), (CANCELLED, True)])
def test_orphan_with_a_placeholder_source_record_waits_for_the_history(make_rig, fate, removed):
    rig = make_rig(target={"keep_filled_copies": True, "orphans": {"max_checks": 1}})
    source = order(500)
    placeholder = ClosedOrder(ticket=500, symbol="EURUSD", type=2, state=OrderState.NOT_IN_HISTORY_YET, magic=0,
                              comment="")
    rig.start([], [copy_of(source, 9100)], source_closed=[placeholder])
    rig.reconcile()
    [request] = rig.messages(HistoryRequest, SOURCE)
    assert request.tickets == (500,)
    assert rig.commands() == []

    rig.engine.on_message(SOURCE, HistoryReport(request_id=request.request_id,
                                                orders=(closed(500, fate),)))
    rig.advance(1)
    rig.snapshot(SOURCE, [], closed=[placeholder])  # a later snapshot's placeholder does not undo the answer
    rig.reconcile()
    assert rig.messages(HistoryRequest) == []
    expected = [("remove", 500, 9100)] if removed else []
    assert kinds(rig.commands()) == expected


# ---- 6. removals honour their backoff; expired commands pause (t_engine2, t_engine8) -------------


def test_failed_removal_of_a_filtered_type_waits_for_its_backoff(make_rig):
    rig = make_rig(target={"order_types": ["sell_limit"]})
    source = order(600)  # a buy limit: not copied to this target
    rig.start([source], [copy_of(source, 9100)])
    rig.reconcile()
    [removal] = rig.commands()
    assert kinds([removal]) == [("remove", 600, 9100)]
    rig.result(removal, CommandStatus.REJECTED, retcode=REQUOTE)

    rig.advance(0.5)
    rig.reconcile()
    assert rig.commands() == []
    assert [s.reason for s in rig.engine.reports[TARGET].last_plan.skips] == [SkipReason.BACKOFF]

    rig.advance(0.6)  # past the first retry delay (1 s)
    rig.snapshot(SOURCE, [source])
    rig.snapshot(TARGET, [copy_of(source, 9100)])
    rig.reconcile()
    [again] = rig.commands()
    assert kinds([again]) == [("remove", 600, 9100)]
    rig.result(again, CommandStatus.REJECTED, retcode=REQUOTE)

    rig.advance(1.5)  # the second delay is longer (2 s)
    rig.reconcile()
    assert rig.commands() == []
    failure = rig.engine.reports[TARGET].failures[600]
    assert failure.attempts == 2


def test_failed_orphan_removal_waits_for_its_backoff(make_rig):
    rig = make_rig(target={"orphans": {"max_checks": 1, "check_interval": 0.1}})
    source = order(500)
    gone = closed(500, CANCELLED)
    rig.start([], [copy_of(source, 9100)], source_closed=[gone])
    rig.reconcile()
    [removal] = rig.commands()
    assert kinds([removal]) == [("remove", 500, 9100)]
    rig.result(removal, CommandStatus.REJECTED, retcode=REQUOTE)

    rig.advance(0.5)  # an orphan check is due, the removal's backoff (1 s) is not over
    rig.snapshot(SOURCE, [], closed=[gone])
    rig.snapshot(TARGET, [copy_of(source, 9100)])
    rig.reconcile()
    assert rig.commands() == []


def test_orphan_removal_rejected_again_and_again_backs_off_further(make_rig):
    rig = make_rig(target={"orphans": {"max_checks": 1, "check_interval": 5.0}})
    source = order(500)
    gone = closed(500, CANCELLED)
    rig.start([], [copy_of(source, 9100)], source_closed=[gone])
    sent = 0
    for _ in range(7):  # 30 s of orphan checks
        rig.reconcile()
        for command in rig.commands():
            sent += 1
            rig.result(command, CommandStatus.REJECTED, retcode=REQUOTE)
        rig.advance(5.0)
        rig.snapshot(SOURCE, [], closed=[gone])
        rig.snapshot(TARGET, [copy_of(source, 9100)])
    assert sent <= 5


def test_orphan_within_the_freeze_level_is_removed_only_once_the_market_moves_away(make_rig):
    rig = make_rig(target={"orphans": {"max_checks": 1, "check_interval": 0.1}})
    source = order(500)  # a buy limit at 1.08000
    gone = closed(500, CANCELLED)
    rig.start([], [copy_of(source, 9100)], source_closed=[gone])
    rig.specs(freeze_level=50)
    rig.heartbeat(TARGET, quotes=[Quote(symbol="EURUSD", bid=1.08030, ask=1.08040)])  # 40 points away
    rig.reconcile()
    assert rig.commands() == []

    rig.advance(1)
    rig.snapshot(SOURCE, [], closed=[gone])
    rig.heartbeat(TARGET, quotes=[Quote(symbol="EURUSD", bid=1.08090, ask=1.08100)])  # 100 points away
    rig.reconcile()
    assert kinds(rig.commands()) == [("remove", 500, 9100)]


def test_expired_command_pauses_briefly_instead_of_looping(make_rig):
    rig = make_rig()
    source = order(500)
    rig.start([source], [])
    rig.reconcile()
    [command] = rig.commands()
    rig.result(command, CommandStatus.EXPIRED)
    assert rig.intent_outcome(command) == "expired"

    for _ in range(5):  # immediate re-plans: nothing goes out
        rig.reconcile()
        assert rig.commands() == []
    assert [s.reason for s in rig.engine.reports[TARGET].last_plan.skips] == [SkipReason.BACKOFF]

    rig.advance(1.0)
    rig.reconcile()
    assert kinds(rig.commands()) == [("place", 500, 0)]


def test_edit_of_the_source_order_waives_its_backoff(make_rig):
    rig = make_rig()
    source = order(500)
    rig.start([source], [])
    rig.reconcile()
    [command] = rig.commands()
    rig.result(command, CommandStatus.REJECTED, retcode=REQUOTE)
    rig.reconcile()
    assert rig.commands() == []

    rig.snapshot(SOURCE, [replace(source, price_open=1.075)])
    rig.reconcile()
    [again] = rig.commands()
    assert again.kind is CommandKind.PLACE and again.price == 1.075


# ---- 7. server clock offset from the freshest tick (t_engine5) -------------------------------------


def test_stale_tick_does_not_lower_a_measured_server_offset(make_rig):
    rig = make_rig(fixed_offsets=False)
    rig.start([], [])
    now = int(time.time())
    rig.heartbeat(SOURCE, server_time=now + 2 * HOUR)
    rig.heartbeat(TARGET, server_time=now + 3 * HOUR)
    target = rig.engine.targets[TARGET]
    assert (rig.engine.source.server_offset, target.server_offset) == (2 * HOUR, 3 * HOUR)

    expiration = now + 12 * HOUR  # the source's server clock
    source = order(500, type_time=2, time_expiration=expiration)
    rig.snapshot(SOURCE, [source])
    rig.reconcile()
    [command] = rig.commands()
    assert command.expiration == expiration + HOUR
    rig.result(command, CommandStatus.DONE, ticket=9100)
    rig.snapshot(TARGET, [copy_of(source, 9100, time_expiration=command.expiration)])

    # A quiet market: the target's freshest tick is 20 minutes old.
    rig.advance(1)
    rig.heartbeat(TARGET, server_time=int(time.time()) + 3 * HOUR - 20 * 60)
    assert target.server_offset == 3 * HOUR
    rig.reconcile()
    assert rig.commands() == []

    # A lower reading is only believed once the old offset went unconfirmed for hours (a clock change).
    rig.advance(HOUR)
    rig.heartbeat(TARGET, server_time=int(time.time()) + 2 * HOUR)
    assert target.server_offset == 3 * HOUR
    rig.advance(5 * HOUR + 1)
    rig.heartbeat(TARGET, server_time=int(time.time()) + 2 * HOUR)
    assert target.server_offset == 2 * HOUR


# ---- 8. planning failures stay with their target (t_engine7) --------------------------------------


@pytest.mark.parametrize("ticket", [0, -7])
def test_bad_source_ticket_does_not_escape_reconcile(make_rig, ticket):
    rig = make_rig()
    rig.start([order(ticket)], [])
    rig.reconcile()  # must not raise
    assert rig.commands() == []
    assert "planning failed" in rig.engine.reports[TARGET].unavailable

    rig.snapshot(SOURCE, [order(500)])
    rig.reconcile()
    assert kinds(rig.commands()) == [("place", 500, 0)]
    assert rig.engine.reports[TARGET].unavailable == ""


def test_planning_failure_of_one_target_does_not_stop_the_others(make_rig, monkeypatch):
    rig = make_rig(more_targets={"t2": {}})
    real_plan = engine_module.plan_target

    def plan_or_fail(source_orders, target, **options):
        if target.name == TARGET:
            raise RuntimeError("a bug tripped by t1's data")
        return real_plan(source_orders, target, **options)

    monkeypatch.setattr(engine_module, "plan_target", plan_or_fail)
    rig.start([order(500)], [])
    rig.reconcile()  # must not raise
    assert rig.messages(CommandBatch, TARGET) == []
    assert kinds(rig.commands("t2")) == [("place", 500, 0)]
    assert "planning failed" in rig.engine.reports[TARGET].unavailable
    assert rig.engine.reports["t2"].unavailable == ""


# ---- 9. the adapter: failed reads, checked replacements (t_adapter) --------------------------------


class ScriptedTerminal:
    """A MetaTrader5-like module whose answers a test sets; it records every call."""

    def __init__(self, *, orders=(), positions=(), error=(-1, "Terminal: Call failed"), check_retcode=0):
        self.orders = orders  # None: the read fails with ``error``
        self.positions = positions
        self.error = error
        self.check_retcode = check_retcode
        self.calls: list[tuple[str, object]] = []
        self._last = (1, "Success")
        self._next_ticket = 777

    def _answer(self, value):
        self._last = self.error if value is None else (1, "Success")
        return value

    def initialize(self, *args, **kwargs):
        return True

    def shutdown(self):
        return True

    def last_error(self):
        return self._last

    def account_info(self):
        return self._answer(SimpleNamespace(login=2, server="S"))

    def terminal_info(self):
        return self._answer(SimpleNamespace(connected=True))

    def orders_get(self, **kwargs):
        self.calls.append(("orders_get", kwargs))
        return self._answer(self.orders)

    def positions_get(self, **kwargs):
        self.calls.append(("positions_get", kwargs))
        return self._answer(self.positions)

    def order_check(self, request):
        self.calls.append(("order_check", request))
        return self._answer(SimpleNamespace(retcode=self.check_retcode, comment="checked"))

    def order_send(self, request):
        self.calls.append(("order_send", request))
        ticket = request.get("order", 0) if request["action"] == 8 else self._next_ticket
        return self._answer(SimpleNamespace(retcode=Retcode.DONE, order=ticket, comment="done"))

    def sent(self) -> list[dict]:
        return [request for name, request in self.calls if name == "order_send"]


def tagged(ticket: int, source_ticket: int):
    return SimpleNamespace(ticket=ticket, identifier=ticket, magic=source_ticket, comment=copy_tag(source_ticket))


def adapter_for(terminal: ScriptedTerminal) -> MT5Adapter:
    adapter = MT5Adapter(terminal, path="x", login=2, server="S")
    adapter.connect()
    return adapter


def place(source_ticket: int = 500, **fields) -> Command:
    values = dict(command_id="c", kind=CommandKind.PLACE, source_ticket=source_ticket, symbol="EURUSD", order_type=2,
                  volume=0.1, price=1.08, magic=source_ticket, comment=copy_tag(source_ticket))
    values.update(fields)
    return Command(**values)


@pytest.mark.parametrize("failing", ["orders_get", "positions_get"])
def test_place_whose_copy_lookup_fails_sends_nothing(failing):
    terminal = ScriptedTerminal(**{failing.removesuffix("_get"): None})
    result = adapter_for(terminal).execute(place())
    assert result.status is CommandStatus.REJECTED
    assert result.error_code == -1
    assert terminal.sent() == []


def test_place_whose_copy_lookup_loses_the_link_raises():
    terminal = ScriptedTerminal(orders=None, error=(-10004, "No IPC connection"))
    adapter = adapter_for(terminal)
    with pytest.raises(TerminalError):
        adapter.execute(place())
    assert terminal.sent() == []
    assert not adapter.connected


def test_replace_checks_the_new_order_before_removing_the_old_one():
    terminal = ScriptedTerminal(orders=(tagged(9100, 500),), check_retcode=Retcode.INVALID_PRICE)
    result = adapter_for(terminal).execute(place(kind=CommandKind.REPLACE, ticket=9100, volume=0.2))
    assert result.status is CommandStatus.REJECTED and result.retcode == Retcode.INVALID_PRICE
    assert terminal.sent() == []  # the old copy is still there
    assert terminal.calls[0][0] == "order_check"


def test_replace_does_not_mistake_the_old_copy_for_the_new_one():
    # The terminal still lists the old copy right after its removal.
    terminal = ScriptedTerminal(orders=(tagged(9100, 500),))
    result = adapter_for(terminal).execute(place(kind=CommandKind.REPLACE, ticket=9100, volume=0.2))
    assert result.status is CommandStatus.DONE and not result.already_existed
    assert result.ticket == 777
    assert [(request["action"], request.get("order")) for request in terminal.sent()] == [(8, 9100), (5, None)]


def test_replace_with_another_copy_present_reports_that_copy():
    terminal = ScriptedTerminal(orders=(tagged(9100, 500), tagged(9200, 500)))
    result = adapter_for(terminal).execute(place(kind=CommandKind.REPLACE, ticket=9100, volume=0.2))
    assert result.status is CommandStatus.DONE and result.already_existed and result.ticket == 9200
    assert [request["action"] for request in terminal.sent()] == [8]


# ---- 10. the planner: activated stop-limits, partial fills, GTC --------------------------------------


@pytest.mark.parametrize(("source_type", "price", "stoplimit", "sl", "tp", "bid"),
                         [(6, 1.0905, 1.0903, 1.085, 1.1, 1.0900), (7, 1.0895, 1.0897, 1.095, 1.08, 1.0900)])
def test_target_stop_limit_that_activated_into_a_limit_matches(source_type, price, stoplimit, sl, tp, bid):
    order_ = source_order(603, order_type=source_type, price_open=price, price_stoplimit=stoplimit, sl=sl, tp=tp)
    activated = replace(planner_copy_of(order_, 9301), type=source_type - 4, price_open=stoplimit,
                        price_stoplimit=0.0)
    quotes = {"EURUSD.m": Quote(symbol="EURUSD.m", bid=bid, ask=bid + 0.0001)}
    plan = plan_target([order_], inputs([activated], quotes=quotes))
    assert plan.actions == []
    assert plan.in_sync == [603]


def test_partly_filled_copy_is_not_replaced():
    order_ = source_order(604, volume=0.2)
    partial = replace(planner_copy_of(order_, 9401), volume=0.1, volume_initial=0.2)
    plan = plan_target([order_], inputs([partial]))
    assert plan.actions == []
    assert plan.in_sync == [604]


def test_copy_of_the_wrong_volume_is_still_replaced():
    order_ = source_order(605, volume=0.2)
    wrong = replace(planner_copy_of(order_, 9501), volume=0.1, volume_initial=0.1)
    assert kinds(plan_target([order_], inputs([wrong])).actions) == [("replace", 605, 9501)]


def test_gtc_order_is_not_copied_where_the_symbol_forbids_gtc():
    no_gtc = replace(EURUSD, expiration_mode=2 | 4 | 8)  # DAY, SPECIFIED, SPECIFIED_DAY
    gtc = source_order(606)
    specified = source_order(607, type_time=2, time_expiration=1_900_000_000)
    plan = plan_target([gtc, specified], inputs(specs={"EURUSD.m": no_gtc}))
    assert [c.source_ticket for c in plan.actions] == [607]
    [skip] = plan.skips
    assert (skip.source_ticket, skip.reason) == (606, SkipReason.CANNOT_COPY)
    assert "good-till-cancelled" in skip.detail
