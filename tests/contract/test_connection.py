"""Contract: attaching to a terminal, knowing whose account it is, and what the terminal says of itself."""

from __future__ import annotations

import os
from pathlib import PurePath

from protocol import CommandKind, CommandStatus
from terminal_worker.adapter import MT5Adapter
from tests.contract.venue import Venue


def test_connect_reads_back_the_configured_account(venue: Venue):
    account = venue.adapter.account_facts()
    assert (account.login, account.server) == (venue.adapter.login, venue.adapter.server)
    assert venue.adapter.connected
    assert venue.adapter.account_problem() is None
    assert account.currency and account.leverage > 0 and account.balance >= 0
    assert account.trade_allowed, "the account may not trade (logged in with the investor password?)"
    assert account.trade_expert, "the broker does not allow algorithmic trading on this account"


def test_a_wrong_configured_account_is_reported_and_refuses_trades_without_failing(venue: Venue):
    _, order = venue.place(venue.command())
    login, server = venue.adapter.login, venue.adapter.server
    # A second adapter over the same terminal link, configured for another account: what a worker sees when
    # someone logged the terminal into another account (the link stays; only the account differs).
    wrong = MT5Adapter(venue.module, path=venue.adapter.terminal_path, login=login + 1, server=server)
    problem = wrong.account_problem()
    assert problem == (f"terminal at {venue.adapter.terminal_path} is logged into account {login}@{server}, "
                       f"configured {login + 1}@{server}")
    venue.module.forget()
    commands = [
        venue.command(),
        venue.modify(order, sl=0.0),
        venue.remove(order.ticket, order.magic),
    ]
    for command in commands:
        result = wrong.execute(command)
        assert result.status is CommandStatus.REJECTED, command.kind
        assert problem in result.comment and result.comment.endswith("not sent")
        assert result.retcode == 0 and result.error_code == 0  # not final: retried once the account is right
    assert venue.module.sent == []
    assert venue.pending(order.ticket) == order
    # Not fatal: the right adapter goes on as before.
    assert venue.adapter.account_problem() is None
    assert venue.adapter.execute(venue.remove(order.ticket, order.magic)).status is CommandStatus.DONE


def test_terminal_facts_say_it_is_connected_and_may_trade(venue: Venue):
    facts = venue.adapter.terminal_facts()
    assert facts.connected, "the terminal is not connected to its broker"
    assert facts.trade_allowed, "Algo Trading (AutoTrading) is off in the terminal"
    assert not facts.tradeapi_disabled, "the terminal disables trading through the Python API"
    assert facts.build > 0 and facts.name and facts.company
    # The configured path is the terminal's folder or a file in it (terminal64.exe).
    configured = PurePath(os.path.normcase(venue.adapter.terminal_path))
    folder = PurePath(os.path.normcase(facts.path))
    assert folder in (configured, configured.parent), (facts.path, venue.adapter.terminal_path)
    assert facts.data_path


def test_a_disconnected_adapter_connects_again_and_finds_its_orders(venue: Venue):
    _, order = venue.place(venue.command())
    venue.adapter.disconnect()
    assert not venue.adapter.connected
    venue.adapter.connect()
    assert venue.adapter.connected and venue.adapter.account_problem() is None
    assert venue.listed(order.ticket) == order
    assert venue.adapter.find_copy(order.magic) == order.ticket
    assert venue.adapter.execute(venue.command(CommandKind.REMOVE, source_ticket=order.magic,
                                               ticket=order.ticket)).status is CommandStatus.DONE
