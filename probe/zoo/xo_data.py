"""Generated X's and O's: the classic toy problem of telling an X from an O.

Each image is 32x32 and binary: stroke pixels are 1, background pixels 0, so
that after the ``xo`` spec's normalization (mean 0.5, std 0.5) the network sees
+1 (white) / -1 (black) pixels. The generator varies what a classifier of
hand-drawn X's and O's must be robust to:

- position: the letter is shifted anywhere it still fits;
- scale: half-extent 6 to 13 pixels;
- rotation: X's by -25..25 degrees (more would turn an X into a +), O's are
  ellipses (aspect 0.7..1) at any angle;
- stroke width: 1.6 to 4.4 pixels; the X's arms meet at 70..110 degrees;
- noise: up to 4% of the pixels flipped.

Labels: output unit 0 is "X", unit 1 is "O".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from probe.errors import ProbeUsageError
from probe.zoo import raster
from probe.zoo.splits import check_limit, check_split, chunks, generator

__all__ = ["LABELS", "SIZE", "SPLIT_SIZES", "xo_split", "xo_sample", "render_xo"]

#: Class names, index = output unit.
LABELS: tuple[str, ...] = ("X", "O")

#: Side of the square images.
SIZE = 32

#: Number of images of each split.
SPLIT_SIZES: dict[str, int] = {"train": 4000, "test": 1000}


def render_xo(
    labels: Tensor,
    cx: Tensor,
    cy: Tensor,
    scale: Tensor,
    angle: Tensor,
    spread: Tensor,
    aspect: Tensor,
    half_width: Tensor,
) -> Tensor:
    """Draw binary X's (label 0) and O's (label 1).

    Args:
        labels: ``(N,)`` int64, 0 for X, 1 for O.
        cx, cy: ``(N,)`` centre in pixels.
        scale: ``(N,)`` half-extent: an X's arm length from the centre, an O's
            larger semi-axis.
        angle: ``(N,)`` rotation in radians.
        spread: ``(N,)`` angle between an X's two strokes, radians (pi/2 = square X).
        aspect: ``(N,)`` an O's smaller / larger semi-axis.
        half_width: ``(N,)`` half the stroke width in pixels.

    Returns:
        ``(N, 1, SIZE, SIZE)`` float32 of 0s and 1s.
    """
    x, y = raster.grid(SIZE, SIZE)
    u, v = raster.rotate(x, y, cx, cy, angle)
    vertical = torch.full_like(angle, math.pi / 2)
    stroke_a = raster.segment_sdf(u, v, vertical - spread / 2, scale, half_width)
    stroke_b = raster.segment_sdf(u, v, vertical + spread / 2, scale, half_width)
    cross = torch.minimum(stroke_a, stroke_b)
    ring = raster.ellipse_ring_sdf(u, v, scale, scale * aspect, half_width)
    sdf = torch.where((labels == 0).reshape(-1, 1, 1), cross, ring)
    return (sdf < 0).to(torch.float32).unsqueeze(1)


def xo_split(split: str, seed: int = 0, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """Images and labels of one split, generated deterministically.

    Args:
        split: ``"train"`` (4,000 images) or ``"test"`` (1,000 images).
        seed: Which draw of the split. Default 0 (the split the shipped weights
            were trained and measured on). Train and test never share a stream.
        limit: Keep only the first ``limit`` images (identical to slicing the
            full split). Default None (all).

    Returns:
        ``(images, labels)``: ``(M, 1, 32, 32)`` float32 in {0, 1} and ``(M,)`` int64,
        the two classes balanced and shuffled.
    """
    total = SPLIT_SIZES[check_split(split)]
    count = check_limit(limit, total)
    g = generator("xo", split, seed)

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(total, generator=g)

    labels = (torch.arange(total) % 2)[torch.randperm(total, generator=g)]
    scale = uniform(6.0, 13.0)
    half_width = uniform(0.8, 2.2)
    is_x = labels == 0
    angle = torch.where(is_x, uniform(-25.0, 25.0) * math.pi / 180, uniform(0.0, math.pi))
    spread = uniform(70.0, 110.0) * math.pi / 180
    aspect = uniform(0.7, 1.0)
    extent = scale + half_width + 1.0  # keeps the whole letter inside the image
    room = (SIZE / 2 - extent).clamp_min(0.0)
    cx = SIZE / 2 + room * uniform(-1.0, 1.0)
    cy = SIZE / 2 + room * uniform(-1.0, 1.0)
    flip_rate = uniform(0.0, 0.04)

    images = torch.empty(count, 1, SIZE, SIZE)
    params = (labels, cx, cy, scale, angle, spread, aspect, half_width)
    for index, part in chunks(count):
        clean = render_xo(*(p[part] for p in params))
        noise = generator("xo", split, seed, f"noise{index}")
        draw = torch.rand(clean.shape, generator=noise)
        flips = draw < flip_rate[part].reshape(-1, 1, 1, 1)
        images[part] = torch.where(flips, 1.0 - clean, clean)
    return images, labels[:count].clone()


def xo_sample(key: str) -> Tensor:
    """A clean, centred X or O (no rotation, no noise).

    Args:
        key: ``"x"`` or ``"o"`` (case-insensitive).

    Returns:
        ``(1, 32, 32)`` float32 in {0, 1}.

    Raises:
        ProbeUsageError: ``key`` is neither.
    """
    text = str(key).strip().upper()
    if text not in LABELS:
        raise ProbeUsageError(f"unknown sample key {key!r}; keys are: x, o")
    one = torch.ones(1)
    image = render_xo(
        labels=torch.tensor([LABELS.index(text)]),
        cx=one * SIZE / 2,
        cy=one * SIZE / 2,
        scale=one * (11.0 if text == "X" else 10.0),
        angle=one * 0.0,
        spread=one * math.pi / 2,
        aspect=one,
        half_width=one * 1.3,
    )
    return image[0]
