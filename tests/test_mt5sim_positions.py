"""mt5sim positions as the copier relies on them: a position named by the order that opened it, its deals,
SL/TP and partial closes, what a request on a closed or frozen position answers, Instant execution's price
and deviation, and netting accounts (one position per symbol)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mt5sim as mt5
from mt5sim import Terminal

BUY, SELL, BUY_LIMIT = 0, 1, 2


@pytest.fixture
def term(tmp_path: Path) -> Terminal:
    """EURUSD at 1.08500/1.08512, stops level 10 points, freeze level 5 points (the presets)."""
    return Terminal(mt5.create_terminal(tmp_path / "t", login=1001, server="Sim"))


@pytest.fixture
def netting(tmp_path: Path) -> Terminal:
    return Terminal(mt5.create_terminal(tmp_path / "n", login=1002, server="Sim",
                                        margin_mode=mt5.ACCOUNT_MARGIN_MODE_RETAIL_NETTING))


def send(term: Terminal, request: dict[str, Any]) -> Any:
    result = term.order_send(request)
    assert result is not None, term.last_error()
    return result


def deal(term: Terminal, order_type: int, volume: float = 0.3, **fields: Any) -> Any:
    request = {"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": volume, "type": order_type,
               "type_filling": mt5.ORDER_FILLING_FOK}
    request.update(fields)
    return send(term, request)


def sltp(term: Terminal, ticket: int, sl: float, tp: float) -> Any:
    return send(term, {"action": mt5.TRADE_ACTION_SLTP, "position": ticket, "symbol": "EURUSD", "sl": sl, "tp": tp})


def test_a_filled_pending_order_names_its_position_and_every_deal_of_it(term: Terminal) -> None:
    placed = send(term, {"action": mt5.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.3, "type": BUY_LIMIT,
                         "price": 1.084, "type_filling": mt5.ORDER_FILLING_RETURN, "magic": 42, "comment": "mtc#42"})
    term.set_quote("EURUSD", 1.0838, 1.0839)
    [position] = term.positions_get()
    assert (position.ticket, position.identifier, position.magic, position.comment) == (
        placed.order, placed.order, 42, "mtc#42")
    closed = deal(term, SELL, 0.1, position=position.ticket, magic=7, comment="partial")
    assert closed.retcode == 10009 and (closed.volume, closed.price) == (0.1, 1.0838)
    [position] = term.positions_get()
    assert (position.volume, position.magic, position.comment) == (pytest.approx(0.2), 42, "mtc#42")
    deals = term.history_deals_get(position=placed.order)
    assert [(d.entry, d.volume, d.position_id) for d in deals] == [
        (mt5.DEAL_ENTRY_IN, 0.3, placed.order), (mt5.DEAL_ENTRY_OUT, 0.1, placed.order)]
    assert (deals[1].order, deals[1].magic, deals[1].comment) == (closed.order, 7, "partial")
    [closing_order] = term.history_orders_get(ticket=closed.order)
    assert (closing_order.position_id, closing_order.state) == (placed.order, mt5.ORDER_STATE_FILLED)


def test_a_take_profit_closes_the_position_with_its_reason(term: Terminal) -> None:
    opened = deal(term, BUY, tp=1.086)
    term.set_quote("EURUSD", 1.0861, 1.0862)
    assert term.positions_get() == ()
    out = term.history_deals_get(position=opened.order)[-1]
    assert (out.entry, out.reason, out.price, out.volume) == (mt5.DEAL_ENTRY_OUT, mt5.DEAL_REASON_TP, 1.0861, 0.3)
    assert out.comment == "[tp 1.08600]" and out.position_id == opened.order


def test_a_request_on_a_closed_position_answers_10036_and_on_an_unknown_one_10013(term: Terminal) -> None:
    opened = deal(term, BUY)
    assert deal(term, SELL, position=opened.order).retcode == 10009
    assert sltp(term, opened.order, 1.08, 1.09).retcode == mt5.TRADE_RETCODE_POSITION_CLOSED
    assert deal(term, SELL, position=opened.order).retcode == mt5.TRADE_RETCODE_POSITION_CLOSED
    assert term.order_check({"action": mt5.TRADE_ACTION_SLTP, "position": opened.order, "symbol": "EURUSD",
                             "sl": 1.08, "tp": 0.0}).retcode == mt5.TRADE_RETCODE_POSITION_CLOSED
    assert sltp(term, 987_654_321, 1.08, 1.09).retcode == mt5.TRADE_RETCODE_INVALID
    assert deal(term, SELL, position=987_654_321).retcode == mt5.TRADE_RETCODE_INVALID


def test_sltp_that_changes_nothing_answers_10025_despite_float_noise_and_updates_time_otherwise(term: Terminal) -> None:
    opened = deal(term, BUY)
    [before] = term.positions_get()
    term.shift_time(5)
    assert sltp(term, opened.order, 1.08, 1.09).retcode == 10009
    [after] = term.positions_get()
    assert after.time_update_msc >= before.time_update_msc + 5000 and after.time_msc == before.time_msc
    assert sltp(term, opened.order, 1.08 + 1e-14, 1.09 - 1e-14).retcode == mt5.TRADE_RETCODE_NO_CHANGES


def test_a_position_whose_stop_is_within_the_freeze_level_can_be_neither_modified_nor_closed(term: Terminal) -> None:
    opened = deal(term, BUY)
    assert sltp(term, opened.order, 1.0848, 0.0).retcode == 10009  # 20 points under the bid
    term.set_quote("EURUSD", 1.08484, 1.08496)  # 4 points over the stop loss: frozen (freeze level 5)
    assert sltp(term, opened.order, 1.0840, 0.0).retcode == mt5.TRADE_RETCODE_FROZEN
    assert deal(term, SELL, position=opened.order).retcode == mt5.TRADE_RETCODE_FROZEN
    term.set_quote("EURUSD", 1.0850, 1.08512)
    assert deal(term, SELL, position=opened.order).retcode == 10009


def test_sltp_on_a_disabled_symbol_answers_10017(term: Terminal) -> None:
    opened = deal(term, BUY)
    term.set_symbol("EURUSD", trade_mode=mt5.SYMBOL_TRADE_MODE_DISABLED)
    assert sltp(term, opened.order, 1.08, 1.09).retcode == mt5.TRADE_RETCODE_TRADE_DISABLED


def test_instant_execution_deals_at_the_price_asked_within_the_deviation(term: Terminal) -> None:
    term.set_symbol("EURUSD", trade_exemode=mt5.SYMBOL_TRADE_EXECUTION_INSTANT, filling_mode=1)
    assert deal(term, BUY).retcode == mt5.TRADE_RETCODE_INVALID_PRICE  # no price
    assert deal(term, BUY, price=1.0850, deviation=11).retcode == mt5.TRADE_RETCODE_REQUOTE  # 12 points away
    opened = deal(term, BUY, price=1.0850, deviation=12)
    assert (opened.retcode, opened.price) == (10009, 1.08512)
    assert deal(term, SELL, position=opened.order, price=1.0850, deviation=0).retcode == 10009
    term.set_symbol("EURUSD", trade_exemode=mt5.SYMBOL_TRADE_EXECUTION_MARKET)
    assert deal(term, BUY).retcode == 10009  # Market execution ignores both fields


def test_netting_fills_merge_into_one_position_and_an_opposite_fill_reduces_or_reverses_it(netting: Terminal) -> None:
    first = deal(netting, BUY, 0.1, magic=5, comment="mtc#5")
    placed = send(netting, {"action": mt5.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.2, "type": BUY_LIMIT,
                            "price": 1.084, "type_filling": mt5.ORDER_FILLING_RETURN, "magic": 6, "comment": "mtc#6"})
    netting.set_quote("EURUSD", 1.0838, 1.0839)  # the pending order fills into the open position
    [position] = netting.positions_get()
    assert (position.ticket, position.identifier, position.volume) == (first.order, first.order, pytest.approx(0.3))
    assert (position.magic, position.comment) == (5, "mtc#5")  # the position's, from the order that opened it
    assert netting.history_deals_get(ticket=placed.order)[0].position_id == first.order

    reduce = deal(netting, SELL, 0.1)
    [position] = netting.positions_get()
    assert position.volume == pytest.approx(0.2)
    reverse = deal(netting, SELL, 0.5)
    [position] = netting.positions_get()
    assert (position.identifier, position.ticket, position.type) == (first.order, reverse.order, mt5.POSITION_TYPE_SELL)
    assert position.volume == pytest.approx(0.3)
    entries = [(d.entry, d.volume) for d in netting.history_deals_get(position=first.order)]
    assert entries == [(mt5.DEAL_ENTRY_IN, 0.1), (mt5.DEAL_ENTRY_IN, 0.2), (mt5.DEAL_ENTRY_OUT, 0.1),
                       (mt5.DEAL_ENTRY_INOUT, 0.5)]
    assert reduce.retcode == 10009
