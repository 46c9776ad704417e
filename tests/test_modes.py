"""``evaluating``: a model's own eval-mode draws come from generators seeded with DRAWS_SEED, and the caller's
generators are left where they were."""

from __future__ import annotations

import torch

from probe.modes import DRAWS_SEED, evaluating


def test_a_models_own_draws_are_the_fixed_seeds_and_the_callers_generator_does_not_move():
    model = torch.nn.Dropout(0.5)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    with evaluating(model):
        drawn = torch.rand(5)
        with evaluating(model):  # nested: leaves the draws to the block around it
            then = torch.rand(5)
    assert torch.equal(before, torch.get_rng_state()) and model.training
    expected = torch.Generator().manual_seed(DRAWS_SEED)
    assert torch.equal(drawn, torch.rand(5, generator=expected)) and torch.equal(then, torch.rand(5, generator=expected))
