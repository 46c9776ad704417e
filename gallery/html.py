"""index.html pages that open straight from disk (no server, no script), every string escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

__all__ = ["render_run_page", "render_collection_page", "escape", "href"]

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1c1c1c;background:#fafafa}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}
table.meta{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
table.meta td{padding:.15rem .8rem .15rem 0;vertical-align:top}table.meta td:first-child{color:#666}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(var(--cell),1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #e3e3e3;border-radius:4px;padding:6px}
figure img{width:100%;height:auto;display:block;image-rendering:auto}
figure img.small{image-rendering:pixelated}
figcaption{font-size:.8rem;color:#444;margin-top:4px;overflow-wrap:anywhere}
.extras img{max-width:100%;height:auto;border:1px solid #e3e3e3}
a{color:#1a5fb4}
"""


def escape(value: Any) -> str:
    """HTML-escape any value's text, quotes included."""
    return html.escape(str(value), quote=True)


def href(path: str) -> str:
    """A relative link to ``path`` (percent-encoded, then escaped for an attribute)."""
    return escape(quote(str(path), safe="/"))


def _meta_rows(fields: Mapping[str, Any]) -> str:
    rows = []
    for key, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, (dict, list, tuple)):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else ", ".join(map(str, value))
        rows.append(f"<tr><td>{escape(key)}</td><td>{escape(value)}</td></tr>")
    return "<table class=\"meta\">" + "".join(rows) + "</table>"


def _figure(item: Mapping[str, Any], small: bool) -> str:
    caption = escape(item.get("caption", ""))
    file = item["file"]
    klass = " class=\"small\"" if small else ""
    return (
        f"<figure><a href=\"{href(file)}\"><img src=\"{href(file)}\" alt=\"{caption}\" loading=\"lazy\"{klass}></a>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def render_run_page(
    title: str,
    fields: Mapping[str, Any],
    sections: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    extras: Iterable[Mapping[str, Any]] = (),
    *,
    cell: int = 160,
    small_images: bool = False,
) -> str:
    """The page of one run.

    Args:
        title: page heading.
        fields: run-level facts shown as a table (model, layer, steps, ...).
        sections: ``(heading, items)`` pairs; each item has ``file`` and ``caption``.
        extras: contact sheets, plots and animations shown below the grids
            (each with ``file`` and ``caption``).
        cell: grid cell width in CSS pixels (default 160).
        small_images: render images without smoothing (pixel art such as 28x28 digits).

    Returns:
        A complete HTML document.
    """
    body = [f"<h1>{escape(title)}</h1>", _meta_rows(fields)]
    body.append('<p><a href="manifest.json">manifest.json</a></p>')
    for heading, items in sections:
        if heading:
            body.append(f"<h2>{escape(heading)}</h2>")
        body.append(f"<div class=\"grid\" style=\"--cell:{int(cell)}px\">")
        body.extend(_figure(item, small_images) for item in items)
        body.append("</div>")
    extras = list(extras)
    if extras:
        body.append("<h2>Overview</h2><div class=\"extras\">")
        for extra in extras:
            caption = escape(extra.get("caption", ""))
            body.append(
                f"<figure><a href=\"{href(extra['file'])}\"><img src=\"{href(extra['file'])}\" alt=\"{caption}\"></a>"
                f"<figcaption>{caption}</figcaption></figure>"
            )
        body.append("</div>")
    return _document(title, "\n".join(body))


def render_collection_page(title: str, runs: Sequence[Mapping[str, Any]]) -> str:
    """An index over many runs: each run has ``link`` (its index.html), ``thumbnail``, ``caption``, ``fields``."""
    cards = []
    for run in runs:
        thumb = run.get("thumbnail")
        image = f"<img src=\"{href(thumb)}\" alt=\"{escape(run['caption'])}\">" if thumb else ""
        fields = "<br>".join(f"{escape(k)}: {escape(v)}" for k, v in run.get("fields", {}).items())
        cards.append(
            f"<figure><a href=\"{href(run['link'])}\">{image}</a>"
            f"<figcaption><a href=\"{href(run['link'])}\">{escape(run['caption'])}</a><br>{fields}</figcaption></figure>"
        )
    body = f"<h1>{escape(title)}</h1><p>{len(runs)} run(s)</p><div class=\"grid\" style=\"--cell:260px\">{''.join(cards)}</div>"
    return _document(title, body)


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
