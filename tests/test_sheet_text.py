"""Contact-sheet text in any script: no character drawn as its font's empty box, every cut measured in the
fonts actually drawn, and a visible placeholder where no font has a character."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from probe.gallery import sheet, typeface as faces
from probe.gallery.sheet import _wrap, contact_sheet, font
from probe.gallery.typeface import LAST_RESORT, PLACEHOLDER, Fallbacks, Typeface, coverage

BOX = "\u0378"
"""An unassigned code point: every font draws its empty box (.notdef) for it."""

LABELS = ("café", "Straße", "Ελλάδα", "Москва", "a=\u22123.4", "日本", "😀", "שלום")
"""Class labels from an id2label or --labels, and the gallery's own minus sign (U+2212)."""

MPL_FONTS = Path(faces._own_fonts() or ".")


def caption_pixels(caption: str) -> np.ndarray:
    """The caption strip of a one-image sheet captioned ``caption``."""
    drawn = contact_sheet([Image.new("L", (8, 8), 255)], [caption], cell=64)
    return np.asarray(drawn)[64 + 4:, :, :]


@pytest.mark.parametrize("label", LABELS)
def test_no_character_of_a_label_is_drawn_as_the_empty_box(label):
    """Pillow's default font drew "é", Greek, Cyrillic, CJK and even the minus sign as the same box as an
    unassigned code point."""
    box = caption_pixels(BOX)
    for character in {c for c in label if not c.isascii()}:
        assert not np.array_equal(caption_pixels(character), box), character


@pytest.mark.parametrize("label", LABELS + ("e\u0301 \u200d\ufe0f ❤️ ᶁ", BOX))
def test_every_run_is_drawn_in_a_font_that_has_its_characters(label):
    face = font(12)
    for run_font, run in face.runs(label):
        if run_font is face.last_resort:
            assert not any(c.isspace() for c in run), "the last resort draws a space as a box"
            continue
        covers = face.covers[face.fonts.index(run_font)]
        assert all(covers(ord(c)) for c in run), (label, run)


def test_a_character_the_primary_lacks_comes_from_the_first_fallback_that_has_it():
    dejavu, stix = str(MPL_FONTS / "DejaVuSans.ttf"), str(MPL_FONTS / "STIXGeneral.ttf")
    if 0x1D81 not in coverage(stix) or 0x1D81 in coverage(dejavu):
        pytest.skip("this matplotlib's fonts do not differ on U+1D81")
    primary = ImageFont.truetype(dejavu, 12)
    face = Typeface(primary, coverage(dejavu).__contains__, Fallbacks([str(MPL_FONTS / "missing.ttf"), stix], 12))
    runs = face.runs("a ᶁ b")
    assert [run for _, run in runs] == ["a ", "ᶁ ", "b"]  # the space after ᶁ stays in its run
    assert runs[0][0] is primary and runs[2][0] is primary and runs[1][0].path == stix
    assert face.length("a ᶁ b") == pytest.approx(sum(f.getlength(r) for f, r in runs))
    # nobody has 日 and there is no last resort: a visible placeholder in the primary, never a box
    assert face.runs("x日") == [(primary, "x" + PLACEHOLDER)]


def test_a_character_no_font_has_is_drawn_by_the_last_resort_and_differs_from_the_box():
    face = font(12)
    if face.last_resort is None:
        pytest.skip("this matplotlib ships no Last Resort font")
    assert face._index(BOX) == LAST_RESORT
    canvas = [Image.new("RGB", (40, 20), "white") for _ in range(2)]
    face.draw(ImageDraw.Draw(canvas[0]), (2, 2), BOX, (0, 0, 0))
    ImageDraw.Draw(canvas[1]).text((2, 2), BOX, font=face.primary, fill=(0, 0, 0))
    assert not np.array_equal(np.asarray(canvas[0]), np.asarray(canvas[1]))


def test_every_wrapped_line_with_its_ellipsis_fits_the_cell():
    """The last line was cut by one character and "…" appended unmeasured: 42 of 300 such captions drew past
    their cell."""
    face, rng = font(12), random.Random(0)
    for _ in range(100):
        caption = " ".join("".join(rng.choice("il.,:;!|abWMé日Ω") for _ in range(rng.randint(1, 8)))
                           for _ in range(12))
        lines = _wrap(caption, face, 128, 2)
        assert len(lines) == 2 and lines[-1].endswith("…") and all(face.length(line) <= 128 for line in lines)


def test_a_long_title_in_any_script_is_cut_to_fit_and_a_narrow_sheet_widens_for_it():
    title = "Ελλάδα 日本 " * 400
    drawn = contact_sheet([Image.new("L", (8, 8))], title=title, cell=32)
    assert drawn.width <= sheet.TITLE_WIDTH
    short = contact_sheet([Image.new("L", (8, 8))], title="Ελλάδα 日本", cell=32)
    assert short.width >= font(int(max(10, 32 // 10) * 1.5)).length("Ελλάδα 日本")


def test_without_matplotlibs_fonts_the_default_font_draws_question_marks_not_boxes(monkeypatch):
    faces.typeface.cache_clear()
    monkeypatch.setattr(faces, "_own_fonts", lambda: None)
    try:
        face = font(12)
        assert face.runs("café 日") == [(face.primary, "caf? ?")]
        assert _wrap("word " * 100, face, 64, 2)[-1].endswith("...")
        contact_sheet([Image.new("L", (8, 8))], ["Ελλάδα"], title="日本")
    finally:
        faces.typeface.cache_clear()
