"""Galleries: files written, manifest content, escaped HTML with working links, no silent overwrite."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image

from probe.errors import ProbeUsageError
from probe.gallery import Gallery, check_out_dir, contact_sheet, write_collection_index
from probe.gallery.html import SCRIPT
from probe.gallery.outdir import write_marker


class LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def make_gallery(folder: Path, caption: str = "conv2:0") -> Gallery:
    gallery = Gallery(folder, command="maximize", title="conv2 <of> digits", version="0.1.0",
                      fields={"model": "digits", "layer": "conv2"})
    for unit in range(3):
        gallery.add(Image.new("L", (28, 28), unit * 80), f"conv2-{unit:03d}.png",
                    caption if unit == 0 else f"conv2:{unit}", unit=unit, score=1.5 * unit)
    return gallery


def test_gallery_writes_images_sheet_page_and_manifest(tmp_path):
    make_gallery(tmp_path).write(steps=10, seed=0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["command"] == "maximize" and manifest["model"] == "digits" and manifest["steps"] == 10
    assert [item["unit"] for item in manifest["items"]] == [0, 1, 2]
    assert manifest["items"][2] == {"file": "conv2-002.png", "caption": "conv2:2", "unit": 2, "score": 3.0}
    for item in manifest["items"]:
        assert Image.open(tmp_path / item["file"]).size == (28, 28)
    assert manifest["sheets"] == ["contact-sheet.png"]
    assert Image.open(tmp_path / "contact-sheet.png").width > 3 * 28


def test_html_escapes_captions_and_links_only_to_existing_files(tmp_path):
    make_gallery(tmp_path, caption='<script>alert("x")</script> & more').write()
    page = (tmp_path / "index.html").read_text()
    assert "&lt;script&gt;" in page and "&lt;of&gt;" in page
    parser = LinkParser()
    parser.feed(page)
    assert parser.scripts == 1 and page.count("<script>") == 1 and f"<script>{SCRIPT}</script>" in page  # ours only
    assert parser.links and all((tmp_path / link).exists() for link in parser.links)


def test_sections_get_their_own_sheets(tmp_path):
    gallery = Gallery(tmp_path, command="activations", title="t")
    gallery.add(Image.new("RGB", (8, 8)), "a.png", "a", section="conv1")
    gallery.add(Image.new("RGB", (8, 8)), "b.png", "b", section="layer1.0/conv")
    manifest = json.loads(gallery.write().read_text())
    assert manifest["sheets"] == ["contact-sheet-conv1.png", "contact-sheet-layer1.0-conv.png"]


def test_non_finite_numbers_become_null(tmp_path):
    gallery = make_gallery(tmp_path)
    gallery.write(loss=float("nan"))
    assert json.loads((tmp_path / "manifest.json").read_text())["loss"] is None


def test_contact_sheet_grid_size():
    sheet = contact_sheet([Image.new("L", (10, 10))] * 5, ["a"] * 5, columns=2, cell=20)
    assert sheet.mode == "RGB" and sheet.width == 2 * (20 + 4) + 4
    with pytest.raises(ValueError):
        contact_sheet([])


def test_out_dir_is_never_overwritten_silently(tmp_path):
    default = tmp_path / "runs" / "maximize-digits-conv2"
    first = check_out_dir(None, default).write(lambda folder: (folder / "keep.png").write_bytes(b"x"))
    second = check_out_dir(None, default).write(lambda folder: make_gallery(folder).write())
    assert first == default and second.name == "maximize-digits-conv2-2" and (first / "keep.png").exists()
    with pytest.raises(ProbeUsageError, match="already holds files"):
        check_out_dir(first, default)
    (first / "notes.txt").write_text("mine")
    with pytest.raises(ProbeUsageError, match="did not write"):
        check_out_dir(first, default, force=True)
    assert (first / "keep.png").exists() and (first / "notes.txt").exists()
    replaced = check_out_dir(second, default, force=True).write(lambda folder: (folder / "new.png").write_bytes(b"y"))
    assert replaced == second and sorted(p.name for p in second.iterdir()) == [".cnn-probe", "new.png"]


def test_clashing_file_names_get_distinct_files(tmp_path):
    gallery = Gallery(tmp_path, command="activations", title="t")
    files = [gallery.add(Image.new("L", (4, 4), value), "a-b-000.png", name, section=name)["file"]
             for value, name in ((0, "a<b"), (255, "a>b"), (128, "A-B"))]
    gallery.write()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert files == ["a-b-000.png", "a-b-000-2.png", "a-b-000-3.png"] == [item["file"] for item in manifest["items"]]
    assert len(set(manifest["sheets"])) == 3 and all((tmp_path / f).is_file() for f in files + manifest["sheets"])
    assert [Image.open(tmp_path / f).getpixel((0, 0)) for f in files] == [0, 255, 128]


def test_collection_index_links_every_run(tmp_path):
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        make_gallery(folder).write()
    page, count = write_collection_index(tmp_path)
    assert count == 2
    parser = LinkParser()
    parser.feed(page.read_text())
    assert {"a/index.html", "b/index.html", "a/conv2-000.png"} <= set(parser.links)
    assert all((tmp_path / link).exists() for link in parser.links)
    assert re.search(r"2 run\(s\)", page.read_text())


# Files written in place (the atlas site, probe gallery's index and marker): whole or not at all.


def _atlas(model: str) -> dict:
    unit = {"unit": 0, "page": "u0.html", "synthetic": ["s.png"], "scores": [1.0], "score": 1.0, "best": 0.5,
            "median": 0.0, "ratio": 2.0, "spread": 0.0, "histogram": {"start": 0.0, "width": 1.0, "counts": [1]},
            "examples": []}
    return {"settings": {"model": model}, "layers": [{"name": "conv1", "page": "l.html", "units": [unit],
                                                      "receptive_field": {"size": [3, 3], "stride": [1, 1]},
                                                      "above_one": 1, "median_ratio": 2.0}]}


def fill_disk_after(monkeypatch: pytest.MonkeyPatch, files: int) -> None:
    """The disk fills during the write of file number ``files`` + 1 (counted from 0): half its text lands, then ENOSPC."""
    import errno
    import io

    import probe.gallery.files as files_module

    opened = [0]
    real = files_module.os.fdopen

    def fdopen(handle: int, *args: object, **kwargs: object) -> io.TextIOBase:
        stream = real(handle, *args, **kwargs)
        opened[0] += 1
        if opened[0] <= files:
            return stream
        write = stream.write

        def half_then_full(text: str) -> int:
            write(text[: len(text) // 2])
            stream.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        stream.write = half_then_full  # type: ignore[method-assign]
        return stream

    monkeypatch.setattr(files_module.os, "fdopen", fdopen)


@pytest.mark.parametrize("fail_at", [0, 1, 2, 3])
def test_a_full_disk_never_leaves_half_an_atlas_page(tmp_path, monkeypatch, fail_at):
    from probe.gallery.atlas import write_site

    site, fresh = tmp_path / "site", tmp_path / "fresh"
    site.mkdir(), fresh.mkdir()
    write_site(site, _atlas("old"))
    write_site(fresh, _atlas("new"))
    old, new = ({p.name: p.read_text() for p in folder.iterdir()} for folder in (site, fresh))
    fill_disk_after(monkeypatch, fail_at)
    with pytest.raises(OSError, match="No space"):
        write_site(site, _atlas("new"))
    after = {p.name: p.read_text() for p in site.iterdir()}
    assert set(after) == set(old)  # no temporary file left
    assert all(text in (old[name], new[name]) for name, text in after.items())  # each file old or new, whole
    assert sum(after[name] == new[name] for name in after) == fail_at


@pytest.mark.parametrize("fail_at", [0, 1])
def test_a_full_disk_during_probe_gallery_does_not_wedge_the_next_run(tmp_path, monkeypatch, fail_at):
    """The index's marker and page are replaced whole, the marker first: after a failure the next run rewrites both."""
    (tmp_path / "run").mkdir()
    make_gallery(tmp_path / "run").write()
    write_marker(tmp_path / "run", [p.name for p in (tmp_path / "run").iterdir()], "gallery")
    write_collection_index(tmp_path)
    fill_disk_after(monkeypatch, fail_at)
    with pytest.raises(Exception, match="No space"):
        write_collection_index(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cnn-probe", "index.html", "run"]
    page, runs = write_collection_index(tmp_path)
    assert runs == 1 and page.read_text().rstrip().endswith("</html>")


def test_probe_gallery_on_a_full_disk_says_so_in_one_line_without_an_option_it_lacks(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from probe.cli.main import cli

    (tmp_path / "run").mkdir()
    make_gallery(tmp_path / "run").write()
    fill_disk_after(monkeypatch, 0)
    result = CliRunner().invoke(cli, ["gallery", str(tmp_path)])
    assert result.exit_code == 1 and "No space" in result.output and "free some space" in result.output
    assert "--out" not in result.output and len(result.output.strip().splitlines()) == 1  # probe gallery has no --out


def test_file_names_from_layer_names_are_safe_and_distinct(tmp_path):
    """Names callers build from layer names (ONNX's ``conv1/Conv``, TorchScript's ``layer1.0/Add``, a user's
    unicode or HTML) become one flat, safe file each; the manifest and the marker name exactly the files written."""
    gallery = Gallery(tmp_path, command="activations", title="<b>names</b>")
    names = ["conv1/Conv-000.png", "../escape.png", ".hidden.png", "a <script>\"é'.png", "x" * 300 + ".png",
             "conv1\\Conv-000.png", "conv1-Conv-000.png", "CONV1-conv-000.png"]
    files = [gallery.add(Image.new("L", (4, 4), 10 * i), name, name)["file"] for i, name in enumerate(names)]
    gallery.write()
    assert len(set(f.casefold() for f in files)) == len(names)
    assert all("/" not in f and "\\" not in f and not f.startswith(".") and len(f.encode()) < 120 for f in files)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)
    on_disk = sorted(p.name for p in tmp_path.iterdir())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted([*files, *manifest["sheets"], "index.html", "manifest.json"]) == on_disk
    assert [item["file"] for item in manifest["items"]] == files and [item["caption"] for item in manifest["items"]] == names
    page = (tmp_path / "index.html").read_text()
    assert "<script>\"" not in page and "<b>names" not in page


def test_probe_gallery_reads_any_manifest_without_failing(tmp_path):
    """Manifests that are old, edited by hand or another tool's: never a crash; a card shows only files that exist
    inside the run's folder, every string escaped; folders without a page or a JSON object are not listed."""
    bad = {
        "strings": {"command": "maximize", "items": ["a.png"]},
        "no file": {"command": "maximize", "items": [{"caption": "x"}, {"file": 3}], "extras": [{}], "sheets": "x"},
        "not lists": {"command": ["a"], "items": {"a": 1}, "extras": 5, "options": [1], "created": 12},
        "outside": {"command": "dream", "items": [{"file": "../../secret.png"}, {"file": "/etc/passwd"}]},
        "html": {"command": "<script>alert(1)</script>", "model": "<b>m</b>",
                 "items": [{"file": "x\" onerror=\"alert(1).png", "caption": "<img src=x onerror=alert(1)>"}]},
    }
    for name, manifest in bad.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))
        (tmp_path / name / "index.html").write_text("<html></html>")
    (tmp_path / "html" / "x\" onerror=\"alert(1).png").write_bytes(b"not shown unless it exists")
    for name, text in (("no page", json.dumps({"command": "maximize", "items": []})), ("broken", "{"), ("list", "[1]")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(text)
    (tmp_path / "atlas").mkdir()
    (tmp_path / "atlas" / "atlas.json").write_text(json.dumps({"command": "atlas", "settings": [], "layers": [
        {"units": [{"synthetic": "s.png"}, "x"]}, 3]}))
    (tmp_path / "atlas" / "index.html").write_text("<html></html>")
    page, runs = write_collection_index(tmp_path)
    assert runs == 6
    text = page.read_text()
    assert "<script>alert(1)" not in text and "<b>m</b>" not in text and "onerror=\"" not in text
    assert "secret" not in text and "/etc/passwd" not in text
    assert "no%20page" not in text and "broken/" not in text
    links = LinkParser()
    links.feed(text)
    assert all((tmp_path / unquote(link)).exists() for link in links.links if not link.startswith("#"))
