""":class:`probe.kernels.Filters` -> the gallery of ``probe filters``: one image per kernel.

- ``rgb``: the kernel's three input channels as colour, mid-grey at 0;
- ``single``: red positive, blue negative, white at 0;
- ``channels``: a mosaic of one such tile per input channel (row by row), one
  pixel of grey between tiles, all tiles of a kernel on the same scale.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from probe import __version__
from probe.choices import FILTER_SCALES as SCALES  # torch-free: the command's option offers it
from probe.gallery import Gallery, slug
from probe.gallery.numbers import number
from probe.images import to_pil
from probe.kernels import Filters
from probe.reports.render import Entry, add_entries, preview_png, value_map

__all__ = ["entries", "kernel_image", "save_gallery", "preview", "SCALES"]

_GAP = (60, 60, 60)


def _mosaic(kernel: torch.Tensor, limit: float) -> Image.Image:
    """``(I, kH, kW)`` -> one tile per input channel in a near-square grid, 1-pixel gaps.

    Drawn as one map (one colour lookup for the whole grid, then the gaps painted): a deep layer's
    kernel has hundreds of tiles, and 256 kernels of 256 tiles drawn tile by tile took minutes.
    """
    count, height, width = kernel.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)

    def grid(tiles: torch.Tensor) -> torch.Tensor:  # (rows * columns, kH + 1, kW + 1) -> the canvas's (H, W)
        laid = tiles.view(rows, columns, height + 1, width + 1).permute(0, 2, 1, 3)
        return laid.reshape(rows * (height + 1), columns * (width + 1))[:-1, :-1]

    values = torch.zeros(rows * columns, height + 1, width + 1)
    values[:count, :height, :width] = kernel.detach().float().cpu()
    inside = torch.zeros(rows * columns, height + 1, width + 1, dtype=torch.bool)
    inside[:count, :height, :width] = True
    pixels = np.array(value_map(grid(values), signed=True, limit=limit))
    pixels[~grid(inside).numpy()] = _GAP
    return Image.fromarray(pixels, mode="RGB")


def kernel_image(kernel: torch.Tensor, view: str, limit: float) -> Image.Image:
    """Draw one ``(I, kH, kW)`` kernel in ``view`` with values ``[-limit, limit]`` at full colour."""
    if view == "rgb":
        scaled = kernel / limit if limit > 0 else torch.zeros_like(kernel)
        return to_pil((scaled + 1.0) / 2.0)
    if view == "single":
        return value_map(kernel[0], signed=True, limit=limit)
    return _mosaic(kernel, limit)


def _upscaled(image: Image.Image, least: int = 48) -> Image.Image:
    """Enlarge tiny kernels by a whole factor (nearest neighbour) so the PNGs are viewable on their own."""
    factor = max(1, math.ceil(least / max(image.size)))
    return image if factor == 1 else image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def entries(result: Filters, *, scale: str = "kernel") -> list[Entry]:
    """One image per kernel, captioned ``layer:k norm ...``.

    Args:
        result: the kernels.
        scale: ``"kernel"`` (each kernel to its own max ``|w|``, default) or
            ``"layer"`` (one scale for the layer: compares kernels' strength).
    """
    weight = result.weight
    layer_limit = float(weight.abs().max())
    items = []
    for index in range(weight.shape[0]):
        limit = layer_limit if scale == "layer" else float(weight[index].abs().max())
        image = _upscaled(kernel_image(weight[index], result.view, limit))
        norm = float(result.norms[index])
        items.append(
            Entry(image, f"{slug(result.layer)}-{index:03d}.png", f"{result.layer}:{index} norm {number(norm, digits=2)}",
                  fields={"unit": index, "score": norm})
        )
    return items


def _title(result: Filters) -> str:
    colours = "colour = RGB weights, grey 0" if result.view == "rgb" else "red +, blue -, white 0"
    shape = "x".join(str(s) for s in result.weight.shape[1:])
    return f"{result.model} {result.layer}: {result.weight.shape[0]} kernels {shape} ({colours})"


def save_gallery(result: Filters, folder: str | Path, *, scale: str = "kernel", **fields: Any) -> Path:
    """Write the gallery into ``folder`` (existing, empty); return the manifest's path."""
    gallery = Gallery(
        folder,
        command="filters",
        title=_title(result),
        fields={
            "model": result.model,
            "layer": result.layer,
            "view": result.view,
            "scale": scale,
            "kernel_shape": list(result.weight.shape[1:]),
            "weight_range": [float(result.weight.min()), float(result.weight.max())],
            **fields,
        },
        version=__version__,
    )
    add_entries(gallery, entries(result, scale=scale))
    return gallery.write()


def preview(result: Filters) -> bytes:
    """Every kernel as one PNG (for notebooks)."""
    return preview_png(entries(result), _title(result), cell=64)
