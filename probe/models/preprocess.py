"""What preprocessing a module wants: its own metadata (timm, transformers) first, then a guess from its layers."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from probe.errors import ProbeUsageError
from probe.checks import MAX_SIDE, check_count
from probe.models.types import IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = ["module_preprocess", "timm_preprocess", "hf_preprocess", "first_conv_channels", "adjust_preprocess"]

DEFAULT_SIZE = 224


def first_conv_channels(module: nn.Module, fallback: int = 3) -> int:
    """Input channels of the first convolution of ``module`` (``fallback`` when it has none)."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return sub.in_channels
        in_channels = getattr(sub, "in_channels", None)  # TorchScript convolutions keep the attribute
        if isinstance(in_channels, int):
            return in_channels
    return fallback


def generic_preprocess(module: nn.Module, input_size: tuple[int, int] | None = None) -> Preprocess:
    """ImageNet statistics for a 3-channel module, none (mean 0, std 1) otherwise; 224 px unless given."""
    channels = first_conv_channels(module)
    size = input_size or (DEFAULT_SIZE, DEFAULT_SIZE)
    if channels == 3:
        return Preprocess(IMAGENET_MEAN, IMAGENET_STD, 3, size)
    return Preprocess((0.0,) * channels, (1.0,) * channels, channels, size)


def timm_preprocess(config: dict[str, Any]) -> Preprocess:
    """A timm ``pretrained_cfg`` (``mean``, ``std``, ``input_size`` ``(C, H, W)``) -> :class:`Preprocess`."""
    channels, height, width = (int(v) for v in config.get("input_size", (3, DEFAULT_SIZE, DEFAULT_SIZE)))
    mean = tuple(float(v) for v in config.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in config.get("std", IMAGENET_STD))
    if len(mean) != channels:  # timm states one statistic for grayscale models
        mean, std = (mean[0],) * channels, (std[0],) * channels
    return Preprocess(mean, std, channels, (height, width))


def hf_preprocess(config: Any, folder: str | Path | None = None) -> Preprocess:
    """A transformers config (and the folder's ``preprocessor_config.json``, when there is one) -> :class:`Preprocess`.

    The config gives channels (``num_channels``) and size (``image_size``); the
    image processor file gives ``image_mean``/``image_std`` and ``size``. Without
    that file the statistics are ImageNet's, transformers' own default.
    """
    channels = int(getattr(config, "num_channels", 3) or 3)
    side = getattr(config, "image_size", None)
    processor: dict[str, Any] = {}
    folder = folder or getattr(config, "_name_or_path", None)
    if folder and (Path(folder) / "preprocessor_config.json").is_file():
        processor = json.loads((Path(folder) / "preprocessor_config.json").read_text())
    size = processor.get("crop_size") or processor.get("size") or side or DEFAULT_SIZE
    if isinstance(size, dict):
        size = (size.get("height") or size.get("shortest_edge") or DEFAULT_SIZE, size.get("width")
                or size.get("height") or size.get("shortest_edge") or DEFAULT_SIZE)  # fmt: skip
    height, width = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[-1]))
    mean = tuple(float(v) for v in processor.get("image_mean", IMAGENET_MEAN if channels == 3 else (0.0,) * channels))
    std = tuple(float(v) for v in processor.get("image_std", IMAGENET_STD if channels == 3 else (1.0,) * channels))
    return Preprocess(mean, std, channels, (height, width))


def module_preprocess(module: nn.Module) -> Preprocess:
    """The preprocessing ``module`` states about itself: timm's ``pretrained_cfg``, a transformers config, else a guess."""
    config = getattr(module, "pretrained_cfg", None)
    if isinstance(config, dict) and "mean" in config:
        return timm_preprocess(config)
    hf_config = getattr(module, "config", None)
    if hf_config is not None and hasattr(hf_config, "num_channels") and hasattr(hf_config, "to_dict"):
        return hf_preprocess(hf_config)
    return generic_preprocess(module)


def _floats(values: Sequence[float], channels: int, what: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not all(map(math.isfinite, values)):
        raise ProbeUsageError(f"{what} values must be finite numbers; got {list(values)}", param=what)
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ProbeUsageError(
            f"{what} has {len(values)} values for a model with {channels} input channel(s); give 1 or {channels}",
            param=what,
        )
    return values


def adjust_preprocess(
    preprocess: Preprocess,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    channels: int | None = None,
    input_size: int | tuple[int, int] | None = None,
) -> Preprocess:
    """``preprocess`` with the given fields replaced; one value of ``mean``/``std`` serves every channel.

    Raises:
        ProbeUsageError: ``mean``/``std`` of the wrong length, ``std`` with a
            value <= 0, ``channels`` or ``input_size`` below 1.
    """
    if channels is not None:
        check_count(channels, "in_channels")
    count = channels or preprocess.channels
    new_mean = _floats(mean, count, "mean") if mean is not None else preprocess.mean
    new_std = _floats(std, count, "std") if std is not None else preprocess.std
    if channels is not None and channels != preprocess.channels:  # statistics stated for other channels do not carry
        new_mean = new_mean if len(new_mean) == count else (new_mean[0],) * count
        new_std = new_std if len(new_std) == count else (new_std[0],) * count
    if any(s <= 0 for s in new_std):
        raise ProbeUsageError(f"std values must be > 0; got {list(new_std)}", param="std")
    size = preprocess.input_size
    if input_size is not None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)  # type: ignore[assignment]
        if min(size) < 1 or max(size) > MAX_SIDE:
            raise ProbeUsageError(f"input size must be from 1 to {MAX_SIDE}; got {input_size}", param="input_size")
    return replace(preprocess, mean=new_mean, std=new_std, channels=count, input_size=(int(size[0]), int(size[1])))
