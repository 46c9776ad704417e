"""Model kinds beyond the 2-D image classifier: signals and volumes, dense predictions, module forms (compiled,
pruned, lazy, quantized), each through the commands' API and the CLI: real support or one line, the module unchanged."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import probe
from probe.cli.main import cli
from tinynets import tiny


def _image(side: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.rand(channels, side, side, generator=torch.Generator().manual_seed(0))


def audio() -> nn.Sequential:
    """A 1-D audio CNN: (N, 1, L) -> (N, 5)."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv1=nn.Conv1d(1, 4, 5, padding=2), relu=nn.ReLU(), gap=nn.AdaptiveAvgPool1d(1),
                                     flat=nn.Flatten(), fc=nn.Linear(4, 5)))  # fmt: skip


def volume() -> nn.Sequential:
    """A 3-D CNN (video, medical volumes): (N, 3, T, H, W) -> (N, 5)."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv1=nn.Conv3d(3, 4, 3, padding=1), gap=nn.AdaptiveAvgPool3d(1),
                                     flat=nn.Flatten(), fc=nn.Linear(4, 5)))  # fmt: skip


class ChannelsLastInput(nn.Module):
    """:func:`tiny` behind a forward that takes (N, H, W, C) images, as some ports from TensorFlow do."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 3, 1, 2))


class Dense(nn.Module):
    """A small U-Net: encoder, a skip connection, decoder, a 1x1 head: (N, 3, H, W) -> (N, 3 classes, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.down = nn.MaxPool2d(2)
        self.mid = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc(x)
        return self.head(torch.cat([skip, self.up(self.mid(self.down(skip)))], 1))


def test_models_of_signals_volumes_or_permuted_input_are_refused_naming_the_model() -> None:
    """A Conv1d or Conv3d model, or a forward taking (N, H, W, C), given cnn-probe's (N, C, H, W) images: the
    refusal named --size ('give an input size it accepts'), which no size can fix, and a Conv3d's read of a 4-D
    image as an unbatched volume showed as a channel mismatch. It names the model and what it takes now."""
    cases = ((audio(), 1, "conv1", r"conv1 \(Conv1d\) takes \(N, C, L\) signals|conv1d takes \(N, C, L\) signals"),
             (volume(), 3, "conv1", r"conv1 \(Conv3d\) takes \(N, C, D, H, W\) volumes|take \(N, C, T, H, W\) clips"),
             (ChannelsLastInput(), 3, "body.conv1", r"met 16 channels in a 3-channel image.*\(N, H, W, C\)"))
    for net, channels, layer, words in cases:
        before = {k: v.clone() for k, v in net.state_dict().items()}
        for call in (lambda: probe.maximize(net, probe.objectives.class_logit(0), steps=1, image_size=16),
                     lambda: probe.maximize(net, f"{layer}:0", steps=1, image_size=16),
                     lambda: probe.feature_maps(net, _image(channels=channels), layer, size=16),
                     lambda: probe.dream(net, _image(channels=channels), [layer], steps=1, octaves=1, device=None),
                     lambda: probe.style_transfer(net, _image(channels=channels), _image(channels=channels), steps=1,
                                                  size=16, content_layers=[layer], style_layers=[layer]),
                     lambda: probe.layers(net, (channels, 16, 16))):  # fmt: skip
            with pytest.raises(probe.ProbeUsageError, match=words) as info:
                call()
            assert info.value.param == "model", str(info.value)
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()) and not net._forward_hooks


def test_a_model_given_the_wrong_channel_count_names_in_channels() -> None:
    """A 4-channel image for a 3-channel model (an --in-channels of the user's, a first conv registered after
    another): the refusal named --size; it names --in-channels and the count the model takes."""
    loaded = probe.load_model(tiny(), channels=4, input_size=16)
    with pytest.raises(probe.ProbeUsageError, match="takes 3 channels: give --in-channels 3") as info:
        probe.maximize(loaded, "conv2:0", steps=1)
    assert info.value.param == "in_channels"


def test_the_cli_refuses_a_signal_model_in_one_line_naming_model(tmp_path: Path) -> None:
    (tmp_path / "nets.py").write_text("from test_model_kinds import audio\n")
    runner = CliRunner()
    for args in (["maximize", "--layer", "conv1", "--steps", "1"], ["layers"], ["activations", "digits:0", "--layer", "conv1"]):
        result = runner.invoke(cli, [*args, "--model", "test_model_kinds:audio", "--input-size", "16"])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert "Invalid value for '--model'" in result.output and "(N, C, L) signals" in result.output


def test_a_class_objective_on_a_dense_prediction_averages_its_pixels() -> None:
    """A segmentation output (N, classes, H, W), a U-Net's or torchvision's 'out': the class objective refused it
    ('needs (N, classes) logits', naming --layer, which the user never gave). A class's score is now its per-pixel
    logit (or probability) averaged over the image; anything else names --objective."""
    net = Dense().eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    context = probe.objectives.Context({"output": net(x)}, x)
    logits = probe.objectives.class_logit([1, 2])(context)
    assert torch.allclose(logits, net(x)[[0, 1], [1, 2]].mean((1, 2)))
    probability = probe.objectives.class_logit(1, probability=True)(context)
    assert torch.allclose(probability, net(x).softmax(1)[:, 1].mean((1, 2)))
    result = probe.maximize(probe.load_model(net, input_size=16), probe.objectives.class_logit(range(3)), steps=3)
    assert result.outputs.shape == (3, 3) and torch.isfinite(result.images).all()
    assert result.scores[1] > probe.objectives.class_logit(1)(probe.objectives.Context(
        {"output": net(probe.load_model(net).preprocess.normalize(torch.full((1, 3, 16, 16), 0.5)))},
        x[:1])).item()  # fmt: skip
    tokens = probe.objectives.Context({"output": torch.zeros(2, 5, 4)}, x)
    with pytest.raises(probe.ProbeUsageError, match=r"needs \(N, classes\) logits or .*gives \(2, 5, 4\)") as info:
        probe.objectives.class_logit(0)(tokens)
    assert info.value.param == "objective"


def test_torchvision_segmentation_models_load_and_video_models_are_refused() -> None:
    """torchvision's segmentation models were 'unknown model' (the source knew classification only), and so were its
    video, detection, optical-flow and quantized models. Segmentation loads now, with a random backbone under
    random weights (torchvision would download the backbone's); the others are refused saying why, before any
    building."""
    loaded = probe.load_model("torchvision:lraspp_mobilenet_v3_large", weights=None, device="cpu")  # as timm:NAME
    assert loaded.source == "torchvision" and loaded.preprocess.input_size == (520, 520)  # torchvision's resize
    assert loaded.module.backbone["0"][0].weight.requires_grad is False and len(loaded.labels) == 21
    out = loaded.module(torch.zeros(1, 3, 32, 32))["out"]
    assert out.shape == (1, 21, 32, 32)
    assert "lraspp_mobilenet_v3_large" in probe.models.torchvision_names()
    with pytest.raises(probe.ProbeUsageError, match="unknown torchvision model 'resnet19'.*did you mean 'resnet18'"):
        probe.load_model("torchvision:resnet19", weights=None)  # was: module 'torchvision' has no attribute
    for name, words in (("r3d_18", "video model"), ("fasterrcnn_resnet50_fpn", "model.backbone"),
                        ("raft_small", "two images"), ("quantized_resnet18", "int8")):  # fmt: skip
        with pytest.raises(probe.ProbeUsageError, match=words) as info:
            probe.load_model(name, weights=None)
        assert info.value.param == "model"


def lazy() -> nn.Sequential:
    """:func:`tiny`'s layout with lazy layers: no shapes before a first forward pass."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv1=nn.LazyConv2d(4, 3, padding=1), relu1=nn.ReLU(),
                                     gap=nn.AdaptiveAvgPool2d(2), flat=nn.Flatten(), fc=nn.LazyLinear(4)))  # fmt: skip


def int8() -> nn.Sequential:
    """:func:`tiny` converted to int8 (``torch.ao.quantization``, fbgemm, calibrated on one random batch)."""
    net = nn.Sequential(torch.ao.quantization.QuantStub(), tiny().eval(), torch.ao.quantization.DeQuantStub())
    net.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
    torch.ao.quantization.prepare(net, inplace=True)
    net(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    return torch.ao.quantization.convert(net)


def test_lazy_modules_are_initialized_when_built_and_refused_when_the_callers(tmp_path: Path) -> None:
    """A model with LazyConv2d/LazyLinear: every command raised torch's 'uninitialized parameter' ValueError as a
    traceback (freezing its parameters touched them). A factory's model gets its shapes from one blank pass at the
    input size, seeded; a module of the caller's is refused in one line, as that pass would change it."""
    loaded = probe.load_model("test_model_kinds:lazy", input_size=16, seed=3)
    again = probe.load_model("test_model_kinds:lazy", input_size=16, seed=3)
    assert loaded.module.conv1.weight.shape == (4, 3, 3, 3) and loaded.module.fc.weight.shape == (4, 16)
    assert torch.equal(loaded.module.fc.weight, again.module.fc.weight) and not loaded.module.training
    assert torch.isfinite(probe.maximize(loaded, "conv1:0", steps=1).images).all()
    mine = lazy()
    with pytest.raises(probe.ProbeUsageError, match=r"lazy modules are not initialized yet \(conv1, fc\)") as info:
        probe.maximize(mine, "conv1:0", steps=1, image_size=16)
    assert info.value.param == "model" and nn.parameter.is_lazy(mine.conv1.weight)
    result = CliRunner().invoke(cli, ["maximize", "--model", "test_model_kinds:lazy", "--input-size", "16",
                                      "--layer", "conv1", "--units", "0", "--steps", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output


def test_an_int8_model_is_refused_in_one_line_and_left_as_it_was() -> None:
    """A converted int8 model: maximize, dream and style raised 'Creation of quantized tensor requires quantized
    dtype' from their .float() of its quantized outputs, tracebacks; the class objective blamed a gradient cut.
    Every entry point refuses it now, naming the model and what to give instead."""
    net = int8()
    for call in (lambda: probe.maximize(net, "1.conv2:0", steps=1, image_size=16),
                 lambda: probe.feature_maps(net, _image(), "1.conv2", size=16),
                 lambda: probe.dream(net, _image(), ["1.conv2"], steps=1, octaves=1, device=None),
                 lambda: probe.attribute(net, _image(), "saliency", size=16)):  # fmt: skip
        with pytest.raises(probe.ProbeUsageError, match=r"quantized modules \(0, 1.conv1.*give the float") as info:
            call()
        assert info.value.param == "model"
    assert probe.models.forms.quantized_modules(tiny()) == []


def test_a_model_prepared_for_quantization_but_float_is_not_taken_for_int8() -> None:
    """torchvision's quantizable models (``quantize=False``) add with ``FloatFunctional``, which lives in
    ``torch.ao.nn.quantized`` but runs float: every command but ``layers`` refused them as int8."""
    import torchvision

    net = torchvision.models.quantization.resnet18(weights=None, quantize=False).eval()
    assert probe.models.forms.quantized_modules(net) == []
    heat = probe.attribute(net, torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)), "saliency", size=32)
    assert torch.isfinite(heat.attributions["saliency"]).all()
    assert probe.models.forms.quantized_modules(int8()) != []  # converted: QFunctional and int8 convs


def test_a_compiled_model_runs_eagerly_under_its_own_names() -> None:
    """torch.compile(model): its hooks-after-compilation were not called from dynamo's graphs (Grad-CAM: 'Forward
    hook did not obtain any outputs', a traceback) and every new shape or hook recompiled (32 s for a 2-step class
    maximize of a tiny net). Its submodules now run eagerly under the compiled module's names, '_orig_mod.conv2';
    nothing is compiled, and the compiled module is not changed."""
    net = tiny().eval()
    compiled = torch.compile(net)
    loaded = probe.load_model(compiled, input_size=16)
    assert isinstance(loaded.module, probe.models.forms.Eager) and loaded.module._orig_mod is net
    assert not loaded.module.training
    ours = probe.maximize(compiled, "_orig_mod.conv2:1", steps=2, image_size=16)
    with probe.record(net, ["conv2"]) as acts:  # its score is the plain net's on the same image
        net(loaded.preprocess.normalize(ours.images))
    assert torch.allclose(acts["conv2"][0, 1].sum(), ours.scores[0], atol=1e-4)
    heat = probe.attribute(compiled, _image(), "gradcam", size=16).attributions["gradcam"]
    assert torch.isfinite(heat).all()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
    assert not compiled._forward_hooks and not net.training


def test_a_bfloat16_model_on_the_cpu_is_told_what_runs() -> None:
    """bf16 weights on the CPU: the refusal said 'a float16 module cannot run on the CPU', which is not this
    model's case and left no way to compute in bfloat16. It says what does: module.float() with precision bf16
    (checked here), and the bf16 module is left as it was."""
    net = tiny().to(torch.bfloat16)
    with pytest.raises(probe.ProbeRuntimeError, match=r"module.float\(\).*--precision bf16"):
        probe.maximize(net, "conv2:0", steps=1, image_size=16)
    assert all(p.dtype == torch.bfloat16 for p in net.parameters())
    result = probe.maximize(net.float(), "conv2:0", steps=2, image_size=16, precision="bf16")
    assert torch.isfinite(result.images).all() and result.settings["precision"] == "bf16"


@pytest.mark.parametrize("first, words", [(nn.BatchNorm1d(3), r"a layer of it takes \(N, C, L\) signals"),
                                          (nn.MaxPool1d(2), r"its max_pool1d takes \(N, C, L\)"),
                                          (nn.BatchNorm3d(3), r"takes \(N, C, T, H, W\) clips")])  # fmt: skip
def test_norms_and_pools_of_other_dimensions_name_the_model(first: nn.Module, words: str) -> None:
    """The same class as a Conv1d first layer, in torch's other words: a 1-D or 3-D norm or pool met by an image."""
    with pytest.raises(probe.ProbeUsageError, match=words) as info:
        probe.layers(nn.Sequential(first, nn.AdaptiveAvgPool2d(1), nn.Flatten()), (3, 8, 8))
    assert info.value.param == "model"


def compiled_tiny() -> nn.Module:
    """:func:`tiny` under ``torch.compile`` (nothing compiles until it is called, and cnn-probe never calls it)."""
    return torch.compile(tiny())


def parallel_tiny() -> nn.Module:
    """:func:`tiny` in ``nn.DataParallel`` (its keys are ``module.NAME``)."""
    return nn.DataParallel(tiny())


def test_weights_saved_through_a_wrapper_load_into_the_plain_model_and_back(tmp_path: Path) -> None:
    """A state_dict saved from a compiled model has '_orig_mod.' before every key, a DataParallel one 'module.':
    --weights refused the first for the plain model and a plain file for the compiled or DataParallel model
    ('missing keys: ...; unexpected keys: ...'), although the tensors are the same; the 'module.' file alone
    loaded, stripped always. Keys that differ only by those prefixes are matched now, either way."""
    source = tiny()
    with torch.no_grad():
        source.conv1.weight.add_(1.0)  # other weights than the factories' own seeded ones
    files = {"plain": source.state_dict(), "compiled": torch.compile(source).state_dict(),
             "parallel": nn.DataParallel(source).state_dict()}  # fmt: skip
    for name, state in files.items():
        torch.save(state, tmp_path / f"{name}.pt")
    assert next(iter(files["compiled"])).startswith("_orig_mod.")
    for spec in ("tinynets:tiny", "test_model_kinds:compiled_tiny", "test_model_kinds:parallel_tiny"):
        for name in files:
            loaded = probe.load_model(spec, weights=str(tmp_path / f"{name}.pt"))
            conv1 = dict(loaded.module.named_modules())[next(n for n, _ in loaded.module.named_modules()
                                                              if n.endswith("conv1"))]  # fmt: skip
            assert torch.equal(conv1.weight, source.conv1.weight), (spec, name)
    with pytest.raises(probe.ProbeUsageError, match="unexpected keys: extra"):
        torch.save({**files["plain"], "extra": torch.zeros(1)}, tmp_path / "extra.pt")
        probe.load_model("test_model_kinds:compiled_tiny", weights=str(tmp_path / "extra.pt"))


def pruned() -> nn.Sequential:
    """:func:`tiny` pruned (``torch.nn.utils.prune``): conv1's weight is ``weight_orig * weight_mask``, computed by a
    forward pre-hook of the user's."""
    import torch.nn.utils.prune as prune

    net = tiny()
    prune.l1_unstructured(net.conv1, "weight", amount=0.5)
    return net


def frozen_norm() -> nn.Sequential:
    """:func:`tiny` with torchvision's FrozenBatchNorm2d (buffers only, as detection backbones have)."""
    from torchvision.ops import FrozenBatchNorm2d

    net = tiny()
    net.bn2 = FrozenBatchNorm2d(6)
    return net


class Reused(nn.Module):
    """One conv called twice in a forward pass, and a non-persistent buffer that scales the input."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.register_buffer("scale", torch.full((1, 3, 1, 1), 2.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x * self.scale))
        return self.fc(torch.relu(self.conv(torch.relu(self.conv(x)))).mean((2, 3)))


def _snapshot(net: nn.Module) -> dict[str, object]:
    """Everything of ``net`` cnn-probe must leave as it was."""
    return {"tensors": {k: v.clone() for k, v in [*net.state_dict().items(), *net.named_buffers()]},
            "modes": {n: m.training for n, m in net.named_modules()},
            "grads": {n: (p.requires_grad, p.dtype, p.device) for n, p in net.named_parameters()},
            "hooks": {n: (dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks))
                      for n, m in net.named_modules()},
            "attributes": {n: sorted(vars(m)) for n, m in net.named_modules()}}  # fmt: skip


def _same(before: dict[str, object], after: dict[str, object]) -> bool:
    tensors = before["tensors"].keys() == after["tensors"].keys() and all(  # type: ignore[union-attr]
        torch.equal(value, after["tensors"][key]) for key, value in before["tensors"].items())  # type: ignore[index,union-attr]
    return tensors and all(before[key] == after[key] for key in ("modes", "grads", "hooks", "attributes"))


@pytest.mark.parametrize("build, layer", [(pruned, "conv1"), (lambda: torch.fx.symbolic_trace(tiny()), "conv2"),
                                          (frozen_norm, "bn2"), (Reused, "conv#1"), (Dense, "mid.0")])  # fmt: skip
def test_every_command_runs_on_these_forms_and_leaves_them_as_they_were(build, layer: str) -> None:
    """Pruned (a user's pre-hook computes the weight), torch.fx, FrozenBatchNorm2d, a conv called twice with a
    non-persistent buffer, a dense U-Net, in train mode: each function gives finite images and the module keeps its
    weights, buffers, modes, requires_grad, dtype, device, hooks and attributes."""
    net = build().train()
    before = _snapshot(net)
    image = _image()
    results = [probe.maximize(net, f"{layer}:0", steps=2, image_size=16).images,
               probe.maximize(net, probe.objectives.class_logit(1), steps=1, image_size=16).images,
               probe.dream(net, image, [layer], steps=1, octaves=1, device=None).image,
               probe.style_transfer(net, image, image, steps=1, size=16, content_layers=[layer],
                                    style_layers=[layer]).image,
               next(iter(probe.feature_maps(net, image, layer, size=16).maps.values()))]  # fmt: skip
    if not isinstance(net, Dense):  # attribution explains a classifier's (1, K) output
        results.append(probe.attribute(net, image, "saliency", size=16).attributions["saliency"])
    assert all(torch.isfinite(result).all() for result in results)
    assert _same(before, _snapshot(net))


class Checkpointed(nn.Module):
    """:func:`tiny` whose convolutions run under ``torch.utils.checkpoint`` (gradient checkpointing, as timm's
    ``set_grad_checkpointing`` and transformers' ``gradient_checkpointing_enable`` do), reentrant or not."""

    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        self.reentrant = reentrant
        self.body = tiny()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        return self.body[4:](checkpoint(self.body[:4], x, use_reentrant=self.reentrant))


def test_gradient_checkpointing_runs_or_says_what_to_change() -> None:
    """Non-reentrant checkpointing differentiates as usual (its recomputation in the backward pass fires the hooks
    again, and changes nothing). A reentrant one cannot be differentiated by torch.autograd.grad, with which
    cnn-probe takes the image's gradient: 'incompatible with .grad()' came out as a traceback; it is one line
    naming the model and what to change, and a layer inside it names the checkpoint among the causes."""
    plain = probe.maximize(Checkpointed(reentrant=False), "body.conv2:0", steps=2, image_size=16)
    assert torch.isfinite(plain.images).all() and plain.history[-1] > plain.history[0]
    net = Checkpointed(reentrant=True)
    for call in (lambda: probe.maximize(net, probe.objectives.class_logit(0), steps=1, image_size=16),
                 lambda: probe.style_transfer(net, _image(), _image(), steps=1, size=16, content_layers=["body.bn2"],
                                              style_layers=["body.relu2"], optimizer="adam")):  # fmt: skip
        with pytest.raises(probe.ProbeUsageError, match="use_reentrant=True.*use_reentrant=False") as info:
            call()
        assert info.value.param == "model"
    with pytest.raises(probe.ProbeUsageError, match="a reentrant torch.utils.checkpoint"):
        probe.dream(net, _image(), ["body.conv2"], steps=1, octaves=1, device=None)


@pytest.mark.parametrize("method", ["saliency", "gradcam", "integrated-gradients"])
def test_attribution_on_reentrant_checkpointing_says_what_to_change(method) -> None:
    """captum's methods and Grad-CAM's layer survey differentiate with torch.autograd.grad too: autograd's
    'incompatible with .grad()' came out of probe.attribute as a traceback."""
    with pytest.raises(probe.ProbeUsageError, match="use_reentrant=True.*use_reentrant=False") as info:
        probe.attribute(Checkpointed(reentrant=True), _image(), method, size=16)
    assert info.value.param == "model"


def test_a_module_of_yours_on_the_meta_device_is_refused_in_one_line() -> None:
    """A module built under torch.device('meta') (no data): a factory's was refused, but one passed in Python
    reached autocast ('unknown device type for autocast'), a RuntimeError from deep inside maximize."""
    with torch.device("meta"):
        net = tiny()
    for device in ("auto", "cpu"):
        with pytest.raises(probe.ProbeUsageError, match=r"meta device \(conv1.weight has no data\)") as info:
            probe.maximize(net, "conv2:0", steps=1, image_size=16, device=device)
        assert info.value.param == "model"


def test_style_names_the_model_when_the_model_is_at_fault() -> None:
    """Style transfer renamed every refusal raised while capturing its layers to --content-layer/--style-layer,
    meant for a module that runs several times; a forward that needs more than the images named --style-layer."""
    from tinynets import NeedsMask

    with pytest.raises(probe.ProbeUsageError, match="calling it with the images alone") as info:
        probe.style_transfer(NeedsMask(), _image(), _image(), steps=1, size=16, content_layers=["body.conv1"],
                             style_layers=["body.conv2"])  # fmt: skip
    assert info.value.param == "model"
