"""``probe layers MODEL``: every layer with its type, output shape and channel count."""

from __future__ import annotations

import click

from probe.cli.common import ProbeCommand, complete_model, device_option, load_model_from_options, model_options
from probe.hooks import layers as list_layers
from probe.images import parse_size


@click.command("layers", cls=ProbeCommand)
@click.argument("spec", required=False, metavar="MODEL", shell_complete=complete_model)
@model_options(default=None, help_extra=" Default: the MODEL argument (one of the two is needed).", required=False,
               weights_default="offline")
@click.option("--size", default=None, metavar="N|HxW", help="Input size in pixels for the dummy pass: N or HxW (default: the model's).")
@click.option("--leaves", is_flag=True, help="Only modules without children (hide containers such as Sequential).")
@device_option
def command(spec: str | None, model: str | None, weights: str, size: str | None, leaves: bool, device: str) -> None:
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
    if spec is not None and model is not None and spec != model:
        raise click.UsageError(f"give the model once: as MODEL ({spec!r}) or as --model ({model!r})")
    chosen = spec or model
    if chosen is None:
        raise click.UsageError("which model? e.g. probe layers digits (or --model digits)")
    loaded = load_model_from_options(chosen, weights, device)
    shape = loaded.input_shape
    if size is not None:
        parsed = parse_size(size)
        shape = (shape[0], *((parsed, parsed) if isinstance(parsed, int) else parsed))
    rows = list_layers(loaded.module, shape, leaves_only=leaves)
    name_width = max([len("layer"), *(len(row.name) for row in rows)])
    type_width = max([len("type"), *(len(row.type) for row in rows)])
    click.echo(f"{loaded.name}: input {list(shape)}, weights {loaded.weights} (source {loaded.source})")
    click.echo(f"{'layer':<{name_width}}  {'type':<{type_width}}  {'output shape':<18}  {'channels':>8}  {'params':>10}")
    if not rows:
        click.echo("(no submodules: the forward uses functional calls only; its layers are 'input' and 'output')")
    for row in rows:
        out = "(not run)" if row.output_shape is None else str(list(row.output_shape)) + ("" if row.batched else
                                                                                         " (no batch)")
        channels = "" if row.channels is None else str(row.channels)
        click.echo(f"{row.name:<{name_width}}  {row.type:<{type_width}}  {out:<18}  {channels:>8}  {row.parameters:>10,}")
