"""What one step of each method costs besides its arithmetic, counted (not timed) on the CPU.

``python -m benchmarks.measure_steps [--size PX] [--methods maximize dream style record] [--out FILE.json]``

Per step of maximize (googlenet ``inception4a``, 16 units, robust preset), dream (googlenet ``inception4c``,
one octave), style (VGG19, the tutorial's layers, L-BFGS evaluations) and a recorded vgg16 pass (three layers,
the block opened and closed every pass, ``inference_mode``; full maps, ``record_mean`` for ``reduce="mean"``, and
``plain_forward``, the same pass unrecorded, to subtract):

- **Python calls**: function calls per step (:mod:`cProfile`'s count at 3 and at 13 steps, the difference / 10),
  the host's own work at every step, the cost that stays when a GPU makes the arithmetic fast;
- **ATen operations**: operations per step (a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
  counts them at 2 and 4 steps), each a kernel launch on CUDA, by where they come from: the model's forward
  pass, autograd's backward pass (or the caller's own code: "backward or caller"), or the cnn-probe function
  that asked for them.

Both are counts, not times: they do not depend on the machine's load, so the CPU (2 cores shared with other
jobs) can measure them. Random weights; sizes small by default (counts do not depend on the image size).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

Work = Callable[[int], Any]
"""``work(steps)``: run the method for ``steps`` steps."""


def _net(name: str) -> torch.nn.Module:
    import torchvision

    torch.manual_seed(0)
    if name == "googlenet":
        return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    return getattr(torchvision.models, name)(weights=None).eval()


def methods(size: int) -> dict[str, Work]:
    """Each method as ``work(steps)`` at ``size`` px, its model built once."""
    import probe
    from probe import objectives as O

    googlenet = probe.load_model(_net("googlenet"), device="cpu")
    vgg19 = probe.load_model(_net("vgg19"), device="cpu")
    vgg16 = _net("vgg16")
    channels = O.channel("inception4a", range(16), reduce="mean")
    photo, painting = (torch.rand(3, size, size, generator=torch.Generator().manual_seed(k)) for k in (1, 2))
    recorded = ["features.15", "features.22", "features.29"]
    batch = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3))

    def record(steps: int, reduce: str | None = None) -> None:
        for _ in range(steps):
            with torch.inference_mode(), probe.record(vgg16, recorded, reduce=reduce):
                vgg16(batch)

    def plain(steps: int) -> None:
        for _ in range(steps):
            with torch.inference_mode():
                vgg16(batch)

    return {
        "maximize": lambda steps: probe.maximize(googlenet, channels, steps=steps, image_size=size, seed=0),
        "dream": lambda steps: probe.dream(googlenet, photo, ["inception4c"], steps=steps, octaves=1),
        "style": lambda steps: probe.style_transfer(
            vgg19, photo, painting, size=size, steps=steps, snapshots=0, content_layers=["features.5"],
            style_layers=["features.0", "features.2", "features.5", "features.7", "features.10"]),
        "record": record,
        "record_mean": lambda steps: record(steps, "mean"),
        "plain_forward": plain,
    }


def python_calls(work: Work, few: int = 3, many: int = 13) -> float:
    """Python function calls per step: the difference of two runs' counts over their difference in steps."""
    totals = []
    for steps in (few, many):
        profile = cProfile.Profile()
        profile.enable()
        work(steps)
        profile.disable()
        totals.append(pstats.Stats(profile).total_calls)
    return (totals[1] - totals[0]) / (many - few)


class _Operations(TorchDispatchMode):
    """Counts ATen operations by origin: ``model forward``, ``backward or caller``, ``optimizer`` or the cnn-probe
    file:function."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.counts[_origin()] += 1
        return func(*args, **(kwargs or {}))


def _origin() -> str:
    for frame in reversed(traceback.extract_stack(limit=48)[:-2]):
        path = frame.filename.replace("\\", "/")
        if "torchvision/" in path or "torch/nn/" in path:
            return "model forward"
        if "/probe/" in path:
            return f"probe/{path.rsplit('/probe/', 1)[1]}:{frame.name}"
        if "torch/optim/" in path:
            return "optimizer"
    return "backward or caller"


def aten_operations(work: Work, few: int = 2, many: int = 4) -> tuple[float, dict[str, float]]:
    """ATen operations per step, in all and by origin (largest first)."""
    counts = []
    for steps in (few, many):
        with _Operations() as mode:
            work(steps)
        counts.append(mode.counts)
    grown = counts[1].copy()
    grown.subtract(counts[0])
    per_step = {origin: n / (many - few) for origin, n in grown.most_common() if n}
    return sum(per_step.values()), per_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.measure_steps", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=48, help="image side in px (default 48; counts do not grow)")
    parser.add_argument("--methods", nargs="+", default=["maximize", "dream", "style", "record"],
                        choices=["maximize", "dream", "style", "record", "record_mean", "plain_forward"])
    parser.add_argument("--out", type=Path, help="also write the counts here as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    works = methods(args.size)
    results: dict[str, Any] = {}
    for name in args.methods:
        works[name](1)  # what is made once per process (cached tables, first-call learning) is made here
        calls = python_calls(works[name])
        operations, origins = aten_operations(works[name])
        results[name] = {"python_calls_per_step": calls, "aten_ops_per_step": operations, "aten_ops_by_origin": origins}
        top = ", ".join(f"{origin} {n:g}" for origin, n in list(origins.items())[:6])
        print(f"{name:9s} python calls/step {calls:8.0f}   aten ops/step {operations:6.0f}   ({top})", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"size": args.size, "torch": torch.__version__, "methods": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
