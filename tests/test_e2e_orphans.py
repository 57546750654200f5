"""End to end: copies whose source order is gone (orphans), with real processes.

An orphan is removed only under the target's policy: at once when the source's history says what became of
its order (cancelled, filled, expired), otherwise only after ``max_checks`` consecutive checks on a *fresh*
source; a source that is disconnected or whose terminal is gone decides nothing; and orders that are not the
copier's (no tag, or a magic that merely equals a source ticket) are never touched, whatever the policy.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import mt5sim
from protocol.tags import copy_tag
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, BUY_STOP, SELL_LIMIT, SELL_STOP, copies, create, place_pending

pytestmark = pytest.mark.e2e

CONFIG = """
[coordinator]
bind = "tcp://127.0.0.1:*"
state_dir = "state"
interval = 0.2
hello_timeout = 20
heartbeat_interval = 0.5
worker_timeout = 3
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
login = 2001
server = "Sim-Server"
symbol_suffix = ".m"

[targets.orphans]
policy = "{policy}"
check_interval = {check_interval}
max_checks = {max_checks}
"""


def setup(copier, policy: str, check_interval: float, max_checks: int) -> tuple[mt5sim.Terminal, mt5sim.Terminal]:
    root = copier.directory / "terminals"
    master = create(root / "master", 1001)
    alpha = create(root / "alpha", 2001, suffix=".m")
    copier.write_config(CONFIG.format(policy=policy, check_interval=check_interval, max_checks=max_checks))
    return master, alpha


def cancel(terminal: mt5sim.Terminal, ticket: int) -> None:
    result = terminal.order_send({"action": mt5sim.TRADE_ACTION_REMOVE, "order": ticket})
    assert result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE, result


def vanish(terminal: mt5sim.Terminal, ticket: int) -> None:
    """The source order disappears without a record in the source's history: only confirmations can tell."""
    mt5sim.lose_order(terminal.path, ticket)


def coordinator_log(copier) -> str:
    path = copier.directory / "state" / "logs" / "coordinator.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def operator(copier, command: str) -> str:
    run = copier.run(command, "--config", str(copier.config_path), timeout=30)
    assert run.code == 0, run.output
    return run.output


def history(terminal: mt5sim.Terminal) -> tuple:
    return terminal.history_orders_get(0, int(time.time()) + 10 * 86400) or ()


def start_and_copy(copier, alpha: mt5sim.Terminal, tickets: list[int]):
    scheduler = copier.start_scheduler()
    wait_for(lambda: all(ticket in copies(alpha) for ticket in tickets), message="the source orders were not copied")
    return scheduler


# ---- 6. policies --------------------------------------------------------------------------------


def test_a_cancel_the_source_history_confirms_removes_the_copy_at_once(copier):
    master, alpha = setup(copier, "kill", check_interval=5.0, max_checks=3)  # confirmations would take 10 s
    kept = place_pending(master, BUY_LIMIT)
    gone = place_pending(master, SELL_STOP, symbol="GBPUSD")
    scheduler = start_and_copy(copier, alpha, [kept, gone])
    try:
        orphan = copies(alpha)[gone]
        cancelled_at = time.monotonic()
        cancel(master, gone)
        wait_for(lambda: gone not in copies(alpha), timeout=8, interval=0.02, message="the orphan was never removed")
        removed_after = time.monotonic() - cancelled_at
    finally:
        code, output = copier.stop(scheduler)
    assert code == 0, output
    assert removed_after < 2.0, f"removed only {removed_after:.2f}s after the cancel\n{output}"
    assert re.search(rf"copy #{orphan.ticket} \S+ of source order #{gone}: the source's history says it was "
                     r"cancelled; removing the copy \(orphan policy kill\)", output), output
    assert set(copies(alpha)) == {kept}


def test_kill_policy_removes_an_orphan_only_after_max_checks_consecutive_checks(copier):
    master, alpha = setup(copier, "kill", check_interval=1.0, max_checks=3)
    kept = place_pending(master, BUY_LIMIT)
    gone = place_pending(master, SELL_STOP, symbol="GBPUSD")
    scheduler = start_and_copy(copier, alpha, [kept, gone])
    try:
        kept_copy, orphan = copies(alpha)[kept], copies(alpha)[gone]
        cancelled_at = time.monotonic()
        vanish(master, gone)
        # Three checks one second apart (at 0, 1 and 2 s at the earliest): not removed before 2 s...
        wait_for(lambda: gone not in copies(alpha), timeout=8, interval=0.02, message="the orphan was never removed")
        removed_after = time.monotonic() - cancelled_at
        time.sleep(0.5)
    finally:
        code, output = copier.stop(scheduler)
    assert code == 0, output
    assert removed_after >= 1.95, f"removed {removed_after:.2f}s after the cancel: before its 3rd check\n{output}"
    assert removed_after <= 4.5, f"removed only {removed_after:.2f}s after the cancel\n{output}"  # ...but by ~4 s
    assert copies(alpha) == {kept: kept_copy}
    assert [order.ticket for order in history(alpha)] == [orphan.ticket]

    # The evidence: every count, in words about orders and checks; the source snapshots behind it at DEBUG.
    this_copy = rf"copy #{orphan.ticket} \S+ of source order #{gone}: source order not found in"
    for count in (1, 2):
        assert re.search(rf"{this_copy} {count} of 3 consecutive checks; confirming before acting", output), output
    assert re.search(rf"{this_copy} 3 of 3 consecutive checks; removing the copy \(orphan policy kill\)",
                     output), output
    assert re.search(r"orphan check on source snapshot master boot \w+ seq \d+", coordinator_log(copier))
    assert re.search(rf"removed copy #{orphan.ticket} of source #{gone}", output), output

    events = operator(copier, "history")
    assert re.search(rf"alpha\s+orphan-kill\s+decided\s+source #{gone} -> #{orphan.ticket}", events), events
    assert re.search(rf"alpha\s+removed\s+done\s+source #{gone} -> #{orphan.ticket}", events), events


def test_preserve_policy_keeps_an_orphan_reports_it_in_status_and_records_the_decision(copier):
    master, alpha = setup(copier, "preserve", check_interval=0.5, max_checks=2)
    kept = place_pending(master, BUY_LIMIT)
    gone = place_pending(master, SELL_LIMIT, symbol="GBPUSD")
    scheduler = start_and_copy(copier, alpha, [kept, gone])
    try:
        before = alpha.orders_get()
        cancel(master, gone)
        deadline = time.monotonic() + 4.0  # eight checks, four times what confirmation takes
        while time.monotonic() < deadline:
            assert alpha.orders_get() == before, "a preserved orphan was touched"
            time.sleep(0.05)
        status = operator(copier, "status")  # while the coordinator runs: it rewrites the table every second
    finally:
        code, output = copier.stop(scheduler)
    assert code == 0, output
    assert alpha.orders_get() == before and not history(alpha)
    orphan = copies(alpha)[gone]
    assert re.search(rf"copy #{orphan.ticket} \S+ of source order #{gone}: the source's history says it was "
                     r"cancelled; keeping the copy \(orphan policy preserve\)", output), output
    assert output.count(f"copy #{orphan.ticket}") <= 3, "the kept orphan is reported again at every check"

    target = status[status.index("target alpha"):]
    assert re.search(r"orphans: 1\b", target), status
    assert re.search(r"copies: 2\b", target), status
    assert re.search(rf"copy #{orphan.ticket} \(source #{gone} is gone\): kept", target), status

    events = operator(copier, "history")
    assert re.search(rf"alpha\s+orphan-preserved\s+kept\s+source #{gone} -> #{orphan.ticket}", events), events
    assert re.search(rf"alpha\s+source\s+cancelled\s+source #{gone}", events), events


def test_orphan_confirmations_add_up_over_restarts(copier):
    # Counts survive restarts: three separate --once runs make three consecutive checks.
    master, alpha = setup(copier, "kill", check_interval=5.0, max_checks=3)
    kept = place_pending(master, BUY_LIMIT)
    gone = place_pending(master, SELL_STOP, symbol="GBPUSD")
    assert copier.once().code == 0
    orphan = copies(alpha)[gone]
    vanish(master, gone)
    counted = rf"copy #{orphan.ticket} \S+ of source order #{gone}: source order not found in {{}} of 3 consecutive"
    for count in (1, 2):
        run = copier.once()
        assert run.code == 0, run.output
        assert re.search(counted.format(count) + ".*confirming before acting", run.output), run.output
        assert gone in copies(alpha) and not history(alpha)
    run = copier.once()
    assert run.code == 0, run.output
    assert re.search(counted.format(3) + ".*removing the copy", run.output), run.output
    assert set(copies(alpha)) == {kept} and [order.ticket for order in history(alpha)] == [orphan.ticket]


# ---- 7. a source outage decides nothing ----------------------------------------------------------


@pytest.mark.parametrize("outage", [
    "broker disconnected",
    "terminal stopped",
])
def test_a_source_outage_freezes_orphan_decisions_and_copying_resumes_after(copier, outage):
    # A disconnected source is known as such at its worker's next facts refresh (every second): the kill
    # (count 3, two check intervals after count 1) must come later than that to make the test deterministic.
    check_interval, max_checks, outage_seconds = 1.0, 3, 9.5  # the outage outlasts 3 x confirmation
    assert outage_seconds > 3 * check_interval * max_checks
    master, alpha = setup(copier, "kill", check_interval=check_interval, max_checks=max_checks)
    kept = place_pending(master, BUY_LIMIT)
    gone = place_pending(master, SELL_STOP, symbol="GBPUSD")
    scheduler = start_and_copy(copier, alpha, [kept, gone])
    try:
        orphan = copies(alpha)[gone]
        before = alpha.orders_get()
        vanish(master, gone)
        # The orphan is being confirmed (count 1 of 3) when the source goes away.
        counted = rf"copy #{orphan.ticket} \S+ of source order #{gone}: source order not found in 1 of 3"
        wait_for(lambda: re.search(counted, coordinator_log(copier)), timeout=10, interval=0.02,
                 message="the orphan was never counted")
        if outage == "broker disconnected":
            master.set_connected(False)
        else:
            master.stop_terminal()
        outage_started = time.monotonic()
        while time.monotonic() - outage_started < outage_seconds:
            assert alpha.orders_get() == before, (
                f"{time.monotonic() - outage_started:.1f}s into the outage, the target changed:\n"
                f"{coordinator_log(copier)}")
            time.sleep(0.05)
        if outage == "broker disconnected":
            master.set_connected(True)
        else:
            master.start_terminal()

        wait_for(lambda: gone not in copies(alpha), timeout=10, message="the orphan was not removed after the outage")
        late = place_pending(master, BUY_STOP, symbol="USDJPY", distance_points=300)
        wait_for(lambda: late in copies(alpha), timeout=10, message="copying did not resume after the outage")
        time.sleep(0.5)
    finally:
        code, output = copier.stop(scheduler)
    assert code == 0, output
    assert set(copies(alpha)) == {kept, late} and len(alpha.orders_get()) == 2
    assert [order.ticket for order in history(alpha)] == [orphan.ticket]
    assert "copying paused" in output, output
    killed = re.search(rf"copy #{orphan.ticket} \S+ of source order #{gone}: source order not found in 3 of 3 .*"
                       "removing the copy", output)
    assert killed, output
    assert output.rfind("copying resumed") < killed.start(), "the orphan was confirmed during the outage"


# ---- 8. orders that are not the copier's --------------------------------------------------------


@pytest.mark.parametrize("policy", ["kill", "preserve"])
def test_foreign_orders_survive_every_policy_while_real_orphans_follow_it(copier, policy):
    master, alpha = setup(copier, policy, check_interval=0.3, max_checks=1)
    live = place_pending(master, BUY_LIMIT)
    cancelled = place_pending(master, SELL_LIMIT, symbol="GBPUSD")
    foreign = [
        # a person's order
        place_pending(alpha, BUY_LIMIT, symbol="EURUSD.m", distance_points=900, magic=0, comment="manual"),
        # another expert advisor whose magic happens to equal a live source ticket
        place_pending(alpha, SELL_LIMIT, symbol="EURUSD.m", distance_points=900, magic=live, comment="grid EA"),
        # ... and one whose magic equals the source ticket about to be cancelled
        place_pending(alpha, BUY_STOP, symbol="GBPUSD.m", distance_points=900, magic=cancelled, comment="ea-x"),
        # a comment that looks like the copier's tag, typed by a person (magic 0)
        place_pending(alpha, SELL_STOP, symbol="GBPUSD.m", distance_points=900, magic=0, comment=copy_tag(live)),
        # the tag of one source order with the magic of another: not a copy of either
        place_pending(alpha, SELL_STOP, symbol="EURUSD.m", distance_points=950, magic=cancelled,
                      comment=copy_tag(live)),
    ]
    untouched = {order.ticket: order for order in alpha.orders_get()}
    assert set(untouched) == set(foreign)

    scheduler = start_and_copy(copier, alpha, [live, cancelled])
    try:
        orphan = copies(alpha)[cancelled]
        cancel(master, cancelled)
        if policy == "kill":
            wait_for(lambda: cancelled not in copies(alpha), timeout=10, message="the real orphan was not removed")
        else:
            wait_for(lambda: "keeping the copy" in coordinator_log(copier), timeout=10, message="no orphan decision")
        time.sleep(2.0)  # several more checks
    finally:
        code, output = copier.stop(scheduler)
    assert code == 0, output

    now = {order.ticket: order for order in alpha.orders_get()}
    for ticket, order in untouched.items():
        assert now.get(ticket) == order, f"foreign order #{ticket} was changed or removed:\n{output}"
    ours = {ticket: copy.ticket for ticket, copy in copies(alpha).items()}
    if policy == "kill":
        assert set(ours) == {live}
        assert [order.ticket for order in history(alpha)] == [orphan.ticket]
    else:
        assert ours == {live: ours[live], cancelled: orphan.ticket} and not history(alpha)
    assert set(now) == set(untouched) | set(ours.values())
    for ticket in foreign:
        assert f"#{ticket}" not in output, f"the copier spoke of foreign order #{ticket}:\n{output}"

    # A lost state does not turn any of them into copies either.
    for path in Path(copier.directory / "state").glob("copier.db*"):
        path.unlink()
    run = copier.once()
    assert run.code == 0, run.output
    assert {order.ticket: order for order in alpha.orders_get()} == now
