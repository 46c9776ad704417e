"""``probe attribute IMAGE``: its arguments, options and help, free of torch; its work is :mod:`probe.cli.attribute`,
imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from probe.choices import ATTRIBUTION_METHODS as METHODS, EXTRA_ATTRIBUTION_METHODS as EXTRA_METHODS, MAX_IG_STEPS
from probe.choices import GAUSS_LEGENDRE_MAX_STEPS, IG_BATCH
from probe.cli.common import (
    ProbeCommand, complete_layer, gallery_command, list_option, model_options, out_options, output_option, shared, work,
)
from probe.cli.types import count, finite


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
              help=f"Integrated-gradients steps, run {IG_BATCH} at a time (Gauss-Legendre up to "
                   f"{GAUSS_LEGENDRE_MAX_STEPS}, then the trapezoid rule).")
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
@output_option
@out_options
@gallery_command
def command(**options: Any) -> None:
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
    work("attribute", **options)
