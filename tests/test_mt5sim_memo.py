"""The simulated terminal remembers its answers while its database is unchanged (mt5sim/store.py,
Transaction.cached), like a real terminal answering from memory. A remembered answer must never outlive a
change: one made by this process, one made by another process, or one that time makes (an expiry)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mt5sim
from mt5sim import store
from tests.simhelpers import BUY_LIMIT, create, place_pending

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_an_unchanged_terminal_answers_the_same_orders_and_a_change_here_is_seen_at_once(tmp_path):
    terminal = create(tmp_path / "t", login=1)
    first = place_pending(terminal, BUY_LIMIT)
    before = terminal.orders_get()
    assert terminal.orders_get() == before and [o.ticket for o in before] == [first]
    second = place_pending(terminal, BUY_LIMIT, distance_points=700)
    assert [o.ticket for o in terminal.orders_get()] == [first, second]
    assert terminal.orders_total() == 2
    mt5sim.set_quote(tmp_path / "t", "EURUSD", 1.2, 1.2001)  # a control call: the same process's connection
    assert {o.price_current for o in terminal.orders_get()} == {1.2001}
    assert terminal.symbol_info_tick("EURUSD").ask == 1.2001


def test_a_change_made_by_another_process_is_seen_at_once(tmp_path):
    terminal = create(tmp_path / "t", login=1)
    place_pending(terminal, BUY_LIMIT)
    assert terminal.orders_total() == 1 and terminal.account_info().login == 1
    script = (
        "import sys, mt5sim\n"
        "from tests.simhelpers import BUY_LIMIT, place_pending\n"
        "place_pending(mt5sim.Terminal(sys.argv[1]), BUY_LIMIT, distance_points=900)\n"
        "mt5sim.set_connected(sys.argv[1], False)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "t")], check=True, cwd=PROJECT_ROOT, timeout=60)
    assert terminal.orders_total() == 2
    assert len(terminal.orders_get()) == 2
    assert terminal.terminal_info().connected is False


def test_an_order_that_expires_leaves_the_answer_although_nothing_was_written(tmp_path):
    terminal = create(tmp_path / "t", login=1)
    now = int(mt5sim.server_time(tmp_path / "t"))
    ticket = place_pending(terminal, BUY_LIMIT, type_time=mt5sim.ORDER_TIME_SPECIFIED, expiration=now + 2)
    assert [o.ticket for o in terminal.orders_get()] == [ticket]
    deadline = time.monotonic() + 10
    while terminal.orders_get() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert terminal.orders_get() == ()
    assert [o.ticket for o in terminal.history_orders_get(ticket=ticket)] == [ticket]


def test_positions_and_the_account_follow_a_fill(tmp_path):
    terminal = create(tmp_path / "t", login=1)
    assert terminal.positions_get() == () and terminal.positions_total() == 0
    tick = terminal.symbol_info_tick("EURUSD")
    result = terminal.order_send({"action": mt5sim.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1,
                                  "type": mt5sim.ORDER_TYPE_BUY, "price": tick.ask,
                                  "type_filling": mt5sim.ORDER_FILLING_FOK})
    assert result.retcode == mt5sim.TRADE_RETCODE_DONE, result
    assert [p.volume for p in terminal.positions_get()] == [0.1]
    margin = terminal.account_info().margin
    assert margin > 0
    mt5sim.set_quote(tmp_path / "t", "EURUSD", tick.bid + 0.01, tick.ask + 0.01)
    assert terminal.positions_get()[0].profit > 0
    assert terminal.account_info().profit > 0


def test_orders_read_again_after_a_change_show_every_edit_and_price_and_the_memo_stays_bounded(
        tmp_path, monkeypatch):
    """Each order's row is converted once per version and quote (Transaction.active_orders_as): an edit, a new
    quote and an order added are all read, unchanged orders are the very tuples read before, and the memo is
    cleared when full."""
    term = create(tmp_path / "t", login=1)
    for index in range(3):
        place_pending(term, BUY_LIMIT, distance_points=500 + 100 * index)
    first = term.orders_get()
    edited = first[1]
    price = round(edited.price_open - 0.0001, 5)
    assert term.order_send({"action": mt5sim.TRADE_ACTION_MODIFY, "order": edited.ticket, "price": price,
                            "sl": 0.0, "tp": 0.0}).retcode == mt5sim.TRADE_RETCODE_DONE
    second = term.orders_get()
    assert second[1].price_open == price and second[0] is first[0] and second[2] is first[2]
    mt5sim.set_quote(tmp_path / "t", "EURUSD", 1.2, 1.2002)
    priced = term.orders_get()
    assert [order.price_current for order in priced] == [1.2002] * 3  # a buy's current price is the ask
    monkeypatch.setattr(store, "ROW_MEMO_BOUND", 4)
    place_pending(term, BUY_LIMIT, distance_points=900)
    remembered = store._handles[str(tmp_path / "t" / store.DB_NAME)].converted_orders
    assert len(term.orders_get()) == 4 and len(remembered) <= 4


def test_a_terminal_created_again_numbers_its_orders_anew_and_they_are_read_as_its_own(tmp_path):
    """The orders' conversions are remembered by ticket and version: a terminal created again at the same place
    (the same file wiped, or a new file) starts its tickets and versions over, and must never be read as the
    orders it held before."""
    term = create(tmp_path / "t", login=1)
    first = place_pending(term, BUY_LIMIT, distance_points=500)
    assert [order.volume_initial for order in term.orders_get()] == [0.1]
    for wiped in (True, False):  # the same file wiped, then a new file in its place
        if not wiped:
            shutil.rmtree(tmp_path / "t")
        mt5sim.create_terminal(tmp_path / "t", login=1, server="Sim-Server")
        term = mt5sim.Terminal(tmp_path / "t")
        assert term.orders_get() == ()
        ticket = place_pending(term, BUY_LIMIT, volume=0.2, distance_points=600)
        assert ticket == first  # numbered anew
        assert [(order.ticket, order.volume_initial) for order in term.orders_get()] == [(first, 0.2)]


def test_a_terminal_an_older_mt5sim_created_is_brought_up_to_date_when_opened(tmp_path):
    term = create(tmp_path / "t", login=1)
    ticket = place_pending(term, BUY_LIMIT)
    database = tmp_path / "t" / store.DB_NAME
    store._handles.pop(str(database)).conn.close()
    with sqlite3.connect(database) as old:  # as schema 1 had it: no versions
        old.execute("DROP TRIGGER orders_versioned")
        for table in ("orders", "orders_cache"):
            old.execute(f"ALTER TABLE {table} DROP COLUMN version")
        old.execute("PRAGMA user_version = 1")
    term = mt5sim.Terminal(tmp_path / "t")
    first = term.orders_get()
    assert [order.ticket for order in first] == [ticket]
    assert term.order_send({"action": mt5sim.TRADE_ACTION_MODIFY, "order": ticket,
                            "price": round(first[0].price_open - 0.0001, 5), "sl": 0.0, "tp": 0.0}).retcode == \
        mt5sim.TRADE_RETCODE_DONE
    assert term.orders_get()[0].price_open == round(first[0].price_open - 0.0001, 5)  # versions move again
