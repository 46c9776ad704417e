"""Attribution on the models people use: reused modules (per-call copies), LRP on subclasses of supported
layers, occlusion's window grid, and the user's model left exactly as it was."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import model_state, no_hooks_left
from torch import nn

import probe
from probe.attribution import attribute, lrp_support
from probe.attribution.occlusion import occlusion_grid, patch_size
from probe.attribution.unshared import unshared_copy
from probe.errors import ProbeUsageError


class Reused(nn.Module):
    """One ReLU called three times and one max-pool called twice, per forward pass (ResNet's Bottleneck
    and the PyTorch tutorial's net do this)."""

    def __init__(self, distinct: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.distinct = distinct
        if distinct:  # the same function with one module per call
            self.relu2, self.relu3, self.pool2 = nn.ReLU(), nn.ReLU(), nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu2, relu3 = (self.relu2, self.relu3) if self.distinct else (self.relu, self.relu)
        pool2 = self.pool2 if self.distinct else self.pool
        x = self.pool(self.relu(self.conv1(x)))
        x = pool2(relu2(self.conv2(x)))
        return self.fc(relu3(x.flatten(1)))


def _same_weights(distinct: nn.Module, shared: nn.Module) -> nn.Module:
    distinct.load_state_dict(shared.state_dict())
    return distinct.eval()


IMAGE = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("method", ["deeplift", "lrp", "guided-backprop"])
def test_reused_modules_give_what_captum_gives_with_one_module_per_call(method):
    shared = Reused().eval()
    reference = _same_weights(Reused(distinct=True), shared)
    before = model_state(shared)
    attributes = {id(m): set(vars(m)) for m in shared.modules()}
    ours = attribute(shared, IMAGE, method, target=2, size=16).attributions[method]
    expected = attribute(reference, IMAGE, method, target=2, size=16).attributions[method]
    assert torch.allclose(ours, expected, atol=1e-7, rtol=1e-6) and ours.abs().sum() > 0
    after = model_state(shared)
    assert before[:2] == after[:2] and before[3] and after[3]
    assert all(torch.equal(a[2], b[2]) for a, b in zip(before[2], after[2]))
    assert {id(m): set(vars(m)) for m in shared.modules()} == attributes and shared.relu.inplace


def test_the_copy_shares_every_weight_and_replaces_only_the_reused_modules():
    model = Reused().eval()
    net = unshared_copy(model, IMAGE[None])
    assert {id(p) for p in net.parameters()} == {id(p) for p in model.parameters()}
    assert [len(m.calls) for m in net.per_call] == [3, 2]  # relu three times, pool twice
    assert torch.equal(net(IMAGE[None]), model(IMAGE[None])) and net(IMAGE[None]).shape == (1, 5)
    assert type(model.relu) is nn.ReLU and no_hooks_left(model)


def test_deeplift_on_resnet18_sums_to_the_score_difference():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=4).eval()
    model.maxpool = nn.Identity()  # captum's max-pool rule is not exactly complete; the rescale rule is
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    result = attribute(model, image, "deeplift", target=1, size=32)
    lift = result.attributions["deeplift"]
    loaded = probe.load_model(model)
    with torch.no_grad():
        scores = model(loaded.preprocess.normalize(torch.stack([image, torch.zeros_like(image)])))[:, 1]
    delta = float(scores[0] - scores[1])
    assert abs(float(lift.sum()) - delta) < 1e-4 * abs(delta)
    assert result.options["completeness"]["deeplift"] < 1e-4
    assert model.relu.inplace and no_hooks_left(model)


class MyConv(nn.Conv2d):
    """A subclass that only adds an attribute: its base's math."""

    tag = "mine"


class SameConv(nn.Conv2d):
    """timm's Conv2dSame in miniature: pads, then its base's convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [1, 1, 1, 1]), self.weight, self.bias)


class ConvRelu(nn.Conv2d):
    """Adds an activation: the base's rule would be wrong."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))


def _net(conv: type, linear: type = nn.Linear) -> nn.Module:
    torch.manual_seed(0)
    padding = 0 if conv is SameConv else 1
    return nn.Sequential(conv(3, 4, 3, padding=padding), nn.ReLU(), nn.Flatten(), linear(4 * 8 * 8, 3)).eval()


@pytest.mark.parametrize("conv, linear", [(MyConv, nn.Linear), (SameConv, nn.Linear),
                                          (nn.Conv2d, nn.modules.linear.NonDynamicallyQuantizableLinear)])
def test_lrp_gives_subclasses_with_their_bases_math_the_bases_rule(conv, linear):
    image = IMAGE[:, :8, :8]
    model = _net(conv, linear)
    assert lrp_support(model) and lrp_support(model, image[None]) == []
    before = {id(m): set(vars(m)) for m in model.modules()}
    ours = attribute(model, image, "lrp", target=0, size=8).attributions["lrp"]
    plain = _net(nn.Conv2d)
    plain.load_state_dict(model.state_dict())
    assert torch.allclose(ours, attribute(plain, image, "lrp", target=0, size=8).attributions["lrp"], atol=1e-6)
    assert {id(m): set(vars(m)) for m in model.modules()} == before and type(model[0]) is conv


def test_lrp_refuses_a_subclass_that_adds_to_its_bases_math():
    with pytest.raises(ProbeUsageError, match="no rule for ConvRelu") as error:
        attribute(_net(ConvRelu), IMAGE[:, :8, :8], "lrp", size=8)
    assert error.value.param == "method" and "\n" not in str(error.value)


class Unused(nn.Module):
    """An empty ModuleList, a head that does not run in eval mode, dropout: nothing for LRP to rule on."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _net(nn.Conv2d)
        self.extras = nn.ModuleList()
        self.aux = nn.LocalResponseNorm(2)
        self.drop = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.body(x) if not self.training else self.aux(self.body(x)))


def test_lrp_needs_no_rule_for_leaves_that_do_not_run_or_pass_their_input():
    model = Unused().eval()
    image = IMAGE[:, :8, :8]
    assert lrp_support(model, image[None]) == [] and "LocalResponseNorm" in lrp_support(model)
    assert torch.isfinite(attribute(model, image, "lrp", size=8).attributions["lrp"]).all()


@pytest.mark.parametrize("side, patch, expected", [(224, 1, (32, 32)), (224, 16, (32, 32)), (64, 16, (16, 16)),
                                                   (64, 1, (10, 9)), (28, 1, (4, 4)), (8, 1, (2, 1))])
def test_occlusion_grid_covers_the_image_with_at_most_seven_windows_a_side(side, patch, expected):
    window, stride = occlusion_grid(side, patch)
    assert (window, stride) == expected
    count = (side - window) // stride + 1
    assert count <= 7 and (count - 1) * stride + window == side and window % patch == 0


def test_occlusion_aligns_to_a_vits_patches_and_reports_progress():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=16,
                              num_classes=3).eval()
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert patch_size(model, image[None]) == 8
    calls: list[tuple[str, int, int]] = []
    heat = attribute(model, image, "occlusion", size=32, progress=lambda *a: calls.append(a)).attributions["occlusion"]
    assert calls[-1] == ("occlusion", 17, 17)  # 4 x 4 windows of one patch, and the clean pass
    assert torch.isfinite(heat).all() and heat.shape == (3, 32, 32)
    # each window occludes whole patches: the map is constant over every 8 x 8 patch
    blocks = heat[0].unfold(0, 8, 8).unfold(1, 8, 8)
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))


def test_occlusion_window_and_stride_are_checked_and_belong_to_occlusion(tmp_path):
    digits = probe.load_model("digits")
    fine = attribute(digits, "digits:3", "occlusion", window=4, stride=2)
    assert fine.options["window"] == 4 and torch.isfinite(fine.attributions["occlusion"]).all()
    with pytest.raises(ProbeUsageError, match="occlusion's") as error:
        attribute(digits, "digits:3", "saliency", window=4)
    assert error.value.param == "window"
    from click.testing import CliRunner

    from probe.cli.main import cli

    bad = CliRunner().invoke(cli, ["attribute", "digits:3", "--method", "occlusion", "--stride", "0",
                                   "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "'--stride'" in bad.output and "Traceback" not in bad.output


def test_a_model_that_cannot_be_copied_is_refused_in_one_line():
    model = _net(nn.Conv2d)
    model.lock = __import__("threading").Lock()  # deepcopy cannot copy a lock
    with pytest.raises(ProbeUsageError, match="cannot be copied") as error:
        attribute(model, IMAGE[:, :8, :8], "deeplift", size=8)
    assert error.value.param == "method" and "\n" not in str(error.value)
    assert "saliency" in attribute(model, IMAGE[:, :8, :8], ["saliency", "deeplift"], size=8).heatmaps
    del model.lock
    assert copy.deepcopy(model) is not model


def test_deeplift_reports_how_far_it_is_from_complete_where_captum_has_no_rule():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GELU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 3)).eval()
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    result = attribute(model, image, ["deeplift", "integrated-gradients"], target=0, size=8, steps=64)
    gaps = result.options["completeness"]
    assert gaps["deeplift"] > 0.05 > 1e-3 > gaps["integrated-gradients"]  # GELU passes plain gradients


class TiedConv(nn.Module):
    """One convolution applied twice, and its weight read in forward: weight tying."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(3 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv(x))
        x = self.relu(self.conv(x)) * self.conv.weight.abs().mean()
        return self.fc(x.flatten(1))


def test_a_reused_module_read_in_forward_keeps_its_attributes_on_the_copy():
    model = TiedConv().eval()
    image = IMAGE[:, :8, :8]
    net = unshared_copy(model, image[None])
    assert net.net.conv.weight is model.conv.weight and net.net.conv.stride == (1, 1)
    assert torch.equal(net(image[None]), model(image[None]))
    assert torch.isfinite(attribute(model, image, "deeplift", size=8).attributions["deeplift"]).all()


class PoolIndices(nn.Module):
    """A hooked module with two outputs (values, indices), which captum's hooks cannot take."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, _ = self.pool(self.relu(self.conv(x)))
        return self.fc(values.flatten(1))


@pytest.mark.parametrize("method", ["deeplift", "lrp"])
def test_captum_failing_inside_its_hooks_is_one_line_naming_the_method(method):
    model = PoolIndices().eval()
    with pytest.raises(ProbeUsageError, match=f"captum's {method} cannot run on this model") as error:
        attribute(model, IMAGE[:, :8, :8], method, size=8)
    assert error.value.param == "method" and "\n" not in str(error.value) and no_hooks_left(model)


class MyReLU(nn.ReLU):
    """A subclass of a DeepLift activation with its base's math (captum matches by exact type)."""


def test_deeplift_gives_a_subclass_of_relu_the_rescale_rule():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), MyReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    plain.load_state_dict(model.state_dict())
    image = IMAGE[:, :8, :8]
    ours = attribute(model, image, "deeplift", target=0, size=8)
    assert torch.allclose(ours.attributions["deeplift"],
                          attribute(plain, image, "deeplift", target=0, size=8).attributions["deeplift"], atol=1e-7)
    assert ours.options["completeness"]["deeplift"] < 1e-4 and type(model[1]) is MyReLU
