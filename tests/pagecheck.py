"""What every page test asks of a page: its visible text holds no Python repr, and its links resolve on disk."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote

REPRS = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|\bnan\b|\[|\]|\{'|'\}|\d[eE]\+\d|\d\.\d{9,}|\bn/a\b|\bx-\d")
"""A Python repr or machine number in text meant for people: None, booleans, lists, dicts, large numbers with an
exponent (``1.2e+05``), 16-digit floats (9 decimals or more; pages write at most 7), ``n/a``, and ``x-3.87``
(a ratio's sign after its ``x``)."""


def visible_text(page: str) -> str:
    """The text a reader sees: scripts, styles and tags removed, entities decoded."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def reprs(page: str) -> list[str]:
    """Every place in ``page``'s visible text that reads like a repr, with some context."""
    text = visible_text(page)
    return [text[max(m.start() - 30, 0):m.end() + 30] for m in REPRS.finditer(text)]


def broken_links(folder: Path) -> list[str]:
    """``page: link`` for every relative ``href`` / ``src`` of the pages below ``folder`` whose file is missing."""
    missing = []
    for page in sorted(folder.rglob("*.html")):
        for link in re.findall(r'(?:href|src)="([^"]*)"', page.read_text(encoding="utf-8")):
            link = html.unescape(link)
            if re.match(r"[a-z][a-z0-9+.-]*:", link) or link.startswith("#"):
                continue
            if not (page.parent / unquote(link.split("#")[0])).exists():
                missing.append(f"{page.relative_to(folder)}: {link}")
    return missing
