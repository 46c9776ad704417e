"""Batched rasterization of simple shapes from signed distances, in pixel units.

The generators of the ``xo`` and ``shapes`` data sets draw everything here.
Each function takes per-image parameters as 1-D tensors of length N (or
``(N, K, 2)`` vertex tensors) and returns a signed distance field
``(N, H, W)`` in pixels: negative inside the shape, positive outside. The
coverage of a pixel is then ``coverage(sdf)``, a one-pixel-wide linear ramp,
which anti-aliases the edges without supersampling.

Coordinates are pixel centres: ``x = 0.5, 1.5, ..., W - 0.5`` from left to
right, ``y`` likewise from top to bottom. Nothing here is random.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "grid",
    "coverage",
    "rotate",
    "circle_sdf",
    "ellipse_ring_sdf",
    "segment_sdf",
    "polygon_sdf",
    "box_sdf",
    "regular_polygon",
    "star_polygon",
    "stripes",
    "triangle_wave",
    "checkerboard",
    "dots_sdf",
]


def grid(height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates.

    Returns:
        ``(x, y)``, each ``(1, H, W)`` float32, ready to broadcast against
        per-image parameters shaped ``(N, 1, 1)``.
    """
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x.unsqueeze(0), y.unsqueeze(0)


def _col(t: Tensor) -> Tensor:
    """``(N,)`` -> ``(N, 1, 1)`` for broadcasting over the image plane."""
    return t.reshape(-1, 1, 1)


def coverage(sdf: Tensor) -> Tensor:
    """Fraction of each pixel covered by the shape: ``clamp(0.5 - sdf, 0, 1)``."""
    return (0.5 - sdf).clamp(0.0, 1.0)


def rotate(x: Tensor, y: Tensor, cx: Tensor, cy: Tensor, angle: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates relative to ``(cx, cy)`` in a frame rotated by ``angle`` radians.

    Args:
        x, y: Pixel coordinates ``(1, H, W)``.
        cx, cy, angle: ``(N,)`` centre and rotation of each image's frame.

    Returns:
        ``(u, v)``, each ``(N, H, W)``: the shape is drawn in ``(u, v)``.
    """
    dx, dy = x - _col(cx), y - _col(cy)
    c, s = _col(torch.cos(angle)), _col(torch.sin(angle))
    return c * dx + s * dy, -s * dx + c * dy


def circle_sdf(u: Tensor, v: Tensor, radius: Tensor) -> Tensor:
    """Signed distance to a disc of ``radius`` ``(N,)`` centred at the origin."""
    return torch.sqrt(u * u + v * v) - _col(radius)


def ellipse_ring_sdf(u: Tensor, v: Tensor, a: Tensor, b: Tensor, half_width: Tensor) -> Tensor:
    """Approximate signed distance to an elliptical ring (an O).

    Args:
        u, v: Frame coordinates ``(N, H, W)``.
        a, b: ``(N,)`` semi-axes along ``u`` and ``v`` of the ring's centre line.
        half_width: ``(N,)`` half of the stroke width.

    Returns:
        ``(N, H, W)``; exact for circles, first-order for ellipses.
    """
    a, b = _col(a), _col(b)
    rho = torch.sqrt((u / a) ** 2 + (v / b) ** 2)
    # Radial distance to the centre line along the ray from the centre: |p| - |p| / rho.
    radius = torch.sqrt(u * u + v * v)
    return (radius - radius / rho.clamp_min(1e-6)).abs() - _col(half_width)


def segment_sdf(u: Tensor, v: Tensor, angle: Tensor, half_length: Tensor, half_width: Tensor) -> Tensor:
    """Signed distance to a stroke centred at the origin (a capsule).

    Args:
        u, v: Frame coordinates ``(N, H, W)``.
        angle: ``(N,)`` direction of the stroke, radians.
        half_length: ``(N,)`` half of the stroke's length (end caps excluded).
        half_width: ``(N,)`` half of the stroke's width.
    """
    c, s = _col(torch.cos(angle)), _col(torch.sin(angle))
    along = (c * u + s * v).clamp(-_col(half_length), _col(half_length))
    du, dv = u - c * along, v - s * along
    return torch.sqrt(du * du + dv * dv) - _col(half_width)


def box_sdf(u: Tensor, v: Tensor, half_u: Tensor, half_v: Tensor) -> Tensor:
    """Exact signed distance to an axis-aligned box (in the frame) with half-sizes ``(N,)``."""
    qu = u.abs() - _col(half_u)
    qv = v.abs() - _col(half_v)
    outside = torch.sqrt(qu.clamp_min(0) ** 2 + qv.clamp_min(0) ** 2)
    inside = torch.maximum(qu, qv).clamp_max(0)
    return outside + inside


def regular_polygon(sides: int, radius: Tensor) -> Tensor:
    """Vertices of a regular polygon with one vertex pointing up (towards -v).

    Args:
        sides: Number of vertices.
        radius: ``(N,)`` circumradius.

    Returns:
        ``(N, sides, 2)`` vertices ``(u, v)``, counter-clockwise on screen.
    """
    t = -math.pi / 2 + torch.arange(sides, dtype=torch.float32) * (2 * math.pi / sides)
    unit = torch.stack([torch.cos(t), torch.sin(t)], dim=-1)
    return radius.reshape(-1, 1, 1) * unit


def star_polygon(points: int, outer: Tensor, inner_ratio: float) -> Tensor:
    """Vertices of a star with ``points`` tips, one pointing up.

    Args:
        points: Number of tips (5 for the usual star).
        outer: ``(N,)`` radius of the tips.
        inner_ratio: Radius of the inner corners relative to ``outer``.

    Returns:
        ``(N, 2 * points, 2)`` vertices ``(u, v)``.
    """
    k = torch.arange(2 * points, dtype=torch.float32)
    t = -math.pi / 2 + k * (math.pi / points)
    scale = torch.where(k % 2 == 0, 1.0, inner_ratio)
    unit = torch.stack([torch.cos(t), torch.sin(t)], dim=-1) * scale.unsqueeze(-1)
    return outer.reshape(-1, 1, 1) * unit


def polygon_sdf(u: Tensor, v: Tensor, vertices: Tensor) -> Tensor:
    """Exact signed distance to a simple polygon (convex or not).

    Args:
        u, v: Frame coordinates ``(N, H, W)``.
        vertices: ``(N, K, 2)`` polygon vertices in order.

    Returns:
        ``(N, H, W)``: distance to the nearest edge, negative inside (even-odd rule).
    """
    p = torch.stack([u, v], dim=-1).unsqueeze(-2)  # (N, H, W, 1, 2)
    a = vertices[:, None, None, :, :]  # (N, 1, 1, K, 2)
    b = torch.roll(vertices, shifts=-1, dims=1)[:, None, None, :, :]
    e = b - a
    w = p - a
    t = ((w * e).sum(-1) / (e * e).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
    diff = w - e * t.unsqueeze(-1)
    dist = torch.sqrt((diff * diff).sum(-1)).amin(dim=-1)  # (N, H, W)
    # Even-odd crossing test along +u.
    pu, pv = p[..., 0], p[..., 1]
    au, av, bu, bv = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    straddles = (av > pv) != (bv > pv)
    cross_u = au + (pv - av) * (bu - au) / torch.where(bv == av, torch.ones_like(bv), bv - av)
    crossings = (straddles & (pu < cross_u)).sum(-1)
    inside = crossings % 2 == 1
    return torch.where(inside, -dist, dist)


def stripes(u: Tensor, period: Tensor, phase: Tensor) -> Tensor:
    """Coverage ``(N, H, W)`` of stripes across ``u``: half of each period is on.

    The ramp is scaled so that an edge is about one pixel wide.

    Args:
        u: Coordinate across the stripes ``(N, H, W)``.
        period: ``(N,)`` period in pixels.
        phase: ``(N,)`` phase in radians.
    """
    period = _col(period)
    wave = torch.sin(2 * math.pi * u / period + _col(phase))
    return (0.5 + wave * period / (2 * math.pi)).clamp(0.0, 1.0)


def triangle_wave(t: Tensor) -> Tensor:
    """Triangle wave of period 1 and amplitude 1 (range [-1, 1])."""
    frac = t - torch.floor(t)
    return 4.0 * (frac - 0.5).abs() - 1.0


def checkerboard(u: Tensor, v: Tensor, cell: Tensor) -> Tensor:
    """Coverage ``(N, H, W)`` of a checkerboard of square cells of side ``cell`` ``(N,)``."""
    cell = _col(cell)
    product = torch.sin(math.pi * u / cell) * torch.sin(math.pi * v / cell)
    return (0.5 + product * cell / math.pi).clamp(0.0, 1.0)


def dots_sdf(u: Tensor, v: Tensor, spacing: Tensor, radius: Tensor) -> Tensor:
    """Signed distance to a square lattice of discs.

    Args:
        u, v: Frame coordinates ``(N, H, W)``; a disc sits at every multiple of ``spacing``.
        spacing: ``(N,)`` lattice spacing in pixels.
        radius: ``(N,)`` disc radius in pixels.
    """
    s = _col(spacing)
    du = u - s * torch.round(u / s)
    dv = v - s * torch.round(v / s)
    return torch.sqrt(du * du + dv * dv) - _col(radius)
