"""The network style transfer runs: a weight-sharing view of the model with out-of-place ReLUs and, optionally, average pooling."""

from __future__ import annotations

import copy
from typing import Literal

from torch import nn

from probe.choices import POOLINGS  # torch-free: the command's --pooling offers them
from probe.errors import ProbeUsageError
from probe.models.types import shared_memo

__all__ = ["Pooling", "style_network"]

Pooling = Literal["max", "avg"]


def style_network(module: nn.Module, pooling: Pooling = "max") -> tuple[nn.Module, int]:
    """A view of ``module`` for style transfer that shares its weights; ``module`` is not changed.

    The view is a copy of the module *structure* whose parameters and buffers
    are the original tensors (no extra weight memory: a few kilobytes of
    module objects), in which

    - in-place ReLUs become out-of-place ones, so that a captured convolution
      output (``conv4_2``) is not overwritten by the ReLU after it;
    - with ``pooling="avg"``, every ``nn.MaxPool2d`` becomes an ``nn.AvgPool2d``
      of the same kernel, stride, padding and ceil mode (Gatys's choice for
      smoother results). Pooling done with ``F.max_pool2d`` inside a
      ``forward`` is not reached.

    Args:
        module: the network.
        pooling: ``"max"`` (as trained) or ``"avg"``.

    Returns:
        ``(view, swapped)``: the view and the number of max pools swapped.

    Raises:
        ProbeUsageError: ``pooling="avg"`` on a model with no ``nn.MaxPool2d``
            or one that cannot be copied (TorchScript).
    """
    if pooling not in POOLINGS:
        raise ProbeUsageError(f"unknown pooling {pooling!r}; poolings are: {', '.join(POOLINGS)}", param="pooling")
    shared = shared_memo(module)
    try:
        view = copy.deepcopy(module, shared)
    except Exception:  # TorchScript and exotic modules: use the model as it is
        if pooling == "avg":
            raise ProbeUsageError(
                f"--pooling avg needs a model whose layers can be swapped; {type(module).__name__} cannot be copied",
                param="pooling",
            ) from None
        return module, 0
    swapped = 0
    for parent in list(view.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU) and child.inplace:
                setattr(parent, name, nn.ReLU(inplace=False))
            elif pooling == "avg" and isinstance(child, nn.MaxPool2d):
                setattr(
                    parent,
                    name,
                    nn.AvgPool2d(child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode),
                )
                swapped += 1
    if pooling == "avg" and swapped == 0:
        raise ProbeUsageError(
            f"--pooling avg: {type(module).__name__} has no nn.MaxPool2d module to swap", param="pooling"
        )
    return view, swapped

