"""Planning one target: runs on every source change, for every target."""

from __future__ import annotations

import time
from dataclasses import replace

from config import CopySettings, OrderKind
from coordinator.planner import TargetInputs, plan_target
from protocol import PendingOrder, SymbolSpec
from protocol.tags import copy_tag

SPEC = SymbolSpec(name="EURUSD.m", digits=5, point=1e-5, tick_size=1e-5, contract_size=1e5, volume_min=0.01,
                  volume_max=100.0, volume_step=0.01, volume_limit=0.0, trade_mode=4, stops_level=10,
                  freeze_level=0, expiration_mode=15, filling_mode=1, order_mode=127)
SETTINGS = CopySettings(lot_multiplier=1.5, min_lot=None, max_lot=None, order_types=frozenset(OrderKind),
                        symbol_suffix=".m", symbol_prefix="", symbol_map=(), max_pending_orders=None, enabled=True)


def run(*, quick: bool) -> None:
    print("planner (one target)")
    for size in (10, 100, 1000):
        source = [PendingOrder(ticket=10_000_000 + i, symbol="EURUSD", type=2 + i % 6, volume=0.1,
                               price_open=1.08, price_stoplimit=1.07 if i % 6 >= 4 else 0.0, sl=1.07, tp=1.09,
                               type_time=0, time_expiration=0, magic=0, comment="", time_setup_msc=i)
                  for i in range(size)]
        in_sync = [replace(o, ticket=90_000_000 + o.ticket, symbol="EURUSD.m", magic=o.ticket,
                           comment=copy_tag(o.ticket)) for o in source]
        for label, target_orders in (("all new", []), ("all in sync", in_sync)):
            inputs = TargetInputs(name="t", settings=SETTINGS, orders=target_orders, specs={"EURUSD.m": SPEC})
            repetitions = max(5, (50 if quick else 500) // max(1, size // 10))
            started = time.perf_counter()
            for _ in range(repetitions):
                plan_target(source, inputs)
            per_plan = (time.perf_counter() - started) / repetitions
            print(f"  {size:>5} source orders, {label:<11}: {per_plan * 1e3:>8.3f} ms per plan")
    print()
