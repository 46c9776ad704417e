"""``probe.record``'s overhead on the CPU: plain forward vs recording full maps vs ``reduce="mean"``, before and after.

::

    python -m benchmarks.measure_record --before main                # main against the working tree
    python -m benchmarks.measure_record --repeats 40 --out benchmarks/results/x.json

Cases (random seeded weights, ``torch.inference_mode`` and ``torch.no_grad``,
two threads): vgg16 at 64 px, batch 4, recording the ReLUs ``features.8``,
``features.18``, ``features.29`` and, separately, the convolutions before them
(``features.7/17/28``, which the in-place ReLUs rewrite); resnet18 at 64 px,
batch 8, recording ``layer1.1.bn2`` and ``layer3.1.bn2`` (rewritten by
``out += identity``), ``layer2`` and ``layer4``; vgg11 at 128 px, batch 4,
recording three convolutions its in-place ReLUs rewrite. Each code tree (``--before
REV`` exported with ``git archive``; the working tree) runs in a fresh
process; inside it the plain pass, the full-map recording and the mean
recording alternate ``--repeats`` times (the ``with`` block opened and closed
around every pass, as a notebook does) and each side's median is taken. The
figures: the overheads (median recorded / median plain - 1), and what the
hooks copied per pass after the first (clones and MiB, counted by wrapping
``torch.Tensor.clone``), which is what the overhead is made of on a GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "vgg16 b4 64px, 3 ReLUs": ("vgg16", 4, 64, ["features.8", "features.18", "features.29"]),
    "vgg16 b4 64px, 3 convs before in-place ReLUs": ("vgg16", 4, 64, ["features.7", "features.17", "features.28"]),
    "resnet18 b8 64px, 2 bn2 + layer2 + layer4": ("resnet18", 8, 64, ["layer1.1.bn2", "layer2", "layer3.1.bn2", "layer4"]),
    "vgg11 b4 128px, 3 convs before in-place ReLUs": ("vgg11", 4, 128, ["features.3", "features.8", "features.18"]),
}


def child(repeats: int) -> dict[str, Any]:
    """In this process (the tree under test first on ``sys.path``): every case's medians and copies."""
    import statistics
    import time

    import torch
    import torchvision

    import probe

    torch.set_num_threads(2)
    results: dict[str, Any] = {}
    for case, (arch, batch, size, layers) in CASES.items():
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)(weights=None).eval()
        images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
        for mode in (torch.inference_mode, torch.no_grad):

            def timed(reduce: str | None, record: bool) -> float:
                start = time.perf_counter()
                with mode():
                    if record:
                        with probe.record(model, layers, reduce=reduce):
                            model(images)
                    else:
                        model(images)
                return time.perf_counter() - start

            sides = {"plain": (None, False), "full": (None, True), "mean": ("mean", True)}
            for reduce, record in sides.values():  # warm-up, and the first (learning) pass of each kind
                timed(reduce, record), timed(reduce, record)
            runs: dict[str, list[float]] = {side: [] for side in sides}
            for _ in range(repeats):
                for side, (reduce, record) in sides.items():
                    runs[side].append(timed(reduce, record))
            medians = {side: statistics.median(values) for side, values in runs.items()}
            copied = cloned(lambda: timed(None, True))
            results[f"{case}, {mode.__name__}"] = {
                "plain_ms": 1000 * medians["plain"],
                "full_overhead": medians["full"] / medians["plain"] - 1,
                "mean_overhead": medians["mean"] / medians["plain"] - 1,
                "full_clones": copied[0], "full_copied_mib": copied[1],
            }
    return results


def cloned(work: Any) -> tuple[int, float]:
    """``(clones, MiB cloned)`` while ``work`` runs."""
    import torch

    made: list[int] = []
    original = torch.Tensor.clone

    def counted(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        made.append(self.numel() * self.element_size())
        return original(self, *args, **kwargs)

    torch.Tensor.clone = counted
    try:
        work()
    finally:
        torch.Tensor.clone = original
    return len(made), sum(made) / 2**20


def run_tree(tree: Path, repeats: int) -> dict[str, Any]:
    """:func:`child` in a fresh Python process with ``tree`` first on the path."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); namespace = {'__file__': sys.argv[2]}; "
            "exec(open(sys.argv[2]).read(), namespace); print(json.dumps(namespace['child'](int(sys.argv[3]))))")
    done = subprocess.run([sys.executable, "-c", code, str(tree), __file__, str(repeats)],
                          capture_output=True, text=True, cwd=tree)
    if done.returncode:
        raise SystemExit(f"the measurement in {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a git revision to measure against the working tree (e.g. main)")
    parser.add_argument("--repeats", type=int, default=25, help="passes of each side per case (default 25)")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    options = parser.parse_args()
    from benchmarks.measure_atlas_overhead import export

    trees = {"after": ROOT}
    with tempfile.TemporaryDirectory() as scratch:
        if options.before:
            trees = {"before": export(options.before, Path(scratch) / "before"), **trees}
        figures = {label: run_tree(tree, options.repeats) for label, tree in trees.items()}
    for label, cases in figures.items():
        for case, row in cases.items():
            print(f"{label:6s} {case:62s} plain {row['plain_ms']:7.1f} ms  full {100 * row['full_overhead']:+5.1f}%  "
                  f"mean {100 * row['mean_overhead']:+5.1f}%  copies/pass {row['full_clones']} "
                  f"({row['full_copied_mib']:.1f} MiB)")
    if options.out:
        options.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
