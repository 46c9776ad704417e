"""Contact sheets: a grid of images with a caption under each, as one PIL image."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from PIL import Image, ImageDraw

from probe.gallery.typeface import Typeface, typeface

__all__ = ["contact_sheet", "display_size", "font"]

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)
TITLE_WIDTH = 1600
"""Pixels a contact sheet's heading may widen a narrow sheet to; a longer heading is cut with an ellipsis."""


def font(size: int) -> Typeface:
    """The typeface captions and titles are set in at ``size`` pixels (:func:`probe.gallery.typeface.typeface`:
    DejaVu Sans, a fallback font per character it lacks, a visible placeholder where none has it)."""
    return typeface(size)


def display_size(width: int, height: int, cell: int) -> tuple[int, int]:
    """The size an image of ``width x height`` is shown at in a cell of ``cell`` pixels (longer side)."""
    scale = cell / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _fit(image: Image.Image, cell: int) -> Image.Image:
    """Scale to the cell: nearest-neighbour when enlarging small images (keeps pixels crisp)."""
    size = display_size(image.width, image.height, cell)
    if size == image.size:
        return image
    smooth = image.width >= cell or image.height >= cell or max(image.size) >= 96
    return image.resize(size, Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
"""Control characters (NUL, newlines, tabs, ...), drawn as a space: a font has no glyph for them."""


def _prefix(text: str, face: Typeface, width: float, end: str = "") -> int:
    """How many leading characters of ``text``, followed by ``end``, fit in ``width`` pixels (at least 1)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if face.length(text[:middle] + end) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _ellipsis(face: Typeface) -> str:
    """"…" where the typeface has it, three dots where it does not (Pillow's ASCII default font)."""
    return "\u2026" if face.covers[0](0x2026) else "..."


def _cut(text: str, face: Typeface, width: float) -> str:
    """``text`` cut to end in an ellipsis that, with the rest, fits in ``width`` pixels."""
    end = _ellipsis(face)
    return text[:_prefix(text, face, width, end)].rstrip() + end


def _wrap(text: str, face: Typeface, width: int, lines: int) -> list[str]:
    """``text`` in at most ``lines`` lines of at most ``width`` pixels, the last one ending in an ellipsis when
    cut; a word wider than ``width`` (a long label, a path) is cut, never drawn over the next cell."""
    wrapped: list[str] = []
    current = ""
    text = str(text)[: (lines + 1) * width]  # no glyph is narrower than a pixel: the rest could never show
    for word in _CONTROL.sub(" ", text).split():
        while len(wrapped) <= lines and len(word) > 1 and face.length(word) > width:
            if current:
                wrapped.append(current)
                current = ""
            cut = _prefix(word, face, width)
            wrapped.append(word[:cut])
            word = word[cut:]
        if len(wrapped) > lines:
            break
        trial = f"{current} {word}".strip()
        if face.length(trial) <= width or not current:
            current = trial
        else:
            wrapped.append(current)
            current = word
    if current:
        wrapped.append(current)
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = _cut(wrapped[-1], face, width)
    return wrapped


def contact_sheet(
    images: Sequence[Image.Image],
    captions: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    cell: int = 128,
    title: str | None = None,
    caption_lines: int = 2,
) -> Image.Image:
    """Lay out ``images`` in a captioned grid.

    Args:
        images: PIL images of any sizes and modes; each is scaled so its longer
            side is ``cell`` pixels (small images are enlarged without blurring).
        captions: one line of text per image (wrapped to ``caption_lines``);
            default none.
        columns: grid width; default about the square root of the count, at
            most 10.
        cell: the size of each image in pixels (default 128).
        title: a heading above the grid (default none).
        caption_lines: lines of caption under each image (default 2).

    Returns:
        An RGB image.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    captions = list(captions or [""] * len(images))
    columns = columns or min(10, max(1, math.ceil(math.sqrt(len(images)))))
    rows = math.ceil(len(images) / columns)
    text_size = max(10, cell // 10)
    face, title_face = font(text_size), font(int(text_size * 1.5))
    pad = max(4, cell // 16)
    caption_height = (text_size + 2) * caption_lines if any(captions) else 0
    title_height = int(text_size * 1.5) + 2 * pad if title else 0
    width = columns * (cell + pad) + pad
    if title:  # never clip the heading of a narrow sheet; one of any length is cut at TITLE_WIDTH
        room = max(width, TITLE_WIDTH) - 2 * pad
        title = _CONTROL.sub(" ", title[:room + 1])
        if title_face.length(title) > room:
            title = _cut(title, title_face, room)
        width = max(width, math.ceil(title_face.length(title)) + 2 * pad)
    height = title_height + rows * (cell + caption_height + pad) + pad
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        title_face.draw(draw, (pad, pad), title, INK)
    for index, (image, caption) in enumerate(zip(images, captions)):
        row, column = divmod(index, columns)
        x = pad + column * (cell + pad)
        y = title_height + pad + row * (cell + caption_height + pad)
        fitted = _fit(image.convert("RGB"), cell)
        sheet.paste(fitted, (x + (cell - fitted.width) // 2, y + (cell - fitted.height) // 2))
        for line_number, line in enumerate(_wrap(caption, face, cell, caption_lines)):
            face.draw(draw, (x, y + cell + 1 + line_number * (text_size + 2)), line, MUTED)
    return sheet
