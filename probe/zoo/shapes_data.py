"""Generated coloured shapes and oriented textures, 64x64 RGB.

Ten classes, six shapes and four textures, so that a small network learns
colour-, orientation- and shape-selective filters that Deep Dream, style
transfer and feature visualization can show without downloading anything:

- shapes (one per image, any position that fits, circumradius 11..22 pixels,
  any rotation): ``circle``, ``square``, ``triangle``, ``star`` (5 tips),
  ``cross`` (a plus sign), ``ring``;
- textures (filling the image, any orientation and phase): ``stripes``
  (period 6..14 px), ``checkerboard`` (cells 5..11 px), ``dots`` (a lattice of
  discs), ``zigzag`` (stripes bent by a triangle wave).

Colours: a random foreground colour on a random background that is a linear
gradient between two nearby colours; the foreground is kept far from the
background (distance in RGB at least 0.45). Gaussian pixel noise with a
standard deviation of up to 0.06. Values are clamped to [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from probe.errors import ProbeUsageError
from probe.zoo import raster
from probe.zoo.splits import check_limit, check_split, chunks, generator

__all__ = ["LABELS", "SIZE", "SPLIT_SIZES", "shapes_split", "shapes_sample", "render_alpha"]

#: Class names, index = output unit.
LABELS: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "stripes",
    "checkerboard",
    "dots",
    "zigzag",
)

#: Side of the square images.
SIZE = 64

#: Number of images of each split.
SPLIT_SIZES: dict[str, int] = {"train": 4000, "test": 1000}

#: Minimum RGB distance between foreground and background colour.
MIN_CONTRAST = 0.45

#: Names of the per-image geometry parameters :func:`render_alpha` reads, all ``(N,)``.
GEOMETRY = ("cx", "cy", "size", "angle", "thickness", "period", "phase", "amplitude", "wavelength", "dot_ratio")


def render_alpha(labels: Tensor, p: dict[str, Tensor]) -> Tensor:
    """Foreground coverage of each image, before colour.

    Args:
        labels: ``(N,)`` int64 class indices into :data:`LABELS`.
        p: Geometry, each ``(N,)``: ``cx, cy`` centre (pixels); ``size``
            circumradius of a shape; ``angle`` rotation (radians); ``thickness``
            ring width relative to its radius; ``period`` texture period
            (pixels); ``phase`` texture phase (radians); ``amplitude`` zigzag
            amplitude relative to the period; ``wavelength`` zigzag wavelength
            relative to the period; ``dot_ratio`` dot radius relative to the
            lattice spacing.

    Returns:
        ``(N, SIZE, SIZE)`` float32 in [0, 1].
    """
    x, y = raster.grid(SIZE, SIZE)
    alpha = torch.empty(labels.shape[0], SIZE, SIZE)
    for k, name in enumerate(LABELS):
        rows = (labels == k).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        q = {key: value[rows] for key, value in p.items()}
        u, v = raster.rotate(x, y, q["cx"], q["cy"], q["angle"])
        r = q["size"]
        if name == "circle":
            a = raster.coverage(raster.circle_sdf(u, v, 0.8 * r))
        elif name == "square":
            a = raster.coverage(raster.box_sdf(u, v, 0.7 * r, 0.7 * r))
        elif name == "triangle":
            a = raster.coverage(raster.polygon_sdf(u, v, raster.regular_polygon(3, r)))
        elif name == "star":
            a = raster.coverage(raster.polygon_sdf(u, v, raster.star_polygon(5, r, 0.42)))
        elif name == "cross":
            arm, half = 0.9 * r, 0.27 * r
            sdf = torch.minimum(raster.box_sdf(u, v, arm, half), raster.box_sdf(u, v, half, arm))
            a = raster.coverage(sdf)
        elif name == "ring":
            half = 0.5 * q["thickness"] * r
            centre_line = 0.85 * r - half
            a = raster.coverage(raster.ellipse_ring_sdf(u, v, centre_line, centre_line, half))
        elif name == "stripes":
            a = raster.stripes(u, q["period"], q["phase"])
        elif name == "checkerboard":
            a = raster.checkerboard(u + q["phase"].reshape(-1, 1, 1), v, 0.75 * q["period"])
        elif name == "dots":
            spacing = q["period"] + 2.0
            a = raster.coverage(raster.dots_sdf(u, v, spacing, q["dot_ratio"] * spacing))
        else:  # zigzag
            period = q["period"].reshape(-1, 1, 1)
            bend = q["amplitude"].reshape(-1, 1, 1) * period
            wave = raster.triangle_wave(v / (q["wavelength"].reshape(-1, 1, 1) * period))
            a = raster.stripes(u + bend * wave, q["period"], q["phase"])
        alpha[rows] = a
    return alpha


def compose(alpha: Tensor, fg: Tensor, bg: Tensor, bg2: Tensor, grad_angle: Tensor) -> Tensor:
    """Colour the coverage: foreground over a two-colour linear gradient.

    Args:
        alpha: ``(N, H, W)`` foreground coverage.
        fg, bg, bg2: ``(N, 3)`` foreground colour, background colour at one end
            of the gradient, at the other end.
        grad_angle: ``(N,)`` direction of the gradient, radians.

    Returns:
        ``(N, 3, H, W)`` float32 (not yet clamped).
    """
    n, height, width = alpha.shape
    x, y = raster.grid(height, width)
    c, s = torch.cos(grad_angle).reshape(-1, 1, 1), torch.sin(grad_angle).reshape(-1, 1, 1)
    t = ((x / width - 0.5) * c + (y / height - 0.5) * s + 0.5).clamp(0.0, 1.0)  # (N, H, W)
    t = t.unsqueeze(1)
    background = bg.reshape(n, 3, 1, 1) * (1 - t) + bg2.reshape(n, 3, 1, 1) * t
    a = alpha.unsqueeze(1)
    return background * (1 - a) + fg.reshape(n, 3, 1, 1) * a


def shapes_split(split: str, seed: int = 0, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """Images and labels of one split, generated deterministically.

    Args:
        split: ``"train"`` (4,000 images) or ``"test"`` (1,000 images).
        seed: Which draw of the split. Default 0 (the split the shipped weights
            were trained and measured on). Train and test never share a stream.
        limit: Keep only the first ``limit`` images (identical to slicing the
            full split). Default None (all).

    Returns:
        ``(images, labels)``: ``(M, 3, 64, 64)`` float32 in [0, 1] and ``(M,)``
        int64, the classes balanced and shuffled.
    """
    total = SPLIT_SIZES[check_split(split)]
    count = check_limit(limit, total)
    g = generator("shapes", split, seed)

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(total, *shape, generator=g)

    k = len(LABELS)
    labels = (torch.arange(total) % k)[torch.randperm(total, generator=g)]
    size = uniform(11.0, 22.0)
    room = (SIZE / 2 - size - 1.0).clamp_min(0.0)
    geometry = {
        "size": size,
        "cx": SIZE / 2 + room * uniform(-1.0, 1.0),
        "cy": SIZE / 2 + room * uniform(-1.0, 1.0),
        "angle": uniform(0.0, 2 * math.pi),
        "thickness": uniform(0.25, 0.45),
        "period": uniform(6.0, 14.0),
        "phase": uniform(0.0, 2 * math.pi),
        "amplitude": uniform(0.35, 0.7),
        "wavelength": uniform(1.5, 3.0),
        "dot_ratio": uniform(0.22, 0.36),
    }
    bg = uniform(0.0, 1.0, 3)
    bg2 = (bg + uniform(-0.2, 0.2, 3)).clamp(0.0, 1.0)
    fg = uniform(0.0, 1.0, 3)
    close = (fg - bg).norm(dim=1) < MIN_CONTRAST
    # Shifting every channel by half the range puts fg at distance >= 0.87 from bg.
    fg = torch.where(close.unsqueeze(1), torch.remainder(bg + 0.5, 1.0), fg)
    grad_angle = uniform(0.0, 2 * math.pi)
    noise_std = uniform(0.0, 0.06)

    images = torch.empty(count, 3, SIZE, SIZE)
    for index, part in chunks(count):
        alpha = render_alpha(labels[part], {key: value[part] for key, value in geometry.items()})
        clean = compose(alpha, fg[part], bg[part], bg2[part], grad_angle[part])
        noise = torch.randn(clean.shape, generator=generator("shapes", split, seed, f"noise{index}"))
        images[part] = (clean + noise * noise_std[part].reshape(-1, 1, 1, 1)).clamp_(0.0, 1.0)
    return images, labels[:count].clone()


#: Colours of the clean samples: warm yellow on dark blue.
SAMPLE_FG = (0.95, 0.75, 0.15)
SAMPLE_BG = (0.10, 0.20, 0.55)


def shapes_sample(key: str) -> Tensor:
    """A clean, centred example of one class: yellow on dark blue, no noise.

    Args:
        key: A class name from :data:`LABELS` (case-insensitive).

    Returns:
        ``(3, 64, 64)`` float32 in [0, 1].

    Raises:
        ProbeUsageError: ``key`` is not a class name.
    """
    text = str(key).strip().lower()
    if text not in LABELS:
        raise ProbeUsageError(f"unknown sample key {key!r}; keys are: {', '.join(LABELS)}")
    one = torch.ones(1)
    geometry = {
        "cx": one * SIZE / 2,
        "cy": one * SIZE / 2,
        "size": one * 22.0,
        "angle": one * 0.0,
        "thickness": one * 0.35,
        "period": one * 10.0,
        "phase": one * 0.0,
        "amplitude": one * 0.5,
        "wavelength": one * 2.0,
        "dot_ratio": one * 0.3,
    }
    alpha = render_alpha(torch.tensor([LABELS.index(text)]), geometry)
    fg, bg = torch.tensor([SAMPLE_FG]), torch.tensor([SAMPLE_BG])
    return compose(alpha, fg, bg, bg, one * 0.0)[0].clamp(0.0, 1.0)
