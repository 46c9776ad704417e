"""The site adapter: the records of an atlas run -> the ``atlas.json`` figures -> :mod:`probe.gallery.atlas`.

Figures per unit (all in ``atlas.json``):

- ``score``: the best synthetic image's degree of activation (the sum of the
  unit's map, measured on the saved 8-bit image without transforms);
- ``best``: the best dataset example's degree of activation;
- ``median``: the dataset's median degree of activation (the centre of the
  histogram bin that holds it): the level of a typical image;
- ``ratio``: ``(score - median) / (best - median)``, the synthetic image's
  degree of activation over the best dataset example's, both counted from the
  typical image (the synthetic-versus-real comparison as one figure: above 1, the synthetic
  image excites the unit more than any image of the dataset). Counted from
  the median because a plain ``score / best`` means nothing when ``best <= 0``,
  as for most of digits' conv2 filters before their ReLU, whose maps sum to
  less than zero on every digit; None when ``best <= median``;
- ``spread``: the mean pairwise RMS pixel distance of the unit's K images
  (0 for one image): how different ``--per-unit`` made them;
- ``histogram``: the degree of activation over the whole dataset;
- ``unmoved``: the unit's synthetic images (0 for ``s0``...) that never changed
  from their starting noise: no gradient reached their pixels (a unit dead on
  its start image, a layer constant for these weights) or the step moved no
  pixel by a level. They show noise, not the unit; their ``score`` is the
  noise's. None in a chunk an older cnn-probe rendered (not recorded). Each
  layer counts its units with one (``unmoved``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from probe import __version__
from probe.atlas.plan import AtlasSettings, file_stem

__all__ = ["assemble", "median", "write_atlas"]


def median(histogram: dict[str, Any]) -> float | None:
    """The centre of the bin holding the median of ``{"start", "width", "counts"}`` (None when empty)."""
    counts = histogram.get("counts") or []
    total, running = sum(counts), 0
    for number, count in enumerate(counts):
        running += count
        if 2 * running >= total and total:
            return float(histogram["start"]) + (number + 0.5) * float(histogram["width"])
    return None


def assemble(settings: AtlasSettings, examples: dict[str, Any], chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``atlas.json`` document from the dataset record and the chunk records (pure; no files)."""
    rendered: dict[tuple[str, int], dict[str, Any]] = {}
    for record in chunks:
        for unit in record["units"]:
            rendered[(record["layer"], unit["unit"])] = unit
    layers = []
    for layer, count in zip(settings.layers, settings.units):
        found = examples["layers"][layer]
        units = []
        for unit in range(count):
            synthetic = rendered[(layer, unit)]
            shown = found["units"][unit]
            score = max(synthetic["scores"])
            best = shown["examples"][0]["score"] if shown["examples"] else None
            typical = median(shown["histogram"])
            ratio = None
            if best is not None and typical is not None and best > typical:
                ratio = (score - typical) / (best - typical)
            units.append({
                "unit": unit, "page": f"{file_stem(layer)}-{unit:04d}.html", "synthetic": synthetic["files"],
                "scores": synthetic["scores"], "score": score, "best": best, "median": typical,
                "ratio": ratio, "spread": synthetic["spread"], "unmoved": synthetic.get("unmoved"),
                "examples": shown["examples"], "histogram": shown["histogram"],
            })  # fmt: skip
        ratios = [u["ratio"] for u in units if u["ratio"] is not None]
        layers.append({
            "name": layer, "units": units, "page": f"layer-{file_stem(layer)}.html",
            "receptive_field": found["receptive_field"], "dataset_images": found["seen"],
            "above_one": sum(r > 1 for r in ratios), "median_ratio": sorted(ratios)[len(ratios) // 2] if ratios else None,
            "unmoved": sum(bool(u["unmoved"]) for u in units),
        })  # fmt: skip
    return {"command": "atlas", "version": __version__, "digest": settings.digest(),
            "settings": settings.as_dict(), "layers": layers}


def write_atlas(folder: Path, settings: AtlasSettings, examples: dict[str, Any], chunks: list[dict[str, Any]],
                tick: Callable[[], None] | None = None) -> Path:
    """Write ``atlas.json`` and the pages into ``folder``, calling ``tick()`` after each page; return
    ``index.html``."""
    from probe.gallery.atlas import write_site

    return write_site(folder, assemble(settings, examples, chunks), tick)
