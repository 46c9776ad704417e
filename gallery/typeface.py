"""Text that shows whatever its script: a primary font with a fallback per character.

Pillow draws a character its font lacks as an empty box (the font's ``.notdef``), and Pillow's own default
font covers little beyond ASCII, so a class label such as "café", "Ελλάδα" or "日本" came out as boxes. A
:class:`Typeface` sets text in matplotlib's DejaVu Sans (matplotlib is a declared dependency; DejaVu covers
Latin, Greek, Cyrillic, Arabic, Hebrew and many symbols), takes a character DejaVu lacks from the first
installed font that has it (a CJK font, say, found through matplotlib's font manager), and draws one that no
font has in matplotlib's Last Resort font (a box showing which script the character is from) or, where that
font is missing, as "�": a visible placeholder, never a silent box. Widths are measured run by run in the
font each run is drawn in, so wrapping and ellipses fit what is drawn.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

from PIL import ImageDraw, ImageFont

__all__ = ["Typeface", "Fallbacks", "typeface", "system_fonts", "PLACEHOLDER"]

PLACEHOLDER = "\ufffd"
"""Drawn in the primary font for a character that no font has, when there is no Last Resort font."""

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont
Covers = Callable[[int], bool]
"""Whether a font has a glyph for a code point."""

LAST_RESORT, MISSING = -2, -1
"""Run indices of the Last Resort font and of the placeholder (font indices are 0 and up)."""


def _invisible(character: str) -> bool:
    """A character drawn as nothing where a font lacks it: joiners, direction marks, variation selectors."""
    code = ord(character)
    return unicodedata.category(character) == "Cf" or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


@functools.lru_cache(maxsize=None)
def coverage(path: str) -> frozenset[int]:
    """The code points the font file at ``path`` has glyphs for (none when it cannot be read)."""
    try:
        from matplotlib.ft2font import FT2Font

        return frozenset(FT2Font(path).get_charmap())
    except Exception:  # noqa: BLE001 - an unreadable font only drops out of the fallbacks
        return frozenset()


def _load(path: str | Path, size: int) -> ImageFont.FreeTypeFont | None:
    """The font file at ``path`` at ``size`` pixels, or None where FreeType cannot read it or set it at that
    size (a colour-bitmap emoji font has fixed sizes; Pillow may lack FreeType)."""
    try:
        return ImageFont.truetype(str(path), size)
    except (OSError, ValueError, ImportError):
        return None


class Fallbacks:
    """Font files searched in order for a character the primary font lacks; each is read only when a
    character asks for it.

    Args:
        paths: font files, in order of preference; None: :func:`system_fonts`, listed when the first
            character asks (matplotlib's font manager takes half a second to start).
        size: the pixel size to load them at.
    """

    def __init__(self, paths: Iterable[str | Path] | None, size: int) -> None:
        self.paths = None if paths is None else [str(path) for path in paths]
        self.size = size
        self._loaded: dict[str, ImageFont.FreeTypeFont | None] = {}

    def find(self, code: int) -> tuple[str, ImageFont.FreeTypeFont] | None:
        """The first font file with a glyph for ``code`` that loads at the size, with the loaded font."""
        if self.paths is None:
            self.paths = list(system_fonts())
        for path in self.paths:
            if code in coverage(path):
                if path not in self._loaded:
                    self._loaded[path] = _load(path, self.size)
                if self._loaded[path] is not None:
                    return path, self._loaded[path]  # type: ignore[return-value]
        return None


class Typeface:
    """Text at one size in ``primary``, each character it lacks from the first fallback that has it.

    Args:
        primary: the font most text is set in.
        covers: whether ``primary`` has a glyph for a code point.
        fallbacks: fonts to search for the characters ``primary`` lacks (default none).
        last_resort: a font with a glyph for every code point, drawn for characters no other font has
            (default none: those are drawn as ``placeholder`` in ``primary``).
        placeholder: the character drawn for one no font has, without a last resort (default "�").
    """

    def __init__(self, primary: Font, covers: Covers, fallbacks: Fallbacks | None = None,
                 last_resort: Font | None = None, placeholder: str = PLACEHOLDER) -> None:
        self.fonts: list[Font] = [primary]
        self.covers: list[Covers] = [covers]
        self.fallbacks, self.last_resort, self.placeholder = fallbacks, last_resort, placeholder
        self._paths: dict[str, int] = {}
        self._choice: dict[str, int] = {}

    @property
    def primary(self) -> Font:
        """The font most text is set in."""
        return self.fonts[0]

    def _index(self, character: str) -> int:
        """The font drawing ``character``: an index into :attr:`fonts`, :data:`LAST_RESORT` or :data:`MISSING`."""
        if character not in self._choice:
            code = ord(character)
            index = next((i for i, covers in enumerate(self.covers) if covers(code)), None)
            found = self.fallbacks.find(code) if index is None and self.fallbacks is not None else None
            if found is not None:
                path, font = found
                if path not in self._paths:
                    self._paths[path] = len(self.fonts)
                    self.fonts.append(font)
                    self.covers.append(coverage(path).__contains__)
                index = self._paths[path]
            if index is None:
                index = LAST_RESORT if self.last_resort is not None else MISSING
            self._choice[character] = index
        return self._choice[character]

    def _font(self, index: int) -> Font:
        return self.last_resort if index == LAST_RESORT else self.fonts[index]  # type: ignore[return-value]

    def runs(self, text: str) -> list[tuple[Font, str]]:
        """``text`` (NFC-normalized) as runs of characters drawn in one font, in order.

        A space, combining mark or invisible character stays in the run it follows when that run's font
        has it; an invisible character (a joiner, a variation selector) that font lacks is left out; spaces
        are never set in the last resort (it draws them as boxes); a character that no font has becomes
        :attr:`placeholder` in the primary font when there is no last resort.
        """
        runs: list[tuple[int, list[str]]] = []
        for character in unicodedata.normalize("NFC", text):
            previous = runs[-1][0] if runs else MISSING
            joins = character.isspace() or unicodedata.combining(character) or _invisible(character)
            if joins and previous >= 0 and self.covers[previous](ord(character)):
                runs[-1][1].append(character)
                continue
            if _invisible(character):
                continue
            index = 0 if character.isspace() else self._index(character)
            if index == MISSING:
                index, character = 0, self.placeholder
            if index == previous:
                runs[-1][1].append(character)
            else:
                runs.append((index, [character]))
        return [(self._font(index), "".join(characters)) for index, characters in runs]

    def length(self, text: str) -> float:
        """The width of ``text`` in pixels, each run measured in the font it is drawn in."""
        return sum(font.getlength(run) for font, run in self.runs(text))

    def draw(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: tuple[int, int, int]) -> None:
        """Draw ``text`` with the top of its line at ``xy``, every run on the primary font's baseline."""
        x, y = xy
        outline = isinstance(self.primary, ImageFont.FreeTypeFont)
        baseline = y + (self.primary.getmetrics()[0] if outline else 0)  # type: ignore[union-attr]
        for font, run in self.runs(text):
            if outline and isinstance(font, ImageFont.FreeTypeFont):
                draw.text((x, baseline), run, fill=fill, font=font, anchor="ls")
            else:  # a bitmap font knows no anchors
                draw.text((x, y), run, fill=fill, font=font)
            x += font.getlength(run)


def _own_fonts() -> Path | None:
    """matplotlib's own font folder, or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=1)
def system_fonts() -> tuple[str, ...]:
    """The installed font files matplotlib's font manager knows, regular upright sans first; matplotlib's
    own are left out (DejaVu is the primary, Last Resort the last resort, and the TeX fonts' code points
    stand for other characters)."""
    try:
        from matplotlib import font_manager
    except ImportError:
        return ()
    own = _own_fonts()
    entries = [entry for entry in font_manager.fontManager.ttflist if Path(entry.fname).parent != own]

    def preference(entry: font_manager.FontEntry) -> tuple:
        weight = entry.weight if isinstance(entry.weight, int) else 400
        return (entry.style != "normal", abs(weight - 400), entry.stretch != "normal",
                "sans" not in entry.name.lower(), entry.name, entry.fname)

    return tuple(dict.fromkeys(entry.fname for entry in sorted(entries, key=preference)))


@functools.lru_cache(maxsize=16)
def typeface(size: int) -> Typeface:
    """The typeface contact sheets are set in, at ``size`` pixels: DejaVu Sans, the system fonts for what
    it lacks, then matplotlib's Last Resort font; Pillow's default font (ASCII, "?" for the rest) where
    FreeType or matplotlib's fonts are missing."""
    own = _own_fonts()
    primary = _load(own / "DejaVuSans.ttf", size) if own is not None else None
    if primary is None:
        try:
            default = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1 has no sized default font
            default = ImageFont.load_default()
        return Typeface(default, lambda code: 32 <= code < 127, placeholder="?")
    last_resort = own / "LastResortHE-Regular.ttf"  # type: ignore[operator]
    return Typeface(primary, coverage(str(own / "DejaVuSans.ttf")).__contains__,  # type: ignore[operator]
                    Fallbacks(None, size), _load(last_resort, size) if last_resort.is_file() else None)
