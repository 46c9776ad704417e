"""``probe style CONTENT STYLE [STYLE...]``: its arguments, options and help, free of torch; its work is
:mod:`probe.cli.style`, imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from probe.checks import MAX_SIDE
from probe.choices import (
    POOLINGS, STYLE_CONTENT_WEIGHT, STYLE_LEARNING_RATES, STYLE_LOSSES, STYLE_STEPS, STYLE_STYLE_WEIGHT,
    STYLE_TV_WEIGHT,
)
from probe.cli.common import (
    ProbeCommand, complete_layer, gallery_command, list_option, model_options, out_options, shared,
    snapshots_option, speed_options, work,
)
from probe.cli.types import count, finite

LEARNING_RATES = ", ".join(f"{lr:g} for {name}" for name, lr in STYLE_LEARNING_RATES.items())
"""``--lr``'s defaults as its help says them: ``1 for lbfgs, 0.02 for adam``."""


@click.command("style", cls=ProbeCommand)
@click.argument("content")
@click.argument("styles", nargs=-1, required=True, metavar="STYLE [STYLE...]")
@model_options(default="vgg19", help_extra=" Offline: --model shapes (embedded RGB model) or --weights PATH.")
@list_option("--content-layer", "content_layer", metavar="NAME", shell_complete=complete_layer,
             help="Content layer(s): relu4_2, conv4_2, ... (VGG names) or dotted module names. "
                  "[default: relu4_2, or a deep ReLU the model has]")
@list_option("--style-layer", "style_layer", metavar="NAME", shell_complete=complete_layer,
             help="Style layer(s). [default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1, or the first ReLU "
                  "of each block the model has]")
@list_option("--style-layer-weight", "style_layer_weight", item=finite(), metavar="W",
             help="One weight per style layer (normalized to sum 1). [default: equal]")
@click.option("--content-weight", type=finite(min=0), default=STYLE_CONTENT_WEIGHT, show_default=True,
              help="Weight of the content loss.")
@click.option("--style-weight", type=finite(min=0), default=STYLE_STYLE_WEIGHT, show_default=True,
              help="Weight of the style loss (each layer's loss is relative to its target, so one weight fits every model).")
@click.option("--tv-weight", type=finite(min=0), default=STYLE_TV_WEIGHT, show_default=True,
              help="Weight of the total-variation (smoothness) loss.")
@list_option("--style-blend", "style_blend", item=finite(), metavar="W",
             help="One weight per style image, e.g. 0.7,0.3 (normalized to sum 1). [default: equal]")
@click.option("--style-scale", type=finite(min=0, min_open=True), default=1.0, show_default=True,
              help="Style images are resized to this times the content's size: larger, bigger strokes.")
@click.option("--init", default="content", show_default=True, metavar="content|random|PATH",
              help="Start from the content image, seeded noise, or an image.")
@click.option("--optimizer", type=click.Choice(list(STYLE_LEARNING_RATES)), default="lbfgs", show_default=True,
              help="L-BFGS (Gatys) or Adam.")
@click.option("--steps", type=count(1), default=STYLE_STEPS, show_default=True,
              help="Forward+backward passes per scale.")
@click.option("--lr", type=finite(min=0, min_open=True), default=None,
              help=f"Step size. [default: {LEARNING_RATES}]")
@click.option("--size", default=None, metavar="N|HxW",
              help="Result size in pixels: longer side N (aspect kept) or HxW; 512 wants a GPU. "
                   "[default: 256, or twice a small model's input side: 128 for shapes]")
@click.option("--original-colors", is_flag=True, help="Keep the content's colours (transfer luminance only).")
@click.option("--pooling", type=click.Choice(POOLINGS), default="max", show_default=True,
              help="avg swaps max pools for average pools (in a weight-sharing copy; the model is not changed).")
@list_option("--scales", item=count(1, MAX_SIDE), metavar="N",
             help="Multiscale, e.g. 256,512: each scale's result initializes the next (overrides --size; "
                  "default: one scale, --size). In pixels, the longer side.")
@snapshots_option(default=4)
@click.option("--style-loss", "style_loss", type=click.Choice(STYLE_LOSSES), default="gram", show_default=True,
              help="gram: Gatys's Gram matrices; w2: the Wasserstein-2 distance of the features' mean and covariance.")
@click.option("--match-histograms", "match_colors", is_flag=True,
              help="Keep the content's colours by giving each style image the content's colour histogram first "
                   "(the other way of Gatys et al. 2017; --original-colors transfers luminance only).")
@speed_options()
@shared
@out_options
@gallery_command
def command(**options: Any) -> None:
    """Paint CONTENT in the style of STYLE (Gatys et al.'s Gram-matrix style transfer).

    CONTENT and STYLE are image files or bundled samples (skimage:astronaut,
    skimage:coffee, skimage:chelsea, ...). Several STYLE images are blended
    (--style-blend). The result is the image whose deep features match
    CONTENT's and whose Gram matrices (feature correlations) match STYLE's.

    Real, painterly results want the default model: torchvision's vgg19 with
    its ImageNet weights (--weights DEFAULT, downloaded once; or --weights
    PATH, a local vgg19 state_dict). Offline, the embedded RGB model
    (--model shapes, trained on 64x64 shapes and textures) gives a coarser
    transfer of colour and texture in seconds on a CPU.

    \b
    Examples:
      probe style skimage:astronaut skimage:coffee --model shapes
      probe style photo.jpg starry.jpg --model vgg19 --weights DEFAULT --size 512 --device cuda
      probe style photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 --original-colors
      probe style photo.jpg starry.jpg --scales 256,512 --pooling avg
      probe style photo.jpg starry.jpg --content-layer conv4_2 --style-layer relu1_1,relu3_1
      probe style skimage:astronaut skimage:coffee --model shapes --style-loss w2 --match-histograms
    """
    work("style", **options)
