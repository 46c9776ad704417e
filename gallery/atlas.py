"""The atlas site: an index of layers, a page per layer (a sortable grid of units), a page per unit.

Plain static HTML that opens from disk; every string is escaped. The layer
pages sort their grid with a few lines of plain JavaScript (the order of the
HTML itself is by unit, so the page reads without script); the order is kept
in the address (``layer-conv2.html#sort=ratio``), so a sorted grid can be linked. Knows nothing of
torch: it turns the ``atlas.json`` document :func:`probe.atlas.site.assemble`
builds into files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from probe.gallery.files import followed, replace_text
from probe.gallery.html import STYLE, escape, href, human, index_above, label, with_index_link
from probe.gallery.numbers import MINUS, number, ratio

__all__ = ["write_site", "histogram_svg", "ATLAS_JSON"]

ATLAS_JSON = "atlas.json"

EXTRA_STYLE = """
.unit{display:flex;gap:4px}.unit img{width:50%;image-rendering:pixelated}
.big img{width:160px;image-rendering:pixelated}.crop img{width:96px;image-rendering:pixelated}
nav{margin:.5rem 0 1rem}nav a{margin-right:1rem}
button[aria-pressed=true]{font-weight:600;outline:2px solid var(--link)}
table.layers{border-collapse:collapse}table.layers td,table.layers th{padding:.2rem .8rem;text-align:left}
svg.hist rect{fill:var(--link)}svg.hist text{font-size:10px;fill:var(--muted)}
.unmoved{color:#c01c28;font-weight:600}
"""

UNMOVED = ("never changed from its starting noise: no gradient reached its pixels (a unit dead on its start image, "
           "or a layer constant for these weights) or the step moved no pixel by a level, so it shows noise, not "
           "the unit, and its degree of activation is the noise's; load trained weights, or try another --seed "
           "or a larger --lr")
"""What a synthetic image that never moved is (the unit pages' warning)."""

SORT_SCRIPT = r"""
function sortUnits(key){var grid=document.getElementById('units');
var cards=Array.prototype.slice.call(grid.children);
cards.sort(function(a,b){var x=parseFloat(a.dataset[key]),y=parseFloat(b.dataset[key]);
if(isNaN(x))x=-Infinity;if(isNaN(y))y=-Infinity;return key==='unit'?x-y:y-x;});
cards.forEach(function(c){grid.appendChild(c);});
document.querySelectorAll('button[data-sort]').forEach(function(b){b.setAttribute('aria-pressed',b.dataset.sort===key);});
if(history.replaceState)history.replaceState(null,'','#sort='+key);}
document.addEventListener('DOMContentLoaded',function(){var m=/^#sort=(\w+)$/.exec(location.hash);
if(m)sortUnits(m[1]);});
"""

FIGURES = (
    ("unit", "unit"),
    ("ratio", "synthetic / best example (from the median)"),
    ("score", "synthetic degree of activation"),
    ("best", "best example's degree of activation"),
    ("median", "dataset median"),
    ("spread", "spread of the K images"),
)


def _figure(key: str, value: Any) -> str:
    """One of :data:`FIGURES` as the pages show it: ratios as ``2.48×``, degrees of activation to 4 digits."""
    if key == "ratio":
        return ratio(value, minus=MINUS)
    if key == "unit":
        return number(value)
    return number(value, minus=MINUS)


def _sort_key(value: Any) -> str:
    """A figure as the sorting script reads it: every digit (``repr``), empty when there is none."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return ""
    return repr(value)


def _size(box: Sequence[int]) -> str:
    """``(top, left, bottom, right)`` as ``h×w``."""
    return f"{box[2] - box[0]}\u00d7{box[3] - box[1]}"


def _field(field_: Mapping[str, Any], unit: str = "") -> str:
    """A receptive field's size, ``8×8``; ``64×64 at the centre`` where each position's field is measured on its
    own (``regular`` False: tokens, windows, fields the image clips, squeeze-excitation, attention), with the
    centre's effective box where it is smaller: ``64×64 at the centre, 95% of its gradient within 7×7``."""
    size = f"{field_['size'][0]}\u00d7{field_['size'][1]}{unit}"
    if field_.get("regular", True):
        return size
    effective = field_.get("effective")
    if effective and list(effective) != list(field_["size"]):
        return f"{size} at the centre, {_share(field_)} of its gradient within {effective[0]}\u00d7{effective[1]}{unit}"
    return f"{size} at the centre"


def _share(field_: Mapping[str, Any]) -> str:
    """The share of the gradient an effective box holds, ``95%``."""
    return f"{round(100 * float(field_.get('effective_mass', 0.95)))}%"


def _crop(example: Mapping[str, Any]) -> str:
    """``<br>crop 7×7 of its 64×64 field`` where an example's crop (its effective box) is smaller than its field."""
    seen = example.get("field")
    if not seen or list(seen) == list(example["box"]):
        return ""
    return f"<br>crop {_size(example['box'])} of its {_size(seen)} field"


def _stride(field_: Mapping[str, Any]) -> str:
    """``stride 2``, or ``measured per position`` where one box and stride do not describe the layer."""
    return f"stride {field_['stride'][0]}" if field_.get("regular", True) else "measured per position"


def _where(example: Mapping[str, Any]) -> str:
    """Where an example's maximum is: ``row 1, column 2`` of a map, ``token 5`` of tokens."""
    return f"token {example['token']}" if "token" in example else f"row {example['y']}, column {example['x']}"


NEVER_MOVED = "<span class=\"unmoved\">never moved</span>"


def _never_moved(unit: Mapping[str, Any]) -> str:
    """``never moved`` (``2 of 4 never moved`` for several images) for a unit whose synthetic image(s) did not
    change from their start, else empty; in words, not only in colour."""
    unmoved = unit.get("unmoved") or []
    if not unmoved:
        return ""
    count = len(unit["synthetic"])
    return NEVER_MOVED if count == 1 else f"<span class=\"unmoved\">{len(unmoved)} of {count} never moved</span>"


def _page(title: str, body: str, script: str = "") -> str:
    tag = f"<script>{script}</script>" if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{STYLE}{EXTRA_STYLE}</style>{tag}</head>\n<body>\n{body}\n</body></html>\n"
    )


def _rows(fields: Mapping[str, str]) -> str:
    cells = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in fields.items())
    return f"<table class=\"meta\">{cells}</table>"


def _value(value: float) -> str:
    return number(value, minus=MINUS)


def histogram_svg(histogram: Mapping[str, Any], *, width: int = 320, height: int = 90, mark: float | None = None) -> str:
    """An inline SVG bar chart of ``{"start", "width", "counts"}``; ``mark`` draws a line at one value."""
    counts = list(histogram.get("counts") or [])
    if not counts:
        return "<p>no values</p>"
    start, step = float(histogram["start"]), float(histogram["width"])
    top, bar = max(counts), width / len(counts)
    bars = "".join(
        f"<rect x=\"{i * bar:.2f}\" y=\"{height - 14 - (c / top) * (height - 20):.2f}\" width=\"{max(bar - 1, 1):.2f}\" "
        f"height=\"{(c / top) * (height - 20):.2f}\"><title>{escape(f'{_value(start + i * step)} to {_value(start + (i + 1) * step)}: {number(c)} image(s)')}</title></rect>"
        for i, c in enumerate(counts)
    )
    line = ""
    end = start + step * len(counts)
    if mark is not None and end > start:
        x = min(max((mark - start) / (end - start), 0.0), 1.0) * width
        line = f"<line x1=\"{x:.2f}\" x2=\"{x:.2f}\" y1=\"0\" y2=\"{height - 14}\" stroke=\"#c01c28\" stroke-width=\"2\"/>"
        # its value, and an arrow where it lies off the dataset's scale (a synthetic image far above every
        # example was drawn at the axis's end, as if it scored like the best example)
        text = f"{_value(mark)} \u2192" if mark > end else f"\u2190 {_value(mark)}" if mark < start else _value(mark)
        anchor = "end" if x > width / 2 else "start"
        shift = -4 if anchor == "end" else 4
        line += (f"<text x=\"{x + shift:.2f}\" y=\"10\" text-anchor=\"{anchor}\" fill=\"#c01c28\">"
                 f"{escape(text)}</text>")
    labels = (f"<text x=\"0\" y=\"{height - 2}\">{escape(_value(start))}</text>"
              f"<text x=\"{width}\" y=\"{height - 2}\" text-anchor=\"end\">{escape(_value(end))}</text>")
    return (f"<svg class=\"hist\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" "
            f"role=\"img\" aria-label=\"histogram\">{bars}{line}{labels}</svg>")


def _index(atlas: Mapping[str, Any]) -> str:
    settings = atlas["settings"]
    title = f"Atlas of {settings['model']}"
    rows = []
    for layer in atlas["layers"]:
        field_ = layer["receptive_field"]
        rows.append(
            f"<tr><td><a href=\"{href(layer['page'])}\">{escape(layer['name'])}</a></td><td>{len(layer['units'])}</td>"
            f"<td>{_field(field_)} ({_stride(field_)})</td>"
            f"<td>{layer['above_one']} / {len(layer['units'])}</td><td>{escape(ratio(layer['median_ratio'], minus=MINUS))}</td>"
            f"<td>{_unmoved_count(layer)}</td></tr>"
        )
    shown = {label(k): human(settings[k], k) for k in ("model", "weights", "dataset", "dataset_size", "examples",
                                                      "per_unit", "steps", "preset", "seed", "chunk") if k in settings}
    body = (
        f"<h1>{escape(title)}</h1>{_rows(shown)}<p><a href=\"{ATLAS_JSON}\">atlas.json</a></p>"
        "<table class=\"layers\"><tr><th>layer</th><th>units</th><th>receptive field</th>"
        "<th>synthetic beats best example</th><th>median ratio</th><th>never moved</th></tr>" + "".join(rows) + "</table>"
        "<p>A unit's <em>ratio</em> is its synthetic image's degree of activation (the sum of its map) over its best "
        "dataset example's, both counted from the dataset's median: above 1&times;, the synthetic image beats every "
        "dataset image. <em>Median ratio</em>: the median over the layer's units; <em>never moved</em>: units whose "
        "synthetic image stayed where it started (a dead unit, or a gradient that does not reach it).</p>"
    )
    return _page(title, body)


def _unmoved_count(layer: Mapping[str, Any]) -> str:
    """A layer's units whose synthetic image never moved: ``0``, ``<span class="unmoved">3</span>``, or
    a dash where an older atlas did not record it."""
    count = layer.get("unmoved")
    if count is None:
        return "\u2014"
    return f"<span class=\"unmoved\">{number(count)}</span>" if count else "0"


def _card(unit: Mapping[str, Any]) -> str:
    data = " ".join(f"data-{key}=\"{escape(_sort_key(unit.get(key)))}\"" for key, _ in FIGURES)
    best = unit["examples"][0]["file"] if unit["examples"] else None
    crop = f"<img src=\"{href(best)}\" alt=\"best example\">" if best else ""
    caption = f"unit {unit['unit']} &middot; {escape(_figure('ratio', unit['ratio']))}"
    if _never_moved(unit):
        caption += f" &middot; {_never_moved(unit)}"
    return (f"<figure {data}><a class=\"unit\" href=\"{href(unit['page'])}\"><img src=\"{href(unit['synthetic'][0])}\" "
            f"alt=\"synthetic\">{crop}</a><figcaption>{caption}</figcaption></figure>")


def _layer_page(atlas: Mapping[str, Any], layer: Mapping[str, Any]) -> str:
    title = f"{atlas['settings']['model']} {layer['name']}"
    buttons = " ".join(f"<button type=\"button\" data-sort=\"{key}\" aria-pressed=\"{str(key == 'unit').lower()}\" "
                       f"onclick=\"sortUnits('{key}')\">{escape(name)}</button>" for key, name in FIGURES)
    cards = "".join(_card(unit) for unit in layer["units"])
    field_ = layer["receptive_field"]
    body = (
        f"<nav><a href=\"index.html\">all layers</a></nav><h1>{escape(title)}</h1>"
        f"<p>{len(layer['units'])} units; each shows its synthetic image and the crop of its best dataset example "
        f"(receptive field {_field(field_, ' pixels')}) and its ratio: the synthetic image's degree of activation over the "
        "best example's, both counted from the dataset median (above 1\u00d7: the synthetic image beats every dataset "
        "image; below 0: it scores under the median image; \u2014: the best example is no higher than the median).</p>"
        f"{_unmoved_note(layer)}"
        f"<p>sort by: {buttons}</p><div class=\"grid\" id=\"units\" style=\"--cell:150px\">{cards}</div>"
    )
    return _page(title, body, SORT_SCRIPT)


def _unmoved_note(layer: Mapping[str, Any]) -> str:
    """The layer page's line on units whose synthetic image never moved (nothing when there are none)."""
    count = layer.get("unmoved")
    if not count:
        return ""
    return (f"<p class=\"unmoved\">{number(count)} of {number(len(layer['units']))} units never moved: their synthetic "
            "image is still its starting noise (no gradient reached it), marked \u201cnever moved\u201d below.</p>")


def _crops_note(layer: Mapping[str, Any]) -> str:
    """What an irregular layer's crops are (nothing for a regular one, whose crop is its field)."""
    field_ = layer["receptive_field"]
    if field_.get("regular", True) or not field_.get("effective"):
        return ""
    return (f"<p>Each crop is its position's effective receptive field: the box holding {_share(field_)} of the gradient "
            "of the position with respect to the pixels; its field, every pixel any gradient reaches, can be "
            "larger (all of the image after squeeze-excitation, attention or global pooling).</p>")


def _unit_page(atlas: Mapping[str, Any], layer: Mapping[str, Any], position: int) -> str:
    unit = layer["units"][position]
    title = f"{atlas['settings']['model']} {layer['name']} unit {unit['unit']}"
    links = [f"<a href=\"{href(layer['page'])}\">{escape(layer['name'])}</a>"]
    if position > 0:
        links.append(f"<a href=\"{href(layer['units'][position - 1]['page'])}\">previous</a>")
    if position + 1 < len(layer["units"]):
        links.append(f"<a href=\"{href(layer['units'][position + 1]['page'])}\">next</a>")
    unmoved = set(unit.get("unmoved") or [])
    synthetic = "".join(
        f"<figure><img src=\"{href(file)}\" alt=\"synthetic {k}\"><figcaption>a = {escape(_figure('score', score))}"
        f"{' &middot; ' + NEVER_MOVED if k in unmoved else ''}</figcaption></figure>"
        for k, (file, score) in enumerate(zip(unit["synthetic"], unit["scores"]))
    )
    warning = ""
    if unmoved:
        which = "The synthetic image" if len(unit["synthetic"]) == 1 else (
            f"Synthetic image(s) {', '.join(f's{k}' for k in sorted(unmoved))}")
        warning = f"<p class=\"unmoved\">{escape(which)} {escape(UNMOVED)}.</p>"
    examples = "".join(
        f"<figure><img src=\"{href(e['file'])}\" alt=\"{escape(e['name'])}\"><figcaption>{escape(e['name'])}<br>"
        f"a = {escape(_figure('score', e['score']))} at {_where(e)}{_crop(e)}</figcaption></figure>"
        for e in unit["examples"]
    )
    figures = {name: _figure(key, unit.get(key)) for key, name in FIGURES}
    if len(unit["synthetic"]) < 2:
        figures[dict(FIGURES)["spread"]] = "\u2014 (one image)"
    body = (
        f"<nav>{' '.join(links)}</nav><h1>{escape(title)}</h1>{_rows(figures)}"
        f"<h2>Synthetic</h2>{warning}<div class=\"grid big\" style=\"--cell:170px\">{synthetic}</div>"
        f"<h2>Dataset examples (receptive-field crops at the maximum)</h2>{_crops_note(layer)}"
        f"<div class=\"grid crop\" style=\"--cell:110px\">{examples}</div>"
        f"<h2>Degree of activation over the dataset</h2>{histogram_svg(unit['histogram'], mark=unit['score'])}"
        "<p>bars: dataset images; red line: the synthetic image.</p>"
    )
    return _page(title, body)


def write_site(folder: str | Path, atlas: Mapping[str, Any], tick: Callable[[], None] | None = None) -> Path:
    """Write ``atlas.json``, ``index.html``, one page per layer and one per unit into ``folder``.

    Args:
        folder: the atlas folder (its ``images/`` hold the files the document names).
        atlas: the document of :func:`probe.atlas.site.assemble`.
        tick: called after every page (default None): a distributed run's progress mark, so that writing
            tens of thousands of pages is not taken for a hung rank (:mod:`probe.atlas.liveness`).

    Each file is replaced whole (:func:`probe.gallery.files.replace_text`): a full disk leaves the
    pages of the last complete write, never half of one; a link planted under a page's name is replaced,
    never written through.

    Returns:
        The path of ``index.html``.
    """
    given = Path(folder)
    folder = followed(given)  # the atlas's own folder, named by the user: followed; no link inside it is
    replace_text(folder / ATLAS_JSON, json.dumps(atlas, indent=1, allow_nan=False) + "\n")
    layers: Sequence[Mapping[str, Any]] = atlas["layers"]
    for layer in layers:
        replace_text(folder / layer["page"], _layer_page(atlas, layer))
        for position, unit in enumerate(layer["units"]):
            replace_text(folder / unit["page"], _unit_page(atlas, layer, position))
            if tick is not None:
                tick()
    index, above = _index(atlas), index_above(folder)
    if above is not None:  # a probe gallery page over the runs: the link back to it, as a run's page has
        index = with_index_link(index, above)
    replace_text(folder / "index.html", index)  # last: the site is listed once its index is there
    return given / "index.html"
