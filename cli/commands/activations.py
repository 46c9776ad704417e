"""``probe activations IMAGE``: its arguments, options and help, free of torch; its work is
:mod:`probe.cli.activations`, imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from probe.choices import ACTIVATION_SCALES
from probe.cli.common import (
    ProbeCommand, complete_layer, device_option, gallery_command, list_option, model_options, out_options, output_option, work,
)
from probe.cli.types import count


@click.command("activations", cls=ProbeCommand)
@click.argument("image")
@model_options(default="digits")
@list_option("--layer", "layer", metavar="NAME", shell_complete=complete_layer,
             help="Layer(s) to show. Default: every 2-D convolution (Conv2d, ConvTranspose2d).")
@click.option("--all", "all_layers", is_flag=True, help="Every layer (but flatten/dropout/identity, which repeat their input).")
@click.option("--top", type=count(1), default=None,
              help="Show only the N most active channels per layer, most active first (default: every "
                   "channel, in order): --top 8.")
@click.option("--limit", type=count(1), default=64, show_default=True,
              help="Without --top, show at most this many channels per layer (in index order).")
@click.option("--scale", type=click.Choice(ACTIVATION_SCALES), default="map", show_default=True,
              help="Colour scale per map (shows every map's pattern) or per layer (shows which maps are strong).")
@click.option("--size", default=None, metavar="N|HxW",
              help="Input size in pixels (default: the model's); the image is centre-cropped to it.")
@device_option
@output_option
@out_options
@gallery_command
def command(**options: Any) -> None:
    """Show the feature maps the convolutions (or, with --all, every layer) compute for IMAGE, and the prediction.

    IMAGE is a file, skimage:NAME (astronaut, coffee, chelsea, ...) or a zoo
    sample: digits:N (the N-th bundled digit), xo:x, xo:o, shapes:star, ...
    Each layer gets its own grid; each map is captioned with its channel and
    its degree of activation (the sum of the map). Signed maps (convolution
    outputs) are red/blue with white at 0; maps after a ReLU are black to
    yellow. Flat layers and the class probabilities are bar charts. The
    prediction follows the head: softmax of logits, a sigmoid head's own
    probabilities, one score (a regression: no probability), a segmentation
    map's share of the image per class; an output without classes (an
    embedding, a depth map, a base model's features, detections, a dict of
    maps) is described instead.

    \b
    Examples:
      probe activations digits:3                      conv1 and conv2 of the digit 3
      probe activations digits:0 --all                every layer
      probe activations xo:x --model xo --layer relu1
      probe activations skimage:astronaut --model shapes --top 16
    """
    work("activations", **options)
