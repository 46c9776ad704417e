"""``probe activations IMAGE``: the feature maps of chosen layers for one input, as a gallery."""

from __future__ import annotations

from pathlib import Path

import click

from probe.cli.common import echo_done, load_model_from_options, note
from probe.featuremaps import feature_maps
from probe.gallery import check_out_dir, slug
from probe.images import parse_size


def image_slug(image: str) -> str:
    """A short folder-name part for an image source (``digits:3`` -> ``digits-3``, ``cat.jpg`` -> ``cat``)."""
    path = Path(image)
    return slug(path.stem if path.suffix and ":" not in image else image)


def run(image: str, model: str, weights: str, layer: list[str] | None, all_layers: bool, top: int | None,
        limit: int, scale: str, size: str | None, output: str, device: str, out: Path | None, force: bool) -> None:
    """``probe activations``'s work, on the options click parsed (see :mod:`probe.cli.commands.activations`)."""
    if all_layers and layer:
        raise click.UsageError("give --layer or --all, not both")
    loaded = load_model_from_options(model, weights, device)
    parsed = parse_size(size) if size else None
    destination = check_out_dir(out, f"runs/activations-{slug(loaded.name)}-{image_slug(image)}", force=force)
    result = feature_maps(loaded, image, "all" if all_layers else layer, top=top, limit=limit, size=parsed, output=output)
    folder = result.save(destination, scale=scale, image=image, **loaded.describe())
    if result.prediction is not None and result.prediction.assumed:
        note(f"the output was {result.prediction.assumed}")
    shown = sum(len(order) for layer_name, order in result.order.items() if result.maps[layer_name].dim() == 3)
    said = f"prediction {result.prediction}; " if result.prediction else f"output {result.output}; " if result.output else ""
    summary = f"{loaded.name} on {image}: {said}"
    echo_done(folder, summary + f"{shown} maps from {len(result.maps)} layer(s)")
