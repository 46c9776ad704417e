"""``python -m benchmarks --suite all --device auto``: run the suites, print the table, save the results."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from benchmarks.harness import RESULTS, SUITE_ORDER, curve_table, table, write_results

SUITES = SUITE_ORDER
EVERYDAY = tuple(name for name in SUITES if name != "gpu")
"""What ``--suite all`` runs: the gpu suite (the issue's GPU sizes) is asked for by name."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--suite", action="append", choices=("all", *SUITES),
                        help="suite to run (repeatable; default all: every suite but gpu, the issue's GPU rows)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--quick", action="store_true", help="small sizes and few steps: checks that every suite runs")
    parser.add_argument("--no-save", action="store_true", help="print only; do not write benchmarks/results/")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="DIR",
                        help="folder of the results file (default benchmarks/results/)")
    args = parser.parse_args(argv)

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = EVERYDAY if not args.suite or "all" in args.suite else tuple(dict.fromkeys(args.suite))
    rows, curves = [], []
    for name in chosen:
        print(f"== {name} on {device}{' (quick)' if args.quick else ''}", file=sys.stderr, flush=True)
        suite = importlib.import_module(f"benchmarks.suites.{name}")
        suite_rows, suite_curves = suite.run(device, args.quick)
        rows += suite_rows
        curves += suite_curves
        if suite_rows:
            print(table(suite_rows), file=sys.stderr, flush=True)
    print(table(rows))
    if curves:
        print()
        print(curve_table(curves))
    if not args.no_save:
        path = write_results(rows, device, {"suites": list(chosen), "quick": args.quick}, curves=curves,
                             folder=args.results)
        print(f"saved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
