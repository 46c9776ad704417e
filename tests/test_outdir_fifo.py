"""A FIFO (or device) where cnn-probe reads a file of a folder it was given is never read: reading one waited
for a writer for good (``--force``, ``probe gallery``, and every run saved below a folder holding one)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from probe.errors import ProbeUsageError
from probe.gallery import write_collection_index
from probe.gallery.files import read_json_object, read_regular
from probe.gallery.html import index_above
from probe.gallery.outdir import MARKER, check_out_dir

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not hasattr(signal, "setitimer"), reason="no FIFOs here")


@contextmanager
def _within(seconds: float) -> Iterator[None]:
    """Fail, instead of hanging, when the block takes longer than ``seconds``."""
    def late(*_: object) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, late)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("name", [MARKER, "manifest.json"])
def test_force_refuses_a_folder_with_a_fifo_for_a_marker_or_manifest(tmp_path: Path, name: str) -> None:
    _fifo(tmp_path / "run" / name)
    with _within(5), pytest.raises(ProbeUsageError, match="cnn-probe did not write"):
        check_out_dir(tmp_path / "run", force=True)


def test_probe_gallery_skips_a_run_whose_manifest_is_a_fifo(tmp_path: Path) -> None:
    _fifo(tmp_path / "run" / "manifest.json")
    (tmp_path / "run" / "index.html").write_text("<p>a page</p>")
    with _within(5):
        assert write_collection_index(tmp_path)[1] == 0


def test_a_fifo_above_a_run_is_no_collection_page(tmp_path: Path) -> None:
    _fifo(tmp_path / "index.html")
    with _within(5):
        assert index_above(tmp_path / "run") is None


def test_the_readers_read_regular_files_and_links_to_them_only(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"command": "x"}))
    (tmp_path / "link.json").symlink_to(tmp_path / "a.json")
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "list.json").write_text("[1]")
    (tmp_path / "latin.json").write_bytes(b'{"caf\xe9": 1}')
    with _within(5):
        assert read_json_object(tmp_path / "a.json") == read_json_object(tmp_path / "link.json") == {"command": "x"}
        assert [read_json_object(tmp_path / name) for name in ("deep.json", "list.json", "latin.json", "none.json")] \
            == [None] * 4
        assert read_regular(_fifo(tmp_path / "fifo")) is None and read_regular(tmp_path) is None
        assert read_regular("/dev/zero", 4) is None and read_regular(tmp_path / "a.json", 3) == b'{"c'
