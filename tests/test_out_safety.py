"""Output folders never lose data: --force, failed and interrupted runs, foreign files, races, full disks.

Every case goes through the CLI (click's CliRunner) or ``Result.save``, and checks
byte for byte that what was on disk before is still there, and that no staging
or empty folder is left behind. Runs are cheap (``probe filters`` on the zoo,
``probe maximize`` on a tiny net for 2 steps); a long or failing run is the real
command with its optimization replaced by one that fails or is interrupted.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import probe
from probe.cli import maximize as maximize_cli
from probe.cli import train as train_cli
from probe.cli.main import cli
from probe.errors import ProbeRuntimeError, ProbeUsageError

TINY_MAXIMIZE = ["maximize", "--model", "tinynets:tiny", "--size", "16", "--layer", "conv2", "--steps", "2"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own folder, so default names (runs/...) never reach the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes (relative POSIX paths)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    """Staging folders and empty folders in ``parent``: what a failed write must not leave."""
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or (p.is_dir() and not any(p.iterdir())))


def one_error_line(result, exit_code: int) -> str:
    """Assert a clean CLI failure: ``exit_code``, no traceback, exactly one ``Error:`` line; return that line."""
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


def filters_gallery(runner: CliRunner, out: Path, *extra: str):
    """``probe filters --out OUT``: a real gallery in under a second."""
    return runner.invoke(cli, ["filters", "--out", str(out), *extra])


@pytest.fixture
def old(runner: CliRunner, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A gallery written by cnn-probe in ``tmp_path/old``, and its files."""
    folder = tmp_path / "old"
    assert filters_gallery(runner, folder).exit_code == 0
    return folder, snapshot(folder)


# 1. Nothing is created before there is something to save; a failed run leaves no empty folder.


def test_a_failed_or_interrupted_run_creates_nothing(runner, in_tmp, monkeypatch):
    for failure, code in ((ProbeRuntimeError("the optimization diverged (loss is inf); lower --lr"), 1),
                          (KeyboardInterrupt(), 130)):
        def run(*args, **kwargs):
            assert not (in_tmp / "runs").exists(), "runs/ was created before there was anything to save"
            raise failure

        monkeypatch.setattr(maximize_cli, "maximize", run)
        result = runner.invoke(cli, TINY_MAXIMIZE)
        assert result.exit_code == code, result.output
        assert not (in_tmp / "runs").exists()
        result = runner.invoke(cli, [*TINY_MAXIMIZE, "--out", str(in_tmp / "mine" / "deep")])
        assert result.exit_code == code and not (in_tmp / "mine").exists()


# 2. --force swaps the new gallery in only when it is complete.


@pytest.mark.parametrize("failure", ["diverged", "interrupt", "interrupt-while-saving"])
def test_force_keeps_the_old_gallery_when_the_run_fails(runner, old, monkeypatch, failure):
    folder, before = old
    if failure == "interrupt-while-saving":
        monkeypatch.setattr(probe.gallery.Gallery, "write", lambda self, **kw: (_ for _ in ()).throw(KeyboardInterrupt()))
    else:
        error = ProbeRuntimeError("diverged") if failure == "diverged" else KeyboardInterrupt()
        monkeypatch.setattr(maximize_cli, "maximize", lambda *a, **k: (_ for _ in ()).throw(error))
    result = runner.invoke(cli, [*TINY_MAXIMIZE, "--out", str(folder), "--force"])
    assert result.exit_code == (1 if failure == "diverged" else 130), result.output
    assert snapshot(folder) == before
    assert leftovers(folder.parent) == []


def test_force_replaces_a_marked_gallery_whole(runner, old):
    folder, before = old
    result = runner.invoke(cli, [*TINY_MAXIMIZE, "--out", str(folder), "--force"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((folder / "manifest.json").read_text())
    marker = json.loads((folder / probe.gallery.MARKER).read_text())
    old_only = set(before) - {"index.html", "manifest.json", ".cnn-probe", "contact-sheet.png"}
    assert manifest["command"] == "maximize" and old_only and not old_only & set(snapshot(folder))
    assert marker["format"] == 1 and set(marker["files"]) == set(snapshot(folder)) - {".cnn-probe"}
    assert leftovers(folder.parent) == []


# 3. --force deletes only files cnn-probe listed in its marker.


@pytest.mark.parametrize("foreign", ["notes.txt", "sub/data.csv", "empty-folder/"])
def test_force_refuses_a_gallery_holding_anything_else(runner, old, foreign):
    folder, _ = old
    path = folder / foreign.rstrip("/")
    if foreign.endswith("/"):
        path.mkdir()
    else:
        path.parent.mkdir(exist_ok=True)
        path.write_text("the user's")
    before = snapshot(folder)
    line = one_error_line(filters_gallery(runner, folder, "--force"), 2)
    assert "--out" in line and foreign.split("/")[0] in line and "did not write" in line
    assert snapshot(folder) == before and path.exists()


def test_force_refuses_a_folder_that_only_looks_like_a_gallery(runner, in_tmp):
    project = in_tmp / "project"
    project.mkdir()
    (project / "manifest.json").write_text(json.dumps({"command": "build", "items": ["a"]}))
    (project / "index.html").write_text("<h1>my project</h1>")
    (project / "data.csv").write_text("1,2\n")
    before = snapshot(project)
    line = one_error_line(filters_gallery(runner, project, "--force"), 2)
    assert ".cnn-probe" in line and "delete or move it yourself" in line
    assert snapshot(project) == before
    with pytest.raises(ProbeUsageError, match="marker"):
        probe.filters(probe.load_model("digits"), "conv1").save(project, force=True)
    assert snapshot(project) == before


def test_an_unmarked_old_gallery_is_refused_with_what_to_do(runner, old):
    folder, _ = old
    (folder / probe.gallery.MARKER).unlink()
    before = snapshot(folder)
    line = one_error_line(filters_gallery(runner, folder, "--force"), 2)
    assert "no .cnn-probe marker" in line and "choose another --out" in line
    assert snapshot(folder) == before


# 4. Finished work is never discarded; default names are claimed atomically.


def _run_then(effect):
    """A stand-in for ``maximize`` that runs the real one, then ``effect()``: what happens during a run."""
    real = maximize_cli.maximize

    def run(*args, **kwargs):
        result = real(*args, **kwargs)
        effect()
        return result

    return run


@pytest.mark.parametrize("force", [False, True])
def test_an_out_that_gained_a_file_keeps_it_and_the_work_goes_beside_it(runner, in_tmp, old, monkeypatch, force):
    folder = old[0] if force else in_tmp / "fresh"
    monkeypatch.setattr(maximize_cli, "maximize", _run_then(lambda: (folder.mkdir(exist_ok=True),
                                                                        (folder / ".DS_Store").write_bytes(b"mac"))))
    result = runner.invoke(cli, [*TINY_MAXIMIZE, "--out", str(folder), *(["--force"] if force else [])])
    assert result.exit_code == 0, result.output
    sibling = folder.with_name(folder.name + "-2")
    assert (sibling / "manifest.json").is_file() and json.loads((sibling / "manifest.json").read_text())["command"] == "maximize"
    assert f"saved it to {str(sibling)!r}" in result.stderr and ".DS_Store" in result.stderr
    assert f"{sibling}/index.html" in result.stdout
    assert (folder / ".DS_Store").read_bytes() == b"mac"
    if force:  # the old gallery was not replaced: its marker no longer covers the folder
        assert {k: v for k, v in snapshot(folder).items() if k != ".DS_Store"} == old[1]
    assert leftovers(in_tmp) == []


def test_two_runs_with_the_same_default_name_both_keep_their_results(runner, in_tmp, monkeypatch):
    real = maximize_cli.maximize
    inner: list = []

    def first_run(*args, **kwargs):
        result = real(*args, **kwargs)
        monkeypatch.setattr(maximize_cli, "maximize", real)
        inner.append(CliRunner().invoke(cli, TINY_MAXIMIZE))  # a second run starts and finishes meanwhile
        return result

    monkeypatch.setattr(maximize_cli, "maximize", first_run)
    outer = runner.invoke(cli, TINY_MAXIMIZE)
    assert outer.exit_code == 0 and inner[0].exit_code == 0, (outer.output, inner[0].output)
    base = in_tmp / "runs" / "maximize-tinynets-tiny-conv2"
    assert f"gallery: {Path('runs') / 'maximize-tinynets-tiny-conv2'}/index.html" in inner[0].stdout
    assert f"gallery: {Path('runs') / 'maximize-tinynets-tiny-conv2-2'}/index.html" in outer.stdout
    assert "--out" not in outer.output
    for folder in (base, base.with_name(base.name + "-2")):
        assert json.loads((folder / "manifest.json").read_text())["command"] == "maximize"
    assert sorted(p.name for p in base.parent.iterdir()) == ["maximize-tinynets-tiny-conv2", "maximize-tinynets-tiny-conv2-2"]


def test_a_default_name_claimed_between_check_and_save_is_not_shared(in_tmp):
    from probe.gallery import check_out_dir

    default = in_tmp / "runs" / "filters-digits-conv1"
    first, second = check_out_dir(None, default), check_out_dir(None, default)  # both checked before either saves
    result = probe.filters(probe.load_model("digits"), "conv1")
    landed = [result.save(second), result.save(first)]
    assert landed == [default, default.with_name(default.name + "-2")]
    assert all((folder / "manifest.json").is_file() for folder in landed)


# 5. probe train --force never loses the old weights.


def _trained_folder(folder: Path, weights: bytes) -> None:
    from probe.gallery import check_out_dir

    def write(staging: Path) -> None:
        (staging / "digits.pt").write_bytes(weights)
        probe.gallery.Gallery(staging, command="train", title="probe train digits").write(weights="digits.pt")

    check_out_dir(folder).write(write)


def test_train_force_interrupted_keeps_the_old_weights(runner, in_tmp, monkeypatch):
    folder = in_tmp / "trained"
    state = probe.load_model("digits").module.state_dict()
    torch.save(state, in_tmp / "weights.pt")
    _trained_folder(folder, (in_tmp / "weights.pt").read_bytes())
    before = snapshot(folder)

    def interrupted(name, **kwargs):
        kwargs["progress"](1, 3, 0.5)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli.zoo, "train", interrupted)
    assert runner.invoke(cli, ["train", "digits", "--out", str(folder), "--force"]).exit_code == 130
    assert snapshot(folder) == before

    def trained(name, **kwargs):
        kwargs["progress"](1, 1, 0.5)
        return SimpleNamespace(state_dict={k: v + 1 for k, v in state.items()}, epochs=1, train_accuracy=0.5,
                               test_accuracy=0.5, seconds=0.1)

    monkeypatch.setattr(train_cli.zoo, "train", trained)
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert runner.invoke(cli, ["train", "digits", "--out", str(folder), "--force"]).exit_code == 130
    assert snapshot(folder) == before and leftovers(in_tmp) == []
    monkeypatch.undo()
    monkeypatch.chdir(in_tmp)
    monkeypatch.setattr(train_cli.zoo, "train", trained)
    result = runner.invoke(cli, ["train", "digits", "--out", str(folder), "--force"])
    assert result.exit_code == 0, result.output
    loaded = torch.load(folder / "digits.pt", weights_only=True)
    assert torch.equal(loaded["conv1.weight"], state["conv1.weight"] + 1) and (folder / "loss.png").is_file()


# 6. probe gallery writes its index only where it wrote one before.


def test_probe_gallery_never_replaces_a_run_page_or_a_user_page(runner, in_tmp, old):
    folder, before = old
    line = one_error_line(runner.invoke(cli, ["gallery", str(folder)]), 2)
    assert "one run's gallery" in line and snapshot(folder) == before
    site = in_tmp / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>my site</h1>")
    assert filters_gallery(runner, site / "run").exit_code == 0
    line = one_error_line(runner.invoke(cli, ["gallery", str(site)]), 2)
    assert "not written by probe gallery" in line and (site / "index.html").read_text() == "<h1>my site</h1>"


def test_probe_gallery_rewrites_its_own_page(runner, in_tmp):
    root = in_tmp / "runs"
    assert filters_gallery(runner, root / "a").exit_code == 0
    result = runner.invoke(cli, ["gallery", str(root)])
    assert result.exit_code == 0 and "1 run(s)" in result.output
    assert filters_gallery(runner, root / "b").exit_code == 0
    result = runner.invoke(cli, ["gallery", str(root)])
    assert result.exit_code == 0 and "2 run(s)" in result.output and "b/index.html" in (root / "index.html").read_text()
    assert sorted(p.name for p in root.iterdir()) == [".cnn-probe", "a", "b", "index.html"]


# 7. Names that slug alike get distinct files.


class Clashing(torch.nn.Module):
    """Two convolutions named ``a<b`` and ``a>b``: both slug to ``a-b``."""

    def __init__(self) -> None:
        super().__init__()
        self.add_module("a<b", torch.nn.Conv2d(3, 2, 3, padding=1))
        self.add_module("a>b", torch.nn.Conv2d(2, 2, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, "a>b")(getattr(self, "a<b")(x))


def clashing() -> Clashing:
    torch.manual_seed(0)
    return Clashing()


def test_layers_whose_names_slug_alike_get_distinct_files(runner, in_tmp):
    out = in_tmp / "clash"
    result = runner.invoke(cli, ["activations", "skimage:astronaut", "--model", "test_out_safety:clashing",
                                 "--size", "8", "--layer", "a<b", "--layer", "a>b", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    files = [item["file"] for item in manifest["items"] if item["file"].startswith("a-b")]
    assert sorted(files) == ["a-b-000-2.png", "a-b-000.png", "a-b-001-2.png", "a-b-001.png"]
    assert all((out / f).is_file() for f in files) and len(set(manifest["sheets"])) == len(manifest["sheets"]) >= 2


# 8. A full or read-only disk: one line, exit 1, the old gallery intact, no staging left.


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EFBIG])
def test_a_full_or_read_only_disk_leaves_the_old_gallery_and_no_staging(runner, old, monkeypatch, code):
    folder, before = old
    real_save = Image.Image.save
    calls = []

    def fill_up(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(code, os.strerror(code))
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", fill_up)
    line = one_error_line(filters_gallery(runner, folder, "--force"), 1)
    assert os.strerror(code) in line and "choose another --out" in line
    assert snapshot(folder) == before and leftovers(folder.parent) == []
    calls.clear()
    with pytest.raises(ProbeRuntimeError, match=os.strerror(code)):
        probe.filters(probe.load_model("digits"), "conv1").save(folder.parent / "api")
    assert not (folder.parent / "api").exists() and leftovers(folder.parent) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes through chmod")
def test_a_read_only_parent_is_one_line(runner, in_tmp):
    parent = in_tmp / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        line = one_error_line(filters_gallery(runner, parent / "out"), 1)
        assert "permission denied" in line and list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


def test_an_unwritable_parent_is_refused_before_the_run(runner, in_tmp, monkeypatch):
    from probe.gallery import outdir

    locked = in_tmp / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(outdir.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    monkeypatch.setattr(maximize_cli, "maximize", lambda *a, **k: pytest.fail("the run started"))
    line = one_error_line(runner.invoke(cli, [*TINY_MAXIMIZE, "--out", str(locked / "out")]), 1)
    assert "permission denied" in line and "choose another --out" in line and list(locked.iterdir()) == []


# 9. Destinations that cannot be folders are refused before the run, creating nothing.


def test_bad_destinations_are_refused_before_the_run(runner, in_tmp, monkeypatch):
    monkeypatch.setattr(maximize_cli, "maximize", lambda *a, **k: pytest.fail("the run started"))
    (in_tmp / "file.txt").write_text("x")
    target = in_tmp / "target"
    target.mkdir()
    (in_tmp / "link").symlink_to(target, target_is_directory=True)
    for out, words in (("file.txt/sub", "which is a file"), ("link", "symbolic link"), ("file.txt/a/b", "which is a file")):
        line = one_error_line(runner.invoke(cli, [*TINY_MAXIMIZE, "--out", out]), 2)
        assert "--out" in line and words in line
    assert sorted(p.name for p in in_tmp.iterdir()) == ["file.txt", "link", "target"] and not any(target.iterdir())


# 10. The swap itself: real races between threads, and the fallback where the system has no atomic exchange.


def test_concurrent_writers_to_one_default_name_all_keep_their_files(in_tmp):
    import threading

    from probe.gallery import check_out_dir

    default = in_tmp / "runs" / "maximize-digits-conv2"
    destinations = [check_out_dir(None, default) for _ in range(6)]
    barrier = threading.Barrier(len(destinations))
    landed: dict[int, Path] = {}

    def run(index: int) -> None:
        def write(folder: Path) -> None:
            (folder / "result.txt").write_text(str(index))
            barrier.wait()  # every staging folder complete before any swap: the claims race

        landed[index] = destinations[index].write(write)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(destinations))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(landed.values())) == len(destinations)
    assert all((folder / "result.txt").read_text() == str(k) for k, folder in landed.items())
    assert sorted(p.name for p in default.parent.iterdir()) == sorted(folder.name for folder in landed.values())


def interrupt_first_clean_up(real, before=lambda where: None):
    """A stand-in for ``outdir._delete_listed``: the first call runs ``before(folder)`` and is interrupted."""
    calls = []

    def clean_up(where: Path, marker: dict) -> None:
        calls.append(where)
        if len(calls) == 1:
            before(where)
            raise KeyboardInterrupt
        real(where, marker)

    return clean_up


@pytest.mark.parametrize("atomic", [True, False])
def test_force_swap_with_and_without_an_atomic_exchange(runner, old, monkeypatch, atomic):
    from probe.gallery import outdir

    folder, _ = old
    if not atomic:
        monkeypatch.setattr(outdir, "_exchange", lambda first, second: False)
    result = probe.filters(probe.load_model("digits"), "conv2")
    assert result.save(folder, force=True) == folder
    assert json.loads((folder / "manifest.json").read_text())["layer"] == "conv2" and leftovers(folder.parent) == []


def test_an_interrupt_after_the_swap_leaves_the_new_gallery_whole(runner, old, monkeypatch):
    from probe.gallery import outdir

    folder, _ = old
    monkeypatch.setattr(outdir, "_delete_listed", interrupt_first_clean_up(outdir._delete_listed))
    with pytest.raises(KeyboardInterrupt):
        probe.filters(probe.load_model("digits"), "conv2").save(folder, force=True)
    marker = json.loads((folder / probe.gallery.MARKER).read_text())
    assert json.loads((folder / "manifest.json").read_text())["layer"] == "conv2"
    assert set(marker["files"]) == set(snapshot(folder)) - {".cnn-probe"} and leftovers(folder.parent) == []


def test_an_interrupted_clean_up_never_deletes_a_file_that_arrived_in_the_old_gallery(old, monkeypatch):
    from probe.gallery import outdir

    folder, _ = old

    def arrive(where: Path) -> None:
        (where / "notes.txt").write_text("the user's")

    monkeypatch.setattr(outdir, "_delete_listed", interrupt_first_clean_up(outdir._delete_listed, arrive))
    with pytest.raises(KeyboardInterrupt):
        probe.filters(probe.load_model("digits"), "conv2").save(folder, force=True)
    assert json.loads((folder / "manifest.json").read_text())["layer"] == "conv2"
    [aside] = [p for p in folder.parent.iterdir() if ".partial-" in p.name]
    assert snapshot(aside) == {"notes.txt": b"the user's"}


# 9. A folder that was there before the run (the current folder, the user's own, a mount point) stays itself:
#    the gallery moves into it entry by entry instead of a new folder replacing it.


@pytest.fixture
def here(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder, ``in_tmp/here``: what ``--out .`` names."""
    folder = in_tmp / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_out_dot_in_an_empty_folder_keeps_the_folder(runner, in_tmp, here):
    inode = here.stat().st_ino
    assert filters_gallery(runner, Path(".")).exit_code == 0
    assert here.stat().st_ino == inode and os.path.exists(os.getcwd())
    assert (here / "manifest.json").is_file() and leftovers(in_tmp) == []


def test_an_empty_folder_of_the_users_keeps_its_identity_and_mode(runner, in_tmp):
    mine = in_tmp / "mine"
    mine.mkdir()
    mine.chmod(0o750)
    inode = mine.stat().st_ino
    assert filters_gallery(runner, mine).exit_code == 0
    assert mine.stat().st_ino == inode and mine.stat().st_mode & 0o777 == 0o750
    marker = json.loads((mine / probe.gallery.MARKER).read_text())
    assert set(marker["files"]) == set(snapshot(mine)) - {".cnn-probe"} and leftovers(in_tmp) == []


@pytest.mark.parametrize("interrupt", [False, True])
def test_force_in_the_current_folder_replaces_the_gallery_not_the_folder(runner, in_tmp, here, monkeypatch, interrupt):
    from probe.gallery import outdir

    assert filters_gallery(runner, Path(".")).exit_code == 0
    old = snapshot(here)
    inode = here.stat().st_ino
    if interrupt:  # Ctrl-C while the new gallery moves in: every entry goes back where it was
        real, calls = outdir._move_new, []

        def stop_third(source: Path, destination: Path) -> None:
            calls.append(source)
            if len(calls) == 3:
                raise KeyboardInterrupt
            real(source, destination)

        monkeypatch.setattr(outdir, "_move_new", stop_third)
    result = runner.invoke(cli, ["filters", "--model", "xo", "--out", ".", "--force"])
    assert here.stat().st_ino == inode and os.path.exists(os.getcwd())
    if interrupt:
        assert result.exit_code == 130 and snapshot(here) == old
    else:
        assert result.exit_code == 0, result.output
        assert json.loads((here / "manifest.json").read_text())["model"] == "xo"
        marker = json.loads((here / probe.gallery.MARKER).read_text())
        assert set(marker["files"]) == set(snapshot(here)) - {".cnn-probe"}
    assert leftovers(in_tmp) == [] and not [p for p in in_tmp.iterdir() if ".old-" in p.name]


def test_a_file_arriving_while_the_gallery_moves_in_is_kept_and_the_gallery_goes_beside(runner, in_tmp, monkeypatch):
    from probe.gallery import outdir

    mine = in_tmp / "mine"
    mine.mkdir()
    real, calls = outdir._move_new, []

    def arrive_at_second(source: Path, destination: Path) -> None:
        calls.append(source)
        if len(calls) == 2:
            (mine / destination.name).write_text("theirs")  # another program takes the very name
        real(source, destination)

    monkeypatch.setattr(outdir, "_move_new", arrive_at_second)
    result = filters_gallery(runner, mine)
    assert result.exit_code == 0, result.output
    assert [p.name for p in mine.iterdir()] == [calls[1].name] and (mine / calls[1].name).read_text() == "theirs"
    assert (in_tmp / "mine-2" / "manifest.json").is_file() and leftovers(in_tmp) == []


# 10. SIGTERM (kill, timeout, a scheduler) cleans up as Ctrl-C does: its default action left the staging folder.


@pytest.fixture
def sigterm_handled():
    """The command line's SIGTERM handler installed for the test, the default restored after."""
    import signal

    from probe.cli.interrupt import terminate_like_ctrl_c

    terminate_like_ctrl_c()
    yield
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_sigterm_mid_gallery_removes_it_keeps_the_old_one_and_exits_143(runner, old, monkeypatch, sigterm_handled):
    import signal

    from probe.gallery.writer import Gallery

    folder, before = old
    real = Gallery.add
    added: list[str] = []

    def add_then_killed(self, image, file, *args, **kwargs):
        added.append(file)
        if len(added) == 3:  # a few PNGs into the new gallery
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, image, file, *args, **kwargs)

    monkeypatch.setattr(Gallery, "add", add_then_killed)
    result = filters_gallery(runner, folder, "--model", "xo", "--force")
    assert result.exit_code == 143 and "terminated (SIGTERM); nothing was written" in one_error_line(result, 143)
    assert snapshot(folder) == before and leftovers(folder.parent) == []
    assert filters_gallery(runner, folder, "--model", "xo", "--force").exit_code == 0  # and the rerun works


def test_sigterm_keeps_a_parents_choice_and_torchrun_s(monkeypatch):
    import signal

    from probe.cli.interrupt import terminate_like_ctrl_c

    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        terminate_like_ctrl_c()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
        terminate_like_ctrl_c()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("code, advice", [(errno.ENOSPC, "free some space"), (errno.EROFS, "read-only"),
                                          (errno.EACCES, "may write in"), (errno.ENOENT, "choose another --out"),
                                          (errno.EFBIG, "ulimit -f")])
def test_a_disk_failure_mid_png_leaves_no_half_file_and_says_what_to_do(runner, in_tmp, monkeypatch, code, advice):
    """The disk fails inside the fourth PNG, after half its bytes: no file of the run is left anywhere, and the
    one line's advice fits the failure (no 'free some space' for a read-only disk)."""
    real_save = Image.Image.save
    calls = []

    def half_then_fail(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 4:
            if hasattr(fp, "write"):  # the gallery saves into a stream it created new
                fp.write(b"\x89PNG\r\n\x1a\n half")
            else:
                Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n half")
            raise OSError(code, os.strerror(code), getattr(fp, "name", str(fp)))
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    line = one_error_line(filters_gallery(runner, in_tmp / "new"), 1)
    assert advice in line and os.strerror(code) in line
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "bell\x07"])
def test_an_out_with_a_control_character_is_refused(runner, in_tmp, name):
    line = one_error_line(filters_gallery(runner, in_tmp / name), 2)
    assert "--out" in line and "control character" in line and list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("command", [["filters", "--model", "xo"], ["atlas", "--layers", "conv1", "--max-units", "1"]])
@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_out_is_refused_not_taken_for_the_current_folder(runner, in_tmp, command, blank):
    """``--out "$DIR"`` with DIR unset: click made it Path(""), the current folder."""
    result = runner.invoke(cli, [*command, "--out", blank])
    assert result.exit_code == 2 and "'--out'" in result.output and "is empty" in result.output
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("signal_name, code, head", [("SIGINT", 130, "interrupted (Ctrl-C)"),
                                                     ("SIGTERM", 143, "terminated (SIGTERM)")])
def test_a_signal_after_the_save_says_where_the_gallery_is_not_that_nothing_was_written(
        runner, in_tmp, monkeypatch, sigterm_handled, signal_name, code, head):
    """Ctrl-C or SIGTERM while the final line prints: the line says where the finished gallery is (a SIGTERM
    rewrites the text before the ';', so the location must come after it)."""
    import signal

    import probe.cli.filters as filters_command

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, signal_name))

    monkeypatch.setattr(filters_command, "echo_done", interrupted)
    result = filters_gallery(runner, in_tmp / "new")
    assert result.exit_code == code and "nothing was written" not in result.output
    assert one_error_line(result, code) == f"Error: {head}; the finished gallery is kept: {in_tmp / 'new'}"
    assert (in_tmp / "new" / "index.html").is_file()


def test_force_works_from_a_deleted_current_folder(old, in_tmp, monkeypatch):
    folder, _ = old
    gone = in_tmp / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert probe.filters(probe.load_model("xo"), "conv1").save(folder, force=True) == folder
    assert json.loads((folder / "manifest.json").read_text())["model"] == "xo"
