"""The MT5 adapter against mt5sim: connection failures are classified, placement is idempotent."""

from __future__ import annotations

import pytest

import mt5sim
from protocol import Command, CommandKind, CommandStatus
from protocol.tags import copy_tag
from terminal_worker.adapter import MT5Adapter
from terminal_worker.errors import TerminalError, TerminalProblem
from tests.simhelpers import BUY_LIMIT, create, place_pending


@pytest.fixture
def terminal(tmp_path):
    return create(tmp_path / "t", 2001, "Alpha-Live", password="secret")


@pytest.fixture
def adapter(terminal, tmp_path):
    adapter = MT5Adapter(mt5sim, path=tmp_path / "t", login=2001, server="Alpha-Live")
    adapter.connect()
    yield adapter
    adapter.disconnect()


def place_command(source_ticket: int, price: float = 1.08, **fields) -> Command:
    values = dict(command_id=f"c{source_ticket}", kind=CommandKind.PLACE, source_ticket=source_ticket,
                  symbol="EURUSD", order_type=BUY_LIMIT, volume=0.1, price=price, magic=source_ticket,
                  comment=copy_tag(source_ticket))
    values.update(fields)
    return Command(**values)


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda t, p: {"path": p / "nowhere"}, TerminalProblem.NOT_FOUND),
        (lambda t, p: {"password": "wrong"}, TerminalProblem.AUTHORIZATION_FAILED),
        (lambda t, p: {"login": 9999}, TerminalProblem.AUTHORIZATION_FAILED),
        (lambda t, p: mt5sim.stop_terminal(p / "t") or {}, TerminalProblem.IPC_TIMEOUT),
    ],
    ids=["not-found", "wrong-password", "wrong-login", "terminal-stopped"],
)
def test_connection_failures_are_classified(terminal, tmp_path, setup, problem):
    arguments = dict(path=tmp_path / "t", login=2001, server="Alpha-Live")
    arguments.update(setup(terminal, tmp_path))
    with pytest.raises(TerminalError) as caught:
        MT5Adapter(mt5sim, **arguments).connect()
    assert caught.value.problem is problem
    assert not caught.value.fatal


def test_a_terminal_not_found_names_the_path_it_tried(tmp_path):
    with pytest.raises(TerminalError) as caught:
        MT5Adapter(mt5sim, path=tmp_path / "nowhere", login=2001, server="Alpha-Live").connect()
    assert caught.value.problem is TerminalProblem.NOT_FOUND
    assert str(tmp_path / "nowhere") in str(caught.value)


def test_a_terminal_switched_to_another_account_refuses_every_trade_until_it_is_back(adapter, terminal, tmp_path):
    placed = adapter.execute(place_command(700))
    assert placed.status is CommandStatus.DONE
    mt5sim.set_account(tmp_path / "t", login=2002)
    assert adapter.account_problem() == (
        f"terminal at {tmp_path / 't'} is logged into account 2002@Alpha-Live, configured 2001@Alpha-Live")
    commands = [
        place_command(701),
        Command(command_id="m", kind=CommandKind.MODIFY, source_ticket=700, symbol="EURUSD", ticket=placed.ticket,
                price=1.07),
        Command(command_id="r", kind=CommandKind.REMOVE, source_ticket=700, symbol="EURUSD", ticket=placed.ticket),
    ]
    for command in commands:
        result = adapter.execute(command)
        assert result.status is CommandStatus.REJECTED, command.kind
        assert "2002@Alpha-Live" in result.comment and "configured 2001@Alpha-Live" in result.comment
        assert result.retcode == 0 and result.error_code == 0  # not final: retried once the account is back
    assert [order.price_open for order in terminal.orders_get()] == [1.08]  # nothing reached order_send

    mt5sim.set_account(tmp_path / "t", login=2001)
    assert adapter.account_problem() is None
    assert adapter.execute(place_command(701, command_id="again")).status is CommandStatus.DONE
    assert len(terminal.orders_get()) == 2


def test_place_twice_sends_once(adapter, terminal):
    first = adapter.execute(place_command(777))
    second = adapter.execute(place_command(777, command_id="again"))
    assert first.status is CommandStatus.DONE and not first.already_existed
    assert second.status is CommandStatus.DONE and second.already_existed and second.ticket == first.ticket
    assert len(terminal.orders_get()) == 1


def test_a_copy_that_became_a_position_is_not_placed_again(adapter, terminal, tmp_path):
    placed = adapter.execute(place_command(778, price=1.08500))
    mt5sim.set_quote(tmp_path / "t", "EURUSD", 1.0848, 1.0849)  # the buy limit fills
    assert terminal.orders_get() == ()
    again = adapter.execute(place_command(778, command_id="again", price=1.08500))
    assert again.status is CommandStatus.DONE and again.already_existed and again.ticket == placed.ticket
    assert terminal.orders_get() == ()


def test_foreign_order_with_the_same_magic_does_not_count_as_a_copy(adapter, terminal):
    place_pending(terminal, BUY_LIMIT, magic=779, comment="grid EA")
    result = adapter.execute(place_command(779))
    assert result.status is CommandStatus.DONE and not result.already_existed
    assert len(terminal.orders_get()) == 2


def test_broker_rejection_is_reported_with_its_retcode(adapter):
    result = adapter.execute(place_command(780, price=1.2))  # a buy limit above the market
    assert result.status is CommandStatus.REJECTED and result.retcode == 10015


def test_injected_retcodes_are_reported_and_change_nothing(adapter, terminal, tmp_path):
    mt5sim.inject_retcode(tmp_path / "t", 10004)
    result = adapter.execute(place_command(781))
    assert result.status is CommandStatus.REJECTED and result.retcode == 10004
    assert terminal.orders_get() == ()


def test_place_without_the_tag_is_refused_locally(adapter, terminal):
    result = adapter.execute(place_command(782, comment="whatever"))
    assert result.status is CommandStatus.REFUSED and terminal.orders_get() == ()


def test_terminal_dying_mid_request_resolves_to_the_copy_it_placed(adapter, terminal, tmp_path):
    # Half the latency is spent after the order is placed; the terminal stops during that half.
    mt5sim.set_latency(tmp_path / "t", 0.6)
    import threading

    threading.Timer(0.45, mt5sim.stop_terminal, args=(tmp_path / "t",)).start()
    result = adapter.execute(place_command(783))
    assert result.status in (CommandStatus.UNKNOWN, CommandStatus.DONE)
    mt5sim.start_terminal(tmp_path / "t")
    mt5sim.set_latency(tmp_path / "t", 0.0)
    adapter.connect()
    again = adapter.execute(place_command(783, command_id="retry"))
    assert again.status is CommandStatus.DONE and again.already_existed
    assert len(terminal.orders_get()) == 1


def test_modify_to_identical_values_counts_as_done(adapter, terminal):
    placed = adapter.execute(place_command(784))
    order = terminal.orders_get(ticket=placed.ticket)[0]
    modify = Command(command_id="m", kind=CommandKind.MODIFY, source_ticket=784, symbol="EURUSD", ticket=placed.ticket,
                     price=order.price_open, sl=order.sl, tp=order.tp, type_time=order.type_time)
    assert adapter.execute(modify).status is CommandStatus.DONE


def test_remove_of_an_order_already_gone_counts_as_done(adapter):
    remove = Command(command_id="r", kind=CommandKind.REMOVE, source_ticket=785, symbol="EURUSD", ticket=123456)
    assert adapter.execute(remove).status is CommandStatus.DONE


def test_pending_orders_are_reported_with_their_fields(adapter, terminal):
    ticket = place_pending(terminal, 6, volume=0.3)
    [order] = adapter.pending_orders()
    original = terminal.orders_get(ticket=ticket)[0]
    assert (order.ticket, order.type, order.volume, order.price_open, order.price_stoplimit, order.sl, order.tp) == (
        ticket, 6, 0.3, original.price_open, original.price_stoplimit, original.sl, original.tp)


def test_closed_order_reports_its_fate_from_history(adapter, terminal, tmp_path):
    ticket = place_pending(terminal, BUY_LIMIT)
    terminal.order_send({"action": mt5sim.TRADE_ACTION_REMOVE, "order": ticket})
    closed = adapter.closed_order(ticket)
    assert closed is not None and closed.state == mt5sim.ORDER_STATE_CANCELED
    assert adapter.closed_order(99999999) is None


def test_symbol_specs_select_and_describe_and_list_the_missing(adapter):
    specs, missing = adapter.symbol_specs(["EURUSD", "NOPE"])
    assert [spec.name for spec in specs] == ["EURUSD"] and missing == ("NOPE",)
    assert specs[0].volume_step == 0.01 and specs[0].digits == 5
