"""maximize(resume=FOLDER): a render killed with SIGKILL mid-way resumes with its finished chunks, and gives
the uninterrupted run's result bit for bit; another setting or other weights never reuse the old chunks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import probe
from probe import objectives as O
from probe.chunkstore import clear

DIGITS = probe.load_model("digits")
REQUEST = dict(steps=2, batch=2, seed=1)

KILLED = """
import os, signal, sys, probe
from probe import objectives as O
from probe.chunkstore import clear
def progress(step, total, metrics):
    if step > 3 * {steps}:  # the fourth chunk of two images has begun: three are on disk
        os.kill(os.getpid(), signal.SIGKILL)
probe.maximize(probe.load_model("digits"), O.channel("conv2", range(10)), steps={steps}, batch={batch}, seed={seed},
               resume=sys.argv[1], progress=progress)
"""


def _run(folder: Path, **options) -> probe.MaximizeResult:
    return probe.maximize(DIGITS, O.channel("conv2", range(10)), **{**REQUEST, **options}, resume=folder)


def test_a_render_killed_mid_way_resumes_with_its_chunks_and_equals_the_uninterrupted_run(tmp_path):
    folder = tmp_path / "chunks"
    killed = subprocess.run([sys.executable, "-c", KILLED.format(**REQUEST), str(folder)], capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert len(list(folder.glob("*.pt"))) == 3
    half = folder / f".tmp-{sorted(folder.glob('*.pt'))[0].name[:16]}-000006-000007.pt.0123abcd"
    half.write_bytes(b"half")  # a kill inside a save leaves only a temporary file
    resumed = _run(folder)
    assert resumed.settings["resume"] == {"folder": str(folder), "reused": 3, "discarded": 0}
    whole = probe.maximize(DIGITS, O.channel("conv2", range(10)), **REQUEST)
    assert torch.equal(resumed.images, whole.images) and torch.equal(resumed.history, whole.history)
    assert torch.equal(resumed.scores, whole.scores) and resumed.settings.get("unmoved") == whole.settings.get("unmoved")
    assert not half.exists()


def test_a_users_file_that_only_looks_like_a_temporary_chunk_is_kept(tmp_path):
    """The store removed every ``.tmp-*.pt`` in its folder as a killed save's: a user's ``.tmp-notes.pt`` too."""
    folder = tmp_path / "chunks"
    folder.mkdir()
    mine = [folder / ".tmp-notes.pt", folder / ".tmp-0123456789abcdef-000000-000001.pt.bak"]
    for path in mine:
        path.write_bytes(b"mine")
    _run(folder, steps=1).settings["resume"]
    clear(folder)
    assert sorted(folder.iterdir()) == sorted(mine) and all(path.read_bytes() == b"mine" for path in mine)


def test_a_damaged_chunk_is_rendered_again(tmp_path):
    folder = tmp_path / "chunks"
    first = _run(folder)
    damaged = sorted(folder.glob("*.pt"))[1]
    damaged.write_bytes(damaged.read_bytes()[:100])
    again = _run(folder)
    assert again.settings["resume"]["reused"] == 4 and torch.equal(again.images, first.images)


def test_another_setting_or_other_weights_discard_the_old_chunks(tmp_path):
    folder = tmp_path / "chunks"
    first = _run(folder)
    for change in ({"steps": 3}, {"seed": 2}, {"lr": 0.1}):
        other = _run(folder, **change)
        assert other.settings["resume"]["reused"] == 0 and other.settings["resume"]["discarded"] == 5, change
        _run(folder)  # back to the first request: its chunks again
    changed = probe.load_model("digits")
    with torch.no_grad():
        changed.module.conv1.weight.add_(0.01)
    other = probe.maximize(changed, O.channel("conv2", range(10)), **REQUEST, resume=folder)
    assert other.settings["resume"] == {"folder": str(folder), "reused": 0, "discarded": 5}
    assert not torch.equal(other.images, first.images)


def test_the_users_own_files_in_the_folder_are_never_read_or_removed(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    torch.save({"w": torch.ones(2)}, folder / "model.pt")  # a .pt of the user's: it was removed as another request's
    (folder / "notes.txt").write_text("mine")
    _run(folder)
    other = _run(folder, steps=3)
    assert other.settings["resume"]["discarded"] == 5  # the first request's chunks, and nothing of the user's
    clear(folder)
    assert sorted(path.name for path in folder.iterdir()) == ["model.pt", "notes.txt"]
    assert torch.equal(torch.load(folder / "model.pt", weights_only=True)["w"], torch.ones(2))


def test_a_folder_that_cannot_be_made_loses_the_resume_not_the_render(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("mine")  # where the chunk folder's parent should be: mkdir raised and the render failed
    result = _run(blocked / "chunks")
    assert result.settings["resume"]["failed"].endswith(str(blocked / "chunks"))
    assert torch.equal(result.images, probe.maximize(DIGITS, O.channel("conv2", range(10)), **REQUEST).images)
    assert blocked.read_text() == "mine"
