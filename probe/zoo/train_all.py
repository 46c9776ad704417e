"""Regenerate the shipped zoo weights: ``python -m probe.zoo.train_all [NAME ...]``.

Trains each named zoo model (all of them by default) with seed 0 and its
default epochs on 2 CPU threads, saves ``probe/zoo/weights/NAME.pt`` (a plain
float32 state_dict) and prints a Markdown table of the results for
``probe/zoo/README.md``. Exits with status 1 if a model misses its held-out
accuracy target (the weights are then not written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from probe.zoo.registry import get_spec, zoo_names
from probe.zoo.train import train

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m probe.zoo.train_all", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=zoo_names(), help="zoo models to train (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for NAME.pt (default: the package's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = [get_spec(name) for name in args.names]
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    failed = False
    for spec in specs:
        def progress(epoch: int, epochs: int, loss: float, name: str = spec.name) -> None:
            print(f"  {name} epoch {epoch:3d}/{epochs}  loss {loss:.4f}", flush=True)

        print(f"training {spec.name} ({spec.epochs} epochs, seed {args.seed})", flush=True)
        report = train(spec.name, seed=args.seed, progress=progress)
        ok = report.test_accuracy >= spec.target_accuracy
        failed |= not ok
        print(
            f"{spec.name}: train {report.train_accuracy:.4f}  held-out {report.test_accuracy:.4f} "
            f"(target {spec.target_accuracy:.2f}{'' if ok else ', MISSED'})  {report.seconds:.1f} s",
            flush=True,
        )
        if not ok:
            continue
        path = args.out / spec.weights_file
        torch.save(report.state_dict, path)
        params = sum(t.numel() for t in report.state_dict.values())
        rows.append(
            f"| `{spec.name}` | {spec.description} | {spec.data_description} | {params:,} "
            f"| {100 * report.test_accuracy:.1f}% | {report.seconds:.0f} s | {path.stat().st_size / 1024:.0f} KB |"
        )

    print()
    print("| model | architecture | data | parameters | held-out accuracy | train time | weights |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
