"""End to end: a copy whose source order is gone (an orphan), with real processes.

An orphan is removed only under the target's policy: at once when the source's history says what became of
its order (cancelled, filled, expired), otherwise only after ``max_checks`` consecutive checks on a *fresh*
source; a source that is disconnected or whose terminal is gone decides nothing; and orders that are not the
copier's (no tag, or a magic that merely equals a source ticket) are never touched, whatever the policy.

Those are the engine's decisions, tested in tests/test_engine_orphans.py on a turned clock with the same
assertions these process tests made (same test names): confirmations counted check by check and over restarts,
the preserve policy in the log, the history and ``status``, source outages, foreign orders. What needs real
processes stays here: a trader's cancel on the source terminal, seen by its worker, removes the copy on the
target terminal through the other worker within a couple of seconds.
"""

from __future__ import annotations

import re
import time

import pytest

import mt5sim
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, SELL_STOP, copies, create, place_pending

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
