"""Style: histogram matching to keep the content's colours, and the Wasserstein-2 style loss beside the Gram loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import probe
from probe.cli.main import cli
from probe.errors import ProbeUsageError
from probe.style.colors import match_histograms
from probe.style.losses import feature_moments, sqrtm_psd, wasserstein_style_loss


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_histogram_matching_takes_the_reference_values_and_keeps_the_ranks():
    source, reference = _rand(3, 6, 7, seed=0), _rand(3, 7, 6, seed=1) ** 3
    matched = match_histograms(source, reference)
    assert torch.equal(matched.flatten(1).sort(1).values, reference.flatten(1).sort(1).values)
    assert torch.equal(matched.flatten(1).argsort(1), source.flatten(1).argsort(1))
    from skimage.exposure import match_histograms as skimage_match

    expected = skimage_match(source.permute(1, 2, 0).numpy(), reference.permute(1, 2, 0).numpy(), channel_axis=-1)
    assert np.allclose(matched.permute(1, 2, 0).numpy(), expected, atol=1e-6)
    smaller = match_histograms(source, reference[:, :3, :3])  # another size: the reference's quantiles
    assert torch.allclose(smaller.mean((1, 2)), reference[:, :3, :3].mean((1, 2)), atol=0.05)
    with pytest.raises(ProbeUsageError, match="same C"):
        match_histograms(source, reference[:1])


def test_w2_is_the_gaussian_formula_in_one_channel_and_zero_on_itself():
    a, b = _rand(1, 1, 5, 5, seed=2), _rand(1, 1, 5, 5, seed=3) * 2 + 1
    mean_b, cov_b = feature_moments(b)
    expected = (a.mean() - b.mean()) ** 2 + (a.std(unbiased=False) - b.std(unbiased=False)) ** 2
    assert torch.allclose(wasserstein_style_loss(a, mean_b, cov_b), expected, atol=1e-5)
    features = _rand(1, 4, 6, 6, seed=4)
    mean, cov = feature_moments(features)
    assert float(wasserstein_style_loss(features, mean, cov)) < 1e-5


def test_w2_against_numpy_in_several_channels():
    x, y = _rand(1, 3, 8, 8, seed=5), _rand(1, 3, 8, 8, seed=6) ** 2
    (mx, sx), (my, sy) = (tuple(t[0].double().numpy() for t in feature_moments(f)) for f in (x, y))

    def root(m: np.ndarray) -> np.ndarray:
        values, vectors = np.linalg.eigh(m)
        return vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T

    ry = root(sy)
    expected = (np.sum((mx - my) ** 2) + np.trace(sx + sy - 2 * root(ry @ sx @ ry))) / 3
    my_t, sy_t = feature_moments(y)
    assert abs(float(wasserstein_style_loss(x, my_t, sy_t)) - expected) < 1e-5
    assert torch.allclose(sqrtm_psd(sy_t)[0].double(), torch.from_numpy(ry), atol=1e-5)


def test_w2_style_transfer_lowers_its_loss_and_records_the_choices():
    result = probe.style_transfer("shapes", "skimage:astronaut", "skimage:coffee", size=32, steps=6,
                                  style_loss="w2", match_colors=True, optimizer="adam", lr=0.05, snapshots=0)
    history = result.history["style"]
    assert history[-1] < history[0] and np.isfinite(history).all()
    assert result.options["style_loss"] == "w2" and result.options["match_colors"] is True
    with pytest.raises(ProbeUsageError, match="style losses are: gram, w2") as error:
        probe.style_transfer("shapes", "skimage:astronaut", "skimage:coffee", size=32, steps=1, style_loss="l2")
    assert error.value.param == "style_loss"


def test_cli_style_loss_and_histogram_matching(tmp_path):
    out = tmp_path / "g"
    result = CliRunner().invoke(cli, ["style", "skimage:astronaut", "skimage:coffee", "--model",
                                      "test_style:probe_shapes_like", "--size", "24", "--steps", "2", "--snapshots",
                                      "0", "--style-loss", "w2", "--match-histograms", "--out", str(out)])
    assert result.exit_code == 0, result.output
    options = json.loads((out / "manifest.json").read_text())["options"]
    assert options["style_loss"] == "w2" and options["match_colors"] is True
    bad = CliRunner().invoke(cli, ["style", "skimage:astronaut", "skimage:coffee", "--style-loss", "l2"])
    assert bad.exit_code == 2 and "'--style-loss'" in bad.output


def test_w2_gradients_stay_finite_with_dead_channels():
    features, style = _rand(1, 6, 5, 5, seed=7), _rand(1, 6, 5, 5, seed=8)
    features[:, 3:] = 0  # dead ReLU channels: repeated zero eigenvalues
    style[:, 4:] = 0
    mean, cov = feature_moments(style)
    x = features.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(wasserstein_style_loss(x, mean, cov, relative=True), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
