"""``probe style``: the gallery it writes, and exit codes for usage errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from probe.cli.main import cli

FAST = ["--size", "24", "--steps", "4", "--snapshots", "2"]
TINY = ["--model", "test_style:probe_shapes_like"]  # the shapes net's layout, untrained (from tests/)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_style_writes_the_gallery(runner, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        cli,
        ["style", "skimage:astronaut", "skimage:coffee", "skimage:chelsea", *TINY, *FAST,
         "--style-blend", "3,1", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "style loss" in result.output and "% of the content image's" in result.output
    assert "note: chose content layers relu3_2" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "style" and manifest["model"] == "test_style:probe_shapes_like"
    assert set(manifest["losses"]) == {"content", "style", "tv", "total"}
    assert manifest["content_image_style_loss"] > 0 and manifest["options"]["style_blend"] == [0.75, 0.25]
    assert len(manifest["history"]["total"]) == 4
    files = {item["file"] for item in manifest["items"]}
    assert {"content.png", "result.png", "step-0001.png", "step-0003.png"} <= files
    assert sum(name.startswith("style-") for name in files) == 2
    for name in ("index.html", "losses.png", "contact-sheet-transfer.png", "contact-sheet-snapshots.png"):
        assert (out / name).exists(), name


def test_without_snapshots_one_unsectioned_sheet(runner, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(cli, ["style", "skimage:astronaut", "skimage:coffee", *TINY, "--size", "24", "--steps", "2",
                                 "--snapshots", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "contact-sheet.png").exists() and not (out / "contact-sheet-snapshots.png").exists()


def test_multiscale_avg_pooling_original_colors(runner, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        cli,
        ["style", "skimage:astronaut", "skimage:coffee", *TINY, "--steps", "3", "--scales", "16,24",
         "--pooling", "avg", "--original-colors", "--optimizer", "adam", "--init", "random", "--channels-last",
         "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["image_size"] == [24, 24] and manifest["options"]["scales"] == [[16, 16], [24, 24]]
    assert manifest["options"]["pooling"] == "avg" and manifest["options"]["original_colors"] is True
    assert manifest["options"]["channels_last"] is True


def test_the_whole_vgg19_path_from_the_command_line(runner, tmp_path):
    result = runner.invoke(
        cli,
        ["style", "skimage:astronaut", "skimage:coffee", "--model", "vgg19", "--weights", "none",
         "--size", "64", "--steps", "5", "--out", str(tmp_path / "vgg")],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "vgg" / "manifest.json").read_text())
    assert manifest["options"]["content_layers"] == {"relu4_2": "features.22"} and manifest["model"] == "vgg19"
    assert list(manifest["options"]["style_layers"]) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert manifest["image_size"] == [64, 64] and manifest["weights"] == "random"


def test_default_model_offline_names_the_offline_choices(runner, tmp_path):
    result = runner.invoke(cli, ["style", "skimage:astronaut", "skimage:coffee", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "--model shapes" in result.output and "--weights PATH" in result.output
    assert ("probe style needs trained weights, and vgg19's pretrained ones (--weights default) cannot be "
            "downloaded here") in result.output  # it appended "-- for style transfer offline" to torchvision's words


@pytest.mark.parametrize(
    ("extra", "option", "message"),
    [
        (["--style-layer", "relu1_1,relu9_1"], "--style-layer", "unknown layer 'relu9_1'"),
        (["--content-layer", "conv4_2"], "--content-layer", "did you mean"),
        (["--style-blend", "0.7,0.2,0.1"], "--style-blend", "3 style blend weights given for 1"),
        (["--style-blend", "a,b"], "--style-blend", "'a' is not a valid float"),
        (["--style-layer-weight", "1,2"], "--style-layer-weight", "2 style layer weights given for 4"),
        (["--scales", "0,16"], "--scales", "not in the range 1<=x<=65536"),
        (["--size", "big"], "--size", "N or HxW"),
    ],
)
def test_usage_errors_exit_2_naming_the_option(runner, tmp_path, extra, option, message):
    result = runner.invoke(cli, ["style", "skimage:astronaut", "skimage:coffee", *TINY, *FAST, *extra,
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert option in result.output and message in result.output


def test_unreadable_images_exit_2(runner, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    result = runner.invoke(cli, ["style", "skimage:astronaut", str(broken), *TINY, *FAST])
    assert result.exit_code == 2 and "cannot read image" in result.output and "STYLE" in result.output
    result = runner.invoke(cli, ["style", str(tmp_path / "none.png"), "skimage:coffee", *TINY, *FAST])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(cli, ["style", "skimage:astronaut", "skimage:nosuch", *TINY, *FAST])
    assert result.exit_code == 2 and "unknown scikit-image sample 'nosuch'" in result.output


def test_a_style_image_is_required(runner):
    result = runner.invoke(cli, ["style", "skimage:astronaut"])
    assert result.exit_code == 2 and "STYLE" in result.output
