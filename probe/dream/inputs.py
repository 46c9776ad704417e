"""A dream's inputs, checked before anything runs: the image or guide, the options, the memory.

- :func:`as_image`: a photo in any form as ``(C, H, W)`` in [0, 1], with the model's channels;
- :func:`check_options`: the numeric options, each error naming its option;
- :func:`check_memory`: an untiled dream that cannot fit is refused before allocating;
- :func:`naming_size_options`: a model's refusal of a tile's or an octave's size names that option.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from probe.checks import check_count, check_number
from probe.dream.objective import DreamObjective
from probe.errors import ProbeUsageError
from probe.forward import ModelInputError, first_line
from probe.images import load_image
from probe.memory import HEADROOM, bytes_per_pixel, check_fits, format_bytes
from probe.models import LoadedModel

__all__ = ["ImageSource", "as_image", "check_memory", "check_options", "naming_size_options"]

ImageSource = torch.Tensor | str | Path | Image.Image | np.ndarray


def as_image(source: ImageSource, channels: int, param: str) -> torch.Tensor:
    """``source`` as a ``(channels, H, W)`` float tensor in [0, 1]; errors name ``param``."""
    if isinstance(source, torch.Tensor) and source.dim() == 4:
        if source.shape[0] != 1:
            raise ProbeUsageError(f"dream takes one image; got a batch of {source.shape[0]}", param=param)
        source = source[0]
    try:
        image = load_image(source, channels=channels)  # a model taking 4 channels keeps an RGBA file's alpha
    except ProbeUsageError as error:
        raise ProbeUsageError(str(error) if param == "image" else f"{param}: {error}", param=param) from None
    if image.dim() != 3:
        raise ProbeUsageError(f"an image must be (C, H, W); got shape {tuple(image.shape)}", param=param)
    if image.numel() and (image.min() < 0 or image.max() > 1):
        raise ProbeUsageError("images must hold values in [0, 1] (the model's normalization is applied later)", param=param)
    return image.float()


def check_options(steps: int, jitter: int, tile_size: int | None, frames: int, zoom: float, lr: float,
                  octaves: int, octave_scale: float, tile_margin: int | None) -> None:
    """Refuse numbers torch would fail on with a traceback (or loop on for ever), naming the argument."""
    for value, minimum, param in ((steps, 0, "steps"), (jitter, 0, "jitter"), (frames, 0, "frames"),
                                  (octaves, 1, "octaves")):
        check_count(value, param, minimum)
    check_number(lr, "lr", 0)
    check_number(octave_scale, "octave_scale", 1)
    check_number(zoom, "zoom")
    if tile_size is not None:
        check_count(tile_size, "tile", 8)
    if tile_margin is not None:
        check_count(tile_margin, "tile_margin", 0)
    if frames > 0 and zoom < 1.0:
        raise ProbeUsageError(f"zoom must be at least 1; got {zoom}", param="zoom")


def check_memory(scorer: DreamObjective, loaded: LoadedModel, height: int, width: int) -> None:
    """Refuse, before allocating, an untiled dream whose activations cannot fit in the free memory.

    Measured, not guessed: the activation memory per pixel of this objective's own forward pass at
    the model's input size (:func:`~probe.memory.bytes_per_pixel`), times the image's area. Dreams of
    at most four times the model's input area are not checked (two small passes would cost more).
    """
    base = loaded.preprocess.input_size
    if height * width <= 4 * base[0] * base[1]:
        return

    per_pixel = bytes_per_pixel(scorer.activations, loaded.preprocess.channels, loaded.device, base)
    if per_pixel is None:  # the layers do not run at the probe sizes: the dream itself will say why
        return
    check_fits(HEADROOM * per_pixel * height * width, loaded.device, f"a {height}x{width} dream without tiles",
               f"add --tile 512 (tile_size=512: memory then follows the tile, not the image), or a smaller --size "
               f"(about {format_bytes(HEADROOM * per_pixel)} per pixel)")  # fmt: skip




@contextlib.contextmanager
def naming_size_options(size: tuple[int, int], tile_size: int | None, margin: int, octaves: int) -> Iterator[None]:
    """A model's refusal of a tile's or an octave's size names ``tile`` or ``octaves``, the option that made it.

    Tiles (of varying sizes at the edges, plus their margin) and the smaller octaves feed the model other
    sizes than ``--size``: a model that takes one input size (ViT, MaxViT) dreams untiled, in one octave.
    """
    try:
        yield
    except ModelInputError as error:
        if tuple(error.shape[-2:]) == tuple(size) or error.param != "size":  # its own size, or no size helps
            raise
        seen = "x".join(map(str, error.shape[-2:]))
        why = first_line(error.original)
        if tile_size is not None:
            raise ProbeUsageError(
                f"the model cannot run on a {seen} tile ({why}); tiles of {tile_size} px with a {margin} px margin "
                "give it inputs of other sizes: leave --tile out (tile_size=None) for a model that takes one size",
                param="tile") from error
        if octaves > 1:
            raise ProbeUsageError(
                f"the model cannot run on the {seen} image of a smaller octave ({why}); a model that takes one "
                "input size dreams in one octave: --octaves 1 at its size", param="octaves") from error
        raise
