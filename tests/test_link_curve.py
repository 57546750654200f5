"""Links over CurveZMQ: only the configured keys get in, each speaks only as its own terminal, and the hub
will not serve unless it has proved that an unknown key is refused. Real sockets on loopback."""

from __future__ import annotations

import time

import pytest
import zmq
from loguru import logger
from zmq.utils.monitor import recv_monitor_message

from coordinator.runtime import link_auth
from coordinator.runtime.hub import Hub
from coordinator.runtime.link_auth import probe_endpoint
from protocol import ErrorMessage, Heartbeat, Shutdown, Welcome
from protocol.curve import CurveClient, CurveKeyPair
from protocol.transport import connect_dealer
from tests.test_wire_hub import hello, pump, receive, send


def key_pair() -> CurveKeyPair:
    public, secret = zmq.curve_keypair()
    return CurveKeyPair(public=public, secret=secret)


COORDINATOR, ALPHA, BETA, STRANGER = key_pair(), key_pair(), key_pair(), key_pair()
ALLOWED = {ALPHA.public: "alpha", BETA.public: "beta"}


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def log():
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(f"{message.record['level'].name} {message.record['message']}"),
                      level="DEBUG")
    yield lines
    logger.remove(sink)


@pytest.fixture
def hub(log):
    hub = Hub("tcp://127.0.0.1:*", worker_timeout=5.0, curve=COORDINATOR, allowed_keys=ALLOWED)
    yield hub
    hub.close()


def dealer(context: zmq.Context, hub: Hub, keys: CurveKeyPair | None) -> zmq.Socket:
    curve = None if keys is None else CurveClient(keys=keys, server_public=COORDINATOR.public)
    return connect_dealer(context, hub.endpoint, curve)


def watched_dealer(context: zmq.Context, hub: Hub, keys: CurveKeyPair | None) -> tuple[zmq.Socket, zmq.Socket]:
    """A client and its monitor, attached before it connects so that no handshake event is missed."""
    curve = None if keys is None else CurveClient(keys=keys, server_public=COORDINATOR.public)
    monitors: list[zmq.Socket] = []
    socket = connect_dealer(context, hub.endpoint, curve,
                            before_connect=lambda socket: monitors.append(socket.get_monitor_socket()))
    return socket, monitors[0]


def handshake_event(monitor: zmq.Socket, hub: Hub, timeout: float = 2.0) -> int:
    """The first handshake outcome a client's monitor reports, the hub pumped meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert hub.poll(10) == []
        while monitor.poll(0):
            event = recv_monitor_message(monitor)["event"]
            if event in (zmq.EVENT_HANDSHAKE_SUCCEEDED, zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                         zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                return event
    raise AssertionError(f"no handshake outcome within {timeout}s")


def nothing_arrives(hub: Hub, seconds: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert hub.poll(20) == []


def welcome() -> Welcome:
    return Welcome(coordinator_version="t", protocol_minor=1, heartbeat_interval=1.0, worker_timeout=5.0)


def test_the_hub_proves_at_start_up_that_an_unknown_key_is_refused(hub, log):
    assert hub.authenticated
    assert any(line.startswith("INFO link authentication checked: a client with an unknown key is refused on tcp://")
               for line in log)
    assert not any(line.startswith(("WARNING", "ERROR")) for line in log), "the probe's refusal is expected"


def test_a_worker_with_its_own_key_is_welcomed_and_routed(hub, context):
    worker = dealer(context, hub, ALPHA)
    greeting = hello("alpha")
    send(worker, greeting)
    pump(hub, lambda got: ("alpha", greeting) in got)

    assert hub.send("alpha", welcome())
    receive(worker, Welcome)
    send(worker, Heartbeat(sent_at_ms=7))
    pump(hub, lambda got: ("alpha", Heartbeat(sent_at_ms=7)) in got)


def test_an_unknown_key_never_reaches_the_hub_and_is_logged(hub, context, log):
    stranger, monitor = watched_dealer(context, hub, STRANGER)
    try:
        send(stranger, hello("alpha"))
        event = handshake_event(monitor, hub)
        nothing_arrives(hub)
    finally:
        stranger.disable_monitor()
        monitor.close()

    assert event == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    refusals = [line for line in log if line.startswith("WARNING refused a link from 127.0.0.1")]
    assert refusals == [f"WARNING refused a link from 127.0.0.1: its public key {STRANGER.public.decode()} is not "
                        "the public_key_file of any terminal in the config (a worker started with the wrong key, or a "
                        "stranger)"]


def test_a_plain_client_gets_nothing_through(hub, context):
    plain, monitor = watched_dealer(context, hub, None)
    try:
        send(plain, hello("alpha"))
        event = handshake_event(monitor, hub)
        nothing_arrives(hub)
    finally:
        plain.disable_monitor()
        monitor.close()

    # No CURVE on its side: the mechanisms differ (libzmq reports it as a protocol error, or with no detail).
    assert event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def test_a_valid_key_claiming_another_terminal_is_refused_and_changes_nothing(hub, context, log):
    alpha = dealer(context, hub, ALPHA)
    send(alpha, hello("alpha", boot="boot-a", pid=101, host="vm-1"))
    pump(hub, lambda got: bool(got))
    assert hub.send("alpha", welcome())
    receive(alpha, Welcome)

    impostor = dealer(context, hub, BETA)
    send(impostor, hello("alpha", boot="boot-b", pid=202, host="vm-2"))
    refusal = receive(impostor, ErrorMessage, hub=hub)
    assert refusal.code == "identity-mismatch" and refusal.fatal
    assert refusal.message.startswith("refused a worker, pid 202 on vm-2 (boot boot-b): it claims terminal 'alpha', "
                                      "but its link authenticated with the key of terminal 'beta'")
    assert [line for line in log if line.startswith("ERROR")] == [f"ERROR {refusal.message}"]

    # Nothing changed: alpha's worker still speaks for alpha, the impostor for nobody, and nothing of it was routed.
    assert hub.send("alpha", Shutdown(reason="to alpha"))
    assert receive(alpha, Shutdown).reason == "to alpha"
    send(impostor, Heartbeat(sent_at_ms=1))
    assert receive(impostor, ErrorMessage, hub=hub).code == "hello-required"
    assert not hub.send("beta", Shutdown(reason="nobody said hello as beta"))

    # Claiming a terminal nobody holds is no better; repeated refusals are logged once per interval.
    send(impostor, hello("gamma", boot="boot-b", pid=202, host="vm-2"))
    assert receive(impostor, ErrorMessage, hub=hub).code == "identity-mismatch"
    nothing_arrives(hub, 0.1)
    assert not hub.send("gamma", Shutdown(reason="no one"))
    assert len([line for line in log if line.startswith("ERROR")]) == 1


def test_a_key_removed_at_a_reload_stops_working_on_its_open_link(hub, context, log):
    alpha = dealer(context, hub, ALPHA)
    send(alpha, hello("alpha"))
    pump(hub, lambda got: bool(got))

    hub.allow_keys({BETA.public: "beta"})
    send(alpha, Heartbeat(sent_at_ms=1))
    refusal = receive(alpha, ErrorMessage, hub=hub)

    assert refusal.code == "key-not-allowed" and refusal.fatal
    assert "no longer allowed to speak as terminal 'alpha'" in refusal.message
    nothing_arrives(hub, 0.1)
    assert not hub.send("alpha", Shutdown(reason="unbound"))
    assert any(line.startswith("ERROR this link's key") for line in log)


def test_a_key_added_at_a_reload_gets_in(hub, context):
    newcomer = key_pair()
    hub.allow_keys({**ALLOWED, newcomer.public: "gamma"})
    worker = dealer(context, hub, newcomer)
    greeting = hello("gamma")
    send(worker, greeting)
    pump(hub, lambda got: ("gamma", greeting) in got)


def test_the_hub_refuses_to_serve_when_no_handler_answers_for_its_keys(monkeypatch):
    # The handler bound elsewhere: libzmq finds none at the ZAP endpoint and lets every key in.
    monkeypatch.setattr(link_auth, "ZAP_ENDPOINT", "inproc://not-the-zap-endpoint")

    with pytest.raises(OSError, match="a client with an unknown CURVE key was accepted, so anyone could speak as any "
                                      "terminal"):
        Hub("tcp://127.0.0.1:*", curve=COORDINATOR, allowed_keys=ALLOWED)


def test_the_hub_refuses_to_serve_when_the_check_is_inconclusive(monkeypatch):
    monkeypatch.setattr(link_auth.ZapHandler, "serve", lambda self: None)  # requests never answered
    monkeypatch.setattr(link_auth, "SELF_CHECK_SECONDS", 0.3)

    with pytest.raises(OSError, match="could not prove that a client with an unknown CURVE key is refused"):
        Hub("tcp://127.0.0.1:*", curve=COORDINATOR, allowed_keys=ALLOWED)


def test_curve_on_all_interfaces_and_on_ipc(tmp_path, log):
    for endpoint in ("tcp://0.0.0.0:*", f"ipc://{tmp_path}/copier.sock"):
        hub = Hub(endpoint, curve=COORDINATOR, allowed_keys=ALLOWED)
        hub.close()
    assert len([line for line in log if line.startswith("INFO link authentication checked")]) == 2


@pytest.mark.parametrize(
    ("bound", "probed"),
    [
        ("tcp://0.0.0.0:5757", "tcp://127.0.0.1:5757"),
        ("tcp://[::]:5757", "tcp://[::1]:5757"),
        ("tcp://198.18.0.1:5757", "tcp://198.18.0.1:5757"),
        ("tcp://127.0.0.1:5757", "tcp://127.0.0.1:5757"),
        ("ipc:///tmp/copier.sock", "ipc:///tmp/copier.sock"),
    ],
)
def test_the_check_reaches_a_wildcard_bind_on_loopback(bound, probed):
    assert probe_endpoint(bound) == probed


def test_without_keys_the_hub_authenticates_nobody(context):
    hub = Hub("tcp://127.0.0.1:*")
    try:
        assert not hub.authenticated
        hub.allow_keys(ALLOWED)  # nothing to do: links are plain
        worker = connect_dealer(context, hub.endpoint)
        greeting = hello("alpha")
        send(worker, greeting)
        pump(hub, lambda got: ("alpha", greeting) in got)
    finally:
        hub.close()
