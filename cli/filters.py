"""``probe filters``: the learned kernels of a convolution layer as images."""

from __future__ import annotations

from pathlib import Path

import click

from probe.cli.common import (
    ProbeCommand,
    complete_layer,
    echo_done,
    gallery_command,
    load_model_from_options,
    model_options,
    out_options,
)
from probe.kernels import VIEWS, filters
from probe.gallery import check_out_dir, slug
from probe.reports.filters import SCALES


@click.command("filters", cls=ProbeCommand)
@model_options(default="digits")
@click.option("--layer", default=None, metavar="NAME", shell_complete=complete_layer,
              help="A Conv2d layer. Default: the first one.")
@click.option("--view", type=click.Choice(VIEWS), default="auto", show_default=True,
              help="auto: rgb for 3 input channels, one map for 1, else channels. "
                   "rgb: colour kernels; channels: one tile per input channel; mean: averaged over input channels.")
@click.option("--scale", type=click.Choice(SCALES), default="kernel", show_default=True,
              help="Colour scale per kernel (shows each pattern) or per layer (compares strengths).")
@out_options
@gallery_command
def command(model: str, weights: str, layer: str | None, view: str, scale: str, out: Path | None, force: bool) -> None:
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
    loaded = load_model_from_options(model, weights, "cpu")
    result = filters(loaded, layer, view=view)
    destination = check_out_dir(out, f"runs/filters-{slug(loaded.name)}-{slug(result.layer)}", force=force)
    folder = result.save(destination, scale=scale, kernels="computed by the layer" if result.computed else "weight",
                         **loaded.describe())
    shape = "x".join(str(s) for s in result.weight.shape[1:])
    computed = " (as convolved: the layer computes them from its stored weight)" if result.computed else ""
    echo_done(folder, f"{loaded.name} {result.layer}: {result.weight.shape[0]} kernels {shape}, view {result.view}"
                      f"{computed}")
