"""Which situations raise an alert, and in which words (coordinator/domain/alert_rules.py), as the engine meets
them: workers, terminals and accounts on an engine rig or a desk of books (tests/enginekit.py), on a clock the
test turns; the supervisor's exits with fake processes. No process, no network: the sender is a recorder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.exit_codes import ExitCode
from coordinator.domain.alert_rules import AlertContext, Severity, alert_for
from coordinator.domain.events import (
    CommandFailed,
    CoordinatorStarted,
    CoordinatorStopped,
    CopyPlaced,
    OrphanDecided,
    RiskGuardTripped,
    TargetControlChanged,
    WorkerDown,
)
from coordinator.runtime.alerts import AlertTeller
from coordinator.runtime.sessions import TERMINAL_OUT_OF_REACH_SECONDS
from coordinator.runtime.supervisor import Supervisor, WorkerExit
from protocol import Goodbye
from protocol.mt5 import Retcode
from tests.enginekit import SOURCE, TARGET, Desk, EngineRig, Session
from tests.simhelpers import BUY_LIMIT, SELL_STOP

CONFIG = AlertContext(config_file="/srv/copier.toml")


@dataclass
class Sent:
    key: str
    title: str
    body: str
    severity: Severity


class Recorder:
    """Stands in for the sender (``Alerts.notify``): what would be sent, in order."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def notify(self, key: str, title: str, body: str, severity: Severity = Severity.WARNING) -> None:
        self.sent.append(Sent(key, title, body, severity))

    def take(self) -> list[Sent]:
        sent, self.sent = self.sent, []
        return sent

    def titles(self) -> list[str]:
        return [alert.title for alert in self.take()]


def listen(rig: EngineRig) -> Recorder:
    recorder = Recorder()
    rig.engine.events.subscribe(AlertTeller(recorder, CONFIG))  # type: ignore[arg-type]  # a stand-in
    return recorder


@pytest.fixture
def rig(make_rig) -> EngineRig:
    made = make_rig()
    made.start()
    return made


# ---- workers ---------------------------------------------------------------------------------------------------


def test_a_silent_worker_is_down_once_and_back_when_it_talks_again(rig):
    alerts = listen(rig)
    rig.advance(11)
    rig.heartbeat(SOURCE)  # the source keeps talking
    rig.engine.tick()
    rig.advance(5)
    rig.engine.tick()  # still silent: said once
    (down,) = alerts.take()
    rig.heartbeat(TARGET)
    (back,) = alerts.take()

    assert (down.key, down.title, down.severity) == ("worker:t1", "t1: worker down", Severity.FAILURE)
    assert down.body == (
        "Target t1 is unavailable: its worker has been silent for 11 s (worker_timeout 10 s).\n\n"
        "Nothing is sent to t1 until it is back; the other targets go on.\n\n"
        "What to do: the coordinator restarts a local worker that exits or hangs; if this lasts, read "
        "state_dir/logs/worker-t1.log and coordinator.log.")
    assert (back.key, back.title, back.severity) == ("worker:t1", "t1: worker back", Severity.SUCCESS)
    assert back.body == ("The worker of target t1 is connected again, after 16 s: copying to it resumes.\n\n"
                         "Nothing to do.")


def test_the_source_down_says_that_nothing_is_copied_anywhere(rig):
    alerts = listen(rig)
    rig.advance(11)
    rig.heartbeat(TARGET)
    rig.engine.tick()

    (down,) = alerts.take()
    assert down.title == "src: worker down"
    assert down.body.startswith("The source src is unavailable: its worker has been silent for 11 s")
    assert "Nothing is copied to any target until it is back" in down.body


def test_a_worker_that_never_said_hello_in_time_is_down_and_back_once_it_is_welcomed(make_rig):
    rig = make_rig()
    alerts = listen(rig)
    rig.engine.sessions.note_unavailable(rig.engine.views[TARGET], "its worker did not say hello within 30s")
    rig.advance(3)
    rig.hello(TARGET)

    assert alerts.titles() == ["t1: worker down", "t1: worker back"]


def test_a_local_worker_that_exited_is_told_with_its_code_and_its_restart_then_back(rig):
    alerts = listen(rig)
    view = rig.engine.views[TARGET]
    rig.engine.sessions.worker_lost(view, -9, restart_in=1.0, restarts=2)
    rig.engine.worker_exited(TARGET, -9)
    rig.advance(2)
    rig.engine.tick()  # gone, not silent: no second "down"
    rig.hello(TARGET, boot="b2")
    restarted, back = alerts.take()

    assert (restarted.key, restarted.title, restarted.severity) == ("worker:t1", "t1: worker restarted",
                                                                     Severity.WARNING)
    assert restarted.body.startswith(
        "The local worker of target t1 exited with code -9 (killed by SIGKILL); the coordinator starts it again in "
        "1 s (restart 2 since the coordinator started).")
    assert "read state_dir/logs/worker-t1.log: the lines before each exit say why" in restarted.body
    assert back.title == "t1: worker back"


@pytest.mark.parametrize(("code", "why", "todo"), [
    (ExitCode.CONFIG_ERROR, "a configuration error is not mended by a restart",
     "`mt5-copier reload --config /srv/copier.toml`"),
    (ExitCode.OK, "it was stopped from outside (a signal to its process)", "restart the coordinator"),
])
def test_a_worker_that_is_not_restarted_says_why_and_what_to_do(rig, code, why, todo):
    alerts = listen(rig)
    rig.engine.sessions.worker_lost(rig.engine.views[TARGET], code, restart_in=None, restarts=0)

    (alert,) = alerts.take()
    assert alert.title == "t1: worker stopped, not restarted" and alert.severity is Severity.FAILURE
    assert f", and is not restarted: {why}." in alert.body and todo in alert.body


def test_a_remote_worker_that_leaves_is_down_a_local_one_is_told_by_its_exit(make_rig):
    rig = make_rig(target={"remote": True})
    rig.start()
    alerts = listen(rig)
    rig.engine.on_message(TARGET, Goodbye(reason="stopped by its service", exit_code=0))
    rig.engine.on_message(SOURCE, Goodbye(reason="coordinator stopping", exit_code=0))

    (down,) = alerts.take()
    assert down.title == "t1: worker down"
    assert down.body.startswith("Target t1 is unavailable: its worker left (stopped by its service).")
    assert "look at its worker on its machine: is its service running" in down.body


def test_the_supervisor_tells_of_the_exits_no_one_asked_for_with_their_restart(tmp_path: Path, make_rig):
    config = make_rig().config

    class Process:
        pid = 42

        def __init__(self) -> None:
            self.code: int | None = None

        def poll(self) -> int | None:
            return self.code

    processes: list[Process] = []
    told: list[WorkerExit] = []
    clock = [0.0]

    def spawn(command: list[str]) -> Process:
        processes.append(Process())
        return processes[-1]

    supervisor = Supervisor(tmp_path / "c.toml", "tcp://127.0.0.1:1", [config.source], restart=True,
                            clock=lambda: clock[0], spawn=spawn, on_exit=told.append)  # type: ignore[arg-type]
    supervisor.start_all()
    processes[-1].code = -9
    assert supervisor.check() == [("src", -9)]
    clock[0] = 5.0
    supervisor.check()  # started again
    processes[-1].code = ExitCode.CONFIG_ERROR
    supervisor.check()

    assert told == [WorkerExit("src", -9, 1.0, 1), WorkerExit("src", ExitCode.CONFIG_ERROR, None, 1)]


# ---- terminals and accounts -----------------------------------------------------------------------------------


def test_a_terminal_out_of_reach_is_told_after_a_while_and_its_return_too(tmp_path: Path):
    desk = Desk(tmp_path / "state")
    session = desk.session()
    alerts = listen(session.rig)
    try:
        session.step()
        desk[TARGET].connected = False  # the terminal lost its broker
        session.run(TERMINAL_OUT_OF_REACH_SECONDS - 1, beat=1.0)
        assert alerts.take() == []  # a broker reconnect takes seconds: no news
        session.run(2, beat=1.0)
        (lost,) = alerts.take()
        desk[TARGET].connected = True
        session.step(1.0)
        (back,) = alerts.take()
    finally:
        session.close()

    assert (lost.key, lost.title, lost.severity) == ("terminal:t1", "t1: terminal disconnected", Severity.FAILURE)
    assert lost.body.startswith("Target t1 has been out of reach for 30 s: the terminal is not connected to its "
                                "broker.\n\nNothing is sent to t1 until it is back")
    assert "(the status in its bottom-right corner)" in lost.body
    assert (back.key, back.title) == ("terminal:t1", "t1: terminal connected again")
    assert back.body.startswith("Target t1 is connected again, after 31 s: copying to it resumes.")


def test_a_worker_that_lost_its_terminal_says_why(tmp_path: Path):
    desk = Desk(tmp_path / "state")
    session = desk.session()
    alerts = listen(session.rig)
    try:
        desk[SOURCE].running = False
        session.run(TERMINAL_OUT_OF_REACH_SECONDS + 1, beat=1.0)
        (lost,) = alerts.take()
    finally:
        session.close()

    assert lost.title == "src: terminal disconnected"
    assert lost.body.startswith("The source src has been out of reach for 30 s: its worker lost the terminal (no IPC "
                                "connection: orders_get failed with (-10004, 'No IPC connection')).")


def test_a_terminal_on_another_account_is_told_at_once_and_when_it_is_back(make_rig):
    rig = make_rig()
    alerts = listen(rig)
    rig.hello(TARGET, login=77)
    rig.snapshot(TARGET, login=77)  # still wrong: said once
    rig.snapshot(TARGET)
    wrong, right = alerts.take()

    assert (wrong.key, wrong.title, wrong.severity) == ("account:t1", "t1: wrong account 77@S", Severity.FAILURE)
    assert wrong.body.startswith("Terminal t1 (target) is logged into account 77@S, but the config names 2@S for it. "
                                 "Until the configured account is back, nothing is sent to it")
    assert "log the terminal back into 2@S" in wrong.body
    assert (right.key, right.title, right.severity) == ("account:t1", "t1: configured account back", Severity.SUCCESS)


# ---- copies ----------------------------------------------------------------------------------------------------


def test_a_copy_refused_for_good_is_told_once_with_its_retcode_its_meaning_and_what_to_do(tmp_path: Path):
    desk = Desk(tmp_path / "state")
    desk[TARGET].refuse["EURUSD"] = Retcode.NO_MONEY
    ticket = desk[SOURCE].place(BUY_LIMIT)
    session = desk.session()
    alerts = listen(session.rig)
    try:
        session.run(3.0)
        sent = alerts.take()
    finally:
        session.close()

    (refused,) = sent  # retried later, or when the order changes: not told again
    assert refused.key == "failed:t1:10019"
    assert refused.title == f"t1: copy of #{ticket} failed (retcode 10019, not enough money)"
    assert refused.body.startswith(f"Target t1: the broker refused placing the copy of source order #{ticket}: "
                                   "retcode 10019, not enough money.")
    assert re.search(rf"It would be refused again as it is: the copier tries again in \d+ min( \d+ s)?, or as soon "
                     rf"as source order #{ticket} changes\.", refused.body), refused.body
    assert refused.body.endswith("What to do: add funds to t1's account, or make its copies smaller (lot_multiplier, "
                                 "min_lot, max_lot, volume_mode).")


def test_what_may_pass_by_itself_or_was_said_already_is_not_alerted():
    failed = dict(target="t1", source_ticket=5, copy_ticket=0, kind="place", status="rejected", reason="r",
                  retry_in=10.0)

    assert alert_for(CommandFailed(retcode=Retcode.MARKET_CLOSED, final=False, **failed)) is None
    assert alert_for(CommandFailed(retcode=Retcode.NO_MONEY, final=True, repeated=True, **failed)) is None
    assert alert_for(CopyPlaced(target="t1", source_ticket=5, copy_ticket=9, description="d")) is None


def test_an_orphan_removed_on_the_checks_alone_is_told_one_its_source_history_explains_is_not(tmp_path: Path):
    desk = Desk(tmp_path / "state")
    explained = desk[SOURCE].place(BUY_LIMIT)
    vanished = desk[SOURCE].place(SELL_STOP, symbol="GBPUSD")
    session: Session = desk.session(t1={"orphans": {"check_interval": 0.0, "max_checks": 2}})
    alerts = listen(session.rig)
    try:
        session.run(3.0, until=lambda: {explained, vanished} <= set(desk[TARGET].copies()))
        orphan = desk[TARGET].copies()[vanished].ticket
        desk[SOURCE].remove(explained)  # cancelled: the history says so
        desk[SOURCE].lose(vanished)  # gone without a record
        session.run(5.0, until=lambda: not desk[TARGET].copies())
        sent = alerts.take()
    finally:
        session.close()

    (alert,) = sent
    assert (alert.key, alert.title, alert.severity) == ("orphans:t1", f"t1: orphan #{orphan} removed", Severity.WARNING)
    assert alert.body.startswith(f"Target t1: the copier removed #{orphan}, the copy of source #{vanished}, as an "
                                 f"orphan: source order #{vanished} not found in 2 consecutive checks")
    assert "set [targets.orphans] policy = \"preserve\"" in alert.body


def test_an_orphan_kept_is_not_alerted():
    kept = OrphanDecided(target="t1", source_ticket=5, copy_ticket=9, kill=False, why="preserve")

    assert alert_for(kept) is None


# ---- controls, guards, the coordinator -------------------------------------------------------------------------


def test_a_risk_guard_tripped_and_cleared():
    tripped = alert_for(RiskGuardTripped(target="t1", guard="max_drawdown_percent",
                                         reason="equity 7900.00 is 21.0% below its peak 10000.00 (max_drawdown_percent "
                                                "20)", action="close-only until resumed"), CONFIG)
    cleared = alert_for(RiskGuardTripped(target="t1", guard="min_equity", reason="equity 2100.00 is back above "
                                         "min_equity 2000.00", action="new copies again", cleared=True), CONFIG)

    assert tripped is not None and cleared is not None
    assert (tripped.key, tripped.title, tripped.severity) == ("guard:t1:max_drawdown_percent",
                                                              "t1: risk guard max_drawdown_percent tripped",
                                                              Severity.FAILURE)
    assert tripped.body == ("Target t1: equity 7900.00 is 21.0% below its peak 10000.00 (max_drawdown_percent 20). "
                            "Close-only until resumed.\n\nWhat to do: look at the account; once you are content, "
                            "`mt5-copier resume --config /srv/copier.toml --target t1` copies to it again.")
    assert (cleared.title, cleared.severity) == ("t1: risk guard min_equity cleared", Severity.SUCCESS)


def test_a_target_paused_or_resumed_by_a_person_is_told_one_a_guard_paused_is_told_by_the_guard():
    paused = alert_for(TargetControlChanged(target="t1", mode="paused", reason="broker maintenance",
                                            set_by="operator"), CONFIG)
    resumed = alert_for(TargetControlChanged(target="t1", mode="active", reason="", set_by="operator"), CONFIG)
    by_guard = alert_for(TargetControlChanged(target="t1", mode="close_only", reason="drawdown",
                                              set_by="guard:max_drawdown_percent"), CONFIG)

    assert paused is not None and resumed is not None and by_guard is None
    assert (paused.key, paused.title) == ("control:t1", "t1: paused")
    assert paused.body == ("Target t1 was paused by operator: broker maintenance.\n\nNo new copies go to it.\n\n"
                           "What to do: `mt5-copier resume --config /srv/copier.toml --target t1` when it should "
                           "copy again.")
    assert (resumed.title, resumed.severity) == ("t1: resumed", Severity.INFO)


def test_the_coordinator_started_stopped_and_crashed():
    started = alert_for(CoordinatorStarted(version="0.5.0", host="vps-1", source="master",
                                           targets=("broker-a", "broker-b")), CONFIG)
    stopped = alert_for(CoordinatorStopped(host="vps-1", reason="signal SIGTERM"), CONFIG)
    crashed = alert_for(CoordinatorStopped(host="vps-1", reason="it crashed (RuntimeError; coordinator.log has the "
                                           "traceback)", crashed=True), CONFIG)

    assert started is not None and stopped is not None and crashed is not None
    assert {started.key, stopped.key, crashed.key} == {"coordinator"}
    assert started.body == ("mt5-copier 0.5.0 started on vps-1: copying from master to broker-a, broker-b.\n\n"
                            "From now on you are told here when something needs you.")
    assert stopped.title == "coordinator stopped on vps-1" and stopped.severity is Severity.WARNING
    assert stopped.body.startswith("mt5-copier stopped on vps-1 (signal SIGTERM). Nothing is copied until it runs "
                                   "again")
    assert crashed.title == "coordinator crashed on vps-1" and crashed.severity is Severity.FAILURE


def test_a_terminal_keeps_the_case_of_its_name_in_every_sentence():
    alert = alert_for(WorkerDown(terminal="IC-Live", role="source", remote=True, why="its worker left (reboot)."))

    assert alert is not None
    assert alert.body.startswith("The source IC-Live is unavailable: its worker left (reboot).\n\n")
