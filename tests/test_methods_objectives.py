"""Lucent-style objective strings, the field's objectives (interpolate, alignment, caricature, weighted), redirected ReLU."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from click.testing import CliRunner
from conftest import no_hooks_left
from torch import nn

import probe
from probe import objectives as O
from probe.cli.main import cli
from probe.errors import ProbeUsageError
from probe.relu import RedirectedReLU, redirected_relu


@pytest.fixture(scope="module")
def digits():
    return probe.load_model("digits")


def _context(**acts: torch.Tensor) -> O.Context:
    n = next(iter(acts.values())).shape[0]
    return O.Context(acts, torch.zeros(n, 1, 2, 2))


# ------------------------------------------------------------------ strings
def test_strings_read_as_channels_on_convolutions_and_neurons_on_linear_layers(digits):
    conv = O.parse_objective("conv2:7", digits)
    assert conv.kind == "channel" and conv.layer == "conv2" and conv.units == (7,)
    linear = O.parse_objective("fc1:3", digits)
    assert linear.kind == "neuron" and linear.units == (3,)
    assert O.parse_objective("conv2:0-2,9", digits).units == (0, 1, 2, 9)
    with pytest.raises(ProbeUsageError, match="LAYER:UNITS") as error:
        O.parse_objective("conv2", digits)
    assert error.value.param == "objective"
    with pytest.raises(ProbeUsageError, match="out of range for conv2 \\(0 to 49\\)"):
        O.parse_objective("conv2:50", digits)
    with pytest.raises(ProbeUsageError, match="did you mean 'conv2'"):
        O.parse_objective("conv22:1", digits)


def test_maximize_and_evaluate_take_strings(digits):
    by_string = probe.maximize(digits, "conv2:7", steps=3)
    by_objective = probe.maximize(digits, O.channel("conv2", 7), steps=3)
    assert torch.equal(by_string.images, by_objective.images) and by_string.units == (7,)
    assert torch.allclose(probe.optimize.evaluate(digits, "conv2:7", by_string.images), by_string.scores)


def test_cli_target_is_the_shorthand_of_layer_and_units(tmp_path):
    runner = CliRunner()
    out = tmp_path / "g"
    result = runner.invoke(cli, ["maximize", "--target", "fc1:3", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layer"] == "fc1" and manifest["objective"] == "neuron"
    assert [item["unit"] for item in manifest["items"]] == [3]
    clash = runner.invoke(cli, ["maximize", "--target", "fc1:3", "--layer", "conv2", "--out", str(tmp_path / "x")])
    assert clash.exit_code == 2 and "--target" in clash.output and "Traceback" not in clash.output


# ------------------------------------------------------------ objectives
def test_weighted_objectives_on_hand_made_activations():
    act = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # (1, 2, 1, 2)
    assert torch.allclose(O.channel_weight("a", [2.0, 1.0])(_context(a=act)), torch.tensor([(2 + 4 + 3 - 1) / 4]))
    # the centre position (0, 1): channel values 2 and -1
    assert torch.allclose(O.neuron_weight("a", [2.0, 1.0])(_context(a=act)), torch.tensor([(4 - 1) / 2]))
    assert torch.allclose(O.neuron_weight("a")(_context(a=act)), torch.tensor([(2 - 1) / 2]))
    with pytest.raises(ProbeUsageError, match="3 values but a has 2 channels"):
        O.channel_weight("a", [1.0, 1.0, 1.0])(_context(a=act))


def test_channel_interpolate_moves_from_one_unit_to_the_other():
    act = torch.arange(5 * 3, dtype=torch.float32).view(5, 3, 1, 1)
    objective = O.channel_interpolate("a", 0, "a", 2, images=5)
    assert objective.batch == 5
    scores = objective(_context(a=act))
    t = torch.linspace(0, 1, 5)
    assert torch.allclose(scores, (1 - t) * act[:, 0, 0, 0] + t * act[:, 2, 0, 0])
    assert scores[0] == act[0, 0, 0, 0] and scores[-1] == act[-1, 2, 0, 0]


def test_alignment_sums_to_lucids_value_and_is_zero_for_equal_images():
    act = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    scores = O.alignment("a", decay_ratio=2.0)(_context(a=act))
    lucid = sum(((act[i] - act[i + d]) ** 2).mean() / 2.0**d for d in range(1, 5) for i in range(6 - d))
    assert scores.shape == (6,) and torch.allclose(scores.sum(), -lucid)
    assert torch.equal(O.alignment("a")(_context(a=act[:1].expand(4, -1, -1, -1))), torch.zeros(4))


def test_caricature_weights_the_dot_product_by_the_cosine_similarity():
    target = torch.tensor([[[1.0]], [[0.0]]])  # (2, 1, 1): channel vector (1, 0) at one position
    same, skew = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    objective = O.caricature("a", target)
    value = objective(_context(a=torch.cat([same, skew]).view(2, 2, 1, 1)))
    cos = 1 / 2**0.5
    assert torch.allclose(value, torch.tensor([2.0, cos]), atol=1e-3)
    plain = O.caricature("a", target, cossim_pow=0)(_context(a=skew.view(1, 2, 1, 1)))
    assert torch.allclose(plain, torch.tensor([1.0]))


def test_a_caricature_renders_what_the_layer_sees_in_the_image(digits):
    three = probe.load_image("digits:3")
    acts = O.activations_of(digits, three, "conv2")
    assert acts.shape == (1, 50, 11, 11)
    result = probe.maximize(digits, O.caricature("conv2", acts), steps=16, transforms="none")
    assert result.scores[0] > probe.optimize.evaluate(digits, O.caricature("conv2", acts), three[None])[0] * 0.5
    assert result.history[-1, 0] > result.history[0, 0]


def test_a_caricature_of_a_token_layer_reads_its_1_c_l_activations_as_one_image():
    """ViT's encoder layers give (N, C, L) (channels first, as cnn-probe reads them): the image's (1, C, L) is
    one image's target, not a (C, H, W) to add a batch to; the same as the (C, L, 1) it is per position."""
    target, act = torch.randn(1, 4, 5), torch.randn(2, 4, 5)
    tokens = O.caricature("a", target)(_context(a=act))
    assert torch.allclose(tokens, O.caricature("a", target[..., None])(_context(a=act[..., None])))
    one_channel = torch.rand(1, 3, 3)  # a 1-channel (C, H, W) at a (N, 1, H, W) layer: still one image
    assert O.caricature("a", one_channel)(_context(a=torch.rand(2, 1, 3, 3))).shape == (2,)


def test_a_caricature_renders_on_a_small_vits_encoder_layer(tmp_path):
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=1,
                                               hidden_dim=8, mlp_dim=8, num_classes=3)
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    loaded = probe.load_model(vit, input_size=32)
    layer = "encoder.layers.encoder_layer_0"
    acts = O.activations_of(loaded, image, layer)
    result = probe.maximize(loaded, O.caricature(layer, acts), steps=1, image_size=32)
    assert result.images.shape[0] == 1 and torch.isfinite(result.scores).all()


# ---------------------------------------------------------- redirected ReLU
def test_the_redirected_gradient_on_a_hand_made_tensor():
    x = torch.tensor([[-1.0, -2.0], [-1.0, 3.0]], requires_grad=True)
    grad = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]])
    (result,) = torch.autograd.grad(RedirectedReLU.apply(x), x, grad)
    # row 0 is dead: the gradient passes where it pushes x up (grad < 0); row 1 lives: the ordinary ReLU gradient
    assert torch.equal(result, torch.tensor([[-1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(RedirectedReLU.apply(x).detach(), x.detach().clamp(min=0))


def _dead_net() -> nn.Sequential:
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(inplace=True), nn.Conv2d(1, 1, 1), nn.ReLU())
    with torch.no_grad():
        net[0].weight.fill_(0.2)
        net[0].bias.fill_(-1.2)  # mid-gray start: -0.3 everywhere, dead
        net[2].weight.fill_(1.0)
        net[2].bias.fill_(0.0)
    return net


def test_redirected_relu_wakes_units_dead_on_the_start_image_and_leaves_the_model_alone():
    net = _dead_net()
    before = {key: value.clone() for key, value in net.state_dict().items()}
    options = dict(steps=24, image_size=12, preset="plain")
    assert probe.maximize(net, O.channel("3", 0), **options).scores[0] == 0  # the ordinary gradient is zero
    woken = probe.maximize(net, O.channel("3", 0), redirect_relu=8, **options)
    assert woken.scores[0] > 10 and woken.settings["redirect_relu"] == 8
    assert all(torch.equal(before[key], value) for key, value in net.state_dict().items())
    assert net[1].inplace and no_hooks_left(net) and net.training


def test_the_swap_ends_with_the_block_even_on_error():
    x = torch.tensor([-1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="boom"), redirected_relu():
        assert torch.autograd.grad(-F.relu(x).sum(), x)[0] == -1  # redirected inside
        raise RuntimeError("boom")
    assert torch.autograd.grad(-F.relu(x).sum(), x)[0] == 0
    with redirected_relu(enabled=False):
        assert torch.autograd.grad(-torch.relu(x).sum(), x)[0] == 0


def test_cli_caricature_and_redirect_relu(tmp_path):
    out = tmp_path / "g"
    result = CliRunner().invoke(cli, ["maximize", "--layer", "conv2", "--caricature", "digits:3", "--redirect-relu",
                                      "2", "--steps", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["objective"] == "caricature" and manifest["options"]["caricature"] == "digits:3"
    assert manifest["redirect_relu"] == 2 and len(manifest["items"]) == 1
    bad = CliRunner().invoke(cli, ["maximize", "--layer", "conv2", "--caricature", "nowhere.png",
                                   "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "'--caricature'" in bad.output
