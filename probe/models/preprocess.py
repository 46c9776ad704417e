"""What preprocessing a module wants: its own metadata (timm, transformers) first, then a guess from its layers."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeUsageError
from probe.checks import check_count, check_size
from probe.models.types import IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = ["module_preprocess", "timm_preprocess", "hf_preprocess", "first_conv_channels", "adjust_preprocess",
           "fixed_input_size"]

DEFAULT_SIZE = 224
PROCESSOR_FILE = "preprocessor_config.json"


def first_conv_channels(module: nn.Module, fallback: int = 3) -> int:
    """Input channels of the first convolution of ``module`` (``fallback`` when it has none, or only lazy ones): its
    first ``Conv2d`` where it has one (a ``Conv1d`` defined before the stem, an ECA attention's, takes no image),
    else the first module that states ``in_channels`` (scripted convolutions, a ``Conv3d``, a transposed one)."""
    first = next((sub for sub in module.modules() if isinstance(sub, nn.Conv2d) and sub.in_channels != 0), None)
    if first is not None:
        return first.in_channels
    for sub in module.modules():
        if getattr(sub, "in_channels", None) == 0:  # a lazy convolution: its channels come with its first input
            continue
        if isinstance(sub, nn.Conv2d):
            return sub.in_channels
        in_channels = getattr(sub, "in_channels", None)  # scripted convolutions keep the attribute
        if isinstance(in_channels, int):
            return in_channels
        weight = getattr(sub, "weight", None)  # traced ones keep only their weight (groups=1 assumed)
        if getattr(sub, "original_name", None) == "Conv2d" and isinstance(weight, torch.Tensor) and weight.dim() == 4:
            return int(weight.shape[1])
    return fallback


def generic_preprocess(module: nn.Module, input_size: tuple[int, int] | None = None) -> Preprocess:
    """ImageNet statistics for a 3-channel module, none (mean 0, std 1) otherwise; the size given, else the one the
    module states (:func:`fixed_input_size`), else 224 px."""
    channels = first_conv_channels(module)
    size = input_size or fixed_input_size(module) or (DEFAULT_SIZE, DEFAULT_SIZE)
    if channels == 3:
        return Preprocess(IMAGENET_MEAN, IMAGENET_STD, 3, size)
    return Preprocess((0.0,) * channels, (1.0,) * channels, channels, size)


def _pair(value: Any) -> tuple[int, int] | None:
    """``32`` or ``(32, 48)`` (ints) -> ``(H, W)``; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return (int(value[0]), int(value[1]))
    return None


def fixed_input_size(module: nn.Module) -> tuple[int, int] | None:
    """``(H, W)`` a module states it must be given, built for, whatever its pretrained config says; None when it
    states none.

    A timm patch embedding that checks its input (``strict_img_size``; ``timm.create_model(NAME, img_size=32)``
    keeps the 224 of ``pretrained_cfg``), torchvision's ``VisionTransformer(image_size=...)``, or a root module's
    own ``image_size``/``img_size`` attribute.
    """
    for sub in module.modules():
        if getattr(sub, "strict_img_size", False) and not getattr(sub, "dynamic_img_pad", False):
            size = _pair(getattr(sub, "img_size", None))
            if size is not None:
                return size
    return _pair(getattr(module, "image_size", None)) or _pair(getattr(module, "img_size", None))


def timm_preprocess(config: dict[str, Any], module: nn.Module | None = None) -> Preprocess:
    """A timm ``pretrained_cfg`` (``mean``, ``std``, ``input_size`` ``(C, H, W)``) -> :class:`Preprocess`; the size
    :func:`fixed_input_size` finds in ``module`` (when given) over the config's."""
    channels, height, width = (int(v) for v in config.get("input_size", (3, DEFAULT_SIZE, DEFAULT_SIZE)))
    height, width = (fixed_input_size(module) if module is not None else None) or (height, width)
    mean = tuple(float(v) for v in config.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in config.get("std", IMAGENET_STD))
    if len(mean) != channels:  # timm states one statistic for grayscale models
        mean, std = (mean[0],) * channels, (std[0],) * channels
    return Preprocess(mean, std, channels, (height, width))


def _processor_file(name: str | Path) -> Path | None:
    """The ``preprocessor_config.json`` of a ``save_pretrained`` folder or of a hub name, or None.

    A hub name is looked up the way transformers finds its other files: in the
    local cache, and under ``HF_HUB_OFFLINE=1`` nowhere else; a hub without the
    file, or no network, is None (transformers' defaults then).
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return path / PROCESSOR_FILE if (path / PROCESSOR_FILE).is_file() else None
    if "transformers" not in sys.modules:  # only a transformers model has a hub name; never imported just to ask
        return None
    from transformers.utils import cached_file

    try:
        found = cached_file(str(name), PROCESSOR_FILE, _raise_exceptions_for_missing_entries=False,
                            _raise_exceptions_for_connection_errors=False)  # fmt: skip
    except Exception:  # not a repo id, a gated repo, a broken cache: no statistics from there
        return None
    return Path(found) if found else None


def _processor_size(processor: dict[str, Any], side: Any) -> tuple[int, int]:
    """``(H, W)`` the image processor feeds the model: its crop when it crops, else its resize, else ``side``."""
    crops = processor.get("do_center_crop", True) is not False
    size = (processor.get("crop_size") if crops else None) or processor.get("size") or side or DEFAULT_SIZE
    if isinstance(size, dict):
        edge = size.get("shortest_edge") or size.get("longest_edge") or DEFAULT_SIZE
        size = (size.get("height") or edge, size.get("width") or size.get("height") or edge)
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[-1]))


def hf_preprocess(config: Any, folder: str | Path | None = None) -> Preprocess:
    """A transformers config (and its ``preprocessor_config.json``, when there is one) -> :class:`Preprocess`.

    The config gives channels (``num_channels``) and size (``image_size``); the
    image processor file (of ``folder``, else of the folder or hub name the
    config was loaded from, see :func:`_processor_file`) gives
    ``image_mean``/``image_std`` and the size. Without that file the statistics
    are ImageNet's, transformers' own default.
    """
    channels = int(getattr(config, "num_channels", 3) or 3)
    processor: dict[str, Any] = {}
    source = folder or getattr(config, "_name_or_path", None)
    found = _processor_file(source) if source else None
    if found is not None:
        processor = json.loads(found.read_text())
    height, width = _processor_size(processor, getattr(config, "image_size", None))
    mean = _per_channel(processor.get("image_mean", IMAGENET_MEAN if channels == 3 else 0.0), channels)
    std = _per_channel(processor.get("image_std", IMAGENET_STD if channels == 3 else 1.0), channels)
    return Preprocess(mean, std, channels, (height, width))


def _per_channel(value: float | Sequence[float], channels: int) -> tuple[float, ...]:
    """A processor statistic (one number, or one per channel) as ``channels`` floats."""
    values = (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    return values * channels if len(values) == 1 else values


def module_preprocess(module: nn.Module) -> Preprocess:
    """The preprocessing ``module`` states about itself: timm's ``pretrained_cfg``, a transformers config, else a guess."""
    config = getattr(module, "pretrained_cfg", None)
    if isinstance(config, dict) and "mean" in config:
        return timm_preprocess(config, module)
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
        wanted = "one value" if channels == 1 else f"one value, which serves every channel, or {channels}"
        raise ProbeUsageError(f"{what} has {len(values)} values for a model with {channels} input "
                              f"channel{'s' if channels != 1 else ''}; give {wanted}", param=what)
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
        checked = check_size(input_size, "input_size")
        size = (checked, checked) if isinstance(checked, int) else checked
    return replace(preprocess, mean=new_mean, std=new_std, channels=count, input_size=(int(size[0]), int(size[1])))
