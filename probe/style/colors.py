"""Luminance and chroma (YIQ) for ``--original-colors``: keep the content's colours, take the style's strokes."""

from __future__ import annotations

import torch

from probe.errors import ProbeUsageError
from probe.images import resize

__all__ = ["rgb_to_yiq", "yiq_to_rgb", "keep_content_colors"]

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ.double()).float()


def _apply_matrix(matrix: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    channel_dim = images.dim() - 3
    if images.shape[channel_dim] != 3:
        raise ProbeUsageError(f"colour conversion needs 3-channel images; got shape {tuple(images.shape)}")
    matrix = matrix.to(images.device, images.dtype)
    return torch.movedim(torch.tensordot(matrix, torch.movedim(images, channel_dim, 0), dims=1), 0, channel_dim)


def rgb_to_yiq(images: torch.Tensor) -> torch.Tensor:
    """RGB ``(..., 3, H, W)`` -> YIQ: Y is luminance, I and Q are chroma (NTSC matrix)."""
    return _apply_matrix(_RGB_TO_YIQ, images)


def yiq_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_yiq` (not clamped)."""
    return _apply_matrix(_YIQ_TO_RGB, images)


def keep_content_colors(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylized`` with the chroma of ``content`` (``--original-colors``).

    Both are ``(3, H, W)`` or ``(N, 3, H, W)`` in [0, 1]; ``content`` is
    resized to ``stylized``'s size. The result is converted back to RGB and
    clamped to [0, 1] (so chroma is kept exactly wherever no channel clips).
    One-channel images are returned unchanged.
    """
    channel_dim = stylized.dim() - 3
    if stylized.shape[channel_dim] == 1:
        return stylized
    if tuple(content.shape[-2:]) != tuple(stylized.shape[-2:]):
        content = resize(content, tuple(stylized.shape[-2:]))
    content = content.to(stylized.device, stylized.dtype)
    if content.dim() < stylized.dim():
        content = content.expand(*stylized.shape[:-3], *content.shape)
    luminance = rgb_to_yiq(stylized).narrow(channel_dim, 0, 1)
    chroma = rgb_to_yiq(content).narrow(channel_dim, 1, 2)
    return yiq_to_rgb(torch.cat([luminance, chroma], dim=channel_dim)).clamp(0.0, 1.0)
