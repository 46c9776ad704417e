""":class:`probe.attribution.Attribution` -> the gallery of ``probe attribute``.

One grid, methods side by side: the first row holds the input and each
method's heatmap (``inferno``: black = no attribution, yellow = the 99th
percentile and above), the second row a colour scale and each heatmap laid
over a dimmed grey copy of the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe import __version__
from probe.attribution import Attribution
from probe.gallery import Gallery
from probe.images import to_pil
from probe.reports.prediction import prediction_chart
from probe.reports.render import POSITIVE, Entry, add_entries, legend, overlay, preview_png, value_map

__all__ = ["entries", "save_gallery", "preview"]

_NAMES = {
    "saliency": "saliency",
    "integrated-gradients": "integrated gradients",
    "smoothgrad": "smoothgrad",
    "guided-backprop": "guided backprop",
    "gradcam": "Grad-CAM",
    "deeplift": "DeepLift",
    "gradient-shap": "GradientShap",
    "occlusion": "occlusion",
    "lrp": "LRP",
}


def _label(result: Attribution, method: str) -> str:
    return f"{_NAMES[method]} ({result.layer})" if method == "gradcam" else _NAMES[method]


def entries(result: Attribution) -> list[Entry]:
    """Row one: the input and each heatmap; row two: the colour scale and each overlay."""
    methods = list(result.heatmaps)
    first = [
        Entry(to_pil(result.image), "input.png",
              f"input; target {result.target_label}: {result.prediction.describe(result.target)}", fields={"kind": "input"})
    ]
    second = [Entry(legend(POSITIVE, size=max(result.image.shape[-2:])), "scale.png",
                    "scale: 0 to the 99th percentile",
                    fields={"kind": "scale"})]
    for method in methods:
        heat = result.heatmaps[method]
        fields = {"method": method, "target": result.target}
        first.append(Entry(value_map(heat, signed=False, limit=1.0), f"{method}.png", _label(result, method),
                           fields={**fields, "kind": "heatmap"}))
        second.append(Entry(overlay(result.image, heat), f"{method}-overlay.png", f"{_label(result, method)} overlay",
                            fields={**fields, "kind": "overlay"}))
    return first + second


def _title(result: Attribution) -> str:
    return f"{result.model}: why {result.target_label}?"


def save_gallery(result: Attribution, folder: str | Path, **fields: Any) -> Path:
    """Write the gallery into ``folder`` (existing, empty); return the manifest's path."""
    gallery = Gallery(
        folder,
        command="attribute",
        title=_title(result),
        fields={
            "model": result.model,
            "methods": list(result.heatmaps),
            "target": result.target,
            "target_label": result.target_label,
            "layer": result.layer,
            "image_size": list(result.image.shape[-2:]),
            "prediction": result.prediction.top(5),
            "prediction_kind": result.prediction.kind,
            "prediction_assumed": result.prediction.assumed or None,
            "skipped": result.skipped,
            "options": result.options,
            **fields,
        },
        version=__version__,
    )
    add_entries(gallery, entries(result))
    chart = prediction_chart(result.prediction)
    if chart is not None:
        gallery.add_extra(chart[0], chart[1], image=chart[2])
    return gallery.write(columns=len(result.heatmaps) + 1)


def preview(result: Attribution) -> bytes:
    """The same grid as one PNG (for notebooks)."""
    return preview_png(entries(result), _title(result), columns=len(result.heatmaps) + 1)
