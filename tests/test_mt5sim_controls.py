"""mt5sim controls (retcode injection, latency, sessions, connection, AutoTrading, process stop) and sharing
one terminal between processes."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mt5sim as mt5
from mt5sim import Terminal

REPO = Path(__file__).resolve().parents[1]
NO_IPC = (-10004, "No IPC connection")


@pytest.fixture(autouse=True)
def _detached() -> Iterator[None]:
    mt5.shutdown()
    yield
    mt5.shutdown()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return mt5.create_terminal(tmp_path / "t", login=1001, server="Sim")


@pytest.fixture
def term(path: Path) -> Terminal:
    return Terminal(path)


def buy_limit(price: float = 1.08, **fields: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "action": mt5.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": mt5.ORDER_TYPE_BUY_LIMIT,
        "price": price,
        "type_filling": mt5.ORDER_FILLING_RETURN,
    }
    request.update(fields)
    return request


# ---- inject_retcode ------------------------------------------------------------------------------------


def test_injected_retcodes_answer_the_next_requests_and_change_nothing(path: Path, term: Terminal) -> None:
    mt5.inject_retcode(path, mt5.TRADE_RETCODE_REQUOTE, count=2)
    for _ in range(2):
        result = term.order_send(buy_limit())
        assert (result.retcode, result.comment, result.order, result.deal) == (10004, "Requote", 0, 0)
        assert (result.bid, result.ask) == (1.085, 1.08512)
        assert result.request.price == 1.08
    assert term.orders_get() == ()
    assert term.order_send(buy_limit()).retcode == 10009


@pytest.mark.parametrize(
    ("retcode", "comment"),
    [
        (10012, "Request timed out"),
        (10024, "Too frequent requests"),
        (10028, "Request locked for processing"),
        (10021, "No prices"),
        (10020, "Prices changed"),
    ],
)
def test_injected_retcodes_carry_their_description(term: Terminal, retcode: int, comment: str) -> None:
    term.inject_retcode(retcode)
    assert term.order_send(buy_limit()).comment == comment


def test_order_check_does_not_consume_injected_retcodes(term: Terminal) -> None:
    term.inject_retcode(mt5.TRADE_RETCODE_TIMEOUT)
    assert term.order_check(buy_limit()).retcode == 0
    assert term.order_send(buy_limit()).retcode == 10012
    assert term.order_send(buy_limit()).retcode == 10009


def test_injection_applies_to_every_process_of_the_terminal(path: Path, term: Terminal) -> None:
    term.inject_retcode(mt5.TRADE_RETCODE_TIMEOUT)
    assert mt5.initialize(str(path))
    assert mt5.order_send(buy_limit()).retcode == 10012
    assert term.order_send(buy_limit()).retcode == 10009


# ---- set_latency ---------------------------------------------------------------------------------------


def test_latency_delays_order_send_without_blocking_readers(path: Path, term: Terminal) -> None:
    mt5.set_latency(path, 0.6)
    results: list[Any] = []
    sender = threading.Thread(target=lambda: results.append(Terminal(path).order_send(buy_limit())))
    started = time.monotonic()
    sender.start()
    time.sleep(0.1)
    read_started = time.monotonic()
    assert term.orders_total() == 0  # the request is still travelling
    assert term.symbol_info_tick("EURUSD") is not None
    assert time.monotonic() - read_started < 0.2
    sender.join(timeout=5)
    assert time.monotonic() - started >= 0.6
    assert results[0].retcode == 10009
    assert term.orders_total() == 1
    assert term.order_check(buy_limit()).retcode == 0  # order_check has no round trip


def test_a_terminal_stopping_during_the_round_trip_loses_the_answer_but_not_the_order(
    path: Path, term: Terminal
) -> None:
    term.set_latency(0.4)
    assert mt5.initialize(str(path))
    results: list[Any] = []
    sender = threading.Thread(target=lambda: results.append((mt5.order_send(buy_limit()), mt5.last_error())))
    sender.start()
    deadline = time.monotonic() + 5
    while term.orders_total() == 0 and time.monotonic() < deadline:  # executed; the answer is on its way
        time.sleep(0.01)
    term.stop_terminal()
    sender.join(timeout=5)
    assert results == [(None, NO_IPC)]
    term.start_terminal()
    assert len(term.orders_get()) == 1  # executed: the outcome must be reconciled, never blindly resent


# ---- set_session, set_connected, set_autotrading -------------------------------------------------------


def test_closed_session_refuses_place_modify_and_remove(path: Path, term: Terminal) -> None:
    ticket = term.order_send(buy_limit()).order
    mt5.set_session(path, "EURUSD", False)
    assert term.order_send(buy_limit()).retcode == 10018
    modify = {"action": mt5.TRADE_ACTION_MODIFY, "order": ticket, "price": 1.079}
    assert term.order_send(modify).retcode == 10018
    assert term.order_send({"action": mt5.TRADE_ACTION_REMOVE, "order": ticket}).retcode == 10018
    assert term.order_send(buy_limit(symbol="GBPUSD", price=1.26)).retcode == 10009  # other symbols trade
    mt5.set_session(path, "EURUSD", True)
    assert term.order_send(modify).retcode == 10009


def test_a_lost_order_vanishes_without_a_history_record(path: Path, term: Terminal) -> None:
    kept, lost = term.order_send(buy_limit()).order, term.order_send(buy_limit(price=1.07)).order
    mt5.lose_order(path, lost)
    assert [o.ticket for o in term.orders_get()] == [kept]
    assert term.history_orders_get(ticket=lost) is None
    with pytest.raises(KeyError):
        mt5.lose_order(path, lost)


def test_disconnected_terminal_answers_from_its_cache(path: Path, term: Terminal) -> None:
    ticket = term.order_send(buy_limit()).order
    mt5.set_connected(path, False)
    assert term.terminal_info().connected is False
    assert term.terminal_info().ping_last == 0
    result = term.order_send(buy_limit())
    assert (result.retcode, result.comment) == (10031, "No connection with the trade server")
    # The server fills the order meanwhile; the terminal still shows what it knew.
    mt5.set_quote(path, "EURUSD", 1.0790, 1.07912)
    assert [o.ticket for o in term.orders_get()] == [ticket]
    assert term.positions_get() == ()
    assert term.history_orders_get(ticket=ticket) is None
    mt5.set_connected(path, True)
    assert term.orders_get() == ()
    assert term.positions_get()[0].ticket == ticket
    assert term.history_orders_get(ticket=ticket)[0].state == mt5.ORDER_STATE_FILLED


def test_autotrading_button(path: Path, term: Terminal) -> None:
    mt5.set_autotrading(path, False)
    assert term.terminal_info().trade_allowed is False
    result = term.order_send(buy_limit())
    assert (result.retcode, result.comment) == (10027, "AutoTrading disabled by client")
    assert term.orders_get() == ()
    mt5.set_autotrading(path, True)
    assert term.terminal_info().trade_allowed is True
    assert term.order_send(buy_limit()).retcode == 10009


# ---- stop_terminal / start_terminal --------------------------------------------------------------------


def test_stopped_terminal_fails_every_call_and_initialize(path: Path) -> None:
    assert mt5.initialize(str(path))
    mt5.stop_terminal(path)
    assert mt5.orders_get() is None
    assert mt5.last_error() == NO_IPC
    assert mt5.account_info() is None
    assert mt5.symbol_select("EURUSD", True) is False
    assert mt5.last_error() == NO_IPC
    assert mt5.order_send(buy_limit()) is None
    assert mt5.last_error() == NO_IPC
    assert mt5.initialize(str(path)) is False
    assert mt5.last_error() == (-10005, "IPC timeout")
    handle = Terminal(path)
    assert handle.orders_get() is None
    assert handle.last_error() == NO_IPC


def test_after_a_restart_attached_processes_must_initialize_again(path: Path, term: Terminal) -> None:
    assert mt5.initialize(str(path))
    ticket = mt5.order_send(buy_limit()).order
    mt5.stop_terminal(path)
    mt5.start_terminal(path)
    assert mt5.orders_get() is None  # the old IPC link died with the old terminal process
    assert mt5.last_error() == NO_IPC
    assert [o.ticket for o in term.orders_get()] == [ticket]  # a handle simply reads again
    assert mt5.initialize(str(path))
    assert [o.ticket for o in mt5.orders_get()] == [ticket]


# ---- set_account, set_symbol, shift_time ----------------------------------------------------------------


def test_set_account_and_set_symbol(path: Path, term: Terminal) -> None:
    mt5.set_account(path, balance=2500.0, limit_orders=7, name="Alice")
    account = term.account_info()
    assert (account.balance, account.equity, account.limit_orders, account.name) == (2500.0, 2500.0, 7, "Alice")
    mt5.set_account(path, equity=100.0)
    assert (term.account_info().equity, term.account_info().margin_free) == (100.0, 100.0)
    assert term.order_send(buy_limit(volume=1.0)).retcode == 10019
    mt5.set_account(path, equity=None)
    assert term.account_info().equity == 2500.0
    mt5.set_symbol(path, "EURUSD", trade_stops_level=0, volume_step=0.05, trade_mode=mt5.SYMBOL_TRADE_MODE_CLOSEONLY)
    info = term.symbol_info("EURUSD")
    assert (info.trade_stops_level, info.volume_step, info.trade_mode) == (0, 0.05, 3)
    with pytest.raises(ValueError):
        mt5.set_symbol(path, "EURUSD", bid=1.0)
    with pytest.raises(ValueError):
        mt5.set_account(path, no_such_field=1)
    with pytest.raises(KeyError):
        mt5.set_symbol(path, "NOPE", digits=2)


def test_shift_time_moves_the_server_clock(path: Path, term: Terminal) -> None:
    before = mt5.server_time(path)
    mt5.shift_time(path, 3600)
    assert mt5.server_time(path) - before == pytest.approx(3600, abs=1)
    mt5.set_quote(path, "EURUSD", 1.0851, 1.08522)
    assert term.symbol_info_tick("EURUSD").time == pytest.approx(time.time() + 3600, abs=2)


def test_controls_refuse_unknown_terminals_and_bad_quotes(tmp_path: Path, path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        mt5.set_quote(tmp_path / "none", "EURUSD", 1.0, 1.1)
    with pytest.raises(ValueError):
        mt5.set_quote(path, "EURUSD", 1.1, 1.0)
    with pytest.raises(KeyError):
        mt5.set_quote(path, "NOPE", 1.0, 1.1)


# ---- several processes on one terminal ------------------------------------------------------------------

PLACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import mt5sim as mt5

    path, start_flag, offset = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    assert mt5.initialize(path), mt5.last_error()
    deadline = time.monotonic() + 20
    while not start_flag.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    for index in range(30):
        price = round(1.08 - (offset + index) * 0.0001, 5)
        result = mt5.order_send({"action": mt5.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.01,
                                 "type": mt5.ORDER_TYPE_BUY_LIMIT, "price": price, "magic": offset + index,
                                 "type_filling": mt5.ORDER_FILLING_RETURN})
        assert result is not None and result.retcode == 10009, (result, mt5.last_error())
        print(result.order, flush=True)
    mt5.shutdown()
    """
)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MT5SIM_PATH", None)
    return env


def test_two_processes_place_sixty_orders_concurrently(path: Path, tmp_path: Path) -> None:
    start_flag = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PLACER, str(path), str(start_flag), str(offset)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
            cwd=REPO,
        )
        for offset in (0, 100)
    ]
    try:
        time.sleep(0.3)  # let both attach before they race
        start_flag.touch()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    reported = [int(line) for stdout, _ in outputs for line in stdout.split()]
    orders = Terminal(path).orders_get()
    assert len(orders) == 60
    assert len({o.ticket for o in orders}) == 60
    assert sorted(reported) == [o.ticket for o in orders]
    assert sorted(o.magic for o in orders) == [*range(30), *range(100, 130)]


def test_a_process_sees_orders_another_process_placed(path: Path, term: Terminal) -> None:
    script = textwrap.dedent(
        """
        import sys
        import mt5sim as mt5
        assert mt5.initialize(sys.argv[1])
        result = mt5.order_send({"action": mt5.TRADE_ACTION_PENDING, "symbol": "GBPUSD", "volume": 0.1,
                                 "type": mt5.ORDER_TYPE_SELL_STOP, "price": 1.26, "comment": "from child",
                                 "type_filling": mt5.ORDER_FILLING_RETURN})
        print(result.order)
        """
    )
    assert mt5.initialize(str(path))
    completed = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=_environment(), timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    ticket = int(completed.stdout)
    assert [(o.ticket, o.comment) for o in mt5.orders_get()] == [(ticket, "from child")]
    # ... and the child sees what this process placed, while this process is still attached.
    mine = mt5.order_send(buy_limit()).order
    reader = "import sys, mt5sim as mt5; mt5.initialize(sys.argv[1]); print([o.ticket for o in mt5.orders_get()])"
    completed = subprocess.run(
        [sys.executable, "-c", reader, str(path)], capture_output=True, text=True, env=_environment(), timeout=60
    )
    assert completed.stdout.strip() == str([ticket, mine])


def _place_in_child(path: str, queue: Any) -> None:
    queue.put(Terminal(path).order_send(buy_limit(price=1.07)).order)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_reopens_its_own_connection(path: Path, term: Terminal) -> None:
    first = term.order_send(buy_limit()).order  # the parent's connection is open before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_place_in_child, args=(str(path), queue))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    second = queue.get(timeout=5)
    assert [o.ticket for o in term.orders_get()] == [first, second]
    assert term.order_send(buy_limit(price=1.06)).retcode == 10009


def test_a_terminal_deleted_and_created_again_is_reopened(tmp_path: Path) -> None:
    import shutil

    path = mt5.create_terminal(tmp_path / "t", login=1, server="S")
    assert Terminal(path).order_send(buy_limit()).retcode == 10009
    shutil.rmtree(path)
    mt5.create_terminal(path, login=2, server="S")
    assert Terminal(path).orders_get() == ()
    assert Terminal(path).account_info().login == 2


def test_a_deleted_terminal_is_noticed_by_reads_answered_from_memory_within_a_moment(tmp_path: Path) -> None:
    import shutil

    from mt5sim.store import IDENTITY_TRUSTED_SECONDS

    path = mt5.create_terminal(tmp_path / "t", login=1, server="S")
    term = Terminal(path)
    assert term.orders_get() == () and term.orders_get() == ()  # the second from memory
    shutil.rmtree(path)
    time.sleep(IDENTITY_TRUSTED_SECONDS + 0.05)
    with pytest.raises(FileNotFoundError):
        term.orders_get()


def test_a_tick_answered_from_memory_has_the_time_of_now_and_a_new_price_at_once(term: Terminal) -> None:
    first = term.symbol_info_tick("EURUSD")
    time.sleep(0.02)
    second = term.symbol_info_tick("EURUSD")
    assert (second.bid, second.ask) == (first.bid, first.ask)
    assert second.time_msc >= first.time_msc + 15  # an open market's latest tick is now on the server clock
    term.set_quote("EURUSD", 1.2, 1.2002)
    assert (term.symbol_info_tick("EURUSD").bid, term.symbol_info_tick("EURUSD").ask) == (1.2, 1.2002)
    assert term.symbol_info_tick("NOSUCH") is None and term.last_error()[0] == mt5.RES_E_NOT_FOUND


def test_orders_get_after_a_change_fetches_the_order_list_and_the_changed_row_alone(path: Path, term: Terminal) -> None:
    from mt5sim import store

    for index in range(5):
        term.order_send(buy_limit(price=round(1.08 - index * 0.0001, 5)))
    first = term.orders_get()
    assert term.order_send({"action": mt5.TRADE_ACTION_MODIFY, "order": first[2].ticket, "price": 1.0701,
                            "sl": 0.0, "tp": 0.0}).retcode == mt5.TRADE_RETCODE_DONE
    statements: list[str] = []
    connection = store._handles[str(path / store.DB_NAME)].conn
    connection.set_trace_callback(statements.append)
    try:
        after = term.orders_get()
    finally:
        connection.set_trace_callback(None)
    assert [order.price_open for order in after][2] == 1.0701 and after[0] is first[0]
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # The status, each order's ticket and version, then the one row that changed.
    assert len(selects) == 3 and selects[2].endswith(f"o.ticket IN ({first[2].ticket}) ORDER BY o.ticket"), selects
