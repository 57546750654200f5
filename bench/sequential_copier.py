"""The baseline: one process visiting every target in turn, as the seed system does.

For each target: read the source's orders, read the target's, place each missing copy (tagged as the copier
tags its copies, so the benchmark sees both copiers' work the same way). ``python -m bench.sequential_copier
SOURCE TARGET...`` does it flat out until terminated (the live baseline); ``sync_pass`` is one visit.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import mt5sim
from protocol.tags import copy_tag, parse_tag


def sync_pass(source: mt5sim.Terminal, target: mt5sim.Terminal) -> int:
    """One visit of one target; returns the copies placed."""
    orders = source.orders_get() or ()
    copied = {o.magic for o in target.orders_get() or () if parse_tag(o.comment) == o.magic}
    placed = 0
    for order in orders:
        if order.ticket in copied:
            continue
        result = target.order_send({
            "action": mt5sim.TRADE_ACTION_PENDING, "symbol": order.symbol, "volume": order.volume_current,
            "type": order.type, "price": order.price_open, "type_filling": mt5sim.ORDER_FILLING_RETURN,
            "type_time": mt5sim.ORDER_TIME_GTC, "magic": order.ticket, "comment": copy_tag(order.ticket),
        })
        placed += result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE
    return placed


def sync_all(source: mt5sim.Terminal, targets: list[mt5sim.Terminal]) -> int:
    return sum(sync_pass(source, target) for target in targets)


def main(argv: list[str]) -> int:
    source, *targets = (mt5sim.Terminal(Path(path)) for path in argv)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        sync_all(source, targets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
