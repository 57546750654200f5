"""A worker on another machine is a service: it outlives its coordinator's restarts, says what it waits for,
answers a command sent again from memory, and exits only for a reason a person must act on (code 2: a
refused key, a hello that does not match the coordinator's entry, another protocol version) or when told its
terminal is gone. The hello and welcome of protocol 1.3 (a worker file's worker takes its role from the
welcome), and the coordinator's checks of a hello against its entry."""

from __future__ import annotations

import argparse
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from loguru import logger
from zmq.auth.thread import ThreadAuthenticator

import mt5sim
from config.exit_codes import ExitCode
from coordinator.runtime.hub import Hub
from protocol import (
    AccountFacts,
    Command,
    CommandKind,
    CommandResult,
    CommandStatus,
    ErrorMessage,
    Heartbeat,
    Hello,
    Shutdown,
    TerminalFacts,
    Welcome,
    decode,
    encode,
)
from protocol.curve import CurveClient, CurveKeyPair, create_key_pair, load_public_key_file
from protocol.messages import SHUTDOWN_COORDINATOR_STOPPING, SHUTDOWN_TERMINAL_REMOVED
from protocol.version import PROTOCOL_VERSION
from terminal_worker.link_watch import LinkWatch
from terminal_worker.plan import PlanError, plan_worker
from terminal_worker.worker import Worker
from tests.conftest import Copier, wait_for
from tests.enginekit import SOURCE, TARGET, EngineRig
from tests.simhelpers import BUY_LIMIT, SELL_STOP, copies, create, log_text, place_pending


class FakeAdapter:
    """A terminal that is always there, logged into 2001@Sim-Server, and counts what it executes."""

    connected = True
    login = 2001
    server = "Sim-Server"
    terminal_path = "fake"

    def __init__(self) -> None:
        self.executed: list[str] = []

    def execute(self, command: Command) -> CommandResult:
        self.executed.append(command.command_id)
        return CommandResult(command_id=command.command_id, status=CommandStatus.DONE, ticket=9000 + len(self.executed))

    def describe_wrong_account(self, login: int, server: str) -> str | None:
        return None

    def account_facts(self) -> AccountFacts:
        return AccountFacts(login=2001, server="Sim-Server")

    def terminal_facts(self) -> TerminalFacts:
        return TerminalFacts(connected=True, trade_allowed=True)

    def disconnect(self) -> None:
        pass


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """What the product logs at WARNING and above, as "LEVEL message" lines."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.rstrip("\n")), level="WARNING", format="{level} {message}")
    yield lines
    logger.remove(sink)


@pytest.fixture
def make_worker() -> Iterator[Any]:
    workers: list[Worker] = []

    def make(endpoint: str = "tcp://127.0.0.1:1", **options: Any) -> Worker:
        options = {"name": "alpha", "role": "target", "backend": "sim", **options}
        worker = Worker(adapter=FakeAdapter(), endpoint=endpoint, **options)  # type: ignore[arg-type]
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker._close_socket()
        worker._context.destroy(linger=0)


def place(command_id: str) -> Command:
    return Command(command_id=command_id, kind=CommandKind.PLACE, source_ticket=5, symbol="EURUSD", order_type=2,
                   volume=0.1, price=1.0, magic=5, comment="mtc#5")


def welcome(role: str = "target") -> Welcome:
    return Welcome(coordinator_version="test", protocol_minor=3, heartbeat_interval=0.2, worker_timeout=1.0, role=role)


# ---------------------------------------------------------------------------------------------------
# The worker


def test_a_command_sent_again_after_a_reconnect_is_answered_from_memory_never_executed_twice(make_worker):
    worker = make_worker()
    worker._open_socket()
    first = worker._execute(place("c1"), arrived_ms=0)
    worker._open_socket()  # the link dropped and was opened again: a new socket, the same worker
    again = worker._execute(place("c1"), arrived_ms=0)

    assert first.status is CommandStatus.DONE and again == first
    assert worker.adapter.executed == ["c1"]
    assert worker._execute(place("c2"), arrived_ms=0).ticket == 9002


def test_a_worker_file_worker_trades_nothing_until_the_welcome_names_its_role(make_worker):
    worker = make_worker(role="", worker_file=True)
    sent: list[Any] = []
    worker._send = lambda message: sent.append(message) or True

    refused = worker._execute(place("c1"), arrived_ms=0)
    assert refused.status is CommandStatus.REFUSED and "does not know its role yet" in refused.comment
    worker._send_hello()
    worker._handle(welcome("target"))
    assert worker.role == "target"
    assert worker._execute(place("c2"), arrived_ms=0).status is CommandStatus.DONE
    assert worker.adapter.executed == ["c2"]
    worker._send_hello()  # it still says "" (the coordinator's config may have changed), and adopts each welcome
    worker._handle(welcome("source"))
    assert worker._execute(place("c3"), arrived_ms=0).comment == "a source worker never sends trade requests"

    hellos = [message for message in sent if isinstance(message, Hello)]
    assert [(hello.role, hello.worker_file, hello.configured_login, hello.configured_server) for hello in hellos] \
        == [("", True, 2001, "Sim-Server")] * 2


def test_a_worker_from_the_coordinators_config_keeps_its_role(make_worker):
    worker = make_worker(role="source")
    worker._handle(welcome(""))  # from a coordinator before 1.3
    assert worker.role == "source"


@pytest.mark.parametrize(("parent_pid", "code", "exits"), [
    (None, SHUTDOWN_COORDINATOR_STOPPING, False),
    (None, "", False),  # a coordinator before 1.3 stopping
    (None, SHUTDOWN_TERMINAL_REMOVED, True),
    (4242, SHUTDOWN_COORDINATOR_STOPPING, True),
    (4242, "", True),
    (4242, SHUTDOWN_TERMINAL_REMOVED, True),
])
def test_who_exits_on_a_shutdown(make_worker, parent_pid, code, exits):
    worker = make_worker(parent_pid=parent_pid)
    worker._handle(welcome())
    worker._handle(Shutdown(reason="coordinator stopping", code=code))
    assert worker.exit_code == (ExitCode.OK if exits else None)
    if not exits:
        assert not worker._welcomed  # it says hello until a coordinator is back


def test_a_worker_whose_coordinator_went_silent_reconnects_and_says_what_it_waits_for(make_worker, logged):
    worker = make_worker()
    worker._open_socket()
    worker._handle(welcome())  # worker_timeout 1 s
    start = time.monotonic()
    worker._last_heard = start - 1.5
    worker._check_coordinator(start)

    assert worker.exit_code is None and not worker._welcomed
    assert logged == ["WARNING alpha: no word from the coordinator for 1.5s; reconnecting (the terminal stays "
                      "attached)"]
    assert worker._link_watch is not None
    worker._link_watch.problem = "connection refused at tcp://127.0.0.1:1 (nothing listens there)"
    for seconds in (1.0, 4.9, 5.0, 20.0, 34.9, 35.0):
        worker._log_waiting(start + seconds)
    assert logged[1:] == [
        f"WARNING alpha: waiting for the coordinator at tcp://127.0.0.1:1 for {seconds}: connection refused at "
        "tcp://127.0.0.1:1 (nothing listens there); still trying" for seconds in ("5s", "35s")]
    worker._handle(welcome())
    worker._log_waiting(start + 100)
    assert len(logged) == 3  # welcomed: nothing to say


def test_a_frame_of_another_protocol_major_from_the_coordinator_ends_the_worker_with_code_2(make_worker, logged):
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        worker = make_worker(endpoint=f"tcp://127.0.0.1:{port}")
        worker._open_socket()
        worker._send(Heartbeat(sent_at_ms=1))
        assert router.poll(5000)
        routing_id = router.recv_multipart()[0]
        router.send_multipart([routing_id, b"MTC2", b"welcome", b"\x80"])
        deadline = time.monotonic() + 5
        while worker.exit_code is None and time.monotonic() < deadline:
            worker._service_socket()
    finally:
        context.destroy(linger=0)
    assert worker.exit_code == ExitCode.CONFIG_ERROR
    [line] = logged
    assert line.startswith(f"CRITICAL alpha: the coordinator at tcp://127.0.0.1:{port} speaks protocol 2.x and this "
                           f"worker (mt5-copier ")
    assert f"protocol {PROTOCOL_VERSION}: they cannot understand each other" in line


def test_a_key_the_coordinator_refuses_ends_the_worker_with_code_2_saying_what_to_do(make_worker, logged):
    context = zmq.Context()
    authenticator = ThreadAuthenticator(context)
    authenticator.start()

    class NobodyIsKnown:
        def callback(self, domain: str, key: bytes) -> bool:
            return False

    authenticator.configure_curve_callback(domain="*", credentials_provider=NobodyIsKnown())
    server_public, server_secret = zmq.curve_keypair()
    router = context.socket(zmq.ROUTER)
    router.curve_server = True
    router.curve_secretkey = server_secret
    router.curve_publickey = server_public
    port = router.bind_to_random_port("tcp://127.0.0.1")
    public, secret = zmq.curve_keypair()
    try:
        worker = make_worker(endpoint=f"tcp://127.0.0.1:{port}", curve=CurveClient(
            keys=CurveKeyPair(public=public, secret=secret), server_public=server_public))
        worker._open_socket()
        deadline = time.monotonic() + 5
        while worker.exit_code is None and time.monotonic() < deadline:
            worker._watch_link()
            time.sleep(0.02)
    finally:
        authenticator.stop()
        context.destroy(linger=0)
    assert worker.exit_code == ExitCode.CONFIG_ERROR
    [line] = logged
    assert line.startswith(f"CRITICAL alpha: the coordinator at tcp://127.0.0.1:{port} refused this worker's key: it "
                           "does not know this worker's public key. Add this worker's .key file")
    assert "as public_key_file of terminal alpha in the coordinator's config" in line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_link_watch_tells_refused_from_unreachable_from_a_handshake_that_fails():
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    clock = Clock()
    watch = LinkWatch(socket, "tcp://coordinator-host:5757", clock=clock)
    try:
        assert watch.problem == "no connection event seen yet"
        watch.note(zmq.EVENT_CLOSED, 12)  # an attempt whose start it did not see: nothing to say about it
        assert watch.problem == "no connection event seen yet"
        watch.note(zmq.EVENT_CONNECT_DELAYED, 115)
        watch.note(zmq.EVENT_CLOSED, 12)
        assert watch.problem.startswith("connection refused at tcp://coordinator-host:5757 (nothing listens there")
        watch.note(zmq.EVENT_CONNECT_DELAYED, 115)
        clock.now += 5
        watch.note(zmq.EVENT_CLOSED, 12)
        assert watch.problem.startswith("no answer from tcp://coordinator-host:5757 within 5s (host unreachable")
        watch.note(zmq.EVENT_CONNECTED, 12)
        watch.note(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        assert "disagree on encryption" in watch.problem
        watch.note(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, 32)
        assert "coordinator_key_file is not the coordinator's public key" in watch.problem
        watch.note(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 300)  # a temporary error of the authenticator
        assert not watch.key_refused
        watch.note(zmq.EVENT_HANDSHAKE_SUCCEEDED, 0)
        assert watch.problem == ""
        watch.note(zmq.EVENT_DISCONNECTED, 12)
        assert watch.problem == "the coordinator at tcp://coordinator-host:5757 closed the connection"
        watch.note(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)
        assert watch.key_refused
    finally:
        watch.close()
        context.destroy(linger=0)


# ---------------------------------------------------------------------------------------------------
# What a worker runs, from either kind of file


KEYED_CONFIG = """
[coordinator]
bind = "tcp://127.0.0.1:5757"
state_dir = "state"
secret_key_file = "keys/coordinator.key_secret"

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
public_key_file = "keys/alpha.key"
"""


def arguments(config: Path, terminal: str | None = None, connect: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(config=config, terminal=terminal, connect=connect)


def test_a_local_worker_of_a_keyed_coordinator_uses_the_pair_made_for_it_and_a_remote_one_needs_a_worker_file(
        tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    create_key_pair(keys, "coordinator")
    create_key_pair(keys, "alpha")
    config = tmp_path / "copier.toml"
    config.write_text(KEYED_CONFIG, encoding="utf-8")
    local = tmp_path / "state" / "keys" / "local"
    local.mkdir(parents=True)
    create_key_pair(local, "master")  # what the coordinator makes for its local workers

    plan = plan_worker(arguments(config, "master"))
    assert plan.curve is not None and (plan.role, plan.worker_file) == ("source", False)
    assert plan.curve.keys.public == load_public_key_file(local / "master.key")
    assert plan.curve.server_public == load_public_key_file(keys / "coordinator.key")
    with pytest.raises(PlanError, match="terminal alpha is remote and the coordinator's links are encrypted: its "
                                        "worker runs from a worker file"):
        plan_worker(arguments(config, "alpha"))
    with pytest.raises(PlanError, match=r"names every terminal \(master, alpha\): say which one"):
        plan_worker(arguments(config))

    worker_file = tmp_path / "vm" / "worker.toml"
    worker_file.parent.mkdir()
    worker_file.write_text("""
[link]
connect = "tcp://coordinator-host:5757"
secret_key_file = "../keys/alpha.key_secret"
coordinator_key_file = "../keys/coordinator.key"
[terminal]
name = "alpha"
backend = "sim"
path = "../terminals/alpha"
login = 2001
server = "Sim-Server"
""", encoding="utf-8")
    plan = plan_worker(arguments(worker_file, "alpha", connect="tcp://10.0.0.1:6000"))
    assert (plan.role, plan.worker_file, plan.endpoint) == ("", True, "tcp://10.0.0.1:6000")
    assert plan.curve is not None and plan.curve.keys.public == load_public_key_file(keys / "alpha.key")
    assert plan.state_dir == tmp_path / "vm" / "state"
    (keys / "alpha.key_secret").unlink()
    with pytest.raises(PlanError, match=r"alpha\.key_secret does not exist"):
        plan_worker(arguments(worker_file))


# ---------------------------------------------------------------------------------------------------
# The coordinator's side


def test_the_hub_answers_a_worker_of_another_protocol_major_naming_both_versions():
    hub = Hub("tcp://127.0.0.1:*")
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 0
    try:
        dealer.connect(hub.endpoint)
        dealer.send_multipart([b"MTC2", b"hello", b"\x80"])
        deadline = time.monotonic() + 5
        while not dealer.poll(0) and time.monotonic() < deadline:
            assert hub.poll(50) == []
        refusal = decode(dealer.recv_multipart())
    finally:
        context.destroy(linger=0)
        hub.close()
    assert isinstance(refusal, ErrorMessage) and refusal.code == "protocol-mismatch" and refusal.fatal
    assert refusal.message.startswith("a worker speaks protocol 2.x and this coordinator (mt5-copier ")
    assert f"protocol {PROTOCOL_VERSION}: they cannot understand each other" in refusal.message
    assert encode(refusal)[0] == b"MTC1"


def hello(name: str, role: str, **fields: Any) -> Hello:
    login = 1 if name == SOURCE else 2
    return Hello(terminal=name, role=role, boot_id="b1", protocol_minor=3, worker_version="x", backend="sim", pid=1,
                 host="vm", account=AccountFacts(login=login, server="S"),
                 terminal_facts=TerminalFacts(connected=True, trade_allowed=True), **fields)


def answer(rig: EngineRig, name: str) -> Any:
    [(to, message)] = [(to, message) for to, message in rig.sent if isinstance(message, Welcome | ErrorMessage)]
    assert to == name
    rig.sent.clear()
    return message


@pytest.mark.parametrize(("name", "fields"), [
    (TARGET, {"role": "target"}),
    (TARGET, {"role": "", "worker_file": True, "configured_login": 2, "configured_server": "S"}),
    (SOURCE, {"role": "", "worker_file": True}),
    (TARGET, {"role": "target", "configured_login": 0, "configured_server": ""}),  # an older worker: not checked
])
def test_a_hello_that_agrees_with_the_entry_is_welcomed_with_the_entrys_role(make_rig, name, fields):
    rig = make_rig()
    rig.engine.on_message(name, hello(name, **fields))
    welcomed = answer(rig, name)
    assert isinstance(welcomed, Welcome)
    assert welcomed.role == ("source" if name == SOURCE else "target")
    assert rig.engine.views[name].welcomed


@pytest.mark.parametrize(("fields", "says"), [
    ({"role": "source"}, "runs as source, the coordinator's config has it as target"),
    ({"role": ""}, "runs as no role, the coordinator's config has it as target"),  # "" only from a worker file
    ({"role": "target", "configured_login": 7, "configured_server": "S"},
     "is configured for account 7@S in its own config file, and the coordinator's config names 2@S for it"),
    ({"role": "", "worker_file": True, "configured_login": 2, "configured_server": "Other"},
     "is configured for account 2@Other in its own config file"),
])
def test_a_hello_that_disagrees_with_the_entry_is_refused_for_good_on_both_sides(make_rig, logged, fields, says):
    rig = make_rig()
    rig.engine.on_message(TARGET, hello(TARGET, **fields))
    refused = answer(rig, TARGET)
    assert isinstance(refused, ErrorMessage) and refused.code == "hello-mismatch" and refused.fatal
    assert refused.message.startswith(f"worker {TARGET} ") and says in refused.message
    assert not rig.engine.views[TARGET].welcomed
    assert [line for line in logged if line.startswith("ERROR")] == [f"ERROR {refused.message}: refusing it"]


def test_a_hello_under_another_terminals_name_stays_an_identity_mismatch(make_rig):
    rig = make_rig()
    rig.engine.on_message(TARGET, hello(SOURCE, "target"))
    refused = answer(rig, TARGET)
    assert isinstance(refused, ErrorMessage) and refused.code == "identity-mismatch" and refused.fatal


# ---------------------------------------------------------------------------------------------------
# Real processes: a worker from a worker.toml against a real coordinator


COORDINATOR_CONFIG = """
[coordinator]
bind = "tcp://127.0.0.1:{port}"
state_dir = "state"
interval = 1.0
hello_timeout = 20
heartbeat_interval = 0.2
worker_timeout = 1.0
command_timeout = 5

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
login = {alpha_login}
server = "Sim-Server"
remote = true
"""

WORKER_FILE = """
[link]
connect = "tcp://127.0.0.1:{port}"

[terminal]
name = "alpha"
backend = "sim"
path = "../terminals/alpha"
login = 2001
server = "Sim-Server"
poll_interval = 0.05
"""


@pytest.fixture
def remote_alpha(copier: Copier, unused_tcp_port: int) -> Any:
    """master (local) and alpha (remote, 2001) as sim terminals; ``setup(alpha_login)`` writes the coordinator's
    config (its entry for alpha says ``alpha_login``) and alpha's worker file on "its machine" (vm/), and returns
    the worker file's path."""
    root = copier.directory / "terminals"
    create(root / "master", 1001)
    create(root / "alpha", 2001)

    def setup(alpha_login: int = 2001) -> Path:
        copier.write_config(COORDINATOR_CONFIG.format(port=unused_tcp_port, alpha_login=alpha_login))
        (copier.directory / "vm").mkdir(exist_ok=True)
        path = copier.directory / "vm" / "worker.toml"
        path.write_text(WORKER_FILE.format(port=unused_tcp_port), encoding="utf-8")
        return path

    return setup


def target_history(terminal: mt5sim.Terminal) -> tuple:
    """Every order that left the target's pending list: a duplicate placed and then removed would be here."""
    return terminal.history_orders_get(0, int(time.time()) + 10 * 86400) or ()


@pytest.mark.e2e
def test_a_worker_file_worker_copies_and_outlives_its_coordinators_restart_placing_nothing_twice(
        copier, remote_alpha):
    worker_file = remote_alpha()
    master = mt5sim.Terminal(copier.directory / "terminals" / "master")
    alpha = mt5sim.Terminal(copier.directory / "terminals" / "alpha")
    first = place_pending(master, BUY_LIMIT)
    coordinator = copier.start_scheduler()
    worker = copier.start("worker", "--config", str(worker_file))
    wait_for(lambda: first in copies(alpha), message="not copied through the worker file's worker")

    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait(5)
    second = place_pending(master, SELL_STOP, symbol="GBPUSD")
    # Past the coordinator's worker_timeout: the worker says it noticed (rather than a sleep hoping it did).
    wait_for(lambda: "alpha: no word from the coordinator for" in log_text(copier.directory / "vm", "worker-alpha"),
             timeout=10, message="the worker did not notice its coordinator is gone")
    time.sleep(0.3)  # and does not exit after saying so
    assert worker.poll() is None, "the worker exited when its coordinator died"
    restarted = copier.start_scheduler()
    wait_for(lambda: second in copies(alpha), message="the restarted coordinator did not copy through the worker")
    assert set(copies(alpha)) == {first, second} and target_history(alpha) == ()  # nothing placed twice

    code, output = copier.stop(restarted)
    assert code == 0, output
    time.sleep(0.5)
    assert worker.poll() is None, "a coordinator that stops must not stop a worker on another machine"
    code, worker_output = copier.stop(worker)
    assert code == 0, worker_output
    assert "alpha: no word from the coordinator for" in worker_output
    assert worker_output.count("accepted alpha as target") == 2, worker_output
    assert (copier.directory / "vm" / "state" / "logs" / "worker-alpha.log").exists()  # beside its own file


@pytest.mark.e2e
def test_a_worker_file_whose_account_is_not_the_coordinators_entry_is_refused_on_both_sides_and_exits_2(
        copier, remote_alpha):
    worker_file = remote_alpha(alpha_login=2009)
    coordinator = copier.start_scheduler()
    worker = copier.start("worker", "--config", str(worker_file), "--terminal", "alpha")
    try:
        code = worker.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the mismatching worker was not refused") from None
    _, worker_output = copier.stop(worker)
    assert code == ExitCode.CONFIG_ERROR, worker_output
    mismatch = ("worker alpha is configured for account 2001@Sim-Server in its own config file, and the "
                "coordinator's config names 2009@Sim-Server for it")
    refusal = next(line for line in worker_output.splitlines() if mismatch in line)
    assert "CRITICAL" in refusal and "(hello-mismatch)" in refusal
    # (Stopped once its own worker is up: one still starting cannot be told to stop and is waited for.)
    wait_for(lambda: "master (source) connected" in log_text(copier.directory), message="master did not connect")
    code, output = copier.stop(coordinator)
    assert code == 0, output
    assert f"{mismatch}: make the two agree" in output and "refusing it" in output


@pytest.mark.e2e
def test_a_worker_file_and_terminal_that_disagree_is_a_configuration_error(copier, remote_alpha):
    worker_file = remote_alpha()
    run = copier.run("worker", "--config", str(worker_file), "--terminal", "beta", timeout=30)
    assert run.code == ExitCode.CONFIG_ERROR, run.output
    assert f"--terminal beta, but {worker_file} is the worker file of terminal alpha" in run.output
    run = copier.run("worker", "--config", str(copier.config_path), timeout=30)
    assert run.code == ExitCode.CONFIG_ERROR, run.output
    assert "is the coordinator's config, which names every terminal (master, alpha): say which one" in run.output
