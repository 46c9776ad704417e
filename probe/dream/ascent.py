"""The gradient ascent of one dream: octave after octave, jittered, normalized steps.

- **Normalized steps**: ``image += lr * g / mean(|g|)``, so ``lr`` is the mean
  change of a pixel per step whatever the layer's scale; values stay in [0, 1].
- **Jitter**: before each step the image is rolled by a random shift and the
  gradient is rolled back (:mod:`probe.dream.geometry`).
- **Octaves**: the *detail* of each scale (dreamed minus original at that
  scale) is upsampled and added to the next, larger scale.
- **Tiles**: the tile grid moves to a random offset at every step, so seams
  never stay in one place. The offsets come from a stream of their own and move
  the grid, not the image: the image is rolled by the jitter alone, as without
  tiles, so a tiled dream whose margins hold the receptive field is the untiled one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from probe.dream.geometry import jitter_shifts, roll, unroll
from probe.dream.objective import DreamObjective
from probe.images import resize
from probe.runtime import check_finite
from probe.streams import image_key
from probe.tiling import tile_plan

__all__ = ["ascend"]


def ascend(
    objective: DreamObjective,
    image: torch.Tensor,
    *,
    sizes: list[tuple[int, int]],
    steps: int,
    lr: float,
    jitter: int,
    tile_size: int | None,
    tile_margin: int,
    generator: torch.Generator,
    on_step: Callable[[torch.Tensor, int], None],
) -> list[torch.Tensor]:
    """Dream ``image`` (``(1, C, H, W)``) through the octaves ``sizes``; return the image at the end of each.

    Nothing in a step waits for the device: ``on_step(score, octave)`` gets the
    step's score as a 0-dim tensor on the image's device, the random shifts of
    an octave are drawn at once, and the gradient's NaN check is read once per octave.
    """
    detail: torch.Tensor | None = None
    results = []
    for octave, size in enumerate(sizes):
        base = image if size == tuple(image.shape[-2:]) else resize(image, size)
        if detail is not None:
            detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
            current = (base + detail).clamp(0.0, 1.0)
        else:
            current = base
        still = tile_plan(*size, tile_size, tile_margin)
        moving = tile_size is not None and len(still) > 1
        offsets = _grid_offsets(generator, octave, steps, tile_size) if moving else [(0, 0)] * steps
        finite = torch.ones((), dtype=torch.bool, device=current.device)  # read once per octave: no sync per step
        for shift, offset in zip(jitter_shifts(jitter, generator, steps), offsets):
            tiles = tile_plan(*size, tile_size, tile_margin, offset) if moving else still
            rolled = roll(current, shift)
            score, _, grad = objective.evaluate(rolled, tiles, gradient=True)
            del rolled  # image-sized, like grad and current: few such copies bound a tiled dream's memory
            grad = unroll(grad, shift)
            finite &= torch.isfinite(grad).all()
            scale = grad.abs().mean().clamp_min(torch.finfo(grad.dtype).tiny)  # scale-free: tiny gradients still step
            current = current.add(grad.mul_(lr / scale)).clamp_(0.0, 1.0)  # in place: few image-sized temporaries
            on_step(score, octave)
        check_finite(finite, "the dream's gradient")
        results.append(current.detach())
        detail = current.detach() - base
    return results


def _grid_offsets(generator: torch.Generator, octave: int, steps: int, tile_size: int) -> list[tuple[int, int]]:
    """``steps`` random ``(rows, columns)`` offsets of the tile grid in ``[0, tile_size)``, from a stream of their
    own keyed by the dream's seed and the octave: the jitter's draws stay those of an untiled dream."""
    stream = torch.Generator().manual_seed(image_key(generator.initial_seed(), "dream tile grid", octave))
    return [(int(dy), int(dx)) for dy, dx in torch.randint(0, tile_size, (steps, 2), generator=stream).tolist()]


