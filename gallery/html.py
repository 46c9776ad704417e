"""index.html pages that open straight from disk (no server), every string escaped.

Each page is one self-contained HTML file: a few lines of plain script (no
framework, nothing fetched, so ``file://`` works) sort and filter the grids
and zoom an image on click; without script the page still shows everything and
each image links to its PNG. Colours follow the reader's light or dark
preference (``prefers-color-scheme``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from probe.gallery.files import read_regular
from probe.gallery.numbers import MINUS, quantity

__all__ = ["render_run_page", "render_collection_page", "escape", "href", "human", "label", "SMALL_IMAGE", "COLLECTION_MARK", "index_above", "with_index_link"]

COLLECTION_MARK = '<meta name="generator" content="cnn-probe runs">'
"""In the head of every collection page, so that run pages below it know they may link to it."""

LEVELS = 3
"""How far above a run :func:`index_above` looks for a collection page."""

SMALL_IMAGE = 96
"""Images whose longer side is under this many pixels are drawn without smoothing (crisp pixels)."""

STYLE = """
:root{color-scheme:light dark;--bg:#fafafa;--fg:#1c1c1c;--card:#fff;--line:#e3e3e3;--muted:#666;--link:#1a5fb4;
--badge:#b3261e}
@media (prefers-color-scheme:dark){:root{--bg:#15171b;--fg:#e4e4e4;--card:#1f2227;--line:#353a42;--muted:#9aa0a6;
--link:#8ab4f8;--badge:#f28b82}}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:var(--fg);background:var(--bg)}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}
nav{font-size:.9rem;margin-bottom:.6rem}
table.meta{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
table.meta td{padding:.15rem .8rem .15rem 0;vertical-align:top;overflow-wrap:anywhere}
table.meta td:first-child{color:var(--muted);overflow-wrap:normal}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(var(--cell),1fr));gap:12px}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:4px;padding:6px}
figure[hidden]{display:none}
figure img{width:100%;height:auto;display:block;image-rendering:auto}
img.small{image-rendering:pixelated}
figcaption{font-size:.8rem;color:var(--muted);margin-top:4px;overflow-wrap:anywhere}
figcaption b{color:var(--fg);font-weight:600}
.extras figure{width:fit-content;max-width:100%;box-sizing:border-box;margin-bottom:12px}
.extras img{width:auto;max-width:100%;height:auto;border:1px solid var(--line)}
.controls{display:flex;flex-wrap:wrap;gap:.4rem .8rem;align-items:center;font-size:.85rem;margin:.4rem 0 .8rem;
color:var(--muted)}
.controls label,.controls .count{white-space:nowrap}
.controls input{width:12rem;max-width:60vw}
.thumbs{display:grid;grid-template-columns:repeat(var(--n),1fr);gap:3px}
.badge{display:inline-block;font-size:.72rem;border:1px solid var(--badge);color:var(--badge);border-radius:3px;
padding:0 .3rem;margin-left:.3rem}
a{color:var(--link)}
#lightbox{position:fixed;inset:0;background:rgba(0,0,0,.85);display:flex;flex-direction:column;align-items:center;
justify-content:center;cursor:zoom-out;z-index:10}
#lightbox[hidden]{display:none}
#lightbox img{max-width:92vw;max-height:86vh;width:auto;height:auto;background:#fff}
#lightbox img.small{height:min(80vh,80vw);width:auto;object-fit:contain;image-rendering:pixelated}
#lightbox p{color:#eee;font-size:.9rem;margin:.6rem}
@media (max-width:600px){body{margin:1rem}}
"""

SCRIPT = """
(function () {
  function value(figure, key) { var v = figure.dataset[key]; return v === undefined ? "" : v; }
  function compare(a, b, key, direction, numeric) {
    var x = value(a, key), y = value(b, key);
    if (x === "" || y === "") { return (x === "") - (y === "") || a.dataset.order - b.dataset.order; }
    var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
    return direction * order || a.dataset.order - b.dataset.order;
  }
  document.querySelectorAll(".controls").forEach(function (bar) {
    var grid = document.getElementById(bar.dataset.grid), count = bar.querySelector(".count");
    var figures = Array.prototype.slice.call(grid.children);
    function apply() {
      var choice = bar.querySelector("select").value.split(":"), text = bar.querySelector("input").value;
      var words = text.toLowerCase().split(/\\s+/).filter(Boolean), shown = 0;
      figures.slice().sort(function (a, b) {
        return compare(a, b, choice[0], Number(choice[1]), choice[2] === "n");
      }).forEach(function (figure) {
        var haystack = figure.dataset.text.toLowerCase();
        figure.hidden = !words.every(function (word) { return haystack.indexOf(word) >= 0; });
        shown += figure.hidden ? 0 : 1;
        grid.appendChild(figure);
      });
      count.textContent = shown + " of " + figures.length;
    }
    bar.addEventListener("input", apply);
    bar.addEventListener("change", apply);
    apply();
  });
  var box = document.getElementById("lightbox");
  if (!box) { return; }
  var big = box.querySelector("img"), caption = box.querySelector("p");
  big.addEventListener("load", function () {
    big.classList.toggle("small", Math.max(big.naturalWidth, big.naturalHeight) < 400);
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.zoom") : null;
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey) {
      event.preventDefault();
      big.src = link.getAttribute("href");
      big.alt = caption.textContent = link.dataset.caption || link.getAttribute("href");
      box.hidden = false;
    } else if (!box.hidden && box.contains(event.target)) {
      box.hidden = true;
    }
  });
  document.addEventListener("keydown", function (event) { if (event.key === "Escape") { box.hidden = true; } });
})();
"""

LIGHTBOX = '<div id="lightbox" hidden><img alt=""><p></p></div>'


def escape(value: Any) -> str:
    """HTML-escape any value's text, quotes included."""
    return html.escape(str(value), quote=True)


def href(path: str) -> str:
    """A relative link to ``path`` (percent-encoded, then escaped for an attribute)."""
    return escape(quote(str(path), safe="/"))


def human(value: Any, key: str = "") -> str:
    """A value as a reader wants it, never a Python repr: :func:`probe.gallery.numbers.quantity` with the page's minus.

    None -> an em dash; True/False -> yes/no; numbers to 4 significant digits,
    grouped in thousands (``0.05``, ``123,457``); lists joined with commas
    (nested lists in parentheses: ``[[16, 16], [24, 24]]`` reads ``(16, 16), (24, 24)``);
    dicts as ``key: value; key: value``; ``key`` adds the unit the field's name
    implies (``seconds`` -> ``1.9 s``, ``image_size`` -> ``28×28``).
    """
    if key in NONE_MEANS and value is None:
        return NONE_MEANS[key]
    if key == "created" and isinstance(value, str):
        return _timestamp(value)
    return quantity(value, key, minus=MINUS)


NONE_MEANS = {"diverged": "no"}
"""Fields whose null is a plain answer rather than a missing value (``"diverged": null`` is a sound run)."""


def _timestamp(value: str) -> str:
    """``2026-12-01T10:11:48+00:00`` -> ``2026-12-01 10:11:48 UTC`` (other offsets kept as written)."""
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return value
    if stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0:
        return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")
    return stamp.isoformat(sep=" ")


def index_above(folder: str | Path) -> str | None:
    """A relative link to the collection page (``probe gallery``) of a folder above ``folder``, or None."""
    parent = Path(folder).resolve()
    for level in range(1, LEVELS + 1):
        parent = parent.parent
        head = read_regular(parent / "index.html", 8000)  # a FIFO there hung every run's save
        if head is not None and COLLECTION_MARK in head.decode("utf-8", errors="replace")[:2000]:
            return "../" * level + "index.html"
    return None


def _nav(index: str) -> str:
    return f'<nav><a href="{href(index)}">&larr; all runs</a></nav>'


def with_index_link(page: str, index: str) -> str:
    """A run page with the link back to ``index`` added, when it has none (pages written before the index)."""
    if "<nav>" in page or "<body>\n" not in page:
        return page
    return page.replace("<body>\n", f"<body>\n{_nav(index)}\n", 1)


def label(key: str) -> str:
    """A manifest key as a table label: ``objective_before`` -> ``objective before``."""
    return str(key).replace("_", " ")


def _meta_rows(fields: Mapping[str, Any]) -> str:
    """The run's fields as a table; a field that is None or empty (an option not used: a dream's tile, guide,
    zoom; an attribution's empty list of skipped methods) has no row unless its null is an answer
    (:data:`NONE_MEANS`); manifest.json keeps every field."""
    rows = "".join(f"<tr><td>{escape(label(key))}</td><td>{escape(human(value, key))}</td></tr>"
                   for key, value in fields.items()
                   if key in NONE_MEANS or not (value is None or isinstance(value, (list, tuple, dict)) and not value))
    return f'<table class="meta">{rows}</table>'


def _data(**values: Any) -> str:
    """``data-*`` attributes for the sorting script (None values left out)."""
    return "".join(f' data-{key}="{escape(value)}"' for key, value in values.items() if value is not None)


def _zoom_link(file: str, caption: str, inner: str) -> str:
    return f'<a class="zoom" href="{href(file)}" data-caption="{escape(caption)}">{inner}</a>'


def _figure(item: Mapping[str, Any], order: int, small: bool) -> str:
    caption = str(item.get("caption", ""))
    file = item["file"]
    klass = ' class="small"' if small else ""
    score = item.get("score")
    score = score if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score) else None
    image = f'<img src="{href(file)}" alt="{escape(caption or file)}" loading="lazy"{klass}>'
    return (
        f"<figure{_data(order=order, score=score, text=caption)}>{_zoom_link(file, caption, image)}"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _controls(grid_id: str, options: Sequence[tuple[str, str]]) -> str:
    """Sort select, filter box and shown count above grid ``grid_id``; options are ``(key:dir:kind, label)``."""
    choices = "".join(f'<option value="{escape(value)}">{escape(label)}</option>' for value, label in options)
    return (
        f'<div class="controls" data-grid="{escape(grid_id)}"><label>sort <select>{choices}</select></label>'
        '<label>filter <input type="search" placeholder="words in the caption"></label>'
        '<span class="count"></span></div>'
    )


RUN_SORTS = (("order:1:n", "as made"), ("score:-1:n", "score, highest first"), ("score:1:n", "score, lowest first"))


def render_run_page(
    title: str,
    fields: Mapping[str, Any],
    sections: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    extras: Iterable[Mapping[str, Any]] = (),
    *,
    cell: int = 160,
    small_images: bool = False,
    index: str | None = None,
) -> str:
    """The page of one run.

    Args:
        title: page heading.
        fields: run-level facts shown as a table (model, layer, steps, ...),
            formatted by :func:`human`.
        sections: ``(heading, items)`` pairs; each item has ``file`` and
            ``caption``, and optionally a numeric ``score`` (then the section
            can be sorted by it). Sections of more than 4 images get sort and
            filter controls.
        extras: contact sheets, plots and animations shown below the grids
            (each with ``file`` and ``caption``).
        cell: grid cell width in CSS pixels (default 160).
        small_images: render images without smoothing (pixel art such as 28x28 digits).
        index: a relative link to the page that lists this run (``"../index.html"``),
            shown at the top; default none.

    Returns:
        A complete HTML document.
    """
    body = [_nav(index)] if index else []
    body += [f"<h1>{escape(title)}</h1>", _meta_rows(fields), '<p><a href="manifest.json">manifest.json</a></p>']
    for number, (heading, items) in enumerate(sections):
        if heading:
            body.append(f"<h2>{escape(heading)}</h2>")
        grid_id = f"grid-{number}"
        if len(items) > 4:
            scored = any(isinstance(item.get("score"), (int, float)) for item in items)
            body.append(_controls(grid_id, RUN_SORTS if scored else RUN_SORTS[:1]))
        body.append(f'<div class="grid" id="{grid_id}" style="--cell:{int(cell)}px">')
        body.extend(_figure(item, order, small_images) for order, item in enumerate(items))
        body.append("</div>")
    extras = list(extras)
    if extras:
        body.append('<h2>Overview</h2><div class="extras">')
        for extra in extras:
            caption = str(extra.get("caption", ""))
            image = f'<img src="{href(extra["file"])}" alt="{escape(caption or extra["file"])}">'
            body.append(f"<figure>{_zoom_link(extra['file'], caption, image)}"
                        f"<figcaption>{escape(caption)}</figcaption></figure>")
        body.append("</div>")
    return _document(title, "\n".join(body))


COLLECTION_SORTS = (
    ("created:-1:s", "newest first"),
    ("created:1:s", "oldest first"),
    ("name:1:s", "name"),
    ("command:1:s", "command"),
)


def _card(run: Mapping[str, Any], order: int) -> str:
    thumbs = list(run.get("thumbnails") or [])
    klass = ' class="small"' if run.get("small") else ""
    name = f"{run.get('command', '')} {run.get('name', '')}".strip()
    alts = [escape(f"{name}: image {k} of {len(thumbs)}") for k in range(1, len(thumbs) + 1)]
    images = "".join(f'<img src="{href(t)}" alt="{alt}" loading="lazy"{klass}>' for t, alt in zip(thumbs, alts))
    picture = f'<div class="thumbs" style="--n:{min(2, len(thumbs))}">{images}</div>' if thumbs else ""
    badges = "".join(f'<span class="badge">{escape(badge)}</span>' for badge in run.get("badges", ()))
    fields = run.get("fields", {})
    lines = "<br>".join(f"{escape(label(key))}: {escape(human(value, key))}" for key, value in fields.items())
    created = run.get("created") or ""
    date = escape(created.replace("T", " ")[:16]) if created else "\u2014"
    text = " ".join([str(run.get("name", "")), str(run.get("command", "")), *map(str, run.get("badges", ())),
                     *(f"{label(key)} {human(value, key)}" for key, value in fields.items())])
    return (
        f"<figure{_data(order=order, name=run.get('name'), command=run.get('command'), created=created, text=text)}>"
        f'<a href="{href(run["link"])}">{picture}</a><figcaption><a href="{href(run["link"])}"><b>'
        f'{escape(run.get("command", ""))}</b>: {escape(run.get("name", ""))}</a>{badges}<br>{date}'
        f"{'<br>' + lines if lines else ''}</figcaption></figure>"
    )


def render_collection_page(title: str, runs: Sequence[Mapping[str, Any]]) -> str:
    """An index over many runs, sortable by date, name or command, and filterable.

    Args:
        title: page heading.
        runs: one mapping per run: ``link`` (its index.html), ``name`` (its
            folder), ``command``, ``created`` (ISO timestamp or None),
            ``thumbnails`` (up to 4 image paths), ``small`` (draw them with
            crisp pixels), ``badges`` (short warnings, e.g. ``"random weights"``)
            and ``fields`` (what tells the run apart: model, layer, preset, ...).

    Returns:
        A complete HTML document.
    """
    cards = "".join(_card(run, order) for order, run in enumerate(runs))
    body = (
        f"<h1>{escape(title)}</h1><p>{len(runs)} run(s)</p>{_controls('runs', COLLECTION_SORTS)}"
        f'<div class="grid" id="runs" style="--cell:240px">{cards}</div>'
    )
    return _document(title, body, head=COLLECTION_MARK)


def _document(title: str, body: str, head: str = "") -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{head}'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n{LIGHTBOX}\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )
