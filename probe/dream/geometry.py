"""The geometry of a Deep Dream: octave sizes, undone roll jitter, zoom frames.

Pure tensor functions with no model in sight, so each is tested on its own:

- :func:`octave_sizes`: the pyramid of scales an image is dreamed at;
- :func:`jitter_shifts`, :func:`roll` and :func:`unroll`: shift the image by a
  random roll before a gradient step and roll the gradient back after, exactly
  (:func:`jitter_roll`: one of each);
- :func:`zoom_crop`: the next frame of a zoom sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from probe.errors import ProbeUsageError

__all__ = ["MIN_OCTAVE_SIDE", "jitter_roll", "jitter_shifts", "octave_sizes", "roll", "unroll", "zoom_crop"]

MIN_OCTAVE_SIDE = 16
"""Octaves whose shorter side would fall below this many pixels are left out."""


def octave_sizes(size: tuple[int, int], octaves: int, octave_scale: float) -> list[tuple[int, int]]:
    """The ``(H, W)`` of each octave, from the smallest to ``size`` itself.

    Octave ``k`` (counting from 0 at the smallest) of ``n`` is ``size`` divided
    by ``octave_scale ** (n - 1 - k)``, rounded. Octaves whose shorter side would
    fall below :data:`MIN_OCTAVE_SIDE` are left out (the full size always stays).

    >>> octave_sizes((100, 200), 3, 2.0)
    [(25, 50), (50, 100), (100, 200)]

    Raises:
        ProbeUsageError: ``octaves`` below 1 or ``octave_scale`` below 1.
    """
    if octaves < 1:
        raise ProbeUsageError(f"octaves must be at least 1; got {octaves}", param="octaves")
    if octave_scale < 1.0:
        raise ProbeUsageError(f"octave_scale must be at least 1; got {octave_scale}", param="octave_scale")
    height, width = size
    sizes = []
    for k in range(1, octaves):  # from the largest down: stop at the first too small (also before scale**k overflows)
        factor = octave_scale**k
        scaled = (max(1, round(height / factor)), max(1, round(width / factor)))
        if min(scaled) < MIN_OCTAVE_SIDE:
            break
        sizes.append(scaled)
    return sizes[::-1] + [(height, width)]


def jitter_shifts(jitter: int, generator: torch.Generator, count: int, *, extra: int = 0) -> list[tuple[int, int]]:
    """``count`` random shifts ``(dy, dx)``, drawn at once: one read of ``generator``'s numbers, not one per step.

    Each axis is shifted by an integer drawn uniformly from ``[-jitter, jitter]``
    plus one from ``[0, extra)`` (``extra`` moves a tile grid to a random offset).
    """
    shift = torch.randint(-jitter, jitter + 1, (count, 2), generator=generator, device=generator.device)
    if extra > 1:
        shift = shift + torch.randint(0, extra, (count, 2), generator=generator, device=generator.device)
    return [(int(dy), int(dx)) for dy, dx in shift.tolist()]


def roll(image: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """``image`` (``(..., H, W)``) rolled by ``shift`` ``(dy, dx)``, wrapping around; :func:`unroll` undoes it."""
    dy, dx = shift
    if dy == 0 and dx == 0:
        return image
    return torch.roll(image, shifts=(dy, dx), dims=(-2, -1))


def jitter_roll(
    image: torch.Tensor, jitter: int, generator: torch.Generator, *, extra: int = 0
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Roll ``image`` (``(..., H, W)``) by one random shift of :func:`jitter_shifts`, wrapping around.

    Returns:
        The rolled image and the shift ``(dy, dx)``; :func:`unroll` undoes it exactly.
    """
    [shift] = jitter_shifts(jitter, generator, 1, extra=extra)
    return roll(image, shift), shift


def unroll(tensor: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`roll`'s (or :func:`jitter_roll`'s) ``shift`` on ``tensor`` (the image or its gradient)."""
    dy, dx = shift
    return roll(tensor, (-dy, -dx))


def zoom_crop(image: torch.Tensor, zoom: float) -> torch.Tensor:
    """Zoom into the centre of ``image`` (``(C, H, W)``) by ``zoom`` and resize back to ``(H, W)``.

    The next input of a zoom sequence: the central ``H / zoom x W / zoom``
    region, enlarged with bilinear filtering.

    Raises:
        ProbeUsageError: ``zoom`` below 1.
    """
    if zoom < 1.0:
        raise ProbeUsageError(f"zoom must be at least 1; got {zoom}", param="zoom")
    height, width = image.shape[-2:]
    crop_h, crop_w = max(1, round(height / zoom)), max(1, round(width / zoom))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = image[..., top : top + crop_h, left : left + crop_w]
    enlarged = F.interpolate(crop[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    return enlarged.clamp(0.0, 1.0)
