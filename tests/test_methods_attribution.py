"""DeepLift, GradientShap, Occlusion, LRP, tensor baselines and batches of images: contracts and oracles."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import no_hooks_left
from torch import nn

import probe
from probe.attribution import attribute, attribute_batch, lrp_support
from probe.cli.main import cli
from probe.errors import ProbeUsageError
from probe.optimize import evaluate


@pytest.fixture(scope="module")
def digits():
    return probe.load_model("digits")


def _logit(model, image: torch.Tensor, unit: int) -> float:
    return float(evaluate(model, probe.objectives.class_logit(unit), image[None])[0])


def test_deeplift_and_integrated_gradients_sum_to_the_score_difference_from_a_tensor_baseline(digits):
    image, baseline = probe.load_image("digits:3"), probe.load_image("digits:5")
    delta = _logit(digits, image, 3) - _logit(digits, baseline, 3)
    result = attribute(digits, image, "integrated-gradients", target=3, baseline=baseline, steps=64)
    assert abs(float(result.attributions["integrated-gradients"].sum()) - delta) < 0.02 * abs(delta)
    assert result.options["baseline"] == "tensor (1, 28, 28)"
    # DeepLift's rescale rule is exact from a black image (captum's max-pool rule is not, from another digit)
    black = torch.zeros(1, 28, 28)
    delta = _logit(digits, image, 3) - _logit(digits, black, 3)
    lift = attribute(digits, image, "deeplift", target=3, baseline=black).attributions["deeplift"]
    assert abs(float(lift.sum()) - delta) < 1e-3 * abs(delta)


def test_gradient_shap_is_seeded(digits):
    image = probe.load_image("digits:3")
    baselines = torch.stack([torch.zeros(1, 28, 28), torch.full((1, 28, 28), 0.5)])
    one, same = (attribute(digits, image, "gradient-shap", baseline=baselines, samples=8, seed=s).attributions[
        "gradient-shap"] for s in (1, 1))
    other = attribute(digits, image, "gradient-shap", baseline=baselines, samples=8, seed=2).attributions["gradient-shap"]
    assert torch.equal(one, same) and not torch.equal(one, other)


def test_occlusion_gives_nothing_where_the_window_only_covers_the_baseline(digits):
    image = probe.load_image("digits:3")
    assert image[0, :4, :4].max() == 0  # a black corner: occluding it with black changes nothing
    heat = attribute(digits, image, "occlusion", baseline=0.0).attributions["occlusion"]
    assert heat.shape == (1, 28, 28) and heat[0, 0, 0] == 0 and heat.abs().sum() > 0


def test_lrp_runs_on_the_zoo_and_leaves_the_model_as_it_was(digits):
    before = {id(m): set(vars(m)) for m in digits.module.modules()}
    relevance = attribute(digits, "digits:3", "lrp").attributions["lrp"]
    assert relevance.shape == (1, 28, 28) and torch.isfinite(relevance).all() and relevance.abs().sum() > 0
    assert {id(m): set(vars(m)) for m in digits.module.modules()} == before and no_hooks_left(digits.module)


def test_lrp_is_refused_in_one_line_where_captum_has_no_rule():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.LocalResponseNorm(2), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)).eval()
    assert lrp_support(net) == ["LocalResponseNorm"]
    image = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ProbeUsageError, match="no rule for LocalResponseNorm") as error:
        attribute(net, image, "lrp", size=8)
    assert error.value.param == "method" and "\n" not in str(error.value)
    both = attribute(net, image, ["deeplift", "lrp"], size=8)
    assert "lrp" in both.skipped and "deeplift" in both.heatmaps


def test_a_batch_with_one_baseline_per_image(digits):
    images = torch.stack([probe.load_image("digits:3"), probe.load_image("digits:7")])
    baselines = torch.stack([torch.zeros(1, 28, 28), torch.full((1, 28, 28), 0.3)])
    results = attribute_batch(digits, images, "deeplift", baselines=baselines)
    assert [r.target for r in results] == [3, 7]
    alone = attribute(digits, images[1], "deeplift", baseline=baselines[1])
    assert torch.allclose(results[1].attributions["deeplift"], alone.attributions["deeplift"])
    with pytest.raises(ProbeUsageError, match="1 targets for 2 images"):
        attribute_batch(digits, images, "deeplift", targets=[3])


def test_cli_new_methods_and_baselines(tmp_path):
    runner = CliRunner()
    out = tmp_path / "g"
    result = runner.invoke(cli, ["attribute", "digits:3", "--method", "deeplift", "--method", "occlusion",
                                 "--baseline", "digits:5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    heatmaps = [item["method"] for item in manifest["items"] if item.get("kind") == "heatmap"]
    assert heatmaps == ["deeplift", "occlusion"] and (out / "deeplift.png").exists()
    bad = runner.invoke(cli, ["attribute", "digits:3", "--method", "deeplift", "--baseline", "nowhere.png",
                              "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "'--baseline'" in bad.output and "Traceback" not in bad.output


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(x + self.relu(self.conv(x))))


def test_lrp_gives_residual_additions_a_rule_that_conserves_relevance():
    """captum passed plain gradients through ``x + f(x)``, doubling the relevance (LRP refused it); on the
    traced copy the addition is captum's Addition_Module: without biases the relevance sums to the score."""
    torch.manual_seed(0)
    net = _Residual().eval()
    assert lrp_support(net) == []
    image = torch.rand(1, 8, 8)
    result = attribute(net, image, "lrp", size=8)
    with torch.no_grad():
        score = float(net(probe.load_model(net).preprocess.normalize(image[None]))[0, result.target])
    assert float(result.attributions["lrp"].sum()) == pytest.approx(score, rel=1e-4) and no_hooks_left(net)
