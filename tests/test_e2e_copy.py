"""End to end: the real coordinator and real worker processes copying between simulated terminals.

Three decisions once tested here by whole runs are the engine's, tested in milliseconds with the same
assertions in tests/test_engine_copy.py (same names): a second ``--once`` changes nothing, a lost state is
rebuilt from the terminals without duplicates, a missing symbol is skipped with its reason (in the summary
and the history). That a second run over real brokers finds nothing to do (what they store is what the copier
wants) is checked at the end of the first test here.
"""

from __future__ import annotations

import signal
import time

import pytest

from protocol.tags import copy_tag
from tests.conftest import wait_for
from tests.simhelpers import (
    ALL_PENDING_TYPES,
    BUY_LIMIT,
    BUY_STOP,
    BUY_STOP_LIMIT,
    SELL_LIMIT,
    SELL_STOP,
    SELL_STOP_LIMIT,
    copies,
    create,
    place_pending,
)

pytestmark = pytest.mark.e2e

GOLD = {"GOLD": {"digits": 2, "point": 0.01, "trade_tick_size": 0.01, "trade_contract_size": 100.0,
                 "volume_min": 0.1, "volume_max": 50.0, "volume_step": 0.1, "trade_stops_level": 20,
                 "currency_base": "XAU", "currency_profit": "USD", "currency_margin": "XAU",
                 "bid": 2000.0, "ask": 2000.25}}

CONFIG = """
[coordinator]
bind = "tcp://127.0.0.1:*"
state_dir = "state"
hello_timeout = 20
command_timeout = 10
heartbeat_interval = 0.2

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
server = "Alpha-Live"
lot_multiplier = 2.0
symbol_suffix = ".m"

[[targets]]
name = "beta"
backend = "sim"
path = "terminals/beta"
login = 3001
server = "Beta-Trade"
lot_multiplier = 0.5
order_types = ["buy_limit", "sell_limit", "buy_stop", "sell_stop"]
[targets.symbol_map]
XAUUSD = "GOLD"
"""


@pytest.fixture
def terminals(copier):
    root = copier.directory / "terminals"
    master = create(root / "master", 1001)
    alpha = create(root / "alpha", 2001, "Alpha-Live", suffix=".m")
    beta = create(root / "beta", 3001, "Beta-Trade", symbols=GOLD)
    copier.write_config(CONFIG)
    return master, alpha, beta


def test_every_pending_type_is_copied_to_two_targets_with_their_own_settings(copier, terminals):
    master, alpha, beta = terminals
    tickets = {order_type: place_pending(master, order_type, volume=0.3) for order_type in ALL_PENDING_TYPES}
    gold = place_pending(master, SELL_LIMIT, symbol="XAUUSD", volume=1.0, distance_points=3000)

    run = copier.once()
    assert run.code == 0, run.output
    assert "result: complete" in run.output

    source = {order.ticket: order for order in master.orders_get()}
    on_alpha = copies(alpha)
    assert set(on_alpha) == set(tickets.values()) | {gold}
    for ticket, copy in on_alpha.items():
        original = source[ticket]
        assert copy.symbol == original.symbol + ".m"
        assert copy.type == original.type
        assert copy.volume_current == pytest.approx(original.volume_current * 2)
        assert (copy.price_open, copy.price_stoplimit, copy.sl, copy.tp) == (
            original.price_open, original.price_stoplimit, original.sl, original.tp)
        assert copy.magic == ticket and copy.comment == copy_tag(ticket)

    on_beta = copies(beta)
    copied_types = {BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP}
    assert set(on_beta) == {tickets[t] for t in copied_types} | {gold}
    assert on_beta[gold].symbol == "GOLD"
    assert on_beta[gold].volume_current == pytest.approx(0.5)
    assert on_beta[tickets[BUY_LIMIT]].volume_current == pytest.approx(0.15)
    assert tickets[BUY_STOP_LIMIT] not in on_beta and tickets[SELL_STOP_LIMIT] not in on_beta

    # What the broker stored is what the copier wants: a second run finds nothing to do (what
    # test_a_second_once_changes_nothing showed here; its decision is tests/test_engine_copy.py's).
    before = (alpha.orders_get(), beta.orders_get())
    second = copier.once()
    assert second.code == 0, second.output
    assert "placed 0, found already there 0, modified 0, replaced 0, removed 0" in second.output, second.output
    assert (alpha.orders_get(), beta.orders_get()) == before


def test_scheduler_copies_new_orders_as_they_appear_and_restarts_without_duplicates(copier, terminals):
    master, alpha, beta = terminals
    first = place_pending(master, BUY_LIMIT)
    scheduler = copier.start_scheduler()
    wait_for(lambda: first in copies(alpha) and first in copies(beta), message="first order not copied")

    second = place_pending(master, SELL_STOP, symbol="GBPUSD")
    wait_for(lambda: second in copies(alpha), timeout=10, message="a new source order was not copied promptly")

    code, output = copier.stop(scheduler, signal.SIGINT)
    assert code == 0, output

    restarted = copier.start_scheduler()
    third = place_pending(master, SELL_LIMIT)
    wait_for(lambda: third in copies(alpha), message="copying did not resume after a restart")
    copier.stop(restarted)
    assert sorted(copies(alpha)) == sorted([first, second, third])
    assert len(alpha.orders_get()) == 3


def test_unavailable_target_does_not_stop_the_others(copier, terminals):
    master, alpha, _beta = terminals
    (copier.directory / "terminals" / "beta" / "terminal.db").unlink()
    place_pending(master, BUY_LIMIT)
    started = time.monotonic()
    run = copier.once()
    took = time.monotonic() - started
    assert run.code == 1, run.output
    # Its worker said "terminal not found" at once: no waiting for hello_timeout (20 s) before the others.
    assert took < 10, f"took {took:.1f}s\n{run.output}"
    beta_path = copier.directory / "terminals" / "beta"
    assert "target beta: NOT SYNCED - terminal not found" in run.output, run.output
    assert str(beta_path) in run.output.split("target beta: NOT SYNCED")[1].splitlines()[0], run.output
    assert len(copies(alpha)) == 1


def test_remote_worker_started_by_hand_connects_and_copies(copier, terminals, unused_tcp_port):
    master, alpha, _beta = terminals
    config = CONFIG.replace('bind = "tcp://127.0.0.1:*"', f'bind = "tcp://127.0.0.1:{unused_tcp_port}"')
    config = config.replace('name = "alpha"', 'name = "alpha"\nremote = true')
    copier.write_config(config)
    worker = copier.start("worker", "--config", str(copier.config_path), "--terminal", "alpha")
    ticket = place_pending(master, BUY_STOP)
    run = copier.once()
    assert run.code == 0, run.output
    assert ticket in copies(alpha)
    code, output = copier.stop(worker)
    assert code == 0, output


def test_check_config_reports_every_problem_with_exit_code_2(copier):
    copier.write_config("""
        [coordinator]
        bind = "tcp://0.0.0.0:5757"
        [source]
        name = "master"
        backend = "sim"
        path = "m"
        login = 1
        server = "S"
        [[targets]]
        name = "t"
        backend = "carrier-pigeon"
        path = "t"
        login = 2
        server = "S"
        lot_multiplier = -2
    """)
    run = copier.run("check-config", "--config", str(copier.config_path))
    assert run.code == 2
    assert "coordinator.bind" in run.output
    assert "targets[0] (t).backend" in run.output
    assert "targets[0] (t).lot_multiplier: must be greater than 0, got -2" in run.output


def test_run_with_a_bad_config_exits_2_before_starting_anything(copier):
    copier.write_config("[source]\nname = 5\n")
    run = copier.once()
    assert run.code == 2
    assert "source.name" in run.output
