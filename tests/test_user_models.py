"""Models users write by hand, beyond the plain nn.Sequential: each command's API on them, the module unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import probe
from probe.cli.main import cli
from probe.featuremaps import default_layers
from probe.leaves import helper_names, is_leaf
from tinynets import DictOutput, GradientCut, NeedsMask, quantization_aware, tiny, weight_normed


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _image(side: int = 16) -> torch.Tensor:
    return torch.rand(3, side, side, generator=torch.Generator().manual_seed(0))


def test_a_conv_with_parametrizations_or_observers_is_one_layer() -> None:
    """weight_norm/spectral_norm and QAT's fake-quantizers hang modules on a conv: it is still a leaf layer, and the
    helpers (which compute its weight or watch its output) are not layers. Counting children made both convs
    containers, so the activations' default (every Conv2d) found none and refused the model."""
    for net in (weight_normed(), quantization_aware()):
        modules = dict(net.named_modules())
        assert is_leaf(modules["conv1"]) and is_leaf(modules["conv2"]) and not is_leaf(net)
        assert default_layers(net) == ["conv1", "conv2"]
        every = default_layers(net, "all")
        assert {"conv1", "conv2", "fc"} <= set(every) and not set(every) & helper_names(net)
        maps = probe.feature_maps(net, _image(), size=16)
        assert list(maps.maps) == ["conv1", "conv2"] and maps.maps["conv2"].shape == (6, 8, 8)
    assert "conv1.parametrizations.weight.0" in helper_names(weight_normed())


def test_quantization_observers_are_held_and_the_model_unchanged() -> None:
    """A QAT model's observers write their ranges (and the fake-quantizers their scales) on every forward pass,
    eval mode or not: maximize, feature maps and attribution changed the user's model. They run held now and
    every buffer is as it was after, the fake-quantizers' observer switches included."""
    net = quantization_aware()
    before = _state(net)
    probe.maximize(net, probe.objectives.channel("conv2", [0, 1]), steps=2, image_size=16)
    probe.maximize(net, probe.objectives.class_logit(1), steps=2, image_size=16, param="pixel")
    probe.feature_maps(net, _image(), size=16)
    probe.attribute(net, _image(), "saliency", size=16)
    probe.dream(net, _image(), ["conv2"], steps=1, octaves=1, device=None)
    after = _state(net)
    assert before.keys() == after.keys()
    assert [name for name in before if not torch.equal(before[name], after[name])] == []
    assert all(int(q.observer_enabled) == 1 for q in net.modules() if hasattr(q, "observer_enabled"))
    assert not net.training


def test_a_forward_that_cuts_the_gradient_is_named_as_the_cause() -> None:
    """torch.no_grad() or .detach() inside a user's forward: no image can move what lies after the cut. The error
    named only weights-alone tables (a position bias) and read 'the output of output' for a class objective."""
    for how in ("no_grad", "detach"):
        net = GradientCut(how)
        with pytest.raises(probe.ProbeUsageError, match=r"the model's output does not .*no_grad\(\), \.detach\(\)"):
            probe.maximize(net, probe.objectives.class_logit(0), steps=1, image_size=16)
    net = GradientCut("no_grad")
    with pytest.raises(probe.ProbeUsageError, match="output of body.conv2 does not .*remove the no_grad") as info:
        probe.maximize(net, "body.conv2:0", steps=1, image_size=16)
    assert info.value.param == "layer"
    with pytest.raises(probe.ProbeUsageError, match="output of body.conv2 does not .*no_grad"):
        probe.dream(net, _image(), ["body.conv2"], steps=1, octaves=1, device=None)
    result = probe.maximize(GradientCut("detach"), "body.conv2:0", steps=2, image_size=16)  # before the cut: works
    assert torch.isfinite(result.images).all()


def test_attributions_on_a_forward_that_cuts_the_gradient_say_so() -> None:
    """Gradient methods on a model whose forward cuts the image's gradient raised autograd's own RuntimeError
    ("does not require grad", "not been used in the graph") from Python; now one line saying what to do, and
    occlusion, which reads only scores, still runs."""
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    for how in ("no_grad", "detach"):
        net = GradientCut(how)
        for method in ("saliency", "gradient-shap", "all"):
            with pytest.raises(probe.ProbeRuntimeError, match="no gradient reaches the image.*--method occlusion"):
                probe.attribute(net, image, method, size=16)
        result = probe.attribute(net, image, "occlusion", size=16)
        assert torch.isfinite(result.attributions["occlusion"]).all()


def test_style_on_a_forward_that_cuts_the_gradient_says_so() -> None:
    """Style transfer on a model whose forward runs under torch.no_grad() exited 0 with a result only the tv loss
    had moved (content and style losses had no gradient): silent garbage. Now one line naming the layer option."""
    content, style = (torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(seed)) for seed in (0, 1))
    with pytest.raises(probe.ProbeUsageError, match="output of body.conv1 does not depend on the input") as info:
        probe.style_transfer(GradientCut("no_grad"), content, style, steps=2, size=16,
                             content_layers=["body.conv1"], style_layers=["body.conv2"])
    assert info.value.param == "content_layer"
    result = probe.style_transfer(GradientCut("detach"), content, style, steps=2, size=16,  # the cut comes later
                                  content_layers=["body.conv1"], style_layers=["body.conv2"])
    assert torch.isfinite(result.image).all()


def test_lrp_on_a_weight_normed_model_is_lrp_on_its_weights() -> None:
    """LRP refused a weight-normed or spectral-normed conv ("no rule for _WeightNorm"): captum takes modules
    without children as layers, and a parametrized conv has its parametrization as a child. Its map is now that
    of the same net holding the computed weights, and the user's net is left without rules or hooks."""
    net = weight_normed().eval()
    plain = tiny().eval()
    state = {key: value for key, value in net.state_dict().items() if "parametrizations" not in key}
    with torch.no_grad():
        state.update({f"{name}.weight": getattr(net, name).weight.detach().clone() for name in ("conv1", "conv2")})
    plain.load_state_dict(state)
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    ours = probe.attribute(net, image, "lrp", size=16).attributions["lrp"]
    assert torch.allclose(ours, probe.attribute(plain, image, "lrp", size=16).attributions["lrp"], atol=1e-6)
    assert ours.abs().sum() > 0
    assert not any(hasattr(module, "rule") or module._forward_hooks for module in net.modules())


def test_a_four_channel_model_takes_an_rgba_file(tmp_path: Path) -> None:
    """A model taking 4 channels: an RGBA PNG keeps its alpha as the 4th channel (files were always composited on
    white to RGB, so no file could reach such a model); an RGB image is refused in one line naming the image and
    what to give. A 3-channel model still sees the RGBA file composited."""
    rgba = np.random.default_rng(0).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "four.png")
    Image.fromarray(rgba[..., :3], "RGB").save(tmp_path / "three.png")
    loaded = probe.load_model(tiny(channels=4))
    x = probe.load_image(str(tmp_path / "four.png"), channels=4)
    assert x.shape == (4, 16, 16) and torch.allclose(x[3], torch.from_numpy(rgba[..., 3] / 255).float())
    maps = probe.feature_maps(loaded, str(tmp_path / "four.png"), size=16)
    assert torch.equal(maps.image, x)
    dreamed = probe.dream(loaded, str(tmp_path / "four.png"), ["conv2"], steps=1, octaves=1, device=None)
    assert dreamed.image.shape == (4, 16, 16)
    for call in (lambda image: probe.feature_maps(loaded, image, size=16),
                 lambda image: probe.dream(loaded, image, ["conv2"], steps=1, octaves=1, device=None)):
        with pytest.raises(probe.ProbeUsageError, match="3 channels to 4 channels.*give an image with 4 channels "
                                                        r"\(an RGBA PNG") as info:
            call(str(tmp_path / "three.png"))
        assert info.value.param == "image"
    from probe.atlas.data import open_dataset

    (tmp_path / "data").mkdir()
    Image.fromarray(rgba, "RGBA").save(tmp_path / "data" / "four.png")
    atlas_data = open_dataset(tmp_path / "data", probe.load_model(tiny(channels=4), input_size=16))
    assert torch.equal(atlas_data.load([0])[0], x)  # the atlas's dataset keeps the alpha too
    Image.fromarray(rgba[..., :3], "RGB").save(tmp_path / "data" / "three.png")
    with pytest.raises(probe.ProbeUsageError, match="three.png: cannot convert .*3 channels") as info:
        open_dataset(tmp_path / "data", probe.load_model(tiny(channels=4), input_size=16)).load([1])
    assert info.value.param == "dataset"
    composited = probe.load_image(str(tmp_path / "four.png"), channels=3)
    assert composited.shape == (3, 16, 16) and torch.all(composited >= x[:3] - 1e-6)  # on white: never darker


def test_a_class_objective_on_a_dict_output_reads_its_logits(tmp_path: Path) -> None:
    """A model returning a dict of outputs (a user's, a Hugging Face ``ModelOutput``): the class objective said
    "unknown captured layer 'output'; captured layers are: (none)" in Python and blamed --layer on the command
    line, and attribution said it was not a classifier. Its ``"logits"`` are now the output read, wherever the key
    stands in the dict; its layers still maximize."""
    class FeaturesFirst(DictOutput):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            out = super().forward(x)
            return {"features": out["features"], "logits": out["logits"]}

    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    for net in (DictOutput().eval(), FeaturesFirst().eval()):
        loaded = probe.load_model(net, input_size=16)
        with torch.no_grad():
            logits = net(loaded.preprocess.normalize(image[None]))["logits"][0]
        assert torch.allclose(probe.attribute(loaded, image, "saliency").prediction.logits, logits)
        result = probe.maximize(loaded, probe.objectives.class_logit(0), steps=1)
        assert torch.isfinite(result.images).all()
    assert torch.isfinite(probe.maximize(DictOutput(), "body.conv2:0", steps=1, image_size=16).images).all()
    result = CliRunner().invoke(cli, ["maximize", "--model", "tinynets:dict_output", "--objective", "class",
                                      "--size", "16", "--steps", "1", "--units", "0", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output


def test_the_commands_say_in_one_line_that_no_gradient_reaches_the_image() -> None:
    """Attribution and the atlas's receptive fields differentiate a cut graph without checking first: autograd's
    'does not require grad' / 'not been used in the graph' came out of the command as a traceback. The CLI
    translates that class of error to one line, exit 1, as it does dtype mismatches."""
    runner = CliRunner()
    for how in ("no_grad", "detach"):
        spec = f"tinynets:GradientCut('{how}')"
        result = runner.invoke(cli, ["attribute", "digits:0", "--model", spec, "--size", "16", "--in-channels", "3",
                                     "--method", "saliency", "--quiet"])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "no gradient reaches the image" in lines[0] and "no_grad" in lines[0]


def test_a_forward_that_needs_more_than_the_images_names_the_model() -> None:
    """forward(x, mask) or forward(*, pixel_values): Python refuses model(images) itself. That TypeError became the
    input-size error ('give an input size it accepts'), which no --size can fix; it names the model now. A
    TypeError raised inside the model's own code stays the model's refusal of this input."""
    for net in (NeedsMask(), NeedsMask(keyword_only=True)):
        alone = r"calling it with the images alone \(TypeError: NeedsMask\.\w+\(\)"
        with pytest.raises(probe.ProbeUsageError, match=alone) as info:
            probe.maximize(net, "body.conv2:0", steps=1, image_size=16)
        assert info.value.param == "model"

    class Inner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(self.conv(x))  # type: ignore[call-arg]  # the model's own bug

    with pytest.raises(probe.ProbeUsageError, match="give an input size it accepts") as info:
        probe.layers(Inner(), (3, 8, 8))
    assert info.value.param == "size"


class FunctionalOnly(nn.Module):
    """A model written with functional calls only: no submodule to hook. 16x16 input -> (N, 4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 4).flatten(1)[:, :4]


def test_layers_of_a_functional_model_a_loaded_model_and_parametrized_leaves() -> None:
    """probe.layers on a model without submodules raised 'no layer given' (and `probe layers` printed it); given
    what probe.load_model returns it raised AttributeError ('named_modules'); leaves_only counted children, so a
    weight-normed conv was a container and its parametrization a layer."""
    assert probe.layers(FunctionalOnly(), (3, 16, 16)) == []
    result = CliRunner().invoke(cli, ["layers", "--model", "test_user_models:FunctionalOnly()", "--input-size", "16"])
    assert result.exit_code == 0 and "functional calls only" in result.output, result.output
    loaded = probe.load_model(weight_normed(), input_size=16)
    names = [row.name for row in probe.layers(loaded, (3, 16, 16), leaves_only=True)]
    assert "conv1" in names and "conv2" in names and not any("parametrizations" in name for name in names)
    wrapped = nn.DataParallel(tiny())  # a module with a .module of its own is listed as it is, not unwrapped
    assert [row.name for row in probe.layers(wrapped, (3, 16, 16))][:2] == ["module", "module.conv1"]
    with pytest.raises(probe.ProbeUsageError, match="must be an nn.Module") as info:
        probe.layers("tiny", (3, 16, 16))
    assert info.value.param == "model"
