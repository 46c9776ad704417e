"""One CLI convention: lists, the options every command shares (as the README says), --quiet/--json,
the command line in every manifest, --precision, shell completion and short reprs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import probe
from probe.cli.common import list_option
from probe.snapshots import snapshot_steps
from probe.cli.main import cli
from tinynets import tiny

README = Path(__file__).resolve().parents[1] / "README.md"
GALLERY_COMMANDS = ("maximize", "dream", "style", "activations", "filters", "attribute", "train")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def options_of(name: str) -> set[str]:
    return {opt for param in cli.commands[name].params for opt in getattr(param, "opts", [])}


def test_list_options_repeat_or_take_commas():
    @click.command()
    @list_option("--layer", metavar="NAME")
    @list_option("--weight", item=float, default=[1.0])
    def show(layer, weight):
        click.echo(json.dumps([layer, weight]))

    runner = CliRunner()
    repeated = runner.invoke(show, ["--layer", "a", "--layer", "b", "--layer", "c"])
    mixed = runner.invoke(show, ["--layer", "a,b", "--layer", " c", "--weight", "0.5,2"])
    assert json.loads(repeated.output) == [["a", "b", "c"], [1.0]]
    assert json.loads(mixed.output) == [["a", "b", "c"], [0.5, 2.0]]
    assert json.loads(runner.invoke(show, []).output) == [None, [1.0]]
    bad = runner.invoke(show, ["--weight", "1,x"])
    assert bad.exit_code == 2 and "Invalid value for '--weight'" in bad.output and "'x' is not a valid float" in bad.output
    assert "repeat the option or separate with commas" in runner.invoke(show, ["--help"]).output


def test_every_list_option_of_the_cli_takes_both_forms():
    lists = {"maximize": ["--units"], "dream": ["--layer", "--layer-weight", "--channels"],
             "style": ["--content-layer", "--style-layer", "--style-layer-weight", "--style-blend", "--scales"],
             "activations": ["--layer"], "attribute": ["--method"]}
    for command, names in lists.items():
        params = {opt: param for param in cli.commands[command].params for opt in param.opts}
        for name in names:
            assert params[name].multiple and "separate with commas" in params[name].help, (command, name)


def test_lists_mean_the_same_from_the_command_line(runner, tmp_path):
    forms = {"repeated": (["--layer", "conv1", "--layer", "conv2"], ["--method", "saliency", "--method", "gradcam"]),
             "commas": (["--layer", "conv1,conv2"], ["--method", "saliency,gradcam"])}
    for form, (layers, methods) in forms.items():
        activations = runner.invoke(cli, ["activations", "xo:x", "--model", "xo", *layers,
                                          "--out", str(tmp_path / f"a-{form}")])
        attribute = runner.invoke(cli, ["attribute", "xo:o", "--model", "xo", *methods,
                                        "--out", str(tmp_path / f"b-{form}")])
        assert activations.exit_code == 0 and attribute.exit_code == 0, activations.output + attribute.output
        assert json.loads((tmp_path / f"a-{form}" / "manifest.json").read_text())["layers"] == ["conv1", "conv2"]
        assert json.loads((tmp_path / f"b-{form}" / "manifest.json").read_text())["methods"] == ["saliency", "gradcam"]


def test_snapshots_are_a_count_in_maximize_and_style():
    assert snapshot_steps(30, 2) == [10, 20] and snapshot_steps(3, 2) == [1, 2] and snapshot_steps(4, 0) == []
    for command in ("maximize", "style"):
        param = next(p for p in cli.commands[command].params if p.name == "snapshots")
        assert isinstance(param.type, click.IntRange) and "N intermediate images" in param.help


def readme_option_table() -> list[tuple[list[str], list[str]]]:
    text = README.read_text()
    table = text[text.index("<!-- cli-convention -->"):]
    rows = []
    lines = [line.replace("\\|", "/") for line in table.splitlines()]
    first = next(number for number, line in enumerate(lines) if line.startswith("| `"))
    for line in lines[first:]:
        if not line.startswith("| `"):
            break
        options, commands = line.strip("|").split("|")
        named = [word for word in re.findall(r"[a-z]+", commands.split("(")[0]) if word in cli.commands]
        rows.append((re.findall(r"--[a-z-]+", options), named))
    return rows


def test_the_readme_says_which_command_takes_which_option():
    rows = readme_option_table()
    assert len(rows) == 5
    for options, commands in rows:
        assert commands, options
        for command in commands:
            assert set(options) <= options_of(command), (command, set(options) - options_of(command))
    gallery_row = next(commands for options, commands in rows if "--json" in options)
    assert sorted(gallery_row) == sorted(GALLERY_COMMANDS)
    assert sorted(name for name in cli.commands if "--json" in options_of(name)) == sorted(GALLERY_COMMANDS)


def test_probe_help_shows_every_command_with_an_example(runner):
    text = runner.invoke(cli, ["--help"]).output
    examples = text[text.index("Every command, with an example"):text.index("Options:")]
    shown = {line.split()[1] for line in examples.splitlines() if line.strip().startswith("probe ")}
    assert shown == set(cli.commands)


def test_every_option_the_readme_shows_a_command_exists():
    text = README.read_text()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    lines += re.findall(r"`(probe [a-z]+ [^`]*)`", text)
    commands = [re.sub(r"\s+#.*$", "", line).split() for line in lines if line.strip().startswith("probe ")]
    assert len(commands) > 30
    unknown = [(words[1], option) for words in commands for option in words[2:]
               if re.fullmatch(r"--[a-z][a-z0-9-]*", option) and option not in options_of(words[1])]
    assert not unknown


def test_readme_and_help_describe_the_method_not_the_tutorials(runner):
    stale = ("seed 003", "seeds' method", "shared/seeds")
    readme = " ".join(README.read_text().split())
    assert not [phrase for phrase in stale if phrase in readme]
    for name in cli.commands:
        text = " ".join(runner.invoke(cli, [name, "--help"]).output.split())
        assert not [phrase for phrase in (*stale, "benchmarks/README.md") if phrase in text], name


def test_quiet_prints_only_the_last_line_and_json_the_summary(runner, tmp_path):
    quiet = runner.invoke(cli, ["filters", "--model", "xo", "--quiet", "--out", str(tmp_path / "q")])
    assert quiet.exit_code == 0 and quiet.output.splitlines() == [f"gallery: {tmp_path / 'q' / 'index.html'}"]
    args = ["maximize", "--model", "tinynets:tiny", "--size", "16", "--layer", "conv2", "--units", "0-2", "--steps",
            "2", "--json", "--out", str(tmp_path / "j")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["command"] == "maximize" and summary["items"] == 3 and summary["layer"] == "conv2"
    assert summary["cli"] == shlex.join(["probe", *args]) and summary["created"].endswith("+00:00")
    assert Path(summary["page"]).exists() and Path(summary["manifest"]).exists() and "3 image(s)" in summary["summary"]


@pytest.mark.parametrize("args", [
    ["filters", "--model", "xo", "--layer", "conv2", "--view", "mean"],
    ["activations", "xo:x", "--model", "xo", "--layer", "relu1", "--scale", "layer"],
    ["attribute", "xo:o", "--model", "xo", "--method", "gradcam"],
    ["style", "skimage:astronaut", "skimage:coffee", "--model", "tinynets:tiny", "--size", "16", "--steps", "2",
     "--style-layer", "conv1", "--content-layer", "conv2", "--snapshots", "1"],
])
def test_every_manifest_records_the_command_line_as_typed(runner, tmp_path, args):
    out = tmp_path / "my run"  # a space: the command line is shell-quoted
    result = runner.invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cli"] == shlex.join(["probe", *args, "--out", str(out)]) and "'" in manifest["cli"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", manifest["created"])


def test_python_saves_record_no_command_line(tmp_path):
    result = probe.filters("xo")
    manifest = json.loads((result.save(tmp_path / "f") / "manifest.json").read_text())
    assert "cli" not in manifest and "created" in manifest


@pytest.mark.parametrize("command", ["maximize", "dream", "style"])
def test_precision_help_and_behaviour_agree(runner, command):
    param = next(p for p in cli.commands[command].params if p.name == "precision")
    assert list(param.type.choices) == ["fp32", "bf16", "fp16", "auto"] and param.default == "auto"
    assert "fp16 needs a CUDA device" in param.help and "auto: bf16 with channels-last on CUDA, fp32 on the CPU" in param.help


def test_fp16_off_cuda_is_one_clear_usage_error(runner):
    result = runner.invoke(cli, ["maximize", "--model", "tinynets:tiny", "--size", "16", "--layer", "conv2",
                                 "--steps", "1", "--precision", "fp16", "--device", "cpu"])
    assert result.exit_code == 2 and "--precision" in result.output and "fp16 needs a CUDA device" in result.output


def complete(runner: CliRunner, words: str) -> list[str]:
    parts = words.split(" ")
    env = {"_PROBE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)}
    result = runner.invoke(cli, [], prog_name="probe", env=env)
    return [line.split(",", 1)[1] for line in result.output.splitlines() if line]


def test_shell_completion_of_models_and_layers(runner):
    assert complete(runner, "probe maximize --model sha") == ["shapes"]
    assert {"digits", "lenet5", "xo", "shapes"} <= set(complete(runner, "probe layers "))
    assert complete(runner, "probe maximize --model shapes --layer conv4") == ["conv4_1"]
    assert "conv2" in complete(runner, "probe maximize --layer conv")  # the default model, digits
    assert complete(runner, "probe dream --model shapes --layer relu1_1,relu2") == ["relu1_1,relu2_1", "relu1_1,relu2_2"]
    assert complete(runner, "probe dream --layer incep") == []  # googlenet is not built just to complete
    assert "gradcam" in complete(runner, "probe attribute digits:0 --method saliency,grad")[0]


def test_every_result_repr_is_short():
    digits = probe.load_model("digits")
    small = probe.load_model(tiny())
    results = [
        probe.maximize(digits, probe.objectives.channel("conv2", range(3)), steps=1),
        probe.dream(small, probe.load_image("skimage:astronaut", channels=3, size=24), ["conv1"], steps=1, octaves=1),
        probe.style_transfer(small, "skimage:astronaut", "skimage:coffee", size=16, steps=1, snapshots=0,
                             content_layers=["conv2"], style_layers=["conv1"]),
        probe.attribute(digits, "digits:0", method=["saliency"]),
        probe.feature_maps(digits, "digits:3"),
        probe.filters(digits),
    ]
    for result in results:
        text = repr(result)
        assert text.startswith(type(result).__name__ + "(") and len(text) < 260 and "tensor(" not in text, text
    assert "prediction 0" in repr(results[3]) and "conv2 (50, 11, 11)" in repr(results[4])
    assert repr(results[5]) == "Filters(digits conv1: 25 kernels 1x3x3, view single)"


def test_layers_of_a_zoo_model_report_its_shipped_weights(runner):
    assert "weights shipped" in runner.invoke(cli, ["layers", "digits"]).output.splitlines()[0]
    assert "weights random" in runner.invoke(cli, ["layers", "digits", "--weights", "none"]).output.splitlines()[0]
