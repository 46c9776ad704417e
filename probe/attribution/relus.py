"""ReLU modules and functional ReLUs: what guided backprop needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

_RELU_FUNCTIONS = {torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class _ReluCalls(TorchFunctionMode):
    """Counts ReLU calls made outside ``nn.ReLU`` modules during a forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.functional = 0

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        if self.depth == 0 and func in _RELU_FUNCTIONS:
            self.functional += 1
        return func(*args, **(kwargs or {}))


def relu_check(module: nn.Module, inputs: torch.Tensor) -> tuple[int, int]:
    """Count ``nn.ReLU`` modules and functional ReLU calls in one forward pass of ``module(inputs)``.

    Returns:
        ``(modules, functional)``: how many ``nn.ReLU`` modules ran, and how many
        times ``torch.relu`` / ``F.relu`` / ``Tensor.relu`` ran outside one.
    """
    counter = _ReluCalls()
    ran = []

    def enter(m: nn.Module, args: Any) -> None:
        counter.depth += 1
        ran.append(m)

    def leave(m: nn.Module, args: Any, out: Any) -> None:
        counter.depth -= 1

    relus = [m for m in module.modules() if isinstance(m, nn.ReLU)]
    handles = [m.register_forward_pre_hook(enter) for m in relus] + [m.register_forward_hook(leave) for m in relus]
    try:
        with torch.no_grad(), counter:
            module(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return len(ran), counter.functional


class _GuidedRelu(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients where the input was positive (guided backprop)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad.clamp_min(0) * (x > 0).to(grad.dtype)


_IN_PLACE = {torch.relu_, F.relu_, torch.Tensor.relu_}


class GuidedRelus(TorchFunctionMode):
    """Within the block every ReLU call (``F.relu``, ``torch.relu``, ``Tensor.relu``, their in-place forms,
    and the ``F.relu`` inside ``nn.ReLU``) runs guided backprop's ReLU: gradient ``max(g, 0) * (x > 0)``.

    captum's GuidedBackprop guides ``nn.ReLU`` modules only and leaves functional ReLUs (DenseNet's last
    ``F.relu``) with plain gradients; under this mode they are guided too. Guiding twice (this mode and
    captum's hook on a module) is the same as guiding once. In-place calls stay in place.
    """

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func not in _RELU_FUNCTIONS or not args or not isinstance(args[0], torch.Tensor):
            return func(*args, **kwargs)
        x = args[0]
        if func in _IN_PLACE or kwargs.get("inplace") or (len(args) > 1 and args[1] is True):
            return x.copy_(_GuidedRelu.apply(x.clone()))
        return _GuidedRelu.apply(x)
