"""``probe maximize`` through click's CliRunner: the gallery it writes, and usage errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from probe.cli.main import cli
from probe.gallery.numbers import number
from probe.optimize import MaximizeResult

TINY = ["--model", "tinynets:tiny", "--size", "16"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str):
    return runner.invoke(cli, ["maximize", *args])


def read_manifest(folder: Path) -> dict:
    """The ``manifest.json`` of the gallery in ``folder``."""
    return json.loads((folder / "manifest.json").read_text())


def test_a_layer_gallery(runner, tmp_path):
    out = tmp_path / "g"
    result = run(runner, *TINY, "--layer", "conv2", "--steps", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "6 image(s)" in result.output and "degree of activation: median" in result.output
    manifest = read_manifest(out)
    for key in ("command", "version", "model", "weights", "layer", "objective", "preset", "steps", "lr", "seed",
                "image_size", "options", "items", "cli"):
        assert key in manifest, key
    assert manifest["command"] == "maximize" and manifest["objective"] == "channel" and manifest["preset"] == "robust"
    assert manifest["image_size"] == [16, 16] and manifest["steps"] == 4 and manifest["lr"] == 0.05
    assert manifest["cli"] == f"probe maximize --model tinynets:tiny --size 16 --layer conv2 --steps 4 --out {out}"
    items = manifest["items"]
    assert [item["unit"] for item in items] == list(range(6))
    assert items[3]["file"] == "conv2-003.png" and items[3]["caption"] == f"conv2:3  a={number(items[3]['score'], digits=3)}"
    assert Image.open(out / "conv2-003.png").size == (16, 16)
    assert (out / "contact-sheet.png").exists() and (out / "index.html").exists()


def test_classes_with_l1_snapshots_and_units(runner, tmp_path):
    out = tmp_path / "c"
    result = run(runner, *TINY, "--objective", "class", "--units", "1,3", "--l1", "0.01", "--preset", "plain",
                 "--steps", "3", "--snapshots", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest["layer"] == "fc" and manifest["options"]["l1"] == 0.01
    finals = [item for item in manifest["items"] if "section" not in item]
    assert [item["file"] for item in finals] == ["fc-001.png", "fc-003.png"]
    assert "logit=" in finals[0]["caption"] and "L1=" in finals[0]["caption"] and "probability" in finals[0]
    assert (out / "fc-003-step1.png").exists() and (out / "contact-sheet-step-2.png").exists()


def test_several_images_per_unit_with_diversity(runner, tmp_path):
    out = tmp_path / "d"
    result = run(runner, *TINY, "--layer", "conv1", "--units", "0-1", "--diversity", "1", "--per-unit", "2",
                 "--objective", "neuron", "--steps", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    files = [item["file"] for item in read_manifest(out)["items"]]
    assert files == ["conv1-000-1.png", "conv1-000-2.png", "conv1-001-1.png", "conv1-001-2.png"]


def test_same_seed_same_scores(runner, tmp_path):
    scores = []
    for name in ("a", "b"):
        assert run(runner, *TINY, "--layer", "conv2", "--units", "0-2", "--steps", "3", "--seed", "5",
                   "--out", str(tmp_path / name)).exit_code == 0
        items = read_manifest(tmp_path / name)["items"]
        scores.append([item["score"] for item in items])
    assert scores[0] == scores[1]


def test_channels_last_is_recorded(runner, tmp_path):
    out = tmp_path / "cl"
    result = run(runner, *TINY, "--layer", "conv2", "--units", "0-1", "--steps", "2", "--channels-last", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert read_manifest(out)["channels_last"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "conv3"], "unknown layer 'conv3'"),
        (["--layer", "conv2", "--units", "60"], "unit 60 is out of range for conv2 (0 to 5)"),
        (["--layer", "conv2", "--units", "3-"], "cannot read units '3-'"),
        (["--layer", "conv2", "--objective", "class"], "'conv2' is not the output layer; use --layer fc"),
        (["--objective", "channel"], "give --layer"),
        (["--layer", "conv2", "--snapshots", "-1"], "Invalid value for '--snapshots'"),
        (["--layer", "conv2", "--snapshots", "x"], "'x' is not a valid integer"),
        (["--layer", "conv2", "--preset", "fancy"], "'fancy' is not one of"),
        (["--layer", "conv2", "--caricature", "shapes:circle", "--units", "3"],
         "--caricature amplifies the whole --layer as it sees IMAGE, so it takes no --units; leave --units out"),
        (["--layer", "conv2", "--caricature", "shapes:circle", "--objective", "neuron"],
         "so it takes no --objective; leave --objective out"),
        (["--target", "conv2:1", "--objective", "neuron"],
         "--target already names the units (and the objective: channel or neuron, from the layer); leave --objective out"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(runner, args, message):
    result = run(runner, *TINY, *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_unknown_layer_suggests_the_closest(runner):
    result = run(runner, *TINY, "--layer", "conv3")
    assert result.exit_code == 2 and "--layer" in result.output and "did you mean 'conv2'" in result.output


def test_a_torchvision_layer_with_all_units(runner, tmp_path):
    out = tmp_path / "r"
    result = run(runner, "--model", "resnet18", "--weights", "none", "--layer", "layer1.0.conv1", "--units", "all",
                 "--size", "32", "--steps", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    items = read_manifest(out)["items"]
    assert len(items) == 64 and items[-1]["file"] == "layer1.0.conv1-063.png"


def test_googlenet_inception4a_at_small_size(runner, tmp_path):
    out = tmp_path / "gn"
    result = run(runner, "--model", "googlenet", "--weights", "none", "--layer", "inception4a", "--units", "0-3",
                 "--size", "32", "--steps", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest["model"] == "googlenet" and manifest["weights"] == "random" and len(manifest["items"]) == 4


def test_target_runs_the_layers_dummy_pass_once(runner, tmp_path, monkeypatch):
    import probe.cli.maximize
    import probe.cli.methods
    from probe.optimize import inspect_layer

    passes = []

    def counted(*args, **kwargs):
        passes.append(args[1])
        return inspect_layer(*args, **kwargs)

    for module in (probe.cli.maximize, probe.cli.methods):
        monkeypatch.setattr(module, "inspect_layer", counted)
    result = run(runner, *TINY, "--target", "conv2:3", "--steps", "1", "--out", str(tmp_path / "t"))
    assert result.exit_code == 0, result.output
    assert passes == ["conv2"] and "1 image(s)" in result.output


def test_the_cli_notes_images_that_never_moved(tmp_path):
    result = CliRunner().invoke(cli, ["maximize", "--model", "digits", "--layer", "conv2", "--units", "0-2",
                                      "--steps", "1", "--lr", "1e-12", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "note: 3 of 3 image(s) never changed from their start (units 0, 1, 2)" in result.output
    manifest = read_manifest(tmp_path / "run")
    assert "unmoved" in json.dumps(manifest)


def test_a_run_stopped_before_its_gallery_resumes_from_its_finished_chunks(runner, tmp_path, monkeypatch):
    out = tmp_path / "g"
    args = [*TINY, "--layer", "conv2", "--steps", "2", "--batch", "2", "--out", str(out)]
    whole = tmp_path / "whole"
    assert run(runner, *args[:-1], str(whole)).exit_code == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["whole"]  # no chunk folder left behind
    save = MaximizeResult.save

    def killed(self, *a, **k):
        raise KeyboardInterrupt  # stopped after the render, before the gallery: nothing of it was lost before
    monkeypatch.setattr(MaximizeResult, "save", killed)
    run(runner, *args)
    assert len(list((tmp_path / ".g.chunks").glob("*.pt"))) == 3
    monkeypatch.setattr(MaximizeResult, "save", save)
    resumed = run(runner, *args)
    assert resumed.exit_code == 0 and "resumed: 3 finished chunk(s)" in resumed.output, resumed.output
    assert not (tmp_path / ".g.chunks").exists()
    assert (out / "conv2-005.png").read_bytes() == (whole / "conv2-005.png").read_bytes()
    manifest = read_manifest(out)  # the chunk folder, removed, is not named
    assert manifest["resume"] == {"reused": 3, "discarded": 0} and ".g.chunks" not in (out / "index.html").read_text()


@pytest.mark.parametrize("args, says", [
    ([], "--objective channel (the default) maximizes a layer's channels: give --layer"),
    (["--objective", "neuron"], "--objective neuron maximizes a layer's neurons: give --layer"),
    (["--caricature", "digits:3"], "--caricature amplifies what a layer sees in its IMAGE: give --layer"),
])
def test_a_missing_layer_is_asked_for_by_what_needs_it(runner, tmp_path, args, says):
    """'--layer is required for --objective channel' answered --caricature, and a default the user never typed."""
    result = runner.invoke(cli, ["maximize", "--steps", "1", "--out", str(tmp_path / "g"), *args])
    assert result.exit_code == 2 and "Invalid value for '--layer'" in result.output and says in result.output, result.output


def _class_objective_refusal(runner, tmp_path, forward: str) -> str:
    """The one line ``maximize --objective class`` answers for a model of a conv and ``forward``'s body."""
    (tmp_path / "net.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 8, 4, stride=4)\n        self.head = nn.Linear(8, 4)\n\n"
        f"    def forward(self, x):\n        h = self.conv(x)\n        {forward}\n\n\ndef build():\n    return Net().eval()\n")
    result = runner.invoke(cli, ["maximize", "--model", f"{tmp_path / 'net.py'}:build", "--objective", "class",
                                 "--input-size", "16", "--steps", "1", "--out", str(tmp_path / "g")])
    assert result.exit_code == 2 and "Invalid value for '--objective'" in result.output, result.output
    return result.output


def test_a_class_objective_on_per_token_scores_shows_the_outputs_own_shape(runner, tmp_path):
    """A detector's per-query class scores ``(N, queries, classes)``, made by a Linear over tokens: the output was
    read at that Linear, as channels-last tokens, and the refusal showed ``(1, classes, queries)``."""
    output = _class_objective_refusal(runner, tmp_path, "return self.head(h.flatten(2).transpose(1, 2)[:, :5])")
    assert "the model's output gives (1, 5, 4)" in output, output


def test_a_class_objective_on_detections_says_why_in_the_objectives_words(runner, tmp_path):
    """torchvision's retinanet, fcos and keypointrcnn: '--objective class' was refused in the words for a layer
    ('it cannot be dreamed on, nor maximized as a layer') under the name --objective."""
    output = _class_objective_refusal(
        runner, tmp_path, "return [{'boxes': h.mean((2, 3))[i:i + 1], 'scores': h.amax((1, 2, 3))[i:i + 1]} "
                          "for i in range(len(x))]")
    assert "no class score or output unit can be read from it" in output and "dreamed" not in output, output
