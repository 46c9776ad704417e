"""The docs' pictures and links: every one the Markdown names exists, and every picture says how it was made."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "benchmarks" / "README.md"]
GALLERY = ROOT / "docs" / "gallery"


def _links(page: Path) -> list[str]:
    """The relative targets of a Markdown page's links and images (addresses and anchors left out)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [unquote(t.split("#")[0]) for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_every_link_and_picture_of_the_docs_exists():
    missing = [f"{page.relative_to(ROOT)}: {target}" for page in PAGES for target in _links(page)
               if not (page.parent / target).exists()]
    assert not missing, missing


def test_every_picture_in_docs_gallery_names_its_command():
    """docs/gallery/README.md names each picture (a maximize folder's sheet and manifest by the folder's pattern)."""
    table = (GALLERY / "README.md").read_text(encoding="utf-8")
    pictures = [p for p in GALLERY.rglob("*") if p.suffix in (".png", ".gif")]
    assert pictures
    undocumented = [p.relative_to(GALLERY).as_posix() for p in pictures
                    if f"`{p.relative_to(GALLERY).as_posix()}`" not in table
                    and not (p.parent.parent.name == "maximize" and "`maximize/*/contact-sheet.png`" in table)]
    assert not undocumented, undocumented
    for line in table.splitlines():
        copied = re.findall(r"cp (\S+) (docs/gallery/\S+?)`", line)
        for source, target in copied:  # the command copies the picture the row names
            assert f"`{Path(target).relative_to('docs/gallery').as_posix()}`" in line, line
