"""What a class score is for each kind of model output attribution explains.

- ``(N, K)``: class scores as they are (logits; a sigmoid or softmax head's probabilities; ``K = 1`` for a
  single score such as a regression);
- ``(N,)``: one score per image, read as ``(N, 1)``;
- ``(N, K, H, W)``: a dense prediction (segmentation: torchvision's FCN, DeepLabV3, LRASPP): the score of
  class ``k`` is its map summed over the positions, the field's usual choice (pytorch-grad-cam's
  ``SemanticSegmentationTarget`` over the whole image).

Outputs inside a tuple, a dict (``{"out": ...}``) or a transformers ``ModelOutput`` (``.logits``) are read by
:func:`probe.hooks.first_tensor` first.

The probabilities shown with a prediction (:class:`Scores`) follow the head's last operation, read from the
output's autograd node: logits get a softmax; a forward that ends in ``softmax`` already gives them; one that
ends in ``sigmoid`` (a multi-label head) gives each class its own probability, not a softmax of
probabilities; a single output is a score with no probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from probe.errors import ProbeUsageError
from probe.hooks import first_tensor
from probe.inputs import Prediction
from probe.models import LoadedModel

__all__ = ["Scores", "class_scores", "head_kind", "is_dense", "prediction_of", "no_scores"]


@dataclass(frozen=True)
class Scores(Prediction):
    """A :class:`Prediction` that knows what its probabilities are.

    Attributes:
        kind: ``"logits"`` (probabilities: their softmax), ``"softmax"`` (the model's own softmax),
            ``"sigmoid"`` (each class's own probability, multi-label), ``"score"`` (one output: no
            probability; ``probabilities`` holds 1), ``"dense"`` (a summed ``(K, H, W)`` map; each
            class's mean per-position softmax, its share of the image).
    """

    kind: str = "logits"

    def describe(self, index: int) -> str:
        """What the model says of class ``index``, in the words of its kind of head."""
        if self.kind == "score":
            return f"score {float(self.logits[index]):.4g} (one output, no probability)"
        if self.kind == "sigmoid":
            return f"sigmoid {100 * float(self.probabilities[index]):.1f}%"
        if self.kind == "dense":
            return f"{100 * float(self.probabilities[index]):.1f}% of the image"
        return super().describe(index)

    def __str__(self) -> str:
        if self.kind == "score":
            return f"{self.label}: {self.describe(self.index)}"
        return super().__str__()


def head_kind(output: Any) -> str:
    """``"sigmoid"``, ``"softmax"`` or ``"logits"``: the last operation of a graph-carrying output (a forward
    run with gradients on); ``"logits"`` when it carries no graph."""
    tensor = first_tensor(output)
    node = type(getattr(tensor, "grad_fn", None)).__name__
    if node.startswith("Sigmoid"):
        return "sigmoid"
    if node.startswith("Softmax"):
        return "softmax"
    return "logits"


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


def prediction_of(loaded: LoadedModel, output: Any) -> Scores | None:
    """The :class:`Scores` of a batch of one (see the module docstring), or None for an output without class
    scores. ``output`` may carry its graph (its last operation then tells a sigmoid or softmax head)."""
    scores = class_scores(output)
    if scores is None or scores.shape[0] != 1 or scores.shape[1] < 1:
        return None
    tensor = first_tensor(output)
    assert tensor is not None
    logits = scores[0].detach().float().cpu()
    labels = tuple(loaded.label(i) for i in range(len(logits)))
    kind = "dense" if is_dense(output) else head_kind(output)
    if kind == "dense":
        probabilities = tensor[0].detach().float().softmax(dim=0).mean(dim=(1, 2)).cpu()
    elif kind in ("sigmoid", "softmax"):
        probabilities = logits.clamp(0, 1)
    elif len(logits) == 1:
        kind, probabilities = "score", torch.ones(1)
    else:
        probabilities = logits.softmax(0)
    return Scores(logits=logits, probabilities=probabilities, labels=labels, kind=kind)


def no_scores(name: str, output: Any) -> ProbeUsageError:
    """The one line for a model ``name`` whose output has no class scores (naming ``model``)."""
    tensor = first_tensor(output)
    shape = "no tensor" if tensor is None else f"shape {tuple(tensor.shape)}"
    return ProbeUsageError(
        f"attribution needs class scores: (1, K) logits, (1,) one score, or a (1, K, H, W) dense map (summed per "
        f"class); {name} returned {shape}; give a model whose forward returns one of those", param="model")
