"""``probe filters``: the learned kernels of a convolution layer as images."""

from __future__ import annotations

from pathlib import Path

from probe.cli.common import echo_done, load_model_from_options
from probe.kernels import filters
from probe.gallery import check_out_dir, slug


def run(model: str, weights: str, layer: str | None, view: str, scale: str, out: Path | None, force: bool) -> None:
    """``probe filters``'s work, on the options click parsed (see :mod:`probe.cli.commands.filters`)."""
    loaded = load_model_from_options(model, weights, "cpu")
    result = filters(loaded, layer, view=view)
    destination = check_out_dir(out, f"runs/filters-{slug(loaded.name)}-{slug(result.layer)}", force=force)
    folder = result.save(destination, scale=scale, kernels="computed by the layer" if result.computed else "weight",
                         **loaded.describe())
    shape = "x".join(str(s) for s in result.weight.shape[1:])
    computed = " (as convolved: the layer computes them from its stored weight)" if result.computed else ""
    echo_done(folder, f"{loaded.name} {result.layer}: {result.weight.shape[0]} kernels {shape}, view {result.view}"
                      f"{computed}")
