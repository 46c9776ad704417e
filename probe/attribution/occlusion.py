"""Occlusion (Zeiler and Fergus 2014) with a window grid whose cost does not grow with the image.

By default the image is covered by :data:`OCCLUSION_GRID` x :data:`OCCLUSION_GRID` windows (49 occluded
passes plus one clean pass, at 28 px as at 224 px), aligned to the model's patches when it has a patch
embedding (ViT's 16 px, Swin's and ConvNeXt's 4 px), and every pixel is covered. A fixed half-window
stride instead costs ``(2 * side / window - 1)^2`` passes: 169 for a 224 px ViT, over 150 s on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from probe.attribution.leaves import observe
from probe.errors import ProbeUsageError

__all__ = ["OCCLUSION_GRID", "OCCLUSION_BATCH", "Progress", "counting", "occlusion_grid", "patch_size", "run_occlusion"]

OCCLUSION_GRID = 7
"""Windows along each side of the image by default (49 occluded passes in all)."""

OCCLUSION_BATCH = 16
"""Occluded images per forward pass (captum's ``perturbations_per_eval``): memory follows this, not the grid."""

Progress = Callable[[str, int, int], None]
"""``progress(method, done, total)``: images through the model so far, of ``total``."""


def counting(forward: Callable[[torch.Tensor], torch.Tensor], method: str, total: int,
             progress: Progress | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward`` that reports ``progress(method, done, total)`` after each batch, ``done`` the images it has
    run (at most ``total``); ``forward`` itself when ``progress`` is None. For the methods that run many
    images (integrated gradients, smoothgrad, GradientShap, occlusion)."""
    if progress is None:
        return forward
    done = 0

    def counted(images: torch.Tensor) -> torch.Tensor:
        nonlocal done
        out = forward(images)
        done += images.shape[0]
        progress(method, min(done, total), total)
        return out

    return counted


def occlusion_grid(side: int, patch: int = 1, count: int = OCCLUSION_GRID) -> tuple[int, int]:
    """``(window, stride)`` along one side of ``side`` pixels: ``count`` windows that cover every pixel.

    Window and stride are multiples of ``patch`` when ``side`` is (each window occludes whole patches);
    the window is about ``side / count`` and at least 2 pixels (a patch, for patch models), and the last
    window ends on the last pixel.

    >>> occlusion_grid(224), occlusion_grid(224, patch=16), occlusion_grid(64), occlusion_grid(28)
    ((32, 32), (32, 32), (10, 9), (4, 4))
    """
    unit = patch if patch > 1 and side % patch == 0 else 1
    cells = side // unit
    n = max(1, min(count, cells))
    window = max(math.ceil(cells / n), 2 if unit == 1 else 1)
    if n == 1:
        return min(window, cells) * unit, min(window, cells) * unit
    stride = max(1, (cells - window) // (n - 1))
    window = max(1, cells - (n - 1) * stride)
    return window * unit, stride * unit


def patch_size(module: nn.Module, x: torch.Tensor) -> int:
    """The model's patch size: the stride of the first ``Conv2d`` to run when its kernel equals its stride
    (a patch embedding, as in ViT, Swin, ConvNeXt), else 1. One forward pass of ``x``, hooks removed on exit."""
    first: list[nn.Conv2d] = []

    def seen(m: nn.Module, args: Any) -> None:
        if not first:
            first.append(m)  # type: ignore[arg-type]

    observe(module, x, [m for m in module.modules() if isinstance(m, nn.Conv2d)], before=seen)
    if not first:
        return 1
    conv = first[0]
    kernel, stride = tuple(conv.kernel_size), tuple(conv.stride)
    return stride[0] if kernel == stride and stride[0] == stride[-1] and stride[0] > 1 else 1


def run_occlusion(
    forward: nn.Module, inputs: torch.Tensor, baseline: torch.Tensor, target: int, *, window: int | None = None,
    stride: int | None = None, progress: Progress | None = None,
) -> torch.Tensor:
    """captum's Occlusion of ``inputs`` ``(1, C, H, W)``: the score drop when a window is set to ``baseline``.

    Args:
        forward: image in [0, 1] -> logits.
        inputs: ``(1, C, H, W)``.
        baseline: ``(1, C, H, W)`` what an occluded window shows.
        target: the class whose score drops.
        window: the window's side in pixels (default None: :func:`occlusion_grid` per side, aligned to
            :func:`patch_size`).
        stride: pixels between windows (default None: the grid's, or half of ``window`` when it is given).
        progress: called after each batch of occluded images with ``("occlusion", done, total)``.

    Returns:
        ``(1, C, H, W)`` attributions.
    """
    from captum.attr import Occlusion

    height, width = inputs.shape[-2:]
    if window is None:
        patch = patch_size(forward, inputs.detach())
        (wh, sh), (ww, sw) = occlusion_grid(height, patch), occlusion_grid(width, patch)
    else:
        wh = ww = min(window, height, width)
        sh = sw = stride or max(1, wh // 2)
    if stride is not None:
        sh = sw = stride
        if stride > min(wh, ww):  # captum's assertion: the pixels between two windows would be explained by none
            raise ProbeUsageError(
                f"an occlusion stride of {stride} px is larger than the window ({wh}x{ww} px on this "
                f"{height}x{width} image), so the pixels between windows would get no attribution; give --stride "
                f"at most {min(wh, ww)}, or a larger --window", param="stride")
    total = 1 + ((height - wh) // sh + 1) * ((width - ww) // sw + 1)
    channels = inputs.shape[1]
    return Occlusion(counting(forward, "occlusion", total, progress)).attribute(inputs, sliding_window_shapes=(channels, wh, ww), strides=(channels, sh, sw),
                                        baselines=baseline, target=target, perturbations_per_eval=OCCLUSION_BATCH)
