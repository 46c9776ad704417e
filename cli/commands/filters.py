"""``probe filters``: its arguments, options and help, free of torch; its work is :mod:`probe.cli.filters`,
imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from probe.choices import FILTER_SCALES, FILTER_VIEWS
from probe.cli.common import ProbeCommand, complete_layer, gallery_command, model_options, out_options, work


@click.command("filters", cls=ProbeCommand)
@model_options(default="digits")
@click.option("--layer", default=None, metavar="NAME", shell_complete=complete_layer,
              help="A Conv2d layer. Default: the first one.")
@click.option("--view", type=click.Choice(FILTER_VIEWS), default="auto", show_default=True,
              help="auto: rgb for 3 input channels, one map for 1, else channels. "
                   "rgb: colour kernels; channels: one tile per input channel; mean: averaged over input channels.")
@click.option("--scale", type=click.Choice(FILTER_SCALES), default="kernel", show_default=True,
              help="Colour scale per kernel (shows each pattern) or per layer (compares strengths).")
@out_options
@gallery_command
def command(**options: Any) -> None:
    """Draw the kernels of a convolution layer: one image per filter.

    First-layer kernels on RGB input are drawn in colour (grey = 0); kernels on
    one channel in red (positive) and blue (negative) on white (0); deeper
    kernels as a mosaic of one tile per input channel, or averaged (--view mean).
    Each is captioned with its index and L2 norm.

    \b
    Examples:
      probe filters                                   digits conv1: 25 kernels 3x3
      probe filters --model xo                        the X/O net's diagonal and cross detectors
      probe filters --model shapes --layer conv1_1    RGB kernels in colour
      probe filters --layer conv2 --view mean         50 kernels, averaged over 25 inputs
    """
    work("filters", **options)
