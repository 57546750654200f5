"""``python -m bench``: every benchmark, a table of figures. Bounded: about a minute on 2 cores."""

from __future__ import annotations

import argparse

from bench import codec_bench, latency_bench, planner_bench


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller fan-out")
    args = parser.parse_args()
    print("mt5-copier benchmarks\n")
    codec_bench.run(quick=args.quick)
    planner_bench.run(quick=args.quick)
    latency_bench.run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
