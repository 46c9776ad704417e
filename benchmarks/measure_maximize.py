"""Measure what issue 3 promises of ``probe maximize`` on the shipped ``digits`` model, and make the example gallery.

::

    python -m benchmarks.measure_maximize                                  # render, measure, print
    python -m benchmarks.measure_maximize --gallery docs/gallery/maximize  # ... and refresh the examples

Every image is made by the ``probe maximize`` command itself (a subprocess, all
defaults unless the example says otherwise), then read back from its PNGs and
measured with the shipped model:

- conv2: each synthesized image's degree of activation (the sum of its 11x11
  map, the score ``probe maximize --layer conv2`` climbs) against that filter's
  maximum over all 1,797 digits of scikit-learn's ``load_digits``, framed at
  28x28 as the model was trained; also on the rectified map (``relu2``);
- fc2 classes with and without the L1 constraint: the probability of the own
  class, and the L1 norm (ink) of each constrained image over the unconstrained one;
- smoothness: the total variation of the ``robust`` images against ``plain``'s;
- time: the optimization (the manifest's ``seconds``) and the whole command.

The numbers go to stdout and to ``OUT/measurements.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

EXAMPLES: dict[str, list[str]] = {
    "digits-conv2": ["--layer", "conv2"],
    "digits-conv2-plain": ["--layer", "conv2", "--preset", "plain"],
    "digits-classes": ["--objective", "class"],
    "digits-classes-l1": ["--objective", "class", "--l1", "0.3"],
    "shapes-conv3_1": ["--model", "shapes", "--layer", "conv3_1", "--units", "0-8"],
}
"""The galleries, as ``probe maximize`` arguments (``--out`` is added)."""


def _probe_command() -> list[str]:
    script = Path(sys.executable).with_name("probe")
    if script.exists():
        return [str(script)]
    found = shutil.which("probe")
    if found is None:
        raise SystemExit("the 'probe' command is not installed next to this Python; pip install -e . first")
    return [found]


def render(out: Path) -> dict[str, dict[str, Any]]:
    """Run every example's command into ``out/NAME``; return its manifest plus the wall time."""
    runs = {}
    for name, arguments in EXAMPLES.items():
        command = [*_probe_command(), "maximize", *arguments, "--out", str(out / name), "--force"]
        print("$", " ".join(["probe", *command[1:]]), file=sys.stderr, flush=True)
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        manifest = json.loads((out / name / "manifest.json").read_text())
        runs[name] = {"manifest": manifest, "wall_seconds": wall, "folder": out / name}
    return runs


def _images(run: dict[str, Any], channels: int) -> torch.Tensor:
    from probe.images import load_image

    items = [item for item in run["manifest"]["items"] if "section" not in item]
    return torch.stack([load_image(str(run["folder"] / item["file"]), channels=channels) for item in items])


def _real_digits() -> torch.Tensor:
    """All 1,797 digits of ``load_digits`` at 28x28, as the model was trained (both splits)."""
    from probe.zoo import make_dataset

    return torch.cat([make_dataset("digits", split).tensors[0] for split in ("train", "test")])


def _degrees(loaded: Any, images: torch.Tensor, layer: str) -> torch.Tensor:
    """``(N, C)`` degree of activation of every filter of ``layer`` (the sum over its map)."""
    import probe

    with probe.record(loaded.module, [layer]) as acts, torch.no_grad():
        loaded(images.to(loaded.device))
    return acts[layer].float().sum(dim=(2, 3)).cpu()


def _total_variation(images: torch.Tensor) -> torch.Tensor:
    from probe import objectives as O
    from probe.objectives import Context

    return O.total_variation()(Context({}, images))


def measure(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's numbers from the rendered galleries."""
    import probe

    digits = probe.load_model("digits", device="cpu")
    real = _real_digits()
    results: dict[str, Any] = {"real_digits": int(real.shape[0])}

    # conv2: synthesized degree of activation vs the filter's maximum over every real digit
    synthesized = _images(runs["digits-conv2"], 1)
    units = torch.arange(synthesized.shape[0])
    for layer in ("conv2", "relu2"):
        real_max = _degrees(digits, real, layer).max(dim=0).values
        ours = _degrees(digits, synthesized, layer)[units, units]
        positive = real_max > 0
        ratios = ours[positive] / real_max[positive]
        results[layer] = {
            "above_real_max": int((ours > real_max).sum()),
            "filters": int(len(units)),
            "median_ratio": float(ratios.median()),
            "min_ratio": float(ratios.min()),
            "ratio_over": f"{int(positive.sum())} filters whose real maximum is positive",
            "median_margin": float((ours - real_max).median()),
            "min_margin": float((ours - real_max).min()),
            "real_max_median": float(real_max.median()),
            "synthesized_median": float(ours.median()),
        }
    scores = torch.tensor([item["score"] for item in runs["digits-conv2"]["manifest"]["items"]])
    measured = _degrees(digits, synthesized, "conv2")[units, units]
    results["conv2"]["manifest_scores_match"] = bool(torch.allclose(scores, measured, rtol=1e-4, atol=1e-3))

    # classes: probability of the own class, and the ink (L1) with and without the constraint
    classes = {}
    for name in ("digits-classes", "digits-classes-l1"):
        images = _images(runs[name], 1)
        with torch.no_grad():
            probabilities = digits(images).softmax(dim=1)
        own = probabilities[torch.arange(10), torch.arange(10)]
        classes[name] = {"images": images, "own": own, "predicted": probabilities.argmax(dim=1),
                         "l1": images.flatten(1).abs().sum(dim=1)}
    free, constrained = classes["digits-classes"], classes["digits-classes-l1"]
    ratio = constrained["l1"] / free["l1"]
    results["classes"] = {
        "l1_weight": 0.3,
        "all_predicted_as_their_class": bool((constrained["predicted"] == torch.arange(10)).all()),
        "min_probability_l1": float(constrained["own"].min()),
        "min_probability_free": float(free["own"].min()),
        "l1_ratio_max": float(ratio.max()),
        "l1_ratio_median": float(ratio.median()),
        "l1_ratio_per_class": [round(float(r), 3) for r in ratio],
        "l1_free_median": float(free["l1"].median()),
        "l1_constrained_median": float(constrained["l1"].median()),
    }

    # smoothness: robust vs plain, same filters
    robust_tv = _total_variation(synthesized)
    plain_tv = _total_variation(_images(runs["digits-conv2-plain"], 1))
    results["smoothness"] = {
        "tv_median_robust": float(robust_tv.median()),
        "tv_median_plain": float(plain_tv.median()),
        "robust_smoother_for": int((robust_tv < plain_tv).sum()),
    }

    results["timings"] = {
        name: {"optimization_s": run["manifest"].get("seconds"), "command_s": round(run["wall_seconds"], 1),
               "images": len([i for i in run["manifest"]["items"] if "section" not in i]),
               "steps": run["manifest"]["steps"], "image_size": run["manifest"]["image_size"]}
        for name, run in runs.items()
    }
    results["torch_threads"] = torch.get_num_threads()
    results["commands"] = {name: run["manifest"].get("cli") for name, run in runs.items()}
    return results


def report(results: dict[str, Any]) -> str:
    """A short human summary of :func:`measure`'s numbers."""
    conv2, relu2, classes, smooth = results["conv2"], results["relu2"], results["classes"], results["smoothness"]
    lines = [
        f"conv2 (pre-ReLU sum of the 11x11 map): {conv2['above_real_max']}/{conv2['filters']} synthesized images above "
        f"the filter's maximum over {results['real_digits']} real digits; median ratio {conv2['median_ratio']:.2f} "
        f"(min {conv2['min_ratio']:.2f}) over the {conv2['ratio_over']}; median margin {conv2['median_margin']:.1f}, "
        f"min margin {conv2['min_margin']:.1f}",
        f"relu2 (rectified map) of the same images: {relu2['above_real_max']}/{relu2['filters']} above; median ratio "
        f"{relu2['median_ratio']:.2f} (min {relu2['min_ratio']:.2f}) over the {relu2['ratio_over']}",
        f"classes with --l1 {classes['l1_weight']}: all predicted as their class: {classes['all_predicted_as_their_class']}; "
        f"min probability {classes['min_probability_l1']:.4f}; L1 ratio to unconstrained: max {classes['l1_ratio_max']:.2f}, "
        f"median {classes['l1_ratio_median']:.2f}",
        f"smoothness (total variation, median): robust {smooth['tv_median_robust']:.0f} vs plain "
        f"{smooth['tv_median_plain']:.0f}; robust smoother for {smooth['robust_smoother_for']}/50 filters",
    ]
    for name, timing in results["timings"].items():
        lines.append(f"{name}: {timing['images']} images x {timing['steps']} steps at "
                     f"{timing['image_size'][0]}x{timing['image_size'][1]}: optimization {timing['optimization_s']} s, "
                     f"whole command {timing['command_s']} s ({results['torch_threads']} torch threads)")
    return "\n".join(lines)


def copy_gallery(runs: dict[str, dict[str, Any]], gallery: Path) -> None:
    """Copy each example's contact sheet and manifest into ``gallery/NAME/`` (the committed example)."""
    for name, run in runs.items():
        target = gallery / name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run["folder"] / "manifest.json", target / "manifest.json")
        _save_compact(run["folder"] / "contact-sheet.png", target / "contact-sheet.png")


def _save_compact(source: Path, target: Path) -> None:
    """Copy a PNG losslessly, as 8-bit gray when every pixel is gray (about half the bytes of the RGB sheet)."""
    from PIL import Image, ImageChops

    image = Image.open(source).convert("RGB")
    red, green, blue = image.split()
    gray = ImageChops.difference(red, green).getbbox() is None and ImageChops.difference(red, blue).getbbox() is None
    (image.convert("L") if gray else image).save(target, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.measure_maximize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/measure-maximize"), help="where the galleries go")
    parser.add_argument("--gallery", type=Path, default=None,
                        help="also copy each contact sheet and manifest here (e.g. docs/gallery/maximize)")
    args = parser.parse_args(argv)
    runs = render(args.out)
    results = measure(runs)
    (args.out / "measurements.json").write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    if args.gallery is not None:
        copy_gallery(runs, args.gallery)
    return 0


if __name__ == "__main__":
    sys.exit(main())
