"""The receptive field of a layer, measured by the gradient of one output position w.r.t. the input.

Works for any architecture (branches, padding, dilation, pooling): the support
of ``d act[:, :, y, x] / d input`` is exactly the set of input pixels that can
change that position. Two details keep the support complete:

- max pooling sends the gradient to one element of each window, and a dead
  ReLU sends none, so the support is the union over a few random inputs
  (seeded, drawn in the model's normalized input space);
- two neighbouring positions give the stride (how far the support moves per
  output step), so the field of any position follows without another pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from probe.errors import ProbeUsageError
from probe.hooks import capture, evaluating
from probe.models import LoadedModel

__all__ = ["ReceptiveField", "receptive_field"]


@dataclass(frozen=True)
class ReceptiveField:
    """Where a layer's output position looks in the input image.

    Attributes:
        size: ``(h, w)`` the field's height and width in input pixels.
        stride: ``(sy, sx)`` input pixels per output position.
        offset: ``(oy, ox)`` the input coordinate of the top-left corner of
            position ``(0, 0)``'s field (negative where padding reaches outside).
        map_size: ``(H', W')`` the layer's output map.
        image_size: ``(H, W)`` the input the field was measured at.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]
    map_size: tuple[int, int]
    image_size: tuple[int, int]

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of position ``(y, x)``'s field, clipped to the image (bottom/right exclusive)."""
        top = self.offset[0] + y * self.stride[0]
        left = self.offset[1] + x * self.stride[1]
        height, width = self.image_size
        return (max(0, top), max(0, left), min(height, top + self.size[0]), min(width, left + self.size[1]))

    def as_dict(self) -> dict[str, list[int]]:
        """JSON-ready fields."""
        return {"size": list(self.size), "stride": list(self.stride), "offset": list(self.offset),
                "map_size": list(self.map_size), "image_size": list(self.image_size)}


def _support(loaded: LoadedModel, layer: str, y: int, x: int, inputs: torch.Tensor) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the union over ``inputs`` of the gradient support of position (y, x)."""
    image = inputs.clone().requires_grad_(True)
    acts = capture(loaded.module, image, [layer], stop_early=True)
    output = acts[layer]
    (grad,) = torch.autograd.grad(output[:, :, y, x].sum(), image)
    mask = grad.abs().sum(dim=(0, 1)) > 0
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    if rows.numel() == 0:
        raise ProbeUsageError(f"layer {layer!r} does not depend on the input image; choose another layer", param="layers")
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def receptive_field(loaded: LoadedModel, layer: str, image_size: tuple[int, int] | None = None,
                    *, samples: int = 8, seed: int = 0) -> ReceptiveField:
    """Measure ``layer``'s receptive field on ``image_size`` inputs (default the model's input size).

    Args:
        loaded: the model (not changed; no hook is left; only the input gets a gradient).
        layer: a layer whose output is ``(N, C, H', W')``.
        image_size: ``(H, W)``; default the model's input size.
        samples: random inputs whose supports are united (default 8).
        seed: seeds those inputs (default 0).

    Raises:
        ProbeUsageError: the layer has no spatial map, or does not depend on the input.
    """
    height, width = image_size or loaded.preprocess.input_size
    generator = torch.Generator().manual_seed(seed)
    channels = loaded.preprocess.channels
    inputs = torch.randn(samples, channels, height, width, generator=generator).to(loaded.device)
    with evaluating(loaded.module):
        with torch.no_grad():
            shape = capture(loaded.module, inputs[:1], [layer], stop_early=True)[layer].shape
        if len(shape) != 4:
            raise ProbeUsageError(f"layer {layer!r} gives {tuple(shape)}, not a (N, C, H, W) map: it has no "
                                  "receptive field; choose a convolution or block", param="layers")
        rows, cols = shape[2], shape[3]
        cy, cx = rows // 2, cols // 2
        ny, nx = (cy + 1 if cy + 1 < rows else cy - 1), (cx + 1 if cx + 1 < cols else cx - 1)
        here = _support(loaded, layer, cy, cx, inputs)
        below = _support(loaded, layer, ny, cx, inputs) if rows > 1 else here
        right = _support(loaded, layer, cy, nx, inputs) if cols > 1 else here
    stride_y = abs(below[0] - here[0]) if rows > 1 else 1
    stride_x = abs(right[1] - here[1]) if cols > 1 else 1
    size = (here[2] - here[0], here[3] - here[1])
    return ReceptiveField(size=size, stride=(max(1, stride_y), max(1, stride_x)),
                          offset=(here[0] - cy * stride_y, here[1] - cx * stride_x),
                          map_size=(rows, cols), image_size=(height, width))
