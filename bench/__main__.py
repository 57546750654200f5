"""``python -m bench``: every benchmark, a table of figures. Bounded: a few minutes on 2 cores (``--quick``: seconds).

P1-P4 are issue 13's figures (copy latency live, full sync, idle load, one source edit at scale), each with the
sequential baseline (one process visiting every target in turn) and the floor measured in the same run.
"""

from __future__ import annotations

import argparse

from bench import codec_bench, engine_bench, latency_bench, live_bench, planner_bench, sync_bench

SECTIONS = ("codec", "planner", "latency", "p1", "p2", "p3", "p4")


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for CI (asserts nothing about time); overrides the sizes below")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--targets", type=int, default=10, help="P1: targets (default 10)")
    parser.add_argument("--rounds", type=int, default=20, help="P1: single orders timed (default 20)")
    parser.add_argument("--p1-round-trip", type=float, default=0.001,
                        help="P1: seconds per order_send on each target's broker (default 0.001)")
    parser.add_argument("--orders", type=int, default=200, help="P2: source orders (default 200)")
    parser.add_argument("--sync-targets", type=_counts, default=(1, 4, 10),
                        help="P2: target counts, comma-separated (default 1,4,10)")
    parser.add_argument("--round-trip", type=float, default=0.02,
                        help="P2: seconds per order_send on each target's broker (default 0.02)")
    parser.add_argument("--idle-terminals", type=int, default=20, help="P3: terminals, source included (default 20)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="P3: seconds measured (default 10)")
    parser.add_argument("--edit-targets", type=int, default=50, help="P4: targets (default 50)")
    parser.add_argument("--copies", type=int, default=1000, help="P4: copies per target (default 1000)")
    parser.add_argument("--edits", type=int, default=9, help="P4: source edits timed (default 9)")
    args = parser.parse_args(argv)
    sections = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))} (known: {', '.join(SECTIONS)})")
    if args.quick:
        args.targets, args.rounds, args.orders, args.sync_targets = 2, 3, 10, (2,)
        args.idle_terminals, args.idle_seconds, args.edit_targets, args.copies, args.edits = 3, 1.0, 3, 50, 2
    print("mt5-copier benchmarks\n")
    if "codec" in sections:
        codec_bench.run(quick=args.quick)
    if "planner" in sections:
        planner_bench.run(quick=args.quick)
    if "latency" in sections:
        latency_bench.run(quick=args.quick)
    if "p1" in sections or "p3" in sections:
        live_bench.run(targets=args.targets, rounds=args.rounds, round_trip=args.p1_round_trip,
                       idle_terminals=args.idle_terminals, idle_seconds=args.idle_seconds,
                       p1="p1" in sections, p3="p3" in sections, quiet_rounds=0 if args.quick else 3)
    if "p2" in sections:
        sync_bench.run(target_counts=args.sync_targets, orders=args.orders, round_trip=args.round_trip)
    if "p4" in sections:
        engine_bench.run(targets=args.edit_targets, copies=args.copies, edits=args.edits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
