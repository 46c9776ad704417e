"""A model that draws random numbers itself in eval mode draws, in maximize, from its chunk's own key alone:
what a chunk renders does not depend on the chunks before it, nor on the caller's generators."""

from __future__ import annotations

import torch

import probe
from probe import objectives as O


class _Noisy(torch.nn.Module):
    """A noise layer: draws from torch's global generator in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * torch.randn_like(x)


def _noisy() -> probe.LoadedModel:
    torch.manual_seed(0)
    return probe.load_model(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), _Noisy(), torch.nn.Conv2d(4, 4, 3)),
                            input_size=(16, 16))


def test_a_chunk_draws_what_it_draws_alone_whatever_came_before_it_and_whatever_the_caller_drew():
    model = _noisy()
    whole = probe.maximize(model, O.channel("2", range(4)), steps=2, batch=2)
    torch.manual_seed(123)  # the caller's generator: not what the model draws from
    second = probe.maximize(model, O.channel("2", [2, 3]), steps=2, batch=2)
    assert torch.equal(whole.images[2:], second.images) and torch.equal(whole.history[:, 2:], second.history)
    first = probe.maximize(model, O.channel("2", [0, 1]), steps=2, batch=2)
    assert torch.equal(whole.images[:2], first.images)


def test_a_progress_callback_that_draws_changes_nothing():
    """The callback runs between steps, inside the chunk's seeded block: its draws moved the model's next ones."""
    model = _noisy()
    quiet = probe.maximize(model, O.channel("2", range(4)), steps=3, batch=2)
    drawing = probe.maximize(model, O.channel("2", range(4)), steps=3, batch=2,
                             progress=lambda step, total, metrics: torch.rand(7))
    assert torch.equal(quiet.history, drawing.history) and torch.equal(quiet.images, drawing.images)
