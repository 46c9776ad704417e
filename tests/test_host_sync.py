"""The step loops never wait for the device: syncs are counted per run, and must not grow with the steps."""

from __future__ import annotations

import sys

import pytest
import torch
from syncshim import PROBE, SyncCounter
from tinynets import tiny_gray

import probe
from probe import objectives as O
from probe.errors import ProbeRuntimeError
from probe.models import Preprocess, load_model


@pytest.fixture
def count_syncs():
    """Count the calls that read a tensor back to the host, made from cnn-probe's own code."""
    with SyncCounter() as syncs:
        yield syncs


@pytest.fixture
def count_lbfgs_syncs():
    """The same, counting torch.optim.LBFGS's own reads too (it ran style transfer's L-BFGS)."""
    with SyncCounter((PROBE, sys.modules[torch.optim.LBFGS.__module__].__file__)) as syncs:
        yield syncs


def model():
    return load_model(tiny_gray(), preprocess=Preprocess((0.2,), (0.3,), 1, (16, 16)))


def syncs(calls, **options):
    calls.clear()
    probe.maximize(model(), O.channel("conv2", range(4)), image_size=12, **options)
    return len(calls)


def test_the_render_loop_does_not_sync_each_step(count_syncs):
    few, many = syncs(count_syncs, steps=3), syncs(count_syncs, steps=9)
    assert few == many, count_syncs.where()
    chunked = syncs(count_syncs, steps=9, batch=2)
    assert chunked > many and syncs(count_syncs, steps=3, batch=2) == chunked  # a few per chunk, none per step


def test_progress_reads_the_device_only_every_k_steps(count_syncs):
    calls = []
    none = syncs(count_syncs, steps=8)
    once = syncs(count_syncs, steps=8, progress_every=8, progress=lambda *a: calls.append(a[0]))
    twice = syncs(count_syncs, steps=16, progress_every=8, progress=lambda *a: calls.append(a[0]))
    assert calls == [8, 8, 16] and twice - once == once - none > 0


def test_a_nan_is_still_caught_and_named_with_its_step():
    objective = O.Objective(lambda c: c("conv2").sum((1, 2, 3)) * torch.tensor(float("nan")), "nan", layers=["conv2"])
    with pytest.raises(ProbeRuntimeError, match="the objective is NaN or infinite at step 1, on the starting image"):
        probe.maximize(model(), objective, steps=3, image_size=12)


class Poison(torch.nn.Module):
    """Turns every activation into NaN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


def test_a_dream_checks_its_gradient_once_per_octave_and_still_catches_nan():
    from collections import OrderedDict

    net = torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(1, 2, 3), poison=Poison()))
    loaded = load_model(net, preprocess=Preprocess((0.2,), (0.3,), 1, (16, 16)))
    with pytest.raises(ProbeRuntimeError, match="the dream's gradient became NaN"):
        probe.dream(loaded, torch.rand(1, 20, 20), "poison", steps=2, octaves=1, jitter=0)


def dream_syncs(calls, **options):
    calls.clear()
    result = probe.dream(model(), torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0)), "conv2",
                         octaves=2, jitter=3, **options)
    return len(calls), result


def test_a_dream_reads_its_scores_once_not_every_step(count_syncs):
    (few, short), (many, long) = dream_syncs(count_syncs, steps=2), dream_syncs(count_syncs, steps=6)
    assert few == many, count_syncs.where()
    assert len(short.history) == 4 and len(long.history) == 12 and all(isinstance(v, float) for v in long.history)
    tiled, _ = dream_syncs(count_syncs, steps=2, tile_size=8)
    assert dream_syncs(count_syncs, steps=6, tile_size=8)[0] == tiled, count_syncs.where()  # nor every tile


def test_a_dream_still_reports_progress_every_step_on_the_cpu():
    seen = []
    result = probe.dream(model(), torch.rand(1, 24, 24), "conv2", octaves=2, steps=3,
                         progress=lambda step, total, metrics: seen.append((step, total, metrics["objective"])))
    assert [step for step, _, _ in seen] == list(range(1, 7)) and {total for _, total, _ in seen} == {6}
    assert [objective for _, _, objective in seen] == pytest.approx(result.history)


def style_syncs(calls, steps):
    calls.clear()
    result = probe.style_transfer(model(), torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(1)),
                                  torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(2)),
                                  content_layers=["conv2"], style_layers=["conv1", "conv2"], size=24, steps=steps,
                                  snapshots=0)
    return len(calls), result


def test_style_lbfgs_reads_the_device_a_fixed_number_of_times_per_run(count_lbfgs_syncs):
    (few, short), (many, long) = style_syncs(count_lbfgs_syncs, 4), style_syncs(count_lbfgs_syncs, 12)
    assert few == many, count_lbfgs_syncs.where()
    assert len(short.history["total"]) == 4 and len(long.history["total"]) == 12
