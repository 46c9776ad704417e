""":class:`probe.featuremaps.FeatureMaps` -> the gallery of ``probe activations``.

One section (and contact sheet) per layer, one image per channel, captioned
with its index and degree of activation; the input with the prediction first;
flat layers and the class probabilities as bar charts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe import __version__
from probe.choices import ACTIVATION_SCALES as SCALES  # torch-free: the command's option offers it
from probe.featuremaps import FeatureMaps
from probe.gallery import Gallery, slug
from probe.gallery.numbers import number
from probe.images import to_pil
from probe.reports.prediction import prediction_chart
from probe.reports.render import Entry, add_entries, bar_chart, preview_png, value_map

__all__ = ["entries", "extras", "save_gallery", "preview", "SCALES"]



def _caption_input(result: FeatureMaps) -> str:
    if result.prediction is not None:
        return f"input: {result.prediction}"
    return f"input; output: {result.output}" if result.output else "input"


def entries(result: FeatureMaps, *, scale: str = "map") -> list[Entry]:
    """The images of the gallery: the input, then every shown channel of every spatial layer.

    Args:
        result: the feature maps.
        scale: ``"map"`` (each map to its own max ``|value|``, default: shows the
            pattern of every channel) or ``"layer"`` (one scale per layer: shows
            which channels are strong).
    """
    items = [Entry(to_pil(result.image), "input.png", _caption_input(result), "input", {"kind": "input"})]
    for layer, maps in result.maps.items():
        if maps.dim() != 3:
            continue
        shown = result.order[layer]
        signed = bool(maps.min() < 0)
        layer_limit = float(maps[shown].abs().max()) if scale == "layer" else None
        for rank, channel in enumerate(shown.tolist()):
            degree = float(result.degree[layer][channel])
            caption = f"{layer}:{channel} sum {number(degree, digits=3)}"
            if result.top is not None:
                caption = f"#{rank + 1} " + caption
            items.append(
                Entry(
                    value_map(maps[channel], signed=signed, limit=layer_limit),
                    f"{slug(layer)}-{channel:03d}.png",
                    caption,
                    layer,
                    {"layer": layer, "unit": channel, "score": degree, "rank": rank},
                )
            )
    return items


def extras(result: FeatureMaps) -> list[tuple[str, str, Any]]:
    """``(file, caption, PIL image)`` overview charts: the prediction and every flat layer."""
    chart = prediction_chart(result.prediction)
    charts = [] if chart is None else [chart]
    for layer, values in result.maps.items():
        if values.dim() == 1:
            shown = result.order[layer].tolist()
            image = bar_chart(
                [float(values[i]) for i in shown], [str(i) for i in shown], f"{layer} ({values.numel()} features)",
                horizontal=len(shown) <= 16,
            )
            charts.append((f"{slug(layer)}.png", f"{layer}: {values.numel()} features", image))
    return charts


def save_gallery(result: FeatureMaps, folder: str | Path, *, scale: str = "map", command: str = "activations",
                 **fields: Any) -> Path:
    """Write the gallery into ``folder`` (existing, empty); return the manifest's path.

    ``fields`` are added to the manifest (image source, seed, ...).
    """
    prediction = result.prediction.top(5) if result.prediction is not None else None
    gallery = Gallery(
        folder,
        command=command,
        title=f"{result.model}: feature maps",
        fields={
            "model": result.model,
            "layers": list(result.maps),
            "image_size": list(result.image.shape[-2:]),
            "top": result.top,
            "scale": scale,
            "prediction": prediction,
            "prediction_kind": None if result.prediction is None else result.prediction.kind,
            "prediction_assumed": None if result.prediction is None else result.prediction.assumed or None,
            "output": result.output or None,
            "channels": {layer: int(m.shape[0]) for layer, m in result.maps.items()},
            **fields,
        },
        version=__version__,
    )
    add_entries(gallery, entries(result, scale=scale))
    for file, caption, image in extras(result):
        gallery.add_extra(file, caption, image=image)
    return gallery.write()


def preview(result: FeatureMaps) -> bytes:
    """The input and the first layer's maps as one PNG (for notebooks)."""
    items = entries(result)
    first = next((e.section for e in items if e.section != "input"), None)
    return preview_png([e for e in items if e.section in ("input", first)], f"{result.model}: {first or 'input'}")
