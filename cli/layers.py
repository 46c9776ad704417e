"""``probe layers MODEL``: every layer with its type, output shape and channel count."""

from __future__ import annotations

import click

from probe.cli.common import load_model_from_options
from probe.hooks import layers as list_layers
from probe.images import parse_size


def run(spec: str | None, model: str | None, weights: str, size: str | None, leaves: bool, device: str) -> None:
    """``probe layers``'s work, on the options click parsed (see :mod:`probe.cli.commands.layers`)."""
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
