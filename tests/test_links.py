"""Worker links over real ZeroMQ sockets on loopback: hostile bytes, identity checks, clean shutdown."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from msgspec.structs import replace

from protocol import (
    PROTOCOL_TAG,
    AccountFacts,
    Command,
    CommandBatch,
    CommandKind,
    CommandResults,
    CommandStatus,
    ErrorMessage,
    Goodbye,
    Heartbeat,
    Hello,
    Shutdown,
    Snapshot,
    TerminalFacts,
    Welcome,
    decode,
    encode,
)
from protocol.messages import SHUTDOWN_TERMINAL_REMOVED
from protocol.tags import copy_tag
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, copies, create, log_text, place_pending

pytestmark = pytest.mark.e2e

CONFIG = """
[coordinator]
bind = "tcp://127.0.0.1:{port}"
state_dir = "state"
hello_timeout = 15
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
{alpha_extra}
"""


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def receive(socket: zmq.Socket, kind: type, timeout: float = 15.0, routed: bool = False):
    """The next message of ``kind`` (others are skipped), or fail."""
    return receive_routed(socket, kind, timeout)[1] if routed else _receive(socket, kind, timeout, False)[1]


def receive_routed(socket: zmq.Socket, kind: type, timeout: float = 15.0):
    """On a ROUTER: (routing id, message) of the next message of ``kind``."""
    return _receive(socket, kind, timeout, True)


def _receive(socket: zmq.Socket, kind: type, timeout: float, routed: bool):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if socket.poll(100):
            frames = socket.recv_multipart()
            message = decode(frames[1:] if routed else frames)
            if isinstance(message, kind):
                return (frames[0] if routed else None), message
    raise AssertionError(f"no {kind.__name__} within {timeout}s")


def test_source_worker_refuses_trades_and_survives_garbage(copier, context, unused_tcp_port):
    root = copier.directory / "terminals"
    master = create(root / "master", 1001)
    create(root / "alpha", 2001)
    ticket = place_pending(master, BUY_LIMIT)
    copier.write_config(CONFIG.format(port=unused_tcp_port, alpha_extra=""))
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    router.bind(f"tcp://127.0.0.1:{unused_tcp_port}")
    worker = copier.start("worker", "--config", str(copier.config_path), "--terminal", "master")

    routing_id, hello = receive_routed(router, Hello)
    assert (hello.terminal, hello.role, hello.account.login, hello.backend) == ("master", "source", 1001, "sim")
    send = lambda message: router.send_multipart([routing_id, *encode(message)])  # noqa: E731
    send(Welcome(coordinator_version="test", protocol_minor=0, heartbeat_interval=0.2, worker_timeout=5.0))
    snapshot = receive(router, Snapshot, routed=True)
    assert [order.ticket for order in snapshot.orders] == [ticket]
    assert (snapshot.login, snapshot.server) == (1001, "Sim-Server")

    # (A frame of another protocol major is no garbage: the worker exits 2 on it, see tests/test_worker_service.py.)
    for garbage in ([b"junk"], [PROTOCOL_TAG, b"commands", b"\xc1"],
                    [PROTOCOL_TAG, b"self_destruct", msgpack.packb({})]):
        router.send_multipart([routing_id, *garbage])
    send(CommandBatch(batch_id="b", commands=(Command(
        command_id="c1", kind=CommandKind.PLACE, source_ticket=5, symbol="EURUSD", order_type=BUY_LIMIT,
        volume=0.1, price=1.0, magic=5, comment=copy_tag(5)),)))
    results = receive(router, CommandResults, routed=True)
    assert results.results[0].status is CommandStatus.REFUSED
    assert len(master.orders_get()) == 1
    receive(router, Heartbeat, routed=True)  # still alive and talking

    # Started by hand, it outlives a coordinator that stops; a terminal removed from the config ends it.
    send(Shutdown(reason="test over", code=SHUTDOWN_TERMINAL_REMOVED))
    receive(router, Goodbye, routed=True)
    assert worker.wait(10) == 0


def test_coordinator_drops_hostile_messages_and_welcomes_a_wrong_account_without_trusting_it(
        copier, context, unused_tcp_port):
    root = copier.directory / "terminals"
    create(root / "master", 1001)
    create(root / "alpha", 2001)
    copier.write_config(CONFIG.format(port=unused_tcp_port, alpha_extra="remote = true"))
    coordinator = copier.start_scheduler()

    def dealer(routing_id: bytes = b"") -> zmq.Socket:
        socket = context.socket(zmq.DEALER)
        socket.linger = 0
        if routing_id:
            socket.setsockopt(zmq.ROUTING_ID, routing_id)
        socket.connect(f"tcp://127.0.0.1:{unused_tcp_port}")
        return socket

    impostor = dealer(b"alpha")  # a peer-chosen routing id names nothing: the hello does
    for garbage in ([b"junk"], [PROTOCOL_TAG, b"snapshot", b"\xc1"], [b"MTC2", b"hello", b"\x80"],
                    [PROTOCOL_TAG, b"teleport", msgpack.packb({})], [PROTOCOL_TAG, b"snapshot", msgpack.packb([1])]):
        impostor.send_multipart(garbage)
    impostor.send_multipart(encode(Heartbeat(sent_at_ms=1)))
    assert receive(impostor, ErrorMessage).code == "protocol-mismatch"  # the MTC2 frame: told, not routed
    assert receive(impostor, ErrorMessage).code == "hello-required"

    # A terminal on another account is welcomed (its worker keeps reporting, so the copier notices when the
    # right account is back); the engine freezes every decision on it meanwhile.
    hello = Hello(terminal="alpha", role="target", boot_id="fake", protocol_minor=0, worker_version="x",
                  backend="sim", pid=1, host="h", account=AccountFacts(login=9999, server="Sim-Server"),
                  terminal_facts=TerminalFacts(connected=True, trade_allowed=True))
    impostor.send_multipart(encode(hello))
    assert isinstance(receive(impostor, Welcome), Welcome)
    impostor.send_multipart(encode(Goodbye(reason="test")))  # leaving: the next worker for alpha is welcome
    impostor.close()

    honest = dealer()
    honest.send_multipart(encode(replace(_with_login(hello, 2001), boot_id="honest", pid=2)))
    assert isinstance(receive(honest, Welcome), Welcome)
    assert coordinator.poll() is None, "the coordinator died"
    # Stopped before its own worker had connected, it would wait seconds for that worker to exit.
    wait_for(lambda: "master (source) connected" in log_text(copier.directory), message="master never connected")
    code, output = copier.stop(coordinator)
    assert code == 0, output
    assert "dropped a malformed message" in output
    assert "logged into account 9999@Sim-Server" in output


def _with_login(hello: Hello, login: int) -> Hello:
    return replace(hello, account=AccountFacts(login=login, server=hello.account.server))


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads child processes from /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopping_the_coordinator_leaves_nothing_running(copier, unused_tcp_port, sig):
    root = copier.directory / "terminals"
    master = create(root / "master", 1001)
    alpha = create(root / "alpha", 2001)
    copier.write_config(CONFIG.format(port=unused_tcp_port, alpha_extra=""))
    ticket = place_pending(master, BUY_LIMIT)
    coordinator = copier.start_scheduler()
    wait_for(lambda: ticket in copies(alpha), message="copy not made")
    workers = _children(coordinator.pid)
    assert len(workers) == 2
    code, output = copier.stop(coordinator, sig)
    assert code == 0, output
    wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10, message="a worker outlived the coordinator")


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads child processes from /proc")
def test_workers_exit_when_their_coordinator_is_killed(copier, unused_tcp_port):
    root = copier.directory / "terminals"
    master = create(root / "master", 1001)
    alpha = create(root / "alpha", 2001)
    copier.write_config(CONFIG.format(port=unused_tcp_port, alpha_extra=""))
    ticket = place_pending(master, BUY_LIMIT)
    coordinator = copier.start_scheduler()
    wait_for(lambda: ticket in copies(alpha), message="copy not made")
    workers = _children(coordinator.pid)
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait(5)
    wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10, message="orphaned worker kept running")
