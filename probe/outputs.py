"""What a model's output says: the one reader of outputs for predictions and class scores.

``probe activations`` (its prediction), attribution (the score it explains), class objectives and the reports
read a model's output through :func:`read_output`, which gives it one of these kinds:

Class scores (a prediction, a class objective, a target to explain):

- ``"logits"``: ``(N, K)``, ``K >= 2``; probabilities are their softmax;
- ``"softmax"`` / ``"sigmoid"``: ``(N, K)`` from a forward that ends in ``softmax`` (probabilities as they
  are) or ``sigmoid`` (multi-label, or binary with ``K = 1``: each class its own probability), read from the
  output's autograd node, through dtype casts and reshapes, when the forward ran with gradients on;
- ``"score"``: ``(N, 1)`` or ``(N,)``, one score per image (a regression): no probability;
- ``"dense"``: ``(N, K, H, W)``, ``K >= 2``, per-position class logits (a segmentation model's, at any
  resolution: torchvision's FCN at the input's, Segformer's at a quarter of it); a class's score is its map
  averaged (class objectives) or summed (attribution) over the positions; its probability, its mean
  per-position softmax, is its share of the image;
- ``"dense-score"``: ``(N, 1, H, W)``, one map per image, scored by its mean (or sum): no probability.

Not class scores (class objectives and attribution refuse them in one line; ``probe activations`` describes
them instead of a prediction):

- ``"embedding"``: ``(N, D)`` rows of unit L2 norm (an L2-normalized embedding: its dimensions are not classes);
- ``"features"``: a model without a head: a transformers base model (``BaseModelOutputWithPooling``'s
  ``last_hidden_state`` and ``pooler_output``, or its ``return_dict=False`` tuple), a timm model made with
  ``num_classes=0``, a torchvision model whose ``fc`` or ``classifier`` is ``nn.Identity``;
- ``"image"``: ``(N, C, H', W')`` a picture, the output of an image-to-image model (an autoencoder's
  reconstruction, a super-resolution net's or a generator's image): its last operation is a ``tanh`` or a
  ``pixel_shuffle`` (read from its autograd node), or, where the input is known, it is larger than the input, or
  it has the input's shape and colour channels (3 or 4) after a ``sigmoid``. A segmentation's logits are none of
  these. Where the shape cannot tell (an autoencoder whose last layer is a plain convolution gives what a
  3-class segmentation of an RGB image gives: the input's channels at its size, or 3 of a grey image's 1, with no
  picture-making operation last), the output is read as a dense prediction and :attr:`Output.assumed` says so,
  and how to say otherwise: ``output="image"`` (see :data:`OUTPUT_READINGS`);
- ``"depth"``: ``predicted_depth`` ``(N, H, W)`` of a depth-estimation model (DPT, GLPN);
- ``"outputs"``: a dict of several tensors none of which is named ``logits`` or ``out`` (torchvision's FPN
  backbone's maps, two heads): which one holds the class scores is not known;
- ``"sequence"``: ``(T, N, C)``, a time-major sequence whose dim 1 is the batch (an OCR CRNN's per-step CTC
  scores, an ``nn.LSTM`` without ``batch_first``), told where the batch is known;
- ``"detections"``: a list of per-image dicts (torchvision's detection models in eval mode), or a tensor
  without a row per image;
- ``"other"``: any other shape (``(N, T, D)`` tokens), or no tensor (a dataclass of outputs).

What the user says the output is (``output=`` of :func:`probe.feature_maps` and :func:`probe.attribute`, the
commands' ``--output``; :data:`OUTPUT_READINGS`) overrides the shape rules above, as captum and zennit leave the
score to the user: ``"image"`` reads a 4-D output as a picture, ``"classes"`` reads a picture or an embedding as
class scores.

Where the tensor is found: the output itself; a dict's (or ``ModelOutput``'s) ``logits``, then ``out``
(torchvision's segmentation models), then its only tensor; a tuple's or list's first tensor (``(logits,
aux_logits)``, a namedtuple), searched depth first, but where that first tensor is an ``(N, D)`` embedding that a
later ``(N, K)`` item of the tuple was computed from (``return features, self.fc(features)``, read from the
autograd graph when the forward ran with gradients on), that later item: the head's scores.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from probe.choices import OUTPUT_READINGS
from probe.gallery.numbers import percentage
from probe.errors import ProbeUsageError
from probe.rewrites import tensors_in

__all__ = ["CLASS_KINDS", "OUTPUT_READINGS", "Output", "Prediction", "check_reading", "class_scores", "head_kind",
           "no_class_scores", "prediction_of", "describe", "descends", "output_tensor", "read_output", "tensor_kind"]

CLASS_KINDS: frozenset[str] = frozenset({"logits", "softmax", "sigmoid", "score", "dense", "dense-score"})
"""The kinds whose tensor holds class scores (see the module docstring)."""

_CLASS_KEYS = ("logits", "out")
"""A dict's keys that hold class scores, in the order they are looked for."""

_PASSING = ("ToCopy", "Clone", "View", "Reshape", "UnsafeView", "Squeeze", "Unsqueeze", "Select", "Slice",
            "Alias", "Expand", "Permute", "Transpose", "T")
"""Autograd nodes that only move or cast values: a head's last operation is looked for behind them."""

_PICTURE_OPS = ("Tanh", "PixelShuffle")
"""Last operations that make a picture, never a segmentation's logits (a generator's or autoencoder's ``tanh``, a
super-resolution net's ``pixel_shuffle``)."""

_UNIT_NORM = 1e-3
"""Rows whose L2 norms all lie within this of 1 are an L2-normalized embedding, not logits."""


@dataclass(frozen=True)
class Output:
    """A model's output, read once (see the module docstring).

    Attributes:
        kind: one of the kinds of the module docstring.
        tensor: the tensor the kind is about (``(N, K)`` scores, ``(N,)``, ``(N, K, H, W)``, ...), None when
            the output holds none that means one thing.
        what: the output in words, for messages (``"a dict of 2 tensors ('species' (1, 3), 'age' (1, 2))"``).
        assumed: where the shape could not tell what the output is (a dense map that may be a picture), what
            it was read as and how to say otherwise, in one sentence for people; ``""`` where nothing was assumed.
    """

    kind: str
    tensor: torch.Tensor | None
    what: str
    assumed: str = ""

    @property
    def has_classes(self) -> bool:
        """Whether :attr:`tensor` holds class scores."""
        return self.kind in CLASS_KINDS

    def scores(self, reduce: str = "mean") -> torch.Tensor:
        """``(N, K)`` class scores (see :func:`class_scores`); only for :attr:`has_classes`."""
        assert self.tensor is not None and self.has_classes
        return class_scores(self.tensor, reduce)


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'AEIOU' else 'a'} {noun}"


def _describe(value: Any) -> str:
    """``value`` in words: its type and the shapes of its tensors (the first four)."""
    if isinstance(value, torch.Tensor):
        return f"shape {_shape(value)}"
    if isinstance(value, Mapping):
        items = [(key, item) for key, item in value.items() if isinstance(item, torch.Tensor)]
        listed = ", ".join(f"{key!r} {_shape(item)}" for key, item in items[:4]) + (", ..." if len(items) > 4 else "")
        return f"{_a(type(value).__name__)} of {len(items)} tensor(s) ({listed})"
    if isinstance(value, (tuple, list)):
        tensors = list(tensors_in(value))
        listed = ", ".join(_shape(t) for t in tensors[:4]) + (", ..." if len(tensors) > 4 else "")
        return f"{_a(type(value).__name__)} of {len(tensors)} tensor(s) ({listed})"
    return f"{_a(type(value).__name__)} (no tensor cnn-probe reads)"


def _last_operation(tensor: torch.Tensor) -> str | None:
    """The autograd name of the last operation that produced ``tensor`` behind dtype casts and reshapes
    (``"Sigmoid"``, ``"Convolution"``, ``"Tanh"``), None when it carries no graph."""
    node = getattr(tensor, "grad_fn", None)
    for _ in range(16):
        if node is None:
            return None
        name = type(node).__name__.removesuffix("Backward0").removesuffix("Backward1")
        if name not in _PASSING:
            return name
        node = next((parent for parent, _ in node.next_functions if parent is not None), None)
    return None


def head_kind(tensor: torch.Tensor) -> str:
    """``"sigmoid"``, ``"softmax"`` or ``"logits"``: the last operation that produced ``tensor`` (behind dtype
    casts and reshapes), read from its autograd node; ``"logits"`` when it carries no graph."""
    name = _last_operation(tensor) or ""
    if name.startswith("Sigmoid"):
        return "sigmoid"
    if name.startswith("Softmax"):
        return "softmax"
    return "logits"


def _picture(tensor: torch.Tensor, image: Sequence[int] | None) -> bool:
    """Whether a 4-D output is a picture, not a dense prediction (the ``"image"`` kind of the module docstring);
    ``image``: the input's shape ``(N, C, H, W)``, None where it is not known."""
    last = _last_operation(tensor) or ""
    if last.startswith(_PICTURE_OPS):
        return True
    if image is None or len(image) != 4:
        return False
    (height, width), (in_height, in_width) = tensor.shape[-2:], tuple(image[-2:])
    if height >= in_height and width >= in_width and (height, width) != (in_height, in_width):
        return True  # upsampled beyond the input: a super-resolution or a generator, no segmentation
    same = tuple(tensor.shape[1:]) == tuple(image[1:])
    return same and tensor.shape[1] in (3, 4) and last.startswith("Sigmoid")


def _unit_norm(tensor: torch.Tensor) -> bool:
    norms = tensor.detach().float().norm(dim=1)
    return bool(torch.isfinite(norms).all()) and bool(((norms - 1).abs() < _UNIT_NORM).all())


def tensor_kind(tensor: torch.Tensor, batch: int | None = None, *, values: bool = True,
                image: Sequence[int] | None = None) -> str:
    """The kind of one output tensor (see the module docstring).

    Args:
        tensor: the tensor, with its batch dimension first.
        batch: N, the number of images the model got; a tensor without that many rows is ``"detections"``.
            Default None: not checked.
        values: look at the values too (an embedding's unit norms, which costs a device sync); default True.
        image: the input's shape ``(N, C, H, W)``, which tells a picture larger than the input or with its shape
            (``"image"``) from a dense prediction; default None: told by the last operation alone.
    """
    if batch is not None and tensor.dim() == 3 and tensor.shape[0] != batch and tensor.shape[1] == batch:
        return "sequence"
    if tensor.dim() == 0 or (batch is not None and tensor.shape[0] != batch):
        return "detections"
    if tensor.dim() in (1, 2):
        head = head_kind(tensor)
        if head != "logits":
            return head
        if tensor.dim() == 1 or tensor.shape[1] == 1:
            return "score"
        return "embedding" if values and _unit_norm(tensor) else "logits"
    if tensor.dim() == 4:
        if _picture(tensor, image):
            return "image"
        return "dense" if tensor.shape[1] > 1 else "dense-score"
    return "other"


_HEADS = ("fc", "classifier", "head")
"""The attributes torchvision's and timm's models keep their classifier in (``nn.Identity`` once removed)."""


def _headless(module: nn.Module | None) -> bool:
    """A model without a classifier, whose output is features: a transformers base model (``ViTModel``: its
    own ``base_model``, and not named ``XForY`` as task models are), a timm model made with ``num_classes=0``, or one whose ``fc`` / ``classifier`` /
    ``head`` was replaced by ``nn.Identity`` (the feature-extractor idiom)."""
    if module is None:
        return False
    transformers = sys.modules.get("transformers")  # never imported just to ask
    if transformers is not None and isinstance(module, transformers.PreTrainedModel):  # its own base model, and
        # not a task model (XForY) whose base_model_prefix names no submodule (DepthAnythingForDepthEstimation)
        return getattr(module, "base_model", None) is module and "For" not in type(module).__name__
    if getattr(module, "num_classes", None) == 0:
        return True
    return any(isinstance(getattr(module, name, None), nn.Identity) for name in _HEADS)


def check_reading(reading: str) -> str:
    """``reading`` if it is one of :data:`OUTPUT_READINGS`.

    Raises:
        ProbeUsageError: (naming ``output``) any other value.
    """
    if not isinstance(reading, str) or reading not in OUTPUT_READINGS:
        raise ProbeUsageError(f"output must be one of {', '.join(OUTPUT_READINGS)} (what the model's output is: "
                              f"read by its shape, class scores, or a picture); got {reading!r}", param="output")
    return reading


def read_output(output: Any, batch: int | None = None, module: nn.Module | None = None, *,
                values: bool = True, image: Sequence[int] | None = None, reading: str = "auto") -> Output:
    """Read what a model returned (see the module docstring).

    Args:
        output: the forward pass's return value: a tensor, a dict or ``ModelOutput``, a tuple, a list.
        batch: N, the images the model got (tells detections from class scores); default None: not checked.
        module: the model, which tells a model without a head (a transformers base model, timm's
            ``num_classes=0``, an ``nn.Identity`` classifier) from a classifier; optional.
        values: look at the values too (:func:`tensor_kind`: an embedding's unit norms); default True.
        image: the input's shape ``(N, C, H, W)`` (:func:`tensor_kind`: tells a picture); default None.
        reading: what the user says the output is, one of :data:`OUTPUT_READINGS`; default ``"auto"``: its
            shape tells, and :attr:`Output.assumed` says where it could not.

    Raises:
        ProbeUsageError: (naming ``output``) ``reading`` is not a known one, or names a kind the output cannot be
            (``"image"`` for an output without a 4-D tensor, ``"classes"`` for detections or a dict of maps).
    """
    read = _read(output, batch, module, values=values, image=image)
    if check_reading(reading) == "auto":
        if read.kind in ("dense", "dense-score") and _may_be_picture(read.tensor, image):
            return replace(read, assumed=_ASSUMED.format(shape=_shape(read.tensor), classes=read.tensor.shape[1]))
        return read
    return _as_said(read, reading)


_ASSUMED = ("read as per-pixel scores of {classes} class(es): the output {shape} has the input's size and a "
            "picture's channels, so its shape cannot tell a segmentation from an image-to-image model's "
            "picture (an autoencoder ending in a convolution); if it is a picture, say output='image' (--output "
            "image); output='classes' (--output classes) says it is per-pixel scores, and this note goes")
"""What :attr:`Output.assumed` says of a dense output that may be a picture."""


def _may_be_picture(tensor: torch.Tensor | None, image: Sequence[int] | None) -> bool:
    """Whether a dense ``(N, K, H, W)`` output has what a picture made of the ``(N, C, H, W)`` input has: the
    input's ``H x W`` and its channels ``K = C`` (an autoencoder's, a denoiser's), or 3 of a grey image's 1 (a
    colorization's)."""
    if tensor is None or tensor.dim() != 4 or image is None or len(image) != 4:
        return False
    channels = (int(tensor.shape[1]), int(image[1]))
    return tuple(tensor.shape[-2:]) == tuple(image[-2:]) and (channels[0] == channels[1] or channels == (3, 1))


def _as_said(read: Output, reading: str) -> Output:
    """``read`` as the user says it is (``reading`` ``"classes"`` or ``"image"``), or the one line why it cannot be."""
    tensor, said = read.tensor, f"{read.what}, read as {'a picture' if reading == 'image' else 'class scores'} " \
                                f"(output={reading!r})"
    if reading == "image":
        if tensor is None or tensor.dim() != 4:
            raise ProbeUsageError(f"output='image' reads a (N, C, H, W) picture, but the model returned {read.what}",
                                  param="output")
        return Output("image", tensor, said)
    if read.has_classes:
        return Output(read.kind, tensor, said)
    if read.kind == "image":
        return Output("dense" if tensor.shape[1] > 1 else "dense-score", tensor, said)
    if read.kind == "embedding":
        return Output("logits", tensor, said)
    raise ProbeUsageError(f"output='classes' reads (N, K) scores, (N,) one score or a (N, K, H, W) map, but the model "
                          f"returned {read.what}: {why_no_scores(read.kind)}", param="output")


def _read(output: Any, batch: int | None, module: nn.Module | None, *, values: bool,
          image: Sequence[int] | None) -> Output:
    """:func:`read_output` by the shape rules alone (see the module docstring)."""
    what = _describe(output)
    kind = functools.partial(tensor_kind, batch=batch, values=values, image=image)
    if _headless(module) and not (isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor)):
        return Output("features", None, what)
    if isinstance(output, Mapping):
        for key in _CLASS_KEYS:
            if isinstance(output.get(key), torch.Tensor):
                return Output(kind(output[key]), output[key], f"{what}, read by its {key!r}")
        if isinstance(output.get("predicted_depth"), torch.Tensor):
            return Output("depth", output["predicted_depth"], what)
        if isinstance(output.get("last_hidden_state"), torch.Tensor):
            return Output("features", None, what)
        tensors = [item for item in output.values() if isinstance(item, torch.Tensor)]
        if len(tensors) == 1:
            return Output(kind(tensors[0]), tensors[0], what)
        return Output("outputs" if tensors else "other", None, what)
    if isinstance(output, (tuple, list)):
        if output and all(isinstance(item, Mapping) for item in output):
            keys = ", ".join(map(str, output[0]))
            return Output("detections", None, f"a {type(output).__name__} of {len(output)} per-image dict(s) ({keys})")
    tensor = output if isinstance(output, torch.Tensor) else next(tensors_in(output), None)
    if tensor is None:
        return Output("other", None, what)
    if isinstance(output, (tuple, list)):
        head = _head_on(tensor, output)
        if head is not None:
            return Output(kind(head), head, f"{what}, read by the scores computed from its first")
    return Output(kind(tensor), tensor, what)


def _head_on(first: torch.Tensor, items: Sequence[Any]) -> torch.Tensor | None:
    """The first ``(N, K)`` tensor among ``items`` computed from ``first``, an ``(N, D)`` embedding (its autograd
    node is one of the later tensor's ancestors, and ``K != D``): ``(features, logits)``. None where there is
    none, or no graph; ``(logits, logits.softmax(1))`` keeps its logits (the same width: no head between)."""
    node = getattr(first, "grad_fn", None)
    if node is None or first.dim() != 2:
        return None
    for item in items:
        if (isinstance(item, torch.Tensor) and item is not first and item.dim() == 2
                and item.shape[0] == first.shape[0] and item.shape[1] != first.shape[1]):  # (logits, softmax): first
            if descends(item, node):
                return item
    return None


def _order(node: Any) -> int | None:
    """An autograd node's sequence number (nodes made later in a thread have larger ones), None where it has none."""
    number = getattr(node, "_sequence_nr", None)
    return number() if callable(number) else None


def descends(tensor: torch.Tensor, ancestor: Any, limit: int = 100_000) -> bool:
    """Whether autograd node ``ancestor`` is in ``tensor``'s graph (visiting at most ``limit`` nodes; nodes made
    before ``ancestor`` in the same thread are not searched behind, as none of them can lead to it)."""
    stack, seen, floor = [tensor.grad_fn], set(), _order(ancestor)
    while stack and len(seen) < limit:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        if node is ancestor:
            return True
        seen.add(id(node))
        number = _order(node)
        if floor is not None and number is not None and number < floor:
            continue
        stack.extend(parent for parent, _ in node.next_functions)
    return False


def output_tensor(output: Any, module: nn.Module | None = None) -> torch.Tensor | None:
    """The tensor a model's output stands for as the layer ``"output"``: its class scores where it has them, else
    the tensor its kind is about (an embedding, a depth map); None where it holds no tensor known to be the
    prediction (a dict of several tensors, detections, a base model's features). Shapes only: no device sync."""
    return read_output(output, None, module, values=False).tensor


def class_scores(tensor: torch.Tensor, reduce: str = "mean") -> torch.Tensor:
    """``(N, K)`` class scores of a class-score tensor: ``(N, K)`` as it is, ``(N,)`` as ``(N, 1)``, a dense
    ``(N, K, H, W)`` averaged (``reduce="mean"``, default: class objectives) or summed (``"sum"``: attribution)
    over its positions."""
    if tensor.dim() == 1:
        return tensor.unsqueeze(1)
    if tensor.dim() == 4:
        return tensor.flatten(2).mean(2) if reduce == "mean" else tensor.flatten(2).sum(2)
    return tensor


_NAMES = {"embedding": "an embedding", "image": "an image", "sequence": "a time-major sequence", "features": "features of a model without a head", "depth": "a depth map",
          "outputs": "several outputs", "detections": "detections", "other": "no class scores"}
"""The kinds without class scores in a few words."""

_WHY = {
    "embedding": "its rows have unit L2 norm, an embedding, whose dimensions are not classes",
    "features": "a model without a head gives features, not classes (a transformers *ForImageClassification "
                "model, or timm's or torchvision's with its classifier, has one)",
    "depth": "a depth map, no classes",
    "image": "a picture (an autoencoder's reconstruction, a super-resolution or a generator's image), not class "
             "scores",
    "outputs": "none of its tensors is named 'logits' or 'out', so none is known to hold class scores",
    "sequence": "per-step scores of a time-major sequence (T, N, C), whose dim 1 is the batch (an OCR CRNN's CTC "
                "head), not a row of class scores per image",
    "detections": "detections, not a row of class scores per image",
    "other": "no class scores, which are (N, K) logits, (N,) one score or a (N, K, H, W) dense map",
}


def describe(output: Output) -> str:
    """An output without class scores in a few words (``probe activations`` shows it instead of a
    prediction), e.g. ``"a depth map, a DepthEstimatorOutput of 1 tensor ('predicted_depth' (1, 32, 32)):
    mean 0.52 (min 0.1, max 0.91)"``."""
    text = f"{_NAMES.get(output.kind, _NAMES['other'])}, {output.what}"
    tensor = output.tensor
    if tensor is None or not tensor.is_floating_point() or tensor.numel() == 0:
        return text
    values = tensor.detach().float()
    return f"{text}: mean {values.mean():.4g} (min {values.min():.4g}, max {values.max():.4g})"


def why_no_scores(kind: str) -> str:
    """Why an output of ``kind`` holds no class scores, in a few words (``"a depth map, no classes"``)."""
    return _WHY.get(kind, _WHY["other"])


def no_class_scores(name: str, output: Output, param: str, instead: str) -> ProbeUsageError:
    """The one line for ``name``'s output without class scores, naming ``param``; ``instead`` says what to do."""
    return ProbeUsageError(f"{name} returned {output.what}: {why_no_scores(output.kind)}; {instead}", param=param)


_MEASURES = {"logits": "probability", "softmax": "probability", "sigmoid": "sigmoid probability",
             "dense": "share of the image"}
"""What :attr:`Prediction.probabilities` are, per kind; the kinds not listed have none (one score)."""


@dataclass(frozen=True)
class Prediction:
    """The model's class scores for one image (:func:`prediction_of`).

    Attributes:
        logits: ``(K,)`` the class scores: raw outputs (a dense map's summed per class).
        probabilities: ``(K,)`` per kind: the softmax of logits, a softmax or sigmoid head's own outputs, a
            dense map's mean per-position softmax (each class's share of the image); 1 for one score.
        labels: ``K`` class names (``"class 7"`` where unknown).
        kind: the output's kind (:mod:`probe.outputs`): ``"logits"`` (default), ``"softmax"``, ``"sigmoid"``,
            ``"score"`` or ``"dense-score"`` (one output, no probability), ``"dense"``.
        assumed: what the output was assumed to be where its shape could not tell (:attr:`Output.assumed`: a
            dense map that may be a picture), and how to say otherwise; ``""`` where nothing was assumed.
    """

    logits: torch.Tensor
    probabilities: torch.Tensor
    labels: tuple[str, ...]
    kind: str = "logits"
    assumed: str = ""

    @property
    def index(self) -> int:
        """The predicted class (argmax)."""
        return int(self.logits.argmax())

    @property
    def label(self) -> str:
        """The predicted class name."""
        return self.labels[self.index]

    @property
    def measure(self) -> str | None:
        """What :attr:`probabilities` are (``"probability"``, ``"sigmoid probability"``, ``"share of the
        image"``), None for one score, which has no probability."""
        return _MEASURES.get(self.kind)

    def top(self, k: int = 5) -> list[dict[str, Any]]:
        """The ``k`` most probable classes as ``{"index", "label", "probability"}``, best first; one score as
        ``[{"index": 0, "label", "score"}]``."""
        if self.measure is None:
            return [{"index": 0, "label": self.labels[0], "score": float(self.logits[0])}]
        values, indices = self.probabilities.topk(min(k, self.probabilities.numel()))
        return [{"index": int(i), "label": self.labels[int(i)], "probability": float(p)} for p, i in zip(values, indices)]

    def describe(self, index: int) -> str:
        """What the model says of class ``index``, in the words of its kind of head: ``"41.3%"``,
        ``"sigmoid 97.0%"``, ``"12.5% of the image"``, ``"score 0.063 (one output, no probability)"``."""
        if self.kind == "score":
            return f"score {float(self.logits[index]):.4g} (one output, no probability)"
        if self.kind == "dense-score":
            return f"map summed to {float(self.logits[index]):.4g} (one map, no probability)"
        percent = f"{percentage(100 * float(self.probabilities[index]))}%"
        if self.kind == "sigmoid":
            return f"sigmoid {percent}"
        return f"{percent} of the image" if self.kind == "dense" else percent

    def __str__(self) -> str:
        if self.measure is None:
            return f"{self.label}: {self.describe(self.index)}"
        return f"{self.label} ({self.describe(self.index)})"

    def __repr__(self) -> str:
        return f"Prediction({self}, {len(self.labels)} classes)"


def prediction_of(loaded: Any, output: Any) -> Prediction | None:
    """The :class:`Prediction` of a batch of one, or None for an output without class scores.

    Args:
        loaded: the :class:`~probe.models.LoadedModel` (its labels, its module).
        output: what its forward returned for one image, or its :func:`read_output`; when it carries its graph
            (the forward ran with gradients on), its last operation tells a sigmoid or softmax head.
    """
    read = output if isinstance(output, Output) else read_output(output, 1, loaded.module)
    if not read.has_classes:
        return None
    tensor = read.tensor
    assert tensor is not None
    logits = class_scores(tensor, "sum")[0].detach().float().cpu()
    labels = tuple(loaded.label(i) for i in range(len(logits)))
    if read.kind == "dense":
        probabilities = tensor[0].detach().float().softmax(dim=0).mean(dim=(1, 2)).cpu()
    elif read.kind in ("sigmoid", "softmax"):
        probabilities = logits.clamp(0, 1)
    elif read.kind in ("score", "dense-score"):
        probabilities = torch.ones(1)
    else:
        probabilities = logits.softmax(0)
    return Prediction(logits=logits, probabilities=probabilities, labels=labels, kind=read.kind, assumed=read.assumed)
