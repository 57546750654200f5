"""The MT5 adapter against what only mt5sim can stage: broken terminals, a switched account, injected
retcodes, a terminal dying mid-request. What every MT5 module must do for the adapter (placing, reading,
modifying, removing, idempotent placement, history, symbols, quotes) is the contract suite in
tests/contract/, run over mt5sim always and over a real demo terminal when asked."""

from __future__ import annotations

import pytest

import mt5sim
from protocol import Command, CommandKind, CommandStatus
from protocol.tags import copy_tag
from terminal_worker.adapter import MT5Adapter
from terminal_worker.errors import TerminalError, TerminalProblem
from tests.simhelpers import BUY_LIMIT, create


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


def test_broker_rejection_is_reported_with_its_retcode(adapter):
    result = adapter.execute(place_command(780, price=1.2))  # a buy limit above the market
    assert result.status is CommandStatus.REJECTED and result.retcode == 10015


def test_injected_retcodes_are_reported_and_change_nothing(adapter, terminal, tmp_path):
    mt5sim.inject_retcode(tmp_path / "t", 10004)
    result = adapter.execute(place_command(781))
    assert result.status is CommandStatus.REJECTED and result.retcode == 10004
    assert terminal.orders_get() == ()


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
