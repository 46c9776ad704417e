"""probe.record and probe.capture against captum's LayerActivation on real torchvision architectures.

Random seeded weights (``weights=None``), batch 2 at 64 px. The layers are the
ones whose outputs a later in-place operation rewrites (a convolution before
``ReLU(inplace=True)``, a ResNet ``bn2`` before ``out += identity``, GoogLeNet's
batch norms before ``F.relu(x, inplace=True)``) and modules that run several
times in one forward pass (a ResNet block's ``relu``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import torch
import torchvision
from captum.attr import LayerActivation
from click.testing import CliRunner

import probe
from conftest import clones_while, no_hooks_left
from probe import objectives as O
from probe.cli.main import cli
from probe.dream.objective import make_objective
from probe.errors import ProbeUsageError
from probe.optimize import evaluate
from probe.tiling import tile_plan

TOLERANCE = 1e-5

LAYERS = {
    "vgg16": ["features.0", "features.10", "features.11", "features.12", "features.28", "classifier.0"],
    "alexnet": ["features.3", "features.8", "classifier.1", "classifier.4"],
    "resnet18": ["bn1", "layer1.0.bn2", "layer2.1.bn2", "layer2.1", "layer3.0.downsample.1", "layer4"],
    "googlenet": ["conv1.bn", "inception3a.branch2.1.bn", "inception4c", "inception5b.branch4.1.bn"],
}


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(weights=None, **options).eval().requires_grad_(False)


def captum_activations(net: torch.nn.Module, inputs: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """The reference: captum's LayerActivation of each named layer (it clones inside its hook)."""
    modules = dict(net.named_modules())
    with torch.no_grad():
        values = LayerActivation(net, [modules[name] for name in names]).attribute(inputs)
    return dict(zip(names, values))


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    """Two seeded 64 px images in [0, 1]."""
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def images(pixels) -> torch.Tensor:
    """:func:`pixels` normalized with ImageNet's mean and std, as every torchvision model's input is."""
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (pixels - mean) / std


@pytest.fixture(scope="module")
def nets() -> Callable[[str], torch.nn.Module]:
    """Each architecture built once for the module (vgg16's random init alone takes seconds)."""
    built: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in built:
            built[name] = _build(name)
        return built[name]

    return get


@pytest.fixture(scope="module")
def reference(nets, images) -> Callable[[str], dict[str, torch.Tensor]]:
    """captum's activations of each architecture's :data:`LAYERS` for :func:`images`, computed once."""
    done: dict[str, dict[str, torch.Tensor]] = {}

    def get(arch: str) -> dict[str, torch.Tensor]:
        if arch not in done:
            done[arch] = captum_activations(nets(arch), images, LAYERS[arch])
        return done[arch]

    return get


def per_call_reference(net: torch.nn.Module, inputs: torch.Tensor, name: str) -> list[torch.Tensor]:
    """Every call's output of module ``name``, cloned at hook time."""
    calls: list[torch.Tensor] = []
    handle = dict(net.named_modules())[name].register_forward_hook(lambda m, a, out: calls.append(out.detach().clone()))
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        handle.remove()
    return calls


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    assert torch.allclose(actual, expected, rtol=TOLERANCE, atol=TOLERANCE), float((actual - expected).abs().max())


@pytest.mark.parametrize("arch", list(LAYERS))
def test_record_and_capture_agree_with_captum(arch: str, nets, images, reference) -> None:
    net, names, expected = nets(arch), LAYERS[arch], reference(arch)
    with torch.no_grad(), probe.record(net, names) as acts:
        net(images)
    with torch.no_grad():
        captured = probe.capture(net, images, names)
    for name in names:
        assert_close(acts[name], expected[name])
        assert_close(captured[name], expected[name])
    assert no_hooks_left(net)


def test_the_layers_chosen_are_rewritten_in_place(reference) -> None:
    """The premise of this module: what the in-place operation leaves is far from the module's output."""
    vgg = reference("vgg16")
    assert vgg["features.10"].min() < 0 and vgg["features.11"].min() == 0
    assert torch.equal(vgg["features.11"], vgg["features.10"].relu())
    resnet = reference("resnet18")
    assert (resnet["layer2.1"] - resnet["layer2.1.bn2"].relu()).abs().max() > 0.1  # the residual added after bn2


@pytest.mark.parametrize("options", [{"reduce": "sum"}, {"to_cpu": True}, {"detach": False}], ids=str)
def test_record_options_keep_the_values_before_the_in_place_op(options: dict, nets, images, reference) -> None:
    net = nets("alexnet")
    expected = reference("alexnet")["features.3"]
    if options.get("reduce"):
        expected = expected.flatten(2).sum(2)
    with probe.record(net, "features.3", **options) as acts:
        net(images)
    assert_close(acts["features.3"].detach(), expected)


def test_gradients_are_recorded_for_the_output_before_the_in_place_op(nets, images) -> None:
    net = nets("alexnet")
    x = images.clone().requires_grad_(True)
    with probe.record(net, ["features.3", "features.4"], grads=True) as acts:
        torch.autograd.grad(net(x)[:, 3].sum(), x)
    relu_grad = acts.grads["features.4"]
    assert_close(acts.grads["features.3"], relu_grad * (acts["features.3"] > 0))  # through the ReLU's mask
    assert acts["features.3"].min() < 0
    assert no_hooks_left(net)


def test_a_repeated_module_is_recorded_per_call(nets, images) -> None:
    resnet = nets("resnet18")
    first, second = per_call_reference(resnet, images, "layer1.0.relu")
    captum_last = captum_activations(resnet, images, ["layer1.0.relu"])["layer1.0.relu"]
    with torch.no_grad(), probe.record(resnet, ["layer1.0.relu", "layer1.1.relu#1"]) as acts:
        resnet(images)
    assert acts.calls["layer1.0.relu"] == 2
    assert {"layer1.0.relu#0", "layer1.0.relu#1", "layer1.1.relu#1"} == set(acts)
    assert_close(acts["layer1.0.relu#0"], first)
    assert_close(acts["layer1.0.relu#1"], second)
    assert_close(acts["layer1.0.relu#1"], captum_last)  # captum keeps the last call
    with pytest.raises(ProbeUsageError, match=r"'layer1.0.relu' runs 2 times.*'layer1.0.relu#0', 'layer1.0.relu#1'"):
        acts["layer1.0.relu"]
    assert "layer1.0.relu" not in acts


def test_accumulate_concatenates_each_call_over_passes(nets, images) -> None:
    resnet = nets("resnet18")
    first, second = per_call_reference(resnet, images, "layer1.0.relu")
    with torch.no_grad(), probe.record(resnet, "layer1.0.relu", accumulate=True) as acts:
        resnet(images)
        resnet(images[:1])
    assert_close(acts["layer1.0.relu#0"], torch.cat([first, first[:1]]))
    assert_close(acts["layer1.0.relu#1"], torch.cat([second, second[:1]]))


def test_capture_refuses_a_repeated_module_and_takes_one_call(nets, images) -> None:
    resnet = nets("resnet18")
    _, second = per_call_reference(resnet, images, "layer1.0.relu")
    with pytest.raises(ProbeUsageError, match="'layer1.0.relu#0', 'layer1.0.relu#1'") as info:
        probe.capture(resnet, images, ["layer1.0.relu"])
    assert info.value.param == "layer"
    with torch.no_grad():
        captured = probe.capture(resnet, images, ["layer1.0.relu#1", "layer2.1.bn2"])
    assert_close(captured["layer1.0.relu#1"], second)
    with pytest.raises(ProbeUsageError, match="runs 2 times"):
        evaluate(probe.load_model(resnet), O.channel("layer1.0.relu", 0), torch.rand(1, 3, 64, 64))
    assert no_hooks_left(resnet)


def test_an_objective_scores_the_value_before_the_relu(nets, pixels, reference) -> None:
    loaded = probe.load_model(nets("vgg16"))
    objective = O.channel("features.10", 1) + 1e-9 * O.channel("features.12", 0)
    score = evaluate(loaded, objective, pixels)
    expected = objective(O.Context(reference("vgg16"), pixels)).float()
    assert torch.allclose(score, expected, rtol=TOLERANCE)
    relu_score = reference("vgg16")["features.11"][:, 1].flatten(1).sum(1)
    assert (score - relu_score).abs().min() > 1.0  # what the ReLU left would score otherwise


def test_a_two_layer_dream_objective_reads_the_values_before_the_relu(nets) -> None:
    loaded = probe.load_model(nets("vgg16"))
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    scorer = make_objective(loaded, ["features.10", "features.12"], objective="mean")
    evaluation = scorer.evaluate(image, tile_plan(64, 64, None), gradient=True)
    reference = captum_activations(loaded.module, loaded.preprocess.normalize(image), ["features.10", "features.12"])
    for name in scorer.layers:
        expected = float(scorer.values(name, reference[name]).mean())
        assert float(evaluation.per_layer[name]) == pytest.approx(expected, rel=TOLERANCE, abs=TOLERANCE)
    assert evaluation.per_layer["features.10"] < 0 < float(scorer.values("features.10", reference["features.10"].relu()).mean())
    assert no_hooks_left(loaded.module)


def test_activations_cli_shows_negative_sums_for_a_conv_before_its_relu(tmp_path) -> None:
    out = tmp_path / "acts"
    result = CliRunner().invoke(cli, ["activations", "skimage:astronaut", "--model", "vgg16", "--weights", "none",
                                      "--layer", "features.10", "--size", "64", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    sums = [item["score"] for item in manifest["items"] if item.get("layer") == "features.10"]
    assert len(sums) == 64 and min(sums) < 0  # --help: a conv is recorded before its ReLU


# --- every in-place rewrite against the module's true output -------------------------------------------------------


def _cloned(value):
    """``value`` with every tensor in it (tuples, lists, dicts) cloned and detached."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _cloned(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_cloned(item) for item in value)
    return value


def true_outputs(net: torch.nn.Module, inputs: torch.Tensor, seed: int = 0,
                 mode: Callable[[], AbstractContextManager] = torch.no_grad) -> dict[str, list[torch.Tensor]]:
    """The reference: every call's output of every module, from a hook-free forward pass (in ``mode``) in which
    each module's ``forward`` is wrapped to clone what it returns (the model computes with the originals, as it
    does alone)."""
    calls: dict[str, list[torch.Tensor]] = {}
    wrapped = []
    for name, module in net.named_modules():
        if not name:
            continue

        def forward(*args, _forward=module.forward, _name=name, **kwargs):
            out = _forward(*args, **kwargs)
            first = probe.hooks.first_tensor(_cloned(out))
            if first is not None:
                calls.setdefault(_name, []).append(first)
            return out

        module.forward = forward
        wrapped.append(module)
    try:
        torch.manual_seed(seed)
        with mode():
            net(inputs)
    finally:
        for module in wrapped:
            del module.forward
    return calls


def keyed(calls: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``{name: value}`` for modules that ran once, ``{name#K: value}`` per call for the others."""
    return {name if len(values) == 1 else f"{name}#{k}": value
            for name, values in calls.items() for k, value in enumerate(values)}


class After(torch.nn.Module):
    """Applies ``rewrite`` to what comes in and returns what it gives (the input when it gives None)."""

    def __init__(self, rewrite: Callable[[torch.Tensor], torch.Tensor | None]) -> None:
        super().__init__()
        self.rewrite = rewrite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rewrite(x)
        return x if out is None else out


class Rewritten(torch.nn.Module):
    """conv -> ``after`` (which may rewrite the conv's output in place) -> 1x1 conv."""

    def __init__(self, after: torch.nn.Module) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.after = after
        self.head = torch.nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.after(self.conv(x)))


class Several(torch.nn.Module):
    """A block returning a tuple, list or dict whose first tensor the caller rewrites in place; the block's
    conv runs twice."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.kind = kind

    def forward(self, x: torch.Tensor):
        y = self.conv(x)
        z = self.conv(y)
        return {"tuple": (y, z), "list": [y, z], "dict": {"a": y, "b": z}}[self.kind]


class Unpacks(torch.nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.block = Several(kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        first = out["a"] if isinstance(out, dict) else out[0]
        return first.relu_() + 1


F = torch.nn.functional
REWRITES = {  # how real models rewrite a module's output in place after it returned
    "ReLU(inplace)": lambda y: torch.nn.ReLU(inplace=True)(y),
    "F.relu(inplace)": lambda y: F.relu(y, inplace=True),
    "F.relu_": F.relu_,
    "torch.relu_": torch.relu_,
    "Tensor.relu_": lambda y: y.relu_(),
    "+= identity": lambda y: y.__iadd__(torch.ones_like(y)),
    "add_": lambda y: y.add_(1.0),
    "mul_": lambda y: y.mul_(-1.0),
    "clamp_": lambda y: y.clamp_(0.0, 0.1),
    "sigmoid_": lambda y: y.sigmoid_(),
    "masked_fill_": lambda y: y.masked_fill_(y < 0, 0.0),
    "Hardswish(inplace)": lambda y: torch.nn.Hardswish(inplace=True)(y),
    "SiLU(inplace)": lambda y: torch.nn.SiLU(inplace=True)(y),
    "ReLU6(inplace)": lambda y: torch.nn.ReLU6(inplace=True)(y),
    "LeakyReLU(inplace)": lambda y: torch.nn.LeakyReLU(0.1, inplace=True)(y),
    "ELU(inplace)": lambda y: torch.nn.ELU(inplace=True)(y),
    "Hardtanh(inplace)": lambda y: torch.nn.Hardtanh(-0.1, 0.1, inplace=True)(y),
    "SELU(inplace)": lambda y: torch.nn.SELU(inplace=True)(y),
    "CELU(inplace)": lambda y: torch.nn.CELU(inplace=True)(y),
    "Mish(inplace)": lambda y: torch.nn.Mish(inplace=True)(y),
    "ellipsis setitem": lambda y: y.__setitem__((Ellipsis, slice(None, 3)), 0.0),
    "transpose relu_": lambda y: [y.transpose(1, 2).relu_()] and None,
    "flatten mul_": lambda y: [y.flatten(1).mul_(0.5)] and None,
    "add out=": lambda y: torch.add(y, 1.0, out=y),
    "slice relu_": lambda y: [y[:, :2].relu_()] and None,
    "view relu_": lambda y: [y.view(-1).relu_()] and None,
    "setitem": lambda y: y.__setitem__((slice(None), 0), 5.0),
    "out=": lambda y: torch.mul(y, 2.0, out=y),
    "copy_": lambda y: y.copy_(torch.zeros_like(y)),
    "detach().relu_()": lambda y: [y.detach().relu_()] and None,
    ".data.relu_()": lambda y: [y.data.relu_()] and None,  # past the version counter
}


def check_against_truth(net: torch.nn.Module, inputs: torch.Tensor, names: list[str], *, passes: int = 2) -> None:
    """record (under no_grad, then inference_mode, each twice: the learning pass and one that copies only what
    it learned) and capture (twice) read each named output as the module returned it."""
    truth = keyed(true_outputs(net, inputs))
    for mode in (torch.no_grad, torch.inference_mode):
        for _ in range(passes):
            torch.manual_seed(0)
            with mode(), probe.record(net, names) as acts:
                net(inputs.clone())
            for name in names:
                assert_close(acts[name], truth[name])
    if net.training:
        return
    for _ in range(passes):
        with torch.no_grad():
            captured = probe.capture(net, inputs.clone(), names, stop_early=False)
        for name in names:
            assert_close(captured[name], truth[name])
    assert no_hooks_left(net)


@pytest.mark.parametrize("rewrite", list(REWRITES))
def test_record_and_capture_read_the_output_before_each_kind_of_in_place_rewrite(rewrite: str) -> None:
    net = Rewritten(After(REWRITES[rewrite])).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    check_against_truth(net, x, ["conv", "after", "head"])


def test_record_reads_the_output_before_an_in_place_dropout_in_training() -> None:
    net = Rewritten(torch.nn.Dropout(0.5, inplace=True)).train()
    check_against_truth(net, torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)), ["conv", "after"])


@pytest.mark.parametrize("kind", ["tuple", "list", "dict"])
def test_outputs_holding_several_tensors_are_read_before_the_caller_rewrites_them(kind: str) -> None:
    net = Unpacks(kind).eval()
    check_against_truth(net, torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
                        ["block", "block.conv#0", "block.conv#1"])


class Caller(torch.nn.Module):
    """DenseNet's pattern: ``F.relu(self.features(x), inplace=True)``, the features' last output rewritten by the
    caller after the features' own pass ended."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
        self.head = torch.nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.features(x), inplace=True))


def test_record_of_a_submodule_keeps_what_its_caller_rewrites_after_it_returned() -> None:
    net = Caller().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    truth = keyed(true_outputs(net, x))
    for mode in (torch.no_grad, torch.no_grad, torch.inference_mode, torch.inference_mode, torch.enable_grad):
        with mode(), probe.record(net.features, ["1", "output"]) as acts:
            net(x)
        assert_close(acts["1"].detach(), truth["features.1"])
        assert_close(acts["output"].detach(), truth["features"])
        assert acts["1"].min() < 0


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_record_copies_only_the_outputs_the_pass_rewrites(mode, nets, images, reference) -> None:
    resnet = nets("resnet18")
    names = ["layer1.0.bn2", "layer1.0.relu", "layer2", "layer3.1.bn2", "layer4"]  # the bn2s: out += identity
    truth = keyed(true_outputs(resnet, images))

    def one_pass() -> None:
        with mode(), probe.record(resnet, names) as acts:
            resnet(images)
        for name in acts:
            assert_close(acts[name], truth[name])

    assert clones_while(one_pass) == 2  # only the two batch norms the addition rewrites, from the first pass on
    assert clones_while(one_pass) == 2


def _timm(name: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


def _torchvision(name: str, **options) -> Callable[[], torch.nn.Module]:
    return lambda: getattr(torchvision.models, name)(weights=None, **options)


REAL = {  # each with its own in-place rewrites: ReLU(inplace), out += identity, out.relu_(), Hardswish(inplace), ...
    "resnet50": (_torchvision("resnet50"), 32),
    "mobilenet_v2": (_torchvision("mobilenet_v2"), 32),
    "mobilenet_v3_small": (_torchvision("mobilenet_v3_small"), 32),
    "efficientnet_b0": (_torchvision("efficientnet_b0"), 32),
    "densenet121": (_torchvision("densenet121"), 32),
    "googlenet": (_torchvision("googlenet", aux_logits=False, init_weights=True), 32),
    "inception_v3": (_torchvision("inception_v3", aux_logits=False, init_weights=True), 80),
    "squeezenet1_0": (_torchvision("squeezenet1_0"), 48),
    "timm resnet18": (_timm("resnet18"), 32),
    "timm efficientnet_b0": (_timm("efficientnet_b0"), 32),
    "timm dla34": (_timm("dla34"), 32),
    "timm convnext_atto": (_timm("convnext_atto"), 32),
}


@pytest.mark.slow  # 2-10 s each on 2 cores: python -m pytest -m slow tests/test_record_reference.py
@pytest.mark.parametrize("arch", list(REAL))
def test_every_module_of_a_real_model_is_read_as_it_returned(arch: str) -> None:
    """All modules at once (record by plain names, capture by per-call names) against :func:`true_outputs`."""
    build, size = REAL[arch]
    torch.manual_seed(0)
    net = build().eval().requires_grad_(False)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    truth = keyed(true_outputs(net, x))
    plain = list(dict.fromkeys(name.split("#")[0] for name in truth))
    for mode in (torch.no_grad, torch.no_grad, torch.inference_mode, torch.inference_mode):
        with mode(), probe.record(net, plain) as acts:
            net(x)
        assert set(acts) == set(truth)
        for name, value in truth.items():
            assert_close(acts[name], value)
    for _ in range(2):
        with torch.no_grad():
            captured = probe.capture(net, x, list(truth), stop_early=False)
        for name, value in truth.items():
            if captured[name].shape == value.shape:  # a channels-last block comes channels first
                assert_close(captured[name], value)
    assert no_hooks_left(net)
