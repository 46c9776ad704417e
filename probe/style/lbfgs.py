"""L-BFGS on the pixels that never waits for the device: torch's algorithm, its decisions kept as tensors.

``torch.optim.LBFGS`` reads the device several times per loss evaluation:
``float(closure())``, ``if ys > 1e-10``, ``if gtd > -tolerance_change``, the
convergence tests, and one read per history entry and direction (its
``alpha=`` arguments are 0-dim tensors turned into Python numbers). On a GPU
each read stalls the host until the queue drains, so the next forward pass
is launched only once the last one has finished.

:func:`minimize` computes the same iterates (without a line search, as
``style_transfer`` uses it) with every decision a tensor:

- the direction comes from the compact form of the curvature pairs
  (:class:`~probe.style.curvature.CurvaturePairs`): a fixed number of kernels
  per evaluation instead of torch's two-loop recursion over up to
  ``history_size`` pairs (about six kernels per pair), the same direction to
  roundoff; a pair with ``y.s <= 1e-10`` is skipped as torch skips it;
- once a convergence test passes (the gradient below ``tolerance_grad``, the
  step or the change of the loss below ``tolerance_change``, or no descent
  direction), the step length becomes 0: the remaining evaluations see the
  converged image again. The flag is read every ``check_every`` evaluations
  (one sync each) to stop there; :attr:`Minimized.evaluations` says how many
  evaluations torch's loop would have made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from probe.style.curvature import CurvaturePairs

__all__ = ["Minimized", "minimize", "history_pairs", "HISTORY_SIZE"]

HISTORY_SIZE = 100
"""Curvature pairs kept by default (torch.optim.LBFGS's ``history_size``)."""


def history_pairs(evaluations: int, history_size: int = HISTORY_SIZE) -> int:
    """The curvature pairs :func:`minimize` allocates for a run: ``history_size``, or fewer when the run can
    make fewer (``evaluations - 2``: none from the first two evaluations); at least 1."""
    return max(1, min(int(history_size), int(evaluations) - 2))


class Minimized(NamedTuple):
    """What :func:`minimize` returns.

    Attributes:
        calls: how many times the closure ran.
        evaluations: how many of them torch.optim.LBFGS would have run (the
            rest saw the converged image again); at most ``calls``.
    """

    calls: int
    evaluations: int


def minimize(
    param: torch.Tensor,
    closure: Callable[[], torch.Tensor],
    evaluations: int,
    *,
    lr: float = 1.0,
    history_size: int = HISTORY_SIZE,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    check_every: int = 25,
) -> Minimized:
    """Minimize ``closure``'s loss over ``param`` with at most ``evaluations`` calls of ``closure``.

    Args:
        param: the tensor optimized in place (any shape, a leaf with ``requires_grad``).
        closure: computes the loss at ``param``, sets ``param.grad`` and returns
            the loss (a 0-dim tensor, detached); it may change ``param`` in
            place first (a clamp), as with torch's optimizers.
        evaluations: the most calls of ``closure`` (torch's ``max_iter`` and ``max_eval``).
        lr: the step length (default 1); the first step is ``min(1, 1/|g|_1) * lr``.
        history_size: curvature pairs kept (default 100, torch's).
        tolerance_grad: converged when the largest gradient entry is at most this (default 1e-7).
        tolerance_change: converged when the step's or the loss's change is below this (default 1e-9).
        check_every: evaluations between reads of the converged flag (default 25).

    Returns:
        A :class:`Minimized`.
    """
    loss = closure()
    grad = _flat_grad(param)
    active = grad.abs().max() > tolerance_grad  # all decisions stay on the device
    counted = torch.ones((), dtype=torch.int64, device=param.device)
    pairs = CurvaturePairs(grad.numel(), history_pairs(evaluations, history_size), grad.dtype, param.device)
    direction: torch.Tensor | None = None
    zero = torch.zeros((), dtype=grad.dtype, device=param.device)
    moved, full_length = zero, torch.full_like(zero, lr)  # the last step taken, direction * its length
    previous_grad, previous_loss = grad, loss
    calls = 1
    for iteration in range(1, evaluations):  # a step, then its evaluation (torch stops at max_eval, unstepped)
        if direction is None:
            direction = grad.neg()
        else:
            direction = pairs.add_and_direct(moved, grad - previous_grad, grad)
        previous_grad, previous_loss = grad, loss
        length = lr * torch.clamp(1.0 / grad.abs().sum(), max=1.0) if iteration == 1 else full_length
        active = active & (grad.dot(direction) <= -tolerance_change)  # torch stops before a step that cannot descend
        moved = direction * torch.where(active, length, zero)
        with torch.no_grad():
            param.add_(moved.view_as(param))
        loss = closure()
        grad = _flat_grad(param)
        calls += 1
        counted = counted + active.long()
        converged = (grad.abs().max() <= tolerance_grad) | (moved.abs().max() <= tolerance_change)
        active = active & ~converged & ((loss - previous_loss).abs() >= tolerance_change)
        if calls % check_every == 0 and not bool(active):  # one read every check_every evaluations
            break
    return Minimized(calls, int(counted))


def _flat_grad(param: torch.Tensor) -> torch.Tensor:
    """``param.grad`` as a new flat vector (zeros when the closure left none)."""
    if param.grad is None:
        return torch.zeros(param.numel(), dtype=param.dtype, device=param.device)
    return param.grad.reshape(-1).clone()
