"""Every model source end to end, offline: a tiny model of each kind, built here, through the API and the CLI.

For each: ``probe layers``, a channel maximized for a few steps (its score rises),
a class objective, and a saliency map, from Python and from the command line.
"""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import probe
from probe import objectives as O
from probe.cli.main import cli
from tinynets import tiny

FACTORY_CODE = textwrap.dedent('''
    from collections import OrderedDict

    from torch import nn


    def build(num_classes=4, width=4):
        """A tiny size-agnostic CNN."""
        return nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(3, width, 3, padding=1), relu1=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(2),
            flatten=nn.Flatten(), fc=nn.Linear(width * 4, num_classes),
        ))
''')


@dataclass
class Case:
    """One source: the spec, what to pass the loader, a layer to maximize, and what the load must say."""

    spec: str
    layer: str
    source: str
    classes: int
    api: dict = field(default_factory=dict)  # load_model keyword arguments
    cli: list[str] = field(default_factory=list)  # the same as command-line options


def _timm(tmp: Path) -> Case:
    return Case("timm:test_resnet", "conv1.0", "timm", 5, {"weights": None, "model_args": {"num_classes": 5},
                "input_size": 32}, ["--weights", "none", "--model-arg", "num_classes=5", "--input-size", "32"])  # fmt: skip


def _hf(tmp: Path) -> Case:
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3, image_size=32)
    torch.manual_seed(0)
    ResNetForImageClassification(config).save_pretrained(tmp / "hf-resnet")
    return Case(f"hf:{tmp / 'hf-resnet'}", "resnet.encoder.stages.0", "hf", 3)


def _file(tmp: Path) -> Case:
    (tmp / "mynet.py").write_text(FACTORY_CODE)
    return Case(f"{tmp / 'mynet.py'}:build(num_classes=3)", "conv1", "factory", 3, {"input_size": 16},
                ["--input-size", "16"])  # fmt: skip


def _dotted(tmp: Path) -> Case:
    package = tmp / "userpkg" / "nets"
    package.mkdir(parents=True)
    (tmp / "userpkg" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "small.py").write_text(FACTORY_CODE)
    return Case("userpkg.nets.small:build", "conv1", "factory", 6, {"model_args": ["num_classes=6"], "input_size": 16},
                ["--model-arg", "num_classes=6", "--input-size", "16"])  # fmt: skip


def _torchscript(tmp: Path) -> Case:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(tiny().eval()).save(str(tmp / "tiny.ts"))
    return Case(str(tmp / "tiny.ts"), "conv2", "torchscript", 4, {"input_size": 16}, ["--input-size", "16"])


def _onnx(tmp: Path) -> Case:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tiny().eval(), (torch.rand(1, 3, 16, 16),), str(tmp / "tiny.onnx"), dynamo=False,
                          opset_version=17, do_constant_folding=False)  # fmt: skip
    return Case(str(tmp / "tiny.onnx"), "conv2/Conv", "onnx", 4)  # 16 px read from the graph's input


def _safetensors(tmp: Path) -> Case:
    from safetensors.torch import save_file

    source = tiny()
    torch.nn.init.constant_(source.fc.bias, 0.5)
    save_file(source.state_dict(), str(tmp / "tiny.safetensors"))
    return Case("tinynets:tiny", "conv2", "factory", 4, {"weights": str(tmp / "tiny.safetensors"), "input_size": 16},
                ["--weights", str(tmp / "tiny.safetensors"), "--input-size", "16"])  # fmt: skip


CASES: dict[str, Callable[[Path], Case]] = {"timm": _timm, "hf": _hf, "file": _file, "dotted": _dotted,
                                            "torchscript": _torchscript, "onnx": _onnx, "safetensors": _safetensors}


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Case]]:
    """One folder for the model files of this module, each written once."""
    return tmp_path_factory.mktemp("models"), {}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, models_folder: tuple[Path, dict[str, Case]],
         monkeypatch: pytest.MonkeyPatch) -> Case:  # fmt: skip
    folder, built = models_folder
    monkeypatch.chdir(folder)  # the dotted package is importable from the current folder, as the help says
    if request.param not in built:
        built[request.param] = CASES[request.param](folder)
    return built[request.param]


def test_api_channel_class_and_saliency(case: Case) -> None:
    loaded = probe.load_model(case.spec, device="cpu", **case.api)
    assert loaded.source == case.source and not loaded.module.training
    height = loaded.preprocess.input_size[0]
    layers = dict(loaded.module.named_modules())
    assert case.layer in layers and len(layers) > 3  # real modules, hookable
    channel = probe.maximize(loaded, O.channel(case.layer, [0]), steps=4, preset="plain", seed=0)
    assert channel.images.shape == (1, 3, height, height) and channel.history[-1, 0] > channel.history[0, 0]
    klass = probe.maximize(loaded, O.class_logit([case.classes - 1]), steps=2, preset="plain", seed=0)
    assert klass.outputs is not None and klass.outputs.shape == (1, case.classes)
    image = torch.rand(3, height, height, generator=torch.Generator().manual_seed(0))
    saliency = probe.attribute(loaded, image, "saliency")
    heatmap = saliency.heatmaps["saliency"]
    assert heatmap.shape[-2:] == (height, height) and torch.isfinite(heatmap).all() and heatmap.abs().sum() > 0


def test_cli_layers_maximize_and_attribute(case: Case, tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["layers", case.spec, *case.cli])
    assert listed.exit_code == 0, listed.output
    assert case.layer in listed.output and f"source {case.source}" in listed.output
    out = tmp_path / "max"
    result = runner.invoke(cli, ["maximize", "--model", case.spec, *case.cli, "--objective", "class", "--units", "0",
                                 "--steps", "2", "--preset", "plain", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_source"] == case.source and manifest["preprocess"]["channels"] == 3
    side = 32 if case.source in ("timm", "hf") else 16
    assert manifest["preprocess"]["input_size"] == [side, side]
    result = runner.invoke(cli, ["attribute", "skimage:astronaut", "--model", case.spec, *case.cli, "--method",
                                 "saliency", "--out", str(tmp_path / "why")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "why" / "manifest.json").is_file()


def test_timm_and_hf_statistics_come_from_the_model(tmp_path: Path) -> None:
    """timm's pretrained_cfg and the transformers processor file give mean, std and size, for specs and modules."""
    import timm

    vit = probe.load_model("timm:test_vit", weights=None, device="cpu")
    assert vit.preprocess.mean == (0.5, 0.5, 0.5) and vit.input_shape == (3, 160, 160)
    given = probe.load_model(timm.create_model("test_vit", pretrained=False).eval())  # a module: its own cfg too
    assert given.preprocess == vit.preprocess
    case = _hf(tmp_path)
    (tmp_path / "hf-resnet" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.2, 0.2], "size": {"height": 40, "width": 48}}))
    loaded = probe.load_model(case.spec, device="cpu")
    assert loaded.preprocess.mean == (0.5, 0.4, 0.3) and loaded.preprocess.input_size == (40, 48)
    assert loaded.weights == "in folder"
    from transformers import ResNetForImageClassification

    module = ResNetForImageClassification.from_pretrained(str(tmp_path / "hf-resnet")).eval()
    wrapped = probe.load_model(module)  # a transformers module gives logits too, with the names unchanged
    assert wrapped.module(torch.rand(1, 3, 32, 32)).shape == (1, 3) and "resnet.embedder" in dict(
        wrapped.module.named_modules())
    assert not module.training and all(p.requires_grad for p in module.parameters())
    module.config.save_pretrained(tmp_path / "config-only")  # config.json alone: random weights, offline
    random = probe.load_model(f"hf:{tmp_path / 'config-only'}", weights=None, device="cpu", seed=1)  # saved: seed 0
    assert random.weights == "random" and random.labels is None and random.describe()["hf_class"] == type(module).__name__
    assert not torch.equal(random.module.classifier[1].weight, module.classifier[1].weight)
    with pytest.raises(probe.ProbeUsageError, match="cannot load .* as a transformers image classifier"):
        probe.load_model(f"hf:{tmp_path / 'config-only'}", device="cpu")  # no weights in that folder


def test_random_initialization_follows_the_seed_and_keeps_the_callers_rng() -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = probe.load_model("timm:test_resnet", weights=None, seed=0).module.state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator neither used nor reseeded
    again = probe.load_model("timm:test_resnet", weights=None, seed=0).module.state_dict()
    other = probe.load_model("timm:test_resnet", weights=None, seed=1).module.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    for spec in ("squeezenet1_1", "digits"):  # torchvision and the zoo seed the same way
        a, b, c = (probe.load_model(spec, weights=None, seed=s, device="cpu").module for s in (0, 0, 1))
        assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
        assert not all(torch.equal(x, z) for x, z in zip(a.parameters(), c.parameters()))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_cli_random_weights_are_reproducible(tmp_path: Path) -> None:
    runner = CliRunner()
    images = []
    for run, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        result = runner.invoke(cli, ["maximize", "--model", "timm:test_resnet", "--weights", "none", "--model-arg",
                                     "num_classes=3", "--input-size", "32", "--objective", "class", "--units", "0",
                                     "--steps", "2", "--seed", seed, "--out", str(tmp_path / run)])  # fmt: skip
        assert result.exit_code == 0, result.output
        images.append(sorted((tmp_path / run).glob("*.png"))[0].read_bytes())
    assert images[0] == images[1] and images[0] != images[2]


@pytest.mark.parametrize(
    ("args", "option", "message"),
    [
        (["--model", "tinynets:tiny", "--weights", "WRONG"], "--weights", "wrong shapes (file vs model): conv1.weight"),
        (["--model", "digits", "--mean", "0.1,0.2"], "--mean", "2 values for a model with 1 input channel"),
        (["--model", "tinynets:tiny", "--model-arg", "nonsense"], "--model-arg", "KEY=VALUE"),
        (["--model", "tinynets:tiny(channels=__import__('os'))"], "--model", "must be Python literals"),
        (["--model", "timm:create_model"], "--model", "unknown timm model 'create_model'"),
        (["--model", "missing.onnx"], "--model", "does not exist"),
    ],
)
def test_cli_model_errors_are_one_line(tmp_path: Path, args: list[str], option: str, message: str) -> None:
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file(tiny(channels=1).state_dict(), str(wrong))  # same keys, other shapes
    args = [str(wrong) if a == "WRONG" else a for a in args]
    result = CliRunner().invoke(cli, ["maximize", *args, "--steps", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and option in result.output and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_layers_says_shipped_for_the_zoo_and_takes_model_option() -> None:
    runner = CliRunner()
    positional = runner.invoke(cli, ["layers", "digits"])
    option = runner.invoke(cli, ["layers", "--model", "digits"])
    assert positional.exit_code == 0 and "weights shipped" in positional.output
    assert option.output == positional.output


@pytest.mark.parametrize(("spec", "package", "extra"), [("timm:test_resnet", "timm", "timm"),
                                                        ("hf:some/model", "transformers", "hf"),
                                                        ("net.onnx", "onnx2torch", "onnx")])  # fmt: skip
def test_a_missing_optional_package_names_its_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spec: str,
                                                    package: str, extra: str) -> None:  # fmt: skip
    import sys

    monkeypatch.setitem(sys.modules, package, None)  # import raises ImportError, as when not installed
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.onnx").write_bytes(b"")
    with pytest.raises(probe.ProbeUsageError, match=rf"needs the '{package}' package: pip install 'cnn-probe\[{extra}\]'"):
        probe.load_model(spec, weights="offline", device="cpu")


def test_arguments_go_where_they_fit() -> None:
    with pytest.raises(probe.ProbeUsageError, match="takes no model arguments") as info:
        probe.load_model("digits(width=3)")
    assert info.value.param == "model_arg"
    for spec in ("timm:create_model('test_resnet', num_classes=7)", "timm:create_model(model_name='test_resnet')"):
        built = probe.load_model(spec, weights=None, device="cpu", model_args={"num_classes": 7})  # timm's own call
        assert built.describe()["timm_model"] == "test_resnet" and built(torch.rand(1, 3, 32, 32)).shape == (1, 7)
    loaded = probe.load_model("squeezenet1_1(num_classes=7)", weights=None, device="cpu")
    assert loaded(torch.rand(1, 3, 64, 64)).shape == (1, 7) and loaded.labels is None
    assert loaded.describe()["model_args"] == {"num_classes": 7} and loaded.describe()["init_seed"] == 0


@pytest.mark.parametrize(("code", "call", "message"), [
    ("import torch\nraise RuntimeError('broken on purpose')\n", "build", "RuntimeError: broken on purpose (bad.py, line 2)"),
    ("def build(:\n", "build", "SyntaxError: invalid syntax (bad.py, line 1)"),
    ("def build():\n    raise ValueError('no such width')\n", "build", "ValueError: no such width (bad.py, line 2)"),
    ("def build():\n    return len(3)\n", "build", "TypeError: object of type 'int' has no len() (bad.py, line 2)"),
])  # fmt: skip
def test_a_model_file_that_raises_is_one_line_with_its_place(tmp_path: Path, code: str, call: str,
                                                             message: str) -> None:  # fmt: skip
    """Import and build errors of the user's own code: exit 1, the error and the file's line, no traceback."""
    (tmp_path / "bad.py").write_text(code)
    result = CliRunner().invoke(cli, ["layers", f"{tmp_path / 'bad.py'}:{call}"])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    with pytest.raises(probe.ProbeRuntimeError, match="fix that code"):
        probe.load_model(f"{tmp_path / 'bad.py'}:{call}", device="cpu")


def test_a_factory_on_the_meta_device_or_with_wrong_arguments_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "meta.py").write_text(FACTORY_CODE + "\n\ndef empty():\n    return build().to('meta')\n")
    result = CliRunner().invoke(cli, ["layers", f"{tmp_path / 'meta.py'}:empty"])
    assert result.exit_code == 2 and "--model" in result.output and "meta device (conv1.weight" in result.output
    result = CliRunner().invoke(cli, ["layers", f"{tmp_path / 'meta.py'}:build", "--model-arg", "depth=3"])
    assert result.exit_code == 2 and "--model-arg" in result.output and "unexpected keyword argument 'depth'" in (
        result.output)


def test_hf_hub_names_read_the_processor_statistics_from_the_cache_offline(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub name found in the HF cache under HF_HUB_OFFLINE: its preprocessor_config.json, as for a folder."""
    import huggingface_hub.constants

    snapshot = tmp_path / "models--someone--tiny-resnet" / "snapshots" / "0123abcd"
    _hf(tmp_path)  # writes tmp_path / "hf-resnet"
    (tmp_path / "hf-resnet").rename(snapshot.parent.mkdir(parents=True) or snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    (snapshot / "preprocessor_config.json").write_text(json.dumps({
        "image_mean": [0.5, 0.4, 0.3], "image_std": 0.25, "size": {"height": 40, "width": 48},
        "do_center_crop": False, "crop_size": {"height": 56, "width": 56}}))  # no crop: the resize is the input
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for weights in ("default", None):
        loaded = probe.load_model("hf:someone/tiny-resnet", weights=weights, device="cpu")
        assert loaded.preprocess == probe.Preprocess((0.5, 0.4, 0.3), (0.25,) * 3, 3, (40, 48)), weights
    (snapshot / "preprocessor_config.json").unlink()  # none in the cache: transformers' defaults, still offline
    assert probe.load_model("hf:someone/tiny-resnet", device="cpu").preprocess.mean == probe.models.IMAGENET_MEAN


def test_a_fixed_size_vit_at_another_size_is_a_size_error(tmp_path: Path) -> None:
    """timm's ViT asserts its size (AssertionError), transformers' raises ValueError: both one --size line, exit 2."""
    from transformers import ViTConfig, ViTForImageClassification

    ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=16)).save_pretrained(tmp_path / "vit")
    for spec in ("timm:test_vit(dynamic_img_size=False)", f"hf:{tmp_path / 'vit'}"):
        result = CliRunner().invoke(cli, ["activations", "skimage:astronaut", "--model", spec, "--weights", "none",
                                          "--size", "48", "--out", str(tmp_path / "o")])  # fmt: skip
        assert result.exit_code == 2 and "'--size'" in result.output and "doesn't match model" in result.output, (
            result.output)
        assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_a_model_file_inside_a_package_keeps_its_relative_imports(tmp_path: Path) -> None:
    """``relpkg/nets/net.py:build`` with ``from ..blocks import width`` imports as ``relpkg.nets.net`` (it failed:
    'attempted relative import with no known parent package'); a file outside a package still imports alone."""
    package = tmp_path / "relpkg_probe" / "nets"
    package.mkdir(parents=True)
    (tmp_path / "relpkg_probe" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (tmp_path / "relpkg_probe" / "blocks.py").write_text("WIDTH = 5\n")
    (package / "net.py").write_text(textwrap.dedent("""\
        from torch import nn
        from ..blocks import WIDTH

        def build():
            return nn.Sequential(nn.Conv2d(3, WIDTH, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, 2))
        """))
    try:
        loaded = probe.load_model(f"{package / 'net.py'}:build", input_size=16)
        assert loaded.module[0].out_channels == 5
        result = CliRunner().invoke(cli, ["layers", f"{package / 'net.py'}:build", "--size", "16"])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    finally:
        for name in [n for n in sys.modules if n == "relpkg_probe" or n.startswith("relpkg_probe.")]:
            del sys.modules[name]
