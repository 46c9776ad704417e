""":class:`probe.hooks.Recording` -> the picture a notebook shows for a recording.

The first image of the batch: up to ``limit`` feature maps of every spatial
layer (``(N, C, H, W)``), each map scaled to its own range; a layer kept as one
number per channel or feature (``(N, C)``, after a reduction or a linear
layer) as a bar chart.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from probe.reports.render import Entry, bar_chart, preview_png, value_map

__all__ = ["entries", "preview"]


def entries(acts: Mapping[str, torch.Tensor], *, limit: int = 32) -> list[Entry]:
    """One entry per shown map or per flat layer, for the first image of the batch."""
    items: list[Entry] = []
    for layer, activation in acts.items():
        first = activation[0].detach().float().cpu()
        if first.dim() == 3:
            signed = bool(first.min() < 0)
            for channel in range(min(limit, first.shape[0])):
                items.append(Entry(value_map(first[channel], signed=signed), f"{layer}-{channel:03d}.png",
                                   f"{layer}:{channel}", layer))
        elif first.dim() == 1:
            shown = first[:limit]
            chart = bar_chart(shown.tolist(), [str(i) for i in range(shown.numel())],
                              f"{layer} ({first.numel()} values)", horizontal=False)
            items.append(Entry(chart, f"{layer}.png", f"{layer}: {first.numel()} values", layer))
    return items


def preview(acts: Mapping[str, torch.Tensor], *, limit: int = 32) -> bytes | None:
    """The recording as PNG bytes, or None when nothing was recorded (the notebook then shows the repr)."""
    items = entries(acts, limit=limit)
    if not items:
        return None
    return preview_png(items, "recorded: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in acts.items()))
