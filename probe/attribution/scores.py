"""The score attribution explains, read from the model's output by :mod:`probe.outputs`.

- ``(N, K)``: class scores as they are (logits; a sigmoid or softmax head's probabilities; ``K = 1`` for a
  single score such as a regression);
- ``(N,)``: one score per image, read as ``(N, 1)``;
- ``(N, K, H, W)``: a dense prediction (segmentation: torchvision's FCN, DeepLabV3, LRASPP; Segformer at a
  quarter of the input's resolution): the score of class ``k`` is its map summed over the positions, the
  field's usual choice (pytorch-grad-cam's ``SemanticSegmentationTarget`` over the whole image).

An output without class scores (an embedding, a base model's features, a depth map, detections, a dict of
several tensors none named ``logits`` or ``out``) is refused in one line naming ``model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeUsageError
from probe.outputs import Output, class_scores, no_class_scores, read_output

__all__ = ["attribution_scores", "is_dense", "no_scores"]


def attribution_scores(output: Any, reading: str = "auto") -> torch.Tensor:
    """``(N, K)`` the scores captum differentiates, from a batch's output (see the module docstring); an
    output already checked by :func:`probe.outputs.prediction_of` (no values looked at: no device sync);
    ``reading``: what the user says the output is (:data:`probe.outputs.OUTPUT_READINGS`, default ``"auto"``).

    Raises:
        ProbeUsageError: the output holds no class scores (naming ``model``).
    """
    read = read_output(output, values=False, reading=reading)
    if read.tensor is None or not read.has_classes:
        raise no_scores("the model", output)
    return class_scores(read.tensor, "sum")


def is_dense(output: Any) -> bool:
    """Whether the output's class scores (or its :func:`~probe.outputs.read_output`) are a dense ``(N, K, H, W)``
    map."""
    read = output if isinstance(output, Output) else read_output(output, values=False)
    return read.kind in ("dense", "dense-score")


def no_scores(name: str, output: Any, module: nn.Module | None = None,
              image: Sequence[int] | None = None) -> ProbeUsageError:
    """The one line for a model ``name`` (``module``: tells a transformers base model; ``image``: the input's
    shape ``(N, C, H, W)``, tells a picture) whose output has no class scores, naming ``model``."""
    read = output if isinstance(output, Output) else read_output(output, 1, module, image=image)
    return no_class_scores(name, read, "model",
                           "attribution explains a class score: wrap the model so that forward returns the scores")
