"""The file system as an adversary: links planted or swapped in, names too long, killed and concurrent runs,
markers from a newer cnn-probe. Nothing foreign is written or deleted, nothing finished is lost, and a
refusal is one line that says what to do."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from probe.atlas.records import write_png
from probe.chunkstore import BUSY, ChunkStore, clear
from probe.cli.main import cli
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.folderlock import LINKED, lock_folder, release
from probe.gallery import Gallery, check_out_dir, write_collection_index
from probe.gallery.files import replace_text
from probe.gallery.outdir import MARKER, disk_advice, write_marker

VICTIM = "the user's own text"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside every folder cnn-probe writes, which must stay as it is."""
    path = tmp_path / "elsewhere" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM)
    return path


def _gallery(folder: Path) -> Path:
    """A tiny marked gallery written the way every command writes one."""
    def write(staging: Path) -> None:
        gallery = Gallery(staging, command="filters", title="t")
        gallery.add(Image.new("L", (4, 4)), "a.png", "a")
        gallery.write()

    return check_out_dir(folder).write(write)


# Links: a folder that is a link, a link or hard link planted under an output's name.


def test_no_write_goes_through_a_folder_that_is_a_link(tmp_path, victim):
    """An atlas's ``images`` (or any folder written into) replaced by a link to elsewhere is refused, not
    written through: the atomic writes open the folder with O_NOFOLLOW."""
    atlas = tmp_path / "atlas"
    atlas.mkdir()
    (atlas / "images").symlink_to(victim.parent, target_is_directory=True)
    with pytest.raises(OSError) as raised:
        write_png(atlas / "images" / "conv1-0000-s0.png", Image.new("RGB", (4, 4)))
    assert raised.value.errno == errno.ELOOP and raised.value.strerror == LINKED
    with pytest.raises(OSError, match="symbolic link"):
        replace_text(atlas / "images" / "index.html", "<p>page</p>")
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.txt"] and victim.read_text() == VICTIM


def test_a_link_or_hard_link_planted_under_an_outputs_name_is_replaced_never_written_through(tmp_path, victim):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").symlink_to(victim)
    os.link(victim, folder / "atlas.json")
    replace_text(folder / "index.html", "new page")
    replace_text(folder / "atlas.json", "{}")
    assert victim.read_text() == VICTIM and victim.stat().st_nlink == 1
    assert not (folder / "index.html").is_symlink() and (folder / "index.html").read_text() == "new page"
    assert (folder / "atlas.json").read_text() == "{}"


@pytest.mark.parametrize("plant", ["symlink", "hardlink"])
def test_a_gallery_never_opens_a_name_that_is_there_for_writing(tmp_path, victim, plant):
    """A file planted in a folder being filled (a link to the user's file, a hard link to it) is refused as
    a name in use: the file it leads to is never truncated or written."""
    folder = tmp_path / "staging"
    folder.mkdir()
    for name in ("a.png", "index.html"):
        (folder / name).symlink_to(victim) if plant == "symlink" else os.link(victim, folder / name)
    gallery = Gallery(folder, command="filters", title="t")
    with pytest.raises(FileExistsError):
        gallery.add(Image.new("L", (4, 4)), "a.png", "a")
    with pytest.raises(FileExistsError):
        gallery.write()
    assert victim.read_text() == VICTIM


# Names: too long for the file system.


def test_an_out_name_too_long_for_the_file_system_is_refused_before_the_run(tmp_path, monkeypatch):
    """A name the staging folder beside it could not have (it adds 18 bytes) was refused only at the save,
    after the whole run; 256 bytes and more was an OSError with a traceback."""
    from probe.cli import maximize as maximize_cli

    monkeypatch.setattr(maximize_cli, "maximize", lambda *a, **k: pytest.fail("the run started"))
    result = CliRunner().invoke(cli, ["maximize", "--layer", "conv2", "--steps", "1", "--out", str(tmp_path / ("x" * 240))])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "--out" in result.output and "at most 237 bytes" in result.output
    for name in ("é" * 128, "y" * 300, f"{'q' * 300}/out"):
        with pytest.raises(ProbeUsageError, match="bytes"):
            check_out_dir(tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    assert check_out_dir(tmp_path / ("z" * 237)).path.name == "z" * 237


def test_a_default_name_too_long_is_cut_apart_by_a_hash_and_written(tmp_path):
    """A default name from a long layer name is the command's choice: it is shortened, each one distinctly."""
    first = check_out_dir(None, tmp_path / f"maximize-m-{'a' * 300}-1")
    second = check_out_dir(None, tmp_path / f"maximize-m-{'a' * 300}-2")
    assert first.path != second.path and all(len(os.fsencode(d.path.name)) <= 237 for d in (first, second))
    landed = first.write(lambda staging: (staging / "f.txt").write_text("x"))
    assert (landed / "f.txt").read_text() == "x"


# Killed runs: their leftovers go, and only those.


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from probe.gallery import check_out_dir

    def write(staging):
        (staging / "half.png").write_bytes(b"half")
        print(staging.name, flush=True)
        time.sleep(60)

    check_out_dir(Path(sys.argv[1])).write(write)
""")


def test_a_killed_runs_staging_folder_is_removed_by_the_next_write_and_only_that(tmp_path):
    """SIGKILL mid-write leaves ``.NAME.partial-XXXXXXXX`` beside the destination; the next write there removes
    it (its marker names it, no process holds it) and keeps a live run's, and a look-alike of the user's."""
    target = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        killed = child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert killed.startswith(".out.partial-") and (tmp_path / killed / "half.png").is_file()
    live = tmp_path / ".out.partial-livelive"
    live.mkdir()
    write_marker(live, [], token=live.name)
    mine = tmp_path / ".out.partial-usersown"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    held = lock_folder(live)
    try:
        _gallery(target)
    finally:
        release(held)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, mine.name, "out"])
    assert (mine / "notes.txt").read_text() == "mine"


def test_a_killed_probe_gallerys_temporary_files_are_removed_and_force_works_again(tmp_path):
    """A temporary page a killed ``probe gallery`` left in a run's folder made that gallery look foreign to
    ``--force`` for good; the next ``probe gallery`` removes it (and its own in the root)."""
    run = _gallery(tmp_path / "run")
    for folder, name in ((run, "index.html"), (tmp_path, "index.html"), (tmp_path, MARKER)):
        (folder / f".tmp-{name}.0123abcd").write_text("half")
    (tmp_path / ".tmp-notes.txt").write_text("the user's")
    write_collection_index(tmp_path)
    assert sorted(p.name for p in run.iterdir()) == [MARKER, "a.png", "contact-sheet.png", "index.html", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cnn-probe", ".tmp-notes.txt", "index.html", "run"]
    assert check_out_dir(run, force=True).force


# Two runs at once.


def test_probe_gallery_refuses_while_another_writes_the_same_index(tmp_path):
    _gallery(tmp_path / "run")
    held = lock_folder(tmp_path)
    try:
        with pytest.raises(ProbeRuntimeError, match="another probe gallery is writing .* run this one again"):
            write_collection_index(tmp_path)
        assert not (tmp_path / "index.html").exists()
    finally:
        release(held)
    assert write_collection_index(tmp_path)[1] == 1


def _chunk(folder: Path, name: str) -> Path:
    path = folder / name
    torch.save({"key": name[:16]}, path)
    return path


def test_two_runs_keeping_chunks_in_one_folder_never_delete_each_others(tmp_path):
    """A second run (another process: here another descriptor's lock) into the same chunk folder deleted the
    first run's chunks of another request and its temporary file mid-write, and its clear() all the rest."""
    folder = tmp_path / ".out.chunks"
    folder.mkdir()
    theirs = [_chunk(folder, "0123456789abcdef-000000-000001.pt"), _chunk(folder, ".tmp-0123456789abcdef-000002-000003.pt.0123abcd")]
    held = lock_folder(folder)
    try:
        store = ChunkStore(folder, "fedcba9876543210")
        assert store.failed is not None and BUSY in store.failed and store.discarded == 0
        store.save(slice(0, 2), {"final": torch.zeros(1)})
        clear(folder)
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in theirs)
    finally:
        release(held)
    store = ChunkStore(folder, "fedcba9876543210")  # the other run is gone: its leftovers are provably stale
    assert store.failed is None and store.discarded == 1 and list(folder.iterdir()) == []
    store.save(slice(0, 2), {"final": torch.zeros(1)})
    assert store.load(slice(0, 2)) is not None
    store.clear()
    assert not folder.exists()


def test_a_chunk_folder_that_is_a_link_keeps_no_chunks_and_touches_nothing_there(tmp_path, victim):
    folder = tmp_path / ".out.chunks"
    folder.symlink_to(victim.parent, target_is_directory=True)
    store = ChunkStore(folder, "fedcba9876543210")
    store.save(slice(0, 1), {"final": torch.zeros(1)})
    assert store.failed is not None and "symbolic link" in store.failed
    clear(folder)
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim.txt"] and folder.is_symlink()


# Markers from a newer cnn-probe, and disks that refuse.


def test_a_newer_cnn_probe_marker_is_refused_in_words_and_kept(tmp_path):
    newer = json.dumps({"format": 2, "tool": "cnn-probe", "kind": "index", "files": ["index.html"]})
    (tmp_path / MARKER).write_text(newer)
    (tmp_path / "index.html").write_text("<p>a newer page</p>")
    with pytest.raises(ProbeUsageError, match="newer cnn-probe .* format 2"):
        write_collection_index(tmp_path)
    run = _gallery(tmp_path / "run")
    (run / MARKER).write_text(newer.replace('"index"', '"gallery"'))
    with pytest.raises(ProbeUsageError, match="newer cnn-probe"):
        check_out_dir(run, force=True)
    assert (tmp_path / MARKER).read_text() == newer and (tmp_path / "index.html").read_text() == "<p>a newer page</p>"


def test_a_file_over_the_size_limit_says_how_to_raise_it():
    assert "ulimit -f" in disk_advice(errno.EFBIG)


def test_a_caption_of_any_length_or_character_stays_in_its_cell():
    """A label with no space wider than its cell (a long layer or class name) was drawn over the next cells,
    control characters (NUL, newlines) as boxes, and a caption or title of a megabyte took seconds."""
    from probe.gallery.sheet import _wrap, contact_sheet, font

    face = font(12)
    for caption in ("k" * 300, "a/b\x00c\nd<script>", "word " + "x" * 1_000_000):
        lines = _wrap(caption, face, 128, 2)
        assert 1 <= len(lines) <= 2 and not any(ord(c) < 32 for line in lines for c in line)
        assert all(face.length(line) <= 128 for line in lines), lines
    sheet = contact_sheet([Image.new("L", (8, 8))] * 2, ["y" * 1_000_000, "z"], title="T" * 1_000_000, cell=64)
    assert sheet.width <= 1600


def test_an_atlas_site_is_written_through_its_own_linked_folder_never_through_a_link_inside(tmp_path, victim):
    """The atlas folder the user named may be a link (followed, as a resume through it always was); a page
    name planted as a link inside it is replaced, and the file it led to kept."""
    from probe.gallery.atlas import write_site

    unit = {"unit": 0, "page": "u.html", "synthetic": ["s.png"], "scores": [1.0], "score": 1.0, "best": 0.5,
            "median": 0.0, "ratio": 2.0, "spread": 0.0, "histogram": {"start": 0.0, "width": 1.0, "counts": [1]},
            "examples": []}
    atlas = {"settings": {"model": "m"}, "layers": [{"name": "conv1", "page": "l.html", "units": [unit],
                                                     "receptive_field": {"size": [1, 1], "stride": [1, 1]},
                                                     "above_one": 1, "median_ratio": 2.0}]}
    real = tmp_path / "real"
    real.mkdir()
    (real / "u.html").symlink_to(victim)
    (tmp_path / "named").symlink_to(real, target_is_directory=True)
    assert write_site(tmp_path / "named", atlas) == tmp_path / "named" / "index.html"
    assert sorted(p.name for p in real.iterdir()) == ["atlas.json", "index.html", "l.html", "u.html"]
    assert not (real / "u.html").is_symlink() and victim.read_text() == VICTIM


def test_a_name_that_is_not_utf8_is_written_into_pages_and_json_not_an_error_after_the_run(tmp_path):
    """A file name with a byte that is not UTF-8 (``caf\\xe9.jpg``: Python keeps it as a lone surrogate) in a
    caption, title or field raised UnicodeEncodeError at the save, after the run."""
    name = os.fsdecode(b"caf\xe9.png")

    def write(staging: Path) -> None:
        gallery = Gallery(staging, command="dream", title=f"dream {name}", fields={"image": f"/x/{name}"})
        gallery.add(Image.new("L", (4, 4)), name, f"input {name}")
        gallery.write()

    landed = check_out_dir(tmp_path / "run").write(write)
    assert "caf\\xe9.png" in (landed / "index.html").read_text(encoding="utf-8")
    assert json.loads((landed / "manifest.json").read_text())["image"] == f"/x/{name}"
    replace_text(tmp_path / "page.html", f"<p>{name} \ud800</p>")
    assert (tmp_path / "page.html").read_text(encoding="utf-8") == "<p>caf\\xe9.png \\ud800</p>"
    assert write_collection_index(tmp_path)[1] == 1


@pytest.mark.parametrize("damage", [b"", b'{"format": 1, "kind": "gallery", "files": ["a.p', b"\xff\xfe", b"[1, 2]"])
def test_a_damaged_marker_is_refused_as_damaged_and_nothing_is_deleted(tmp_path, damage):
    run = _gallery(tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    (run / MARKER).write_bytes(damage)
    with pytest.raises(ProbeUsageError, match="marker cnn-probe cannot read"):
        check_out_dir(run, force=True)
    assert sorted(p.name for p in run.iterdir()) == before and (run / MARKER).read_bytes() == damage
