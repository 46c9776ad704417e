"""What captum's LRP can run on: the rules it has, the reshapes it passes through, residual additions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

LRP_PASSTHROUGH = (nn.Flatten, nn.Identity, nn.Unflatten)
"""Reshaping modules LRP passes relevance through unchanged (no rule, no hook: their gradient is the reshape)."""


def _passthrough_lrp_class() -> type:
    from captum.attr import LRP

    class PassthroughLRP(LRP):
        """captum's LRP, with :data:`LRP_PASSTHROUGH` modules left out of its rules (captum has none for them)."""

        def _get_layers(self, model: nn.Module) -> None:
            super()._get_layers(model)
            self.layers = [layer for layer in self.layers if not isinstance(layer, LRP_PASSTHROUGH)]

    return PassthroughLRP


def passthrough_lrp(forward: nn.Module) -> Any:  # noqa: N802 (a class made on first use: captum loads lazily)
    return _passthrough_lrp_class()(forward)


@contextlib.contextmanager
def restored_attributes(module: nn.Module) -> Iterator[None]:
    """Remove every attribute the block adds to ``module``'s submodules (captum's LRP leaves ``rule`` and
    ``activations`` behind), also on error."""
    before = {id(m): set(vars(m)) for m in module.modules()}
    try:
        yield
    finally:
        for m in module.modules():
            for name in set(vars(m)) - before.get(id(m), set()):
                delattr(m, name)


def lrp_support(module: nn.Module) -> list[str]:
    """The leaf module types of ``module`` captum's LRP has no rule for (empty: LRP can run)."""
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS

    known = (*SUPPORTED_LAYERS_WITH_RULES, *SUPPORTED_NON_LINEAR_LAYERS, *LRP_PASSTHROUGH)
    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    return sorted({type(m).__name__ for m in leaves if type(m) not in known})


_ADDITIONS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__,
              torch.Tensor.__radd__}


class _Additions(TorchFunctionMode):
    """Counts additions of two same-shaped batch tensors (residual connections) during a forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        if func in _ADDITIONS and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]) \
                and args[0].dim() >= 2 and args[0].shape == args[1].shape:
            self.count += 1
        return func(*args, **(kwargs or {}))


def tensor_additions(module: nn.Module, inputs: torch.Tensor) -> int:
    """How many times one forward pass of ``module(inputs)`` adds two same-shaped activations (residuals),
    which captum's LRP has no rule for."""
    counter = _Additions()
    with torch.no_grad(), counter:
        module(inputs)
    return counter.count
