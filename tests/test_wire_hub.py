"""The hub decides who speaks for a terminal: one live worker per terminal name, bound by its hello."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import zmq
from loguru import logger

from coordinator.runtime.hub import Hub
from protocol import (
    AccountFacts,
    ErrorMessage,
    Goodbye,
    Heartbeat,
    Hello,
    Message,
    Shutdown,
    TerminalFacts,
    Welcome,
    decode,
    encode,
)
from protocol.codec import ProtocolError
from protocol.malformed_log import MAX_TRACKED_PEERS, MalformedMessageLog
from protocol.transport import connect_dealer


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def hub():
    hub = Hub("tcp://127.0.0.1:*", worker_timeout=5.0)
    yield hub
    hub.close()


@pytest.fixture
def log():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(f"{message.record['level'].name} {message.record['message']}"),
                      level="DEBUG")
    yield lines
    logger.remove(sink)


def hello(terminal: str = "alpha", boot: str = "boot-a", pid: int = 101, host: str = "vm-1") -> Hello:
    return Hello(terminal=terminal, role="target", boot_id=boot, protocol_minor=1, worker_version="x", backend="sim",
                 pid=pid, host=host, account=AccountFacts(login=2001, server="S"),
                 terminal_facts=TerminalFacts(connected=True, trade_allowed=True))


def send(socket: zmq.Socket, message: Message) -> None:
    socket.send_multipart(encode(message))


def receive(socket: zmq.Socket, kind: type, timeout: float = 5.0, hub: Hub | None = None):
    """The next message of ``kind`` on a worker's socket (others skipped); the hub is pumped meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub is not None:
            hub.poll(10)
        if socket.poll(10):
            message = decode(socket.recv_multipart())
            if isinstance(message, kind):
                return message
    raise AssertionError(f"no {kind.__name__} within {timeout}s")


def pump(hub: Hub, until: Callable[[list[tuple[str, Message]]], bool], timeout: float = 5.0):
    received: list[tuple[str, Message]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received.extend(hub.poll(20))
        if until(received):
            return received
    raise AssertionError(f"the hub did not get there within {timeout}s; it received {received}")


def attach(hub: Hub, socket: zmq.Socket, message: Hello) -> None:
    send(socket, message)
    pump(hub, lambda got: (message.terminal, message) in got)
    assert hub.send(message.terminal, Welcome(coordinator_version="t", protocol_minor=1, heartbeat_interval=1.0,
                                              worker_timeout=5.0))
    receive(socket, Welcome)


def test_a_second_worker_for_an_attached_terminal_is_refused_and_both_sides_are_told(hub, context, log):
    first, second = connect_dealer(context, hub.endpoint), connect_dealer(context, hub.endpoint)
    attach(hub, first, hello(boot="boot-a", pid=101, host="vm-1"))

    send(second, hello(boot="boot-b", pid=202, host="vm-2"))
    refusal = receive(second, ErrorMessage, hub=hub)
    assert refusal.code == "duplicate-worker" and refusal.fatal
    assert "terminal alpha already has a worker attached: pid 101 on vm-1" in refusal.message
    assert "pid 202 on vm-2" in refusal.message
    told = receive(first, ErrorMessage, hub=hub)
    assert told.code == "duplicate-worker-refused" and not told.fatal and "pid 202 on vm-2" in told.message
    assert any(line.startswith("ERROR terminal alpha already has a worker attached") for line in log)

    # The attached worker keeps its terminal; the refused one is still nobody.
    assert hub.send("alpha", Shutdown(reason="to the first"))
    assert receive(first, Shutdown).reason == "to the first"
    send(second, Heartbeat(sent_at_ms=1))
    assert receive(second, ErrorMessage, hub=hub).code == "hello-required"


def test_a_restarted_worker_takes_over_at_once_when_its_predecessor_is_gone(hub, context, log):
    monitor = hub._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        first = connect_dealer(context, hub.endpoint)
        attach(hub, first, hello(boot="boot-a"))
        first.close()
        assert monitor.poll(5000), "the hub never saw the first worker's connection close"
        successor = connect_dealer(context, hub.endpoint)
        restarted = hello(boot="boot-b", pid=303)
        send(successor, restarted)
        pump(hub, lambda got: ("alpha", restarted) in got)
        assert hub.send("alpha", Shutdown(reason="to the successor"))
        assert receive(successor, Shutdown).reason == "to the successor"
        assert any("takes over from pid 101" in line and "its connection is closed" in line for line in log)
    finally:
        hub._socket.disable_monitor()
        monitor.close(linger=0)


def test_a_worker_silent_past_worker_timeout_is_replaced_and_refused_when_it_speaks_again(context, log):
    hub = Hub("tcp://127.0.0.1:*", worker_timeout=0.5)
    try:
        hung = connect_dealer(context, hub.endpoint)
        attach(hub, hung, hello(boot="boot-a"))
        time.sleep(0.7)  # the attached worker says nothing for longer than worker_timeout: hung
        replacement = connect_dealer(context, hub.endpoint)
        attach(hub, replacement, hello(boot="boot-b", pid=202))
        assert any("silent for" in line for line in log)

        send(hung, Heartbeat(sent_at_ms=1))  # it wakes up: its connection speaks for nobody now
        assert receive(hung, ErrorMessage, hub=hub).code == "hello-required"
        send(hung, hello(boot="boot-a"))
        refusal = receive(hung, ErrorMessage, hub=hub)
        assert refusal.code == "duplicate-worker" and refusal.fatal and "pid 202" in refusal.message
    finally:
        hub.close()


def test_the_same_worker_on_a_fresh_socket_moves_over_at_once(hub, context):
    old_socket = connect_dealer(context, hub.endpoint)
    attach(hub, old_socket, hello(boot="boot-a"))
    new_socket = connect_dealer(context, hub.endpoint)  # the old one is still open: same boot id decides
    attach(hub, new_socket, hello(boot="boot-a"))
    assert hub.send("alpha", Shutdown(reason="to the new socket"))
    assert receive(new_socket, Shutdown).reason == "to the new socket"


def test_a_worker_that_says_goodbye_frees_its_terminal_at_once(hub, context):
    leaving = connect_dealer(context, hub.endpoint)
    attach(hub, leaving, hello(boot="boot-a"))
    send(leaving, Goodbye(reason="stopping"))
    pump(hub, lambda got: ("alpha", Goodbye(reason="stopping")) in got)
    successor = connect_dealer(context, hub.endpoint)
    attach(hub, successor, hello(boot="boot-b", pid=202))


def test_messages_before_hello_are_answered_and_terminal_errors_are_forwarded_by_name(hub, context):
    worker = connect_dealer(context, hub.endpoint)
    send(worker, Heartbeat(sent_at_ms=1))
    assert receive(worker, ErrorMessage, hub=hub).code == "hello-required"
    assert not hub.send("alpha", Shutdown(reason="nobody there"))

    # A worker that cannot reach its terminal says so before it can say hello; the engine needs it by name.
    failure = ErrorMessage(code="terminal-not_found", message="terminal not found: C:/MT5/terminal64.exe",
                           terminal="alpha", boot_id="boot-a")
    send(worker, failure)
    pump(hub, lambda got: ("alpha", failure) in got)
    assert hub.send("alpha", Shutdown(reason="unknown terminal"))
    assert receive(worker, Shutdown).reason == "unknown terminal"


def test_one_connection_cannot_speak_for_two_terminals(hub, context):
    worker = connect_dealer(context, hub.endpoint)
    attach(hub, worker, hello("alpha"))
    send(worker, hello("beta"))
    refusal = receive(worker, ErrorMessage, hub=hub)
    assert refusal.code == "identity-mismatch" and refusal.fatal
    assert not hub.send("beta", Shutdown(reason="nobody"))


def test_a_flood_of_malformed_frames_is_logged_once_per_peer_and_reason(hub, context, log):
    worker = connect_dealer(context, hub.endpoint)
    attach(hub, worker, hello())
    stranger = context.socket(zmq.DEALER)
    stranger.linger = 0
    stranger.connect(hub.endpoint)
    # Each queue holds 1000 frames until its connection drains it (and the stranger's is still being made):
    # a send waits for room rather than fail; the hub reads without limit, so room always comes.
    for socket in (worker, stranger):
        socket.sndtimeo = 5000
    for index in range(1500):
        worker.send_multipart([b"junk"] if index % 2 else [b"MTC1", b"teleport", b"\x80"])
        stranger.send_multipart([b"junk"])
    pump(hub, lambda _: hub.dropped == 3000)
    # The first drop per peer and reason is news (a summary line may follow if the flood outlasts an interval).
    malformed = [line for line in log if "dropped a malformed message" in line]
    assert len(malformed) == 3, malformed  # worker: two reasons; the stranger: one
    assert len([line for line in log if "malformed" in line]) <= 3 + 2 * 2
    assert sum("worker 'alpha'" in line for line in malformed) == 2
    assert sum("an unidentified connection" in line for line in malformed) == 1


def test_the_malformed_log_sums_up_each_interval_and_stays_bounded(log):
    now = [0.0]
    drops = MalformedMessageLog(interval=10.0, clock=lambda: now[0])
    bad = ProtocolError("bad-tag", "unknown protocol tag b'junk'")
    for _ in range(500):
        drops.dropped("worker 'alpha'", bad)
    assert len(log) == 1 and log[0].startswith("ERROR dropped a malformed message from worker 'alpha'")
    now[0] = 10.5
    drops.flush()
    assert log[-1] == ("ERROR dropped 499 more malformed messages from worker 'alpha' (bad-tag) in the last 10s; "
                       "the last: bad-tag: unknown protocol tag b'junk'")
    now[0] = 21.0
    drops.flush()  # a quiet interval: nothing to say, and the next drop is news again
    assert len(log) == 2
    drops.dropped("worker 'alpha'", bad)
    assert len(log) == 3

    for peer in range(MAX_TRACKED_PEERS * 3):  # a new connection per frame
        drops.dropped(f"connection {peer}", bad)
    assert len(log) == 3 + MAX_TRACKED_PEERS - 1
    now[0] = 40.0
    drops.flush()
    assert log[-1].startswith(f"ERROR dropped {MAX_TRACKED_PEERS * 2 + 1} malformed messages from "
                              f"{MAX_TRACKED_PEERS * 2 + 1} more peers")
