"""The render loop on tiny networks: scores rise, one batch per layer, the model untouched, seeded, honest scores."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import no_hooks_left
from tinynets import tiny, tiny_gray

import probe
from probe import objectives as O
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.models import Preprocess, load_model
from probe.optimize import MaximizeResult, evaluate, inspect_layer, maximize

GRAY = Preprocess((0.2,), (0.3,), 1, (16, 16))


def gray_model():
    return load_model(tiny_gray(), preprocess=GRAY)


@pytest.mark.parametrize("preset", ["robust", "plain"])
def test_every_unit_of_a_layer_rises_in_one_batch(preset):
    model = gray_model()
    batches = []
    handle = model.module.conv1.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        result = maximize(model, O.channel("conv2", range(6)), steps=12, preset=preset, image_size=16)
    finally:
        handle.remove()
    assert batches[:4] == [2, 2, 1, 1]  # batch_coupled: two images together twice, then each alone, once
    assert batches[4] == 1  # the memory estimate: one image's forward pass (probe.optimize.pass_cost)
    assert batches[5:] == [6] * 13  # 12 steps + the final measurement, every time the whole layer
    assert result.images.shape == (6, 1, 16, 16) and result.scores.shape == (6,)
    assert result.history.shape == (12, 6) and result.units == tuple(range(6))
    assert (result.scores > result.history[0]).all()
    assert result.images.min() >= 0 and result.images.max() <= 1


def test_forward_stops_at_the_deepest_needed_layer():
    model = gray_model()
    model.module.requires_grad_(False)  # frozen: maximize runs this very module, not a weight-sharing view
    maximize(model, O.channel("conv2", 0), steps=2, image_size=16)
    assert model.module.counter.calls == 0
    maximize(model, O.class_logit(1), steps=2, image_size=16)
    assert model.module.counter.calls == 4  # the output needs the whole network: the estimate, 2 steps, the score


def test_the_model_is_left_exactly_as_it_was(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    requires = [p.requires_grad for p in model.parameters()]
    maximize(model, O.channel("conv2", range(6)) - 0.01 * O.l1(), steps=3, image_size=16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == flags and any(flags)
    assert [p.requires_grad for p in model.parameters()] == requires and all(requires)
    assert all(p.grad is None for p in model.parameters())
    assert no_hooks_left(model)


def test_same_seed_same_images_other_seed_other_images():
    model = gray_model()
    runs = [maximize(model, O.channel("conv2", [1, 2]), steps=5, image_size=16, seed=s) for s in (3, 3, 4)]
    assert torch.equal(runs[0].images, runs[1].images) and torch.equal(runs[0].scores, runs[1].scores)
    assert not torch.equal(runs[0].images, runs[2].images)
    generator = torch.Generator().manual_seed(3)
    assert torch.equal(maximize(model, O.channel("conv2", [1, 2]), steps=5, image_size=16,
                                generator=generator).images, runs[0].images)


def test_final_scores_are_measured_on_the_saved_images_without_transforms():
    model = gray_model()
    objective = O.channel("conv2", range(4)) - 0.05 * O.total_variation()
    result = maximize(model, objective, steps=6, image_size=16)
    assert torch.equal(result.images, (result.images * 255).round() / 255)  # 8-bit, as in the PNGs
    assert torch.allclose(result.scores, evaluate(model, objective, result.images), atol=1e-4)
    assert set(result.terms) == {"channel(conv2:0-3)", "total_variation"} and result.main == "channel(conv2:0-3)"
    recombined = result.terms["channel(conv2:0-3)"] - 0.05 * result.terms["total_variation"]
    assert torch.allclose(result.scores, recombined, atol=1e-3)


def test_chunks_snapshots_and_progress():
    model = gray_model()
    calls = []
    result = maximize(model, O.channel("conv2", range(6)), steps=4, image_size=12, batch=4, snapshots=[2, 4],
                      progress=lambda step, total, metrics: calls.append((step, total, sorted(metrics))))
    assert [c[0] for c in calls] == list(range(1, 9)) and {c[1] for c in calls} == {8}
    assert calls[0][2] == ["score"]
    assert set(result.snapshots) == {2, 4} and result.snapshots[2].shape == (6, 1, 12, 12)
    assert torch.equal(result.snapshots[4], result.images)
    assert (result.history != 0).all()  # both chunks filled their columns


def test_diversity_groups_are_kept_whole_by_the_chunks():
    model = gray_model()
    objective = O.channel("conv2", [0, 0, 0, 1, 1, 1]) + 10 * O.diversity("conv2", group=3)
    result = maximize(model, objective, steps=3, image_size=16, batch=4)  # chunks of 3, not 4
    assert result.units == (0, 0, 0, 1, 1, 1) and torch.isfinite(result.scores).all()
    several = maximize(model, O.channel("conv2", 2) + O.diversity("conv2"), images=3, steps=3, image_size=16)
    assert several.units == (2, 2, 2) and len(several) == 3


def test_class_images_report_probabilities():
    model = gray_model()
    result = maximize(model, O.class_logit(range(4)) - 0.01 * O.l1(), steps=20, image_size=16, preset="plain")
    assert result.kind == "class" and result.outputs.shape == (4, 4)
    assert torch.equal(result.predicted, torch.arange(4))
    assert torch.allclose(result.probabilities, result.outputs.softmax(1).diagonal())


def test_other_objectives_parametrizations_and_precisions_run():
    model = gray_model()
    direction = maximize(model, O.direction("conv2", torch.randn(6, generator=torch.Generator().manual_seed(0))),
                         steps=3, image_size=16, param="pixel", transforms="standard", optimizer="sgd", lr=0.01)
    assert direction.kind == "direction" and direction.settings["optimizer"] == "sgd"
    bf16 = maximize(model, O.neuron("conv2", [0, 1]), steps=3, image_size=16, precision="bf16")
    assert torch.isfinite(bf16.scores).all() and bf16.settings["precision"] == "bf16"
    rgb = maximize(tiny(), O.channel("conv1", range(4)), steps=3, image_size=(16, 20), param="fft")
    assert rgb.images.shape == (4, 3, 16, 20)


def test_channels_last_renders_the_same_images():
    # another memory layout for the convolutions: the same images up to float rounding, same seed
    model = gray_model()
    objective = O.channel("conv2", range(3))
    default = maximize(model, objective, steps=8, image_size=16, seed=3)
    channels_last = maximize(model, objective, steps=8, image_size=16, seed=3, channels_last=True)
    assert channels_last.settings["channels_last"] is True and default.settings["channels_last"] is False
    torch.testing.assert_close(channels_last.scores, default.scores, rtol=1e-3, atol=1e-3)
    assert (channels_last.images - default.images).abs().max() <= 2 / 255  # 8-bit images: a level or two at most


def test_nan_stops_with_advice():
    model = gray_model()
    broken = O.channel("conv2", 0) * O.Objective(lambda ctx: torch.full((ctx.batch,), float("nan")), "nan")
    with pytest.raises(ProbeRuntimeError, match="NaN or infinite at step 1, on the starting image, before any step was taken, so no learning rate"):
        maximize(model, broken, steps=3, image_size=16)


def test_bad_requests_name_what_is_valid():
    model = gray_model()
    with pytest.raises(ProbeUsageError, match="unknown layer 'conv3'.*did you mean 'conv2'"):
        maximize(model, O.channel("conv3", 0), steps=1, image_size=16)
    with pytest.raises(ProbeUsageError, match=r"unit 60 is out of range for conv2 \(0 to 5\)"):
        maximize(model, O.channel("conv2", 60), steps=1, image_size=16)
    with pytest.raises(ProbeUsageError, match="presets are: robust, plain"):
        maximize(model, O.channel("conv2", 0), preset="fancy")
    with pytest.raises(ProbeUsageError, match="snapshots must be from 1 to 4; got 9"):
        maximize(model, O.channel("conv2", 0), steps=4, snapshots=[9])
    with pytest.raises(ProbeUsageError, match="renders 3 images, not 2"):
        maximize(model, O.channel("conv2", [0, 1, 2]), images=2)
    with pytest.raises(ProbeUsageError, match="optimizers are"):
        maximize(model, O.channel("conv2", 0), steps=1, image_size=16, optimizer="lbfgs")


def test_inspect_layer_finds_shapes_and_the_output_layer():
    model = gray_model()
    conv2 = inspect_layer(model, "conv2")
    assert conv2.shape == (6, 8, 8) and conv2.units == 6 and not conv2.is_output and conv2.output_layer == "fc"
    assert inspect_layer(model, "fc").is_output and inspect_layer(model, "output").units == 4
    with pytest.raises(ProbeUsageError, match="did you mean 'conv2'"):
        inspect_layer(model, "conv22")


def test_save_and_notebook_display(tmp_path):
    result = maximize(gray_model(), O.channel("conv2", range(3)), steps=2, image_size=16, snapshots=[1])
    assert isinstance(result, MaximizeResult) and probe.MaximizeResult is MaximizeResult
    folder = result.save(tmp_path / "gallery", note="hello")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["command"] == "maximize" and manifest["layer"] == "conv2" and manifest["note"] == "hello"
    assert [item["score"] for item in manifest["items"][:3]] == pytest.approx(result.scores.tolist())
    assert manifest["items"][0]["file"] == "conv2-000.png" and manifest["items"][0]["caption"].startswith("conv2:0  a=")
    assert (folder / "conv2-002-step1.png").exists() and (folder / "contact-sheet-step-1.png").exists()
    assert result._repr_png_().startswith(b"\x89PNG")


def test_images_no_gradient_reached_are_named_not_passed_off_as_visualizations():
    """A unit that gets no gradient (a layer zeroed by its weights, as a norm with zero scale under random
    initialization; a unit dead on its start image) kept its starting noise and the run said nothing. Such
    images are listed in settings['unmoved'] and the CLI says so in a note."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    torch.nn.init.zeros_(net[1].weight)
    zeroed = probe.maximize(net, probe.objectives.channel("1", [0, 1]), steps=2, image_size=16)
    assert zeroed.settings["unmoved"] == [0, 1]
    moved = probe.maximize(net, probe.objectives.channel("0", [0, 1]), steps=2, image_size=16)
    assert "unmoved" not in moved.settings

