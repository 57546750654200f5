"""The adapter following positions (protocol 1.2) over mt5sim: SLTP, CLOSE and MARKET with every guard and
every answer, a lost answer settled by looking again, the deals history of a position, and the worker's
snapshot and history report. What a real terminal must do for these is in tests/contract/test_positions.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import mt5sim
from protocol import Command, CommandKind, CommandStatus, HistoryReport, HistoryRequest, Snapshot
from protocol.mt5 import DealReason, OrderFilling, Retcode
from protocol.tags import copy_tag
from terminal_worker.adapter import MT5Adapter, market_filling
from terminal_worker.worker import Worker
from tests.simhelpers import BUY_LIMIT, create

BUY, SELL = 0, 1
LOGIN, SERVER = 2001, "Alpha-Live"


class Staged:
    """mt5sim as the adapter sees it, recording the requests that reach order_check and order_send, with stage
    directions: run something just before a request reaches the broker, or lose the answer of one."""

    def __init__(self, module: Any) -> None:
        self.inner = module
        self.checked: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.before_send: Callable[[dict[str, Any]], None] | None = None
        self.lose_answer = False  # the next order_send's answer is lost (the link dies on the way back)
        self.execute_lost = True  # ... after the broker executed the request (False: before it got there)
        self._error: tuple[int, str] | None = None

    def order_check(self, request: dict[str, Any]) -> Any:
        self.checked.append(dict(request))
        return self.inner.order_check(request)

    def order_send(self, request: dict[str, Any]) -> Any:
        self.sent.append(dict(request))
        if self.before_send is not None:
            hook, self.before_send = self.before_send, None
            hook(request)
        if self.lose_answer:
            self.lose_answer = False
            if self.execute_lost:
                self.inner.order_send(request)
            self._error = (-10002, "IPC recv failed")
            return None
        return self.inner.order_send(request)

    def last_error(self) -> tuple[int, str]:
        if self._error is not None:
            error, self._error = self._error, None
            return error
        return self.inner.last_error()

    def forget(self) -> None:
        self.checked.clear()
        self.sent.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def terminal(tmp_path):
    return create(tmp_path / "t", LOGIN, SERVER)


@pytest.fixture
def module():
    return Staged(mt5sim)


@pytest.fixture
def adapter(terminal, module, tmp_path):
    adapter = MT5Adapter(module, path=tmp_path / "t", login=LOGIN, server=SERVER)
    adapter.connect()
    yield adapter
    adapter.disconnect()


def open_position(terminal: mt5sim.Terminal, source: int, order_type: int = BUY, volume: float = 0.3, *,
                  magic: int | None = None, comment: str | None = None, sl: float = 0.0, tp: float = 0.0,
                  symbol: str = "EURUSD") -> int:
    """Open a position at market (the copier's copy of ``source`` unless magic/comment say otherwise)."""
    result = terminal.order_send({
        "action": mt5sim.TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume, "type": order_type,
        "type_filling": mt5sim.ORDER_FILLING_FOK, "sl": sl, "tp": tp,
        "magic": source if magic is None else magic, "comment": copy_tag(source) if comment is None else comment,
    })
    assert result.retcode == mt5sim.TRADE_RETCODE_DONE, result
    return result.order


def close_by_hand(terminal: mt5sim.Terminal, ticket: int, volume: float | None = None) -> None:
    [position] = terminal.positions_get(ticket=ticket)
    result = terminal.order_send({
        "action": mt5sim.TRADE_ACTION_DEAL, "symbol": position.symbol, "position": ticket,
        "volume": position.volume if volume is None else volume, "type": 1 - position.type,
        "type_filling": mt5sim.ORDER_FILLING_FOK, "comment": "by hand",
    })
    assert result.retcode == mt5sim.TRADE_RETCODE_DONE, result


def place_copy(terminal: mt5sim.Terminal, source: int, distance: float = 0.005) -> int:
    """A pending buy-limit copy of ``source`` ``distance`` below the ask."""
    ask = terminal.symbol_info_tick("EURUSD").ask
    result = terminal.order_send({
        "action": mt5sim.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.2, "type": BUY_LIMIT,
        "price": round(ask - distance, 5), "type_filling": mt5sim.ORDER_FILLING_RETURN, "magic": source,
        "comment": copy_tag(source),
    })
    assert result.retcode == mt5sim.TRADE_RETCODE_DONE, result
    return result.order


def position(terminal: mt5sim.Terminal, ticket: int) -> Any:
    found = terminal.positions_get(ticket=ticket)
    return found[0] if found else None


def sltp(source: int, ticket: int, sl: float, tp: float, **fields: Any) -> Command:
    values: dict[str, Any] = dict(command_id=f"s{source}-{sl}-{tp}", kind=CommandKind.SLTP, source_ticket=source,
                                  symbol="EURUSD", ticket=ticket, sl=sl, tp=tp, magic=source, comment=copy_tag(source))
    values.update(fields)
    return Command(**values)


def close(source: int, ticket: int, volume: float, expected: float, **fields: Any) -> Command:
    values: dict[str, Any] = dict(command_id=f"c{source}-{volume}-{expected}", kind=CommandKind.CLOSE,
                                  source_ticket=source, symbol="EURUSD", ticket=ticket, volume=volume,
                                  expected_volume=expected, deviation=20, magic=source, comment=copy_tag(source))
    values.update(fields)
    return Command(**values)


def market(source: int, ticket: int, price: float, order_type: int = BUY, **fields: Any) -> Command:
    values: dict[str, Any] = dict(command_id=f"m{source}-{ticket}", kind=CommandKind.MARKET, source_ticket=source,
                                  symbol="EURUSD", ticket=ticket, order_type=order_type, volume=0.2, price=price,
                                  deviation=20, magic=source, comment=copy_tag(source))
    values.update(fields)
    return Command(**values)


def levels(terminal: mt5sim.Terminal) -> tuple[float, float]:
    """An SL and a TP valid for a buy now."""
    tick = terminal.symbol_info_tick("EURUSD")
    return round(tick.bid - 0.005, 5), round(tick.ask + 0.005, 5)


# ---- facts -----------------------------------------------------------------------------------------------


def test_positions_report_every_field_of_the_terminal(adapter, terminal):
    sl, tp = levels(terminal)
    ticket = open_position(terminal, 501, sl=sl, tp=tp)
    [raw] = terminal.positions_get()
    [facts] = adapter.positions()
    assert (facts.ticket, facts.identifier, facts.symbol, facts.type, facts.volume, facts.magic, facts.comment) == (
        ticket, ticket, "EURUSD", BUY, 0.3, 501, "mtc#501")
    assert (facts.price_open, facts.sl, facts.tp, facts.price_current, facts.time_msc) == (
        raw.price_open, sl, tp, raw.price_current, raw.time_msc)
    assert facts.price_current == terminal.symbol_info_tick("EURUSD").bid and facts.time_msc > 0


# ---- SLTP ------------------------------------------------------------------------------------------------


def test_sltp_sets_both_levels_of_the_copy(adapter, terminal, module):
    ticket = open_position(terminal, 510)
    sl, tp = levels(terminal)
    result = adapter.execute(sltp(510, ticket, sl, tp))
    assert result.status is CommandStatus.DONE and result.ticket == ticket and result.retcode == 10009, result
    assert (position(terminal, ticket).sl, position(terminal, ticket).tp) == (sl, tp)
    assert module.sent == [{"action": mt5sim.TRADE_ACTION_SLTP, "position": ticket, "symbol": "EURUSD", "sl": sl,
                            "tp": tp, "magic": 510}]
    assert module.checked == module.sent

    # A level of 0 removes it (the command always carries both).
    assert adapter.execute(sltp(510, ticket, 0.0, tp)).status is CommandStatus.DONE
    assert (position(terminal, ticket).sl, position(terminal, ticket).tp) == (0.0, tp)


def test_sltp_to_the_levels_already_there_is_done_and_sends_nothing(adapter, terminal, module):
    sl, tp = levels(terminal)
    ticket = open_position(terminal, 511, sl=sl, tp=tp)
    result = adapter.execute(sltp(511, ticket, sl, tp))
    assert result.status is CommandStatus.DONE and result.retcode == Retcode.NO_CHANGES, result
    assert result.ticket == ticket and len(module.checked) == 1 and module.sent == []


def test_sltp_answered_no_changes_by_the_broker_is_done(adapter, terminal, tmp_path):
    ticket = open_position(terminal, 512)
    mt5sim.inject_retcode(tmp_path / "t", Retcode.NO_CHANGES)  # order_check passes, order_send answers 10025
    result = adapter.execute(sltp(512, ticket, *levels(terminal)))
    assert result.status is CommandStatus.DONE and result.retcode == Retcode.NO_CHANGES and result.ticket == ticket


@pytest.mark.parametrize(("magic", "comment"), [(513, "grid EA"), (9999, "mtc#513"), (9999, "mtc#9999")],
                         ids=["magic-without-tag", "tag-without-magic", "another-source's-copy"])
def test_sltp_and_close_never_touch_a_position_that_is_not_the_copy(adapter, terminal, module, magic, comment):
    ticket = open_position(terminal, 513, magic=magic, comment=comment)
    for command in (sltp(513, ticket, *levels(terminal)), close(513, ticket, 0.1, 0.3)):
        result = adapter.execute(command)
        assert result.status is CommandStatus.REFUSED and "never touched" in result.comment, result
    assert module.checked == module.sent == []
    assert position(terminal, ticket).volume == 0.3 and position(terminal, ticket).sl == 0.0


def test_sltp_of_a_position_no_longer_open_is_stale_and_sends_nothing(adapter, terminal, module):
    ticket = open_position(terminal, 514)
    close_by_hand(terminal, ticket)
    result = adapter.execute(sltp(514, ticket, *levels(terminal)))
    assert result.status is CommandStatus.STALE and f"#{ticket} is not open" in result.comment
    assert module.checked == module.sent == []


def test_sltp_refused_by_the_terminal_check_is_rejected_and_not_sent(adapter, terminal, module):
    ticket = open_position(terminal, 515)
    sl, tp = levels(terminal)
    result = adapter.execute(sltp(515, ticket, tp, sl))  # a buy's stop loss above the market
    assert result.status is CommandStatus.REJECTED and result.retcode == Retcode.INVALID_STOPS
    assert len(module.checked) == 1 and module.sent == []


def test_sltp_of_a_position_closed_on_the_way_is_stale(adapter, terminal, module):
    ticket = open_position(terminal, 516)
    module.before_send = lambda request: close_by_hand(terminal, ticket)
    result = adapter.execute(sltp(516, ticket, *levels(terminal)))
    assert result.status is CommandStatus.STALE and result.retcode == Retcode.POSITION_CLOSED, result


@pytest.mark.parametrize("executed", [True, False], ids=["executed", "not-executed"])
def test_sltp_whose_answer_is_lost_is_settled_by_the_levels_it_finds(adapter, terminal, module, executed):
    ticket = open_position(terminal, 517)
    module.lose_answer, module.execute_lost = True, executed
    result = adapter.execute(sltp(517, ticket, *levels(terminal)))
    assert result.status is (CommandStatus.DONE if executed else CommandStatus.UNKNOWN), result
    assert result.error_code == -10002 and len(module.sent) == 1


# ---- CLOSE -----------------------------------------------------------------------------------------------


def test_close_takes_part_of_a_buy_at_the_bid_then_the_rest(adapter, terminal, module):
    ticket = open_position(terminal, 520)
    bid = terminal.symbol_info_tick("EURUSD").bid
    result = adapter.execute(close(520, ticket, 0.1, 0.3))
    assert result.status is CommandStatus.DONE and result.retcode == 10009, result
    assert (result.price, result.volume) == (bid, 0.1) and result.ticket not in (0, ticket)
    assert module.sent == [{
        "action": mt5sim.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "type": SELL, "position": ticket,
        "price": bid, "deviation": 20, "type_filling": mt5sim.ORDER_FILLING_FOK, "magic": 520, "comment": "mtc#520"}]
    assert position(terminal, ticket).volume == pytest.approx(0.2)
    [deal] = [deal for deal in terminal.history_deals_get(position=ticket) if deal.order == result.ticket]
    assert (deal.entry, deal.volume, deal.magic, deal.comment) == (mt5sim.DEAL_ENTRY_OUT, 0.1, 520, "mtc#520")

    rest = adapter.execute(close(520, ticket, 0.2, 0.2))
    assert rest.status is CommandStatus.DONE and rest.volume == 0.2 and position(terminal, ticket) is None


def test_close_of_a_sell_buys_at_the_ask(adapter, terminal, module):
    ticket = open_position(terminal, 521, SELL, volume=0.1)
    ask = terminal.symbol_info_tick("EURUSD").ask
    result = adapter.execute(close(521, ticket, 0.1, 0.1))
    assert result.status is CommandStatus.DONE and result.price == ask
    assert (module.sent[0]["type"], module.sent[0]["price"]) == (BUY, ask)
    assert position(terminal, ticket) is None


@pytest.mark.parametrize("expected", [0.2, 0.4, 0.0])
def test_close_planned_on_another_volume_is_stale_and_sends_nothing(adapter, terminal, module, expected):
    ticket = open_position(terminal, 522)
    result = adapter.execute(close(522, ticket, 0.1, expected))
    assert result.status is CommandStatus.STALE and "holds 0.3 lots" in result.comment, result
    assert module.checked == module.sent == [] and position(terminal, ticket).volume == 0.3


def test_close_within_half_a_step_of_the_expected_volume_goes(adapter, terminal):
    ticket = open_position(terminal, 523)
    assert adapter.execute(close(523, ticket, 0.1, 0.3 + 0.004)).status is CommandStatus.DONE


def test_close_of_a_position_already_closed_is_done_and_sends_nothing(adapter, terminal, module):
    ticket = open_position(terminal, 524)
    close_by_hand(terminal, ticket)
    result = adapter.execute(close(524, ticket, 0.3, 0.3))
    assert result.status is CommandStatus.DONE and result.already_existed and "already closed" in result.comment
    assert module.checked == module.sent == []


def test_close_of_a_position_closed_on_the_way_is_done(adapter, terminal, module):
    ticket = open_position(terminal, 525)
    module.before_send = lambda request: close_by_hand(terminal, ticket)
    result = adapter.execute(close(525, ticket, 0.1, 0.3))
    # The simulator answers 10036 for a position it knows was closed (mt5sim/README.md); the adapter looks.
    assert result.status is CommandStatus.DONE and result.already_existed, result
    assert result.retcode == Retcode.POSITION_CLOSED


@pytest.mark.parametrize(
    ("command", "reason"),
    [(dict(volume=0.0), "nothing to close"), (dict(symbol="GBPUSD"), "the command names GBPUSD")],
    ids=["no-volume", "other-symbol"],
)
def test_malformed_closes_are_refused(adapter, terminal, module, command, reason):
    ticket = open_position(terminal, 526)
    result = adapter.execute(close(526, ticket, **{"volume": 0.1, "expected": 0.3, **command}))
    assert result.status is CommandStatus.REFUSED and reason in result.comment
    assert module.sent == []


def test_a_close_larger_than_the_position_is_refused_by_the_terminal_check(adapter, terminal, module):
    ticket = open_position(terminal, 527)
    result = adapter.execute(close(527, ticket, 0.5, 0.3))
    assert result.status is CommandStatus.REJECTED and result.retcode == Retcode.INVALID_CLOSE_VOLUME
    assert module.sent == []


@pytest.mark.parametrize(
    ("filling_mode", "exemode", "expected"),
    [(3, mt5sim.SYMBOL_TRADE_EXECUTION_MARKET, OrderFilling.FOK),
     (2, mt5sim.SYMBOL_TRADE_EXECUTION_MARKET, OrderFilling.IOC),
     (0, mt5sim.SYMBOL_TRADE_EXECUTION_INSTANT, OrderFilling.RETURN)],
    ids=["fok-and-ioc", "ioc-only", "neither"],
)
def test_the_filling_of_a_close_follows_the_symbols_filling_flags(adapter, terminal, module, tmp_path, filling_mode,
                                                                  exemode, expected):
    ticket = open_position(terminal, 528)
    mt5sim.set_symbol(tmp_path / "t", "EURUSD", filling_mode=filling_mode, trade_exemode=exemode)
    result = adapter.execute(close(528, ticket, 0.1, 0.3))
    assert result.status is CommandStatus.DONE, result
    assert module.sent[0]["type_filling"] == expected == market_filling(filling_mode)


def test_under_instant_execution_a_market_that_moved_beyond_the_deviation_is_a_requote(adapter, terminal, module,
                                                                                        tmp_path):
    ticket = open_position(terminal, 529)
    mt5sim.set_symbol(tmp_path / "t", "EURUSD", trade_exemode=mt5sim.SYMBOL_TRADE_EXECUTION_INSTANT)
    tick = terminal.symbol_info_tick("EURUSD")

    def move(request: dict[str, Any]) -> None:
        mt5sim.set_quote(tmp_path / "t", "EURUSD", round(tick.bid - 0.0005, 5), round(tick.ask - 0.0005, 5))

    module.before_send = move  # 50 points between the adapter's look and the broker
    result = adapter.execute(close(529, ticket, 0.1, 0.3))
    assert result.status is CommandStatus.REJECTED and result.retcode == Retcode.REQUOTE
    assert position(terminal, ticket).volume == 0.3


@pytest.mark.parametrize(
    ("executed", "also", "status"),
    [(True, None, CommandStatus.DONE), (False, None, CommandStatus.REJECTED), (True, 0.1, CommandStatus.UNKNOWN),
     (True, 0.2, CommandStatus.DONE)],
    ids=["reduced-by-the-volume", "unchanged", "reduced-by-more", "gone"],
)
def test_a_close_whose_answer_is_lost_is_settled_by_the_volume_left(adapter, terminal, module, executed, also, status):
    ticket = open_position(terminal, 530)
    if also is not None:  # someone else closes some too, while the answer travels
        module.before_send = lambda request: close_by_hand(terminal, ticket, also)
    module.lose_answer, module.execute_lost = True, executed
    result = adapter.execute(close(530, ticket, 0.1, 0.3))
    assert result.status is status, result
    assert result.error_code == -10002 and len(module.sent) == 1  # never resent
    if status is CommandStatus.REJECTED:
        assert "did not happen" in result.comment and position(terminal, ticket).volume == 0.3


def test_a_close_answered_timeout_that_changed_nothing_is_rejected_with_the_timeout(adapter, terminal, tmp_path):
    ticket = open_position(terminal, 531)
    mt5sim.inject_retcode(tmp_path / "t", Retcode.TIMEOUT)
    result = adapter.execute(close(531, ticket, 0.1, 0.3))
    assert result.status is CommandStatus.REJECTED and result.retcode == Retcode.TIMEOUT
    assert "did not happen" in result.comment


def test_a_close_confirmed_without_its_price_and_volume_reads_them_from_its_deals(adapter, terminal, module):
    ticket = open_position(terminal, 532)
    bid = terminal.symbol_info_tick("EURUSD").bid
    send = module.order_send
    module.order_send = lambda request: send(request)._replace(price=0.0, volume=0.0)
    result = adapter.execute(close(532, ticket, 0.1, 0.3))
    assert result.status is CommandStatus.DONE and (result.price, result.volume) == (bid, 0.1), result


# ---- MARKET ----------------------------------------------------------------------------------------------


def test_market_removes_the_pending_copy_and_opens_the_copy_at_the_ask(adapter, terminal, module):
    copy = place_copy(terminal, 540)
    ask = terminal.symbol_info_tick("EURUSD").ask
    result = adapter.execute(market(540, copy, price=round(ask - 0.0001, 5)))  # 10 points off, 20 allowed
    assert result.status is CommandStatus.DONE and not result.already_existed, result
    assert (result.price, result.volume) == (ask, 0.2)
    assert terminal.orders_get() == ()
    assert terminal.history_orders_get(ticket=copy)[0].state == mt5sim.ORDER_STATE_CANCELED
    [opened] = terminal.positions_get()
    assert (opened.ticket, opened.magic, opened.comment, opened.type, opened.volume) == (
        result.ticket, 540, "mtc#540", BUY, 0.2)
    assert [request["action"] for request in module.sent] == [mt5sim.TRADE_ACTION_REMOVE, mt5sim.TRADE_ACTION_DEAL]
    assert module.sent[1] == {
        "action": mt5sim.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.2, "type": BUY, "price": ask, "sl": 0.0,
        "tp": 0.0, "deviation": 20, "type_filling": mt5sim.ORDER_FILLING_FOK, "magic": 540, "comment": "mtc#540"}


def test_market_sells_at_the_bid_with_the_levels_of_the_command(adapter, terminal):
    tick = terminal.symbol_info_tick("EURUSD")
    sl, tp = round(tick.ask + 0.005, 5), round(tick.bid - 0.005, 5)
    result = adapter.execute(market(541, 0, price=tick.bid, order_type=SELL, sl=sl, tp=tp))
    assert result.status is CommandStatus.DONE and result.price == tick.bid, result
    opened = position(terminal, result.ticket)
    assert (opened.type, opened.sl, opened.tp) == (SELL, sl, tp)


def test_market_beyond_the_deviation_only_removes_the_pending_copy(adapter, terminal, module):
    copy = place_copy(terminal, 542)
    ask = terminal.symbol_info_tick("EURUSD").ask
    result = adapter.execute(market(542, copy, price=round(ask - 0.00021, 5)))  # 21 points off, 20 allowed
    assert result.status is CommandStatus.DONE and result.ticket == 0, result
    assert "21 points" in result.comment and "removed, not opened" in result.comment
    assert terminal.orders_get() == () and terminal.positions_get() == ()
    assert [request["action"] for request in module.sent] == [mt5sim.TRADE_ACTION_REMOVE]


def test_market_after_the_pending_copy_filled_by_itself_sends_nothing(adapter, terminal, module, tmp_path):
    copy = place_copy(terminal, 543, distance=0.0002)
    mt5sim.set_quote(tmp_path / "t", "EURUSD", 1.0846, 1.0847)  # the copy's buy limit fills
    [filled] = terminal.positions_get()
    result = adapter.execute(market(543, copy, price=1.0847))
    assert result.status is CommandStatus.DONE and result.already_existed and result.ticket == filled.ticket == copy
    assert module.checked == module.sent == [] and len(terminal.positions_get()) == 1


def test_market_after_the_pending_copy_filled_and_closed_sends_nothing(adapter, terminal, module, tmp_path):
    copy = place_copy(terminal, 544, distance=0.0002)
    mt5sim.set_quote(tmp_path / "t", "EURUSD", 1.0846, 1.0847)
    close_by_hand(terminal, copy)
    result = adapter.execute(market(544, copy, price=1.0847))
    assert result.status is CommandStatus.DONE and result.already_existed and result.ticket == copy, result
    assert module.sent == [] and terminal.positions_get() == ()


def test_market_whose_pending_copy_vanished_without_filling_is_stale(adapter, terminal, module):
    copy = place_copy(terminal, 545)
    terminal.order_send({"action": mt5sim.TRADE_ACTION_REMOVE, "order": copy})  # deleted by hand
    result = adapter.execute(market(545, copy, price=terminal.symbol_info_tick("EURUSD").ask))
    assert result.status is CommandStatus.STALE and "gone without filling" in result.comment, result
    assert module.sent == [] and terminal.positions_get() == ()


@pytest.mark.parametrize(
    "change",
    [dict(comment="whatever"), dict(magic=1), dict(order_type=BUY_LIMIT), dict(volume=0.0), dict(price=0.0),
     dict(symbol="GBPUSD")],
    ids=["untagged", "wrong-magic", "pending-type", "no-volume", "no-price", "other-symbol"],
)
def test_malformed_market_commands_are_refused(adapter, terminal, module, change):
    copy = place_copy(terminal, 546)
    result = adapter.execute(market(546, copy, **{"price": terminal.symbol_info_tick("EURUSD").ask, **change}))
    assert result.status is CommandStatus.REFUSED, result
    assert module.sent == [] and len(terminal.orders_get()) == 1


def test_market_never_removes_an_order_that_is_not_the_pending_copy(adapter, terminal, module):
    foreign = terminal.order_send({
        "action": mt5sim.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.2, "type": BUY_LIMIT,
        "price": 1.08, "type_filling": mt5sim.ORDER_FILLING_RETURN, "magic": 547, "comment": "grid EA"}).order
    result = adapter.execute(market(547, foreign, price=terminal.symbol_info_tick("EURUSD").ask))
    assert result.status is CommandStatus.REFUSED and "never touched" in result.comment
    assert module.sent == [] and len(terminal.orders_get()) == 1


def test_market_refused_by_the_terminal_check_keeps_the_pending_copy(adapter, terminal, module):
    copy = place_copy(terminal, 548)
    result = adapter.execute(market(548, copy, price=terminal.symbol_info_tick("EURUSD").ask, volume=0.123))
    assert result.status is CommandStatus.REJECTED and result.retcode == Retcode.INVALID_VOLUME
    assert module.sent == [] and [order.ticket for order in terminal.orders_get()] == [copy]


def test_market_whose_pending_copy_fills_while_it_is_removed_opens_no_second_copy(adapter, terminal, module,
                                                                                   tmp_path):
    copy = place_copy(terminal, 549, distance=0.0002)
    ask = terminal.symbol_info_tick("EURUSD").ask
    module.before_send = lambda request: mt5sim.set_quote(tmp_path / "t", "EURUSD", 1.0846, 1.0847)
    result = adapter.execute(market(549, copy, price=ask))
    assert result.status is CommandStatus.DONE and result.already_existed and result.ticket == copy, result
    assert [request["action"] for request in module.sent] == [mt5sim.TRADE_ACTION_REMOVE]  # the deal never went
    assert [opened.ticket for opened in terminal.positions_get()] == [copy]


def test_market_whose_answer_is_lost_finds_the_copy_it_opened(adapter, terminal, module):
    copy = place_copy(terminal, 550)
    ask = terminal.symbol_info_tick("EURUSD").ask
    sent = []

    def lose_the_deal(request: dict[str, Any]) -> None:  # the removal is answered, the deal's answer is lost
        sent.append(request["action"])
        module.lose_answer = request["action"] == mt5sim.TRADE_ACTION_DEAL
        if not module.lose_answer:
            module.before_send = lose_the_deal

    module.before_send = lose_the_deal
    result = adapter.execute(market(550, copy, price=ask))
    assert sent == [mt5sim.TRADE_ACTION_REMOVE, mt5sim.TRADE_ACTION_DEAL]
    [opened] = terminal.positions_get()
    assert result.status is CommandStatus.DONE and result.ticket == opened.ticket and result.error_code == -10002
    assert (opened.magic, opened.comment) == (550, "mtc#550")


def test_market_without_a_pending_copy_opens_once(adapter, terminal, module):
    ask = terminal.symbol_info_tick("EURUSD").ask
    first = adapter.execute(market(552, 0, price=ask))
    assert first.status is CommandStatus.DONE and not first.already_existed, first
    module.forget()
    again = adapter.execute(market(552, 0, price=ask, command_id="again"))
    assert again.status is CommandStatus.DONE and again.already_existed and again.ticket == first.ticket
    assert module.sent == [] and len(terminal.positions_get()) == 1


def test_position_commands_on_a_switched_account_are_refused_until_it_is_back(adapter, terminal, module, tmp_path):
    ticket = open_position(terminal, 553)
    copy = place_copy(terminal, 554)
    mt5sim.set_account(tmp_path / "t", login=2002)
    ask = terminal.symbol_info_tick("EURUSD").ask
    for command in (sltp(553, ticket, *levels(terminal)), close(553, ticket, 0.1, 0.3), market(554, copy, ask)):
        result = adapter.execute(command)
        assert result.status is CommandStatus.REJECTED and "2002@Alpha-Live" in result.comment, command.kind
        assert result.retcode == 0 and result.error_code == 0
    assert module.checked == module.sent == []
    mt5sim.set_account(tmp_path / "t", login=LOGIN)
    assert adapter.execute(close(553, ticket, 0.1, 0.3, command_id="again")).status is CommandStatus.DONE


# ---- history ---------------------------------------------------------------------------------------------


def test_the_history_of_a_position_follows_its_deals(adapter, terminal, tmp_path):
    ticket = open_position(terminal, 560)
    opened = adapter.position_history(ticket)
    assert (opened.closed, opened.volume_in, opened.volume_out, opened.close_price) == (False, 0.3, 0.0, 0.0)
    assert adapter.execute(close(560, ticket, 0.1, 0.3)).status is CommandStatus.DONE
    part = adapter.position_history(ticket)
    assert (part.closed, part.volume_in, part.volume_out) == (False, 0.3, 0.1)
    assert part.close_reason == DealReason.EXPERT and part.close_price == terminal.symbol_info_tick("EURUSD").bid

    adapter.execute(sltp(560, ticket, 1.08, 0.0))
    mt5sim.set_quote(tmp_path / "t", "EURUSD", 1.0795, 1.0796)  # the stop loss closes the rest
    done = adapter.position_history(ticket)
    assert (done.closed, done.volume_in, done.volume_out) == (True, 0.3, 0.3)
    assert (done.close_reason, done.close_price) == (DealReason.SL, 1.0795) and done.close_time_msc > 0


def test_a_position_with_no_deal_has_no_history(adapter):
    assert adapter.position_history(123_456_789) is None


def test_a_netting_reversal_counts_its_closing_part_out_and_the_rest_in(tmp_path):
    create(tmp_path / "n", LOGIN, SERVER, margin_mode=mt5sim.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)
    terminal = mt5sim.Terminal(tmp_path / "n")
    adapter = MT5Adapter(mt5sim, path=tmp_path / "n", login=LOGIN, server=SERVER)
    adapter.connect()
    try:
        first = open_position(terminal, 561, volume=0.1)
        open_position(terminal, 561, SELL, volume=0.3, comment="reverse")  # closes 0.1, opens a 0.2 sell
        [reversed_position] = terminal.positions_get()
        assert reversed_position.identifier == first and reversed_position.type == SELL
        history = adapter.position_history(first)
        assert (history.closed, history.volume_in, history.volume_out) == (False, pytest.approx(0.3), 0.1)
        open_position(terminal, 561, BUY, volume=0.2, comment="flat")
        assert adapter.position_history(first).closed
    finally:
        adapter.disconnect()


# ---- the worker ------------------------------------------------------------------------------------------


@pytest.fixture
def worker(adapter):
    worker = Worker(name="alpha", role="target", backend="sim", adapter=adapter, endpoint="tcp://127.0.0.1:1")
    sent: list[Any] = []
    worker._send = lambda message: sent.append(message) or True
    worker._welcomed = True
    worker.sent = sent
    yield worker
    worker._context.destroy(linger=0)


def test_the_worker_answers_orders_and_positions_in_one_history_report(worker, adapter, terminal):
    closed = open_position(terminal, 570)
    close_by_hand(terminal, closed)
    still_open = open_position(terminal, 571)
    copy = place_copy(terminal, 572)
    terminal.order_send({"action": mt5sim.TRADE_ACTION_REMOVE, "order": copy})
    worker._report_history(HistoryRequest(request_id="h", tickets=(copy, 424242),
                                          positions=(closed, still_open, 434343)))
    [report] = worker.sent
    assert isinstance(report, HistoryReport) and report.request_id == "h"
    assert [order.ticket for order in report.orders] == [copy] and report.unknown == (424242,)
    assert [(history.position_id, history.closed) for history in report.positions] == [(closed, True),
                                                                                       (still_open, False)]
    assert report.unknown_positions == (434343,)


def test_an_open_position_whose_history_lags_is_reported_open(worker, adapter, terminal, monkeypatch):
    ticket = open_position(terminal, 573)
    monkeypatch.setattr(adapter, "position_history", lambda position_id: None)
    worker._report_history(HistoryRequest(request_id="h", tickets=(), positions=(ticket,)))
    [report] = worker.sent
    assert [(history.position_id, history.closed, history.volume_in) for history in report.positions] == [
        (ticket, False, 0.3)]


def test_snapshots_carry_the_position_facts_but_a_price_move_alone_sends_none(worker, terminal, tmp_path):
    sl, tp = levels(terminal)
    ticket = open_position(terminal, 574, sl=sl, tp=tp)
    worker._poll_terminal()
    [snapshot] = [message for message in worker.sent if isinstance(message, Snapshot)]
    [facts] = snapshot.positions
    assert (facts.ticket, facts.sl, facts.tp) == (ticket, sl, tp)
    assert facts.price_open == position(terminal, ticket).price_open
    tick = terminal.symbol_info_tick("EURUSD")
    mt5sim.set_quote(tmp_path / "t", "EURUSD", round(tick.bid + 0.0001, 5), round(tick.ask + 0.0001, 5))
    worker._poll_terminal()
    assert len([message for message in worker.sent if isinstance(message, Snapshot)]) == 1
    terminal.order_send({"action": mt5sim.TRADE_ACTION_SLTP, "position": ticket, "symbol": "EURUSD", "sl": 0.0,
                         "tp": tp})
    worker._poll_terminal()
    latest = [message for message in worker.sent if isinstance(message, Snapshot)][-1]
    assert latest.seq == 2 and latest.positions[0].sl == 0.0
    assert latest.positions[0].price_current == position(terminal, ticket).price_current
