"""Encoding and decoding a snapshot: the message every worker sends on every change, whole and as its changes to
the last one (protocol/snapshot_changes.py), the way a worker sends it to a coordinator of protocol 1.5."""

from __future__ import annotations

import time

import msgspec

from protocol import ClosedOrder, PendingOrder, Snapshot, SnapshotChanges, decode, encode
from protocol.snapshot_changes import as_changes, changes_since, rebuilt_lists


def snapshot(orders: int, closed: int = 0) -> Snapshot:
    return Snapshot(
        boot_id="bench", seq=1, taken_at_ms=1_700_000_000_000, login=1001, connected=True, trade_allowed=True,
        orders=tuple(
            PendingOrder(ticket=10_000_000 + i, symbol="EURUSD", type=2 + i % 6, volume=0.1, price_open=1.08 + i * 1e-5,
                         price_stoplimit=0.0, sl=1.07, tp=1.09, type_time=0, time_expiration=0, magic=0,
                         comment="manual", time_setup_msc=1_700_000_000_000 + i)
            for i in range(orders)
        ),
        closed=tuple(ClosedOrder(ticket=20_000_000 + i, symbol="EURUSD", type=2, state=4, magic=10_000_000 + i,
                                 comment=f"mt5c:{10_000_000 + i}", time_done_msc=1_700_000_000_000 + i)
                     for i in range(closed)),
    )


def next_snapshot(last: Snapshot) -> Snapshot:
    """``last`` after an order left it: its record added to the closed ones, the oldest record forgotten."""
    gone = last.orders[0]
    record = ClosedOrder(ticket=gone.ticket, symbol=gone.symbol, type=gone.type, state=4, magic=gone.magic,
                         comment=gone.comment)
    return msgspec.structs.replace(last, seq=last.seq + 1, orders=last.orders[1:], closed=(*last.closed[1:], record))


def run(*, quick: bool) -> None:
    print("protocol codec (msgspec structs: encode + strict decode of one snapshot, best of rounds)")
    for size in (10, 200, 1000):
        message = snapshot(size)
        frames = encode(message)
        repetitions = max(20, (200 if quick else 2000) // max(1, size // 10))
        # The best round, not the mean: on shared cores the other processes only ever add time.
        per_message = min(_round_trip_seconds(message, repetitions) for _ in range(2 if quick else 5))
        print(f"  {size:>5} orders: {len(frames[2]):>7} bytes, {per_message * 1e6:>9.1f} us per round trip")
    last = snapshot(1000, closed=500)
    after = next_snapshot(last)
    orders, closed = changes_since(last.orders, after.orders), changes_since(last.closed, after.closed)
    assert orders is not None and closed is not None
    changes = as_changes(after, last.seq, *orders, closed=closed)
    repetitions = 20 if quick else 200
    whole = min(_round_trip_seconds(after, repetitions) for _ in range(2 if quick else 5))
    sent = min(_changes_round_trip_seconds(last, changes, repetitions) for _ in range(2 if quick else 5))
    print(f"  1000 orders and 500 closed orders' records, one order gone: whole {len(encode(after)[2])} bytes, "
          f"{whole * 1e6:.1f} us; as changes {len(encode(changes)[2])} bytes, {sent * 1e6:.1f} us (rebuild included)")
    print()


def _changes_round_trip_seconds(base: Snapshot, changes: SnapshotChanges, repetitions: int) -> float:
    """Encode, decode, and the coordinator's rebuild of both lists on the snapshot it holds."""
    started = time.perf_counter()
    for _ in range(repetitions):
        received = decode(encode(changes))
        assert isinstance(received, SnapshotChanges)
        rebuilt_lists(base, received)
    return (time.perf_counter() - started) / repetitions


def _round_trip_seconds(message: Snapshot, repetitions: int) -> float:
    started = time.perf_counter()
    for _ in range(repetitions):
        decode(encode(message))
    return (time.perf_counter() - started) / repetitions
