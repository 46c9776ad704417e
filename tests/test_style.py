"""Style transfer: the functional core against hand computations, VGG names, colours, the loop's contracts."""

from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn

import probe
from conftest import no_hooks_left
from probe.errors import ProbeUsageError
from probe.style import (
    content_loss,
    gram_matrix,
    keep_content_colors,
    normalize_weights,
    rgb_to_yiq,
    style_loss,
    style_network,
    style_transfer,
    total_variation_loss,
    yiq_to_rgb,
)
from probe.style import plan_layers
from probe.style.objective import StyleObjective, StyleTargets
from probe.vgg_names import vgg_aliases


def images(seed: int, size: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.rand(channels, size, size, generator=torch.Generator().manual_seed(seed))


# --- the functional core -------------------------------------------------------------------------


def test_gram_matrix_against_a_hand_computation():
    # one image, 2 channels over 2x2 positions: a = [1, 2, 3, 4], b = [0, 1, 0, -1]
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]])
    # a.a = 1+4+9+16 = 30, a.b = 0+2+0-4 = -2, b.b = 0+1+0+1 = 2
    expected = torch.tensor([[[30.0, -2.0], [-2.0, 2.0]]])
    assert torch.equal(gram_matrix(features, normalize=False), expected)
    assert torch.allclose(gram_matrix(features), expected / 4)  # mean over the 4 positions
    assert torch.allclose(gram_matrix(features.flatten(2)), expected / 4)  # (N, C, L) works too


def test_gram_matrix_is_per_image_and_symmetric():
    features = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    grams = gram_matrix(features)
    assert grams.shape == (3, 5, 5)
    assert torch.allclose(grams, grams.transpose(1, 2), atol=1e-6)
    assert torch.allclose(grams[1], gram_matrix(features[1:2])[0])
    with pytest.raises(ProbeUsageError, match="feature maps"):
        gram_matrix(torch.ones(2, 3))


@pytest.mark.parametrize("normalize", [True, False])
def test_gram_matrix_gradient_is_autograds_of_the_plain_product(normalize):
    # the one-matmul backward must give what autograd derives for bmm(F, F^T), to first and second order
    features = torch.randn(2, 3, 4, 5, dtype=torch.double, generator=torch.Generator().manual_seed(1))
    features.requires_grad_(True)
    weights = torch.randn(2, 3, 3, dtype=torch.double, generator=torch.Generator().manual_seed(2))
    flat = features.flatten(2)
    plain = torch.bmm(flat, flat.transpose(1, 2)) / (20 if normalize else 1)
    (expected,) = torch.autograd.grad((plain * weights).sum(), features)
    (got,) = torch.autograd.grad((gram_matrix(features, normalize=normalize) * weights).sum(), features)
    assert torch.allclose(got, expected)
    assert torch.autograd.gradgradcheck(lambda f: gram_matrix(f, normalize=normalize), (features,))


def test_losses_are_zero_for_identical_images_and_positive_otherwise():
    a = torch.rand(1, 4, 6, 6, generator=torch.Generator().manual_seed(1))
    b = torch.rand(1, 4, 6, 6, generator=torch.Generator().manual_seed(2))
    assert content_loss(a, a.clone()) == 0 and style_loss(a, gram_matrix(a)) == 0
    assert content_loss(a, b) > 0 and style_loss(a, gram_matrix(b)) > 0
    assert torch.allclose(content_loss(a, b), ((a - b) ** 2).mean())
    assert torch.allclose(content_loss(a, b, relative=True), ((a - b) ** 2).mean() / (b**2).mean())
    target = gram_matrix(b)
    assert torch.allclose(style_loss(a, target, relative=True), ((gram_matrix(a) - target) ** 2).mean() / (target**2).mean())


def test_total_variation_by_hand():
    assert total_variation_loss(torch.full((1, 3, 5, 5), 0.3)) == 0
    image = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])  # 2 vertical pairs differ by 0, 2 horizontal by 1
    assert torch.isclose(total_variation_loss(image), torch.tensor(2 / 4))
    assert torch.isclose(total_variation_loss(image * 2, exponent=1.0), torch.tensor(4 / 4))


def test_style_loss_refuses_a_target_from_another_layer():
    with pytest.raises(ProbeUsageError, match="same layer"):
        style_loss(torch.rand(1, 4, 3, 3), torch.rand(1, 5, 5))


# --- weights and colours -------------------------------------------------------------------------


def test_blend_weights_are_normalized_and_checked():
    assert normalize_weights([3, 1], 2, "blend") == [0.75, 0.25]
    assert normalize_weights(None, 4, "blend") == [0.25] * 4
    with pytest.raises(ProbeUsageError, match="2 blend given for 3"):
        normalize_weights([1, 1], 3, "blend")
    with pytest.raises(ProbeUsageError, match=">= 0"):
        normalize_weights([1, -1], 2, "blend")
    with pytest.raises(ProbeUsageError, match="not all 0"):
        normalize_weights([0, 0], 2, "blend")


def test_yiq_round_trip():
    image = images(3)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-5)
    gray = torch.full((3, 2, 2), 0.4)
    assert torch.allclose(rgb_to_yiq(gray)[1:], torch.zeros(2, 2, 2), atol=1e-6)  # gray has no chroma


def test_original_colors_keep_the_content_chroma_and_the_result_luminance():
    content = 0.3 + 0.4 * images(4)  # mid-range: the conversion back does not clip
    stylized = 0.3 + 0.4 * images(5)
    kept = keep_content_colors(stylized, content)
    assert torch.allclose(rgb_to_yiq(kept)[1:], rgb_to_yiq(content)[1:], atol=1e-5)
    assert torch.allclose(rgb_to_yiq(kept)[0], rgb_to_yiq(stylized)[0], atol=1e-5)
    batch = keep_content_colors(stylized[None].repeat(2, 1, 1, 1), content)
    assert batch.shape == (2, 3, 16, 16) and torch.allclose(batch[1], kept, atol=1e-6)


# --- VGG names -----------------------------------------------------------------------------------


def meta_model(name: str) -> nn.Module:
    """A torchvision model's structure without allocating or initializing weights."""
    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None)


def block_and_position(features: nn.Sequential, index: int) -> tuple[int, int]:
    """Count by walking: pools passed before ``index`` (block - 1) and convolutions since the last pool."""
    block, position = 1, 0
    for module in list(features)[: index + 1]:
        if isinstance(module, nn.MaxPool2d):
            block, position = block + 1, 0
        elif isinstance(module, nn.Conv2d):
            position += 1
    return block, position


@pytest.mark.parametrize(
    ("model_name", "expected"),
    [
        ("vgg19", {"relu4_2": "features.22", "conv4_2": "features.21", "relu1_1": "features.1",
                   "relu5_1": "features.29", "pool3": "features.18", "conv5_4": "features.34"}),
        ("vgg16", {"relu4_2": "features.20", "conv4_2": "features.19", "relu5_1": "features.25",
                   "pool5": "features.30"}),
        ("vgg19_bn", {"conv1_1": "features.0", "bn1_1": "features.1", "relu1_1": "features.2",
                      "relu4_2": "features.32"}),
    ],
)
def test_vgg_names_map_onto_torchvision_indices(model_name, expected):
    model = meta_model(model_name)
    aliases = vgg_aliases(model)
    for name, module_name in expected.items():
        assert aliases[name] == module_name, name
    for name, module_name in aliases.items():  # every alias agrees with a walk of its own
        index = int(module_name.split(".")[1])
        module = model.features[index]
        kind = name.rstrip("0123456789_")
        expected_type = {"conv": nn.Conv2d, "bn": nn.BatchNorm2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[kind]
        assert isinstance(module, expected_type), name
        if kind != "pool":
            assert block_and_position(model.features, index) == tuple(int(n) for n in name[len(kind):].split("_"))


def test_vgg_names_work_on_a_bare_features_sequential_and_not_elsewhere():
    assert vgg_aliases(meta_model("vgg19").features)["relu4_2"] == "22"
    assert vgg_aliases(meta_model("resnet18")) == {}


def test_default_layers_on_vgg_and_fallbacks_on_smaller_models():
    plan = plan_layers(meta_model("vgg19"))
    assert plan.content == {"relu4_2": "features.22"} and plan.note == ""
    assert list(plan.style) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    small = plan_layers(probe_shapes_like())
    assert small.content == {"relu3_2": "relu3_2"}
    assert list(small.style) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    assert "relu4_2" in small.note and "relu5_1" in small.note


def probe_shapes_like() -> nn.Sequential:
    """The embedded shapes net's layout (conv1_1 ... relu4_1, VGG names as module names), untrained."""
    layers, channels = [], 3
    for block, (width, count) in enumerate(((4, 2), (6, 2), (8, 2), (8, 1)), start=1):
        for index in range(1, count + 1):
            layers += [(f"conv{block}_{index}", nn.Conv2d(channels, width, 3, padding=1)),
                       (f"relu{block}_{index}", nn.ReLU())]
            channels = width
        if block < 4:
            layers.append((f"pool{block}", nn.MaxPool2d(2)))
    layers += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(channels, 10))]
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(layers))


def test_unknown_and_missing_layers_are_usage_errors_with_suggestions():
    model = meta_model("vgg19")
    with pytest.raises(ProbeUsageError, match=r"unknown layer 'relu4_9'.*did you mean") as error:
        plan_layers(model, content_layers=["relu4_9"])
    assert error.value.param == "content_layer"
    with pytest.raises(ProbeUsageError, match="unknown layer 'relu5_1'") as error:
        plan_layers(probe_shapes_like(), style_layers=["relu1_1", "relu5_1"])
    assert error.value.param == "style_layer"
    with pytest.raises(ProbeUsageError, match="no layers named like VGG"):
        plan_layers(meta_model("resnet18"))
    with pytest.raises(ProbeUsageError, match="named twice"):
        plan_layers(model, style_layers=["relu1_1", "relu1_1"])


# --- the network view ----------------------------------------------------------------------------


def test_style_network_shares_weights_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
    before = copy.deepcopy(model.state_dict())
    view, swapped = style_network(model, "avg")
    assert swapped == 2
    assert isinstance(model[2], nn.MaxPool2d) and model[1].inplace  # the model is unchanged
    assert isinstance(view[2], nn.AvgPool2d) and not view[1].inplace
    assert view[0].weight is model[0].weight  # shared, not copied
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ProbeUsageError, match="no nn.MaxPool2d"):
        style_network(nn.Sequential(nn.Conv2d(3, 3, 1)), "avg")


def test_style_network_of_a_pruned_model_is_a_view_too():
    """A pruned conv's ``weight`` is a plain tensor deepcopy refuses: the view fell back to the model itself
    (in-place ReLUs kept) and ``pooling="avg"`` was refused as 'cannot be copied'."""
    from torch.nn.utils import prune

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)).eval()
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    for pooling in ("max", "avg"):
        view, _ = style_network(model, pooling)
        assert view is not model and not view[1].inplace and view[0].weight_orig is model[0].weight_orig
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(view[:2](x), model[:2](x)) and model[1].inplace and model[0]._forward_pre_hooks


# --- the loop ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_like() -> probe.LoadedModel:
    return probe.load_model(probe_shapes_like().eval().requires_grad_(False))


def run(model, **options):
    options = {"size": 32, "steps": 20, "snapshots": 2, **options}
    return style_transfer(model, images(10, 32), [images(11, 32)], **options)


def test_style_transfer_lowers_the_style_loss_and_keeps_the_model_clean(shapes_like):
    module = shapes_like.module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainable = probe_shapes_like()  # a user's module: training mode, requires_grad on
    result = run(trainable, steps=30)
    assert result.style_ratio < 0.5
    assert result.history["style"][-1] < result.history["style"][0]
    assert result.losses["total"] == pytest.approx(min(result.history["total"]), rel=1e-4)  # the best image seen
    assert len(result.history["total"]) == 30 and result.image.shape == (3, 32, 32)
    assert 0 <= result.image.min() and result.image.max() <= 1
    assert [step for step, _ in result.snapshots] == [10, 20]
    assert result.options["content_layers"] == {"relu3_2": "relu3_2"} and "relu4_2" in result.options["layer_note"]
    assert trainable.training and all(p.requires_grad and p.grad is None for p in trainable.parameters())
    assert no_hooks_left(trainable) and no_hooks_left(module)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert set(result.layer_losses) == {"content:relu3_2", *(f"style:relu{b}_1" for b in range(1, 5))}


def test_same_seed_same_image(shapes_like):
    first = run(shapes_like, init="random", steps=5, seed=3)
    again = run(shapes_like, init="random", steps=5, seed=3)
    other = run(shapes_like, init="random", steps=5, seed=4)
    assert torch.equal(first.image, again.image) and not torch.equal(first.image, other.image)


def test_adam_avg_pooling_multiscale_and_original_colors(shapes_like):
    result = run(shapes_like, optimizer="adam", pooling="avg", scales=[16, 32], steps=6, original_colors=True)
    assert result.image.shape == (3, 32, 32) and len(result.history["total"]) == 12
    assert result.history["scale"][:6] == [0.0] * 6 and result.history["scale"][6:] == [1.0] * 6
    assert result.options["pools_swapped"] == 3 and result.options["scales"] == [[16, 16], [32, 32]]
    assert isinstance(shapes_like.module.pool1, nn.MaxPool2d)
    inner = (result.image > 0.02) & (result.image < 0.98)  # where no channel clipped, chroma is the content's
    mask = inner.all(dim=0)
    chroma, expected = rgb_to_yiq(result.image)[1:], rgb_to_yiq(result.content)[1:]
    assert mask.sum() > 100 and torch.allclose(chroma[:, mask], expected[:, mask], atol=2e-3)


def test_style_blend_of_identical_styles_equals_one_style(shapes_like):
    style = images(11, 32)
    one = style_transfer(shapes_like, images(10, 32), style, size=32, steps=4)
    two = style_transfer(shapes_like, images(10, 32), [style, style], style_blend=[0.7, 0.3], size=32, steps=4)
    assert two.options["style_blend"] == pytest.approx([0.7, 0.3])
    assert torch.allclose(one.image, two.image, atol=1e-5)


def test_style_transfer_errors(shapes_like, tmp_path):
    with pytest.raises(ProbeUsageError, match="style blend weights") as error:
        run(shapes_like, style_blend=[1, 2])
    assert error.value.param == "style_blend"
    with pytest.raises(ProbeUsageError, match="style layer weights"):
        run(shapes_like, style_layer_weights=[1, 2])
    with pytest.raises(ProbeUsageError, match="content image: cannot convert an image with 5 channels to 3") as error:
        style_transfer(shapes_like, torch.rand(5, 8, 8), images(1))  # 4 would be RGBA, composited
    assert error.value.param == "content"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ProbeUsageError, match="style image 1: cannot read image") as error:
        style_transfer(shapes_like, images(1), str(broken))
    assert error.value.param == "styles"
    with pytest.raises(ProbeUsageError, match="no such file"):
        style_transfer(shapes_like, str(tmp_path / "missing.jpg"), images(1))
    with pytest.raises(ProbeUsageError, match="feature maps"):
        run(shapes_like, style_layers=["fc"])
    with pytest.raises(ProbeUsageError, match="unknown optimizer"):
        run(shapes_like, optimizer="sgd")
    with pytest.raises(ProbeUsageError, match="init must be"):
        run(shapes_like, init="noise")
    with pytest.raises(ProbeUsageError, match="too small"):
        run(shapes_like, size=4)


def test_result_saves_a_gallery_and_shows_in_notebooks(shapes_like, tmp_path):
    result = run(shapes_like, steps=6)
    folder = result.save(tmp_path / "gallery")
    assert (folder / "manifest.json").exists() and (folder / "losses.png").exists()
    assert result._repr_png_().startswith(b"\x89PNG")


# --- the VGG path and the shipped model ---------------------------------------------------------


def test_the_vgg19_features_run_with_gatys_layers_and_avg_pooling():
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["E"]).eval().requires_grad_(False)  # vgg19's features: no 120M-weight head
    result = style_transfer(features, images(1, 64), images(2, 64), size=64, steps=5, pooling="avg",
                            content_layers=["conv4_2"])
    assert result.options["content_layers"] == {"conv4_2": "21"}
    assert result.options["style_layers"]["relu5_1"] == "29" and result.options["pools_swapped"] == 5
    assert result.image.shape == (3, 64, 64) and len(result.history["total"]) == 5
    assert all(torch.isfinite(torch.tensor(v)).all() for v in result.history.values())
    assert isinstance(features[4], nn.MaxPool2d) and features[1].inplace and no_hooks_left(features)


def test_default_size_follows_the_model():
    assert probe.style.default_size(probe.load_model("shapes", device="cpu")) == 128
    assert probe.style.default_size(probe.load_model(probe_shapes_like())) == 256  # ImageNet-sized by default
    digits = probe.load_model("digits", device="cpu")
    assert probe.style.default_size(digits) == 56


def test_the_shipped_shapes_model_transfers_style():
    shapes = probe.load_model("shapes", device="cpu")
    result = style_transfer(shapes, "skimage:astronaut", "skimage:coffee", size=48, steps=30, snapshots=0)
    assert result.options["content_layers"] == {"relu3_2": "relu3_2"} and result.image.shape == (3, 48, 48)
    assert result.style_ratio < 0.1 and result.losses["content"] < 1.0


def test_content_image_style_loss_comes_from_the_targets_pass(shapes_like):
    result = run(shapes_like, steps=2, snapshots=0)
    # init="content": the first evaluation sees the content image itself, so its style loss is the reference
    assert result.content_image_style_loss == pytest.approx(result.history["style"][0], rel=1e-4)
    assert result.style_ratio == pytest.approx(result.losses["style"] / result.history["style"][0], rel=1e-4)


class CountedConv(nn.Conv2d):
    """A convolution that counts the forward passes through it (a class attribute: the views copy the module)."""

    passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).passes += 1
        return super().forward(x)


def test_the_default_size_check_pass_is_the_content_targets_pass():
    """At the default size, the no-grad pass that checks the model takes it gives the content's targets too."""
    module = probe_shapes_like()
    counted = CountedConv(3, 4, 3, padding=1)
    counted.load_state_dict(module.conv1_1.state_dict())
    module.conv1_1 = counted
    CountedConv.passes = 0
    result = style_transfer(probe.load_model(module.eval().requires_grad_(False)), images(10, 32), [images(11, 32)],
                            steps=2, snapshots=0)
    assert result.image.shape[-1] == 256  # the default size of an ImageNet-sized model
    assert CountedConv.passes == 5  # the content, the style, 2 evaluations, the final losses: no pass made twice


def test_the_divisors_kept_with_the_targets_give_the_same_losses_bit_for_bit(shapes_like):
    net, _ = style_network(shapes_like.module)
    plan = plan_layers(shapes_like.module, ["relu3_1"], ["relu1_1", "relu2_1"])
    objective = StyleObjective(net, shapes_like.preprocess.normalize, plan, {"relu1_1": 0.5, "relu2_1": 0.5},
                               (1.0, 1e3, 0.0), torch.device("cpu"))
    targets = objective.targets(images(10, 32), [images(11, 32)], [1.0])
    assert sorted(targets.divisors) == sorted([f"content:{m}" for m in targets.content]
                                              + [f"style:{m}" for m in targets.grams])
    image = images(12, 32)[None].requires_grad_(True)
    kept = objective.losses(image, targets, per_layer=True)
    computed = objective.losses(image, StyleTargets(targets.content, targets.grams), per_layer=True)
    assert all(torch.equal(kept[key], computed[key]) for key in kept)
    assert not kept["tv"].requires_grad and kept["total"].requires_grad  # tv weighted 0: reported, not differentiated
    assert torch.equal(torch.autograd.grad(kept["total"], image)[0], torch.autograd.grad(computed["total"], image)[0])


def test_the_memory_check_counts_the_lbfgs_history(shapes_like, monkeypatch):
    """L-BFGS allocates its curvature pairs at the start (2 images each): a size they do not fit in is refused first."""
    import probe.style.transfer as transfer

    needed: dict[str, float] = {}

    class Checked(Exception):
        pass

    def check_fits(estimate: float, device, what: str, advice: str) -> None:
        if what.startswith("style transfer"):
            needed[optimizer] = estimate
            raise Checked

    monkeypatch.setattr(transfer, "check_fits", check_fits)
    for optimizer in ("lbfgs", "adam"):
        with pytest.raises(Checked):  # stopped at the check: nothing of that size is allocated
            style_transfer(shapes_like, images(10, 32), [images(11, 32)], size=480, steps=50, optimizer=optimizer)
    assert needed["lbfgs"] - needed["adam"] == 2 * 48 * 3 * 480 * 480 * 4  # 48 pairs: 50 evaluations make no more
