"""What a class score is for each kind of model output attribution explains.

- ``(N, K)``: class scores as they are (logits; a sigmoid or softmax head's probabilities; ``K = 1`` for a
  single score such as a regression);
- ``(N,)``: one score per image, read as ``(N, 1)``;
- ``(N, K, H, W)``: a dense prediction (segmentation: torchvision's FCN, DeepLabV3, LRASPP): the score of
  class ``k`` is its map summed over the positions, the field's usual choice (pytorch-grad-cam's
  ``SemanticSegmentationTarget`` over the whole image).

Outputs inside a tuple, a dict (``{"out": ...}``) or a transformers ``ModelOutput`` (``.logits``) are read by
:func:`probe.hooks.first_tensor` first.
"""

from __future__ import annotations

from typing import Any

import torch

from probe.errors import ProbeUsageError
from probe.hooks import first_tensor
from probe.inputs import Prediction, predict
from probe.models import LoadedModel

__all__ = ["class_scores", "is_dense", "prediction_of", "no_scores"]


def class_scores(output: Any) -> torch.Tensor | None:
    """``(N, K)`` class scores of a model's output (see the module docstring), or None for another shape."""
    tensor = first_tensor(output)
    if tensor is None:
        return None
    if tensor.dim() == 1:
        return tensor.unsqueeze(1)
    if tensor.dim() == 2:
        return tensor
    if tensor.dim() == 4:
        return tensor.sum(dim=(2, 3))
    return None


def is_dense(output: Any) -> bool:
    """Whether the output is a dense ``(N, K, H, W)`` prediction."""
    tensor = first_tensor(output)
    return tensor is not None and tensor.dim() == 4


def prediction_of(loaded: LoadedModel, output: Any) -> Prediction | None:
    """The :class:`Prediction` of a batch of one: for a dense output the summed scores, with each class's
    probability the mean over positions of its per-position softmax (the share of the image it takes); None
    for an output without class scores."""
    scores = class_scores(output)
    if scores is None or scores.shape[0] != 1 or scores.shape[1] < 1:
        return None
    if not is_dense(output):
        return predict(loaded, scores)
    tensor = first_tensor(output)
    assert tensor is not None
    logits = scores[0].detach().float().cpu()
    shares = tensor[0].detach().float().softmax(dim=0).mean(dim=(1, 2)).cpu()
    return Prediction(logits=logits, probabilities=shares, labels=tuple(loaded.label(i) for i in range(len(logits))))


def no_scores(name: str, output: Any) -> ProbeUsageError:
    """The one line for a model ``name`` whose output has no class scores (naming ``model``)."""
    tensor = first_tensor(output)
    shape = "no tensor" if tensor is None else f"shape {tuple(tensor.shape)}"
    return ProbeUsageError(
        f"attribution needs class scores: (1, K) logits, (1,) one score, or a (1, K, H, W) dense map (summed per "
        f"class); {name} returned {shape}; give a model whose forward returns one of those", param="model")
