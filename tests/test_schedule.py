"""Copying on a schedule ([coordinator] schedule): where the boundaries fall (coordinator/domain/schedule.py), and
the engine sending nothing between them and the backlog at each (coordinator/runtime/schedule_gate.py), on
clocks the test turns."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from config import ConfigError, parse_config
from config.choices import ScheduleClock, Timeframe
from coordinator.cli.app import main
from coordinator.domain.schedule import Schedule, Timetable, last_boundary, next_boundary, next_run
from coordinator.persistence.status import TerminalStatus
from coordinator.runtime.config_changes import config_changes
from coordinator.runtime.kill_switch import REMOVE_COPIES, REMOVED, KillSwitch, KillSwitchRequest
from coordinator.runtime.operator_requests import Request
from protocol import CommandKind
from protocol.mt5 import Retcode
from tests.enginekit import SOURCE, TARGET, Desk, EngineRig, Session, order
from tests.simhelpers import BUY_LIMIT, SELL_STOP, copier_config, place_pending, sim_terminals, target_section


def utc(text: str) -> float:
    """"2026-11-24 13:07:30" (UTC) as unix time."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


HOUR = 3600

# ---------------------------------------------------------------------------------------------------
# Where the boundaries fall (pure)


@pytest.mark.parametrize(("timeframe", "expected"), [
    ("M1", "2026-11-24 13:08:00"),
    ("M5", "2026-11-24 13:10:00"),
    ("M15", "2026-11-24 13:15:00"),
    ("M30", "2026-11-24 13:30:00"),
    ("H1", "2026-11-24 14:00:00"),
    ("H4", "2026-11-24 16:00:00"),
    ("D1", "2026-11-25 00:00:00"),
])
def test_each_timeframe_runs_at_its_next_boundary_of_utc(timeframe, expected):
    schedule = Schedule(Timeframe(timeframe), clock=ScheduleClock.UTC)

    assert next_run(utc("2026-11-24 13:07:30"), schedule, 0) == utc(expected)


@pytest.mark.parametrize(("timeframe", "offset_hours", "expected_utc"), [
    # D1 on a GMT+2 server is the broker's midnight: 22:00 UTC the day before.
    ("D1", 2, "2026-11-24 22:00:00"),
    ("D1", 3, "2026-11-24 21:00:00"),
    ("D1", -5, "2026-11-25 05:00:00"),
    # H4 is 00:00, 04:00, 08:00, ... of the server clock: 16:07:30 at GMT+3 -> 20:00 server = 17:00 UTC.
    ("H4", 3, "2026-11-24 17:00:00"),
    ("H4", 2, "2026-11-24 14:00:00"),  # 15:07:30 server -> 16:00 server
    # A zone a quarter hour off: H1 falls at :00 of the server, :15 of UTC; M15 is the same either way.
    ("H1", 5.75, "2026-11-24 13:15:00"),
    ("M15", 5.75, "2026-11-24 13:15:00"),
    ("M5", 2, "2026-11-24 13:10:00"),
])
def test_server_clock_boundaries_are_the_brokers(timeframe, offset_hours, expected_utc):
    schedule = Schedule(Timeframe(timeframe))

    assert next_run(utc("2026-11-24 13:07:30"), schedule, round(offset_hours * HOUR)) == utc(expected_utc)


def test_the_offset_is_seconds_after_each_boundary_and_the_next_run_is_strictly_later():
    m5_at_60 = Schedule(Timeframe.M5, offset=60, clock=ScheduleClock.UTC)

    assert next_run(utc("2026-11-24 13:07:30"), m5_at_60, 0) == utc("2026-11-24 13:11:00")
    assert next_run(utc("2026-11-24 13:05:30"), m5_at_60, 0) == utc("2026-11-24 13:06:00")
    assert next_run(utc("2026-11-24 13:06:00"), m5_at_60, 0) == utc("2026-11-24 13:11:00")  # on one: the next
    d1_at_5min = Schedule(Timeframe.D1, offset=300)
    assert next_run(utc("2026-11-24 13:07:30"), d1_at_5min, 2 * HOUR) == utc("2026-11-24 22:05:00")
    assert last_boundary(utc("2026-11-24 13:06:00"), 300, 60) == utc("2026-11-24 13:06:00")
    assert next_boundary(utc("2026-11-24 13:05:59"), 300, 60) == utc("2026-11-24 13:06:00")


def test_a_timetable_runs_at_the_first_boundary_after_its_start_once_each():
    table = Timetable(Schedule(Timeframe.M5, offset=60))
    offset = 2 * HOUR
    assert table.take(utc("2026-11-24 13:02:30"), offset) is None  # not begun: nothing is due
    table.begin(utc("2026-11-24 13:02:30"), offset)  # the 13:01 boundary before the start counts as passed

    assert table.next_run(offset) == utc("2026-11-24 13:06:00")
    assert table.take(utc("2026-11-24 13:05:59"), offset) is None
    assert table.take(utc("2026-11-24 13:06:00.2"), offset) == utc("2026-11-24 13:06:00")
    assert table.take(utc("2026-11-24 13:06:01"), offset) is None  # taken: not due again
    # Boundaries missed (a coordinator busy, a clock unknown): one run, of the latest.
    assert table.take(utc("2026-11-24 13:23:00"), offset) == utc("2026-11-24 13:21:00")
    assert table.next_run(offset) == utc("2026-11-24 13:26:00")


def test_a_brokers_clock_moving_forward_runs_the_boundary_it_jumps_over_once():
    table = Timetable(Schedule(Timeframe.H1))
    table.begin(utc("2026-03-29 00:30:00"), 2 * HOUR)  # 02:30 server
    assert table.next_run(2 * HOUR) == utc("2026-03-29 01:00:00")  # 03:00 server

    # Summer time: the server clock jumps from 02:59:59 to 04:00 (GMT+3); 03:00 never shows, it is run at 04:00.
    assert table.take(utc("2026-03-29 00:59:59"), 2 * HOUR) is None
    assert table.take(utc("2026-03-29 01:00:00"), 3 * HOUR) == utc("2026-03-29 01:00:00")
    assert table.take(utc("2026-03-29 01:00:01"), 3 * HOUR) is None
    assert table.next_run(3 * HOUR) == utc("2026-03-29 02:00:00")  # 05:00 server


def test_a_brokers_clock_moving_back_does_not_run_the_repeated_hour_twice():
    table = Timetable(Schedule(Timeframe.D1))
    table.begin(utc("2026-10-24 12:00:00"), 3 * HOUR)
    assert table.take(utc("2026-10-24 21:00:00"), 3 * HOUR) == utc("2026-10-24 21:00:00")  # midnight at GMT+3

    # The clock goes back an hour (GMT+2): 23:00 of the day just run repeats, and the next midnight is the next day's.
    assert table.take(utc("2026-10-24 22:00:00"), 2 * HOUR) is None
    assert table.next_run(2 * HOUR) == utc("2026-10-25 22:00:00")


def test_a_schedule_says_what_it_does():
    assert Schedule(Timeframe.M5, 60).describe() == "M5, 60 s after each boundary of the source broker's server clock"
    assert Schedule(Timeframe.D1, 0, ScheduleClock.UTC).describe() == "D1, at each boundary of UTC"


# ---------------------------------------------------------------------------------------------------
# The keys


def coordinator_config(tmp_path: Path, **coordinator: object):
    return parse_config({
        "coordinator": {"state_dir": "state", **coordinator},
        "source": {"name": "src", "backend": "sim", "path": "s", "login": 1, "server": "S"},
        "targets": [{"name": "t1", "backend": "sim", "path": "t", "login": 2, "server": "S"}],
    }, base_dir=tmp_path).coordinator


def coordinator_problems(tmp_path: Path, **coordinator: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        coordinator_config(tmp_path, **coordinator)
    return [str(problem) for problem in caught.value.problems]


def test_the_schedule_keys_and_their_defaults(tmp_path):
    live = coordinator_config(tmp_path)
    assert (live.schedule, live.schedule_offset, live.schedule_clock) == (None, 0, ScheduleClock.SERVER)
    assert Schedule.from_config(live) is None

    scheduled = coordinator_config(tmp_path, schedule="m5", schedule_offset=299, schedule_clock="utc")
    assert Schedule.from_config(scheduled) == Schedule(Timeframe.M5, 299, ScheduleClock.UTC)


@pytest.mark.parametrize(("keys", "problem"), [
    ({"schedule": "M5", "schedule_offset": 300},
     "coordinator.schedule_offset: must be less than the timeframe of coordinator.schedule (M5 is 300 s), got 300"),
    ({"schedule": "D1", "schedule_offset": -1}, "coordinator.schedule_offset: must be at least 0, got -1"),
    ({"schedule_offset": 60}, "coordinator.schedule_offset: only used with coordinator.schedule"),
    ({"schedule_clock": "utc"}, "coordinator.schedule_clock: only used with coordinator.schedule"),
    ({"schedule": "W1"}, "coordinator.schedule: must be one of 'M1', 'M5', 'M15', 'M30', 'H1', 'H4', 'D1', got 'W1'"),
])
def test_schedule_keys_that_cannot_mean_what_they_say_are_refused(tmp_path, keys, problem):
    assert coordinator_problems(tmp_path, **keys) == [problem]


def test_a_reload_applies_a_schedule_change_at_once(tmp_path):
    config = parse_config({
        "coordinator": {"state_dir": "state"},
        "source": {"name": "src", "backend": "sim", "path": "s", "login": 1, "server": "S"},
        "targets": [{"name": "t1", "backend": "sim", "path": "t", "login": 2, "server": "S"}],
    }, base_dir=tmp_path)
    scheduled = dataclasses.replace(config, coordinator=dataclasses.replace(
        config.coordinator, schedule=Timeframe.H1, schedule_offset=30, schedule_clock=ScheduleClock.UTC))

    changes = config_changes(config, scheduled)

    assert changes.needs_restart == ()
    assert changes.coordinator_keys == ("schedule", "schedule_offset", "schedule_clock")


# ---------------------------------------------------------------------------------------------------
# The engine: nothing between two boundaries, the backlog at each

START = utc("2026-11-24 13:02:30")  # 15:02:30 on the source's GMT+2 server
FIRST_RUN = utc("2026-11-24 13:06:00")  # M5 + 60 s on that clock: 15:06:00 server
M5_AT_60 = {"schedule": "M5", "schedule_offset": 60}


class Wall:
    """The engine's UTC clock, turned with the session's monotonic one."""

    def __init__(self, at: float) -> None:
        self.at = at

    def ms(self) -> int:
        return int(self.at * 1000)

    def step(self, session: Session, seconds: float) -> int:
        """``seconds`` pass on both clocks; one beat of the workers and the engine (``Session.step``)."""
        self.at += seconds
        return session.step(seconds)

    def run_until(self, session: Session, at: float, beat: float = 1.0) -> None:
        """Beats up to ``at``: ``beat`` apart over its last seconds, 5 s apart before (the workers still report
        well within worker_timeout)."""
        while self.at + beat <= at + 1e-9:
            self.step(session, 5.0 if self.at + 5.0 + 5.0 <= at else beat)


@pytest.fixture
def desk(tmp_path) -> Desk:
    return Desk(tmp_path / "state")


def scheduled_session(desk: Desk, wall: Wall, **coordinator: object) -> Session:
    return desk.session(source={"server_utc_offset": 2}, coordinator={**M5_AT_60, **coordinator}, wall_ms=wall.ms)


def row(session: Session, name: str = TARGET) -> TerminalStatus:
    return next(row for row in session.rig.engine.status.rows() if row.name == name)


def test_nothing_is_sent_between_boundaries_and_the_backlog_goes_at_the_boundary(desk):
    master, target = desk[SOURCE], desk[TARGET]
    first = master.place(BUY_LIMIT)
    wall = Wall(START)
    session = scheduled_session(desk, wall)

    # Start-up included: the source's order waits for the first run; status says when that is.
    wall.run_until(session, START + 30)
    assert session.commands == [] and target.orders == {}
    status = row(session)
    assert (status.schedule, status.next_run) == ("M5, 60 s after each boundary of the source broker's server clock",
                                                  FIRST_RUN)
    assert status.skipped == ((first, "waiting: place held back: schedule M5: until the next run at 15:06:00 "
                                      "server time"),)
    assert row(session, SOURCE).next_run == FIRST_RUN

    # The source changes meanwhile: still nothing, up to the boundary's last beat.
    master.modify(first, price_open=1.079)
    second = master.place(SELL_STOP, symbol="GBPUSD")
    wall.run_until(session, FIRST_RUN - 0.5)
    assert session.commands == [] and target.orders == {}

    # At the boundary, the backlog: each order once, as the source has it then.
    wall.run_until(session, FIRST_RUN + 3)
    assert sorted(command.kind for command in session.commands) == [CommandKind.PLACE, CommandKind.PLACE]
    assert target.copies()[first].price_open == 1.079 and second in target.copies()
    assert row(session).next_run == FIRST_RUN + 300 and row(session).skipped == ()

    # After the run: the source's edits and removals wait for the next one.
    sent = len(session.commands)
    master.modify(second, price_open=master.orders[second].price_open + 0.001)
    master.remove(first)
    wall.run_until(session, FIRST_RUN + 299.5)
    assert len(session.commands) == sent and first in target.copies()
    waiting = dict(row(session).skipped)
    assert waiting[second].startswith("waiting: modify held back: schedule M5: until the next run at 15:11:00")
    wall.run_until(session, FIRST_RUN + 303)
    assert sorted(command.kind for command in session.commands[sent:]) == [CommandKind.MODIFY, CommandKind.REMOVE]
    assert set(target.copies()) == {second}
    session.close()


@pytest.mark.parametrize("beat", [0.25, 2.0])  # however soon the next plan comes: its back-off over or not
def test_a_command_that_failed_at_a_run_is_retried_at_the_next_not_in_between(desk, beat):
    master, target = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_LIMIT)
    wall = Wall(START)
    session = scheduled_session(desk, wall)
    target.inject.append(Retcode.REQUOTE)  # retryable: live, it would be tried again after a second

    wall.run_until(session, FIRST_RUN + 60, beat)
    assert [command.kind for command in session.commands] == [CommandKind.PLACE]
    assert target.copies() == {}
    assert "schedule M5: until the next run at 15:11:00" in dict(row(session).skipped)[ticket]

    wall.run_until(session, FIRST_RUN + 303, beat)
    assert [command.kind for command in session.commands] == [CommandKind.PLACE, CommandKind.PLACE]
    assert ticket in target.copies()
    session.close()


def test_the_kill_switch_acts_at_once_between_boundaries(desk):
    master, target = desk[SOURCE], desk[TARGET]
    master.place(BUY_LIMIT)
    wall = Wall(START)
    session = scheduled_session(desk, wall)
    wall.run_until(session, FIRST_RUN + 5)
    assert len(target.copies()) == 1
    rig = session.rig
    kill_switch = KillSwitch(rig.engine, clock=lambda: rig.clock)

    assert kill_switch.ask(Request("r1", REMOVE_COPIES, KillSwitchRequest(TARGET).to_body())) is None
    answers = []
    for _ in range(50):
        wall.at += 0.1
        session.step(0.1)
        answers += [answer for _, answer in kill_switch.step()]
        for name, message in list(rig.sent):
            session._answer(name, message)
        if answers:
            break

    assert [item.outcome for item in answers[0].items] == [REMOVED]
    assert target.copies() == {} and wall.at < FIRST_RUN + 300
    session.close()


def test_a_run_once_syncs_now_whatever_the_schedule(desk):
    master, target = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_LIMIT)
    wall = Wall(START)
    session = scheduled_session(desk, wall)
    session.rig.engine.schedule.suspend()  # what coordinator/runtime/runner.py does for a run --once

    wall.run_until(session, START + 2)

    assert ticket in target.copies()
    assert (row(session).schedule, row(session).next_run) == ("", None)
    session.close()


def test_a_reload_without_the_schedule_copies_live_at_once_and_with_one_waits_for_its_boundary(desk):
    master, target = desk[SOURCE], desk[TARGET]
    first = master.place(BUY_LIMIT)
    wall = Wall(START)
    session = scheduled_session(desk, wall)
    engine = session.rig.engine
    wall.run_until(session, START + 5)
    scheduled = engine.config

    engine.apply_config(dataclasses.replace(scheduled, coordinator=dataclasses.replace(
        scheduled.coordinator, schedule=None, schedule_offset=0)))
    wall.run_until(session, START + 7)
    assert first in target.copies()

    engine.apply_config(scheduled)
    second = master.place(BUY_LIMIT, distance_points=800)
    wall.run_until(session, FIRST_RUN - 1)
    assert second not in target.copies()
    wall.run_until(session, FIRST_RUN + 3)
    assert second in target.copies()
    session.close()


def test_before_the_source_server_clock_is_known_nothing_is_sent_then_the_missed_run_is(tmp_path):
    wall = Wall(START)
    rig = EngineRig(tmp_path / "state", {"server_utc_offset": 0}, fixed_offsets=False, wall_ms=wall.ms,
                    coordinator={"schedule": "M1"})
    rig.start([order(1)])
    rig.heartbeat(SOURCE, server_time=0)  # no tick yet: the server clock is unknown
    rig.engine.tick()
    rig.reconcile()
    assert rig.commands() == []
    status = next(row for row in rig.engine.status.rows() if row.name == TARGET)
    assert status.next_run is None
    assert status.skipped == ((1, "waiting: place held back: schedule M1: waiting for the source's server clock to "
                                  "place the first run"),)

    # Three minutes later (a weekend's start, say) its first tick: the boundaries passed since the start are one run.
    wall.at += 180
    rig.heartbeat(SOURCE, server_time=int(wall.at) + 2 * HOUR)
    rig.engine.tick()
    rig.reconcile()

    assert [command.kind for command in rig.commands()] == [CommandKind.PLACE]
    rig.close()


# ---------------------------------------------------------------------------------------------------
# status


STATUS_CONFIG = """
[coordinator]
state_dir = "state"
schedule = "M5"
schedule_offset = 60

[source]
name = "master"
backend = "sim"
path = "terminals/master"
login = 1001
server = "Sim-Server"

[[targets]]
name = "broker-a"
backend = "sim"
path = "terminals/broker-a"
login = 2001
server = "Sim-Server"
"""


def status_row(name: str, role: str, **fields: object) -> TerminalStatus:
    now = time.time()
    values: dict[str, object] = dict(
        name=name, role=role, online=True, terminal_reachable=True, connected=True, account_ok=True,
        account={"master": "1001@Sim-Server", "broker-a": "2001@Sim-Server"}[name], pending_orders=1, copies=0,
        orphans=0, skipped=(), last_sync_at=now, last_error="", updated_at=now)
    values.update(fields)
    return TerminalStatus(**values)  # type: ignore[arg-type]


def test_status_shows_the_schedule_and_the_next_run_in_text_and_json(tmp_path, capsys, board, running):
    config_path = tmp_path / "copier.toml"
    config_path.write_text(STATUS_CONFIG, encoding="utf-8")
    words = "M5, 60 s after each boundary of the source broker's server clock"
    at = time.time() + 200
    board.write([status_row("master", "source", schedule=words, next_run=at),
                 status_row("broker-a", "target", schedule=words, next_run=at)])

    assert main(["status", "--config", str(config_path)]) == 0
    text = capsys.readouterr().out
    shown = datetime.fromtimestamp(at).strftime("%H:%M:%S")
    assert f"schedule: {words}; next run " in text and f"next run: {shown} (in " in text

    assert main(["status", "--config", str(config_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["coordinator"]["schedule"] == words
    assert datetime.fromisoformat(report["coordinator"]["next_run"]).timestamp() == pytest.approx(at, abs=1)
    broker_a = next(t for t in report["terminals"] if t["name"] == "broker-a")
    assert datetime.fromisoformat(broker_a["next_run"]).timestamp() == pytest.approx(at, abs=1)

    board.write([status_row("master", "source", schedule=words, next_run=None),
                 status_row("broker-a", "target", schedule=words, next_run=time.time() - 2)])
    main(["status", "--config", str(config_path)])
    text = capsys.readouterr().out
    assert "next run not known yet (waiting for the source's server clock" in text
    assert "next run: under way (the run of " in text


# ---------------------------------------------------------------------------------------------------
# run --once (real processes)


def test_a_run_once_with_a_schedule_syncs_now_and_says_the_schedule_was_not_applied(copier):
    master, alpha = sim_terminals(copier.directory, "alpha")
    place_pending(master, BUY_LIMIT)
    copier.write_config(copier_config(target_section("alpha", 2001)).replace(
        "[coordinator]\n", '[coordinator]\nschedule = "D1"\n'))

    run = copier.once(timeout=60)

    assert run.code == 0, run.output
    assert "schedule D1, at each boundary of the source broker's server clock: not applied, a run --once syncs at " \
           "once" in run.output, run.output
    assert len(alpha.orders_get()) == 1
