"""Resuming an atlas never mixes its old and new work: other weights under the same path are refused, and a
dataset record an older cnn-probe cut to the whole receptive field is made again while the chunks are kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import probe
from probe.atlas import build_atlas
from probe.chunkstore import weights_digest
from probe.atlas.runner import CROPS, RUN_FILE

TINY = dict(layers=["conv1"], dataset="zoo", limit=8, examples=1, steps=1, max_units=2, chunk=1, device="cpu")


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (folder / "records").glob("conv1-*.json")}


def test_weights_changed_under_the_same_path_are_refused_naming_weights(tmp_path):
    file = tmp_path / "digits.pt"
    module = probe.load_model("digits").module
    torch.save(module.state_dict(), file)
    out = tmp_path / "atlas"
    build_atlas("digits", out=out, weights=str(file), **TINY)
    changed = {k: v + 0.01 if v.is_floating_point() else v for k, v in module.state_dict().items()}
    torch.save(changed, file)
    with pytest.raises(probe.ProbeUsageError, match="same settings but other weights .*--force") as error:
        build_atlas("digits", out=out, weights=str(file), **TINY)
    assert error.value.param == "weights"
    kept = _mtimes(out)
    summary = build_atlas("digits", out=out, weights=str(file), force=True, **TINY)  # --force starts over
    assert summary.skipped == 0 and _mtimes(out).keys() == kept.keys()


def test_an_atlas_begun_before_the_weights_digest_resumes_and_records_it(tmp_path):
    out = tmp_path / "atlas"
    build_atlas("digits", out=out, **TINY)
    run = json.loads((out / RUN_FILE).read_text())
    assert run["weights_digest"] == weights_digest(probe.load_model("digits").module)
    del run["weights_digest"]
    (out / RUN_FILE).write_text(json.dumps(run))
    summary = build_atlas("digits", out=out, **TINY)
    assert summary.skipped == summary.total == 2
    assert "weights_digest" in json.loads((out / RUN_FILE).read_text())


def test_a_dataset_record_with_old_whole_field_crops_is_made_again_and_the_chunks_kept(tmp_path):
    out = tmp_path / "atlas"
    build_atlas("digits", out=out, **TINY)
    path = out / "records" / "examples.json"
    record = json.loads(path.read_text())
    new_files = {e["file"] for layer in record["layers"].values() for u in layer["units"] for e in u["examples"]}
    old = json.loads(json.dumps(record))
    del old["crops"]  # an older cnn-probe's record: no crops version, the whole image as the crop
    example = old["layers"]["conv1"]["units"][0]["examples"][0]
    example["file"], example["box"] = f"images/x{example['index']:06d}-0-0-28-28.png", [0, 0, 28, 28]
    (out / example["file"]).write_bytes(b"old crop")
    path.write_text(json.dumps(old))
    chunks = _mtimes(out)
    summary = build_atlas("digits", out=out, **TINY)
    assert summary.old_crops == 1 and not summary.dataset_reused
    assert not (out / example["file"]).exists() and all((out / f).is_file() for f in new_files)
    assert json.loads(path.read_text()) == {**record, "crops": CROPS}
    assert _mtimes(out) == chunks and summary.skipped == 2  # the synthetic images are kept
    again = build_atlas("digits", out=out, **TINY)
    assert again.dataset_reused and again.old_crops is None


def _folder(folder: Path, invert: bool = False) -> Path:
    from PIL import Image

    from probe import zoo

    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(zoo.make_dataset("digits", "test").tensors[0][:4]):
        Image.fromarray((((1 - image) if invert else image)[0] * 255).round().byte().numpy()).save(folder / f"{index}.png")
    return folder


def test_a_folder_dataset_resumes_untouched_and_is_refused_naming_dataset_once_its_images_change(tmp_path):
    data, out = _folder(tmp_path / "data"), tmp_path / "atlas"
    tiny = {**TINY, "dataset": data}
    build_atlas("digits", out=out, **tiny)
    assert build_atlas("digits", out=out, **tiny).skipped == 2  # the same files: resumed
    _folder(data, invert=True)  # as many files under the same names: the size check alone let it resume
    with pytest.raises(probe.ProbeUsageError, match="same settings over another dataset .*--dataset") as error:
        build_atlas("digits", out=out, **tiny)
    assert error.value.param == "dataset"
    assert build_atlas("digits", out=out, force=True, **tiny).skipped == 0


def test_an_in_memory_dataset_has_an_identity_that_reads_a_few_images():
    from probe.atlas.data import open_dataset

    digits = probe.load_model("digits")
    first = open_dataset("zoo", digits, limit=40)
    assert first.identity() == open_dataset("zoo", digits, limit=40).identity()
    assert first.identity() != open_dataset("zoo", digits, limit=41).identity()
    changed = open_dataset("zoo", digits, limit=40)
    changed.tensor = changed.tensor.clone()
    changed.tensor[-1] = 1 - changed.tensor[-1]  # the last image: read
    assert changed.identity() != first.identity()


def test_an_atlas_begun_before_the_dataset_digest_resumes_and_records_it(tmp_path):
    out = tmp_path / "atlas"
    build_atlas("digits", out=out, **TINY)
    run = json.loads((out / RUN_FILE).read_text())
    del run["dataset_digest"]
    (out / RUN_FILE).write_text(json.dumps(run))
    assert build_atlas("digits", out=out, **TINY).skipped == 2
    assert "dataset_digest" in json.loads((out / RUN_FILE).read_text())


def test_force_deletes_only_what_an_atlas_wrote_and_refuses_a_folder_holding_the_users_files(tmp_path):
    """--force with other settings deleted every ``*.html`` in the folder (the user's ``notes.html`` too) and
    whatever ``images/`` and ``records/`` held. It now deletes the atlas's own names and nothing else, and
    refuses, deleting nothing, a folder that also holds files of the user's."""
    out = tmp_path / "atlas"
    build_atlas("digits", out=out, **TINY)
    (out / "notes.html").write_text("mine")
    (out / "images" / "sketch.png").write_bytes(b"mine")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(probe.ProbeUsageError, match=r"does not write \(notes.html, images/sketch.png\).*nothing was") as error:
        build_atlas("digits", out=out, force=True, **{**TINY, "steps": 2})
    assert error.value.param == "out" and sorted(p.relative_to(out) for p in out.rglob("*")) == before
    (out / "notes.html").unlink()
    (out / "images" / "sketch.png").unlink()
    summary = build_atlas("digits", out=out, force=True, **{**TINY, "steps": 2})
    assert summary.skipped == 0 and json.loads((out / RUN_FILE).read_text())["settings"]["steps"] == 2


def test_a_second_atlas_into_a_folder_being_written_is_refused(tmp_path):
    """Two atlases into one folder (or a --force one while another runs) deleted and mixed each other's
    files; rank 0 holds the folder's lock from its start to its site."""
    from probe.folderlock import lock_folder, release

    out = tmp_path / "atlas"
    out.mkdir()
    held = lock_folder(out)  # as another process's atlas would
    try:
        with pytest.raises(probe.ProbeUsageError, match="another probe atlas is writing") as error:
            build_atlas("digits", out=out, **TINY)
        assert error.value.param == "out" and not any(out.iterdir())
    finally:
        release(held)
    build_atlas("digits", out=out, **TINY)
    assert lock_folder(out) is not None  # given back when the atlas is done


def test_layer_names_that_slug_alike_get_files_of_their_own():
    """``"a b"`` and ``"a-b"`` (torch allows both) shared pages and images, and a name over ~230 bytes failed
    at its first write (ENAMETOOLONG)."""
    from probe.atlas.plan import MAX_STEM, file_stem

    assert file_stem("layer3.1.conv1") == "layer3.1.conv1"
    assert len({file_stem(n) for n in ("a b", "a-b", "a/b", "a--b")}) == 4
    assert len(file_stem("x" * 300)) <= MAX_STEM and file_stem("x" * 300) != file_stem("x" * 301)


def test_an_atlas_folder_named_through_a_link_is_started_and_resumed_in_the_folder_it_points_to(tmp_path):
    """A fresh atlas into a linked --out was refused at its run file, and an old one's resume failed there
    after, while a resume of a new one rendered through the link: the link the user named is followed once."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "named").symlink_to(real, target_is_directory=True)
    first = build_atlas("digits", out=tmp_path / "named", **TINY)
    assert first.folder == tmp_path / "named" and (real / RUN_FILE).is_file() and (real / "index.html").is_file()
    again = build_atlas("digits", out=tmp_path / "named", **TINY)
    assert again.skipped == again.total and (tmp_path / "named").is_symlink()


def test_a_force_killed_while_clearing_leaves_an_atlas_the_next_force_clears(tmp_path, monkeypatch):
    """``--force`` with other settings deleted the atlas's files in sorted order, ``atlas-run.json`` first: killed
    after that, the folder held pages but no run file, and every later run, --force too, refused it as 'holds no
    atlas'. The run file now goes last; a user's ``.tmp-notes`` is not taken for a temporary of ours."""
    from probe.atlas import records, runner

    out = tmp_path / "atlas"
    build_atlas("digits", out=out, **TINY)
    (out / ".tmp-notes").write_text("mine")
    with pytest.raises(probe.ProbeUsageError, match=r"does not write \(.tmp-notes\)"):
        build_atlas("digits", out=out, force=True, **{**TINY, "steps": 2})
    (out / ".tmp-notes").unlink()
    (out / "records" / ".tmp-notes").write_text("mine")
    assert records.remove_partial(out / "records") == 0 and (out / "records" / ".tmp-notes").exists()
    (out / "records" / ".tmp-notes").unlink()

    deleted = []
    real_unlink = Path.unlink

    def killed_after_three(path, missing_ok=False):
        if len(deleted) == 3:
            raise KeyboardInterrupt  # the kill, in the middle of clearing
        deleted.append(path.name)
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        runner._clear(out)
    monkeypatch.undo()
    assert RUN_FILE not in deleted and (out / RUN_FILE).exists()
    summary = build_atlas("digits", out=out, force=True, **{**TINY, "steps": 2})
    assert summary.skipped == 0 and json.loads((out / RUN_FILE).read_text())["settings"]["steps"] == 2
