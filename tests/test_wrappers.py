"""The wrappers and states a model arrives in from real training code: the caller's global modes around the call
(no_grad, inference_mode, a float64 default dtype), pruned and hook-based weight-normed layers, TorchScript,
dynamic quantization, torch.compile. Each entry point runs (or refuses in one line) and leaves the model and the
caller's global state as they were."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import probe
from tinynets import tiny


def _image(side: int = 16) -> torch.Tensor:
    return torch.rand(3, side, side, generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def _default_float64() -> Iterator[None]:
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(torch.float32)


def _modes() -> tuple[bool, bool, torch.dtype]:
    return torch.is_grad_enabled(), torch.is_inference_mode_enabled(), torch.get_default_dtype()


CALLERS = {"no_grad": torch.no_grad, "set_grad_enabled(False)": lambda: torch.set_grad_enabled(False),
           "inference_mode": torch.inference_mode, "default float64": _default_float64}  # fmt: skip


@pytest.mark.parametrize("caller", CALLERS)
def test_gradient_work_runs_whatever_global_modes_the_caller_set(caller: str) -> None:
    """Under the caller's no_grad, inference_mode or float64 default dtype, maximize blamed a gradient cut in the
    model, style transfer and Grad-CAM raised autograd's RuntimeError as a traceback, and under float64 the images
    cnn-probe made (torch.rand without a dtype) were float64, which the float32 model refused. Each now runs with
    finite results, and the caller's modes are theirs again after."""
    net = tiny().eval()
    calls: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "maximize": lambda image: probe.maximize(net, "conv2:0", steps=1, image_size=16).images,
        "class": lambda image: probe.maximize(net, probe.objectives.class_logit(1), steps=1, image_size=16).images,
        "dream": lambda image: probe.dream(net, image, ["conv2"], steps=1, octaves=1, device=None).image,
        "style": lambda image: probe.style_transfer(net, image, image, steps=1, size=16, content_layers=["conv2"],
                                                    style_layers=["conv2"]).image,  # fmt: skip
        "attribute": lambda image: probe.attribute(net, image, ["saliency", "gradcam"], size=16,
                                                   layer="conv2").attributions["gradcam"],  # fmt: skip
    }
    for name, call in calls.items():
        with CALLERS[caller]():
            inside = _modes()
            image = _image()  # made under the caller's mode: an inference tensor under inference_mode
            result = call(image)
            assert _modes() == inside, name
        assert result.dtype == torch.float32 and torch.isfinite(result).all(), name


def pruned_and_old_norms() -> nn.Sequential:
    """:func:`tiny` with conv1 pruned (a forward pre-hook computes ``weight`` into a plain attribute) and conv2
    under the old hook-based weight_norm (the same kind of attribute), after one training pass."""
    net = tiny()
    prune.l1_unstructured(net.conv1, "weight", 0.5)
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(net.conv2)
    net(_image()[None])
    return net


def test_the_weights_pre_hooks_computed_stay_the_users() -> None:
    """A pruned or hook-based weight-normed layer's ``weight`` is a tensor its pre-hook computes on every pass; a pass
    of cnn-probe's under no_grad replaced it with one that does not require grad and has no graph, so the user's
    ``conv.weight`` came back changed. It is the user's own tensor again after every call."""
    net = pruned_and_old_norms()
    weights = (net.conv1.weight, net.conv2.weight)
    assert all(w.requires_grad and w.grad_fn is not None for w in weights)
    probe.layers(net, (3, 16, 16))
    probe.feature_maps(net, _image(), "conv2", size=16)
    probe.attribute(net, _image(), "saliency", size=16)
    probe.maximize(net, "conv2:0", steps=1, image_size=16)
    assert net.conv1.weight is weights[0] and net.conv2.weight is weights[1]


def test_a_torchscript_module_is_converted_without_moving_the_callers_random_generator() -> None:
    """The conversion's example input was torch.rand from the global generator, and onnx2torch builds its modules
    with torch's initializers: every call on a scripted or traced module moved the caller's torch generator."""
    scripted = torch.jit.script(tiny().eval())
    torch.manual_seed(7)
    state = torch.get_rng_state()
    loaded = probe.load_model(scripted, input_size=16)
    probe.layers(scripted, (3, 16, 16))
    assert torch.equal(torch.get_rng_state(), state)
    assert "conv2" in dict(loaded.module.named_modules())


def test_a_dynamically_quantized_model_is_refused_naming_what_made_it() -> None:
    """quantize_dynamic's Linear gives the image no gradient (silently: its backward returns none): the refusal
    named only torch.ao.quantization.convert and listed the internal fc._packed_params as a module."""
    net = torch.ao.quantization.quantize_dynamic(tiny().eval(), {nn.Linear}, dtype=torch.qint8)
    with pytest.raises(probe.ProbeUsageError, match=r"quantized modules \(fc: .*quantize_dynamic\); ") as info:
        probe.maximize(net, "conv2:0", steps=1, image_size=16)
    assert "_packed_params" not in str(info.value) and info.value.param == "model"


def test_layers_of_a_compiled_model_runs_it_eagerly() -> None:
    """probe.layers called the compiled module itself: dynamo compiled the pass with its hooks (45 s for a small
    CNN on 2 cores, once per input shape), where every other entry point runs the same modules eagerly."""
    compiled = torch.compile(tiny().eval())

    def compiled_forward(*args: object, **kwargs: object) -> None:
        raise AssertionError("the compiled forward ran")

    compiled.forward = compiled_forward  # what dynamo would run
    rows = {row.name: row for row in probe.layers(compiled, (3, 16, 16))}
    assert rows["_orig_mod.conv2"].output_shape == (6, 8, 8)


class Blocks(nn.Module):
    """Two convolution blocks, a classifier and an auxiliary head that eval mode skips: 16x16 -> (N, 4)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.block1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 4)
        self.aux = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block1(x)
        if self.training:
            x = x + self.aux(x)
        return self.fc(self.block2(x).mean((2, 3)))


@pytest.mark.parametrize("call", ["maximize", "dream", "style", "feature_maps"])
def test_a_layer_that_never_runs_is_refused_saying_why_and_what_to_name(call: str) -> None:
    """A torch.fx GraphModule (symbolic_trace, an ONNX model, a converted TorchScript module) keeps containers only to
    hold the leaves its graph calls: maximize blamed 'an auxiliary head?', dream and style said only 'did not run',
    and feature maps of the named container came back empty, silently. Each names the leaves to use instead; a layer
    eval mode skips is refused by feature maps too, saying so."""
    image = _image()
    calls = {"maximize": lambda net, layer: probe.maximize(net, f"{layer}:0", steps=1, image_size=16),
             "dream": lambda net, layer: probe.dream(net, image, [layer], steps=1, octaves=1, device=None),
             "style": lambda net, layer: probe.style_transfer(net, image, image, steps=1, size=16,
                                                              content_layers=[layer], style_layers=[layer]),
             "feature_maps": lambda net, layer: probe.feature_maps(net, image, layer, size=16)}  # fmt: skip
    traced = torch.fx.symbolic_trace(Blocks().eval())
    with pytest.raises(probe.ProbeUsageError, match=r"torch\.fx graph .* \(block2\.0, block2\.1; the last, block2\.1,"):
        calls[call](traced, "block2")
    with pytest.raises(probe.ProbeUsageError, match=r"\baux\b.* the forward skips it \(an auxiliary head in eval mode"):
        calls[call](Blocks().eval(), "aux")


def test_a_model_built_after_a_float64_default_is_a_float32_model() -> None:
    """Under the caller's torch.set_default_dtype(torch.float64), load_model built the zoo's digits network with
    float64 parameters, which the float32 images of every command then did not fit ('bias type (double)')."""
    with _default_float64():
        loaded = probe.load_model("digits")
        result = probe.maximize(loaded, "conv2:0", steps=1)
        assert torch.get_default_dtype() == torch.float64
    assert {p.dtype for p in loaded.module.parameters()} == {torch.float32}
    assert torch.isfinite(result.images).all()


def test_an_atlas_runs_under_the_callers_no_grad(tmp_path) -> None:
    """build_atlas under the caller's no_grad refused every unit as 'not depending on the input image'."""
    from probe.atlas import build_atlas

    with torch.no_grad():
        summary = build_atlas("digits", layers=["conv1"], dataset="zoo", out=tmp_path / "atlas", steps=1, limit=8,
                              max_units=1, chunk=1)  # fmt: skip
    assert summary.units == 1


def test_feature_maps_read_a_sigmoid_head_as_such_under_the_callers_inference_mode() -> None:
    """Under inference_mode the pass kept no graph, so feature maps could not see the model's sigmoid and read its
    outputs as logits: 'class 2 (22.7%)' instead of 'class 2 (sigmoid 60.4%)', silently."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5),
                        nn.Sigmoid()).eval()  # fmt: skip
    plain = str(probe.feature_maps(net, _image(), size=16).prediction)
    with torch.inference_mode():
        inside = str(probe.feature_maps(net, _image(), size=16).prediction)
    assert "sigmoid" in plain and inside == plain
