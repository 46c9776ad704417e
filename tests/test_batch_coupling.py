"""A model that mixes the images of a pass (batch norm without running statistics, a normalization over the
batch) is rendered one image per pass, so a unit's image is its own whatever ``batch`` is; and ``batch="auto"``
on the CPU plans for the memory that is free instead of 64 images whatever their size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import probe
import probe.memory
import probe.optimize
from probe import objectives as O
from probe.errors import ProbeRuntimeError
from probe.optimize import CPU_BATCH, batch_coupled


class BatchCentred(nn.Module):
    """Subtracts the batch's mean image: each image's output reads the others'."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=0, keepdim=True)


def _net(middle: nn.Module) -> probe.LoadedModel:
    torch.manual_seed(0)
    return probe.load_model(nn.Sequential(nn.Conv2d(3, 8, 3), middle, nn.ReLU(), nn.Conv2d(8, 8, 3)),
                            input_size=(24, 24))


@pytest.mark.parametrize("middle", [lambda: nn.BatchNorm2d(8, track_running_stats=False), BatchCentred],
                         ids=["batch norm without running stats", "a mean over the batch"])
def test_a_model_that_mixes_the_batch_renders_each_image_alone(middle):
    loaded = _net(middle())
    assert batch_coupled(loaded, ["3"], (3, 24, 24))
    alone = probe.maximize(loaded, O.channel("3", [3]), steps=3)
    for batch in (None, 2, "auto"):
        together = probe.maximize(loaded, O.channel("3", range(4)), steps=3, batch=batch)
        assert together.settings["batch_coupled"] and together.settings["batch"] == 1
        assert torch.equal(alone.images[0], together.images[3])


def test_models_that_keep_images_apart_are_not_coupled():
    assert not batch_coupled(_net(nn.BatchNorm2d(8)), ["3"], (3, 24, 24))  # running statistics in eval mode
    digits = probe.load_model("digits")
    assert not batch_coupled(digits, ["conv2", "fc2"], (1, 28, 28))
    result = probe.maximize(digits, O.channel("conv2", range(3)), steps=1)
    assert "batch_coupled" not in result.settings and result.settings["batch"] is None


def test_batch_auto_on_the_cpu_fits_the_free_memory_in_a_power_of_two(monkeypatch):
    digits = probe.load_model("digits")
    request = O.channel("conv2", range(8))
    assert probe.maximize(digits, request, steps=1, batch="auto").settings["batch"] == 8  # tiny: all at once
    mb = 2**20

    def saved(forward, exclude=frozenset()):  # 10 MB of activations per image: 45 MB with the step's headroom
        return 10 * mb * forward().shape[0]

    monkeypatch.setattr(probe.optimize, "saved_bytes", saved)
    monkeypatch.setattr(probe.memory, "available_bytes", lambda device: 300 * mb)
    planned = probe.maximize(digits, request, steps=2, batch="auto")
    assert planned.settings["batch"] == 2  # half of 300 MB / 45 MB = 3 images, down to a power of two
    assert torch.equal(planned.images, probe.maximize(digits, request, steps=2, batch=2).images)
    monkeypatch.setattr(probe.memory, "available_bytes", lambda device: 10 * mb)
    with pytest.raises(ProbeRuntimeError, match=r"passes of 1 needs about 45\.\d MiB of memory.*10.0 MiB is free on cpu"):
        probe.maximize(digits, request, steps=1, batch="auto")


def test_batch_auto_on_the_cpu_is_at_most_cpu_batch():
    result = probe.maximize(probe.load_model("digits"), O.channel("conv1", [0] * 70), steps=1, batch="auto",
                            image_size=8)
    assert result.settings["batch"] == CPU_BATCH
