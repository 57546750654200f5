"""Encoding and decoding a snapshot: the message every worker sends on every change."""

from __future__ import annotations

import time

from protocol import PendingOrder, Snapshot, decode, encode


def snapshot(orders: int) -> Snapshot:
    return Snapshot(
        boot_id="bench", seq=1, taken_at_ms=1_700_000_000_000, login=1001, connected=True, trade_allowed=True,
        orders=tuple(
            PendingOrder(ticket=10_000_000 + i, symbol="EURUSD", type=2 + i % 6, volume=0.1, price_open=1.08 + i * 1e-5,
                         price_stoplimit=0.0, sl=1.07, tp=1.09, type_time=0, time_expiration=0, magic=0,
                         comment="manual", time_setup_msc=1_700_000_000_000 + i)
            for i in range(orders)
        ),
    )


def run(*, quick: bool) -> None:
    print("protocol codec (msgspec structs: encode + strict decode of one snapshot, best of rounds)")
    for size in (10, 200, 1000):
        message = snapshot(size)
        frames = encode(message)
        repetitions = max(20, (200 if quick else 2000) // max(1, size // 10))
        # The best round, not the mean: on shared cores the other processes only ever add time.
        per_message = min(_round_trip_seconds(message, repetitions) for _ in range(2 if quick else 5))
        print(f"  {size:>5} orders: {len(frames[2]):>7} bytes, {per_message * 1e6:>9.1f} us per round trip")
    print()


def _round_trip_seconds(message: Snapshot, repetitions: int) -> float:
    started = time.perf_counter()
    for _ in range(repetitions):
        decode(encode(message))
    return (time.perf_counter() - started) / repetitions
