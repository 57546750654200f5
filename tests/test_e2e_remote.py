"""End to end: workers on other machines. Each machine is a network namespace (tests/netns.py): the
coordinator binds a non-loopback address in its own, every remote worker runs from a worker.toml in
another, over CurveZMQ. What a trader relies on when the terminals live on several VMs:

- a worker with the right key copies; a client with an unknown key, and one with a valid key claiming
  another terminal's name, are refused (exit 2) and change nothing;
- the link cut for longer than worker_timeout and restored: the worker is still running, copying resumes,
  nothing is placed twice;
- the coordinator restarted: remote workers stay up and reconnect; a worker started before its
  coordinator connects when it appears;
- reload adding a target, removing one and changing a multiplier, with the untouched workers' processes
  unchanged.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mt5sim
from protocol.curve import create_key_pair
from tests.conftest import Copier, wait_for
from tests.netns import COORDINATOR_ADDRESS, Lan, Machine, make_lan
from tests.simhelpers import BUY_LIMIT, SELL_STOP, copies, create, log_text, place_pending

pytestmark = pytest.mark.e2e

PORT = 5757  # every machine has its own network stack: no port can clash
WORKER_TIMEOUT = 3.0


def coordinator_config(targets: list[tuple[str, int, bool, str]]) -> str:
    """``targets``: (name, login, remote, extra keys)."""
    text = f"""
[coordinator]
bind = "tcp://{COORDINATOR_ADDRESS}:{PORT}"
secret_key_file = "keys/coordinator.key_secret"
state_dir = "state"
interval = 1.0
hello_timeout = 20
heartbeat_interval = 0.2
worker_timeout = {WORKER_TIMEOUT}
command_timeout = 5

[source]
name = "master"
backend = "sim"
path = "terminals/master"
login = 1001
server = "Sim-Server"
remote = true
public_key_file = "keys/master.key"
"""
    for name, login, remote, extra in targets:
        text += f"""
[[targets]]
name = "{name}"
backend = "sim"
path = "terminals/{name}"
login = {login}
server = "Sim-Server"
{f'remote = true{chr(10)}public_key_file = "keys/{name}.key"' if remote else ""}
{extra}
[targets.orphans]
check_interval = 0.3
"""
    return text


def worker_file(directory: Path, name: str, *, key: str, terminal: str, login: int) -> Path:
    """A worker.toml in ``directory`` (the worker's machine) for the sim terminal ``terminal``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "worker.toml"
    path.write_text(f"""
[link]
connect = "tcp://{COORDINATOR_ADDRESS}:{PORT}"
secret_key_file = "{key}"
coordinator_key_file = "{directory.parent / 'keys' / 'coordinator.key'}"

[terminal]
name = "{name}"
backend = "sim"
path = "{directory.parent / 'terminals' / terminal}"
login = {login}
server = "Sim-Server"
poll_interval = 0.05

[worker]
state_dir = "state"
""", encoding="utf-8")
    return path


class Remote:
    """The test's machines and processes."""

    def __init__(self, lan: Lan, copier: Copier) -> None:
        self.lan = lan
        self.copier = copier
        self.dir = copier.directory
        self.keys = self.dir / "keys"
        self.keys.mkdir()
        for name in ("coordinator", "master", "alpha", "beta", "stranger"):
            create_key_pair(self.keys, name)
        self.machines: dict[str, Machine] = {}

    def write(self, targets: list[tuple[str, int, bool, str]]) -> None:
        self.copier.write_config(coordinator_config(targets))

    def start_coordinator(self) -> subprocess.Popen:
        return self.copier.start("--raw", *self.lan.coordinator.command(
            self.copier.command("run", "--config", str(self.copier.config_path))))

    def start_worker(self, name: str, *, key: str | None = None, terminal: str | None = None,
                     login: int = 0, machine: str | None = None) -> subprocess.Popen:
        """The worker of ``name`` on machine ``machine`` (default: its own), with ``key``'s secret key."""
        host = machine or name
        if host not in self.machines:
            self.machines[host] = self.lan.machine()
        path = worker_file(self.dir / f"vm-{host}", name, key=str(self.keys / f"{key or name}.key_secret"),
                           terminal=terminal or name, login=login)
        return self.copier.start("--raw", *self.machines[host].command(
            self.copier.command("worker", "--config", str(path))))

    def status(self, name: str) -> dict:
        """``status --json``'s entry for terminal ``name``."""
        run = self.copier.run("status", "--config", str(self.copier.config_path), "--json")
        terminals = json.loads(run.output[run.output.index("{"):])["terminals"]
        return next(terminal for terminal in terminals if terminal["name"] == name)

    def reload(self) -> tuple[int, str]:
        run = self.copier.run("reload", "--config", str(self.copier.config_path), timeout=30)
        return run.code, run.output


def _terminals(directory: Path, *names_and_logins: tuple[str, int]) -> dict[str, mt5sim.Terminal]:
    return {name: create(directory / "terminals" / name, login) for name, login in names_and_logins}


def _alive(process: subprocess.Popen) -> bool:
    return process.poll() is None


def _exits(copier: Copier, process: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        copier.stop(process, signal.SIGKILL)
        raise AssertionError(f"process {process.args} did not exit within {timeout}s") from None
    return process.returncode, output or ""


@pytest.fixture
def remote(copier: Copier):
    with make_lan() as lan:
        try:
            yield Remote(lan, copier)
        finally:
            copier.cleanup()  # before the namespaces go


def test_remote_workers_copy_refuse_impostors_survive_a_cut_and_reload(remote: Remote) -> None:
    terms = _terminals(remote.dir, ("master", 1001), ("alpha", 2001), ("local", 3001), ("beta", 4001),
                       ("fake", 1001))
    remote.write([("alpha", 2001, True, ""), ("local", 3001, False, "")])
    coordinator = remote.start_coordinator()
    master = remote.start_worker("master", login=1001)
    alpha = remote.start_worker("alpha", login=2001)
    first = place_pending(terms["master"], BUY_LIMIT)
    wait_for(lambda: first in copies(terms["alpha"]) and first in copies(terms["local"]), timeout=30,
             message="a remote worker with the right key copies")

    # Impostors: a fake source with no orders would, once welcomed, make every copy an orphan.
    unknown_key = remote.start_worker("master", key="stranger", terminal="fake", login=1001, machine="x")
    code, output = _exits(remote.copier, unknown_key)
    assert code == 2, output
    wrong_name = remote.start_worker("master", key="alpha", terminal="fake", login=1001, machine="y")
    code, output = _exits(remote.copier, wrong_name)
    assert code == 2, output
    time.sleep(1.5)  # several orphan checks (0.3 s apart) on the targets
    assert first in copies(terms["alpha"]) and first in copies(terms["local"])
    coordinator_log = log_text(remote.dir)
    assert "alpha" in coordinator_log and "master" in coordinator_log

    # The link cut for longer than worker_timeout, then restored.
    machine = remote.machines["alpha"]
    machine.cut()
    second = place_pending(terms["master"], SELL_STOP)
    wait_for(lambda: second in copies(terms["local"]), timeout=15)
    time.sleep(WORKER_TIMEOUT + 2)
    assert second not in copies(terms["alpha"])
    machine.restore()
    wait_for(lambda: second in copies(terms["alpha"]), timeout=30, message="copying resumes after the cut")
    assert _alive(alpha) and _alive(master) and _alive(coordinator)
    assert set(copies(terms["alpha"])) == {first, second}  # copies() fails on two copies of one order

    # Reload: add beta (remote), change alpha's multiplier; then remove beta.
    local_pid = wait_for(lambda: remote.status("local").get("worker_pid"), timeout=10)
    remote.write([("alpha", 2001, True, "lot_multiplier = 2.0"), ("local", 3001, False, ""),
                  ("beta", 4001, True, "")])
    code, output = remote.reload()
    assert code == 0, output
    beta = remote.start_worker("beta", login=4001)
    wait_for(lambda: {first, second} <= set(copies(terms["beta"])), timeout=30, message="an added target copies")
    third = place_pending(terms["master"], BUY_LIMIT, volume=0.1, distance_points=700)
    wait_for(lambda: third in copies(terms["alpha"]), timeout=15)
    assert copies(terms["alpha"])[third].volume_initial == pytest.approx(0.2)
    assert remote.status("local")["worker_pid"] == local_pid  # untouched: same process
    assert _alive(master) and _alive(alpha)

    remote.write([("alpha", 2001, True, "lot_multiplier = 2.0"), ("local", 3001, False, "")])
    code, output = remote.reload()
    assert code == 0, output
    code, output = _exits(remote.copier, beta)
    assert code == 0, output
    assert {first, second, third} <= set(copies(terms["beta"]))  # its copies are left as they are
    assert remote.status("local")["worker_pid"] == local_pid
    code, _ = remote.copier.stop(coordinator)
    assert code == 0


def test_remote_workers_outlive_their_coordinator(remote: Remote) -> None:
    terms = _terminals(remote.dir, ("master", 1001), ("alpha", 2001))
    remote.write([("alpha", 2001, True, "")])
    master = remote.start_worker("master", login=1001)
    alpha = remote.start_worker("alpha", login=2001)
    time.sleep(2.0)
    assert _alive(master) and _alive(alpha), "a worker started before its coordinator waits for it"
    coordinator = remote.start_coordinator()
    first = place_pending(terms["master"], BUY_LIMIT)
    wait_for(lambda: first in copies(terms["alpha"]), timeout=30, message="workers connect when it appears")

    code, _ = remote.copier.stop(coordinator)
    assert code == 0
    second = place_pending(terms["master"], SELL_STOP)
    time.sleep(WORKER_TIMEOUT + 1.5)
    assert _alive(master) and _alive(alpha), "remote workers stay up while their coordinator is gone"
    assert second not in copies(terms["alpha"])

    coordinator = remote.start_coordinator()
    wait_for(lambda: second in copies(terms["alpha"]), timeout=30, message="they reconnect to the new one")
    assert set(copies(terms["alpha"])) == {first, second}
    remote.copier.stop(coordinator)
    for worker in (master, alpha):
        code, output = remote.copier.stop(worker)
        assert code == 0, output


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-n", "0", "-v"]))
