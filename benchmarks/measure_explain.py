"""Do the digit's strokes light up?  ``python -m benchmarks.measure_explain [--count 100]``

Measures issue 6's "Done means" on the embedded ``digits`` model, offline:

1. wall time of ``probe activations digits:0 --all`` and ``probe attribute digits:0
   --method all`` as a user runs them (fresh process, imports included);
2. for each attribution method, the *stroke lift*: the share of the heatmap's
   mass that falls on stroke pixels (input > 0.25) divided by the share of the
   image those pixels cover, averaged over the first ``--count`` bundled
   digits. 1.0 is what a heatmap blind to the digit scores; higher means the
   strokes light up. The same for the ``relu1`` feature maps (aligned to the
   input: a valid 3x3 convolution shifts by one pixel);
3. the same lifts for the same architecture with random weights
   (``--weights none``), the sanity check of Adebayo et al. (2018): a method
   whose map does not change when the weights are randomized explains the
   image, not the model.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import probe
from probe.attribution import METHODS, attribute


def timed_cli(args: list[str], folder: Path) -> float:
    probe_cli = Path(sys.executable).with_name("probe")
    start = time.perf_counter()
    subprocess.run([str(probe_cli), *args, "--out", str(folder)], check=True, capture_output=True)
    return time.perf_counter() - start


def lift(heat: torch.Tensor, strokes: torch.Tensor) -> float:
    """Share of ``heat`` on ``strokes`` over the share of pixels that are strokes."""
    total = float(heat.sum())
    if total <= 0:
        return float("nan")
    return (float(heat[strokes].sum()) / total) / float(strokes.float().mean())


def lifts(model: probe.LoadedModel, count: int) -> dict[str, float]:
    sums = {name: 0.0 for name in (*METHODS, "relu1 maps")}
    for index in range(count):
        image = probe.load_image(f"digits:{index}")
        strokes = image[0] > 0.25
        result = attribute(model, image, "all", steps=32, samples=16)
        for name, heat in result.heatmaps.items():
            sums[name] += lift(heat, strokes)
        maps = probe.feature_maps(model, image, "relu1").maps["relu1"]
        sums["relu1 maps"] += lift(maps.sum(0), strokes[1:-1, 1:-1])
    return {name: value / count for name, value in sums.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="digits to average over (default 100)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    with tempfile.TemporaryDirectory() as tmp:
        activations = timed_cli(["activations", "digits:0", "--all"], Path(tmp) / "a")
        attribution = timed_cli(["attribute", "digits:0", "--method", "all"], Path(tmp) / "b")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"probe activations digits:0 --all        {activations:5.1f} s wall (fresh process)")
    print(f"probe attribute digits:0 --method all   {attribution:5.1f} s wall (fresh process)")
    trained = lifts(probe.load_model("digits", device="cpu"), args.count)
    torch.manual_seed(0)
    random = lifts(probe.load_model("digits", weights=None, device="cpu"), args.count)
    print(f"\nstroke lift over the first {args.count} bundled digits (1.0 = blind to the digit)")
    print(f"| {'map':<22} | trained | random weights |")
    print(f"|{'-' * 24}|---------|----------------|")
    for name in trained:
        print(f"| {name:<22} | {trained[name]:7.2f} | {random[name]:14.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
