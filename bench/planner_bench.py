"""Planning one target: runs on every source change, for every target."""

from __future__ import annotations

import time
from pathlib import Path

from msgspec.structs import replace

from config import Backend, CopySettings, OrderKind, Role, TargetConfig, TerminalConfig
from coordinator.domain.desired import TargetContext
from coordinator.domain.planner import TargetInputs, plan_target
from coordinator.domain.sizing import Accounts
from protocol import PendingOrder, Quote, SymbolSpec
from protocol.mt5 import PENDING_ORDER_TYPES, OrderType
from protocol.tags import copy_tag

SPEC = SymbolSpec(name="EURUSD.m", digits=5, point=1e-5, tick_size=1e-5, contract_size=1e5, volume_min=0.01,
                  volume_max=100.0, volume_step=0.01, volume_limit=0.0, trade_mode=4, stops_level=10,
                  freeze_level=0, expiration_mode=15, filling_mode=1, order_mode=127)
SETTINGS = CopySettings(lot_multiplier=1.5, min_lot=None, max_lot=None, order_types=frozenset(OrderKind),
                        symbol_suffix=".m", symbol_prefix="", symbol_map=(), max_pending_orders=None, enabled=True)
TARGET = TargetConfig(
    terminal=TerminalConfig(name="t", role=Role.TARGET, backend=Backend.SIM, path=Path("t"), login=2, server="S",
                            password_env=None, remote=False, poll_interval=0.1, portable=False, connect_timeout=60.0),
    copy=SETTINGS,
)
CONTEXT = TargetContext(settings=SETTINGS, accounts=Accounts(), source_offset=0, target_offset=0, source_quotes={})
QUOTES = {"EURUSD.m": Quote(symbol="EURUSD.m", bid=1.0850, ask=1.0851)}
PENDING_TYPES = sorted(PENDING_ORDER_TYPES)


def _order(ticket: int, type_value: int, index: int) -> PendingOrder:
    """A valid pending order of type ``type_value`` around a 1.0850/1.0851 market."""
    order_type = OrderType(type_value)
    below = order_type in (OrderType.BUY_LIMIT, OrderType.SELL_STOP, OrderType.SELL_STOP_LIMIT)
    price = round(1.0800 - index * 1e-5 if below else 1.0900 + index * 1e-5, 5)
    buy = order_type.is_buy
    stoplimit = round(price - 0.002 if buy else price + 0.002, 5) if order_type.is_stop_limit else 0.0
    entry = stoplimit or price
    return PendingOrder(ticket=ticket, symbol="EURUSD", type=type_value, volume=0.1, price_open=price,
                        price_stoplimit=stoplimit, sl=round(entry - 0.01 if buy else entry + 0.01, 5),
                        tp=round(entry + 0.01 if buy else entry - 0.01, 5), type_time=0, time_expiration=0, magic=0,
                        comment="", time_setup_msc=index)


def run(*, quick: bool) -> None:
    print("planner (one target)")
    for size in (10, 100, 1000):
        source = [_order(10_000_000 + i, PENDING_TYPES[i % len(PENDING_TYPES)], i) for i in range(size)]
        in_sync = [replace(o, ticket=90_000_000 + o.ticket, symbol="EURUSD.m", magic=o.ticket,
                           comment=copy_tag(o.ticket)) for o in source]
        for label, target_orders in (("all new", []), ("all in sync", in_sync)):
            inputs = TargetInputs(name="t", config=TARGET, orders=target_orders, specs={"EURUSD.m": SPEC},
                                  quotes=QUOTES, context=CONTEXT)
            repetitions = max(5, (50 if quick else 500) // max(1, size // 10))
            started = time.perf_counter()
            for _ in range(repetitions):
                plan_target(source, inputs)
            per_plan = (time.perf_counter() - started) / repetitions
            print(f"  {size:>5} source orders, {label:<11}: {per_plan * 1e3:>8.3f} ms per plan")
    print()
