"""The receptive field of a layer, measured by the gradient of one output position w.r.t. the input.

Works for any architecture (branches, padding, dilation, pooling, attention): the
support of ``d act[:, :, p] / d input`` is exactly the set of input pixels that
can change position ``p``. Two details keep the support complete:

- max pooling sends the gradient to one element of each window, and a dead
  ReLU sends none, so the support is the union over a few random inputs
  (seeded, drawn in the model's normalized input space);
- the positions of a map are flat (``y * W' + x`` of an ``(N, C, H', W')``
  map, the token of an ``(N, C, L)`` one), and a box is measured for exactly
  the positions asked for (:func:`measure_boxes`), several positions per pass.

A convolutional map is a regular grid: its fields are one box moved by a stride.
:func:`receptive_field` measures that box and stride from the centre and its
neighbours, then checks the prediction against the measured boxes of the first and last
positions; where the grid does not hold (a field clipped by the image on both
sides, a squeeze-excitation or attention layer that sees the whole image,
windows, tokens) :attr:`ReceptiveField.regular` is False and the boxes must be
measured per position. Every pass depends only on (model, layer, positions of
its group, seed), so any rank measures the same boxes.

**Two boxes per position.** The *field* is the support: every pixel any
gradient reaches. After squeeze-excitation, attention or a global pooling that
is the whole image, though almost all of the gradient stays near the
position. The *effective* box is the field's definition of where a position
looks (Luo et al. 2016, "Understanding the effective receptive field"): the
region holding most of the gradient mass, here :data:`EFFECTIVE_MASS` (95%) of
``|d act / d pixel|`` summed over the channels and the random inputs, found by
:func:`effective_box`. It lies inside the field, so it is never larger than
the theoretical box. The atlas crops an example to the field where one box moved by a stride
describes the layer (:attr:`ReceptiveField.regular`: a convolution stack,
whose gradient fills its box; its 95% box would only trim an edge row chosen
by the random inputs) and to each position's effective box elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass

import torch

from probe.errors import ProbeUsageError, check_depends_on_image
from probe.forward import image_grad
from probe.hooks import capture, evaluating
from probe.models import LoadedModel

__all__ = ["ReceptiveField", "receptive_field", "measure_boxes", "measure_fields", "effective_box", "POSITIONS_PER_PASS",
           "SAMPLES", "EFFECTIVE_MASS"]

Box = tuple[int, int, int, int]
SAMPLES = 8
"""Random inputs whose supports are united (default of every function here)."""
POSITIONS_PER_PASS = 4
"""Positions measured in one forward/backward pass (``4 * SAMPLES`` images): the fixed groups the ranks share."""
EFFECTIVE_MASS = 0.95
"""The share of a position's gradient mass its effective box holds (:func:`effective_box`). At 95%, timm's
efficientnet_b0 ``blocks.1.0`` (after two squeeze-excitations, whose gradient reaches all of a 64 px image)
gets an 11x11 box at the centre, its convolutions' own field; at 99% the excitations' thin spread over the
whole image makes it 47x45."""


@dataclass(frozen=True)
class ReceptiveField:
    """Where a layer's output positions look in the input image.

    Attributes:
        size: ``(h, w)`` the field's height and width in input pixels (for an
            irregular layer: the centre position's measured box).
        stride: ``(sy, sx)`` input pixels per output position (for an irregular
            layer: the image over the map, ``(1, 1)`` for tokens).
        offset: ``(oy, ox)`` the input coordinate of the top-left corner of
            position ``(0, 0)``'s field (negative where padding reaches outside).
        map_size: ``(H', W')`` the layer's output map (``(1, L)`` for ``L`` tokens).
        image_size: ``(H, W)`` the input the field was measured at.
        regular: whether :meth:`box` predicts every position's measured box
            (checked at the first and last positions); False: measure boxes with :func:`measure_fields`.
        effective: ``(h, w)`` of the centre position's effective box (:func:`effective_box`; the atlas crops
            an irregular layer's examples to their own); None where not measured.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]
    map_size: tuple[int, int]
    image_size: tuple[int, int]
    regular: bool = True
    effective: tuple[int, int] | None = None

    def box(self, y: int, x: int) -> Box:
        """``(top, left, bottom, right)`` of position ``(y, x)``'s field, clipped to the image (bottom/right exclusive).

        Exact only for a :attr:`regular` field.
        """
        top = self.offset[0] + y * self.stride[0]
        left = self.offset[1] + x * self.stride[1]
        height, width = self.image_size
        return (max(0, top), max(0, left), min(height, top + self.size[0]), min(width, left + self.size[1]))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {"size": list(self.size), "stride": list(self.stride), "offset": list(self.offset),
                "map_size": list(self.map_size), "image_size": list(self.image_size), "regular": self.regular,
                "effective": list(self.effective) if self.effective is not None else None,
                "effective_mass": EFFECTIVE_MASS}


def _inputs(loaded: LoadedModel, image_size: tuple[int, int] | None, samples: int, seed: int) -> torch.Tensor:
    """``(samples, C, H, W)`` seeded random inputs on the model's device."""
    height, width = image_size or loaded.preprocess.input_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(samples, loaded.preprocess.channels, height, width, generator=generator).to(loaded.device)


def _flat(output: torch.Tensor, layer: str) -> torch.Tensor:
    """``(N, C, P)``: a layer's ``(N, C, H', W')`` map or ``(N, C, L)`` tokens with flat positions."""
    if output.dim() not in (3, 4):
        raise ProbeUsageError(f"layer {layer!r} gives {tuple(output.shape)}, not a (N, C, H, W) map or (N, C, L) "
                              "tokens: it has no receptive field; choose a convolution, block or token layer",
                              param="layers")
    return output.flatten(2)


def _map_size(loaded: LoadedModel, layer: str, inputs: torch.Tensor) -> tuple[int, int]:
    """``(H', W')`` of ``layer``'s map (``(1, L)`` for tokens), from one no-grad pass."""
    with torch.no_grad():
        output = capture(loaded.module, inputs[:1], [layer], stop_early=True)[layer]
    _flat(output, layer)
    return (int(output.shape[2]), int(output.shape[3])) if output.dim() == 4 else (1, int(output.shape[2]))


def _constant(layer: str) -> ProbeUsageError:
    """A layer the graph reaches whose gradient is zero everywhere: with these weights it ignores the image."""
    return ProbeUsageError(
        f"layer {layer!r} gets a zero gradient from every pixel: with these weights its output does not change "
        "with the image (a zero-initialized layer, such as a residual block's last norm under random "
        "initialization); load trained weights or choose another layer", param="layers")


def _support(mass: torch.Tensor) -> Box | None:
    """The smallest box holding every nonzero pixel of ``mass`` ``(H, W)`` (None: all zero)."""
    rows, cols = (mass > 0).any(dim=1).nonzero().flatten(), (mass > 0).any(dim=0).nonzero().flatten()
    if not rows.numel():
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def effective_box(mass: torch.Tensor, share: float = EFFECTIVE_MASS) -> Box | None:
    """The box of ``mass`` ``(H, W)`` (>= 0) that holds ``share`` of its total: the support's box, peeled.

    Starting from the smallest box holding every nonzero pixel, the edge row or
    column (top, bottom, left, right) with the least mass is removed, one at a
    time, while the rest still holds at least ``share`` of the total (ties: in
    that order). Sums are taken in float64 from an integral image, so the
    result depends on ``mass`` alone. None when ``mass`` is all zero.

    >>> effective_box(torch.tensor([[0., 1, 0], [1, 40, 1], [0, 1, 0]]), 0.9)
    (1, 1, 2, 2)
    """
    support = _support(mass)
    if support is None:
        return None
    mass = mass.double()
    integral = torch.nn.functional.pad(mass.cumsum(0).cumsum(1), (1, 0, 1, 0)).tolist()

    def inside(top: int, left: int, bottom: int, right: int) -> float:
        return integral[bottom][right] - integral[top][right] - integral[bottom][left] + integral[top][left]

    top, left, bottom, right = support
    total = inside(top, left, bottom, right)
    while True:
        peeled = []
        if bottom - top > 1:
            peeled += [(top + 1, left, bottom, right), (top, left, bottom - 1, right)]
        if right - left > 1:
            peeled += [(top, left + 1, bottom, right), (top, left, bottom, right - 1)]
        if not peeled:
            break
        best = max(peeled, key=lambda box: inside(*box))  # max keeps the first of equal boxes: the order above
        if inside(*best) < share * total:
            break
        top, left, bottom, right = best
    return top, left, bottom, right


def _supports(loaded: LoadedModel, layer: str, positions: Sequence[int],
              inputs: torch.Tensor) -> list[tuple[Box, Box] | None]:
    """``(field, effective box)`` of each flat position, in one pass (None: no pixel reaches it).

    The field is the box of the union over ``inputs`` of the gradient's support;
    the effective box is :func:`effective_box` of ``|grad|`` summed over the channels and ``inputs``.
    The batch holds ``inputs`` once per position; image ``b`` back-propagates only
    its own position (images do not mix in eval mode), so its gradient is that position's.
    """
    samples = inputs.shape[0]
    image = inputs.repeat(len(positions), 1, 1, 1).requires_grad_(True)
    output = _flat(capture(loaded.module, image, [layer], stop_early=True)[layer], layer)
    where = torch.tensor(positions, device=output.device).repeat_interleave(samples)
    picked = output.gather(2, where.view(-1, 1, 1).expand(-1, output.shape[1], 1))
    check_depends_on_image(picked, [layer], param="layers")  # a position bias, a no_grad in the model's forward
    (grad,) = image_grad(picked.sum(), image)
    masses = grad.abs().sum(dim=1).view(len(positions), samples, *grad.shape[2:]).sum(dim=1).cpu()
    boxes: list[tuple[Box, Box] | None] = []
    for mass in masses:
        field_ = _support(mass)
        boxes.append(None if field_ is None else (field_, effective_box(mass)))
    return boxes


def _measure(loaded: LoadedModel, layer: str, positions: Sequence[int],
             inputs: torch.Tensor) -> list[tuple[Box, Box] | None]:
    """:func:`_supports` of ``positions``, :data:`POSITIONS_PER_PASS` at a time, in eval mode."""
    boxes: list[tuple[Box, Box] | None] = []
    with evaluating(loaded.module):
        for start in range(0, len(positions), POSITIONS_PER_PASS):
            boxes += _supports(loaded, layer, list(positions[start:start + POSITIONS_PER_PASS]), inputs)
    return boxes


def measure_fields(loaded: LoadedModel, layer: str, positions: Sequence[int], image_size: tuple[int, int] | None = None,
                   *, samples: int = SAMPLES, seed: int = 0) -> list[tuple[Box, Box]]:
    """``(field, effective box)`` of each flat position of ``layer``, in that order, each ``(top, left, bottom, right)``.

    The field holds every pixel any gradient of the position reaches; the
    effective box, inside it, :data:`EFFECTIVE_MASS` of the gradient's mass (see the module docstring).
    A position that no pixel reaches (ViT's class token before the first
    attention) gets the whole image for both: its example is the image, whose other
    positions make its score.

    Args:
        loaded: the model (not changed; no hook is left; only the input gets a gradient).
        layer: a layer whose output is ``(N, C, H', W')`` (position ``y * W' + x``) or ``(N, C, L)`` (token).
        positions: flat positions; measured :data:`POSITIONS_PER_PASS` at a time, in the order given.
        image_size: ``(H, W)``; default the model's input size.
        samples: random inputs whose supports are united (default :data:`SAMPLES`).
        seed: seeds those inputs (default 0).

    Raises:
        ProbeUsageError: the layer has no map, or does not depend on the input.
    """
    inputs = _inputs(loaded, image_size, samples, seed)
    whole = (0, 0, int(inputs.shape[2]), int(inputs.shape[3]))
    return [boxes or (whole, whole) for boxes in _measure(loaded, layer, positions, inputs)]


def measure_boxes(loaded: LoadedModel, layer: str, positions: Sequence[int], image_size: tuple[int, int] | None = None,
                  *, samples: int = SAMPLES, seed: int = 0) -> list[Box]:
    """The field ``(top, left, bottom, right)`` of each flat position of ``layer``, in that order: the first
    box of :func:`measure_fields` (same arguments and errors)."""
    return [field_ for field_, _ in measure_fields(loaded, layer, positions, image_size, samples=samples, seed=seed)]


def _step(here: Box, there: Box, first: int, limit: int) -> int | None:
    """Pixels the box moves between neighbours along one axis (``first``: 0 rows, 1 columns), read from an edge
    that the image clips in neither box; None when both edges are clipped."""
    if here[first] > 0 and there[first] > 0:
        return abs(there[first] - here[first])
    if here[first + 2] < limit and there[first + 2] < limit:
        return abs(there[first + 2] - here[first + 2])
    return None


def receptive_field(loaded: LoadedModel, layer: str, image_size: tuple[int, int] | None = None,
                    *, samples: int = SAMPLES, seed: int = 0) -> ReceptiveField:
    """Measure ``layer``'s receptive field on ``image_size`` inputs (default the model's input size).

    The centre position and its neighbours below and to the right are measured
    (one pass), then, when the image does not clip the centre's box, the first and
    last positions (a second pass); the field is :attr:`~ReceptiveField.regular`
    when the box and stride read from the centre predict all five measured boxes. The arguments (the model is not
    changed, no hook is left) and errors are :func:`measure_boxes`'s, less ``positions``.
    """
    inputs = _inputs(loaded, image_size, samples, seed)
    height, width = int(inputs.shape[2]), int(inputs.shape[3])
    with evaluating(loaded.module):
        rows, cols = _map_size(loaded, layer, inputs)
    cy, cx = rows // 2, cols // 2
    ny, nx = (cy + 1 if cy + 1 < rows else cy - 1), (cx + 1 if cx + 1 < cols else cx - 1)
    points = [(cy, cx), (max(ny, 0), cx), (cy, max(nx, 0))]
    both = _measure(loaded, layer, [y * cols + x for y, x in points], inputs)
    if all(boxes is None for boxes in both):
        raise _constant(layer)  # where no graph reaches the layer, _supports raised already
    whole = (0, 0, height, width)
    found = [None if boxes is None else boxes[0] for boxes in both]
    centre = both[0][1] if both[0] is not None else whole
    measured = dict(zip(points, (box or whole for box in found)))
    here = measured[(cy, cx)]
    steps = (_step(here, measured[(ny, cx)], 0, height) if rows > 1 else 1,
             _step(here, measured[(cy, nx)], 1, width) if cols > 1 else 1)
    inside = None not in found and here[0] > 0 and here[1] > 0 and here[2] < height and here[3] < width
    size = (here[2] - here[0], here[3] - here[1])
    if None in steps:  # both edges clipped: the step of the map over the image, for the summary only
        steps = tuple(s if s is not None else max(1, round(limit / count))
                      for s, limit, count in zip(steps, (height, width), (rows, cols)))
    stride = (max(1, steps[0]), max(1, steps[1]))
    field_ = ReceptiveField(size, stride, (here[0] - cy * steps[0], here[1] - cx * steps[1]), (rows, cols),
                            (height, width), regular=False, effective=(centre[2] - centre[0], centre[3] - centre[1]))
    if not inside:  # the image clips the centre's field: its box and stride describe no position but itself
        return field_
    corners = [(0, 0), (rows - 1, cols - 1)]
    measured.update(zip(corners, (boxes[0] if boxes else whole
                                  for boxes in _measure(loaded, layer, [y * cols + x for y, x in corners], inputs))))
    regular = all(field_.box(y, x) == box for (y, x), box in measured.items())
    return dataclasses.replace(field_, regular=regular)
