"""Redirected ReLU (Lucid): units dead on the initial image still get a gradient.

A ReLU passes no gradient where its input is negative. A unit that is dead on
the initial noise image then never moves: its objective stays at zero. Lucid's
redirected ReLU changes the *backward* pass only: for an image whose ordinary
ReLU gradient at that layer is zero everywhere, the gradient is passed through
the negative inputs too, but only where it pushes them up (towards becoming
active). The forward pass is unchanged.

:func:`redirected_relu` applies it within a ``with`` block, to every ReLU the
forward pass calls (``nn.ReLU`` modules, ``F.relu``, ``torch.relu``,
``Tensor.relu``; ``Tensor.relu_`` is left as it is), through a :class:`torch.overrides.TorchFunctionMode`: the
model itself is never touched, and everything is as before when the block ends,
also on error. :func:`probe.maximize` uses it for its first ``redirect_relu``
steps (Lucid's practice: once the units are alive the true gradient takes over).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from probe.forward import passes_through

__all__ = ["RedirectedReLU", "redirected_relu"]


class RedirectedReLU(torch.autograd.Function):
    """``relu(x)`` forward; Lucid's redirected gradient backward (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (x,) = ctx.saved_tensors
        negative = x < 0
        ordinary = grad.masked_fill(negative, 0)
        # the loss decreases when x rises where grad < 0: keep that part of the gradient on dead inputs
        redirected = grad.masked_fill(negative & (grad > 0), 0)
        if x.dim() < 2:  # no batch dimension: the tensor is one sample
            return ordinary if bool(ordinary.ne(0).any()) else redirected
        alive = ordinary.flatten(1).ne(0).any(1).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(alive, ordinary, redirected)


_RELUS = {F.relu, torch.relu, torch.Tensor.relu}  # in-place spellings keep their meaning (F.relu(inplace=True) is caught)


class _Redirect(TorchFunctionMode):
    @passes_through
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in _RELUS and torch.is_grad_enabled() and args and isinstance(args[0], torch.Tensor) \
                and args[0].requires_grad:
            return RedirectedReLU.apply(args[0])
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def redirected_relu(enabled: bool = True) -> Iterator[None]:
    """Within the block, every ReLU of a forward pass with gradients uses :class:`RedirectedReLU`'s backward.

    Args:
        enabled: False makes this a no-op (handy inside a loop:
            ``with redirected_relu(step <= 16): ...``).

    In-place ReLUs (``nn.ReLU(inplace=True)``) return a new tensor instead of
    changing their input; passes without gradients (``torch.no_grad()``) are
    left alone. Nothing is registered on any model.
    """
    if not enabled:
        yield
        return
    with _Redirect():
        yield
