"""``probe layers MODEL``: every layer with its type, output shape and channel count."""

from __future__ import annotations

import click

from probe import zoo
from probe.cli.common import ProbeCommand, complete_model, device_option, parse_weights
from probe.hooks import layers as list_layers
from probe.images import parse_size
from probe.models import load_model


@click.command("layers", cls=ProbeCommand)
@click.argument("model", shell_complete=complete_model)
@click.option("--weights", default="auto", show_default=True, metavar="auto|default|none|PATH",
              help="Weights to load. Shapes do not depend on them: auto loads a zoo model's shipped weights and "
                   "nothing for others (no download).")
@click.option("--size", default=None, metavar="N|HxW", help="Input size for the dummy pass (default: the model's).")
@click.option("--leaves", is_flag=True, help="Only modules without children (hide containers such as Sequential).")
@device_option
def command(model: str, weights: str, size: str | None, leaves: bool, device: str) -> None:
    """List the layers of MODEL with output shapes, to choose a --layer.

    MODEL is a zoo name (digits, lenet5, xo, shapes), a torchvision name
    (vgg16, googlenet, resnet50, ...), a TorchScript file or package.module:factory.
    Names are torch's dotted named_modules() names; 'input' and 'output' are
    reserved for the model's input and output.

    \b
    Examples:
      probe layers digits
      probe layers vgg16 --leaves
      probe layers resnet18 --size 128
    """
    if weights == "auto":
        weights = "default" if model in zoo.zoo_names() else "none"
    loaded = load_model(model, weights=parse_weights(weights), device=device)
    shape = loaded.input_shape
    if size is not None:
        parsed = parse_size(size)
        shape = (shape[0], *((parsed, parsed) if isinstance(parsed, int) else parsed))
    rows = list_layers(loaded.module, shape, leaves_only=leaves)
    name_width = max(len("layer"), *(len(row.name) for row in rows))
    type_width = max(len("type"), *(len(row.type) for row in rows))
    click.echo(f"{loaded.name}: input {list(shape)}, weights {loaded.weights}")
    click.echo(f"{'layer':<{name_width}}  {'type':<{type_width}}  {'output shape':<18}  {'channels':>8}  {'params':>10}")
    for row in rows:
        out = str(list(row.output_shape)) if row.output_shape is not None else "(not run)"
        channels = "" if row.channels is None else str(row.channels)
        click.echo(f"{row.name:<{name_width}}  {row.type:<{type_width}}  {out:<18}  {channels:>8}  {row.parameters:>10,}")
