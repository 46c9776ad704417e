"""A run killed (SIGKILL) at any file-system call: the next run finds a whole gallery and loses nothing.

Each kill is real: a forked child SIGKILLs itself at the n-th call of one function (``os.rename``, the
clean-up of the old gallery, ...), so no ``except``/``finally`` of cnn-probe runs. The parent then checks
what the next run sees, after :func:`probe.gallery.outdir.recover`: the old gallery or the new one, whole,
no hidden folder beside it, every file of the user's as it was, also those named like cnn-probe's own.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from probe.chunkstore import ChunkStore
from probe.errors import ProbeUsageError
from probe.folderlock import lock_folder, release
from probe.gallery import MARKER, check_out_dir, write_collection_index
from probe.gallery import outdir
from probe.gallery.files import followed, is_temporary
from probe.gallery.outdir import foreign_files, read_marker


def _gallery(version: str) -> Callable[[Path], None]:
    """A writer of a small gallery whose every file says ``version``."""
    def write(folder: Path) -> None:
        for name in ("a.png", "b.png", "c.png", "index.html"):
            (folder / name).write_text(f"{version} {name}")
        (folder / "manifest.json").write_text(json.dumps({"command": "test", "version": version, "items": []}))
    return write


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}


def _whole(folder: Path, version: str) -> bool:
    """``folder`` holds the gallery of ``version``, every file of it and nothing else, its marker listing them."""
    marker = read_marker(folder, "gallery")
    files = _files(folder)
    return (marker is not None and not foreign_files(folder, marker) and set(marker["files"]) == set(files)
            and len(files) == 5 and all(text.startswith(f"{version} ") or f'"{version}"' in text
                                        for text in files.values()))


def _beside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def _killed(module: object, name: str, nth: int, run: Callable[[], object]) -> None:
    """Run ``run()`` in a forked child that SIGKILLs itself at its ``nth`` call of ``module.name``."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            real, calls = getattr(module, name), []

            def kill_at_nth(*args, **kwargs):
                calls.append(args)
                if len(calls) == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(*args, **kwargs)

            setattr(module, name, kill_at_nth)
            run()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"not killed (status {status})"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    check_out_dir(folder).write(_gallery("old"))
    return folder


# 1. --force: the old gallery swapped out and being deleted when the run is killed.


@pytest.mark.parametrize("call, nth", [("_delete_listed", 1), ("unlink", 2), ("unlink", 5), ("rmdir", 1)])
def test_a_force_killed_while_deleting_the_old_gallery_leaves_nothing_the_next_run_keeps(old, monkeypatch, call, nth):
    """The swapped-out old gallery stayed as ``.out.partial-*`` for good (its marker's id is not its name), or
    an empty one once its marker was gone."""
    module = outdir if call.startswith("_") else os
    _killed(module, call, nth, lambda: check_out_dir(old, force=True).write(_gallery("new")))
    assert _whole(old, "new")
    check_out_dir(old, force=True)
    assert _beside(old) == [] and _whole(old, "new")


def test_a_swap_without_an_atomic_exchange_killed_between_its_renames_puts_the_old_gallery_back(old, monkeypatch):
    """Where the system has no RENAME_EXCHANGE, a kill between the renames left no gallery at ``out`` at all."""
    monkeypatch.setattr(outdir, "_exchange", lambda first, second: False)
    _killed(os, "rename", 2, lambda: check_out_dir(old, force=True).write(_gallery("new")))  # before the 2nd
    assert not old.exists()
    check_out_dir(old, force=True).write(_gallery("newer"))
    assert _beside(old) == [] and _whole(old, "newer")


def test_a_swap_without_an_atomic_exchange_killed_after_the_new_gallery_moved_in_deletes_the_old(old, monkeypatch):
    monkeypatch.setattr(outdir, "_exchange", lambda first, second: False)
    _killed(os, "rename", 3, lambda: check_out_dir(old, force=True).write(_gallery("new")))
    outdir.recover(old)
    assert _beside(old) == [] and _whole(old, "new")


# 2. --force into a folder that stays itself (--out ., a mount point): entry by entry.


@pytest.mark.parametrize("call, nth, version", [
    ("rename", 1, "old"), ("rename", 3, "old"), ("rename", 6, "old"),  # old entries moving out (6th: the marker)
    ("_move_new", 1, "new"), ("_move_new", 4, "new"), ("_move_new", 6, "new"),  # new ones moving in (6th: marker)
    ("_delete_listed", 1, "new"),
])
def test_a_force_into_a_folder_in_use_killed_mid_way_is_finished_or_undone(old, monkeypatch, call, nth, version):
    """A kill while entries moved left ``out`` half old, half new or empty and the rest in ``.out.old-*``: the
    next run refused the folder as foreign, and the old gallery's files were hidden for good."""
    monkeypatch.setattr(outdir, "_in_use", lambda folder: True)
    module = outdir if call.startswith("_") else os
    _killed(module, call, nth, lambda: check_out_dir(old, force=True).write(_gallery("new")))
    destination = check_out_dir(old, force=True)  # recovers first
    assert _beside(old) == [] and _whole(old, version)
    destination.write(_gallery("newer"))
    assert _beside(old) == [] and _whole(old, "newer")


# 3. A folder of the user's that was empty (kept itself: the gallery's entries move into it).


@pytest.mark.parametrize("nth", [1, 2, 4, 6])
def test_a_gallery_killed_while_moving_into_a_users_empty_folder_is_moved_in_whole(tmp_path, nth):
    """The entries already moved had no marker beside them: the folder looked foreign, and the staging folder
    holding the rest was deleted as a killed run's. (Killed before the first entry moved: left empty.)"""
    folder = tmp_path / "mine"
    folder.mkdir()
    _killed(outdir, "_move_new", nth, lambda: check_out_dir(folder).write(_gallery("new")))
    outdir.recover(folder)
    assert _beside(folder) == [] and (_whole(folder, "new") if nth > 1 else not any(folder.iterdir()))


# 4. Killed before anything was moved.


def test_a_staging_folder_killed_before_its_first_marker_is_removed(tmp_path):
    """mkdtemp had made it and the marker's temporary file was open: no marker, so it stayed for good."""
    folder = tmp_path / "out"
    _killed(os, "replace", 1, lambda: check_out_dir(folder).write(_gallery("new")))
    [staging] = _beside(folder)
    assert [is_temporary(name, MARKER) for name in os.listdir(tmp_path / staging)] == [True]
    check_out_dir(folder).write(_gallery("new"))
    assert _beside(folder) == [] and _whole(folder, "new")


# 5. What only looks like cnn-probe's, and what a live run holds, is never touched.


def test_folders_named_like_cnn_probes_own_but_not_provably_a_killed_runs_are_kept(old):
    mine = {".out.partial-abcdefgh": "notes.txt", ".out.old-abcdefgh": "notes.txt", ".out.swap-abcdefgh": "a.png",
            ".out.partial-abcdefgh-x": "notes.txt", ".out.partial-abcdefg": ".cnn-probe"}
    for name, file in mine.items():
        (old.parent / name).mkdir()
        (old.parent / name / file).write_text("the user's")
    live = old.parent / ".out.partial-livelive"
    live.mkdir()
    (live / "a.png").write_text("being written")
    held = lock_folder(live)
    try:
        check_out_dir(old, force=True).write(_gallery("new"))
    finally:
        release(held)
    assert _whole(old, "new") and _beside(old) == sorted([*mine, live.name])
    assert all((old.parent / name / file).read_text() == "the user's" for name, file in mine.items())


def test_probe_gallery_removes_its_own_temporary_files_and_keeps_a_users_that_look_alike(tmp_path):
    """Every ``.tmp-index.html.*`` was removed as a killed ``probe gallery``'s: the user's ``.bak`` too."""
    run = tmp_path / "run"
    check_out_dir(run).write(_gallery("run"))
    ours = [tmp_path / ".tmp-index.html.0123abcd", tmp_path / f".tmp-{MARKER}.89abcdef"]
    mine = [tmp_path / ".tmp-index.html.bak", tmp_path / ".tmp-index.html.0123abcd.orig", run / ".tmp-notes"]
    for path in ours + mine:
        path.write_text("x")
    write_collection_index(tmp_path)
    assert not any(path.exists() for path in ours) and all(path.read_text() == "x" for path in mine)


# 6. The chunk store writes like the gallery's files.


def test_a_chunk_save_killed_mid_write_leaves_only_its_temporary_file_which_the_next_store_removes(tmp_path):
    folder = tmp_path / "chunks"
    ChunkStore(folder, "0123456789abcdef").save(slice(0, 2), {"final": torch.zeros(2)})
    _killed(torch, "save", 1, lambda: ChunkStore(folder, "0123456789abcdef").save(slice(2, 4), {"final": torch.ones(2)}))
    [temporary] = [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert is_temporary(temporary, "0123456789abcdef-000002-000003.pt")
    store = ChunkStore(folder, "0123456789abcdef")
    assert sorted(p.name for p in folder.iterdir()) == ["0123456789abcdef-000000-000001.pt"]
    assert store.load(slice(0, 2)) is not None and store.load(slice(2, 4)) is None
    assert (folder / "0123456789abcdef-000000-000001.pt").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_followed_follows_the_named_folder_once_and_nothing_else(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    assert followed(tmp_path / "link") == real.resolve() and followed(real) == real
    assert followed(tmp_path / "link" / "x") == tmp_path / "link" / "x"


def test_a_default_name_a_killed_run_claimed_and_left_empty_is_used_not_skipped(tmp_path, monkeypatch):
    """A kill between claiming the default name (mkdir) and renaming onto it left an empty folder, and every
    later run wrote NAME-2, NAME-3, ... beside it."""
    monkeypatch.chdir(tmp_path)
    default = Path("runs") / "test-run"
    _killed(outdir, "_move_into_claimed", 1, lambda: check_out_dir(None, default).write(_gallery("new")))
    assert (tmp_path / default).is_dir() and not any((tmp_path / default).iterdir())
    landed = check_out_dir(None, default).write(_gallery("new"))
    assert landed == default and _whole(tmp_path / default, "new")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["test-run"]


def test_a_run_gallery_holding_a_killed_writers_temporary_page_can_be_replaced_again(old):
    """``probe gallery`` killed while it added a run page's link back left ``.tmp-index.html.XXXXXXXX`` in the
    run's folder, and ``--force`` refused that folder as holding files cnn-probe did not write."""
    (old / ".tmp-index.html.0123abcd").write_text("half a page")
    check_out_dir(old, force=True).write(_gallery("new"))
    assert _whole(old, "new") and _beside(old) == []
    (old / ".tmp-index.html.bak").write_text("the user's")
    with pytest.raises(ProbeUsageError, match="did not write"):
        check_out_dir(old, force=True)
    assert (old / ".tmp-index.html.bak").read_text() == "the user's"
