"""Luminance and chroma (YIQ) for ``--original-colors``: keep the content's colours, take the style's strokes."""

from __future__ import annotations

import torch

from probe.errors import ProbeUsageError
from probe.images import resize

__all__ = ["rgb_to_yiq", "yiq_to_rgb", "keep_content_colors", "match_histograms"]

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


def match_histograms(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give ``source`` the colour histogram of ``reference``, channel by channel (exact CDF matching).

    The second way of Gatys et al. (2017) to keep the content's colours: the
    style image is given the content's colour distribution before the transfer
    (``match_colors=True`` in :func:`probe.style_transfer`, ``--match-histograms``).
    Each pixel keeps its rank within its channel and takes the value of the
    reference at the same quantile (linearly interpolated), so the result's
    sorted values per channel are the reference's quantiles.

    Args:
        source: ``(C, H, W)`` in [0, 1], e.g. the style image.
        reference: ``(C, h, w)`` with the same C, e.g. the content image (any size).

    Returns:
        ``(C, H, W)`` in [0, 1].
    """
    if source.dim() != 3 or reference.dim() != 3 or source.shape[0] != reference.shape[0]:
        raise ProbeUsageError(f"histogram matching needs two (C, H, W) images with the same C; got "
                              f"{tuple(source.shape)} and {tuple(reference.shape)}")
    flat = source.flatten(1)
    values = reference.flatten(1).to(source.device, source.dtype).sort(dim=1).values
    count, known = flat.shape[1], values.shape[1]
    positions = torch.linspace(0, known - 1, count, device=source.device, dtype=torch.float64)
    low = positions.floor().long()
    high = positions.ceil().long()
    frac = (positions - low).to(source.dtype)
    quantiles = values[:, low] * (1 - frac) + values[:, high] * frac  # (C, count), ascending
    order = flat.argsort(dim=1, stable=True)
    matched = torch.empty_like(flat)
    matched.scatter_(1, order, quantiles)
    return matched.view_as(source)
