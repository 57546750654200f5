"""A reload's share for the local worker processes, on fake processes and a clock the test turns: workers
started for added terminals, stopped for removed ones, restarted for changed entries, the others untouched."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from config import load_config
from config.loader import parse_config
from coordinator.runtime.reload import reload_config
from coordinator.runtime.supervisor import RELOAD_STOP_SECONDS, Supervisor
from tests.test_supervision import FakeProcess


def _config(tmp_path: Path, *names: str):
    return parse_config({
        "coordinator": {"state_dir": str(tmp_path / "state")},
        "source": {"name": "src", "backend": "sim", "path": "s", "login": 1, "server": "S"},
        "targets": [{"name": name, "backend": "sim", "path": name, "login": 2 + i, "server": "S"}
                    for i, name in enumerate(names)],
    }, base_dir=tmp_path)


class Workers:
    def __init__(self, tmp_path: Path) -> None:
        self.now = 0.0
        self.config = _config(tmp_path, "t1", "t2")
        self.processes: dict[str, list[FakeProcess]] = {}
        self._next_pid = 100
        self.supervisor = Supervisor(tmp_path / "c.toml", "tcp://127.0.0.1:1", list(self.config.terminals()),
                                     restart=True, clock=lambda: self.now, spawn=self._spawn)
        self.supervisor.start_all()

    def _spawn(self, command: list[str]) -> FakeProcess:
        name = command[command.index("--terminal") + 1]
        self._next_pid += 1
        process = FakeProcess(self._next_pid)
        self.processes.setdefault(name, []).append(process)
        return process

    def pids(self) -> dict[str, int | None]:
        return {name: self.supervisor.pid(name) for name in self.supervisor.names()}


def test_a_retired_worker_is_reaped_once_it_exited_and_never_started_again(tmp_path):
    workers = Workers(tmp_path)
    before = workers.pids()

    workers.supervisor.retire("t1")
    assert workers.supervisor.check() == []  # still stopping: nothing to reap yet
    workers.processes["t1"][-1].code = 0
    assert workers.supervisor.check() == [("t1", 0)]

    workers.now += 100
    assert workers.supervisor.check() == []
    assert workers.pids() == {"src": before["src"], "t2": before["t2"]}
    assert len(workers.processes["t1"]) == 1


def test_a_worker_that_does_not_stop_is_interrupted_then_killed(tmp_path):
    workers = Workers(tmp_path)
    process = workers.processes["t1"][-1]
    process.send_signal = lambda sig: None  # it ignores the polite signal
    workers.supervisor.retire("t1")

    workers.now += RELOAD_STOP_SECONDS + 0.1
    assert workers.supervisor.check() == [] and process.code is None
    workers.now += RELOAD_STOP_SECONDS
    workers.supervisor.check()
    assert process.code == -9
    assert workers.supervisor.check() == [("t1", -9)]
    assert "t1" not in workers.supervisor.names()


def test_a_changed_entry_restarts_its_worker_at_once_after_it_exited_not_as_a_crash(tmp_path):
    workers = Workers(tmp_path)
    changed = dataclasses.replace(workers.config.terminal("t1"), poll_interval=0.5)

    workers.supervisor.restart(changed)
    workers.processes["t1"][-1].code = 0  # it obeyed the Shutdown
    assert workers.supervisor.check() == [("t1", 0)]

    assert len(workers.processes["t1"]) == 2 and workers.supervisor.pid("t1") == workers.processes["t1"][-1].pid
    assert workers.supervisor.restarts("t1") == 0  # not a crash


def test_an_added_terminal_gets_a_worker_and_a_stopped_one_is_started_again(tmp_path):
    workers = Workers(tmp_path)
    t3 = _config(tmp_path, "t1", "t2", "t3").terminal("t3")

    workers.supervisor.add(t3)
    assert workers.supervisor.pid("t3") == workers.processes["t3"][-1].pid

    # A worker that gave up (a configuration error) is started again when its entry changes.
    workers.processes["t2"][-1].code = 2
    workers.supervisor.check()
    workers.now += 100
    workers.supervisor.check()
    assert workers.supervisor.pid("t2") is None
    workers.supervisor.restart(dataclasses.replace(workers.config.terminal("t2"), login=99))
    assert workers.supervisor.pid("t2") == workers.processes["t2"][-1].pid


# ---------------------------------------------------------------------------------------------------
# reload_config: the file re-read, refused whole or applied to the engine, the hub and the supervisor


class FakeHub:
    def __init__(self) -> None:
        self.allowed: list[dict[bytes, str]] = []

    def allow_keys(self, allowed_keys) -> None:
        self.allowed.append(dict(allowed_keys))


class FakeSupervisor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def add(self, terminal) -> None:
        self.calls.append(("add", terminal.name))

    def restart(self, terminal) -> None:
        self.calls.append(("restart", terminal.name))

    def retire(self, name: str) -> None:
        self.calls.append(("retire", name))


def toml(state_dir: Path, targets: dict[str, str], coordinator: str = "") -> str:
    """The file EngineRig's config is read from (same paths, same logins), with these target entries."""
    text = (f'[coordinator]\nstate_dir = "{state_dir.name}"\n{coordinator}\n'
            '[source]\nname = "src"\nbackend = "sim"\npath = "s"\nlogin = 1\nserver = "S"\nserver_utc_offset = 0\n')
    for i, (name, extra) in enumerate(targets.items()):
        text += (f'\n[[targets]]\nname = "{name}"\nbackend = "sim"\npath = "{name}"\nlogin = {2 + i}\n'
                 f'server = "S"\nserver_utc_offset = 0\n{extra}\n')
    return text


@pytest.fixture
def running_rig(make_rig, tmp_path):
    """An engine running t1 (local), t2 (local) and t3 (remote), read from a file."""
    rig = make_rig(more_targets={"t2": {}, "t3": {"remote": True}})
    state_dir = rig.config.coordinator.state_dir
    path = state_dir.parent / "copier.toml"
    path.write_text(toml(state_dir, {"t1": "", "t2": "", "t3": "remote = true"}), encoding="utf-8")
    config = load_config(path)
    assert dataclasses.replace(config, path=None) == rig.config
    rig.engine.config = config
    return rig, path


def test_reload_applies_to_the_engine_the_hub_and_the_local_workers(running_rig):
    rig, path = running_rig
    hub, supervisor = FakeHub(), FakeSupervisor()
    # t1 removed, t2's entry changed and made remote, t3 made local, t4 added (local), t5 added (remote).
    path.write_text(toml(rig.config.coordinator.state_dir, {
        "t4": "", "t2": "remote = true", "t3": "", "t5": "remote = true"}).replace("login = 2\n", "login = 12\n"),
        encoding="utf-8")

    reloaded = reload_config(rig.engine.config, rig.engine, hub, supervisor)

    assert reloaded.result.applied, reloaded.result.problems
    assert reloaded.config is rig.engine.config
    assert hub.allowed == [{}]  # no secret_key_file: nothing to allow
    assert sorted(supervisor.calls) == [("add", "t3"), ("add", "t4"), ("retire", "t1"), ("retire", "t2")]
    assert set(rig.engine.targets) == {"t2", "t3", "t4", "t5"}


def test_reload_refuses_whole_and_the_running_config_goes_on(running_rig, tmp_path):
    rig, path = running_rig
    running = rig.engine.config
    hub, supervisor = FakeHub(), FakeSupervisor()

    wrong_file = reload_config(running, rig.engine, hub, supervisor, requested=tmp_path / "other.toml")
    path.write_text(toml(rig.config.coordinator.state_dir, {"t1": "lot_multiplier = 0"}), encoding="utf-8")
    invalid = reload_config(running, rig.engine, hub, supervisor)
    path.write_text(toml(rig.config.coordinator.state_dir, {"t1": "", "t9": ""}, "worker_timeout = 20\n"
                         "heartbeat_interval = 2"), encoding="utf-8")
    restart = reload_config(running, rig.engine, hub, supervisor)

    assert wrong_file.result.problems[0].startswith(f"this coordinator runs on {path}, not ")
    assert invalid.result.problems == ("targets[0] (t1).lot_multiplier: must be greater than 0, got 0",)
    assert [problem.split(":")[0] for problem in restart.result.problems] == [
        "coordinator.heartbeat_interval", "coordinator.worker_timeout"]
    for refused in (wrong_file, invalid, restart):
        assert not refused.result.applied and refused.config is None
    assert rig.engine.config is running and set(rig.engine.targets) == {"t1", "t2", "t3"}
    assert hub.allowed == [] and supervisor.calls == []
