"""Deep Dream the straightforward way: one full forward pass per step, no tiling.

For each octave (smallest first) the image is resized to the octave's size,
and ``steps`` times: a full forward pass of the whole network records the
layer with a forward hook, the score is the mean squared activation, and the
image takes a step along its gradient divided by the gradient's mean absolute
value. The input is rolled by a random jitter before each step and rolled back
after. This is the algorithm of the original notebook without its refinements
(no detail carried across octaves, no early stop of the forward pass).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def octave_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Sizes from the smallest octave to the full size."""
    return [(round(height / scale**k), round(width / scale**k)) for k in reversed(range(octaves))]


def run(model: nn.Module, layer: nn.Module, image: torch.Tensor, *, octaves: int, octave_scale: float,
        steps: int, lr: float, jitter: int, normalize, generator: torch.Generator) -> torch.Tensor:
    """Dream ``image`` (``(1, 3, H, W)`` in [0, 1]) on ``layer`` of ``model``."""
    kept: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda module, inputs, output: kept.__setitem__("a", output))
    try:
        height, width = image.shape[-2:]
        dreamed = image
        for size in octave_sizes(height, width, octaves, octave_scale):
            dreamed = F.interpolate(dreamed, size=size, mode="bilinear", align_corners=False).detach()
            for _ in range(steps):
                dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
                rolled = dreamed.roll((dy, dx), dims=(-2, -1)).requires_grad_(True)
                model(normalize(rolled))
                score = kept["a"].pow(2).mean()
                (grad,) = torch.autograd.grad(score, rolled)
                grad = grad / grad.abs().mean().clamp_min(1e-8)
                dreamed = (rolled.detach() + lr * grad).roll((-dy, -dx), dims=(-2, -1)).clamp(0, 1)
        return dreamed
    finally:
        handle.remove()
