"""Figures of merit of the parametrizations (issue 18): do class images transfer to an independently trained judge?

::

    python -m benchmarks.measure_methods                    # both tables, on stdout
    python -m benchmarks.measure_methods --steps 256 --out runs/methods   # ... and OUT/measurements.json
    python -m benchmarks.measure_methods --models digits    # only the digits table

For each parametrization (``plain``: clipped pixels without
transforms; then every :data:`probe.param.PARAMETRIZATIONS` with the robust
preset's transforms), the ten class images of each model are synthesized
(``class_logit(0..9)``, seed 0, the same steps for all) and measured:

- **judge p**: the probability of the intended class under an independently
  trained judge; the images are resized to its input. For ``digits`` the judge is
  ``lenet5``, a different architecture trained separately on the same
  digits (32x32); for ``shapes`` it is the ``shapes`` network trained again with
  seed 1 (:func:`shapes_judge`: other initialisation and batch order;
  trained once, about 10 minutes on 2 shared cores, and cached outside the repository, never at
  test time). Median and minimum over the ten classes, and how many of the ten it
  classifies as intended. A class image that only fools the network it was made
  for scores low here;
- **shifted p**: the judge's probability once the image is moved by ``size // 14``
  pixels (2 for digits, 4 for shapes; edges replicated) in each of the 8 directions:
  the worst of the 8 per class, median over the classes. A class image that is a
  fragile pattern of pixels loses it when moved, one with a shape does not;
- **own p**: the same probability under the model itself;
- **TV**: total variation of each image in [0, 1] (sum of absolute neighbour
  differences; median over classes): lower is smoother;
- **s/step**: seconds per optimization step (10 images in one batch), the median of ``--rounds``
  interleaved runs of 16 steps per case in this one process (default 5).

MACO against Horama is left out because ``horama`` is not installed here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import probe
from probe import objectives as O
from probe import param as P
from probe.spectrum import cache_dir
from probe.zoo.registry import get_spec
from probe.zoo.train import train

CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain (pixels, clipped, no transforms)", {"preset": "plain"}),
    *[(f"{kind} + robust transforms", {"param": kind}) for kind in P.PARAMETRIZATIONS],
]
"""Row name and :func:`probe.maximize` options of each row."""


JUDGE_SEED = 1
"""Seed of the second ``shapes`` network, the shapes judge (the shipped ``shapes`` is seed 0)."""


def judge_path(seed: int = JUDGE_SEED) -> Path:
    """Where the shapes judge's weights are cached: ``$CNN_PROBE_CACHE/judges/shapes-seed{seed}.pt``
    (default ``~/.cache/cnn-probe/judges/``): trained once, never committed."""
    return cache_dir().parent / "judges" / f"shapes-seed{seed}.pt"


def shapes_judge(seed: int = JUDGE_SEED) -> probe.LoadedModel:
    """The ``shapes`` network trained with another ``seed`` (other initialisation and batch order, the same
    data and recipe), trained once (:func:`probe.zoo.train.train`, ~2 minutes on 2 cores) and cached at
    :func:`judge_path`."""
    path = judge_path(seed)
    if not path.exists():
        report = train("shapes", seed=seed)
        print(f"trained the shapes judge (seed {seed}): held-out accuracy {report.test_accuracy:.3f}, "
              f"{report.seconds:.0f} s; cached at {path}", file=sys.stderr)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        torch.save(report.state_dict, partial)
        partial.replace(path)  # never a half-written judge
    return probe.load_model("shapes", weights=path)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """``(N,)`` sum of absolute vertical and horizontal neighbour differences of ``(N, C, H, W)`` images."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).sum(1)
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).sum(1)
    return dy + dx


def judge_logits(judge: probe.LoadedModel, images: torch.Tensor) -> torch.Tensor:
    """``(N, classes)`` float32 CPU logits of the judge for ``(N, C, H, W)`` images in [0, 1] (resized to its input)."""
    size = tuple(judge.preprocess.input_size)
    batch = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    with torch.no_grad():
        return judge(batch.to(judge.device)).float().cpu()


def judge_probabilities(judge: probe.LoadedModel, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the judge's softmax probability of ``classes[i]`` for image ``i`` (resized to its input)."""
    return judge_logits(judge, images).softmax(1)[torch.arange(len(classes)), classes]


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``(N, C, H, W)`` images moved by ``(dy, dx)`` pixels (down, right), the uncovered edge replicated."""
    s = max(abs(dy), abs(dx))
    padded = F.pad(images, (s, s, s, s), mode="replicate")
    h, w = images.shape[-2:]
    return padded[..., s - dy : s - dy + h, s - dx : s - dx + w]


def shifted_probabilities(judge: probe.LoadedModel, images: torch.Tensor, classes: torch.Tensor,
                          shift: int) -> torch.Tensor:
    """``(N,)`` the judge's lowest probability of the intended class over the 8 moves of ``shift`` pixels."""
    moves = [(dy, dx) for dy in (-shift, 0, shift) for dx in (-shift, 0, shift) if (dy, dx) != (0, 0)]
    return torch.stack([judge_probabilities(judge, shifted(images, dy, dx), classes) for dy, dx in moves]).amin(0)


JUDGES = {"digits": lambda: probe.load_model("lenet5"), "shapes": shapes_judge}
"""Each measured model's judge, loaded (or, for shapes, trained once) on demand."""

JUDGE_NAMES = {"digits": "lenet5", "shapes": f"shapes seed {JUDGE_SEED}"}


def held_out_accuracy(name: str, judge: probe.LoadedModel) -> float:
    """The judge's accuracy on the held-out split of model ``name``'s data (how good a judge it is)."""
    images, labels = get_spec(name).data("test", 0, None)
    right = sum(int((judge_logits(judge, images[i : i + 250]).argmax(1) == labels[i : i + 250]).sum())
                for i in range(0, len(labels), 250))
    return right / len(labels)


def measure(name: str, steps: int, seed: int = 0) -> list[dict[str, Any]]:
    """One row per case for model ``name``: judge, shifted and own probabilities, total variation, s/step."""
    model, judge = probe.load_model(name), JUDGES[name]()
    classes = torch.arange(10)
    shift = max(1, min(model.input_shape[-2:]) // 14)
    judge_accuracy = held_out_accuracy(name, judge)
    rows = []
    for case, options in CASES:
        started = time.perf_counter()
        result = probe.maximize(model, O.class_logit(range(10)), steps=steps, seed=seed, **options)
        wall = time.perf_counter() - started
        judged = judge_probabilities(judge, result.images, classes)
        moved = shifted_probabilities(judge, result.images, classes, shift)
        own = result.probabilities
        assert own is not None
        rows.append({
            "model": name, "judge": JUDGE_NAMES[name], "judge_accuracy": judge_accuracy, "case": case, "param": result.settings["param"],
            "lr": result.settings["lr"], "steps": steps,
            "judge_p_median": float(judged.median()), "judge_p_min": float(judged.min()),
            "judge_correct": int((judged > 0.5).sum()), "shift_px": shift,
            "shifted_p_median": float(moved.median()), "shifted_correct": int((moved > 0.5).sum()),
            "own_p_median": float(own.median()), "tv_median": float(total_variation(result.images).median()),
            "seconds_per_step": result.seconds / steps, "wall_seconds": wall,
        })  # fmt: skip
    return rows


def interleaved_seconds(name: str, rounds: int, steps: int = 16, seed: int = 0) -> dict[str, float]:
    """Median seconds per step of each case on model ``name``, its runs interleaved over ``rounds`` in one process.

    On a shared machine the load drifts; alternating the cases round by round gives each the same drift,
    which timing one case after another (the ``wall_seconds`` of :func:`measure`) does not.
    """
    model = probe.load_model(name)
    times: dict[str, list[float]] = {case: [] for case, _ in CASES}
    for _ in range(rounds):
        for case, options in CASES:
            result = probe.maximize(model, O.class_logit(range(10)), steps=steps, seed=seed, **options)
            times[case].append(result.seconds / steps)
    return {case: float(torch.tensor(values).median()) for case, values in times.items()}


def table(rows: list[dict[str, Any]]) -> str:
    """The rows of one model as a Markdown table of benchmarks/README.md."""
    first = rows[0]
    lines = [
        f"| {first['model']} class images, {first['steps']} steps | judge ({first['judge']}) p, median | min | "
        f"judged right (of 10) | shifted {first['shift_px']} px: p, median | right | own p, median | TV, median | "
        "s/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['case']} | {row['judge_p_median']:.3f} | {row['judge_p_min']:.3f} | {row['judge_correct']} | "
                     f"{row['shifted_p_median']:.3f} | {row['shifted_correct']} | "
                     f"{row['own_p_median']:.3f} | {row['tv_median']:.0f} | {row['seconds_per_step']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Measure and print the tables; with ``--out``, also write ``measurements.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", choices=sorted(JUDGES), default=sorted(JUDGES))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved timing rounds of 16 steps per case for the s/step column (0: the render's own)")
    args = parser.parse_args(argv)
    tables: dict[str, list[dict[str, Any]]] = {}
    for name in args.models:
        rows = measure(name, args.steps, args.seed)
        if args.rounds:
            for row, seconds in zip(rows, interleaved_seconds(name, args.rounds, seed=args.seed).values()):
                row["seconds_per_step"] = seconds
        tables[name] = rows
        print(table(rows), end="\n\n", flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "measurements.json").write_text(json.dumps({"steps": args.steps, "seed": args.seed,
                                                                "rows": tables}, indent=1))


if __name__ == "__main__":
    main()
