"""Feature accentuation: start from a real image, push a unit, an L2 term keeps the result near the image."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import probe
from probe import objectives as O
from probe.accentuate import accentuation
from probe.cli.main import cli
from probe.errors import ProbeUsageError


@pytest.fixture(scope="module")
def digits():
    return probe.load_model("digits")


def test_the_l2_distance_to_a_reference_on_hand_made_images():
    reference = torch.zeros(1, 2, 2)
    images = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]], [[[1.0, 0.0], [0.0, 1.0]]]])
    value = O.l2_distance(reference)(O.Context({}, images))
    assert torch.allclose(value, torch.tensor([0.0, 2**0.5]), atol=1e-5)


def test_accentuation_starts_at_the_image_and_the_weight_keeps_it_near(digits):
    seed = probe.load_image("digits:3")
    loose = probe.accentuate(digits, seed, "conv2:7", weight=0.0, steps=12, transforms="none", lr=0.1)
    tight = probe.accentuate(digits, seed, "conv2:7", weight=30.0, steps=12, transforms="none", lr=0.1)
    assert "l2_distance" in tight.terms and "l2_distance" not in loose.terms
    distance = [float((r.images[0] - seed).pow(2).sum().sqrt()) for r in (loose, tight)]
    assert distance[1] < distance[0]
    assert loose.scores[0] > probe.optimize.evaluate(digits, "conv2:7", seed[None])[0]
    _, factory = accentuation(O.channel("conv2", 7), seed, 1.0)
    start = factory((1, 1, 28, 28), torch.Generator(), torch.device("cpu"))()
    assert torch.allclose(start[0], seed.clamp(1e-4, 1 - 1e-4), atol=1e-4)  # exactly the image, before any step


def test_accentuation_refuses_maco_and_negative_weights():
    seed = torch.rand(1, 8, 8)
    with pytest.raises(ProbeUsageError, match="cannot reproduce") as error:
        accentuation(O.channel("conv2", 1), seed, 1.0, param="maco")
    assert error.value.param == "param"
    with pytest.raises(ProbeUsageError, match=">= 0"):
        accentuation(O.channel("conv2", 1), seed, -1.0)


def test_cli_from_and_accentuate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "g"
    result = runner.invoke(cli, ["maximize", "--target", "conv2:7", "--from", "digits:3", "--accentuate", "2",
                                 "--steps", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["from"] == "digits:3" and manifest["options"]["accentuate"] == 2.0
    assert manifest["options"]["param"] == "fft from image"
    assert "l2_distance" in manifest["items"][0]["terms"]
    lonely = runner.invoke(cli, ["maximize", "--target", "conv2:7", "--accentuate", "2", "--out", str(tmp_path / "x")])
    assert lonely.exit_code == 2 and "--from" in lonely.output
    maco = runner.invoke(cli, ["maximize", "--target", "conv2:7", "--from", "digits:3", "--param", "maco",
                               "--out", str(tmp_path / "y")])
    assert maco.exit_code == 2 and "'--param'" in maco.output and "Traceback" not in maco.output
    missing = runner.invoke(cli, ["maximize", "--target", "conv2:7", "--from", str(tmp_path / "none.png"),
                                  "--out", str(tmp_path / "z")])
    assert missing.exit_code == 2 and "'--from'" in missing.output
