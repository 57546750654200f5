"""A real worker process against a scripted coordinator socket: accounts that change under it, links cut
before the welcome, garbage that must not pass for a live coordinator."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

import mt5sim
from protocol import (
    Command,
    CommandBatch,
    CommandKind,
    CommandResults,
    CommandStatus,
    Heartbeat,
    Hello,
    Snapshot,
    Welcome,
    decode,
    encode,
)
from protocol.tags import copy_tag
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, copies, create, place_pending

pytestmark = pytest.mark.e2e

CONFIG = """
[coordinator]
bind = "tcp://127.0.0.1:{port}"
state_dir = "state"
heartbeat_interval = 0.2
worker_timeout = 3

[source]
name = "master"
backend = "sim"
path = "terminals/master"
login = 1001
server = "Sim-Server"

[[targets]]
name = "alpha"
backend = "sim"
path = "terminals/alpha"
login = 2001
server = "Sim-Server"
remote = true
"""


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def alpha(copier, unused_tcp_port):
    root = copier.directory / "terminals"
    create(root / "master", 1001)
    terminal = create(root / "alpha", 2001)
    copier.write_config(CONFIG.format(port=unused_tcp_port))
    return terminal


class FakeCoordinator:
    """A bare ROUTER on the coordinator's port, playing the coordinator's part by hand."""

    def __init__(self, context: zmq.Context, port: int) -> None:
        self.socket = context.socket(zmq.ROUTER)
        self.socket.linger = 0
        # A socket closed a moment ago on this port may still hold it: libzmq closes in its I/O thread.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self.socket.bind(f"tcp://127.0.0.1:{port}")
                return
            except zmq.ZMQError as e:
                if e.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def receive(self, kind: type, timeout: float = 15.0, where=lambda message: True):
        """(routing id, message) of the next message of ``kind`` that satisfies ``where``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.socket.poll(100):
                frames = self.socket.recv_multipart()
                message = decode(frames[1:])
                if isinstance(message, kind) and where(message):
                    return frames[0], message
        raise AssertionError(f"no {kind.__name__} within {timeout}s")

    def send(self, routing_id: bytes, message) -> None:
        self.socket.send_multipart([routing_id, *encode(message)])

    def welcome(self, routing_id: bytes, worker_timeout: float = 5.0) -> None:
        self.send(routing_id, Welcome(coordinator_version="test", protocol_minor=1, heartbeat_interval=0.2,
                                      worker_timeout=worker_timeout))


def place(source_ticket: int, command_id: str) -> CommandBatch:
    return CommandBatch(batch_id=command_id, commands=(Command(
        command_id=command_id, kind=CommandKind.PLACE, source_ticket=source_ticket, symbol="EURUSD",
        order_type=BUY_LIMIT, volume=0.1, price=1.08, magic=source_ticket, comment=copy_tag(source_ticket)),))


def start_worker(copier):
    return copier.start("worker", "--config", str(copier.config_path), "--terminal", "alpha")


def test_an_account_switch_is_reported_at_once_and_refuses_trades_until_it_is_back(
        copier, context, unused_tcp_port, alpha):
    coordinator = FakeCoordinator(context, unused_tcp_port)
    worker = start_worker(copier)
    routing_id, hello = coordinator.receive(Hello)
    assert (hello.account.login, hello.account.server) == (2001, "Sim-Server")
    coordinator.welcome(routing_id)
    _, snapshot = coordinator.receive(Snapshot)
    assert (snapshot.login, snapshot.server) == (2001, "Sim-Server")

    path = copier.directory / "terminals" / "alpha"
    switched_at = time.monotonic()
    mt5sim.set_account(path, login=2099, server="Other-Server")
    _, snapshot = coordinator.receive(Snapshot, where=lambda s: s.login != 2001)
    assert time.monotonic() - switched_at < 1.5, "the account was not re-read within a second"
    assert (snapshot.login, snapshot.server) == (2099, "Other-Server")

    coordinator.send(routing_id, place(501, "c1"))
    _, results = coordinator.receive(CommandResults)
    result = results.results[0]
    assert result.status is CommandStatus.REJECTED
    assert "2099@Other-Server" in result.comment and "configured 2001@Sim-Server" in result.comment
    assert copies(alpha) == {}  # nothing reached order_send
    coordinator.receive(Heartbeat)
    assert worker.poll() is None, "a wrong account made the worker exit"

    mt5sim.set_account(path, login=2001, server="Sim-Server")
    _, snapshot = coordinator.receive(Snapshot, where=lambda s: s.login == 2001)
    assert snapshot.server == "Sim-Server"
    coordinator.send(routing_id, place(501, "c2"))
    _, results = coordinator.receive(CommandResults)
    assert results.results[0].status is CommandStatus.DONE
    assert list(copies(alpha)) == [501]
    code, output = copier.stop(worker)
    assert code == 0, output
    assert "logged into account 2099@Other-Server, configured 2001@Sim-Server" in output
    assert "logged into the configured account 2001@Sim-Server again" in output


def test_a_link_cut_before_the_welcome_is_reopened_and_finds_the_real_coordinator(
        copier, context, unused_tcp_port, alpha):
    # A socket of the wrong type on the port at start-up: libzmq drops the worker's connection for good.
    squatter = context.socket(zmq.PUB)
    squatter.linger = 0
    squatter.bind(f"tcp://127.0.0.1:{unused_tcp_port}")
    monitor = squatter.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                          | zmq.EVENT_DISCONNECTED)
    worker = start_worker(copier)
    # Wait for the worker to really reach the squatter (a loaded machine starts it slowly), then until it stops
    # trying: when the squatter drops the connection before the worker has read its greeting, the worker sees a
    # plain disconnect and libzmq connects again (it gives up only on the wrong socket type it has read). A
    # second of quiet on the squatter's side means the worker's socket is cut off for good.
    assert monitor.poll(30_000), "the worker never connected to the squatter"
    deadline = time.monotonic() + 30
    while monitor.poll(1000):
        recv_monitor_message(monitor)
        assert time.monotonic() < deadline, "the worker kept connecting to the squatter"
    squatter.disable_monitor()
    monitor.close()
    squatter.close()
    coordinator = FakeCoordinator(context, unused_tcp_port)
    coordinator.receive(Hello, timeout=20)
    code, output = copier.stop(worker)
    assert code == 0, output
    waiting = re.compile(rf"alpha: waiting for the coordinator at tcp://127\.0\.0\.1:{unused_tcp_port} for \d+s: ")
    lines = [line for line in output.splitlines() if waiting.search(line)]
    assert lines and "WARNING" in lines[0], output


def test_an_oversized_frame_before_the_welcome_does_not_cut_the_worker_off_for_good(
        copier, context, unused_tcp_port, alpha):
    coordinator = FakeCoordinator(context, unused_tcp_port)
    worker = start_worker(copier)
    first_id, _ = coordinator.receive(Hello)
    coordinator.socket.send_multipart([first_id, b"MTC1", b"welcome", b"x" * (5 * 1024 * 1024)])
    second_id, _ = coordinator.receive(Hello, timeout=20, where=lambda hello: True)
    while second_id == first_id:  # hellos already on their way over the old connection
        second_id, _ = coordinator.receive(Hello, timeout=20)
    coordinator.welcome(second_id)
    coordinator.receive(Snapshot)
    code, output = copier.stop(worker)
    assert code == 0, output


def test_garbage_does_not_pass_for_a_live_coordinator_and_is_logged_sparingly(
        copier, context, unused_tcp_port, alpha):
    coordinator = FakeCoordinator(context, unused_tcp_port)
    worker = start_worker(copier)
    routing_id, _ = coordinator.receive(Hello)
    coordinator.welcome(routing_id, worker_timeout=1.0)
    coordinator.receive(Snapshot)
    silent_since = time.monotonic()
    hello_again = None
    while time.monotonic() - silent_since < 10 and hello_again is None:
        for _ in range(50):  # only garbage from now on
            coordinator.socket.send_multipart([routing_id, b"junk"])
        while coordinator.socket.poll(50):
            frames = coordinator.socket.recv_multipart()
            if frames[0] != routing_id and isinstance(decode(frames[1:]), Hello):
                hello_again = time.monotonic()
    # Garbage is no proof of life: after worker_timeout the worker reopens its link and says hello again, on a
    # new connection. It does not exit: started by hand, it waits for its coordinator as long as it takes.
    assert hello_again is not None, "garbage kept the worker believing its coordinator was alive"
    assert 1.0 < hello_again - silent_since < 6
    assert worker.poll() is None
    code, output = copier.stop(worker)
    assert code == 0, output
    assert "alpha: no word from the coordinator for" in output
    assert output.count("dropped a malformed message") == 1, output


def test_a_second_worker_for_a_terminal_from_another_machine_is_refused_and_exits_2(
        copier, unused_tcp_port, alpha):
    master = mt5sim.Terminal(copier.directory / "terminals" / "master")
    scheduler = copier.start_scheduler()
    first = start_worker(copier)
    ticket = place_pending(master, BUY_LIMIT)
    wait_for(lambda: ticket in copies(alpha), message="not copied through the first worker")
    # The same terminal started on a second machine: its own state folder, so no shared lock file.
    other_machine = copier.directory / "other-machine.toml"
    other_machine.write_text(copier.config_path.read_text().replace('state_dir = "state"',
                                                                    'state_dir = "state-other-machine"'))
    second = copier.start("worker", "--config", str(other_machine), "--terminal", "alpha")
    try:
        code = second.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the second worker was not refused") from None
    _, second_output = copier.stop(second)
    assert code == 2, second_output
    refusal = f"terminal alpha already has a worker attached: pid {first.pid} on "
    assert "CRITICAL" in second_output and refusal in second_output and f"pid {second.pid} on" in second_output
    assert first.poll() is None, "the attached worker was disturbed"
    again = place_pending(master, BUY_LIMIT, distance_points=700)
    wait_for(lambda: again in copies(alpha), message="the attached worker stopped copying")
    code, output = copier.stop(scheduler)
    assert code == 0, output
    assert refusal in output  # the coordinator's side
    _, first_output = copier.stop(first)
    assert refusal in first_output  # and the attached worker's
