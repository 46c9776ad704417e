"""Figures of merit of the parametrizations (issue 18): do class images transfer to an independently trained judge?

::

    python -m benchmarks.measure_methods                    # the table, on stdout
    python -m benchmarks.measure_methods --steps 256 --out runs/methods   # ... and OUT/measurements.json

For each parametrization (``plain``: clipped pixels without
transforms; then every :data:`probe.param.PARAMETRIZATIONS` with the robust
preset's transforms), the ten class images of the shipped ``digits`` model are
synthesized (``class_logit(0..9)``, seed 0, the same steps for all) and measured:

- **judge p**: the probability of the intended digit under ``lenet5``, a
  different architecture trained separately on the same digits; the
  images are resized to its 32x32 input. Median and minimum over the ten
  classes, and how many of the ten it classifies as intended. A class image that only fools the
  network it was made for scores low here;
- **own p**: the same probability under ``digits`` itself;
- **TV**: total variation of each image in [0, 1] (sum of absolute neighbour
  differences; median over classes): lower is smoother;
- **s/step**: seconds per optimization step (10 images in one batch), the median of ``--rounds``
  interleaved runs of 16 steps per case in this one process (default 5).

A second ``shapes`` network trained with another seed, the issue's other judge,
is not in the zoo, so the RGB row is left out; MACO against Horama is left out
because ``horama`` is not installed here (nothing can be installed offline).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import probe
from probe import objectives as O
from probe import param as P

CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain (pixels, clipped, no transforms)", {"preset": "plain"}),
    *[(f"{kind} + robust transforms", {"param": kind}) for kind in P.PARAMETRIZATIONS],
]
"""Row name and :func:`probe.maximize` options of each row."""


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """``(N,)`` sum of absolute vertical and horizontal neighbour differences of ``(N, C, H, W)`` images."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).sum(1)
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).sum(1)
    return dy + dx


def judge_probabilities(judge: probe.LoadedModel, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the judge's softmax probability of ``classes[i]`` for image ``i`` (resized to its input)."""
    size = tuple(judge.preprocess.input_size)
    batch = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    with torch.no_grad():
        logits = judge(batch.to(judge.device))
    return logits.float().softmax(1)[torch.arange(len(classes)), classes].cpu()


def measure(steps: int, seed: int = 0) -> list[dict[str, Any]]:
    """One row per case: judge and own probabilities, total variation, seconds per step."""
    model, judge = probe.load_model("digits"), probe.load_model("lenet5")
    classes = torch.arange(10)
    rows = []
    for name, options in CASES:
        started = time.perf_counter()
        result = probe.maximize(model, O.class_logit(range(10)), steps=steps, seed=seed, **options)
        wall = time.perf_counter() - started
        judged = judge_probabilities(judge, result.images, classes)
        own = result.probabilities
        assert own is not None
        rows.append({
            "case": name, "param": result.settings["param"], "lr": result.settings["lr"],
            "judge_p_median": float(judged.median()), "judge_p_min": float(judged.min()),
            "judge_correct": int((judged > 0.5).sum()),
            "own_p_median": float(own.median()), "tv_median": float(total_variation(result.images).median()),
            "seconds_per_step": result.seconds / steps, "wall_seconds": wall,
        })  # fmt: skip
    return rows


def interleaved_seconds(rounds: int, steps: int = 16, seed: int = 0) -> dict[str, float]:
    """Median seconds per step of each case, its runs interleaved over ``rounds`` in this one process.

    On a shared machine the load drifts; alternating the cases round by round gives each the same drift,
    which timing one case after another (the ``wall_seconds`` of :func:`measure`) does not.
    """
    model = probe.load_model("digits")
    times: dict[str, list[float]] = {name: [] for name, _ in CASES}
    for _ in range(rounds):
        for name, options in CASES:
            result = probe.maximize(model, O.class_logit(range(10)), steps=steps, seed=seed, **options)
            times[name].append(result.seconds / steps)
    return {name: float(torch.tensor(values).median()) for name, values in times.items()}


def table(rows: list[dict[str, Any]], steps: int) -> str:
    """The rows as the Markdown table of benchmarks/README.md."""
    lines = [
        f"| digits class images, {steps} steps | judge (lenet5) p, median | min | judged right (of 10) | "
        "own p, median | TV, median | s/step |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['case']} | {row['judge_p_median']:.3f} | {row['judge_p_min']:.3f} | {row['judge_correct']} | "
                     f"{row['own_p_median']:.3f} | {row['tv_median']:.0f} | {row['seconds_per_step']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure and print the table; with ``--out``, also write ``measurements.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved timing rounds of 16 steps per case for the s/step column (0: the render's own)")
    args = parser.parse_args(argv)
    rows = measure(args.steps, args.seed)
    if args.rounds:
        for row, seconds in zip(rows, interleaved_seconds(args.rounds, seed=args.seed).values()):
            row["seconds_per_step"] = seconds
    print(table(rows, args.steps))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "measurements.json").write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
