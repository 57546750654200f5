"""End to end: the coordinator and its workers die at every awkward moment of a sync, and a restart still
ends with exactly one copy of every source order on every target and nothing else changed.

Crash points (``config/faults.py``) make a process ``os._exit(137)`` at a named place; ``MT5_COPIER_CRASH`` is
inherited by the workers a coordinator spawns, so each test picks a point that exists only in the process it
means to kill. Real ``kill -9`` is used where a moment rather than a place matters.

A lost or a corrupt state file is the state store's and the engine's business, tested in
tests/test_engine_restart.py with the same assertions (same test names).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import mt5sim
from tests.conftest import wait_for
from tests.simhelpers import (
    BUY_LIMIT,
    BUY_STOP,
    BUY_STOP_LIMIT,
    SELL_LIMIT,
    SELL_STOP,
    SELL_STOP_LIMIT,
    copies,
    create,
    log_text,
    place_pending,
)

pytestmark = pytest.mark.e2e

needs_proc = pytest.mark.skipif(not Path("/proc").exists(), reason="reads child processes from /proc")

CRASH = "MT5_COPIER_CRASH"

HEARTBEAT_INTERVAL = 0.2  # what workers report (prices, clocks, settled commands) arrives within this

CONFIG = """
[coordinator]
bind = "{bind}"
state_dir = "state"
interval = 1.0
hello_timeout = 20
heartbeat_interval = {heartbeat_interval}
worker_timeout = {worker_timeout}
command_timeout = {command_timeout}

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
lot_multiplier = 2.0
symbol_suffix = ".m"
{alpha_extra}

[[targets]]
name = "beta"
backend = "sim"
path = "terminals/beta"
login = 3001
server = "Sim-Server"
"""

# (terminal attribute on the fixture, lot multiplier, symbol suffix) per target, as CONFIG sets them up.
TARGETS = (("alpha", 2.0, ".m"), ("beta", 1.0, ""))


class Terminals:
    def __init__(self, root: Path) -> None:
        self.master = create(root / "master", 1001)
        self.alpha = create(root / "alpha", 2001, suffix=".m")
        self.beta = create(root / "beta", 3001)

    def targets(self) -> list[tuple[mt5sim.Terminal, float, str]]:
        return [(getattr(self, name), multiplier, suffix) for name, multiplier, suffix in TARGETS]

    def target_orders(self) -> tuple:
        return self.alpha.orders_get(), self.beta.orders_get()


def setup(copier, *, bind: str = "tcp://127.0.0.1:*", command_timeout: float = 5.0, worker_timeout: float = 3.0,
          alpha_extra: str = "") -> Terminals:
    terminals = Terminals(copier.directory / "terminals")
    copier.write_config(CONFIG.format(bind=bind, command_timeout=command_timeout, worker_timeout=worker_timeout,
                                      heartbeat_interval=HEARTBEAT_INTERVAL, alpha_extra=alpha_extra))
    return terminals


def place_mixed(master: mt5sim.Terminal) -> list[int]:
    """Five source orders of five types on four symbols."""
    return [
        place_pending(master, BUY_LIMIT, volume=0.2),
        place_pending(master, SELL_STOP, symbol="GBPUSD", volume=0.3),
        place_pending(master, BUY_STOP_LIMIT, distance_points=800),
        place_pending(master, SELL_LIMIT, symbol="USDJPY", distance_points=300),
        place_pending(master, BUY_STOP, symbol="XAUUSD", volume=0.5, distance_points=3000),
    ]


def target_history(terminal: mt5sim.Terminal) -> tuple:
    """Every order that left the target's pending list: a duplicate placed and then removed shows up here."""
    return terminal.history_orders_get(0, int(time.time()) + 10 * 86400) or ()


def problems(terminals: Terminals) -> list[str]:
    """Why the targets are not exact copies of the source ([] when they are): one copy per source order with
    the source's type, prices and the target's volume, nothing else pending, no positions, nothing removed."""
    source = {order.ticket: order for order in terminals.master.orders_get()}
    found: list[str] = []
    for terminal, multiplier, suffix in terminals.targets():
        name = terminal.path.name
        orders = terminal.orders_get()
        tagged = [order for order in orders if order.comment == f"mtc#{order.magic}"]
        by_source: dict[int, list] = {}
        for order in tagged:
            by_source.setdefault(order.magic, []).append(order)
        for ticket, group in by_source.items():
            if len(group) > 1:
                found.append(f"{name}: {len(group)} copies of source #{ticket}")
        if set(by_source) != set(source):
            found.append(f"{name}: copies of {sorted(by_source)}, source orders {sorted(source)}")
        if len(orders) != len(source):
            found.append(f"{name}: {len(orders)} pending orders for {len(source)} source orders")
        if terminal.positions_get():
            found.append(f"{name}: positions {terminal.positions_get()}")
        if target_history(terminal):
            found.append(f"{name}: orders left the pending list: {target_history(terminal)}")
        for ticket, group in by_source.items():
            original, copy = source.get(ticket), group[0]
            if original is None:
                continue
            wanted = (original.symbol + suffix, original.type, round(original.volume_current * multiplier, 2),
                      original.price_open, original.price_stoplimit, original.sl, original.tp)
            actual = (copy.symbol, copy.type, round(copy.volume_current, 2), copy.price_open, copy.price_stoplimit,
                      copy.sl, copy.tp)
            if wanted != actual:
                found.append(f"{name}: copy of #{ticket} is {actual}, wanted {wanted}")
    return found


def assert_exact(terminals: Terminals, output: str = "") -> None:
    found = problems(terminals)
    assert not found, "\n".join(found) + ("\n\n" + output if output else "")
    for terminal, _, _ in terminals.targets():
        copies(terminal)  # the shared helper's own duplicate check


def wait_exact(terminals: Terminals, timeout: float) -> str:
    """Wait until the targets are exact copies; '' then, else why not (with the state at the deadline)."""
    try:
        wait_for(lambda: not problems(terminals), timeout=timeout)
    except AssertionError:
        return f"not exact copies after {timeout}s: " + "; ".join(problems(terminals))
    return ""


def summary(output: str, target: str) -> dict[str, int]:
    """The counters of a target's line in the --once summary."""
    for line in output.splitlines():
        if line.startswith(f"target {target}: "):
            return {label.strip(): int(number)
                    for label, number in re.findall(r"([a-z][a-z ]*?) (\d+)(?:,|$)", line[len(target) + 9:])}
    raise AssertionError(f"no summary line for {target}:\n{output}")


def unsettled_intents(directory: Path) -> int:
    with sqlite3.connect(directory / "state" / "copier.db") as db:
        return db.execute("SELECT COUNT(*) FROM intents WHERE settled_at IS NULL").fetchone()[0]


def no_duplicate_in(output: str) -> None:
    assert "second copy" not in output, output


# ---- processes ---------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(child) for child in path.read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status


def workers(coordinator_pid: int) -> dict[str, int]:
    """Terminal name -> pid of the coordinator's living worker processes."""
    found = {}
    for pid in children(coordinator_pid):
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--terminal" in arguments and alive(pid):
            found[arguments[arguments.index(b"--terminal") + 1].decode()] = pid
    return found


# ---- 1. the coordinator dies at each crash point -----------------------------------------------


@pytest.mark.parametrize("point", ["after-intent", "after-send", "after-result"])
def test_coordinator_crash_point_then_restart_gives_exact_copies(copier, point):
    terminals = setup(copier)
    place_mixed(terminals.master)
    source = terminals.master.orders_get()
    crash = point
    if point == "after-send":
        # Both targets answer slowly, and the coordinator dies after its second batch (beta's): alpha's batch
        # has left by then, so alpha's worker is in the middle of its requests when the coordinator dies.
        # (After the first batch the process would die before ZeroMQ even transmitted it.)
        terminals.alpha.set_latency(0.5)
        terminals.beta.set_latency(0.5)
        crash = "after-send:2"

    first = copier.once(env={CRASH: crash})
    assert first.code == 137, first.output
    assert unsettled_intents(copier.directory) > 0, "the intents were not on disk before the crash"
    if point == "after-intent":
        assert terminals.target_orders() == ((), ()), "a command went out although the crash came first"
    elif point == "after-send":
        assert copies(terminals.alpha), "alpha's worker never got the batch: the scenario did not happen"
    else:
        assert copies(terminals.alpha) or copies(terminals.beta), "it died before any result came back"
    terminals.alpha.set_latency(0)
    terminals.beta.set_latency(0)

    second = copier.once()
    assert second.code == 0, second.output
    assert "result: complete" in second.output
    no_duplicate_in(second.output)
    assert_exact(terminals, second.output)
    for name in ("alpha", "beta"):
        counts = summary(second.output, name)
        assert counts["placed"] + counts["found already there"] == 5, second.output
        assert counts["removed"] == 0, second.output
    assert unsettled_intents(copier.directory) == 0

    third = copier.once()
    assert third.code == 0, third.output
    assert summary(third.output, "alpha")["placed"] == 0 and summary(third.output, "beta")["placed"] == 0
    assert_exact(terminals, third.output)
    assert terminals.master.orders_get() == source


# ---- 2. a worker dies at each crash point -------------------------------------------------------


@pytest.mark.parametrize(("point", "placed_before_death"), [
    ("before-order-send", 0),  # dies with the request in hand, nothing sent
    ("after-order-send", 1),  # the broker executed the request, the worker dies before answering
    ("mid-batch", 1),  # dies after the first command of a batch of five
])
def test_worker_crash_point_then_rerun_gives_exact_copies(copier, point, placed_before_death):
    terminals = setup(copier, command_timeout=2.0)
    place_mixed(terminals.master)
    source = terminals.master.orders_get()

    # Only target workers send orders, so only they reach these points: both die at their first one. In
    # --once mode a dead worker is not restarted: the run gives up on its commands and says so, promptly
    # (one command_timeout and its grace, not a wait per round).
    started = time.monotonic()
    try:
        first = copier.once(timeout=15, env={CRASH: point})
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"run --once still running 15 s after it started:\n{e.stderr}") from None
    assert first.code == 1, first.output
    assert time.monotonic() - started < 15
    assert "result: INCOMPLETE (exit code 1)" in first.output, first.output
    for name in ("alpha", "beta"):  # the summary names the target and why it is not synced
        section = first.output[first.output.index(f"target {name}: "):].split("\n\n")[0]
        assert "worker exited with code 137" in section, first.output
    for terminal, _, _ in terminals.targets():
        assert len(terminal.orders_get()) == placed_before_death, terminal.orders_get()

    second = copier.once()
    assert second.code == 0, second.output
    no_duplicate_in(second.output)
    assert_exact(terminals, second.output)
    for name in ("alpha", "beta"):
        counts = summary(second.output, name)
        assert counts["found already there"] == placed_before_death, second.output
        assert counts["placed"] == 5 - placed_before_death, second.output
    assert terminals.master.orders_get() == source


def test_scheduler_restarts_a_worker_that_dies_after_every_order_send(copier):
    # Every incarnation of the target workers dies right after its first order_send reached the broker (the
    # count is per process): each one gets one order onto the terminal, and the copier must adopt it instead
    # of placing it again. With two source orders that is two deaths per target, then no more order_send.
    terminals = setup(copier, command_timeout=1.0)
    place_pending(terminals.master, BUY_LIMIT)
    place_pending(terminals.master, SELL_STOP, symbol="GBPUSD")
    scheduler = copier.start_scheduler(env={CRASH: "after-order-send:1"})
    try:
        failure = wait_exact(terminals, timeout=15)
        time.sleep(1.0)  # and nothing more happens
    finally:
        code, output = copier.stop(scheduler)
    assert not failure, f"{failure}\n{output}"
    assert code == 0, output
    for name in ("alpha", "beta"):  # one death per source order, then a worker that has nothing to send
        assert output.count(f"worker {name} exited with code 137; restarting") == 2, output
    no_duplicate_in(output)
    assert_exact(terminals, output)


@needs_proc
def test_worker_killed_mid_batch_is_restarted_and_the_copies_converge(copier):
    terminals = setup(copier, command_timeout=1.0)
    terminals.alpha.set_latency(0.5)
    for order_type in (BUY_LIMIT, SELL_LIMIT, SELL_STOP_LIMIT):
        place_pending(terminals.master, order_type)
    scheduler = copier.start_scheduler()
    try:
        # The first copy exists once the broker executed its request: the worker is still waiting for the
        # answer (half the latency), with two more commands of the batch to go. Kill it there.
        wait_for(lambda: copies(terminals.alpha), timeout=20, interval=0.01, message="nothing copied to alpha")
        os.kill(workers(scheduler.pid)["alpha"], signal.SIGKILL)
        terminals.alpha.set_latency(0)
        failure = wait_exact(terminals, timeout=12)
    finally:
        code, output = copier.stop(scheduler)
    assert not failure, f"{failure}\n{output}"
    assert code == 0, output
    assert "worker alpha exited with code -9; restarting" in output
    no_duplicate_in(output)
    assert_exact(terminals, output)


# ---- 3. kill -9 of the coordinator at random moments --------------------------------------------


def _widen_sl(master: mt5sim.Terminal, ticket: int, points: int) -> None:
    """A source edit: move an order's stop loss ``points`` further from its entry."""
    order = master.orders_get(ticket=ticket)[0]
    point = master.symbol_info(order.symbol).point
    buy = order.type in (BUY_LIMIT, BUY_STOP, BUY_STOP_LIMIT)
    digits = master.symbol_info(order.symbol).digits
    result = master.order_send({
        "action": mt5sim.TRADE_ACTION_MODIFY, "order": ticket, "price": order.price_open,
        "stoplimit": order.price_stoplimit, "sl": round(order.sl + (-points if buy else points) * point, digits),
        "tp": order.tp, "type_time": order.type_time, "expiration": order.time_expiration,
    })
    assert result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE, result


@needs_proc
def test_coordinator_killed_at_random_moments_of_a_busy_sync_converges(copier):
    terminals = setup(copier)
    master = terminals.master
    terminals.alpha.set_latency(0.2)
    terminals.beta.set_latency(0.2)
    kinds = [(BUY_LIMIT, "EURUSD"), (SELL_LIMIT, "GBPUSD"), (BUY_STOP, "USDJPY"), (SELL_STOP, "EURUSD"),
             (BUY_STOP_LIMIT, "GBPUSD"), (SELL_STOP_LIMIT, "EURUSD"), (BUY_LIMIT, "USDJPY"), (SELL_LIMIT, "EURUSD")]
    tickets: list[int] = []
    in_flight_at_kill: list[int] = []
    for round_number, delay in enumerate((0.3, 0.8, 1.5)):
        before = terminals.target_orders()
        burst = kinds if round_number == 0 else kinds[round_number::3]
        for index, (order_type, symbol) in enumerate(burst):
            tickets.append(place_pending(master, order_type, symbol=symbol, distance_points=400 + 37 * index))
        if round_number:
            _widen_sl(master, tickets[round_number], 25)  # an edit in flight too: a modify intent
        scheduler = copier.start_scheduler()
        wait_for(lambda before=before: terminals.target_orders() != before, timeout=20,
                 message=f"round {round_number}: nothing happened on the targets")
        time.sleep(delay)
        running = children(scheduler.pid)
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.wait(5)
        in_flight_at_kill.append(unsettled_intents(copier.directory))
        wait_for(lambda running=running: not any(alive(pid) for pid in running), timeout=15,
                 message="workers outlived their coordinator")
    assert max(in_flight_at_kill) > 0, "no kill landed while commands were in flight"

    terminals.alpha.set_latency(0)
    terminals.beta.set_latency(0)
    connected = log_text(copier.directory).count(") connected: account")
    scheduler = copier.start_scheduler()
    try:
        # Its three workers say hello first: the copies may look exact already, but this run must settle them.
        wait_for(lambda: log_text(copier.directory).count(") connected: account") >= connected + 3, timeout=20,
                 message="the last coordinator's workers did not connect")
        failure = wait_exact(terminals, timeout=30)
        time.sleep(1.5)  # a full reconciliation later, still nothing to do
    finally:
        code, output = copier.stop(scheduler)
    assert not failure, f"{failure}\n{output}"
    assert code == 0, output
    assert len(master.orders_get()) == len(tickets) == 13
    no_duplicate_in(output)
    assert_exact(terminals, output)


# ---- 4. a state file from a newer version (lost and corrupt ones: tests/test_engine_restart.py) ----


def test_state_from_a_newer_version_is_refused_with_exit_code_3(copier):
    terminals = setup(copier)
    place_pending(terminals.master, BUY_LIMIT)
    assert copier.once().code == 0
    database = copier.directory / "state" / "copier.db"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    place_pending(terminals.master, SELL_STOP)
    before = terminals.target_orders()

    run = copier.once()
    assert run.code == 3, run.output
    assert "newer" in run.output and "99" in run.output, run.output
    assert terminals.target_orders() == before, "it copied although it refused the state"
    assert not list(database.parent.glob("copier.db.corrupt-*")), "a newer state file is not corrupt"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("99",)


# ---- 5. never two workers on one terminal ------------------------------------------------------


def _log(copier, process: str) -> str:
    path = copier.directory / "state" / "logs" / f"{process}.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _lock_holder(copier, name: str) -> int:
    try:
        text = (copier.directory / "state" / "locks" / f"{name}.lock").read_text().strip()
    except FileNotFoundError:
        return 0
    return int(text) if text.isdigit() else 0


@needs_proc
def test_a_second_worker_for_a_terminal_on_this_machine_is_refused_naming_the_one_that_holds_it(
        copier, unused_tcp_port):
    endpoint = f"tcp://127.0.0.1:{unused_tcp_port}"
    terminals = setup(copier, bind=endpoint)
    first_order = place_pending(terminals.master, BUY_LIMIT)
    by_hand = copier.start("worker", "--config", str(copier.config_path), "--terminal", "alpha",
                           "--connect", endpoint)
    wait_for(lambda: _lock_holder(copier, "alpha") == by_hand.pid, timeout=15, message="no lock taken")
    scheduler = copier.start_scheduler()  # it spawns its own alpha worker too: forgotten "remote = true"
    try:
        spawned = wait_for(lambda: workers(scheduler.pid).get("alpha"), timeout=15, message="no alpha spawned")
        wait_for(lambda: first_order in copies(terminals.alpha) and first_order in copies(terminals.beta),
                 message="not copied")  # alpha through the worker started by hand, which the coordinator took
        # The spawned one waits a short grace for the lock (an exiting predecessor would let go), then gives
        # up with exit code 2, which the coordinator does not restart.
        wait_for(lambda: not alive(spawned), timeout=30, message="the second worker kept waiting for the lock")
        assert alive(by_hand.pid) and _lock_holder(copier, "alpha") == by_hand.pid
        second_order = place_pending(terminals.master, SELL_STOP, symbol="GBPUSD")
        wait_for(lambda: second_order in copies(terminals.alpha), message="not copied by the attached worker")
        time.sleep(1.0)
    finally:
        code, output = copier.stop(scheduler)
    assert code == 0, output
    refusal = f"another worker (pid {by_hand.pid}) runs for this terminal on this machine and still holds"
    assert refusal in output and refusal in _log(copier, "worker-alpha")
    assert "CRITICAL" in next(line for line in _log(copier, "worker-alpha").splitlines() if refusal in line)
    assert _log(copier, "worker-alpha").count("worker alpha (target) starting") == 1, "the refused one ran"
    code, by_hand_output = copier.stop(by_hand)
    assert code == 0, by_hand_output
    no_duplicate_in(output)
    assert_exact(terminals, output)


@needs_proc
def test_a_worker_started_by_hand_outlives_its_coordinator_while_the_ones_it_started_exit(copier, unused_tcp_port):
    endpoint = f"tcp://127.0.0.1:{unused_tcp_port}"
    terminals = setup(copier, bind=endpoint, worker_timeout=1.0, alpha_extra="remote = true")
    ticket = place_pending(terminals.master, BUY_LIMIT)
    scheduler = copier.start_scheduler()
    by_hand = copier.start("worker", "--config", str(copier.config_path), "--terminal", "alpha",
                           "--connect", endpoint)
    wait_for(lambda: ticket in copies(terminals.alpha), message="not copied through the remote worker")
    local = children(scheduler.pid)
    os.kill(scheduler.pid, signal.SIGKILL)
    scheduler.wait(5)
    # The local ones must not outlive it (an orphan could trade beside a restarted coordinator's new worker);
    # the one started by hand is a service on another machine: it keeps its terminal and waits.
    wait_for(lambda: not any(alive(pid) for pid in local), timeout=10, message="local workers kept running")
    time.sleep(1.5)  # longer than worker_timeout: it noticed
    assert by_hand.poll() is None, "the remote worker exited when its coordinator died"
    code, output = copier.stop(by_hand)
    assert code == 0, output
    assert "alpha: no word from the coordinator for" in output
