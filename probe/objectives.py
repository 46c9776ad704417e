"""Objectives: what an image should make the network do, as a score to MAXIMIZE.

Sign convention (the same everywhere in cnn-probe): an objective is a score,
higher is better; :func:`probe.maximize` climbs it. Penalties (:func:`l1`,
:func:`l2`, :func:`total_variation`) are positive numbers that you subtract::

    from probe import objectives as O
    O.channel("conv2", 7)                      # degree of activation of filter 7
    O.class_logit(3) - 0.3 * O.l1()            # a class image under the L1 constraint
    O.channel("conv2", 7) + 10 * O.diversity("conv2")

Objectives combine with ``+``, ``-``, ``*`` and ``/`` (with numbers or other
objectives), unary ``-``, and :func:`total` (the sum of many).

**One score per image.** An objective is evaluated on a batch of N images and
returns a tensor of N scores. A term that addresses several units assigns unit
``i`` of its list to image ``i``: ``channel("conv2", range(50))`` asks 50 images,
and image 7 maximizes filter 7, so a whole layer renders in one optimization. A
term with one unit applies to every image of the batch.

**Layers** are torch's dotted ``named_modules()`` names; ``"output"`` is the
model's output. The activation of a layer is the output of that module: for a
convolution, the filter responses *before* the ReLU that follows (name the ReLU
module, e.g. ``relu2``, to maximize the rectified map instead). Each objective
knows the layers it needs (:attr:`Objective.layers`), so the render loop runs
the network only up to the deepest of them.

**Penalties** are computed on the image in ``[0, 1]`` (before the model's
normalization and before random transforms), summed over pixels and channels,
one value per image: ``l1()`` of a 28x28 image lies between 0 and 784.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from probe.errors import ProbeUsageError, unknown_name
from probe.hooks import OUTPUT
from probe.outputs import CLASS_KINDS, tensor_kind, why_no_scores
from probe.outputs import class_scores as read_scores

__all__ = [
    "Context",
    "Objective",
    "as_objective",
    "joint_group",
    "channel",
    "neuron",
    "class_logit",
    "class_scores",
    "check_class_kind",
    "check_class_scores",
    "direction",
    "diversity",
    "l1",
    "l2",
    "total_variation",
    "total",
    "unit_list",
    "parse_units",
    "parse_objective",
    "channel_weight",
    "neuron_weight",
    "channel_interpolate",
    "alignment",
    "caricature",
    "activations_of",
    "l2_distance",
]

Units = int | Iterable[int]


@dataclass
class Context:
    """What an objective sees at one evaluation.

    Attributes:
        activations: ``{layer name: activation}`` with the graph attached; shapes
            ``(N, C, H, W)`` or ``(N, F)``; ``"output"`` is the model's output.
        images: ``(N, C, H, W)`` images in ``[0, 1]`` before random transforms
            (what penalties measure).
        index: which images of the whole request this batch holds, as a slice of
            every multi-unit term's unit list (the render loop splits big
            requests into batches; default: all of them).
    """

    activations: Mapping[str, torch.Tensor]
    images: torch.Tensor
    index: slice = field(default_factory=lambda: slice(None))

    def __call__(self, layer: str) -> torch.Tensor:
        """The activation of ``layer``, one value per image ``(N,)`` (a regression's output) read as ``(N, 1)``,
        one unit; raises a clear error if it was not captured."""
        try:
            act = self.activations[layer]
        except KeyError:
            raise unknown_name("captured layer", layer, self.activations, param="layer") from None
        return act.unsqueeze(1) if act.dim() == 1 else act

    @property
    def batch(self) -> int:
        """N, the number of images."""
        return int(self.images.shape[0])


@dataclass(frozen=True)
class _Term:
    """A leaf objective with its coefficient inside a linear combination."""

    coefficient: float
    objective: Objective


class Objective:
    """A score per image, as a function of a :class:`Context`, with algebra.

    Args:
        fn: ``fn(context) -> (N,)`` scores (a 0-d tensor is broadcast to every image).
        name: a short description (``"channel(conv2)"``); names the term in results.
        layers: the layer names ``fn`` reads from the context.
        kind: ``"channel"``, ``"neuron"``, ``"class"``, ``"direction"``,
            ``"diversity"``, ``"penalty"``, ``"combination"`` or your own.
        units: the unit of each image for multi-unit terms (length = number of
            images), one unit for single-unit terms, None when there is none.
        layer: the layer this term is about (for captions), or None.
        group: images that must be optimized in one pass, because each one's
            score reads the others: groups of this size (:func:`diversity` with
            ``group=``), None for all the images of the request
            (:func:`diversity`'s default, :func:`alignment`), 1 (default) when
            every image's score is its own. The render loop never splits a
            group, so an image does not depend on how the request is batched.

    Adding, subtracting and scaling objectives keeps their terms apart
    (:attr:`terms`), so that a result can report each of them (the logit and the
    L1 norm of a constrained class image, say).
    """

    def __init__(
        self,
        fn: Callable[[Context], torch.Tensor],
        name: str = "objective",
        *,
        layers: Iterable[str] = (),
        kind: str = "custom",
        units: Sequence[int] | None = None,
        layer: str | None = None,
        group: int | None = 1,
        terms: tuple[_Term, ...] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.layers: frozenset[str] = frozenset(layers)
        self.kind = kind
        self.units: tuple[int, ...] | None = None if units is None else tuple(int(u) for u in units)
        self.layer = layer
        self.group = None if group is None else int(group)
        self._terms = terms

    def __call__(self, context: Context) -> torch.Tensor:
        """Evaluate: ``(N,)`` scores (or a 0-d tensor for batch-free objectives)."""
        return self.fn(context)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # ----------------------------------------------------------------- structure
    @property
    def terms(self) -> tuple[_Term, ...]:
        """The linear combination this objective is: ``((coefficient, leaf), ...)``."""
        return self._terms if self._terms is not None else (_Term(1.0, self),)

    @property
    def batch(self) -> int:
        """Images the objective asks for: the longest unit list of its terms (1 if none is longer)."""
        return max([len(t.objective.units or ()) for t in self.terms] + [1])

    @property
    def main(self) -> Objective:
        """The term that names the result: the first that is no penalty, diversity or constant."""
        leaves = [t.objective for t in self.terms if t.objective.kind != "constant"] or [self.terms[0].objective]
        for leaf in leaves:
            if leaf.kind not in ("penalty", "diversity"):
                return leaf
        return leaves[0]

    def image_units(self) -> tuple[int | None, ...]:
        """The unit each image works for, from :attr:`main` (None for terms without units)."""
        units = self.main.units
        if not units:
            return (None,) * self.batch
        if len(units) == 1:
            return units * self.batch
        return units

    # ------------------------------------------------------------------- algebra
    @staticmethod
    def _combine(terms: Sequence[_Term]) -> Objective:
        merged: list[_Term] = []
        for term in terms:
            if term.coefficient != 0 or not merged:
                merged.append(term)
        if len(merged) == 1 and merged[0].coefficient == 1.0:
            return merged[0].objective
        batches = {len(t.objective.units) for t in merged if t.objective.units and len(t.objective.units) > 1}
        if len(batches) > 1:
            raise ProbeUsageError(
                f"cannot combine objectives over different numbers of units ({', '.join(map(str, sorted(batches)))}): "
                "each image works for one unit of each list, so the lists must have the same length"
            )

        def fn(context: Context) -> torch.Tensor:
            result = torch.zeros((), device=context.images.device)
            for term in merged:
                result = result + term.coefficient * term.objective(context)
            return result

        parts = []
        for position, term in enumerate(merged):
            c = term.coefficient
            magnitude = "" if abs(c) == 1 else f"{abs(c):g} * "
            sign = ("-" if c < 0 else "") if position == 0 else (" - " if c < 0 else " + ")
            parts.append(f"{sign}{magnitude}{term.objective.name}")
        name = "".join(parts)
        layers = frozenset().union(*(t.objective.layers for t in merged))
        return Objective(fn, name, layers=layers, kind="combination", terms=tuple(merged),
                         group=joint_group(t.objective.group for t in merged))

    def _product(self, other: Objective, symbol: str, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Objective:
        def fn(context: Context) -> torch.Tensor:
            return op(self(context), other(context))

        return Objective(fn, f"({self.name}) {symbol} ({other.name})", layers=self.layers | other.layers,
                         kind="custom", units=self.units or other.units, layer=self.layer or other.layer,
                         group=joint_group((self.group, other.group)))

    def __add__(self, other: Any) -> Objective:
        if isinstance(other, Objective):
            return self._combine(self.terms + other.terms)
        if isinstance(other, numbers.Real):
            return self._combine(self.terms + (_Term(1.0, constant(float(other))),)) if other != 0 else self
        return NotImplemented

    def __radd__(self, other: Any) -> Objective:
        if isinstance(other, numbers.Real):
            return self.__add__(other)
        return NotImplemented

    def __neg__(self) -> Objective:
        return self._combine(tuple(_Term(-t.coefficient, t.objective) for t in self.terms))

    def __sub__(self, other: Any) -> Objective:
        if isinstance(other, (Objective, numbers.Real)):
            return self + (-other)
        return NotImplemented

    def __rsub__(self, other: Any) -> Objective:
        if isinstance(other, numbers.Real):
            return (-self) + other
        return NotImplemented

    def __mul__(self, other: Any) -> Objective:
        if isinstance(other, numbers.Real):
            return self._combine(tuple(_Term(float(other) * t.coefficient, t.objective) for t in self.terms))
        if isinstance(other, Objective):
            return self._product(other, "*", torch.mul)
        return NotImplemented

    def __rmul__(self, other: Any) -> Objective:
        return self.__mul__(other)

    def __truediv__(self, other: Any) -> Objective:
        if isinstance(other, numbers.Real):
            if other == 0:
                raise ZeroDivisionError("objective divided by zero")
            return self * (1.0 / float(other))
        if isinstance(other, Objective):
            return self._product(other, "/", torch.div)
        return NotImplemented

    @staticmethod
    def sum(objectives: Iterable[Objective]) -> Objective:
        """The sum of many objectives (see :func:`total`)."""
        return total(objectives)


def total(objectives: Iterable[Objective]) -> Objective:
    """``objectives[0] + objectives[1] + ...``, for a list built in a loop."""
    items = list(objectives)
    if not items:
        raise ProbeUsageError("total() needs at least one objective")
    terms: tuple[_Term, ...] = ()
    for item in items:
        terms += as_objective(item).terms
    return Objective._combine(terms)


def joint_group(groups: Iterable[int | None]) -> int | None:
    """The :attr:`Objective.group` of a combination: None (the whole request) if any term's is, else
    the least common multiple of the terms' (so a pass holds whole groups of each)."""
    chosen = list(groups)
    return None if any(g is None for g in chosen) else math.lcm(*chosen, 1)


def as_objective(value: Objective | Callable[[Context], torch.Tensor]) -> Objective:
    """Wrap a plain ``fn(context) -> scores`` as an :class:`Objective` (no layers known: declare them yourself)."""
    if isinstance(value, Objective):
        return value
    if callable(value):
        return Objective(value, getattr(value, "__name__", "objective"))
    raise ProbeUsageError(f"expected an Objective or a function of a Context; got {type(value).__name__}")


def constant(value: float) -> Objective:
    """A score of ``value`` for every image (what ``objective + 3`` adds)."""
    return Objective(lambda context: torch.full((), value, device=context.images.device), f"{value:g}", kind="constant")


# ---------------------------------------------------------------------- units
def unit_list(units: Units) -> tuple[int, ...]:
    """``7`` -> ``(7,)``; ``range(50)`` / ``[3, 5]`` -> a tuple; checks they are non-negative ints."""
    if isinstance(units, numbers.Integral):
        values: tuple[int, ...] = (int(units),)
    else:
        try:
            values = tuple(int(u) for u in units)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ProbeUsageError(f"units must be an int or a list of ints; got {units!r}", param="units") from None
    if not values:
        raise ProbeUsageError("no unit given; name at least one unit", param="units")
    negative = [u for u in values if u < 0]
    if negative:
        raise ProbeUsageError(f"unit {negative[0]} is negative; units count from 0", param="units")
    return values


def _units_for(units: tuple[int, ...], context: Context, size: int, layer: str) -> torch.Tensor:
    """The unit of each image of this batch, as a long tensor ``(N,)``; checks the range."""
    chosen = units if len(units) == 1 else units[context.index]
    if len(chosen) != 1 and len(chosen) != context.batch:
        raise ProbeUsageError(
            f"the objective on {layer} addresses {len(chosen)} units but the batch holds {context.batch} images; "
            "each image works for one unit"
        )
    top = max(chosen)
    if top >= size:
        raise ProbeUsageError(f"unit {top} is out of range for {layer} (0 to {size - 1})", param="units")
    index = _index_tensor(tuple(chosen), context.images.device)
    return index.expand(context.batch) if len(chosen) == 1 else index


@functools.lru_cache(maxsize=256)
def _index_tensor(units: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``units`` as a long tensor on ``device``, made once: a copy to a GPU at every step would wait for it."""
    with torch.inference_mode(False):  # cached: must stay usable by autograd after a first call in inference mode
        return torch.tensor(units, device=device)


def _per_image(values: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """``values[i, units[i]]`` for a ``(N, C, ...)`` tensor -> ``(N, ...)``."""
    rows = torch.arange(values.shape[0], device=values.device)
    return values[rows, units]


def _describe(units: tuple[int, ...]) -> str:
    if len(units) == 1:
        return str(units[0])
    if units == tuple(range(units[0], units[0] + len(units))):
        return f"{units[0]}-{units[-1]}"
    return ",".join(map(str, units[:6])) + (",..." if len(units) > 6 else "")


REDUCTIONS = ("sum", "mean")


def _check_reduce(reduce: str) -> None:
    if reduce not in REDUCTIONS:
        raise ProbeUsageError(f"unknown reduction {reduce!r}; reductions are: {', '.join(REDUCTIONS)}", param="reduce")


# ------------------------------------------------------------------ activations
def channel(layer: str, units: Units, *, reduce: str = "sum") -> Objective:
    """The degree of activation of filters: ``a^k = sum_ij a^k_ij``, the sum of the feature map.

    Args:
        layer: dotted layer name.
        units: one filter (every image works for it) or several (image ``i``
            works for ``units[i]``).
        reduce: ``"sum"`` over the feature map (default: the degree of activation)
            or ``"mean"`` (independent of the map's size). On a linear layer,
            ``(N, F)``, the score is the unit's value either way.

    Returns:
        An objective of kind ``"channel"``.
    """
    chosen = unit_list(units)
    _check_reduce(reduce)

    def fn(context: Context) -> torch.Tensor:
        act = context(layer)
        values = _per_image(act, _units_for(chosen, context, act.shape[1], layer))
        if values.dim() == 1:
            return values
        flat = values.flatten(1)
        return flat.sum(1) if reduce == "sum" else flat.mean(1)

    suffix = "" if reduce == "sum" else ", mean"
    return Objective(fn, f"channel({layer}:{_describe(chosen)}{suffix})", layers=[layer], kind="channel",
                     units=chosen, layer=layer)


def _not_a_map(objective: str, layer: str, act: torch.Tensor) -> ProbeUsageError:
    """The error for a neuron objective on a layer without ``(H, W)`` positions: ``act`` is ``(N, C, L)`` (tokens,
    read channels first) or of more dimensions, naming ``objective``; a channel of it is the whole layer's."""
    what = (f"{act.shape[1]} channels over {act.shape[2]} tokens, not an (H, W) map" if act.dim() == 3
            else f"shape {tuple(act.shape)}")
    return ProbeUsageError(f"{objective}() needs a (N, C, H, W) or (N, F) layer, which has one position per unit; "
                           f"{layer} gives {what}; maximize a channel of it instead (--objective channel)",
                           param="objective")


def neuron(layer: str, units: Units, y: int | None = None, x: int | None = None) -> Objective:
    """One position of a filter's map (the centre by default), or one unit of a linear layer.

    Args:
        layer: dotted layer name.
        units: as for :func:`channel`.
        y, x: the position in the feature map; default the centre
            ``(H // 2, W // 2)`` of the map at hand. Ignored for ``(N, F)`` layers.

    Returns:
        An objective of kind ``"neuron"``.
    """
    chosen = unit_list(units)

    def fn(context: Context) -> torch.Tensor:
        act = context(layer)
        values = _per_image(act, _units_for(chosen, context, act.shape[1], layer))
        if values.dim() == 1:
            return values
        if values.dim() != 3:
            raise _not_a_map("neuron", layer, act)
        height, width = values.shape[-2:]
        row = height // 2 if y is None else y
        col = width // 2 if x is None else x
        if not (0 <= row < height and 0 <= col < width):
            raise ProbeUsageError(f"position ({row}, {col}) is outside {layer}'s {height}x{width} map", param="units")
        return values[:, row, col]

    where = "" if y is None and x is None else f" @({y},{x})"
    return Objective(fn, f"neuron({layer}:{_describe(chosen)}{where})", layers=[layer], kind="neuron",
                     units=chosen, layer=layer)


def check_class_scores(logits: torch.Tensor, layer: str = OUTPUT, batch: int | None = None) -> str:
    """Refuse what holds no class scores (:mod:`probe.outputs`): ``(N, classes)`` logits, ``(N,)`` or ``(N, 1)``
    one score, a dense prediction's ``(N, classes, H, W)``; return its kind (``"logits"``, ``"score"``,
    ``"dense"``, ...). ``batch``: N, the images evaluated (a tensor without a row per image, as a detection
    model's boxes, is refused); default None: not checked. A picture is told by the last operation alone (a
    render step's input is transformed: its size is not the images'); the commands tell it by the input's
    shape too, before the run (:func:`probe.optimize.inspect_layer`'s ``output_kind``, :func:`check_class_kind`).

    Raises:
        ProbeUsageError: naming ``objective`` for the model's output, ``layer`` for a named layer.
    """
    kind = tensor_kind(logits, batch, values=False)  # shapes only: no device sync per step
    return check_class_kind(kind, tuple(logits.shape), layer)


def check_class_kind(kind: str, shape: Sequence[int], layer: str = OUTPUT) -> str:
    """``kind`` if it holds class scores (:data:`probe.outputs.CLASS_KINDS`), as :func:`check_class_scores` reads
    a tensor's, for a kind read already (:func:`probe.optimize.inspect_layer`'s, with the output's graph); else
    the same refusal, ``shape`` being what ``layer`` gives.

    Raises:
        ProbeUsageError: naming ``objective`` for the model's output, ``layer`` for a named layer.
    """
    if kind in CLASS_KINDS:
        return kind
    what = "the model's output" if layer == OUTPUT else layer
    raise ProbeUsageError(
        f"a class objective needs (N, classes) logits or (N,) one score per image or a dense prediction's "
        f"(N, classes, H, W); "
        f"{what} gives {tuple(shape)}: {why_no_scores(kind)}; maximize a layer's units instead "
        "(--objective channel --layer NAME)",
        param="objective" if layer == OUTPUT else "layer",
    )


def class_scores(logits: torch.Tensor) -> torch.Tensor:
    """``(N, classes)`` class scores of a class objective's tensor (:func:`probe.outputs.class_scores`):
    ``(N, classes)`` as it is, ``(N,)`` one score as ``(N, 1)``, a dense ``(N, classes, H, W)`` prediction (a
    segmentation model's) with its per-pixel logits averaged over the positions."""
    return read_scores(logits, "mean")


def class_logit(units: Units, *, layer: str = OUTPUT, probability: bool = False) -> Objective:
    """A class score of the model's output: the logit (default) or the softmax probability.

    What the output may be is :mod:`probe.outputs`' reading: ``(N, classes)`` logits (or a sigmoid or softmax
    head's outputs, scored as they are), ``(N,)`` or ``(N, 1)`` one score (a regression: unit 0 is the score),
    or a dense prediction ``(N, classes, H, W)`` (a segmentation model: torchvision's ``'out'``, Segformer's
    ``logits``, a U-Net's head), which scores a class by its per-pixel logit (or per-pixel probability,
    softmax over the classes) averaged over every position: the image whose every pixel reads as that class.
    A dict of outputs is read by its ``logits`` or ``out``; other outputs (detections, a base model's
    features, a depth map) are refused in one line naming ``objective``.

    Args:
        units: class indices, as for :func:`channel`.
        layer: where the logits come from: ``"output"`` (default) or the name of
            the layer that produces them (``"fc2"``).
        probability: maximize ``softmax(logits)[unit]`` instead of the logit (not for one score, which has
            no softmax).

    Returns:
        An objective of kind ``"class"``.
    """
    chosen = unit_list(units)

    def fn(context: Context) -> torch.Tensor:
        logits = context(layer)
        kind = check_class_scores(logits, layer, context.batch)
        if probability and kind in ("score", "dense-score"):
            raise ProbeUsageError(f"{'the output' if layer == OUTPUT else layer} is one score per image "
                                  f"{tuple(logits.shape)}: it has no softmax probability; maximize the score itself",
                                  param="objective")
        index = _units_for(chosen, context, logits.shape[1], layer)
        values = logits.float().softmax(dim=1) if probability else logits
        return _per_image(values, index).flatten(1).mean(1) if values.dim() == 4 else _per_image(values, index)

    what = "class_probability" if probability else "class_logit"
    return Objective(fn, f"{what}({_describe(chosen)})", layers=[layer], kind="class", units=chosen, layer=layer)


def direction(layer: str, vector: torch.Tensor | Sequence[float], *, reduce: str = "sum", cosine: bool = False) -> Objective:
    """Move a layer's activation along a direction in channel space.

    The score is ``sum_ij <a_ij, v>`` over positions (``reduce="mean"``
    averages), or the cosine similarity ``<a_ij, v> / |a_ij| |v|`` with
    ``cosine=True``.

    Args:
        layer: dotted layer name.
        vector: ``(C,)`` one direction for every image, or ``(K, C)``, image ``i``
            following row ``i`` (``(1, C)`` is one direction for every image).
        reduce: ``"sum"`` (default) or ``"mean"`` over positions.
        cosine: use cosine similarity per position instead of the dot product.

    Returns:
        An objective of kind ``"direction"``.
    """
    _check_reduce(reduce)
    vectors = torch.as_tensor(vector, dtype=torch.float32)
    if vectors.dim() not in (1, 2):
        raise ProbeUsageError(f"a direction is (C,) or (K, C); got shape {tuple(vectors.shape)}")
    many = vectors.dim() == 2 and vectors.shape[0] > 1  # one row is one direction for every image
    rows = tuple(range(vectors.shape[0])) if many else None

    def fn(context: Context) -> torch.Tensor:
        act = context(layer)
        v = vectors.to(act.device, act.dtype)
        if many:
            v = v[context.index]
            if v.shape[0] != context.batch:
                raise ProbeUsageError(f"{v.shape[0]} directions for a batch of {context.batch} images")
        if v.shape[-1] != act.shape[1]:
            raise ProbeUsageError(f"the direction has {v.shape[-1]} values but {layer} has {act.shape[1]} channels")
        v = v.expand(act.shape[0], -1)
        shaped = v.view(*v.shape, *([1] * (act.dim() - 2)))
        dots = (act * shaped).sum(1)
        if cosine:
            dots = dots / (act.norm(dim=1) * shaped.norm(dim=1) + 1e-8)
        flat = dots.flatten(1) if dots.dim() > 1 else dots[:, None]
        return flat.sum(1) if reduce == "sum" else flat.mean(1)

    return Objective(fn, f"direction({layer})", layers=[layer], kind="direction", units=rows, layer=layer)


def diversity(layer: str, *, group: int | None = None) -> Objective:
    """Make the images of a batch differ (Lucid's diversity), as a score: higher = more different.

    Each image's Gram matrix of ``layer`` (channels x channels, over positions)
    is L2-normalized; an image's score is minus its mean dot product with the
    other images of its group. Add it with a weight to an objective for one
    unit, over a batch of several images: ``channel("conv2", 7) + 10 * diversity("conv2")``.

    Args:
        layer: dotted layer name.
        group: images form consecutive groups of this size and differ within
            their group (to render several units, several images each, in one
            batch); default None: all the images of the request are one
            group (:func:`probe.maximize` then renders them in one pass,
            whatever its ``batch``).

    Returns:
        An objective of kind ``"diversity"``; a batch (or group) of one image scores 0.
    """
    if group is not None and group < 1:
        raise ProbeUsageError(f"diversity group must be >= 1; got {group}")

    def fn(context: Context) -> torch.Tensor:
        act = context(layer).float()
        n = act.shape[0]
        size = n if group is None else group
        if n % size:
            raise ProbeUsageError(f"a batch of {n} images does not split into diversity groups of {size}")
        flat = act.flatten(2) if act.dim() > 2 else act[:, :, None]
        grams = F.normalize(torch.bmm(flat, flat.transpose(1, 2)).flatten(1), dim=1, eps=1e-10)
        similarity = grams @ grams.T
        same = torch.arange(n, device=act.device) // size
        mask = (same[:, None] == same[None, :]) & ~torch.eye(n, dtype=torch.bool, device=act.device)
        others = (similarity * mask).sum(1)
        return -others / max(size - 1, 1)

    return Objective(fn, f"diversity({layer})", layers=[layer], kind="diversity", layer=layer, group=group)


# -------------------------------------------------------------------- penalties
def _flat_images(context: Context, constant_value: float) -> torch.Tensor:
    return (context.images - constant_value).flatten(1)


def l1(constant: float = 0.0) -> Objective:
    """``sum |x - constant|`` over the pixels and channels of each image in ``[0, 1]`` (a penalty: subtract it).

    With ``constant=0`` on dark-background digits this is the amount of ink:
    the L1 constraint ``y_i(x) - lambda * sum_ij |x_ij|``. For RGB, 0.5
    (mid-gray) is a natural constant. The weight ``lambda`` depends on the scale
    of the score it is subtracted from: on the shipped ``digits`` model, whose
    class logits reach about 45, ``class_logit(k) - 0.3 * l1()`` halves the ink
    and keeps every image classified as its digit.
    """
    return Objective(lambda context: _flat_images(context, constant).abs().sum(1), "l1", kind="penalty")


def l2(constant: float = 0.0) -> Objective:
    """``sqrt(sum (x - constant)^2)`` per image: the Euclidean norm of the image in ``[0, 1]`` (a penalty)."""
    return Objective(lambda context: _flat_images(context, constant).pow(2).sum(1).add(1e-12).sqrt(), "l2",
                     kind="penalty")


def total_variation() -> Objective:
    """``sum |x[i+1, j] - x[i, j]| + |x[i, j+1] - x[i, j]|`` per image (a penalty: subtract it for smoothness)."""

    def fn(context: Context) -> torch.Tensor:
        images = context.images
        dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).sum(1)
        dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).sum(1)
        return dy + dx

    return Objective(fn, "total_variation", kind="penalty")


def parse_units(text: str, count: int, layer: str) -> tuple[int, ...]:
    """Parse a unit selection as typed on the command line, checking it against the layer's size.

    ``"all"`` -> ``0 .. count-1``; ``"0-9"`` -> 0 to 9 inclusive; ``"3,5"``; and
    combinations like ``"0-3,7,10-12"``. Duplicates keep their first place.

    Args:
        text: the selection.
        count: the number of units (channels or features) of ``layer``.
        layer: the layer's name, for the messages.

    Raises:
        ProbeUsageError: bad syntax, or ``"unit 60 is out of range for conv2 (0 to 49)"``.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned == "all":
        return tuple(range(count))
    spans: list[tuple[int, int]] = []
    try:
        for part in cleaned.split(","):
            first, dash, last = part.partition("-")
            span = (int(first), int(last) if dash else int(first))
            if span[1] < span[0]:
                raise ValueError(part)
            spans.append(span)
    except ValueError:
        raise ProbeUsageError(
            f"cannot read units {text!r}; use all, a range like 0-9, a list like 3,5, or both like 0-3,7", param="units"
        ) from None
    for first, last in spans:  # checked before any list is built: "0-99999999999" must not allocate
        for unit in (first, last):
            if not 0 <= unit < count:
                raise ProbeUsageError(f"unit {unit} is out of range for {layer} (0 to {count - 1})", param="units")
    return tuple(dict.fromkeys(unit for first, last in spans for unit in range(first, last + 1)))


# ------------------------------------------------------- Lucent-style strings
def parse_objective(text: str, model: Any, *, image_size: int | Sequence[int] | None = None) -> Objective:
    """Read a Lucent-style shorthand: ``"conv2:7"`` is channel 7 of conv2, ``"fc1:3"`` neuron 3 of a linear layer.

    The units may be anything :func:`parse_units` reads (``"conv2:0-9"``,
    ``"conv2:3,5"``, ``"conv2:all"``): several units render one image each.
    A layer whose output is ``(N, C, H, W)`` gives :func:`channel`, one whose
    output is ``(N, F)`` gives :func:`neuron`.

    Args:
        text: ``"LAYER:UNITS"``, layer a dotted ``named_modules()`` name.
        model: the model the layer belongs to (a :class:`~probe.models.LoadedModel`
            or an ``nn.Module``; one blank image runs through it to learn the
            layer's shape; not changed).
        image_size: the image size for that blank pass (default: the model's).

    Raises:
        ProbeUsageError: no ``:``, unknown layer (with the closest name), units
            out of range.
    """
    from probe.optimize import inspect_layer

    layer, sep, units = text.strip().rpartition(":")
    if not sep or not layer or not units:
        raise ProbeUsageError(f"cannot read objective {text!r}; write LAYER:UNITS, e.g. conv2:7 (channel 7 of conv2) "
                              "or fc1:3 (neuron 3 of a linear layer)", param="objective")
    info = inspect_layer(model, layer, image_size)
    chosen = parse_units(units, info.units, info.name)
    return channel(layer, chosen) if len(info.shape) > 1 else neuron(layer, chosen)


# ------------------------------------------------------ objectives of the field
def _weights_for(weight: torch.Tensor, act: torch.Tensor, layer: str) -> torch.Tensor:
    if weight.shape[0] != act.shape[1]:
        raise ProbeUsageError(f"the weight has {weight.shape[0]} values but {layer} has {act.shape[1]} channels",
                              param="weight")
    return weight.to(act.device, act.dtype).view(1, -1, *([1] * (act.dim() - 2)))


def channel_weight(layer: str, weight: torch.Tensor | Sequence[float]) -> Objective:
    """Lucent's activation-weighted channels: ``mean over (C, H, W) of a * w[c]`` per image.

    Args:
        layer: dotted layer name.
        weight: ``(C,)`` one weight per channel (e.g. a later layer's weights
            into one unit, or an attribution).

    Returns:
        An objective of kind ``"channel_weight"``.
    """
    vector = torch.as_tensor(weight, dtype=torch.float32).flatten()

    def fn(context: Context) -> torch.Tensor:
        act = context(layer)
        return (act * _weights_for(vector, act, layer)).flatten(1).mean(1)

    return Objective(fn, f"channel_weight({layer})", layers=[layer], kind="channel_weight", layer=layer)


def neuron_weight(layer: str, weight: torch.Tensor | Sequence[float] | None = None, y: int | None = None,
                  x: int | None = None) -> Objective:
    """Lucent's activation-weighted neuron: ``mean over C of a[:, c, y, x] * w[c]`` at one position per image.

    Args:
        layer: dotted layer name, ``(N, C, H, W)`` or ``(N, F)``.
        weight: ``(C,)`` weights; None averages the channels unweighted.
        y, x: the position (default the centre of the map).

    Returns:
        An objective of kind ``"neuron_weight"``.
    """
    vector = None if weight is None else torch.as_tensor(weight, dtype=torch.float32).flatten()

    def fn(context: Context) -> torch.Tensor:
        act = context(layer)
        if act.dim() == 4:
            height, width = act.shape[-2:]
            row, col = (height // 2 if y is None else y), (width // 2 if x is None else x)
            if not (0 <= row < height and 0 <= col < width):
                raise ProbeUsageError(f"position ({row}, {col}) is outside {layer}'s {height}x{width} map",
                                      param="units")
            act = act[:, :, row, col]
        elif act.dim() != 2:
            raise _not_a_map("neuron_weight", layer, act)
        return (act if vector is None else act * _weights_for(vector, act, layer)).mean(1)

    return Objective(fn, f"neuron_weight({layer})", layers=[layer], kind="neuron_weight", layer=layer)


def channel_interpolate(layer1: str, unit1: int, layer2: str, unit2: int, images: int) -> Objective:
    """Lucid's ``channel_interpolate``: a batch that morphs from one channel to another.

    Image ``i`` of ``images`` maximizes ``(1 - t) * channel(layer1, unit1) + t *
    channel(layer2, unit2)`` with ``t = i / (images - 1)``. Add
    :func:`alignment` to make neighbouring images look alike.

    Args:
        layer1, unit1: where the batch starts.
        layer2, unit2: where it ends.
        images: the number of images (>= 2).

    Returns:
        An objective of kind ``"interpolate"`` over ``images`` images (its units
        are the image positions ``0 .. images-1``).
    """
    if images < 2:
        raise ProbeUsageError(f"channel_interpolate needs at least 2 images; got {images}", param="images")
    first, second = channel(layer1, unit1), channel(layer2, unit2)
    mix = torch.linspace(0.0, 1.0, images)

    def fn(context: Context) -> torch.Tensor:
        t = mix[context.index].to(context.images.device)
        if t.shape[0] != context.batch:
            raise ProbeUsageError(f"channel_interpolate over {images} images got a batch of {context.batch}")
        return (1 - t) * first(context) + t * second(context)

    return Objective(fn, f"channel_interpolate({layer1}:{unit1} -> {layer2}:{unit2})", layers=[layer1, layer2],
                     kind="interpolate", units=tuple(range(images)), layer=layer1)


def alignment(layer: str, decay_ratio: float = 2.0, *, reach: int = 4) -> Objective:
    """Lucid's ``alignment``: neighbouring images of a batch should have similar activations (a score <= 0).

    The sum over pairs ``(i, i + d)``, ``1 <= d <= reach``, of ``-mean((a_i -
    a_{i+d})^2) / decay_ratio ** d``; each pair's term is shared equally by its
    two images, so the scores of a batch sum to Lucid's value. Every image
    reads its neighbours, so :func:`probe.maximize` renders all of them in one
    pass, whatever its ``batch``.

    Args:
        layer: dotted layer name.
        decay_ratio: how fast farther neighbours matter less (default 2).
        reach: the farthest neighbour compared (default 4, Lucid's).

    Returns:
        An objective of kind ``"alignment"``.
    """
    if decay_ratio <= 0 or reach < 1:
        raise ProbeUsageError(f"alignment needs decay_ratio > 0 and reach >= 1; got {decay_ratio}, {reach}")

    def fn(context: Context) -> torch.Tensor:
        act = context(layer).float()
        n = act.shape[0]
        scores = torch.zeros(n, device=act.device)
        for d in range(1, min(reach, n - 1) + 1):
            pair = (act[:-d] - act[d:]).pow(2).flatten(1).mean(1) / decay_ratio**d
            scores = scores - F.pad(pair, (0, d)) / 2 - F.pad(pair, (d, 0)) / 2
        return scores

    return Objective(fn, f"alignment({layer})", layers=[layer], kind="diversity", layer=layer, group=None)


def caricature(layer: str, activations: torch.Tensor, *, cossim_pow: float = 1.0) -> Objective:
    """Lucid's caricature: amplify what ``layer`` sees in an image.

    Per position, the dot product over channels of the image's activations
    ``t`` with the rendered ones ``a``, weighted by their cosine similarity
    floored at 0.1 to the power ``cossim_pow``; averaged over positions:
    ``mean_ij <a_ij, t_ij> * max(0.1, cos(a_ij, t_ij)) ** cossim_pow``. Render
    it at the image's size (positions are matched one to one).

    Args:
        layer: dotted layer name.
        activations: the image's activations of ``layer``: ``(C, H, W)``,
            ``(F,)``, or a batch ``(K, ...)`` (image ``i`` follows row ``i``; a
            batch of one is every image's target, also a token layer's ``(1, C, L)``);
            see :func:`activations_of`.
        cossim_pow: the weight of the cosine similarity (default 1; 0 gives the
            plain dot product).

    Returns:
        An objective of kind ``"caricature"``.
    """
    target = activations.detach().float()
    if target.dim() == 1 or (target.dim() == 3 and target.shape[0] > 1):
        target = target.unsqueeze(0)  # one image's (F,) or (C, H, W)
    # A (1, A, B) is one image either way: a token layer's (1, C, L) (ViT's encoder) or a 1-channel (C, H, W);
    # which one shows in the rendered activations' dims.
    many = target.shape[0] > 1  # one row (what activations_of gives for one image) is shared by every image
    rows = tuple(range(target.shape[0])) if many else None

    def fn(context: Context) -> torch.Tensor:
        act = context(layer).float()
        t = target[context.index] if many else target
        t = t.to(act.device)
        if t.dim() == act.dim() - 1:  # a 1-channel (1, H, W) image
            t = t.unsqueeze(0)
        if t.shape[1:] != act.shape[1:]:
            raise ProbeUsageError(f"caricature: the image's {layer} activations are {tuple(t.shape[1:])} but the "
                                  f"rendered ones are {tuple(act.shape[1:])}; render at the image's size",
                                  param="size")
        dot = (act * t).sum(1)
        if cossim_pow == 0:
            return dot.flatten(1).mean(1) if dot.dim() > 1 else dot
        cos = dot / (act.norm(dim=1) + 1e-4) / (t.norm(dim=1) + 1e-4)
        weighted = dot * cos.clamp(min=0.1) ** cossim_pow
        return weighted.flatten(1).mean(1) if weighted.dim() > 1 else weighted

    return Objective(fn, f"caricature({layer})", layers=[layer], kind="caricature", units=rows, layer=layer)


def activations_of(model: Any, images: torch.Tensor, layer: str) -> torch.Tensor:
    """The activations of ``layer`` for ``images`` ``(N, C, H, W)`` or ``(C, H, W)`` in ``[0, 1]``, without gradients.

    The model's normalization is applied (a :class:`~probe.models.LoadedModel`,
    or an ``nn.Module`` wrapped by :func:`~probe.models.load_model`); the model is not changed.
    Returns ``(N, ...)`` (what :func:`caricature` and :func:`l2_distance` compare against).
    """
    from probe.hooks import capture, evaluating
    from probe.models import as_loaded

    loaded = as_loaded(model, None)
    batch = (images.unsqueeze(0) if images.dim() == 3 else images).to(loaded.device, torch.float32)
    with evaluating(loaded.module), torch.no_grad():
        found = capture(loaded.module, loaded.preprocess.normalize(batch), [layer])
    if layer not in found:
        raise ProbeUsageError(f"layer {layer!r} did not run in a forward pass", param="layer")
    return found[layer].float()


def l2_distance(reference: torch.Tensor) -> Objective:
    """``sqrt(sum (x - reference)^2)`` per image: how far the image in ``[0, 1]`` is from ``reference`` (a penalty).

    Feature accentuation (Hamblin et al. 2024) subtracts it with a weight:
    ``channel("conv2", 7) - w * l2_distance(photo)`` keeps the result near the
    photo it starts from.

    Args:
        reference: ``(C, H, W)`` or ``(N|1, C, H, W)`` in ``[0, 1]``, the size of the rendered images.
    """
    ref = reference.detach().float()
    if ref.dim() == 3:
        ref = ref.unsqueeze(0)

    def fn(context: Context) -> torch.Tensor:
        images = context.images
        r = ref.to(images.device, images.dtype)
        if r.shape[0] > 1:
            r = r[context.index]
        if r.shape[1:] != images.shape[1:]:
            raise ProbeUsageError(f"the reference image is {tuple(r.shape[1:])} but the images are "
                                  f"{tuple(images.shape[1:])}", param="size")
        return (images - r).pow(2).flatten(1).sum(1).add(1e-12).sqrt()

    return Objective(fn, "l2_distance", kind="penalty")
