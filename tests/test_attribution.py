"""captum attribution: shapes, oracles, guided backprop and ReLUs, targets, errors, the gallery."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser

import pytest
import torch
import torch.nn.functional as F
from conftest import no_hooks_left
from torch import nn

import probe
from probe.attribution import METHODS, attribute, relu_check
from probe.errors import ProbeUsageError
from tinynets import tiny


@pytest.fixture(scope="module")
def digits():
    return probe.load_model("digits", device="cpu")


@pytest.fixture(scope="module")
def all_digits(digits):
    return attribute(digits, "digits:0", "all", steps=16, samples=4)


def test_every_method_gives_a_map_of_the_input_shape(all_digits):
    assert list(all_digits.attributions) == list(METHODS) and not all_digits.skipped
    for method, attribution in all_digits.attributions.items():
        assert attribution.shape == (1, 28, 28), method
        heat = all_digits.heatmaps[method]
        assert heat.shape == (28, 28) and torch.isfinite(heat).all() and heat.min() >= 0 and heat.max() == 1
    assert all_digits.target == 0 and all_digits.layer == "relu2"  # the last map before the flatten and its pool


def test_saliency_is_the_input_gradient(digits):
    x = probe.load_image("digits:5").unsqueeze(0).requires_grad_(True)
    (grad,) = torch.autograd.grad(digits(x)[0, 5], x)
    result = attribute(digits, "digits:5", "saliency", target=5)
    assert torch.allclose(result.attributions["saliency"], grad[0], atol=1e-6)
    assert all(p.grad is None for p in digits.module.parameters())


def test_integrated_gradients_add_up_to_the_score_difference(digits):
    x = probe.load_image("digits:7").unsqueeze(0)
    result = attribute(digits, x, "integrated-gradients", target=7, steps=64)
    with torch.no_grad():
        difference = digits(x)[0, 7] - digits(torch.zeros_like(x))[0, 7]
    assert torch.isclose(result.attributions["integrated-gradients"].sum(), difference, rtol=0.02)


def test_gradcam_on_a_conv_layer(digits):
    result = attribute(digits, "digits:3", "gradcam", layer="conv1")
    assert result.layer == "conv1" and result.attributions["gradcam"].shape == (1, 28, 28)
    assert result.attributions["gradcam"].min() >= 0
    with pytest.raises(ProbeUsageError, match="spatial output"):
        attribute(digits, "digits:3", "gradcam", layer="fc1")


def test_smoothgrad_is_seeded_and_leaves_the_global_rng_alone(digits):
    state = torch.get_rng_state()
    first = attribute(digits, "digits:1", "smoothgrad", samples=4, seed=3).attributions["smoothgrad"]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, attribute(digits, "digits:1", "smoothgrad", samples=4, seed=3).attributions["smoothgrad"])
    assert not torch.equal(first, attribute(digits, "digits:1", "smoothgrad", samples=4, seed=4).attributions["smoothgrad"])


def test_targets_by_index_label_and_top():
    shapes = probe.load_model("shapes", device="cpu")
    star = shapes.labels.index("star")
    assert attribute(shapes, "shapes:star", target="star").target == star
    assert attribute(shapes, "shapes:star", target="top").target == star
    assert attribute(shapes, "shapes:star", target=str(star)).target == star


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "gradients"}, "unknown method 'gradients'.*saliency"),
    ({"target": 10}, r"target 10 is out of range \(0 to 9\)"),
    ({"target": "-1"}, r"out of range \(0 to 9\)"),
    ({"target": "seven"}, "unknown target 'seven'"),
    ({"method": "saliency", "layer": "conv1"}, "Grad-CAM's layer"),
])
def test_errors(digits, kwargs, match):
    with pytest.raises(ProbeUsageError, match=match) as error:
        attribute(digits, "digits:0", **kwargs)
    assert error.value.param in ("method", "target", "layer")


class FunctionalRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).flatten(1))


class ModuleRelu(FunctionalRelu):
    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("relu", [F.relu, torch.relu, torch.Tensor.relu, lambda x: F.relu(x.clone(), inplace=True)])
def test_functional_relus_are_guided_like_relu_modules(relu, monkeypatch):
    model, reference = FunctionalRelu(), ModuleRelu()
    reference.load_state_dict(model.state_dict())
    monkeypatch.setattr(FunctionalRelu, "forward", lambda self, x: self.fc(relu(self.conv(x)).flatten(1)))
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert relu_check(model, image.unsqueeze(0)) == (0, 1)
    guided = attribute(model, image, "guided-backprop", target=1, size=8).attributions["guided-backprop"]
    expected = attribute(reference, image, "guided-backprop", target=1, size=8).attributions["guided-backprop"]
    plain = attribute(model, image, "saliency", target=1, size=8).attributions["saliency"]
    assert torch.allclose(guided, expected, atol=1e-7) and not torch.allclose(guided, plain, atol=1e-4)
    assert no_hooks_left(model)


def test_guided_backprop_is_refused_in_one_line_without_relus():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.GELU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()
    with pytest.raises(ProbeUsageError, match="needs ReLU activations; this model has none") as error:
        attribute(model, torch.rand(3, 8, 8), "guided-backprop", size=8)
    assert error.value.param == "method"
    assert "guided-backprop" in attribute(model, torch.rand(3, 8, 8), "all", size=8, steps=2, samples=2).skipped


def test_in_place_relus_give_the_same_guided_backprop(model):
    in_place = copy.deepcopy(model)
    in_place.relu1.inplace = in_place.relu2.inplace = True
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    plain = attribute(model, image, "guided-backprop", target=1, size=16).attributions["guided-backprop"]
    result = attribute(in_place, image, "guided-backprop", target=1, size=16).attributions["guided-backprop"]
    assert torch.allclose(plain, result, atol=1e-6) and plain.abs().sum() > 0
    assert in_place.relu1.inplace and in_place.training and no_hooks_left(in_place)


def test_torchvision_model_at_small_size():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None)
    result = attribute(model, "skimage:astronaut", "all", size=32, steps=4, samples=2)
    assert not result.skipped and result.layer == "layer3.1"  # layer4 is 1x1 at 32 px: no positions left
    assert all(a.shape[-2:] == (32, 32) for a in result.attributions.values())
    assert result.attributions["saliency"].shape == (3, 32, 32)
    assert model.relu.inplace and model.training and no_hooks_left(model)
    assert all(p.grad is None for p in model.parameters())


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def test_gallery_escapes_labels_and_links_files_that_exist(tmp_path):
    model = probe.load_model("xo", device="cpu", labels=["<script>alert(1)</script>", "O & co"])
    result = attribute(model, "xo:x", ["saliency", "gradcam"], target=0)
    manifest = json.loads((result.save(tmp_path) / "manifest.json").read_text())
    assert manifest["target_label"] == "<script>alert(1)</script>" and manifest["methods"] == ["saliency", "gradcam"]
    page = (tmp_path / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    parser = Links()
    parser.feed(page)
    assert parser.scripts == 1 and parser.links  # the page's own sort/zoom script, nothing from the labels
    assert all((tmp_path / link).exists() for link in parser.links if "://" not in link)
    assert {"input.png", "saliency.png", "gradcam-overlay.png", "scale.png"} <= {i["file"] for i in manifest["items"]}
    assert result._repr_png_().startswith(b"\x89PNG")


class AuxHead(torch.nn.Module):
    """:func:`tiny` with an auxiliary convolution declared last that runs only in training (GoogLeNet's aux heads)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny()
        self.aux = torch.nn.Conv2d(4, 2, 1)
        self.relu = torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.aux(self.body.conv1(x))
        self.relu(x)  # runs twice: Grad-CAM cannot take it
        return self.body(self.relu(x))


def test_gradcam_defaults_to_the_last_spatial_layer_that_runs() -> None:
    net = AuxHead().train()
    result = probe.attribute(net, torch.rand(3, 16, 16), "gradcam", size=16)
    # body.drop returns body.relu2's very tensor in eval mode: the first of the two is named
    assert result.layer == "body.relu2" and net.training and no_hooks_left(net)


def test_gradcam_refuses_a_layer_that_runs_twice() -> None:
    with pytest.raises(ProbeUsageError, match="relu runs 2 times") as raised:
        probe.attribute(AuxHead(), torch.rand(3, 16, 16), "gradcam", layer="relu", size=16)
    assert raised.value.param == "layer"
