"""Training-time augmentation: small random affine warps drawn from a torch.Generator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["RandomAffine"]


@dataclass(frozen=True)
class RandomAffine:
    """Random shift, rotation and scale of each image, background filled with 0.

    Attributes:
        shift: Largest shift in pixels, along each axis. Default 2.0.
        degrees: Largest rotation either way, in degrees. Default 12.0.
        scale: Range of the zoom factor. Default (0.9, 1.1).
    """

    shift: float = 2.0
    degrees: float = 12.0
    scale: tuple[float, float] = (0.9, 1.1)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Warp a batch, each image with its own random transform.

        Args:
            images: ``(N, C, H, W)`` float images, background 0.
            generator: Source of all randomness (CPU generator).

        Returns:
            ``(N, C, H, W)``, bilinear resampling, zeros outside.
        """
        n, _, height, width = images.shape

        def uniform(low: float, high: float) -> Tensor:
            return low + (high - low) * torch.rand(n, generator=generator)

        angle = uniform(-self.degrees, self.degrees) * (math.pi / 180)
        zoom = uniform(*self.scale)
        # affine_grid maps output coordinates to input coordinates in [-1, 1] units.
        tx = uniform(-self.shift, self.shift) * (2.0 / width)
        ty = uniform(-self.shift, self.shift) * (2.0 / height)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)],
            dim=1,
        ).to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
