"""``protocol.mt5`` against the real MetaTrader5 package's constants (tests/data/mt5-constants.json), and its helpers.

The copier never reads these values from the module it drives, so a wrong one here would be wrong against a
real terminal while every simulated test passed: each member is checked by name, and each group is complete.
"""

from __future__ import annotations

import ast
import json
from enum import IntEnum
from pathlib import Path

import pytest

import mt5sim.flags
from protocol.mt5 import (
    AMBIGUOUS_RETCODES,
    COPIER_ORDER_STATES,
    FINAL_FATES,
    RETRYABLE_RETCODES,
    SUCCESS_RETCODES,
    AccountMarginMode,
    DealEntry,
    DealReason,
    LastError,
    OrderFilling,
    OrderState,
    OrderTime,
    OrderType,
    PositionType,
    Retcode,
    SymbolOrderFlag,
    SymbolTradeMode,
    TradeAction,
    describe_fate,
    describe_order_type,
    describe_retcode,
    is_retryable,
    order_state_of,
    order_type_of,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = json.loads((ROOT / "tests" / "data" / "mt5-constants.json").read_text(encoding="utf-8"))

# Each enum and the prefix of its group in the package.
GROUPS: dict[type[IntEnum], str] = {
    OrderType: "ORDER_TYPE_",
    OrderState: "ORDER_STATE_",
    OrderTime: "ORDER_TIME_",
    OrderFilling: "ORDER_FILLING_",
    TradeAction: "TRADE_ACTION_",
    PositionType: "POSITION_TYPE_",
    AccountMarginMode: "ACCOUNT_MARGIN_MODE_",
    DealEntry: "DEAL_ENTRY_",
    DealReason: "DEAL_REASON_",
    SymbolTradeMode: "SYMBOL_TRADE_MODE_",
    Retcode: "TRADE_RETCODE_",
}


def copiers_own(member: IntEnum) -> bool:
    # By type first: IntEnum members of different enums with one value are equal (LastError.FAIL == -1).
    return isinstance(member, OrderState) and member in COPIER_ORDER_STATES


def package_name(member: IntEnum) -> str:
    if isinstance(member, LastError):
        return member.constant_name
    return GROUPS[type(member)] + member.name


@pytest.mark.parametrize("enum", [*GROUPS, LastError], ids=lambda enum: enum.__name__)
def test_every_member_has_the_value_of_the_package_constant_of_its_name(enum):
    for member in enum:
        if copiers_own(member):
            continue
        assert PACKAGE.get(package_name(member)) == member.value, package_name(member)


@pytest.mark.parametrize("enum", [*GROUPS, LastError], ids=lambda enum: enum.__name__)
def test_every_constant_of_the_group_is_a_member(enum):
    if enum is LastError:
        expected = {name for name in PACKAGE if name.startswith("RES_")}
    else:
        expected = {name for name in PACKAGE if name.startswith(GROUPS[enum])}
    assert {package_name(member) for member in enum if not copiers_own(member)} == expected


def test_the_copiers_own_order_states_cannot_be_taken_for_real_ones():
    real = {value for name, value in PACKAGE.items() if name.startswith("ORDER_STATE_")}
    for state in COPIER_ORDER_STATES:
        assert state < 0 and state.value not in real and not state.in_history
        assert f"ORDER_STATE_{state.name}" not in PACKAGE
        assert state.fate is None
    assert OrderState.NOT_IN_HISTORY_YET != OrderState.NO_RECORD
    assert (OrderState.NOT_IN_HISTORY_YET, OrderState.NO_RECORD) == (-1, -2)  # the wire's ints are unchanged


def test_the_order_mode_flags_are_not_exported_by_the_package_and_match_the_simulators_rule():
    assert not [name for name in PACKAGE if name.startswith("SYMBOL_ORDER_")]  # SYMBOL_ORDERS_* are another group
    for flag in SymbolOrderFlag:
        assert flag == getattr(mt5sim.flags, f"ORDER_{flag.name}")
    for order_type in OrderType:
        if order_type is OrderType.CLOSE_BY:
            continue
        for flag in SymbolOrderFlag:
            allowed = mt5sim.flags.order_type_allowed(int(flag), order_type)
            assert allowed == (flag is order_type.order_mode_flag), (order_type, flag)


def test_order_type_helpers():
    assert OrderType.BUY_STOP_LIMIT.label == "buy stop limit"
    assert [t for t in OrderType if t.is_pending] == list(range(2, 8))
    assert [t for t in OrderType if t.is_stop_limit] == [OrderType.BUY_STOP_LIMIT, OrderType.SELL_STOP_LIMIT]
    assert [t for t in OrderType if t.is_buy] == [OrderType.BUY, OrderType.BUY_LIMIT, OrderType.BUY_STOP,
                                                  OrderType.BUY_STOP_LIMIT]
    assert OrderType.BUY_STOP_LIMIT.triggered_type is OrderType.BUY_LIMIT
    assert OrderType.SELL_STOP_LIMIT.triggered_type is OrderType.SELL_LIMIT
    assert OrderType.BUY_STOP.triggered_type is None
    assert (describe_order_type(3), describe_order_type(42)) == ("sell limit", "type 42")
    assert (order_type_of(6), order_type_of(42)) == (OrderType.BUY_STOP_LIMIT, None)


def test_order_state_fates():
    assert {state.fate for state in OrderState if state.fate} == FINAL_FATES == {"cancelled", "filled", "expired",
                                                                                 "rejected"}
    assert (describe_fate(2), describe_fate(3), describe_fate(99)) == ("cancelled", "state 3", "state 99")
    assert (order_state_of(-2), order_state_of(99)) == (OrderState.NO_RECORD, None)


def test_retcode_tables():
    assert all(code.description for code in Retcode)
    assert not SUCCESS_RETCODES & RETRYABLE_RETCODES
    assert AMBIGUOUS_RETCODES <= RETRYABLE_RETCODES
    assert Retcode.DONE.is_success and Retcode.MARKET_CLOSED.is_retryable and Retcode.TIMEOUT.is_ambiguous
    assert (describe_retcode(10019), describe_retcode(10099)) == ("not enough money", "retcode 10099")
    assert is_retryable(10004) and not is_retryable(10019) and not is_retryable(10099)


def test_no_product_module_but_protocol_mt5_spells_out_a_trade_retcode():
    found = []
    for package in ("coordinator", "terminal_worker", "config"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and type(node.value) is int and 10004 <= node.value <= 10045:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert found == []
