"""Every result's ``.save(folder)`` returns the folder and never overwrites a gallery silently."""

from __future__ import annotations

from pathlib import Path

import pytest

import probe
from probe import objectives as O
from probe.errors import ProbeUsageError


@pytest.fixture(scope="module")
def digits() -> probe.LoadedModel:
    return probe.load_model("digits")


def _results(digits: probe.LoadedModel) -> dict:
    return {
        "maximize": probe.maximize(digits, O.channel("conv2", [0, 1]), steps=2),
        "dream": probe.dream(digits, "digits:3", ["conv2"], octaves=1, steps=1),
        "style": probe.style_transfer(digits, "digits:3", "digits:7", content_layers="conv2",
                                      style_layers=["conv1", "conv2"], steps=2, size=28, snapshots=0),
        "feature_maps": probe.feature_maps(digits, "digits:3"),
        "filters": probe.filters(digits, "conv1"),
        "attribute": probe.attribute(digits, "digits:3", method="saliency"),
    }


def test_save_returns_the_folder_refuses_to_overwrite_and_replaces_with_force(digits, tmp_path: Path) -> None:
    for name, result in _results(digits).items():
        folder = result.save(tmp_path / name)
        assert folder == tmp_path / name and (folder / "manifest.json").is_file() and (folder / "index.html").is_file()
        with pytest.raises(ProbeUsageError, match="already holds files"):
            result.save(folder)
        assert result.save(folder, force=True) == folder and (folder / "manifest.json").is_file()
        assert result._repr_png_().startswith(b"\x89PNG"), name


def test_from_python_the_refusals_name_the_arguments_given_not_the_clis_options(digits, tmp_path: Path) -> None:
    """``save(folder)`` said "choose another --out, or pass --force": options its caller never saw."""
    result = probe.maximize(digits, O.channel("conv2", [0]), steps=1)
    folder = tmp_path / "run--out"  # a path that holds the option's spelling is quoted as it is
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ProbeUsageError) as refused:
        result.save(folder)
    assert str(refused.value) == (f"output folder {str(folder)!r} already holds files; choose another folder, or pass "
                                  "force=True to replace the gallery in it") and refused.value.param == "folder"
    with pytest.raises(ProbeUsageError, match=r"refusing to touch it even with force=True; choose another folder$"):
        result.save(folder, force=True)
    assert (folder / "notes.txt").read_text() == "mine"


def test_the_cli_keeps_naming_its_options(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from probe.cli.main import cli

    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["maximize", "--layer", "conv2", "--steps", "1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "choose another --out, or pass --force" in " ".join(result.output.split())
