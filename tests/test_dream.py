"""probe.dream: the objective rises, octaves, tiles, jitter, guides, seeds, errors; tiny models, small images."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import probe
from conftest import no_hooks_left
from probe.dream.geometry import jitter_roll, octave_sizes, unroll, zoom_crop
from probe.dream.objective import make_objective
from probe.errors import ProbeUsageError
from probe.tiling import split, tile_plan
from tinynets import tiny, tiny_gray

FAST = {"steps": 4, "octaves": 2, "jitter": 4}


def image(height: int = 32, width: int = 40, seed: int = 1, channels: int = 3) -> torch.Tensor:
    return torch.rand(channels, height, width, generator=torch.Generator().manual_seed(seed))


def circular() -> nn.Sequential:
    """Convolutions with circular padding: rolling the input rolls every activation."""
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular"),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(5, 4, 3, padding=1, padding_mode="circular"),
        )
    )


def test_objective_rises_and_model_is_untouched(model):
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    training = [m.training for m in model.modules()]
    picture = image()
    result = probe.dream(model, picture, "conv2", **FAST)
    assert result.objective_after > result.objective_before * 1.2
    assert result.image.shape == picture.shape and torch.isfinite(result.image).all()
    assert 0.0 <= float(result.image.min()) and float(result.image.max()) <= 1.0
    assert not torch.equal(result.image, picture)
    assert len(result.history) == FAST["steps"] * FAST["octaves"]
    assert no_hooks_left(model)
    assert [m.training for m in model.modules()] == training
    assert all(torch.equal(params[k], v) for k, v in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())


def test_octave_sizes():
    assert octave_sizes((100, 200), 3, 2.0) == [(25, 50), (50, 100), (100, 200)]
    assert octave_sizes((64, 64), 4, 1.4) == [(23, 23), (33, 33), (46, 46), (64, 64)]
    assert octave_sizes((40, 40), 5, 2.0) == [(20, 20), (40, 40)]  # 10 and 5 px octaves left out
    assert octave_sizes((48, 48), 1, 1.4) == [(48, 48)]
    with pytest.raises(ProbeUsageError):
        octave_sizes((48, 48), 0, 1.4)


def test_result_has_one_image_per_octave_at_the_right_size(model):
    result = probe.dream(model, image(48, 64), "conv2", steps=1, octaves=3, octave_scale=1.5)
    assert result.octave_sizes == octave_sizes((48, 64), 3, 1.5) == [(21, 28), (32, 43), (48, 64)]
    assert torch.equal(result.octaves[-1], result.image)
    assert result.options["octave_sizes"] == [[21, 28], [32, 43], [48, 64]]


@pytest.mark.parametrize("height,width,tile,margin,offset", [
    (64, 64, 16, 4, (0, 0)), (37, 53, 16, 3, (0, 0)), (513, 100, 128, 16, (0, 0)), (20, 20, 32, 8, (0, 0)),
    (64, 64, 16, 4, (5, 15)), (37, 53, 16, 3, (1, 40)), (20, 20, 32, 8, (7, 7)),
])
def test_tiles_cover_every_pixel_once(height, width, tile, margin, offset):
    coverage = torch.zeros(height, width, dtype=torch.int32)
    tiles = tile_plan(height, width, tile, margin, offset)
    for t in tiles:
        coverage[t.core] += 1
        assert t.window_top <= t.top < t.bottom <= t.window_bottom
        assert t.window_left <= t.left < t.right <= t.window_right
        assert t.bottom - t.top <= tile and t.right - t.left <= tile
        assert max(t.window_size) <= tile + 2 * margin
    assert bool((coverage == 1).all())
    assert split(10, 4) == [(0, 3), (3, 7), (7, 10)]


def test_tiled_gradient_equals_untiled_with_enough_margin():
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1))
    objective = make_objective(probe.load_model(module), ["2"])
    picture = image(30, 26)[None]
    whole_score, _, whole = objective.evaluate(picture, tile_plan(30, 26, None), gradient=True)
    # receptive-field radius 2, L2 objective: a margin of 4 makes the tiles exact
    tiled_score, _, tiled = objective.evaluate(picture, tile_plan(30, 26, 8, margin=4), gradient=True)
    assert torch.allclose(whole, tiled, atol=1e-7, rtol=1e-5)
    assert float(tiled_score) == pytest.approx(float(whole_score), rel=1e-5)


def test_a_tiled_dream_with_enough_margin_is_the_untiled_dream():
    """The tile grid's random offsets move the grid, not the image: the jitter is an untiled dream's. (They
    were added to the image's roll, so a tiled dream differed from the untiled one in every step: 0.36 at
    3 steps on the shapes model even with windows as large as the image.)"""
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1))
    loaded, picture = probe.load_model(module, input_size=(30, 26)), image(30, 26)
    whole = probe.dream(loaded, picture, ["2"], steps=3, octaves=2, jitter=4, seed=3)
    tiled = probe.dream(loaded, picture, ["2"], steps=3, octaves=2, jitter=4, seed=3, tile_size=8, tile_margin=4)
    assert torch.allclose(whole.image, tiled.image, atol=1e-5)  # windows of other sizes round differently
    wide = probe.dream(loaded, picture, ["2"], steps=3, octaves=2, jitter=4, seed=3, tile_size=8, tile_margin=30)
    assert torch.equal(whole.image, wide.image)  # every window the whole image: the same computation


def test_tiled_dream_runs_and_rises(model):
    result = probe.dream(model, image(40, 40), "conv2", tile_size=16, steps=3, octaves=1, jitter=4)
    assert result.options["tiles_at_full_size"] == 9 and result.options["tile_margin"] == 2
    assert result.objective_after > result.objective_before


def test_jitter_roll_is_undone_exactly():
    picture = image(17, 23)
    generator = torch.Generator().manual_seed(3)
    shifts = set()
    for _ in range(20):
        rolled, shift = jitter_roll(picture, 6, generator)
        assert all(-6 <= s <= 6 for s in shift)
        shifts.add(shift)
        assert torch.equal(unroll(rolled, shift), picture)
    assert len(shifts) > 10
    rolled, shift = jitter_roll(picture, 0, generator, extra=8)  # tile offsets only
    assert all(0 <= s < 8 for s in shift) and torch.equal(unroll(rolled, shift), picture)


def test_dream_with_jitter_equals_dream_without_on_a_shift_equivariant_model():
    # With circular padding the objective does not change under a roll; if the
    # roll were not undone after each step, the dream would come out shifted.
    module = circular()
    picture = image(24, 24)
    plain = probe.dream(module, picture, "conv2", steps=5, octaves=1, jitter=0)
    jittered = probe.dream(module, picture, "conv2", steps=5, octaves=1, jitter=7)
    assert torch.allclose(plain.image, jittered.image, atol=1e-5)
    assert not torch.equal(plain.image, picture)


def test_zero_learning_rate_returns_the_input_exactly(model):
    picture = image()
    result = probe.dream(model, picture, "conv2", lr=0.0, steps=2, octaves=3)
    assert torch.equal(result.image, picture)  # octave detail carried without loss


def test_steps_do_not_depend_on_the_objective_scale(model):
    # normalized steps: a layer weight of 1e-12 (tiny gradients, like a randomly
    # initialised deep network) dreams the same image as a weight of 1
    picture = image()
    plain = probe.dream(model, picture, "conv2", **FAST)
    tiny_scale = probe.dream(model, picture, "conv2", layer_weights=[1e-12], **FAST)
    assert torch.allclose(plain.image, tiny_scale.image, atol=1e-4)


def test_guide_changes_the_result_and_its_objective_rises(model):
    picture = image(seed=1)
    guide = image(24, 24, seed=7) * 0.5
    plain = probe.dream(model, picture, "conv2", **FAST)
    guided = probe.dream(model, picture, "conv2", guide=guide, **FAST)
    assert guided.options["objective"] == "guide"
    assert (guided.image - plain.image).abs().max() > 0.05
    assert guided.objective_after > guided.objective_before


def test_same_seed_same_image_other_seed_other_image(model):
    picture = image()
    first = probe.dream(model, picture, "conv2", seed=5, **FAST)
    second = probe.dream(model, picture, "conv2", seed=5, **FAST)
    other = probe.dream(model, picture, "conv2", seed=6, **FAST)
    assert torch.equal(first.image, second.image)
    assert not torch.equal(first.image, other.image)
    generated = probe.dream(model, picture, "conv2", generator=torch.Generator().manual_seed(5), **FAST)
    assert torch.equal(generated.image, first.image) and generated.options["seed"] is None


def test_channels_and_layer_weights(model):
    picture = image()
    whole = probe.dream(model, picture, "conv2", **FAST)
    one = probe.dream(model, picture, "conv2", channels=[1], **FAST)
    assert not torch.equal(whole.image, one.image)
    assert one.options["channels"] == {"conv2": [1]}
    # a zero weight leaves the other layer's dream exactly as it is alone
    weighted = probe.dream(model, picture, ["conv2", "conv1"], layer_weights=[1.0, 0.0], **FAST)
    assert torch.allclose(weighted.image, whole.image, atol=1e-6)
    assert set(weighted.layer_objectives) == {"conv2", "conv1"}
    mean = probe.dream(model, picture, ["conv1"], objective="mean", **FAST)
    assert mean.objective_after > mean.objective_before


def test_grayscale_model_gets_grayscale_images():
    result = probe.dream(tiny_gray(), image(), "conv2", **FAST)
    assert result.image.shape == (1, 32, 40) and result.input.shape == (1, 32, 40)


def test_zoom_sequence(model):
    result = probe.dream(model, image(), "conv2", frames=3, zoom=1.2, steps=2, octaves=1)
    assert len(result.frames) == 3 and torch.equal(result.frames[0], result.image)
    assert all(frame.shape == (3, 32, 40) for frame in result.frames)
    picture = image()
    assert zoom_crop(picture, 2.0).shape == picture.shape
    assert torch.allclose(zoom_crop(picture, 1.0), picture, atol=1e-6)


def test_save_writes_the_gallery(model, tmp_path):
    result = probe.dream(model, image(), "conv2", frames=2, steps=2, octaves=2)
    folder = result.save(tmp_path / "run")
    import json

    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("layers", "layer_weights", "channels", "octaves", "octave_scale", "steps", "lr", "tile", "guide"):
        assert key in manifest
    assert manifest["objective_after"] == pytest.approx(result.objective_after)
    names = {item["file"] for item in manifest["items"]}
    assert {"input.png", "dream.png", "octave-1.png", "octave-2.png", "frame-000.png", "frame-001.png"} <= names
    assert (folder / "zoom.gif").exists() and (folder / "index.html").exists()
    assert result._repr_png_().startswith(b"\x89PNG")


def test_unknown_layer_names_the_valid_ones(model):
    with pytest.raises(ProbeUsageError, match="unknown layer 'conv3'.*did you mean") as caught:
        probe.dream(model, image(), "conv3")
    assert caught.value.param == "layer"


def test_unreadable_images_are_usage_errors(model, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ProbeUsageError, match="cannot read image") as caught:
        probe.dream(model, broken, "conv2")
    assert caught.value.param == "image"
    with pytest.raises(ProbeUsageError, match="no such file"):
        probe.dream(model, tmp_path / "missing.png", "conv2")
    with pytest.raises(ProbeUsageError, match="guide") as caught:
        probe.dream(model, image(), "conv2", guide=broken)
    assert caught.value.param == "guide"


def test_other_usage_errors(model):
    with pytest.raises(ProbeUsageError, match="out of range for layer 'conv2'.*6 channels") as caught:
        probe.dream(model, image(), "conv2", channels=[0, 9], steps=1)
    assert caught.value.param == "channels"
    with pytest.raises(ProbeUsageError, match="one weight per layer"):
        probe.dream(model, image(), ["conv1", "conv2"], layer_weights=[1.0])
    with pytest.raises(ProbeUsageError, match="no default dream layer.*conv1"):
        probe.dream(model, image())
    with pytest.raises(ProbeUsageError, match="objectives are"):
        probe.dream(model, image(), "conv2", objective="l3")  # type: ignore[arg-type]
    with pytest.raises(ProbeUsageError, match="convolutional"):
        probe.dream(model, image(), "fc", steps=1, octaves=1)  # a linear layer at the wrong size


def test_googlenet_with_random_weights_at_a_small_size():
    googlenet = probe.load_model("googlenet", weights=None, device="cpu")
    result = probe.dream(googlenet, image(64, 64), steps=2, octaves=1, jitter=8)
    assert result.options["layers"] == ["inception4c"]
    assert result.image.shape == (3, 64, 64) and torch.isfinite(result.image).all()
    assert result.objective_after > 0


def test_the_objective_plot_says_what_was_maximized_of_which_layers():
    # its y axis read "objective" whatever the dream maximized
    from probe.reports.dream import objective_label

    assert objective_label({"objective": "l2", "layers": ["relu3_1"]}) == "mean squared activation of relu3_1"
    assert objective_label({"objective": "mean", "layers": ["a", "b"]}) == "mean activation of a, b"
    assert objective_label({"objective": "l2", "layers": ["relu3_1"], "guide": "shapes:stripes"}) == (
        "match with the guide's features of relu3_1")
    assert objective_label({}) == "objective"
