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
