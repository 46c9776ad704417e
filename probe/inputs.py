"""One input for one model: load, convert, crop and resize an image; read the model's prediction.

Shared by the commands that look at a single prediction (feature maps,
attribution). Images stay in ``[0, 1]``; the model normalizes them itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from probe.errors import ProbeUsageError
from probe.hooks import first_tensor
from probe.images import load_image, resize
from probe.models import LoadedModel

__all__ = ["Prediction", "center_crop", "model_input", "predict"]


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


@dataclass(frozen=True)
class Prediction:
    """The model's output for one image, when it is a vector of class scores.

    Attributes:
        logits: ``(K,)`` raw outputs.
        probabilities: ``(K,)`` softmax of the logits.
        labels: ``K`` class names (``"class 7"`` where unknown).
    """

    logits: torch.Tensor
    probabilities: torch.Tensor
    labels: tuple[str, ...]

    @property
    def index(self) -> int:
        """The predicted class (argmax)."""
        return int(self.logits.argmax())

    @property
    def label(self) -> str:
        """The predicted class name."""
        return self.labels[self.index]

    def top(self, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` most probable classes as ``{"index", "label", "probability"}``, best first."""
        values, indices = self.probabilities.topk(min(k, self.probabilities.numel()))
        return [{"index": int(i), "label": self.labels[int(i)], "probability": float(p)} for p, i in zip(values, indices)]

    def describe(self, index: int) -> str:
        """What the model says of class ``index``, e.g. ``"41.3%"`` (its probability)."""
        return f"{100 * float(self.probabilities[index]):.1f}%"

    def __str__(self) -> str:
        return f"{self.label} ({self.describe(self.index)})"

    def __repr__(self) -> str:
        return f"Prediction({self}, {len(self.labels)} classes)"


def predict(loaded: LoadedModel, output: Any) -> Prediction | None:
    """Turn the model's output for a batch of one into a :class:`Prediction` (None if not ``(1, K)``)."""
    logits = first_tensor(output)
    if logits is None or logits.dim() != 2 or logits.shape[0] != 1 or logits.shape[1] < 1:
        return None
    logits = logits[0].detach().float().cpu()
    labels = tuple(loaded.label(i) for i in range(logits.numel()))
    return Prediction(logits=logits, probabilities=logits.softmax(0), labels=labels)
