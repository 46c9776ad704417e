"""The commands that read a model's output say what they assumed and take --output to say otherwise; probe
activations' --scale reaches the gallery."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from probe.cli.main import cli

AUTOENCODER = ["--model", "tinynets:conv_autoencoder()", "--size", "16"]


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_activations_says_what_it_read_and_takes_output(tmp_path: Path) -> None:
    """An autoencoder's reconstruction has a 3-class segmenter's shape: the command read it as classes without a
    word (the API said it, the CLI did not print it); --output image reads it as the picture it is."""
    runner = CliRunner()
    assumed = runner.invoke(cli, ["activations", "skimage:astronaut", *AUTOENCODER, "--out", str(tmp_path / "a")])
    assert assumed.exit_code == 0, assumed.output
    assert "the output was read as per-pixel scores of 3 class(es)" in assumed.output
    assert "--output image" in assumed.output
    assert _manifest(tmp_path / "a")["prediction_assumed"]
    said = runner.invoke(cli, ["activations", "skimage:astronaut", *AUTOENCODER, "--output", "image",
                               "--out", str(tmp_path / "b")])
    assert said.exit_code == 0, said.output
    assert "per-pixel" not in said.output and "read as a picture (output='image')" in said.output
    assert _manifest(tmp_path / "b")["prediction"] is None


def test_attribute_refuses_a_picture_output_in_one_line(tmp_path: Path) -> None:
    """Told the output is a picture, attribution has no class to explain: one line, exit 2, nothing written."""
    result = CliRunner().invoke(cli, ["attribute", "skimage:astronaut", *AUTOENCODER, "--output", "image",
                                      "--method", "saliency", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2, result.output
    assert "output='image'" in result.output and not (tmp_path / "c").exists()
    bad = CliRunner().invoke(cli, ["attribute", "digits:0", "--output", "picture"])
    assert bad.exit_code == 2 and "--output" in bad.output


def test_activations_scale_reaches_the_gallery(tmp_path: Path) -> None:
    """--scale was parsed and dropped: every run was drawn per map, whatever was asked."""
    runner = CliRunner()
    pictures = {}
    for scale in ("map", "layer"):
        folder = tmp_path / scale
        result = runner.invoke(cli, ["activations", "xo:x", "--model", "xo", "--layer", "conv1", "--scale", scale,
                                     "--quiet", "--out", str(folder)])
        assert result.exit_code == 0, result.output
        assert _manifest(folder)["scale"] == scale
        pictures[scale] = {path.name: path.read_bytes() for path in folder.rglob("*.png")}
    assert pictures["map"].keys() == pictures["layer"].keys()
    assert any(pictures["map"][name] != pictures["layer"][name] for name in pictures["map"])


def test_maximize_class_reads_the_output_as_a_run_does(tmp_path: Path) -> None:
    """The class objective's pre-check read the output without its autograd graph: a model returning
    (features, logits) had its 8 features maximized as "logits", and a sigmoid autoencoder's colour planes were
    maximized as class logits, without a word. Both are read with the graph now, as the run reads them."""
    runner = CliRunner()
    line = ["maximize", "--objective", "class", "--steps", "1", "--size", "16", "--quiet"]
    logits = runner.invoke(cli, [*line, "--model", "tinynets:features_then_logits()", "--out", str(tmp_path / "f")])
    assert logits.exit_code == 0, logits.output
    manifest = _manifest(tmp_path / "f")
    assert manifest["layer"] == "head" and len(manifest["units"]) == 3, manifest
    picture = runner.invoke(cli, [*line, "--model", "tinynets:sigmoid_autoencoder()", "--out", str(tmp_path / "s")])
    assert picture.exit_code == 2 and "--objective" in picture.output and "a picture" in picture.output
    assert not (tmp_path / "s").exists()
    said = runner.invoke(cli, [*line, *AUTOENCODER[:2], "--output", "image", "--out", str(tmp_path / "i")])
    assert said.exit_code == 2 and "a picture" in said.output, said.output
    assumed = runner.invoke(cli, [*line[:-1], *AUTOENCODER[:2], "--units", "0", "--out", str(tmp_path / "a")])
    assert assumed.exit_code == 0 and "the output was read as per-pixel scores" in assumed.output, assumed.output
    channel = runner.invoke(cli, ["maximize", "--layer", "conv1", "--output", "image"])
    assert channel.exit_code == 2 and "--output" in channel.output and "--objective class" in channel.output


def test_inspect_layer_reads_the_output_by_its_graph_under_any_caller_mode() -> None:
    """The shape pass that tells the output's kind reads it with its graph, also inside the caller's
    inference_mode (the blank image is made inside the pass's own autograd mode)."""
    import torch

    from probe.optimize import inspect_layer
    from tinynets import features_then_logits, sigmoid_autoencoder

    model = features_then_logits()
    with torch.inference_mode():
        info = inspect_layer(model, "output", 16)
    assert (info.output_layer, info.output_kind, info.units) == ("head", "logits", 3)
    assert inspect_layer(sigmoid_autoencoder(), "output", 16).output_kind == "image"
    assert inspect_layer(features_then_logits(), "head", 16).output_kind == ""  # a layer: nothing read
