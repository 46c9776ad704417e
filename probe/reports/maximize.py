"""A :class:`~probe.optimize.MaximizeResult` as a gallery folder (what ``probe maximize`` writes).

::

    OUT/
      conv2-000.png ... conv2-049.png      one image per unit, at its native size
      conv2-000-step032.png ...            snapshots, when asked for
      contact-sheet.png                    captions like "conv2:7  a=123.4"
      contact-sheet-step-32.png ...        one sheet per snapshot step
      conv2-000-transparency.png ...       MACO's transparency map (accumulated |gradient|), with --param maco
      history.png                          the score of every image along the optimization
      index.html, manifest.json            manifest items: file, unit, score, caption, terms
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe import __version__
from probe.gallery.numbers import number, probability
from probe.images import to_pil
from probe.reports.render import png_bytes

if TYPE_CHECKING:
    from PIL import Image

    from probe.optimize import MaximizeResult

__all__ = ["save_gallery", "recipe", "contact_sheet", "preview", "captions", "file_stems", "SCORE_SYMBOLS"]

SCORE_SYMBOLS = {"channel": "a", "neuron": "n", "class": "logit", "direction": "d"}
"""How captions name the score of each kind of objective (``a`` = degree of activation)."""

_PENALTY_SYMBOLS = {"l1": "L1", "l2": "L2", "total_variation": "TV"}


def _layer_name(result: MaximizeResult) -> str:
    return result.layer or "image"


def captions(result: MaximizeResult) -> list[str]:
    """One caption per image: ``"conv2:7  a=123.4"``; class images add the label, probability and penalties."""
    symbol = SCORE_SYMBOLS.get(result.kind, "score")
    probabilities = result.probabilities
    penalties = [(name, _PENALTY_SYMBOLS[name]) for name in result.terms if name in _PENALTY_SYMBOLS]
    texts = []
    for i, unit in enumerate(result.units):
        head = _layer_name(result) if unit is None else f"{_layer_name(result)}:{unit}"
        if result.kind == "class" and unit is not None and result.labels and unit < len(result.labels):
            label = result.labels[unit]
            if label != str(unit):
                head += f" {label}"
        value = result.terms[result.main][i] if result.main in result.terms else result.scores[i]
        parts = [f"{symbol}={number(float(value), digits=3)}"]
        if probabilities is not None:
            parts.append(f"p={probability(float(probabilities[i]))}")
        parts += [f"{short}={number(float(result.terms[name][i]), digits=3)}" for name, short in penalties]
        texts.append(f"{head}  " + " ".join(parts))
    return texts


def file_stems(result: MaximizeResult) -> list[str]:
    """File names without extension: ``conv2-007``; ``conv2-007-2`` for a unit's second image."""
    from probe.gallery import slug

    base = slug(_layer_name(result))
    known = [u for u in result.units if u is not None]
    width = max(3, len(str(max(known)))) if known else 3
    counts: dict[Any, int] = {}
    stems = []
    for i, unit in enumerate(result.units):
        key = i if unit is None else unit
        counts[key] = counts.get(key, 0) + 1
        stem = f"{base}-{key:0{width}d}"
        stems.append(stem)
    repeated = {key for key, n in counts.items() if n > 1}
    seen: dict[Any, int] = {}
    for i, unit in enumerate(result.units):
        key = i if unit is None else unit
        if key in repeated:
            seen[key] = seen.get(key, 0) + 1
            stems[i] = f"{stems[i]}-{seen[key]}"
    return stems


def contact_sheet(result: MaximizeResult, *, cell: int = 96) -> Image.Image:
    """The captioned grid of the result's final images (a PIL image)."""
    from probe.gallery import contact_sheet as sheet

    return sheet([to_pil(image) for image in result.images], captions(result), cell=cell,
                 title=f"{result.model}: {result.objective}")


def preview(result: MaximizeResult) -> bytes:
    """:func:`contact_sheet` as PNG bytes (what notebooks show)."""
    return png_bytes(contact_sheet(result))


def _history_figure(result: MaximizeResult) -> Any:
    from matplotlib.figure import Figure

    # no pyplot: matplotlib.use("Agg") here switched a notebook's inline backend off for every later plot
    figure = Figure(figsize=(5.5, 3.2))
    axis = figure.subplots()
    steps = range(1, result.history.shape[0] + 1)
    history = result.history.numpy()
    if history.shape[1] <= 10:
        axis.plot(steps, history, color="0.75", linewidth=0.6)
    else:  # a band stays readable (and the PNG small) for a whole layer
        axis.fill_between(steps, history.min(axis=1), history.max(axis=1), color="0.85", label="min to max")
    axis.plot(steps, history.mean(axis=1), color="C0", linewidth=2, label="mean over images")
    axis.set_xlabel("step")
    axis.set_ylabel("objective (with random transforms)")
    axis.set_title(result.objective if len(result.objective) < 60 else result.objective[:57] + "...", fontsize=9)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def _add_maps(gallery: Any, result: MaximizeResult, stems: list[str], texts: list[str]) -> None:
    """One grayscale PNG per image and map (``conv2-007-transparency.png``), each scaled to its own maximum."""
    for name, values in result.maps.items():
        for i, stem in enumerate(stems):
            value = values[i].float()
            scaled = value / value.max() if float(value.max()) > 0 else value
            gallery.add(to_pil(scaled), f"{stem}-{name}.png", f"{texts[i].split('  ')[0]} {name}", section=name,
                        unit=result.units[i], map=name, map_max=float(value.max()))


def recipe(result: MaximizeResult, fields: dict[str, Any]) -> list[str]:
    """What tells two sheets of one layer apart, for their titles: the objective's kind, the preset, the
    parametrization where it is not the preset's own (``maco`` under ``robust``), and each penalty with its weight
    as the expression states it (``L1 0.3``): ``["class", "robust", "L1 0.3"]``."""
    from probe.optimize import PRESETS

    preset = fields.get("preset")
    parts = [result.kind, str(preset)]
    param = fields.get("options", {}).get("param")
    if param and preset in PRESETS and param != PRESETS[preset].param:
        parts.append(param)
    for name, short in _PENALTY_SYMBOLS.items():
        weight = re.search(rf"(?:^|[-+] )([0-9][0-9.e+-]*) \* {name}\b", result.objective)
        if name in result.terms:
            parts.append(f"{short} {weight.group(1)}" if weight else short)
    return parts


def save_gallery(result: MaximizeResult, folder: str | Path, *, cell: int = 128, **fields: Any) -> Path:
    """Write ``result`` as a gallery into ``folder`` (created if needed) and return the folder.

    Args:
        result: what :func:`probe.maximize` returned.
        folder: the output folder (``result.save`` passes a staging folder from
            :meth:`probe.gallery.OutDir.write`; this function writes into it as it is).
        cell: contact-sheet cell size in pixels (default 128).
        **fields: extra run-level manifest fields (the CLI adds the command line
            and the options it was given); ``options`` is merged with the
            result's own settings.
    """
    from probe.gallery import Gallery

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = dict(result.settings)
    options = {key: settings.pop(key) for key in ("param", "param_options", "transforms", "optimizer", "images", "batch",
                                                  "precision", "device") if key in settings}
    options.update(fields.pop("options", {}) or {})
    run_fields = {
        "model": result.model,
        "weights": result.weights,
        "layer": result.layer,
        "objective": result.kind,
        "expression": result.objective,
        "preset": settings.pop("preset", None),
        "steps": settings.pop("steps", None),
        "lr": settings.pop("lr", None),
        "seed": settings.pop("seed", None),
        "image_size": settings.pop("image_size", None),
        **settings,
        "options": options,
        **fields,
    }
    title = f"{result.model} {_layer_name(result)} ({', '.join(recipe(result, run_fields))})"  # short: fits 3 columns
    gallery = Gallery(folder, command="maximize", title=title, fields=run_fields, version=__version__)
    stems = file_stems(result)
    texts = captions(result)
    probabilities = result.probabilities
    predicted = result.predicted
    for i, (stem, caption) in enumerate(zip(stems, texts)):
        extra: dict[str, Any] = {"unit": result.units[i], "score": float(result.scores[i])}
        if len(result.terms) > 1:
            extra["terms"] = {name: float(values[i]) for name, values in result.terms.items()}
        if probabilities is not None and predicted is not None:
            extra["probability"] = float(probabilities[i])
            extra["predicted"] = int(predicted[i])
        gallery.add(to_pil(result.images[i]), f"{stem}.png", caption, **extra)
    width = len(str(max(result.snapshots))) if result.snapshots else 1
    for step, images in sorted(result.snapshots.items()):
        for i, stem in enumerate(stems):
            gallery.add(to_pil(images[i]), f"{stem}-step{step:0{width}d}.png", f"{texts[i].split('  ')[0]} @{step}",
                        section=f"step {step}", unit=result.units[i], step=step)
    _add_maps(gallery, result, stems, texts)
    if result.history.numel():
        figure = _history_figure(result)
        gallery.add_extra("history.png", "the objective of each image along the optimization", figure=figure)
    gallery.write(cell=cell, seconds=round(result.seconds, 2))
    return folder
