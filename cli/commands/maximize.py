"""``probe maximize``: its arguments, options and help, free of torch; its work is :mod:`probe.cli.maximize`,
imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from probe.choices import PARAM_LEARNING_RATES, PRESETS
from probe.cli.commands.methods import method_options
from probe.cli.common import (
    ProbeCommand, complete_layer, gallery_command, list_option, model_options, out_options, output_option, shared,
    snapshots_option, speed_options, work,
)
from probe.cli.types import count, finite

OBJECTIVES = ("channel", "neuron", "class")
"""What ``--objective`` maximizes: a filter's degree of activation, a neuron, a class's logit."""


class BatchSize(click.ParamType):
    """``--batch``: a positive number of images, or ``auto``."""

    name = "batch"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or str(value).strip().isdigit():
            number = int(value)
            if number >= 1:
                return number
        elif str(value).strip().lower() == "auto":
            return "auto"
        self.fail(f"give a number of images >= 1 or 'auto'; got {value!r}", param, ctx)


@click.command("maximize", cls=ProbeCommand)
@model_options(default="digits")
@click.option("--layer", default=None, metavar="LAYER", shell_complete=complete_layer,
              help="Dotted layer name (see 'probe layers MODEL'). Activations are the module's output: conv2 is "
                   "before its ReLU; name relu2 for the rectified map. No default: needed unless --target names it or "
                   "--objective class (the output layer).")
@list_option("--units", default=["all"], metavar="all|0-9|3",
             help="Which filters/neurons/classes, by index or range; one image each, all in one batch (see --batch).")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="channel", show_default=True,
              help="channel: degree of activation, the sum over a filter's map; neuron: the centre position "
                   "(or a linear layer's unit); class: the logit of the model's output.")
@click.option("--l1", type=finite(min=0), default=0.0, show_default=True, metavar="W",
              help="Subtract W x sum|x| (the image in [0,1], summed over pixels): the L1 constraint, which keeps "
                   "only the pixels the objective needs. 0.3 makes the digits model's class images look like digits.")
@click.option("--tv", type=finite(min=0), default=0.0, show_default=True, metavar="W",
              help="Subtract W x total variation (summed absolute differences of neighbouring pixels).")
@click.option("--diversity", type=finite(min=0), default=0.0, show_default=True, metavar="W",
              help="Add W x diversity: several images per unit (--per-unit, 4 by default then) that differ.")
@click.option("--per-unit", type=count(1), default=None, metavar="K",
              help="Images per unit (default 1, or 4 with --diversity).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="robust", show_default=True,
              help="robust: Fourier parametrization + colour decorrelation + random jitter/scale/rotate; "
                   "plain: gradient ascent on the pixels themselves, clipped to [0, 1], no transforms.")
@click.option("--steps", type=count(1), default=256, show_default=True,
              help="Optimization steps: Adam updates of the image.")
@click.option("--lr", type=finite(min=0, min_open=True), default=None,
              help=f"Adam's learning rate on the image's parameters (default: {PRESETS['robust'].lr}; "
                   + "; ".join(f"{lr} for --param {name}" for name, lr in PARAM_LEARNING_RATES.items()) + ").")
@click.option("--size", default=None, metavar="H[xW]",
              help="Image size in pixels: N (square) or HxW (default: the model's input size).")
@click.option("--batch", type=BatchSize(), default="auto", show_default=True, metavar="N|auto",
              help="At most N images per optimization pass; bigger requests run in chunks. auto: on CUDA the "
                   "largest batch that fits 80% of the free memory (halved and retried if it runs out); on the CPU "
                   "64, or fewer when 64 would not fit in half the free memory. Each image has its own seed, so it "
                   "depends on N only at float rounding (README, 'Seeds').")
@snapshots_option(default=0)
@method_options
@speed_options()
@shared
@output_option
@out_options
@gallery_command
def command(**options: Any) -> None:
    """Synthesize the images that maximize a layer's filters, neurons or classes.

    Gradient ascent on the image with the network frozen, for a filter's
    "degree of activation": the sum of its feature map. One image per unit; a
    whole layer renders in one batch. Writes a gallery: one PNG per
    unit, a captioned contact sheet (a = degree of activation), index.html
    and manifest.json with the score of every image.

    Finished batches are kept beside the gallery (.NAME.chunks) until it is
    written: the same command run again after a kill resumes where it
    stopped, and gives the images an uninterrupted run gives.

    \b
    Examples:
      probe maximize --layer conv2                         the 50 conv2 filters of digits
      probe maximize --objective class                     the 10 digit classes: cluttered
      probe maximize --objective class --l1 0.3            ... under the L1 constraint: digits
      probe maximize --objective class --preset plain      plain pixel ascent: noise-like
      probe maximize --layer conv2 --units 0-3,7 --preset plain --snapshots 2
      probe maximize --model shapes --layer conv3_1 --units 0-15
      probe maximize --model googlenet --layer inception4a --units 0-15 --size 128
      probe maximize --target conv2:7 --param maco          MACO, with its transparency map
      probe maximize --model shapes --target conv3_1:5 --from shapes:circle --accentuate 2
    """
    work("maximize", **options)
