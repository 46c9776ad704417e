"""What style transfer is given, checked and made ready: the model, images, sizes, weights, the first image.

Every check raises :class:`~probe.errors.ProbeUsageError` naming the argument
(``param``), so the CLI reports the right option.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from probe.errors import ProbeUsageError
from probe.forward import ModelInputError, first_line
from probe.images import fit_size, load_image, resize
from probe.models import LoadedModel

if TYPE_CHECKING:
    from probe.style.objective import StyleObjective, StyleTargets

__all__ = [
    "ImageSource",
    "DEFAULT_SIZE",
    "as_sources",
    "default_size",
    "initial_image",
    "label",
    "load_for_model",
    "normalize_weights",
    "scale_sizes",
    "size_the_model_takes",
    "targets_for_model",
]

ImageSource = str | Path | torch.Tensor | np.ndarray | Image.Image

DEFAULT_SIZE = 256
"""The result's longer side for ImageNet-sized models (VGG): a minute or two on a CPU, seconds on a GPU."""


def default_size(loaded: LoadedModel) -> int:
    """The default longer side of the result for a model: 256, or twice the input side of a small model.

    A network sees strokes the size of its receptive field, so a model trained
    on small images (the embedded ``shapes``: 64x64) transfers visible style at
    about twice its input size (128) and only faint colour at 256.
    """
    side = max(loaded.preprocess.input_size)
    return DEFAULT_SIZE if side >= 224 else min(DEFAULT_SIZE, 2 * side)


def normalize_weights(
    weights: Sequence[float] | None, count: int, what: str, *, param: str | None = None
) -> list[float]:
    """Weights that sum to 1: ``count`` equal ones for None, else ``weights / sum(weights)``.

    Raises:
        ProbeUsageError: wrong count, a negative or non-finite weight, or all zero.
    """
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise ProbeUsageError(
            f"{len(weights)} {what} given for {count} {'item' if count == 1 else 'items'}: give exactly {count}",
            param=param,
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ProbeUsageError(f"{what} must be finite, >= 0 and not all 0; got {weights}", param=param)
    total = sum(weights)
    return [w / total for w in weights]


def as_sources(value: ImageSource | Sequence[ImageSource]) -> list[ImageSource]:
    """One image source or several -> a list."""
    if isinstance(value, (str, Path, torch.Tensor, np.ndarray, Image.Image)):
        return [value]
    return list(value)


def label(source: Any, fallback: str) -> str:
    """How an image source is named in captions: the path or sample name as given, else ``fallback``."""
    return str(source) if isinstance(source, (str, Path)) else fallback


def load_for_model(source: ImageSource, what: str, channels: int, param: str) -> torch.Tensor:
    """Load one ``(channels, H, W)`` image in [0, 1]; errors start with ``what`` and name ``param``.

    Raises:
        ProbeUsageError: unreadable or missing file, unknown sample, a batch
            instead of one image, channels the model cannot take (RGB and
            grayscale convert into each other; 4 channels into 3 do not).
    """
    try:
        image = load_image(source, channels=channels)
    except ProbeUsageError as error:
        raise ProbeUsageError(f"{what}: {error}", param=param) from None
    if image.dim() != 3:
        raise ProbeUsageError(f"{what}: expected one image (C, H, W); got shape {tuple(image.shape)}", param=param)
    return image


def scale_sizes(
    height: int, width: int, size: int | Sequence[int], scales: Sequence[int] | None
) -> list[tuple[int, int]]:
    """The ``(H, W)`` of each scale for a ``height x width`` content: ``scales`` (longer sides) or ``size``."""
    if scales is not None:
        scales = list(scales)
        if not scales or any(int(s) < 1 for s in scales):
            raise ProbeUsageError(f"scales must be positive sizes, e.g. 256,512; got {scales}", param="scales")
        return [fit_size(height, width, int(s)) for s in scales]
    if (min(size) if not isinstance(size, int) else size) < 1:
        raise ProbeUsageError(f"size must be positive; got {size}", param="size")
    return [fit_size(height, width, size)]


def initial_image(
    init: ImageSource, content: torch.Tensor, generator: torch.Generator, channels: int
) -> tuple[torch.Tensor, str]:
    """The image the optimization starts from, and its name for the manifest.

    Args:
        init: ``"content"`` (a copy of ``content``), ``"random"`` (uniform
            noise from ``generator``), or an image source (resized to the content).
        content: ``(C, H, W)`` content at the first scale.
        generator: the seeded generator (a CPU one from style_transfer: the same noise on any device).
        channels: the model's input channels.
    """
    if isinstance(init, str) and init == "content":
        return content.clone(), "content"
    if isinstance(init, str) and init == "random":
        noise = torch.rand(content.shape, generator=generator, device=generator.device, dtype=content.dtype)
        return noise.to(content.device), "random"
    if isinstance(init, str) and ":" not in init and not Path(init).expanduser().exists():
        raise ProbeUsageError(
            f"init must be content, random, or an image file; {init!r} is none of these", param="init"
        )
    image = load_for_model(init, "init image", channels, "init").to(content.device)
    return resize(image, tuple(content.shape[-2:])), label(init, "image")


def targets_for_model(
    objective: StyleObjective,
    content: torch.Tensor,
    styles: list[torch.Tensor],
    blend: Sequence[float],
    style_scale: float,
    input_size: tuple[int, int],
    content_features: dict[str, torch.Tensor] | None = None,
) -> tuple[StyleTargets, list[torch.Tensor]]:
    """The targets of one scale, and the style images they were taken from.

    Style images keep their aspect ratio (a 400x600 style at 224 is 149x224). A model that takes one input
    size (ViT, MaxViT) refuses that shape after taking the content's ``(H, W)``: then the style images are
    resized to the content's ``(H, W)``, the size the model took (Gram matrices and moments average over
    positions, so the stretch changes the strokes' proportions only). With ``style_scale`` other than 1 that
    would drop the scale asked for, so the refusal names ``style_scale`` instead.

    Args:
        objective: the style objective of the model.
        content: ``(C, H, W)`` content at this scale.
        styles: ``[(C, h, w)]`` style images at this scale.
        blend: one weight per style image, summing to 1.
        style_scale: the style images' size relative to the result's (checked > 0).
        input_size: the model's ``(H, W)`` (its preprocessing's), named when it refuses the content's size.
        content_features: the content's features when already computed (:func:`size_the_model_takes`), so
            that they are not computed again (default None).

    Raises:
        ProbeUsageError: the model refuses the content's size (``param="size"``, suggesting its own input
            size) or a style image's at ``style_scale`` other than 1 (``param="style_scale"``).
    """
    shape = tuple(content.shape[-2:])
    try:
        return objective.targets(content, styles, blend, content_features), styles
    except ModelInputError as error:
        refused = "x".join(map(str, error.shape[-2:]))
        if tuple(error.shape[-2:]) == shape == tuple(input_size) or error.param != "size":  # as it is: its own
            raise  # size, or what no size fixes (a Conv1d model, a forward taking (N, H, W, C))
        if tuple(error.shape[-2:]) == shape:
            raise ProbeUsageError(
                f"the model cannot run on the {refused} result ({first_line(error.original)}); give a --size HxW "
                f"it takes ({input_size[0]}x{input_size[1]} is the input size taken for this model)", param="size") from error
        if style_scale != 1:
            raise ProbeUsageError(
                f"the model cannot run on a {refused} style image ({first_line(error.original)}): style images "
                "are resized to --style-scale times the result's size; a model that takes one input size needs "
                "--style-scale 1 (style_scale=1)", param="style_scale") from error
    fitted = [resize(style, shape) for style in styles]  # stretched to the size the model took
    return objective.targets(content, fitted, blend, content_features), fitted


def size_the_model_takes(
    objective: StyleObjective, content: torch.Tensor, sizes: list[tuple[int, int]], input_size: tuple[int, int]
) -> tuple[list[tuple[int, int]], dict[str, torch.Tensor] | None]:
    """``sizes``, or the model's own ``input_size`` when the model refuses the *default* result size.

    Only for the default (no ``size`` or ``scales`` given): a model that takes one input size (ViT, MaxViT
    at 224x224) refuses 256 px; then the result is made at the size it takes, the content stretched to it.
    One no-grad pass of the content at the first size decides; its features are returned with the sizes,
    for :func:`targets_for_model` to take instead of making the same pass again.

    Args:
        objective: the style objective of the model.
        content: ``(C, H, W)`` content image in [0, 1].
        sizes: the default ``[(H, W)]``, one size.
        input_size: the model's ``(H, W)`` (its preprocessing's).

    Returns:
        ``(sizes, features)``: the sizes to make, and the content's features ``{module: (1, C, H, W)}`` at
        the first of them, or None when no pass ran or the model refused it.
    """
    if list(sizes) == [tuple(input_size)]:
        return sizes, None
    try:
        with torch.no_grad():
            features = objective.features(resize(content, sizes[0]).to(objective.device)[None])
    except ModelInputError as error:
        if error.param != "size":  # no size fixes it
            raise
        return [tuple(input_size)], None
    return sizes, features
