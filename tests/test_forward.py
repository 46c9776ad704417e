"""A model's own refusal of an input (any exception from its forward pass) becomes one error naming the size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import probe
from conftest import model_state, same_state
from probe import objectives as O
from probe.cli.main import cli
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.forward import ModelInputError
from probe.hooks import layers as list_layers
from tinynets import FixedSize, tiny

IMAGE = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))

CALLS: dict[str, Callable[[torch.nn.Module], Any]] = {
    "maximize": lambda m: probe.maximize(m, O.channel("body.conv2", 0), steps=1, image_size=8),
    "maximize class": lambda m: probe.maximize(m, O.class_logit(0), steps=1, image_size=8),
    "dream": lambda m: probe.dream(m, IMAGE, layers=["body.conv2"], steps=1, octaves=1),
    "feature_maps": lambda m: probe.feature_maps(m, IMAGE, size=8),
    "attribute": lambda m: probe.attribute(m, IMAGE, "saliency", size=8),
    "layers": lambda m: list_layers(m, (3, 8, 8)),
}


@pytest.mark.parametrize("error", [AssertionError, ValueError, IndexError])
@pytest.mark.parametrize("call", list(CALLS))
def test_the_models_own_check_becomes_a_size_error(call: str, error: type[Exception]) -> None:
    """Whatever the model raises on an 8x8 input (ViT's AssertionError, a user's ValueError): one error about
    the size, quoting the model; the module keeps its mode, flags, weights, and no hook."""
    module = FixedSize(error).train()
    module.body.conv1.weight.requires_grad_(False)
    before = model_state(module)
    with pytest.raises(ModelInputError, match=r"cannot run on a 3x8x8 float32 image .*Expected 16x16") as raised:
        CALLS[call](module)
    assert raised.value.param == "size" and isinstance(raised.value.original, error)
    assert same_state(before, model_state(module))


def test_errors_of_cnn_probes_own_hooks_are_not_blamed_on_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside one of cnn-probe's hooks is a bug of ours: it passes through as it is."""

    def broken(value: Any) -> torch.Tensor:
        raise RuntimeError("a bug in a hook")

    monkeypatch.setattr("probe.hooks.first_tensor", broken)
    with pytest.raises(RuntimeError, match="a bug in a hook") as raised:
        probe.maximize(tiny(), O.channel("conv2", 0), steps=1, image_size=16)
    assert not isinstance(raised.value, ModelInputError)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
@pytest.mark.parametrize("call", ["feature_maps", "dream", "maximize"])
def test_a_module_of_another_dtype_is_a_runtime_error_not_a_size_or_layer_error(call: str,
                                                                               dtype: torch.dtype) -> None:
    """A float16 module on the CPU, a float64 one anywhere: what to do, not --size (dream blamed --layer)."""
    image = torch.rand(3, 16, 16)
    calls = {"feature_maps": lambda m: probe.feature_maps(m, image),
             "dream": lambda m: probe.dream(m, image, layers=["conv2"], steps=1, octaves=1),
             "maximize": lambda m: probe.maximize(m, O.channel("conv2", 0), steps=1, image_size=16)}
    with pytest.raises(ProbeRuntimeError, match="differ in dtype"):
        calls[call](tiny().to(dtype))


class FailsOnItsDevice(torch.nn.Module):
    """A model whose forward meets a GPU failure (as CUDA reports an illegal access or a device-side assert)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.body(x)
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be ...")


@pytest.mark.parametrize("call", ["feature_maps", "maximize", "layers"])
def test_a_device_failure_inside_the_model_is_a_runtime_error_not_the_inputs_size(call: str) -> None:
    """The atlas met it in its receptive-field pass: 'the model cannot run on a 3x16x16 image', naming --size."""
    calls = {"feature_maps": lambda m: probe.feature_maps(m, torch.rand(3, 16, 16), size=16),
             "maximize": lambda m: probe.maximize(m, O.class_logit(0), steps=1, image_size=16),
             "layers": lambda m: list_layers(m, (3, 16, 16))}
    with pytest.raises(ProbeRuntimeError, match="failed on its device.*no input size fixes") as raised:
        calls[call](FailsOnItsDevice())
    assert not isinstance(raised.value, ProbeUsageError)


@pytest.mark.parametrize("args", [
    ("maximize", "--objective", "class", "--units", "0", "--steps", "1", "--size", "8"),
    ("maximize", "--target", "body.conv2:0", "--steps", "1", "--size", "8"),
    ("dream", "skimage:astronaut", "--layer", "body.conv2", "--steps", "1", "--octaves", "1", "--size", "8"),
    ("style", "skimage:astronaut", "skimage:coffee", "--content-layer", "body.conv2", "--style-layer",
     "body.conv1", "--steps", "1", "--size", "8"),
    ("activations", "skimage:astronaut", "--size", "8"),
    ("attribute", "skimage:astronaut", "--method", "gradcam", "--size", "8"),
    ("layers", "--size", "8"),
    ("atlas", "--layers", "body.conv1", "--dataset", "skimage", "--steps", "1", "--limit", "2", "--input-size", "8"),
], ids=lambda args: args[0] + (f" {args[2]}" if args[0] == "maximize" else ""))
def test_cli_names_the_size_option(args: tuple[str, ...], tmp_path: Path) -> None:
    out = () if args[0] == "layers" else ("--out", str(tmp_path / "out"))
    result = CliRunner().invoke(cli, [*args, "--model", "tinynets:fixed_size", "--weights", "none", *out])
    option = "'--input-size'" if args[0] == "atlas" else "'--size'"
    assert result.exit_code == 2, result.output
    assert option in result.output and "Expected 16x16 but got 8x8" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("options", "param", "words"), [
    ({"tile_size": 12, "octaves": 1}, "tile", "leave --tile out"),
    ({"octaves": 2}, "octaves", "--octaves 1"),
])
def test_a_fixed_size_model_refusing_a_dreams_tile_or_octave_names_that_option(options: dict[str, int], param: str,
                                                                               words: str) -> None:
    """The image is the model's size, 32 px: a tile or a smaller octave is what it refuses, not --size."""
    net, image = FixedSize(side=32), torch.rand(3, 32, 32)
    with pytest.raises(ProbeUsageError, match=words) as raised:
        probe.dream(net, image, layers=["body.conv2"], steps=1, jitter=0, **options)
    assert raised.value.param == param
    assert probe.dream(net, image, layers=["body.conv2"], steps=1, octaves=1).image.shape[-1] == 32


# --- torch's own refusals by a bare module with a fixed-size head (the digits net, wrapped at 224 px) ----------

def _digits() -> torch.nn.Module:
    from probe.zoo.nets import digits_net
    return digits_net()  # conv1 3x3 ... fc1 = Linear(1250, 100): only 28x28 reaches the head at its size


DIGIT = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))

BARE_CALLS: dict[str, tuple[Callable[[torch.nn.Module], Any], str]] = {
    "maximize fc1 at 224": (lambda m: probe.maximize(m, "fc1:0", steps=1), "mat1 and mat2"),
    "maximize class at 224": (lambda m: probe.maximize(m, O.class_logit(0), steps=1), "mat1 and mat2"),
    "maximize image_size=2": (lambda m: probe.maximize(m, "conv2:0", steps=1, image_size=2), "Kernel size"),
    "attribute at 224": (lambda m: probe.attribute(m, DIGIT), "mat1 and mat2"),
    "attribute size=1": (lambda m: probe.attribute(m, DIGIT, size=1), "Kernel size"),
    "feature_maps at 224": (lambda m: probe.feature_maps(m, DIGIT), "mat1 and mat2"),
    "layers (1, 2, 2)": (lambda m: list_layers(m, (1, 2, 2)), "Kernel size"),
}


@pytest.mark.parametrize("call", list(BARE_CALLS))
def test_torchs_own_size_errors_reach_the_api_as_one_size_error(call: str) -> None:
    """torch's 'mat1 and mat2 shapes cannot be multiplied' / 'Kernel size can't be greater' from the model's
    forward pass: a one-line ModelInputError naming size (what the CLI prints), the module as it was."""
    module = _digits().train()
    before = model_state(module)
    function, words = BARE_CALLS[call]
    with pytest.raises(ModelInputError, match=words) as raised:
        function(module)
    assert raised.value.param == "size" and "\n" not in str(raised.value)
    assert same_state(before, model_state(module))


def test_a_layer_before_a_fixed_size_head_is_maximized_at_any_size() -> None:
    """'conv2:0' at 64 px on the digits net: the run stops at conv2, so the head refusing 64 px does not matter
    (learning conv2's shape ran the whole net and refused it)."""
    result = probe.maximize(_digits(), "conv2:0", steps=1, image_size=64)
    assert result.images.shape == (1, 1, 64, 64) and torch.isfinite(result.images).all()
    assert probe.optimize.inspect_layer(_digits(), "conv2", 64).is_output is False


def test_a_fixed_size_model_takes_a_non_square_style_image_stretched_to_the_results_size() -> None:
    """A 10x16 style image keeps its aspect ratio at size 16; the model takes 16x16 only (ViT, MaxViT): the
    style is stretched to the 16x16 the model took; the module is left as it was."""
    net = FixedSize().train()
    net.body.conv1.weight.requires_grad_(False)
    before = model_state(net)
    content, style = torch.rand(3, 16, 16), torch.rand(3, 10, 16)
    result = probe.style_transfer(net, content, style, content_layers=["body.conv2"], style_layers=["body.conv1"],
                                  steps=1, size=16)
    assert result.styles[0].shape == (3, 16, 16) and result.image.shape == (3, 16, 16)
    assert same_state(before, model_state(net))


@pytest.mark.parametrize(("options", "param", "words"), [
    ({"size": 16, "style_scale": 0.5}, "style_scale", "cannot run on a 5x8 style image .*--style-scale 1"),
    ({"size": 12}, "size", "cannot run on the 12x12 result .*Expected 16x16.*give a --size HxW"),
])
def test_a_fixed_size_models_refusal_in_style_transfer_names_the_option(options: dict[str, Any], param: str,
                                                                        words: str) -> None:
    net = FixedSize()
    loaded = probe.load_model(net, input_size=16)
    with pytest.raises(ProbeUsageError, match=words) as raised:
        probe.style_transfer(loaded, torch.rand(3, 16, 16), torch.rand(3, 10, 16), content_layers=["body.conv2"],
                             style_layers=["body.conv1"], steps=1, **options)
    assert raised.value.param == param


def test_style_at_the_default_size_takes_the_size_a_fixed_size_model_takes() -> None:
    """The default result size (twice a 16 px input side, 32; 256 for ViT's 224) is refused by a model that
    takes one size: the result is made at the model's own, the content stretched to it; a size given is kept."""
    loaded = probe.load_model(FixedSize(), input_size=16)
    content = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    result = probe.style_transfer(loaded, content, torch.rand(3, 10, 16), content_layers=["body.conv2"],
                                  style_layers=["body.conv1"], steps=1)
    assert result.image.shape == (3, 16, 16)
    with pytest.raises(ProbeUsageError, match="cannot run on the 32x32 result") as raised:
        probe.style_transfer(loaded, torch.rand(3, 16, 16), torch.rand(3, 16, 16), content_layers=["body.conv2"],
                             style_layers=["body.conv1"], steps=1, size=32)
    assert raised.value.param == "size"


def test_cli_style_on_a_fixed_size_model_with_a_non_square_style(tmp_path: Path) -> None:
    """skimage:coffee is 400x600: at --size 16 it is 11x16, which the model refuses; it is stretched to 16x16."""
    result = CliRunner().invoke(cli, ["style", "skimage:astronaut", "skimage:coffee", "--model", "tinynets:fixed_size",
                                      "--weights", "none", "--content-layer", "body.conv2", "--style-layer",
                                      "body.conv1", "--steps", "1", "--size", "16", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
