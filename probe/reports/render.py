"""Tensors -> PIL images for the galleries: colour maps, overlays, bar charts, previews.

Colour conventions shared by the feature-map, filter and attribution galleries:

- signed values (convolution outputs, kernels): ``RdBu_r``, white at 0, red
  positive, blue negative, symmetric limits;
- non-negative values (after ReLU, attribution heat): ``inferno``, black at 0.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["Entry", "SIGNED", "POSITIVE", "colorize", "value_map", "overlay", "bar_chart", "legend", "preview_png", "add_entries"]

SIGNED = "RdBu_r"
POSITIVE = "inferno"


@dataclass
class Entry:
    """One gallery item before it is written: image, file name, caption, section, manifest fields."""

    image: Image.Image
    file: str
    caption: str
    section: str = ""
    fields: dict[str, Any] = field(default_factory=dict)


def colorize(values: torch.Tensor | np.ndarray, cmap: str) -> Image.Image:
    """``(H, W)`` values in [0, 1] -> RGB image through matplotlib colour map ``cmap``."""
    from matplotlib import colormaps

    array = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    rgba = colormaps[cmap](np.clip(array, 0.0, 1.0))
    return Image.fromarray((rgba[..., :3] * 255.0 + 0.5).astype(np.uint8), mode="RGB")


def value_map(values: torch.Tensor, *, signed: bool, limit: float | None = None) -> Image.Image:
    """Draw an ``(H, W)`` map: signed around white with ``RdBu_r``, or from black with ``inferno``.

    Args:
        values: the map.
        signed: symmetric limits ``[-limit, limit]`` (else ``[0, limit]``).
        limit: the value drawn at full colour; default the map's own max ``|value|``.
            A limit of 0 (an all-zero map) draws the zero colour everywhere.
    """
    values = values.detach().float().cpu()
    if limit is None:
        limit = float(values.abs().max()) if values.numel() else 0.0
    scaled = values / limit if limit > 0 else torch.zeros_like(values)
    if signed:
        return colorize((scaled + 1.0) / 2.0, SIGNED)
    return colorize(scaled, POSITIVE)


def overlay(image: torch.Tensor, heat: torch.Tensor, *, cmap: str = POSITIVE, strength: float = 0.85) -> Image.Image:
    """Heat over a dimmed grey copy of the image: colour where the heat is, the image where it is not.

    Args:
        image: ``(C, H, W)`` in [0, 1].
        heat: ``(H, W)`` in [0, 1], the same size.
        cmap: colour map of the heat (default ``inferno``).
        strength: opacity of the heat at value 1 (default 0.85).
    """
    grey = image.detach().float().cpu()
    grey = grey.mean(0) if grey.shape[0] != 3 else (grey * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0)
    base = (0.25 + 0.5 * grey).clamp(0, 1).unsqueeze(-1).numpy()
    colour = np.asarray(colorize(heat, cmap), dtype=np.float32) / 255.0
    alpha = (strength * heat.detach().float().cpu().clamp(0, 1).sqrt()).unsqueeze(-1).numpy()
    mixed = base * (1.0 - alpha) + colour * alpha
    return Image.fromarray((mixed * 255.0 + 0.5).astype(np.uint8), mode="RGB")


def bar_chart(values: Sequence[float], labels: Sequence[str], title: str, *, horizontal: bool = True) -> Image.Image:
    """A small matplotlib bar chart as a PIL image (probabilities, flat layers' features)."""
    from matplotlib.figure import Figure  # no pyplot, no backend: a notebook's stays as it is

    count = len(values)
    figure = Figure(figsize=(4.2, max(1.6, 0.28 * count + 0.8)) if horizontal else (min(9.0, 3 + count * 0.05), 2.4))
    axes = figure.add_subplot()
    positions = np.arange(count)
    colours = ["#c0392b" if v < 0 else "#2c5f9e" for v in values]
    if horizontal:
        axes.barh(positions, values, color=colours)
        axes.set_yticks(positions, labels)
        axes.invert_yaxis()
    else:
        axes.bar(positions, values, color=colours, width=1.0)
        axes.set_xlabel("index")
    axes.set_title(title, fontsize=10)
    axes.tick_params(labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def legend(cmap: str, *, size: int = 64, signed: bool = False) -> Image.Image:
    """A square colour-scale swatch: low values at the bottom, high at the top."""
    ramp = torch.linspace(1.0, 0.0, size).unsqueeze(1).expand(size, size)
    return colorize(ramp, cmap if not signed else SIGNED)


def add_entries(gallery: Any, entries: Sequence[Entry]) -> None:
    """Add every entry to a :class:`probe.gallery.Gallery`."""
    for entry in entries:
        gallery.add(entry.image, entry.file, entry.caption, section=entry.section, **entry.fields)


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG (what ``_repr_png_`` returns)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def preview_png(entries: Sequence[Entry], title: str, *, columns: int | None = None, cell: int = 96) -> bytes:
    """A contact sheet of ``entries`` as PNG bytes (what notebooks show for a result)."""
    from probe.gallery import contact_sheet

    sheet = contact_sheet([e.image for e in entries], [e.caption for e in entries], columns=columns, cell=cell, title=title)
    return png_bytes(sheet)
