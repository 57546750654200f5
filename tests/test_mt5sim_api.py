"""mt5sim fidelity: constants, named tuples, call forms, failure values and last_error() codes."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import mt5sim
import mt5sim as mt5
from mt5sim import constants
from mt5sim.groups import compile_group

# The real MetaTrader5 5.0.6231 package's constants (a copy of shared/mt5-constants.json kept with the tests).
SHARED_CONSTANTS = Path(__file__).resolve().parent / "data" / "mt5-constants.json"
NO_IPC = (-10004, "No IPC connection")
SUCCESS = (1, "Success")


@pytest.fixture
def terminal_path(tmp_path: Path) -> Path:
    return mt5.create_terminal(tmp_path / "terminal", login=1001, server="Sim-Demo", password="secret")


@pytest.fixture
def attached(terminal_path: Path) -> Iterator[Path]:
    """The facade attached to a fresh terminal; detached afterwards so tests stay independent."""
    assert mt5.initialize(str(terminal_path)), mt5.last_error()
    yield terminal_path
    mt5.shutdown()


@pytest.fixture(autouse=True)
def _detached() -> Iterator[None]:
    mt5.shutdown()
    yield
    mt5.shutdown()


def buy_limit(**fields: object) -> dict[str, object]:
    request: dict[str, object] = {
        "action": mt5.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": mt5.ORDER_TYPE_BUY_LIMIT,
        "price": 1.08,
        "type_filling": mt5.ORDER_FILLING_RETURN,
        "type_time": mt5.ORDER_TIME_GTC,
    }
    request.update(fields)
    return request


# ---- constants -----------------------------------------------------------------------------------------


def exported_constants() -> dict[str, int]:
    return {name: getattr(mt5sim, name) for name in dir(mt5sim) if name.isupper()}


def test_package_exports_exactly_the_constants_of_mt5sim_constants() -> None:
    assert exported_constants() == {name: getattr(constants, name) for name in constants.__all__}
    assert len(constants.__all__) == 223


def test_package_constants_equal_the_real_package_table() -> None:
    assert exported_constants() == json.loads(SHARED_CONSTANTS.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "prefix", ["SYMBOL_EXPIRATION_", "SYMBOL_FILLING_", "SYMBOL_ORDER_", "SYMBOL_TRADE_STOPS", "ORDER_FILLING_X"]
)
def test_flags_the_real_package_lacks_are_not_exported(prefix: str) -> None:
    assert not [name for name in dir(mt5sim) if name.startswith(prefix)]


def test_hedge_prohibited_retcode_is_not_exported() -> None:
    assert not hasattr(mt5sim, "TRADE_RETCODE_HEDGE_PROHIBITED")
    with pytest.raises(AttributeError):
        _ = mt5sim.SYMBOL_ORDER_LIMIT  # type: ignore[attr-defined]


# ---- named tuples --------------------------------------------------------------------------------------

FIELDS = {
    "TradeOrder": "ticket time_setup time_setup_msc time_done time_done_msc time_expiration type type_time "
    "type_filling state magic position_id position_by_id reason volume_initial volume_current price_open sl tp "
    "price_current price_stoplimit symbol comment external_id",
    "TradePosition": "ticket time time_msc time_update time_update_msc type magic identifier reason volume "
    "price_open sl tp price_current swap profit symbol comment external_id",
    "TradeDeal": "ticket order time time_msc type entry magic position_id reason volume price commission swap "
    "profit fee symbol comment external_id",
    "TradeRequest": "action magic order symbol volume price stoplimit sl tp deviation type type_filling "
    "type_time expiration comment position position_by",
    "OrderSendResult": "retcode deal order volume price bid ask comment request_id retcode_external request",
    "OrderCheckResult": "retcode balance equity profit margin margin_free margin_level comment request",
    "Tick": "time bid ask last volume time_msc flags volume_real",
    "AccountInfo": "login trade_mode leverage limit_orders margin_so_mode trade_allowed trade_expert margin_mode "
    "currency_digits fifo_close balance credit profit equity margin margin_free margin_level margin_so_call "
    "margin_so_so margin_initial margin_maintenance assets liabilities commission_blocked name server currency "
    "company",
    "TerminalInfo": "community_account community_connection connected dlls_allowed trade_allowed "
    "tradeapi_disabled email_enabled ftp_enabled notifications_enabled mqid build maxbars codepage ping_last "
    "community_balance retransmission company name language path data_path commondata_path",
    "SymbolInfo": "custom chart_mode select visible session_deals session_buy_orders session_sell_orders volume "
    "volumehigh volumelow time digits spread spread_float ticks_bookdepth trade_calc_mode trade_mode start_time "
    "expiration_time trade_stops_level trade_freeze_level trade_exemode swap_mode swap_rollover3days "
    "margin_hedged_use_leg expiration_mode filling_mode order_mode order_gtc_mode option_mode option_right bid "
    "bidhigh bidlow ask askhigh asklow last lasthigh lastlow volume_real volumehigh_real volumelow_real "
    "option_strike point trade_tick_value trade_tick_value_profit trade_tick_value_loss trade_tick_size "
    "trade_contract_size trade_accrued_interest trade_face_value trade_liquidity_rate volume_min volume_max "
    "volume_step volume_limit swap_long swap_short margin_initial margin_maintenance session_volume "
    "session_turnover session_interest session_buy_orders_volume session_sell_orders_volume session_open "
    "session_close session_aw session_price_settlement session_price_limit_min session_price_limit_max "
    "margin_hedged price_change price_volatility price_theoretical price_greeks_delta price_greeks_theta "
    "price_greeks_gamma price_greeks_vega price_greeks_rho price_greeks_omega price_sensitivity basis category "
    "currency_base currency_profit currency_margin bank description exchange formula isin name page path",
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_named_tuple_fields_are_in_the_real_order(name: str) -> None:
    from mt5sim import types

    assert getattr(types, name)._fields == tuple(FIELDS[name].split())


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_field_name_tuples_follow_the_named_tuples(name: str) -> None:
    from mt5sim import types

    constant = re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper() + "_FIELDS"
    assert getattr(types, constant) == getattr(types, name)._fields


def test_symbol_info_has_96_fields_in_the_real_order() -> None:
    from mt5sim.types import SymbolInfo

    fields = SymbolInfo._fields
    assert len(fields) == 96
    assert fields[:4] == ("custom", "chart_mode", "select", "visible")
    assert fields[19:21] == ("trade_stops_level", "trade_freeze_level")
    assert fields[25:28] == ("expiration_mode", "filling_mode", "order_mode")
    assert fields[-3:] == ("name", "page", "path")


def test_results_are_named_tuples_with_asdict_and_a_nested_request(attached: Path) -> None:
    result = mt5.order_send(buy_limit())
    assert type(result).__name__ == "OrderSendResult"
    assert type(result.request).__name__ == "TradeRequest"
    assert result._asdict()["request"]._asdict()["price"] == 1.08
    order = mt5.orders_get()[0]
    assert order._asdict()["ticket"] == result.order
    assert isinstance(order, tuple)
    info = mt5.symbol_info("EURUSD")
    assert (info.digits, info.point, info.select, info.visible) == (5, 1e-05, True, True)
    assert isinstance(info.spread_float, bool) and isinstance(info.digits, int) and isinstance(info.bid, float)


def test_every_returned_field_has_exactly_its_declared_type(attached: Path) -> None:
    """The annotations in mt5sim.types are what type checkers trust: the values must bear them out."""
    placed = mt5.order_send(buy_limit())
    filled = mt5.order_send(
        {"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "type": mt5.ORDER_TYPE_BUY}
    )
    assert placed.retcode == filled.retcode == mt5.TRADE_RETCODE_DONE
    results = [
        placed,
        placed.request,
        filled,
        mt5.order_check(buy_limit()),
        *mt5.orders_get(),
        *mt5.positions_get(),
        *mt5.history_orders_get(0, 2**40),
        *mt5.history_deals_get(0, 2**40),
        mt5.symbol_info_tick("EURUSD"),
        mt5.account_info(),
        mt5.terminal_info(),
        *mt5.symbols_get(),
    ]
    assert {type(result).__name__ for result in results} == set(FIELDS)
    for result in results:
        declared = typing.get_type_hints(type(result))
        for name, value in result._asdict().items():
            # `type(...) is`, not isinstance: a bool where an int is declared (or an int for a float) is a bug.
            assert type(value) is declared[name], f"{type(result).__name__}.{name} = {value!r}"


# ---- lifecycle and failure semantics -------------------------------------------------------------------

GETTERS = [
    ("version", ()),
    ("terminal_info", ()),
    ("account_info", ()),
    ("symbols_get", ()),
    ("symbol_info", ("EURUSD",)),
    ("symbol_info_tick", ("EURUSD",)),
    ("orders_get", ()),
    ("positions_get", ()),
    ("orders_total", ()),
    ("positions_total", ()),
    ("symbols_total", ()),
    ("history_orders_get", (0, 2**31)),
    ("history_deals_get", (0, 2**31)),
    ("order_calc_margin", (mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.08)),
    ("order_check", (buy_limit(),)),
    ("order_send", (buy_limit(),)),
]


@pytest.mark.parametrize(("name", "args"), GETTERS)
def test_every_call_before_initialize_fails_with_no_ipc_connection(name: str, args: tuple) -> None:
    assert getattr(mt5, name)(*args) is None
    assert mt5.last_error() == NO_IPC


def test_boolean_functions_before_initialize_return_false(terminal_path: Path) -> None:
    assert mt5.symbol_select("EURUSD", True) is False
    assert mt5.last_error() == NO_IPC
    assert mt5.login(1001) is False
    assert mt5.last_error() == NO_IPC


@pytest.mark.parametrize(("name", "args"), GETTERS[:8])
def test_every_call_after_shutdown_fails_with_no_ipc_connection(attached: Path, name: str, args: tuple) -> None:
    mt5.shutdown()
    assert getattr(mt5, name)(*args) is None
    assert mt5.last_error() == NO_IPC


def test_initialize_and_successful_calls_report_success(terminal_path: Path) -> None:
    assert mt5.initialize(str(terminal_path)) is True
    assert mt5.last_error() == SUCCESS
    assert mt5.version() == (500, 5200, "1 Nov 2025")
    assert mt5.last_error() == SUCCESS
    assert mt5.shutdown() is None


def test_initialize_accepts_a_file_inside_the_terminal_directory(terminal_path: Path) -> None:
    assert mt5.initialize(str(terminal_path / "terminal64.exe"), login=1001, server="Sim-Demo", password="secret")
    assert mt5.terminal_info().path == str(terminal_path)


def test_initialize_without_a_terminal_reports_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MT5SIM_PATH", raising=False)
    expected = (-10003, "IPC initialize failed, MetaTrader 5 x64 not found")
    assert mt5.initialize(str(tmp_path / "nothing")) is False
    assert mt5.last_error() == expected
    assert mt5.initialize() is False
    assert mt5.last_error() == expected


def test_initialize_without_path_uses_the_environment_variable(
    terminal_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MT5SIM_PATH", str(terminal_path))
    assert mt5.initialize() is True
    assert mt5.account_info().login == 1001


@pytest.mark.parametrize(
    "credentials", [{"login": 1002}, {"server": "Other-Server"}, {"password": "wrong"}, {"login": 1001, "server": "x"}]
)
def test_initialize_with_wrong_credentials_fails_authorization(terminal_path: Path, credentials: dict) -> None:
    assert mt5.initialize(str(terminal_path), **credentials) is False
    assert mt5.last_error() == (-6, "Terminal: Authorization failed")
    assert mt5.account_info() is None
    assert mt5.last_error() == NO_IPC


def test_password_is_not_checked_when_the_terminal_has_none(tmp_path: Path) -> None:
    path = mt5.create_terminal(tmp_path / "open", login=7, server="S")
    assert mt5.initialize(str(path), login=7, server="S", password="anything") is True


def test_initialize_with_bad_argument_types_is_invalid(terminal_path: Path) -> None:
    assert mt5.initialize(terminal_path) is False  # a Path, not a str: the real package wants a str
    assert mt5.last_error() == (-2, "Invalid 1st unnamed argument")
    assert mt5.initialize(str(terminal_path), login="1001") is False
    assert mt5.last_error() == (-2, 'Invalid "login" argument')


def test_login_checks_the_attached_account(attached: Path) -> None:
    assert mt5.login(1001, password="secret", server="Sim-Demo") is True
    assert mt5.last_error() == SUCCESS
    assert mt5.login(1002, password="secret") is False
    assert mt5.last_error() == (-6, "Terminal: Authorization failed")
    assert mt5.login(1001, password="wrong") is False
    assert mt5.login("1001") is False
    assert mt5.last_error() == (-2, "Invalid 1st unnamed argument")


def test_login_takes_login_password_and_server_positionally_as_real_callers_do(attached: Path) -> None:
    assert mt5.login(1001, "secret", "Sim-Demo") is True
    assert mt5.last_error() == SUCCESS
    assert mt5.login(1001, "secret", "Sim-Demo", 5000) is True
    assert mt5.login(1001, "wrong", "Sim-Demo") is False
    assert mt5.last_error() == (-6, "Terminal: Authorization failed")
    assert mt5.login(1001, "secret", "Other-Server") is False
    assert mt5.login(1001, 123, "Sim-Demo") is False
    assert mt5.last_error() == (-2, "Invalid 2nd unnamed argument")
    assert mt5.login(1001, "secret", password="secret") is False  # one parameter given twice
    assert mt5.last_error()[0] == -2
    assert mt5.login(login=1001, password="secret", server="Sim-Demo") is True  # keywords still work


def test_initialize_on_another_path_switches_the_attached_terminal(attached: Path, tmp_path: Path) -> None:
    other = mt5.create_terminal(tmp_path / "other", login=2002, server="Other")
    assert mt5.account_info().login == 1001
    assert mt5.initialize(str(other)) is True
    assert mt5.account_info().login == 2002
    assert mt5.account_info().server == "Other"


def test_failed_initialize_detaches_the_previous_terminal(attached: Path, tmp_path: Path) -> None:
    assert mt5.initialize(str(tmp_path / "missing")) is False
    assert mt5.orders_get() is None
    assert mt5.last_error() == NO_IPC


def test_terminal_and_account_info_describe_the_simulated_terminal(attached: Path) -> None:
    terminal = mt5.terminal_info()
    assert (terminal.connected, terminal.trade_allowed, terminal.tradeapi_disabled) == (True, True, False)
    assert (terminal.build, terminal.name, terminal.language) == (5200, "MetaTrader 5 (simulated)", "English")
    assert terminal.path == terminal.data_path == str(attached)
    account = mt5.account_info()
    assert (account.login, account.server, account.currency, account.leverage) == (1001, "Sim-Demo", "USD", 100)
    assert (account.balance, account.equity, account.margin, account.margin_free) == (10000.0, 10000.0, 0.0, 10000.0)
    assert (account.trade_allowed, account.trade_expert, account.limit_orders) == (True, True, 0)
    assert account.margin_mode == mt5.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    assert account.company == "Simulated Broker Ltd"


# ---- call forms ----------------------------------------------------------------------------------------


def test_orders_get_refuses_positional_filters(attached: Path) -> None:
    assert mt5.orders_get("EURUSD") is None
    assert mt5.last_error() == (-2, "Invalid arguments")
    assert mt5.positions_get("EURUSD") is None
    assert mt5.last_error() == (-2, "Invalid arguments")


def test_positional_and_keyword_arguments_mixed_are_refused(attached: Path) -> None:
    assert mt5.positions_get(None, ticket=1) is None
    assert mt5.last_error() == (-2, "Unnamed arguments not allowed")
    assert mt5.symbol_info("EURUSD", symbol="EURUSD") is None
    assert mt5.last_error() == (-2, "Unnamed arguments not allowed")
    assert mt5.order_send(buy_limit(), comment="x") is None
    assert mt5.last_error() == (-2, "Unnamed arguments not allowed")
    assert mt5.orders_total() == 0


def test_order_send_accepts_keyword_fields(attached: Path) -> None:
    result = mt5.order_send(**buy_limit())
    assert result.retcode == mt5.TRADE_RETCODE_DONE


def test_orders_get_filters(attached: Path) -> None:
    first = mt5.order_send(buy_limit()).order
    second = mt5.order_send(buy_limit(symbol="GBPUSD", price=1.26)).order
    assert [o.ticket for o in mt5.orders_get()] == [first, second]
    assert [o.ticket for o in mt5.orders_get(symbol="GBPUSD")] == [second]
    assert [o.ticket for o in mt5.orders_get(ticket=first)] == [first]
    assert [o.ticket for o in mt5.orders_get(group="*USD*,!GBP*")] == [first]
    # "If a symbol is specified, the ticket parameter is ignored."
    assert [o.ticket for o in mt5.orders_get(symbol="EURUSD", ticket=second)] == [first]
    # Unknown ticket: an empty tuple (the real return is unverified; the adapter treats both as not found).
    assert mt5.orders_get(ticket=999) == ()
    assert mt5.last_error() == SUCCESS
    assert mt5.orders_total() == 2
    assert mt5.orders_get(symbol=5) is None
    assert mt5.last_error() == (-2, 'Invalid "symbol" argument')


def test_history_call_forms(attached: Path) -> None:
    ticket = mt5.order_send(buy_limit()).order
    assert mt5.order_send({"action": mt5.TRADE_ACTION_REMOVE, "order": ticket}).retcode == 10009
    assert mt5.history_orders_get(None, None) is None
    assert mt5.last_error() == (-2, "Invalid arguments")
    assert mt5.history_orders_get() is None
    assert mt5.history_orders_get(ticket=123456) is None  # unknown ticket: None, not ()
    assert mt5.last_error()[0] == -4
    assert [o.ticket for o in mt5.history_orders_get(ticket=ticket)] == [ticket]
    now = int(mt5.symbol_info_tick("EURUSD").time)
    assert [o.ticket for o in mt5.history_orders_get(now - 60, now + 60)] == [ticket]
    start, end = datetime.fromtimestamp(now - 60, timezone.utc), datetime.fromtimestamp(now + 60, timezone.utc)
    assert [o.ticket for o in mt5.history_orders_get(start, end, group="*EUR*")] == [ticket]
    assert mt5.history_orders_get(start, end, group="!*") == ()
    assert mt5.history_orders_get(now + 100, now + 200) == ()
    assert mt5.history_orders_total(now - 60, now + 60) == 1
    assert mt5.history_deals_get(now - 60, now + 60) == ()
    assert mt5.history_deals_total(now - 60, now + 60) == 0
    assert mt5.history_orders_get("yesterday", now) is None
    assert mt5.last_error() == (-2, "Invalid 1st unnamed argument")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("volume", None),
        ("volume", "0.1"),
        ("price", float("nan")),
        ("symbol", 5),
        ("magic", -1),
        ("magic", 2**64),
        ("comment", "x" * 32),
        ("comment", None),
        ("type", 2.0),
        ("expiration", -5),
        ("action", 99),
        ("action", None),
        ("order", "12"),
    ],
)
def test_malformed_request_fields_are_rejected_locally(attached: Path, field: str, value: object) -> None:
    assert mt5.order_send(buy_limit(**{field: value})) is None
    assert mt5.last_error() == (-2, f'Invalid "{field}" argument')
    assert mt5.order_check(buy_limit(**{field: value})) is None
    assert mt5.orders_total() == 0


def test_request_edge_values_are_accepted(attached: Path) -> None:
    result = mt5.order_send(buy_limit(magic=2**64 - 1, comment="x" * 31, volume=1, price=1.08))
    assert result.retcode == mt5.TRADE_RETCODE_DONE
    order = mt5.orders_get()[0]
    assert (order.magic, order.comment, order.volume_initial) == (2**64 - 1, "x" * 31, 1.0)
    assert isinstance(result.request.volume, float)


def test_order_send_without_a_request_is_invalid(attached: Path) -> None:
    assert mt5.order_send() is None
    assert mt5.last_error() == (-2, "Invalid number of arguments")
    assert mt5.order_send([1, 2]) is None
    assert mt5.last_error() == (-2, "Invalid 1st unnamed argument")


# ---- symbols -------------------------------------------------------------------------------------------


def test_presets_have_realistic_specifications(attached: Path) -> None:
    names = [s.name for s in mt5.symbols_get()]
    assert names == ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500"]
    assert mt5.symbols_total() == 5
    eurusd, usdjpy, gold, index = (mt5.symbol_info(n) for n in ("EURUSD", "USDJPY", "XAUUSD", "US500"))
    assert (eurusd.digits, eurusd.trade_contract_size, eurusd.volume_min, eurusd.volume_step) == (5, 1e5, 0.01, 0.01)
    assert (eurusd.expiration_mode, eurusd.order_mode, eurusd.trade_mode) == (15, 127, mt5.SYMBOL_TRADE_MODE_FULL)
    assert 10 <= eurusd.trade_stops_level <= 20 and 0 <= eurusd.trade_freeze_level <= 5
    assert (eurusd.currency_base, eurusd.currency_profit, eurusd.currency_margin) == ("EUR", "USD", "EUR")
    assert eurusd.bid < eurusd.ask and eurusd.spread == 12
    assert eurusd.trade_tick_value == pytest.approx(1.0)
    assert (usdjpy.digits, usdjpy.point) == (3, 0.001)
    assert usdjpy.trade_tick_value == pytest.approx(100 / usdjpy.ask)  # JPY to USD at the ask
    assert (gold.digits, gold.trade_contract_size) == (2, 100.0)
    assert (index.trade_tick_size, index.volume_step, index.trade_calc_mode) == (
        0.25,
        0.1,
        mt5.SYMBOL_CALC_MODE_CFDLEVERAGE,
    )


def test_symbols_get_group_grammar(attached: Path) -> None:
    def names(group: str) -> list[str]:
        return [s.name for s in mt5.symbols_get(group)]

    assert names("*USD*") == ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]
    assert names("EUR*") == ["EURUSD"]
    assert names("*, !EUR*") == ["GBPUSD", "USDJPY", "XAUUSD", "US500"]
    assert names("*,!*USD*,!*EUR*,!*JPY*,!*GBP*") == ["US500"]
    assert [s.name for s in mt5.symbols_get(group="*JPY")] == ["USDJPY"]


def test_group_conditions_apply_in_order() -> None:
    matches = compile_group("*, !EUR*, EURUSD")
    assert matches("EURUSD") and matches("GBPUSD") and not matches("EURGBP")
    assert not compile_group("")("EURUSD")
    assert compile_group("eurusd")("EURUSD")


def test_unknown_and_unselected_symbols(attached: Path, tmp_path: Path) -> None:
    assert mt5.symbol_info("NOPE") is None
    assert mt5.last_error() == (-4, "Terminal: Not found")
    assert mt5.symbol_select("NOPE", True) is False
    assert mt5.last_error() == (-4, "Terminal: Not found")
    assert mt5.symbol_select("GBPUSD", False) is True
    assert mt5.symbol_info("GBPUSD") is None
    assert mt5.symbol_info_tick("GBPUSD") is None
    assert mt5.last_error() == (-4, "Terminal: Not found")
    assert "GBPUSD" in [s.name for s in mt5.symbols_get()]
    assert mt5.symbol_select("GBPUSD", True) is True
    assert mt5.symbol_info("GBPUSD").select is True


def test_a_symbol_with_orders_cannot_be_deselected(attached: Path) -> None:
    mt5.order_send(buy_limit())
    assert mt5.symbol_select("EURUSD", False) is False
    assert mt5.last_error() == (-1, "Terminal: Call failed")


def test_suffix_and_symbol_overrides(tmp_path: Path) -> None:
    path = mt5.create_terminal(
        tmp_path / "t",
        login=5,
        server="S",
        suffix=".m",
        symbols={
            "EURUSD": {"trade_stops_level": 0, "volume_step": 0.1},
            "US500": None,
            "BTCUSD": {"digits": 2, "bid": 60000.0, "ask": 60010.0, "select": False, "trade_contract_size": 1.0},
        },
    )
    terminal = mt5.Terminal(path)
    assert [s.name for s in terminal.symbols_get()] == ["EURUSD.m", "GBPUSD.m", "USDJPY.m", "XAUUSD.m", "BTCUSD"]
    eurusd = terminal.symbol_info("EURUSD.m")
    assert (eurusd.trade_stops_level, eurusd.volume_step, eurusd.path) == (0, 0.1, "Forex\\Majors\\EURUSD.m")
    assert terminal.symbol_info("BTCUSD") is None  # not selected
    assert terminal.symbol_select("BTCUSD", True)
    btc = terminal.symbol_info("BTCUSD")
    assert (btc.digits, btc.point, btc.bid, btc.currency_base, btc.currency_profit) == (2, 0.01, 60000.0, "BTC", "USD")
    with pytest.raises(ValueError):
        mt5.create_terminal(tmp_path / "bad", login=5, server="S", symbols={"EURUSD": {"not_a_field": 1}})


def test_first_ticket_is_derived_from_the_login(tmp_path: Path) -> None:
    one = mt5.Terminal(mt5.create_terminal(tmp_path / "a", login=1001, server="S"))
    two = mt5.Terminal(mt5.create_terminal(tmp_path / "b", login=1002, server="S", first_ticket=500))
    assert one.order_send(buy_limit()).order == (1001 % 89 + 10) * 1_000_000 + 1
    assert two.order_send(buy_limit()).order == 500


def test_calculations(attached: Path) -> None:
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.085) == pytest.approx(1085.0)
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_SELL, "USDJPY", 1.0, 150.0) == pytest.approx(1000.0)
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "XAUUSD", 0.1, 2000.0) == pytest.approx(200.0)
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "US500", 1.0, 5000.0) == pytest.approx(50.0)
    assert mt5.order_calc_profit(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.08, 1.09) == pytest.approx(1000.0)
    assert mt5.order_calc_profit(mt5.ORDER_TYPE_SELL, "EURUSD", 0.1, 1.08, 1.09) == pytest.approx(-100.0)
    assert mt5.order_calc_profit(mt5.ORDER_TYPE_BUY, "USDJPY", 1.0, 150.0, 151.0) == pytest.approx(666.61, abs=0.01)
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "NOPE", 1.0, 1.0) is None
    assert mt5.last_error() == (-4, "Terminal: Not found")
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0) is None
    assert mt5.last_error() == (-2, "Invalid number of arguments")


# ---- handles and persistence ---------------------------------------------------------------------------


def test_terminal_handles_keep_their_own_last_error(tmp_path: Path) -> None:
    first = mt5.Terminal(mt5.create_terminal(tmp_path / "a", login=1, server="S"))
    second = mt5.Terminal(mt5.create_terminal(tmp_path / "b", login=2, server="S"))
    assert first.symbol_info("NOPE") is None
    assert second.account_info().login == 2
    assert first.last_error() == (-4, "Terminal: Not found")
    assert second.last_error() == SUCCESS
    assert mt5.last_error() == SUCCESS  # the facade's own last_error is untouched
    with pytest.raises(FileNotFoundError):
        mt5.Terminal(tmp_path / "none")


def test_state_survives_reattaching_and_new_handles(attached: Path) -> None:
    ticket = mt5.order_send(buy_limit(comment="keep me")).order
    mt5.shutdown()
    assert mt5.initialize(str(attached))
    assert [(o.ticket, o.comment) for o in mt5.orders_get()] == [(ticket, "keep me")]
    assert [o.ticket for o in mt5.Terminal(attached).orders_get()] == [ticket]


def test_create_terminal_resets_an_existing_terminal(attached: Path) -> None:
    mt5.order_send(buy_limit())
    mt5.create_terminal(attached, login=1001, server="Sim-Demo", balance=500.0)
    # A reset is a reinstall: the old connection is gone, a new one sees the fresh state.
    assert mt5.orders_get() is None
    assert mt5.last_error() == NO_IPC
    assert mt5.initialize(str(attached))
    assert mt5.orders_get() == ()
    assert mt5.account_info().balance == 500.0
