"""The contract suite's own safety: which terminal it runs on, the demo-only rule, and its clean-up."""

from __future__ import annotations

import pytest

import mt5sim
from tests.contract.venue import (
    CONTRACT_MAGIC_BASE,
    CONTRACT_MAGIC_END,
    MT5,
    TICKETS_PER_RUN,
    RealTerminalSettings,
    close_contract_positions,
    contract_run_base,
    refuse_unless_demo,
    remove_contract_orders,
    why_real_cannot_run,
)

CONFIGURED = {
    "MT5_COPIER_CONTRACT_PATH": r"C:\MT5\Demo\terminal64.exe",
    "MT5_COPIER_CONTRACT_LOGIN": "5001",
    "MT5_COPIER_CONTRACT_SERVER": "Broker-Demo",
}


def test_the_real_terminal_is_skipped_with_the_variables_to_set():
    reason = why_real_cannot_run({}, platform="win32", package_found=lambda: True)
    assert reason is not None
    for name in CONFIGURED:
        assert name in reason
    assert "Proving the adapter on your terminal" in reason


def test_the_real_terminal_needs_windows_and_the_package():
    assert "Windows (this is linux)" in why_real_cannot_run(CONFIGURED, platform="linux")
    assert "pip install MetaTrader5" in why_real_cannot_run(CONFIGURED, platform="win32",
                                                            package_found=lambda: False)
    assert why_real_cannot_run(CONFIGURED, platform="win32", package_found=lambda: True) is None


def test_settings_are_read_from_the_environment_with_the_password_from_the_variable_it_names():
    settings = RealTerminalSettings.from_environment(
        {**CONFIGURED, "MT5_COPIER_CONTRACT_PASSWORD_ENV": "DEMO_PASSWORD", "DEMO_PASSWORD": "s3cret",
         "MT5_COPIER_CONTRACT_SYMBOL": "EURUSD.m"})
    assert (settings.path, settings.login, settings.server, settings.password, settings.symbol) == (
        r"C:\MT5\Demo\terminal64.exe", 5001, "Broker-Demo", "s3cret", "EURUSD.m")
    assert "s3cret" not in repr(settings)
    plain = RealTerminalSettings.from_environment(CONFIGURED)
    assert plain.password is None and plain.symbol == "EURUSD" and not plain.portable


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"MT5_COPIER_CONTRACT_LOGIN": "demo"}, "MT5_COPIER_CONTRACT_LOGIN must be the account number"),
        ({"MT5_COPIER_CONTRACT_PASSWORD_ENV": "NOT_SET_ANYWHERE"}, "names NOT_SET_ANYWHERE, which is not set"),
        ({"MT5_COPIER_CONTRACT_PASSWORD_ENV": "P", "P": "x", "MT5_COPIER_CONTRACT_PASSWORD": "y"}, "not both"),
        ({"MT5_COPIER_CONTRACT_SERVER": ""}, "set MT5_COPIER_CONTRACT_SERVER"),
    ],
    ids=["login", "password-variable-unset", "two-passwords", "server-missing"],
)
def test_wrong_settings_are_named(extra, message):
    with pytest.raises(ValueError, match=message):
        RealTerminalSettings.from_environment({**CONFIGURED, **extra})


@pytest.fixture
def attached(tmp_path):
    mt5sim.create_terminal(tmp_path / "t", login=5001, server="Broker-Demo")
    assert mt5sim.initialize(str(tmp_path / "t"))
    yield tmp_path / "t"
    mt5sim.shutdown()


def test_a_demo_account_is_accepted(attached):
    assert mt5sim.account_info().trade_mode == MT5.ACCOUNT_TRADE_MODE_DEMO
    assert refuse_unless_demo(mt5sim, 5001, "Broker-Demo") is None


@pytest.mark.parametrize(("trade_mode", "kind"), [(MT5.ACCOUNT_TRADE_MODE_REAL, "a REAL account"),
                                                  (MT5.ACCOUNT_TRADE_MODE_CONTEST, "a contest account")],
                         ids=["real", "contest"])
def test_anything_but_a_demo_account_is_refused(attached, trade_mode, kind):
    mt5sim.set_account(attached, trade_mode=trade_mode)
    refusal = refuse_unless_demo(mt5sim, 5001, "Broker-Demo")
    assert refusal.startswith("REFUSED") and kind in refusal and "runs only on a demo account" in refusal


def test_another_account_than_the_configured_one_is_refused(attached):
    refusal = refuse_unless_demo(mt5sim, 5002, "Broker-Demo")
    assert refusal == "REFUSED: the terminal is logged into 5001@Broker-Demo, not the configured 5002@Broker-Demo."


def _pending(magic: int, comment: str = "x") -> int:
    tick = mt5sim.symbol_info_tick("EURUSD")
    result = mt5sim.order_send({
        "action": MT5.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.01, "type": MT5.ORDER_TYPE_BUY_LIMIT,
        "price": round(tick.ask - 0.01, 5), "type_filling": MT5.ORDER_FILLING_RETURN, "magic": magic,
        "comment": comment,
    })
    assert result.retcode == MT5.TRADE_RETCODE_DONE, result
    return result.order


def test_the_clean_up_removes_the_suites_orders_and_nothing_else(attached):
    manual = _pending(0, "by hand")
    other_expert = _pending(CONTRACT_MAGIC_BASE - 1)
    ours = [_pending(CONTRACT_MAGIC_BASE), _pending(CONTRACT_MAGIC_END - 1, "mtc#999999999999")]
    assert remove_contract_orders(mt5sim) == []
    assert sorted(order.ticket for order in mt5sim.orders_get()) == sorted([manual, other_expert])
    assert {order.ticket for order in mt5sim.history_orders_get(ticket=ours[0])} == {ours[0]}


def _position(magic: int, order_type: int = MT5.ORDER_TYPE_BUY) -> int:
    result = mt5sim.order_send({
        "action": MT5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.01, "type": order_type,
        "type_filling": MT5.ORDER_FILLING_FOK, "magic": magic, "comment": "x",
    })
    assert result.retcode == MT5.TRADE_RETCODE_DONE, result
    return result.order


def test_the_clean_up_closes_the_suites_positions_and_nothing_else(attached):
    manual = _position(0)
    other_expert = _position(CONTRACT_MAGIC_BASE - 1)
    ours = [_position(CONTRACT_MAGIC_BASE), _position(CONTRACT_MAGIC_END - 1, MT5.ORDER_TYPE_SELL)]
    assert close_contract_positions(mt5sim) == []
    assert sorted(position.ticket for position in mt5sim.positions_get()) == sorted([manual, other_expert])
    for ticket in ours:
        assert [deal.entry for deal in mt5sim.history_deals_get(position=ticket)] == [
            MT5.DEAL_ENTRY_IN, MT5.DEAL_ENTRY_OUT]


def test_each_run_takes_its_own_block_of_source_tickets_within_the_suites_range():
    first, second = contract_run_base(1_000_000.0), contract_run_base(1_000_000.1)
    assert first != second and abs(first - second) >= TICKETS_PER_RUN
    for base in (first, second, contract_run_base()):
        assert base >= CONTRACT_MAGIC_BASE and base + TICKETS_PER_RUN <= CONTRACT_MAGIC_END
        assert len(f"mtc#{base + TICKETS_PER_RUN - 1}") <= 16
