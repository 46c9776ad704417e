"""What counts as an empty folder a gallery may be moved into: one rule (``_empty_folder``) wherever it is asked."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from probe.gallery.outdir import check_out_dir


def test_a_destination_that_cannot_be_listed_at_the_save_gets_the_gallery_beside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The user's empty folder could not be listed when the gallery was moving in (made unreadable, or gone):
    the write failed and discarded the finished gallery, where a changed folder gets it under a sibling name."""
    target = tmp_path / "run"
    target.mkdir()
    destination = check_out_dir(target)
    listdir = os.listdir

    def unlistable(path: str | os.PathLike[str] = ".") -> list[str]:
        if os.fspath(path) == str(target):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return listdir(path)

    def writer(staging: Path) -> None:
        (staging / "a.png").write_bytes(b"finished")
        monkeypatch.setattr(os, "listdir", unlistable)

    landed = destination.write(writer)
    monkeypatch.undo()
    assert landed == tmp_path / "run-2" and (landed / "a.png").read_bytes() == b"finished"
    assert "could not take the gallery" in capsys.readouterr().err and os.listdir(target) == []


def test_a_link_to_an_empty_folder_is_not_taken_for_a_free_name(tmp_path: Path) -> None:
    """A default name held by a link to an empty folder is skipped, the link and its folder kept."""
    (tmp_path / "elsewhere").mkdir()
    destination = check_out_dir(None, tmp_path / "run-1")  # a default name: run-1, then run-1-2, ...
    (tmp_path / "run-1").symlink_to(tmp_path / "elsewhere")
    landed = destination.write(lambda staging: (staging / "a.png").write_bytes(b"x"))
    assert landed == tmp_path / "run-1-2" and (tmp_path / "run-1").is_symlink() and os.listdir(tmp_path / "elsewhere") == []
