"""``probe attribute IMAGE``: which pixels drove the prediction (captum), as a gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from probe.attribution import EXTRA_METHODS, MAX_IG_STEPS, METHODS, attribute, parse_baseline
from probe.cli.activations import image_slug
from probe.cli.common import (
    ProbeCommand,
    complete_layer,
    echo_done,
    gallery_command,
    list_option,
    load_model_from_options,
    model_options,
    note,
    option_given,
    out_options,
    progress_bar,
    shared,
)
from probe.cli.types import count, finite
from probe.errors import ProbeUsageError
from probe.gallery import check_out_dir, slug
from probe.images import parse_size


DEEPLIFT_NOTE_GAP = 0.05
"""Above this relative completeness gap the command notes that DeepLift was approximate on this model."""


OPTION_METHODS = {
    "steps": ("integrated-gradients",),
    "samples": ("smoothgrad", "gradient-shap"),
    "noise": ("smoothgrad", "gradient-shap"),
    "baseline": ("integrated-gradients", "deeplift", "gradient-shap", "occlusion"),
}
"""Each method-specific option -> the methods that read it (``--window``/``--stride``: occlusion, checked by
:func:`probe.attribute`)."""


def _refuse_unused_options(methods: list[str]) -> None:
    """Refuse an option given on the command line that none of ``methods`` reads, naming it: it was ignored
    (``--method saliency --steps 200`` ran saliency as if no --steps had been given)."""
    for option, readers in OPTION_METHODS.items():
        if option_given(option) and not set(readers) & set(methods):
            listed = readers[0] if len(readers) == 1 else f"{', '.join(readers[:-1])} and {readers[-1]}"
            raise ProbeUsageError(f"--{option} is read only by {listed}, and no such method runs here; add "
                                  f"--method {readers[0]}, or drop --{option}", param=option)


@click.command("attribute", cls=ProbeCommand)
@click.argument("image")
@model_options(default="digits")
@list_option("--method", "method", item=click.Choice([*METHODS, *EXTRA_METHODS, "all"]), default=["saliency"],
             metavar="METHOD", help=f"Attribution method(s): {', '.join([*METHODS, *EXTRA_METHODS])}; "
             f"all: the first five ({', '.join(METHODS)}) side by side.")
@click.option("--target", default="top", show_default=True, metavar="top|INDEX|LABEL",
              help="Class to explain: the predicted one, an output index, or a label (e.g. star).")
@click.option("--layer", default=None, metavar="NAME", shell_complete=complete_layer,
              help="Grad-CAM's layer: a (N,C,H,W) map, a channels-last (N,H,W,C) map or (N,L,C) tokens on a grid "
                   "(class/distillation tokens dropped). Default: the last layer whose positions the score depends on, "
                   "before global pooling (ResNet's layer4.2, ViT's last block's first norm); the run names it.")
@click.option("--steps", type=count(1, MAX_IG_STEPS), default=50, show_default=True,
              help="Integrated-gradients steps, run 32 at a time (Gauss-Legendre up to 1024, then the trapezoid rule).")
@click.option("--samples", type=count(1), default=16, show_default=True, help="Smoothgrad noisy samples.")
@click.option("--noise", type=finite(min=0), default=0.1, show_default=True,
              help="Smoothgrad noise standard deviation (image values are in [0, 1]).")
@click.option("--size", default=None, metavar="N|HxW",
              help="Input size in pixels (default: the model's); the image is centre-cropped to it.")
@click.option("--window", type=count(1), default=None, metavar="PX",
              help="Occlusion's square window in pixels. Default: a 7x7 grid of windows covering the image, aligned "
                   "to the model's patches (32 px at 224 px; 49 occluded passes at any size).")
@click.option("--stride", type=count(1), default=None, metavar="PX",
              help="Occlusion's step between windows in pixels. Default: the grid's, or half of --window.")
@click.option("--baseline", default="0", show_default=True, metavar="GREY|IMAGE",
              help="Baseline of integrated-gradients, deeplift, gradient-shap and occlusion: a grey level in [0, 1] "
                   "or an image (a file, skimage:NAME, digits:0), resized like IMAGE.")
@shared
@out_options
@gallery_command
def command(image: str, model: str, weights: str, method: list[str], target: str, layer: str | None, steps: int,
            samples: int, noise: float, size: str | None, window: int | None, stride: int | None, baseline: str,
            device: str, seed: int, out: Path | None, force: bool) -> None:
    """Explain the prediction for IMAGE: heatmaps of the pixels that drove it.

    Built on captum: saliency, integrated-gradients (from a black image),
    smoothgrad (noise tunnel over saliency), guided-backprop, gradcam (upsampled
    to the input; by default on the last layer whose positions the score
    depends on, named on stderr; --layer: any layer with spatial output,
    tokens included), deeplift,
    gradient-shap, occlusion (a 7x7 grid of windows by default, aligned to the
    model's patches), lrp (epsilon rule; residual additions, gates and
    activations get rules on a traced copy; refused in one line where a layer
    or an operation has none: attention, LayerNorm).
    deeplift, lrp and guided-backprop run on a weight-sharing copy of the model
    that gives each call of a reused module (ResNet's relu) its own module.
    Heatmaps are black (none) to yellow (the 99th percentile and above), each
    scaled on its own; overlays lay them on a grey copy of IMAGE. Guided
    backprop guides nn.ReLU modules and functional F.relu alike, and refuses
    models without ReLUs. A segmentation model's (N,K,H,W) output is explained
    by class K's summed map, a regression's one score as it is; an output
    without class scores (an embedding, a model without a head, a depth map,
    detections, a dict of maps without 'logits' or 'out') is refused in one
    line. integrated-gradients, smoothgrad, gradient-shap and
    occlusion show a progress bar on stderr (none under --quiet).

    \b
    Examples:
      probe attribute digits:0 --method all
      probe attribute digits:7 --method gradcam --target 1      why not a 1?
      probe attribute shapes:star --model shapes --method integrated-gradients
      probe attribute photo.jpg --model resnet50 --method all --size 224
      probe attribute digits:3 --method deeplift --method lrp --method occlusion
      probe attribute shapes:star --model shapes --method gradient-shap --baseline skimage:grass
      probe attribute photo.jpg --model vit_b_16 --method occlusion --size 224   49 passes, a bar on stderr
    """
    methods = list(METHODS) if "all" in method else list(dict.fromkeys(method))
    _refuse_unused_options(methods)
    loaded = load_model_from_options(model, weights, device, seed)
    parsed = parse_size(size) if size else None
    what = "all" if len(methods) == len(METHODS) else "-".join(methods)
    destination = check_out_dir(out, f"runs/attribute-{slug(loaded.name)}-{image_slug(image)}-{slug(what)}", force=force)
    bars: dict[str, Any] = {}

    def progress(name: str, done: int, total: int) -> None:
        bar = bars.get(name) or bars.setdefault(name, progress_bar(total, name))  # opened once the method runs
        bar.update(done - bar.n)

    try:
        result = attribute(loaded, image, methods, target=target, layer=layer, steps=steps, samples=samples,
                           noise=noise, seed=seed, size=parsed, baseline=parse_baseline(baseline, loaded, parsed),
                           window=window, stride=stride, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    folder = result.save(destination, image=image, seed=seed, **loaded.describe())
    chosen = result.options.get("gradcam_layer")
    if chosen:
        how = "the default: the last layer with positions the score depends on" if chosen["default"] else "--layer"
        note(f"Grad-CAM on {chosen['name']} ({chosen['map']}; {how})")
    for name, reason in result.skipped.items():
        note(f"skipped {name}: {reason}")
    flat = [name for name, attribution in result.attributions.items() if not bool(attribution.any())]
    if flat:
        note(f"{', '.join(flat)} gave all-zero attributions: the score does not change with the image there (a "
             "zero-initialized head, as torchvision's ViTs have with --weights none, or dead ReLUs); the maps are black")
    gap = result.options["completeness"].get("deeplift", 0.0)
    if gap > DEEPLIFT_NOTE_GAP:
        note(f"deeplift's attributions sum to {gap:.0%} off f(image) - f(baseline): captum's DeepLift is exact through "
             "ReLUs and linear layers only (its max-pool rule is approximate; GELU, SiLU, LayerNorm and functional "
             "activations pass plain gradients); integrated-gradients is exact up to --steps")
    echo_done(folder, f"{loaded.name} on {image}: prediction {result.prediction}; "
                      f"explained {result.target_label} with {', '.join(result.heatmaps)}")
