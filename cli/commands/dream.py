"""``probe dream IMAGE``: its arguments, options and help, free of torch; its work is :mod:`probe.cli.dream`,
imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from probe.choices import DREAM_AUTO_MIN_SIDE, DREAM_OBJECTIVES
from probe.cli.common import (
    ProbeCommand, complete_layer, gallery_command, list_option, model_options, out_options, shared, speed_options,
    work,
)
from probe.cli.types import count, finite

DEFAULT_MODEL = "googlenet"
"""The model ``probe dream`` dreams with unless --model says another (its pretrained weights download once)."""


@click.command("dream", cls=ProbeCommand)
@click.argument("image", metavar="IMAGE")
@model_options(default=DEFAULT_MODEL, help_extra=" Offline: --model shapes.")
@list_option("--layer", "layer", metavar="NAME", shell_complete=complete_layer,
             help="Layer(s) to dream on. Default: the model's (googlenet: inception4c, "
             "shapes: relu3_1, digits: conv2). 'probe layers MODEL' lists the names.")
@list_option("--layer-weight", "layer_weight", item=finite(), metavar="W",
             help="Weight of each --layer, in the same order (default 1 each).")
@list_option("--channels", metavar="0-9|3",
             help="Only these channels of the layer(s) count, by index or range (default: all).")
@click.option("--objective", type=click.Choice(DREAM_OBJECTIVES), default="l2", show_default=True,
              help="l2: mean squared activation (positive grows, negative shrinks); mean: mean activation.")
@click.option("--octaves", type=count(1), default=4, show_default=True, help="Number of scales.")
@click.option("--octave-scale", "octave_scale", type=finite(min=1.0), default=1.4, show_default=True,
              help="Size ratio between consecutive octaves: 1.4 makes each octave's side 1.4 times the previous one's.")
@click.option("--steps", type=count(1), default=10, show_default=True, help="Gradient steps per octave.")
@click.option("--lr", type=finite(min=0.0, max=1.0, min_open=True), default=0.01, show_default=True,
              help="Mean change of a pixel per step (pixel values in [0, 1]).")
@click.option("--jitter", type=count(0), default=32, show_default=True,
              help="Random roll in pixels before each step, undone after.")
@click.option("--tile", type=count(8), default=None, metavar="PX",
              help="Compute gradients in tiles of PX pixels (at random offsets): memory follows the tile, "
              "not the image. Default: whole image.")
@click.option("--tile-margin", "tile_margin", type=count(0), default=None, metavar="PX",
              help="Context around each tile (default: tile/8).")
@click.option("--guide", default=None, metavar="IMAGE",
              help="Steer the dream toward the features of this image (file or skimage:NAME; default: none, "
                   "the layer's own activation): --guide shapes:stripes.")
@click.option("--frames", type=count(0), default=0, show_default=True,
              help="Zoom sequence: N frames, each the dream of the previous one zoomed by --zoom (PNGs and a GIF).")
@click.option("--zoom", type=finite(min=1.0), default=1.05, show_default=True,
              help="Zoom factor between frames: 1.05 is 5% closer each frame.")
@click.option("--size", default="auto", show_default=True, metavar="auto|full|N|HxW",
              help="Resize IMAGE first: auto = longer side twice the model's input size, at least "
              f"{DREAM_AUTO_MIN_SIDE} (googlenet: 448, shapes: 256); full keeps it; "
              "N sets the longer side; HxW both (pixels).")
@speed_options()
@shared
@out_options
@gallery_command
def command(**options: Any) -> None:
    """Deep Dream: make the network exaggerate what it sees in IMAGE.

    IMAGE is a file or a bundled sample: skimage:astronaut, skimage:coffee,
    skimage:chelsea, ... Gradient ascent on the image for the layer's
    activation, over several octaves (scales), with random jitter; the result
    keeps the (resized) input's size. Writes the input, the dream, one image
    per octave, the zoom frames and a GIF, index.html and manifest.json (with
    the layer objective before and after).

    The default model, googlenet, needs its pretrained weights (downloaded
    once on a machine with internet). Offline, use the embedded --model shapes.

    \b
    Examples:
      probe dream skimage:astronaut --model shapes
      probe dream photo.jpg --layer inception4c,inception4d --layer-weight 1,0.5
      probe dream photo.jpg --channels 0-9 --octaves 5 --steps 20
      probe dream skimage:coffee --guide skimage:chelsea
      probe dream big.jpg --size full --tile 512          # 4000 px photos in bounded memory
      probe dream skimage:chelsea --model shapes --frames 10 --zoom 1.08 --size 128   # zoom.gif
    """
    work("dream", **options)
