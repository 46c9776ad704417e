"""``probe layers MODEL``: its arguments, options and help, free of torch; its work is :mod:`probe.cli.layers`,
imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from probe.cli.common import ProbeCommand, complete_model, device_option, model_options, work


@click.command("layers", cls=ProbeCommand)
@click.argument("spec", required=False, metavar="MODEL", shell_complete=complete_model)
@model_options(default=None, help_extra=" Default: the MODEL argument (one of the two is needed).", required=False,
               weights_default="offline")
@click.option("--size", default=None, metavar="N|HxW", help="Input size in pixels for the dummy pass: N or HxW (default: the model's).")
@click.option("--leaves", is_flag=True, help="Only modules without children (hide containers such as Sequential).")
@device_option
def command(**options: Any) -> None:
    """List the layers of MODEL (or --model MODEL) with output shapes, to choose a --layer.

    MODEL is any spec the other commands take: a zoo name (digits, lenet5, xo,
    shapes), a torchvision name (vgg16, googlenet, resnet50, ...), timm:NAME,
    hf:NAME_OR_DIR, an .onnx or TorchScript file, path/to/file.py:factory or
    package.module:factory. Weights default to 'offline': shipped where they
    ship, random (seeded) where they would need a download; shapes do not
    depend on them. Names are torch's dotted named_modules() names; 'input' and
    'output' are reserved for the model's input and output.

    \b
    Examples:
      probe layers digits
      probe layers vgg16 --leaves
      probe layers resnet18 --size 128
      probe layers timm:resnet18 --model-arg num_classes=10
      probe layers ./mynet.py:build --input-size 32
    """
    work("layers", **options)
