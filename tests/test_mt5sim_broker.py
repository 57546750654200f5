"""mt5sim broker rules: every order_send check with its retcode, success results, triggers and expiry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mt5sim as mt5
from mt5sim import Terminal

BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP = 2, 3, 4, 5
BUY_STOP_LIMIT, SELL_STOP_LIMIT = 6, 7
PENDING_TYPES = (BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP, BUY_STOP_LIMIT, SELL_STOP_LIMIT)
BELOW_MARKET = (BUY_LIMIT, SELL_STOP, SELL_STOP_LIMIT)


@pytest.fixture
def term(tmp_path: Path) -> Terminal:
    """EURUSD at 1.08500/1.08512, stops level 10 points, freeze level 5 points."""
    return Terminal(mt5.create_terminal(tmp_path / "t", login=1001, server="Sim"))


def is_buy(order_type: int) -> bool:
    return order_type % 2 == 0


def pending(
    term: Terminal,
    order_type: int,
    *,
    symbol: str = "EURUSD",
    distance: float = 100,
    stops: float | None = 100,
    stoplimit_offset: float = 50,
    **fields: Any,
) -> dict[str, Any]:
    """A valid pending request `distance` points from the market, SL/TP `stops` points from its entry."""
    info = term.symbol_info(symbol)
    point, digits = info.point, info.digits
    reference = info.ask if is_buy(order_type) else info.bid
    below = order_type in BELOW_MARKET
    price = round(reference - distance * point if below else reference + distance * point, digits)
    stoplimit = 0.0
    if order_type == BUY_STOP_LIMIT:
        stoplimit = round(price - stoplimit_offset * point, digits)
    elif order_type == SELL_STOP_LIMIT:
        stoplimit = round(price + stoplimit_offset * point, digits)
    entry = stoplimit or price
    sl = tp = 0.0
    if stops is not None:
        sign = 1 if is_buy(order_type) else -1
        sl = round(entry - sign * stops * point, digits)
        tp = round(entry + sign * stops * point, digits)
    request: dict[str, Any] = {
        "action": mt5.TRADE_ACTION_PENDING,
        "symbol": symbol,
        "volume": 0.1,
        "type": order_type,
        "price": price,
        "stoplimit": stoplimit,
        "sl": sl,
        "tp": tp,
        "type_filling": mt5.ORDER_FILLING_RETURN,
        "type_time": mt5.ORDER_TIME_GTC,
        "magic": 77,
        "comment": "copy#1",
    }
    request.update(fields)
    return request


def send(term: Terminal, request: dict[str, Any]) -> Any:
    result = term.order_send(request)
    assert result is not None, term.last_error()
    return result


def place(term: Terminal, order_type: int = BUY_LIMIT, **options: Any) -> int:
    result = send(term, pending(term, order_type, **options))
    assert result.retcode == mt5.TRADE_RETCODE_DONE, result
    return result.order


def modify_request(order: Any, **fields: Any) -> dict[str, Any]:
    request = {
        "action": mt5.TRADE_ACTION_MODIFY,
        "order": order.ticket,
        "price": order.price_open,
        "stoplimit": order.price_stoplimit,
        "sl": order.sl,
        "tp": order.tp,
        "type_time": order.type_time,
        "expiration": order.time_expiration,
    }
    request.update(fields)
    return request


def remove_request(ticket: int) -> dict[str, Any]:
    return {"action": mt5.TRADE_ACTION_REMOVE, "order": ticket}


def only_order(term: Terminal) -> Any:
    orders = term.orders_get()
    assert len(orders) == 1, orders
    return orders[0]


def assert_rejected(term: Terminal, request: dict[str, Any], retcode: int, comment: str) -> None:
    """A server-side rejection: the retcode and its description, zeros, quotes, the echo; nothing changed."""
    before = term.orders_get()
    result = send(term, request)
    assert (result.retcode, result.comment) == (retcode, comment)
    assert (result.deal, result.order, result.volume, result.price, result.retcode_external) == (0, 0, 0.0, 0.0, 0)
    assert result.request.action == request["action"]
    assert term.orders_get() == before
    check = term.order_check(request)
    assert (check.retcode, check.comment) == (retcode, comment)


# ---- PENDING: success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order_type", PENDING_TYPES)
def test_each_pending_type_is_placed(term: Terminal, order_type: int) -> None:
    request = pending(term, order_type)
    result = send(term, request)
    tick = term.symbol_info_tick("EURUSD")
    assert (result.retcode, result.comment) == (10009, "Request executed")
    assert result.order > 0 and result.deal == 0 and result.volume == 0.1 and result.price == 0.0
    assert (result.bid, result.ask) == (tick.bid, tick.ask)
    assert result.request._asdict() == {**result.request._asdict(), **request}
    order = only_order(term)
    assert order.ticket == result.order
    assert (order.type, order.state, order.reason) == (order_type, mt5.ORDER_STATE_PLACED, mt5.ORDER_REASON_EXPERT)
    assert (order.price_open, order.sl, order.tp) == (request["price"], request["sl"], request["tp"])
    assert order.price_stoplimit == request["stoplimit"]
    assert (order.magic, order.comment, order.type_filling) == (77, "copy#1", mt5.ORDER_FILLING_RETURN)
    assert (order.volume_initial, order.volume_current, order.time_done, order.time_expiration) == (0.1, 0.1, 0, 0)
    assert order.price_current == (tick.ask if is_buy(order_type) else tick.bid)
    assert abs(order.time_setup - tick.time) <= 2 and order.time_setup_msc // 1000 == order.time_setup


def test_price_equal_to_the_market_is_allowed_without_stops_level_and_fills_at_once(term: Terminal) -> None:
    term.set_symbol("EURUSD", trade_stops_level=0)
    ticket = place(term, BUY_LIMIT, distance=0, stops=None)
    assert term.orders_get() == ()
    position = term.positions_get()[0]
    assert (position.ticket, position.identifier) == (ticket, ticket)


# ---- PENDING: each rule, in the documented order ---------------------------------------------------------


def test_autotrading_disabled_answers_10027(term: Terminal) -> None:
    term.set_autotrading(False)
    assert_rejected(term, pending(term, BUY_LIMIT), 10027, "AutoTrading disabled by client")


def test_no_connection_answers_10031(term: Terminal) -> None:
    term.set_connected(False)
    assert_rejected(term, pending(term, BUY_LIMIT), 10031, "No connection with the trade server")


def test_autotrading_is_checked_before_the_connection(term: Terminal) -> None:
    request = pending(term, BUY_LIMIT)
    term.set_connected(False)
    term.set_autotrading(False)
    assert send(term, request).retcode == 10027


def test_account_without_trading_rights_answers_10017_and_without_expert_rights_10026(term: Terminal) -> None:
    request = pending(term, BUY_LIMIT)
    term.set_account(trade_allowed=False)
    assert_rejected(term, request, 10017, "Trade disabled")
    term.set_account(trade_allowed=True, trade_expert=False)
    assert_rejected(term, request, 10026, "AutoTrading disabled by server")


def test_unknown_or_unselected_symbol_answers_10013(term: Terminal) -> None:
    assert_rejected(term, pending(term, BUY_LIMIT, symbol="EURUSD") | {"symbol": "EURUSD.x"}, 10013, "Invalid request")
    request = pending(term, BUY_LIMIT, symbol="GBPUSD")
    term.symbol_select("GBPUSD", False)
    assert_rejected(term, request, 10013, "Invalid request")


@pytest.mark.parametrize(
    ("mode", "order_type", "retcode", "comment"),
    [
        (mt5.SYMBOL_TRADE_MODE_DISABLED, BUY_LIMIT, 10017, "Trade disabled"),
        (mt5.SYMBOL_TRADE_MODE_CLOSEONLY, BUY_LIMIT, 10044, "Only position closing allowed"),
        (mt5.SYMBOL_TRADE_MODE_LONGONLY, SELL_LIMIT, 10042, "Only long positions allowed"),
        (mt5.SYMBOL_TRADE_MODE_SHORTONLY, BUY_STOP, 10043, "Only short positions allowed"),
    ],
)
def test_symbol_trade_mode_restrictions(term: Terminal, mode: int, order_type: int, retcode: int, comment: str) -> None:
    request = pending(term, order_type)
    term.set_symbol("EURUSD", trade_mode=mode)
    assert_rejected(term, request, retcode, comment)


def test_long_only_and_short_only_allow_their_direction(term: Terminal) -> None:
    term.set_symbol("EURUSD", trade_mode=mt5.SYMBOL_TRADE_MODE_LONGONLY)
    place(term, BUY_STOP)
    term.set_symbol("EURUSD", trade_mode=mt5.SYMBOL_TRADE_MODE_SHORTONLY)
    place(term, SELL_STOP_LIMIT)


def test_closed_market_answers_10018(term: Terminal) -> None:
    request = pending(term, BUY_LIMIT)
    term.set_session("EURUSD", False)
    assert_rejected(term, request, 10018, "Market is closed")


@pytest.mark.parametrize("order_type", [mt5.ORDER_TYPE_BUY, mt5.ORDER_TYPE_SELL, mt5.ORDER_TYPE_CLOSE_BY, 9, -1])
def test_non_pending_type_answers_10035(term: Terminal, order_type: int) -> None:
    assert_rejected(term, pending(term, BUY_LIMIT) | {"type": order_type}, 10035, "Invalid order type")


def test_type_missing_from_order_mode_answers_10035(term: Terminal) -> None:
    term.set_symbol("EURUSD", order_mode=1 | 2 | 4 | 16 | 32)  # no stop-limit bit
    place(term, BUY_STOP)
    assert_rejected(term, pending(term, BUY_STOP_LIMIT), 10035, "Invalid order type")


@pytest.mark.parametrize("volume", [0.0, 0.001, 500.01, 0.015, 1e-9])
def test_invalid_volume_answers_10014(term: Terminal, volume: float) -> None:
    assert_rejected(term, pending(term, BUY_LIMIT, volume=volume), 10014, "Invalid volume")


def test_volume_step_tolerance_and_index_steps(term: Terminal) -> None:
    term.set_account(balance=10_000_000.0)
    place(term, BUY_LIMIT, volume=0.1 + 0.2)  # 0.30000000000000004
    place(term, BUY_LIMIT, volume=500.0)
    assert send(term, pending(term, BUY_LIMIT, symbol="US500", volume=0.15, distance=1000)).retcode == 10014
    assert send(term, pending(term, BUY_LIMIT, symbol="US500", volume=0.3, distance=1000)).retcode == 10009


@pytest.mark.parametrize("order_type", PENDING_TYPES)
def test_price_on_the_wrong_side_answers_10015(term: Terminal, order_type: int) -> None:
    assert_rejected(term, pending(term, order_type, distance=-100), 10015, "Invalid price")


@pytest.mark.parametrize("order_type", PENDING_TYPES)
def test_price_closer_than_the_stops_level_answers_10015(term: Terminal, order_type: int) -> None:
    assert_rejected(term, pending(term, order_type, distance=9), 10015, "Invalid price")
    place(term, order_type, distance=10)


@pytest.mark.parametrize(
    ("symbol", "price"),
    [("EURUSD", 1.080005), ("EURUSD", 0.0), ("EURUSD", -1.0), ("US500", 4900.1), ("USDJPY", 149.0001)],
)
def test_unnormalised_or_non_positive_price_answers_10015(term: Terminal, symbol: str, price: float) -> None:
    request = pending(term, BUY_LIMIT, symbol=symbol, stops=None) | {"price": price}
    assert_rejected(term, request, 10015, "Invalid price")


def test_index_prices_on_the_quarter_tick_are_accepted(term: Terminal) -> None:
    request = pending(term, BUY_LIMIT, symbol="US500", stops=None) | {"price": 4900.25, "sl": 4890.5, "tp": 4950.75}
    assert send(term, request).retcode == 10009


@pytest.mark.parametrize("order_type", [BUY_STOP_LIMIT, SELL_STOP_LIMIT])
def test_stoplimit_on_the_wrong_side_of_the_trigger_answers_10015(term: Terminal, order_type: int) -> None:
    assert_rejected(term, pending(term, order_type, stoplimit_offset=-50), 10015, "Invalid price")
    place(term, order_type, stoplimit_offset=0, stops=None)  # a limit at the trigger price itself is allowed


def test_unnormalised_stoplimit_answers_10015(term: Terminal) -> None:
    request = pending(term, BUY_STOP_LIMIT, stops=None)
    assert_rejected(term, request | {"stoplimit": request["stoplimit"] - 0.000003}, 10015, "Invalid price")


@pytest.mark.parametrize("order_type", [BUY_STOP_LIMIT, SELL_STOP_LIMIT])
def test_stop_limit_without_stoplimit_answers_10015(term: Terminal, order_type: int) -> None:
    assert_rejected(term, pending(term, order_type, stops=None) | {"stoplimit": 0.0}, 10015, "Invalid price")


@pytest.mark.parametrize("order_type", PENDING_TYPES)
@pytest.mark.parametrize("which", ["sl", "tp"])
def test_stops_on_the_wrong_side_answer_10016(term: Terminal, order_type: int, which: str) -> None:
    request = pending(term, order_type, stops=-100)
    other = "tp" if which == "sl" else "sl"
    request[other] = 0.0
    assert_rejected(term, request, 10016, "Invalid stops")


@pytest.mark.parametrize("order_type", PENDING_TYPES)
def test_stops_closer_than_the_stops_level_answer_10016(term: Terminal, order_type: int) -> None:
    assert_rejected(term, pending(term, order_type, stops=9), 10016, "Invalid stops")
    place(term, order_type, stops=10)


def test_stop_limit_stops_are_measured_from_the_stoplimit_price(term: Terminal) -> None:
    # SL 60 points under the trigger is only 10 points under the stoplimit: still valid.
    place(term, BUY_STOP_LIMIT, stoplimit_offset=50, stops=10)
    # 5 points from the stoplimit (55 from the trigger): invalid.
    assert_rejected(term, pending(term, BUY_STOP_LIMIT, stoplimit_offset=50, stops=5), 10016, "Invalid stops")


def test_unnormalised_or_negative_stops_answer_10016(term: Terminal) -> None:
    request = pending(term, SELL_LIMIT)
    assert_rejected(term, request | {"sl": request["sl"] + 0.000001}, 10016, "Invalid stops")
    assert_rejected(term, request | {"tp": -1.0}, 10016, "Invalid stops")


@pytest.mark.parametrize(("bit", "field"), [(16, "sl"), (32, "tp")])
def test_stops_missing_from_order_mode_answer_10016(term: Terminal, bit: int, field: str) -> None:
    term.set_symbol("EURUSD", order_mode=127 & ~bit)
    request = pending(term, BUY_LIMIT)
    request["tp" if field == "sl" else "sl"] = 0.0
    assert_rejected(term, request, 10016, "Invalid stops")
    place(term, BUY_LIMIT, stops=None)


def test_expiration_rules_answer_10022(term: Terminal) -> None:
    now = int(term.server_time())
    cases = [
        {"type_time": mt5.ORDER_TIME_SPECIFIED, "expiration": 0},
        {"type_time": mt5.ORDER_TIME_SPECIFIED_DAY, "expiration": 0},
        {"type_time": mt5.ORDER_TIME_SPECIFIED, "expiration": now - 10},
        {"type_time": mt5.ORDER_TIME_SPECIFIED_DAY, "expiration": now - 10},
        {"type_time": 4},
    ]
    for fields in cases:
        assert_rejected(term, pending(term, BUY_LIMIT, **fields), 10022, "Invalid expiration")
    term.set_symbol("EURUSD", expiration_mode=1 | 4)  # GTC and SPECIFIED only
    assert_rejected(term, pending(term, BUY_LIMIT, type_time=mt5.ORDER_TIME_DAY), 10022, "Invalid expiration")
    place(term, BUY_LIMIT, type_time=mt5.ORDER_TIME_SPECIFIED, expiration=now + 60)


def test_filling_modes_for_pending_orders(term: Terminal) -> None:
    # EURUSD allows FOK and IOC, XAUUSD only FOK, US500 only IOC; RETURN is always accepted.
    place(term, BUY_LIMIT, type_filling=mt5.ORDER_FILLING_IOC)
    place(term, BUY_LIMIT, symbol="XAUUSD", type_filling=mt5.ORDER_FILLING_FOK)
    place(term, BUY_LIMIT, symbol="US500", distance=1000, type_filling=mt5.ORDER_FILLING_RETURN)
    for symbol, filling in [("XAUUSD", mt5.ORDER_FILLING_IOC), ("US500", mt5.ORDER_FILLING_FOK), ("EURUSD", 7)]:
        request = pending(term, BUY_LIMIT, symbol=symbol, distance=1000, type_filling=filling)
        assert_rejected(term, request, 10030, "Unsupported filling mode")


def test_pending_order_limit_answers_10033(term: Terminal) -> None:
    term.set_account(limit_orders=2)
    place(term)
    place(term, SELL_STOP)
    assert_rejected(term, pending(term, BUY_LIMIT), 10033, "Limit orders")


def test_volume_limit_counts_positions_and_orders_in_one_direction(term: Terminal) -> None:
    term.set_symbol("EURUSD", volume_limit=0.3)
    place(term, BUY_LIMIT, volume=0.2)
    place(term, SELL_LIMIT, volume=0.3)  # the other direction has its own room
    assert_rejected(term, pending(term, BUY_STOP, volume=0.2), 10034, "Volume limit reached")
    place(term, BUY_STOP, volume=0.1)


def test_not_enough_margin_answers_10019_unless_pending_margin_is_not_checked(term: Terminal, tmp_path: Path) -> None:
    # 10 lots of EURUSD need about 10,800 USD at 1:100; the account holds 10,000.
    assert_rejected(term, pending(term, BUY_LIMIT, volume=10.0), 10019, "Not enough money")
    place(term, BUY_LIMIT, volume=9.0)
    relaxed = Terminal(mt5.create_terminal(tmp_path / "r", login=3, server="S", check_margin_on_pending=False))
    place(relaxed, BUY_LIMIT, volume=10.0)


@pytest.mark.parametrize(
    ("broken", "retcode"),
    [
        ({"symbol": "NOPE", "volume": 0.0}, 10013),
        ({"type": mt5.ORDER_TYPE_BUY, "volume": 0.0}, 10035),
        ({"volume": 0.0, "price": 0.0}, 10014),
        ({"price": 0.0, "sl": 5.0}, 10015),
        ({"sl": 5.0, "type_time": 9}, 10016),
        ({"type_time": 9, "type_filling": 9}, 10022),
        ({"type_filling": 9, "volume": 10.0}, 10030),
    ],
)
def test_checks_run_in_the_documented_order(term: Terminal, broken: dict[str, Any], retcode: int) -> None:
    assert send(term, pending(term, BUY_LIMIT) | broken).retcode == retcode


# ---- MODIFY --------------------------------------------------------------------------------------------


def test_modify_changes_price_and_stops_and_keeps_the_ticket(term: Terminal) -> None:
    ticket = place(term, BUY_LIMIT)
    order = only_order(term)
    new_price = round(order.price_open - 0.001, 5)
    request = modify_request(order, price=new_price, sl=round(new_price - 0.002, 5), tp=0.0, volume=5.0, type=5)
    result = send(term, request)
    assert (result.retcode, result.order, result.comment) == (10009, ticket, "Request executed")
    changed = only_order(term)
    assert (changed.ticket, changed.type, changed.volume_current) == (ticket, BUY_LIMIT, 0.1)  # type/volume ignored
    assert (changed.price_open, changed.sl, changed.tp) == (new_price, round(new_price - 0.002, 5), 0.0)
    assert changed.time_setup == order.time_setup


def test_modify_stop_limit_moves_its_stoplimit(term: Terminal) -> None:
    place(term, SELL_STOP_LIMIT, stops=None)
    order = only_order(term)
    new_stoplimit = round(order.price_stoplimit + 0.0005, 5)
    assert send(term, modify_request(order, stoplimit=new_stoplimit)).retcode == 10009
    assert only_order(term).price_stoplimit == new_stoplimit


def test_modify_of_an_unknown_or_finished_ticket_answers_10013_first(term: Terminal) -> None:
    ticket = place(term)
    order = only_order(term)
    term.set_autotrading(False)
    assert_rejected(term, modify_request(order) | {"order": 424242}, 10013, "Invalid request")
    term.set_autotrading(True)
    send(term, remove_request(ticket))
    assert send(term, modify_request(order, price=1.07)).retcode == 10013


@pytest.mark.parametrize(
    ("control", "retcode", "comment"),
    [
        ("set_autotrading", 10027, "AutoTrading disabled by client"),
        ("set_connected", 10031, "No connection with the trade server"),
        ("set_session", 10018, "Market is closed"),
    ],
)
def test_modify_refused_by_terminal_state(term: Terminal, control: str, retcode: int, comment: str) -> None:
    place(term)
    order = only_order(term)
    if control == "set_session":
        term.set_session("EURUSD", False)
    else:
        getattr(term, control)(False)
    assert_rejected(term, modify_request(order, price=1.079), retcode, comment)


def test_modify_within_the_freeze_level_answers_10029(term: Terminal) -> None:
    place(term, SELL_STOP, distance=30)
    order = only_order(term)
    term.set_symbol("EURUSD", trade_freeze_level=30)
    request = modify_request(order, price=round(order.price_open - 0.001, 5), sl=0.0, tp=0.0)
    assert_rejected(term, request, 10029, "Order or position frozen")
    term.set_symbol("EURUSD", trade_freeze_level=29)
    assert send(term, request).retcode == 10009


def test_modify_price_stops_and_expiration_rules(term: Terminal) -> None:
    place(term, BUY_STOP)
    order = only_order(term)
    tick = term.symbol_info_tick("EURUSD")
    assert send(term, modify_request(order, price=round(tick.ask - 0.001, 5))).retcode == 10015
    assert send(term, modify_request(order, sl=round(order.price_open + 0.001, 5))).retcode == 10016
    assert send(term, modify_request(order, type_time=mt5.ORDER_TIME_SPECIFIED, expiration=5)).retcode == 10022


def test_modify_that_changes_nothing_answers_10025(term: Terminal) -> None:
    place(term, BUY_STOP_LIMIT)
    order = only_order(term)
    assert_rejected(term, modify_request(order), 10025, "No changes in request")


def test_modify_to_day_and_specified_expiration(term: Terminal) -> None:
    place(term)
    order = only_order(term)
    expiration = int(term.server_time()) + 3600
    request = modify_request(order, type_time=mt5.ORDER_TIME_SPECIFIED, expiration=expiration)
    assert send(term, request).retcode == 10009
    changed = only_order(term)
    assert (changed.type_time, changed.time_expiration) == (mt5.ORDER_TIME_SPECIFIED, expiration)
    assert send(term, modify_request(changed)).retcode == 10025


# ---- REMOVE --------------------------------------------------------------------------------------------


def test_remove_cancels_the_order_into_history(term: Terminal) -> None:
    ticket = place(term)
    result = send(term, remove_request(ticket))
    assert (result.retcode, result.order, result.comment) == (10009, ticket, "Request executed")
    assert term.orders_get() == ()
    (history,) = term.history_orders_get(ticket=ticket)
    assert (history.state, history.volume_current) == (mt5.ORDER_STATE_CANCELED, 0.1)
    assert history.time_done >= history.time_setup > 0
    assert send(term, remove_request(ticket)).retcode == 10013


def test_remove_of_an_unknown_ticket_answers_10013(term: Terminal) -> None:
    assert_rejected(term, remove_request(31337), 10013, "Invalid request")
    assert_rejected(term, remove_request(0), 10013, "Invalid request")


@pytest.mark.parametrize(
    ("control", "retcode"), [("set_autotrading", 10027), ("set_connected", 10031), ("set_session", 10018)]
)
def test_remove_refused_by_terminal_state(term: Terminal, control: str, retcode: int) -> None:
    ticket = place(term)
    if control == "set_session":
        term.set_session("EURUSD", False)
    else:
        getattr(term, control)(False)
    assert send(term, remove_request(ticket)).retcode == retcode
    assert term.history_orders_get(ticket=ticket) is None


def test_remove_within_the_freeze_level_answers_10029(term: Terminal) -> None:
    ticket = place(term, BUY_LIMIT, distance=20)
    term.set_symbol("EURUSD", trade_freeze_level=20)
    assert_rejected(term, remove_request(ticket), 10029, "Order or position frozen")


# ---- triggers ------------------------------------------------------------------------------------------


def cross(term: Terminal, order_type: int, price: float) -> None:
    """Move the market just across an activation price."""
    if order_type in (BUY_LIMIT, SELL_STOP, SELL_STOP_LIMIT):
        bid = round(price - 0.0002, 5)  # ask and bid both below the price
    else:
        bid = round(price + 0.0002, 5)
    term.set_quote("EURUSD", bid, round(bid + 0.0001, 5))


@pytest.mark.parametrize("order_type", [BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP])
def test_a_reached_pending_order_becomes_a_position(term: Terminal, order_type: int) -> None:
    ticket = place(term, order_type)
    order = only_order(term)
    term.set_quote("EURUSD", 1.0851, 1.0852)  # a move that does not reach it
    assert only_order(term).ticket == ticket
    cross(term, order_type, order.price_open)
    assert term.orders_get() == ()
    (position,) = term.positions_get()
    tick = term.symbol_info_tick("EURUSD")
    fill = tick.ask if is_buy(order_type) else tick.bid
    assert (position.ticket, position.identifier, position.magic, position.comment) == (ticket, ticket, 77, "copy#1")
    assert (position.type, position.volume, position.price_open) == (order_type % 2, 0.1, fill)
    assert (position.sl, position.tp, position.reason) == (order.sl, order.tp, mt5.POSITION_REASON_EXPERT)
    (history,) = term.history_orders_get(ticket=ticket)
    assert (history.state, history.position_id, history.time_done > 0) == (mt5.ORDER_STATE_FILLED, ticket, True)
    (deal,) = term.history_deals_get(ticket=ticket)
    assert (deal.order, deal.entry, deal.position_id, deal.volume, deal.price) == (ticket, 0, ticket, 0.1, fill)
    assert (deal.type, deal.magic, deal.reason) == (order_type % 2, 77, mt5.DEAL_REASON_EXPERT)
    assert [d.ticket for d in term.history_deals_get(position=ticket)] == [deal.ticket]


@pytest.mark.parametrize(("order_type", "limit_type"), [(BUY_STOP_LIMIT, BUY_LIMIT), (SELL_STOP_LIMIT, SELL_LIMIT)])
def test_stop_limit_activates_into_a_limit_with_the_same_ticket(
    term: Terminal, order_type: int, limit_type: int
) -> None:
    ticket = place(term, order_type, type_filling=mt5.ORDER_FILLING_FOK)
    order = only_order(term)
    # Reach the trigger, but stay on the far side of the stoplimit price.
    if order_type == BUY_STOP_LIMIT:
        term.set_quote("EURUSD", round(order.price_open, 5), round(order.price_open + 0.0001, 5))
    else:
        term.set_quote("EURUSD", round(order.price_open - 0.0001, 5), round(order.price_open, 5))
    activated = only_order(term)
    assert (activated.ticket, activated.type, activated.state) == (ticket, limit_type, mt5.ORDER_STATE_PLACED)
    assert (activated.price_open, activated.price_stoplimit) == (order.price_stoplimit, 0.0)
    assert activated.type_filling == mt5.ORDER_FILLING_RETURN
    assert (activated.sl, activated.tp, activated.time_setup) == (order.sl, order.tp, order.time_setup)
    assert term.positions_get() == ()
    cross(term, limit_type, activated.price_open)
    assert term.orders_get() == ()
    assert term.positions_get()[0].identifier == ticket


@pytest.mark.parametrize(("order_type", "price"), [(BUY_STOP_LIMIT, 1.086), (SELL_STOP_LIMIT, 1.084)])
def test_stop_limit_can_activate_and_fill_in_the_same_move(term: Terminal, order_type: int, price: float) -> None:
    term.set_symbol("EURUSD", trade_stops_level=0)
    # The limit sits at the trigger price: the move that reaches the trigger also reaches the limit.
    request = pending(term, order_type, stops=None) | {"price": price, "stoplimit": price}
    ticket = send(term, request).order
    if order_type == BUY_STOP_LIMIT:
        term.set_quote("EURUSD", 1.08588, price)
    else:
        term.set_quote("EURUSD", price, 1.08412)
    assert term.orders_get() == ()
    (position,) = term.positions_get()
    assert (position.ticket, position.type, position.price_open) == (ticket, order_type % 2, price)
    (history,) = term.history_orders_get(ticket=ticket)
    assert (history.type, history.state) == (order_type - 4, mt5.ORDER_STATE_FILLED)


def test_closed_session_quotes_do_not_trigger_until_it_reopens(term: Terminal) -> None:
    ticket = place(term, SELL_STOP)
    order = only_order(term)
    term.set_session("EURUSD", False)
    cross(term, SELL_STOP, order.price_open)
    assert only_order(term).ticket == ticket
    term.set_session("EURUSD", True)
    assert term.orders_get() == ()
    assert term.positions_get()[0].ticket == ticket


def test_orders_on_other_symbols_are_not_triggered(term: Terminal) -> None:
    place(term, BUY_LIMIT, symbol="GBPUSD")
    term.set_quote("EURUSD", 1.0, 1.0001)
    assert len(term.orders_get()) == 1


# ---- expiry on a GMT+2 server clock --------------------------------------------------------------------


@pytest.fixture
def gmt2(tmp_path: Path) -> Terminal:
    return Terminal(mt5.create_terminal(tmp_path / "gmt2", login=2002, server="Sim", server_offset_hours=2))


def test_server_clock_runs_ahead_of_utc(gmt2: Terminal) -> None:
    import time

    tick = gmt2.symbol_info_tick("EURUSD")
    assert abs(tick.time - (time.time() + 7200)) < 5
    assert abs(gmt2.server_time() - (time.time() + 7200)) < 1
    ticket = place(gmt2)
    assert abs(gmt2.orders_get(ticket=ticket)[0].time_setup - (time.time() + 7200)) < 5


def test_specified_expiration_expires_into_history(gmt2: Terminal) -> None:
    expiration = int(gmt2.server_time()) + 3600
    ticket = place(gmt2, type_time=mt5.ORDER_TIME_SPECIFIED, expiration=expiration)
    assert only_order(gmt2).time_expiration == expiration
    gmt2.shift_time(3500)
    assert only_order(gmt2).ticket == ticket
    gmt2.shift_time(101)
    assert gmt2.orders_get() == ()
    (history,) = gmt2.history_orders_get(ticket=ticket)
    assert (history.state, history.time_done, history.time_done_msc) == (
        mt5.ORDER_STATE_EXPIRED,
        expiration,
        expiration * 1000,
    )
    assert gmt2.history_deals_get(ticket=ticket) is None


def test_specified_day_lasts_until_the_end_of_that_server_day(gmt2: Terminal) -> None:
    expiration = int(gmt2.server_time()) + 60
    day_start = expiration // 86400 * 86400
    ticket = place(gmt2, type_time=mt5.ORDER_TIME_SPECIFIED_DAY, expiration=expiration)
    assert only_order(gmt2).time_expiration == day_start + 86399
    gmt2.shift_time(day_start + 86399 - gmt2.server_time() - 1)
    assert only_order(gmt2).ticket == ticket
    gmt2.shift_time(2)
    assert gmt2.orders_total() == 0
    assert gmt2.history_orders_get(ticket=ticket)[0].state == mt5.ORDER_STATE_EXPIRED


def test_day_order_reports_midnight_and_expires_at_the_next_one(gmt2: Terminal) -> None:
    now = gmt2.server_time()
    day_start = int(now // 86400 * 86400)
    ticket = place(gmt2, type_time=mt5.ORDER_TIME_DAY)
    assert only_order(gmt2).time_expiration == day_start  # observed: the day's 00:00 server time
    gmt2.shift_time(day_start + 86400 - now - 2)
    assert only_order(gmt2).ticket == ticket
    gmt2.shift_time(3)
    assert gmt2.orders_get() == ()
    (history,) = gmt2.history_orders_get(ticket=ticket)
    assert (history.state, history.time_done) == (mt5.ORDER_STATE_EXPIRED, day_start + 86400)


def test_an_expired_order_can_no_longer_be_modified(gmt2: Terminal) -> None:
    expiration = int(gmt2.server_time()) + 60
    place(gmt2, type_time=mt5.ORDER_TIME_SPECIFIED, expiration=expiration)
    order = only_order(gmt2)
    gmt2.shift_time(61)
    assert send(gmt2, modify_request(order, price=1.079)).retcode == 10013


# ---- market orders, positions, order_check -------------------------------------------------------------


def market(term: Terminal, order_type: int, volume: float = 0.1, **fields: Any) -> Any:
    request = {"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": volume, "type": order_type}
    request.update(fields)
    return send(term, request)


def test_market_buy_opens_a_position_at_the_ask(term: Terminal) -> None:
    tick = term.symbol_info_tick("EURUSD")
    result = market(term, mt5.ORDER_TYPE_BUY, magic=5)
    assert (result.retcode, result.volume, result.price) == (10009, 0.1, tick.ask)
    assert result.deal > 0 and result.order > 0
    (position,) = term.positions_get()
    assert (position.ticket, position.price_open, position.magic) == (result.order, tick.ask, 5)
    assert term.orders_get() == ()
    assert term.account_info().margin == pytest.approx(0.1 * 100000 * tick.ask / 100, abs=0.01)


def test_market_order_filling_and_close(term: Terminal) -> None:
    assert market(term, mt5.ORDER_TYPE_BUY, type_filling=mt5.ORDER_FILLING_RETURN).retcode == 10030
    opened = market(term, mt5.ORDER_TYPE_BUY, volume=0.2)
    term.set_quote("EURUSD", 1.0900, 1.09012)
    position = term.positions_get()[0]
    assert position.profit == pytest.approx((1.09 - opened.price) * 20000, abs=0.01)
    assert market(term, mt5.ORDER_TYPE_SELL, volume=0.3, position=opened.order).retcode == 10038
    closed = market(term, mt5.ORDER_TYPE_SELL, volume=0.2, position=opened.order)
    assert closed.retcode == 10009
    assert term.positions_get() == ()
    deals = term.history_deals_get(position=opened.order)
    assert [d.entry for d in deals] == [mt5.DEAL_ENTRY_IN, mt5.DEAL_ENTRY_OUT]
    assert term.account_info().balance == pytest.approx(10000 + deals[1].profit)


def test_position_stop_loss_closes_it_on_a_quote(term: Terminal) -> None:
    opened = market(term, mt5.ORDER_TYPE_SELL, sl=1.087, tp=1.08)
    term.set_quote("EURUSD", 1.0869, 1.0871)
    assert term.positions_get() == ()
    out = term.history_deals_get(position=opened.order)[-1]
    assert (out.entry, out.reason, out.price) == (mt5.DEAL_ENTRY_OUT, mt5.DEAL_REASON_SL, 1.0871)


def test_sltp_modifies_a_position(term: Terminal) -> None:
    opened = market(term, mt5.ORDER_TYPE_BUY)
    request = {"action": mt5.TRADE_ACTION_SLTP, "position": opened.order, "symbol": "EURUSD", "sl": 1.08, "tp": 1.09}
    assert send(term, request).retcode == 10009
    assert (term.positions_get()[0].sl, term.positions_get()[0].tp) == (1.08, 1.09)
    assert send(term, request).retcode == 10025
    assert send(term, request | {"sl": 1.08491}).retcode == 10016  # 9 points under the bid


def test_netting_account_merges_fills_into_one_position(tmp_path: Path) -> None:
    term = Terminal(mt5.create_terminal(tmp_path / "n", login=9, server="S", margin_mode=0))
    first = market(term, mt5.ORDER_TYPE_BUY, volume=0.1)
    market(term, mt5.ORDER_TYPE_BUY, volume=0.1)
    (position,) = term.positions_get()
    assert (position.identifier, position.volume) == (first.order, 0.2)
    market(term, mt5.ORDER_TYPE_SELL, volume=0.3)
    (position,) = term.positions_get()
    assert (position.identifier, position.type, position.volume) == (first.order, mt5.POSITION_TYPE_SELL, 0.1)


def test_order_check_projects_margin_and_changes_nothing(term: Terminal) -> None:
    request = pending(term, BUY_LIMIT, volume=1.0)
    check = term.order_check(request)
    assert (check.retcode, check.comment, check.balance, check.equity) == (0, "Done", 10000.0, 10000.0)
    assert check.margin == pytest.approx(request["price"] * 1000, abs=0.01)
    assert check.margin_free == pytest.approx(10000 - check.margin, abs=0.01)
    assert check.request.price == request["price"]
    assert term.orders_get() == ()
    bad = term.order_check(request | {"sl": request["price"] + 0.001})
    assert (bad.retcode, bad.comment) == (10016, "Invalid stops")


def test_close_by_is_not_simulated(term: Terminal) -> None:
    assert send(term, {"action": mt5.TRADE_ACTION_CLOSE_BY, "position": 1, "position_by": 2}).retcode == 10013
