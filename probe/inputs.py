"""One input for one model: load, convert, crop and resize an image.

Shared by the commands that look at a single prediction (feature maps,
attribution; :mod:`probe.outputs` reads the prediction). Images stay in ``[0, 1]``; the model normalizes them
itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from probe.errors import ProbeUsageError
from probe.images import load_image, resize
from probe.models import LoadedModel

__all__ = ["center_crop", "model_input"]


def center_crop(image: torch.Tensor, aspect: float) -> torch.Tensor:
    """Crop ``(C, H, W)`` around its centre to the aspect ratio ``aspect`` = W / H."""
    height, width = image.shape[-2:]
    if width / height > aspect:
        keep = max(1, round(height * aspect))
        left = (width - keep) // 2
        return image[..., :, left : left + keep]
    keep = max(1, round(width / aspect))
    top = (height - keep) // 2
    return image[..., top : top + keep, :]


def model_input(
    loaded: LoadedModel,
    image: str | Path | np.ndarray | Image.Image | torch.Tensor,
    size: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """The ``(1, C, H, W)`` batch ``loaded`` sees for ``image``, on its device, values in [0, 1].

    Args:
        loaded: the model; its channel count and input size apply.
        image: anything :func:`probe.load_image` reads (file, ``skimage:NAME``,
            ``digits:3``, array, PIL image), or a ``(C, H, W)`` / ``(1, C, H, W)`` tensor.
        size: ``(H, W)``, or an int for a square; default the model's input size.
            The image is centre-cropped to that aspect ratio, then resized.

    Raises:
        ProbeUsageError: a batch of more than one image, or an unreadable image.
    """
    if isinstance(image, torch.Tensor) and image.dim() == 4:
        if image.shape[0] != 1:
            raise ProbeUsageError(f"expected one image (1, C, H, W); got a batch of shape {tuple(image.shape)}", param="image")
        image = image[0]
    tensor = load_image(image, channels=loaded.preprocess.channels)  # a model taking 4 channels keeps RGBA's alpha
    target = loaded.preprocess.input_size if size is None else size
    target = (target, target) if isinstance(target, int) else (int(target[0]), int(target[1]))
    tensor = resize(center_crop(tensor, target[1] / target[0]), target)
    return tensor.unsqueeze(0).to(loaded.device)
