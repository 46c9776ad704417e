"""L-BFGS on the pixels that never waits for the device: torch's algorithm, its decisions kept as tensors.

``torch.optim.LBFGS`` reads the device several times per loss evaluation:
``float(closure())``, ``if ys > 1e-10``, ``if gtd > -tolerance_change``, the
convergence tests, and one read per history entry and direction (its
``alpha=`` arguments are 0-dim tensors turned into Python numbers). On a GPU
each read stalls the host until the queue drains, so the next forward pass
is launched only once the last one has finished.

:func:`minimize` computes the same iterates (without a line search, as
``style_transfer`` uses it) with every decision a tensor:

- a curvature pair with ``y.s <= 1e-10`` is stored with ``rho = 0``, which
  makes it a no-op in the two-loop recursion. torch drops it instead, so the
  iterates are torch's until such a pair pushes a real one out of a full
  history (``history_size`` pairs stored): from then on fewer real pairs
  shape the direction than torch's would;
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

__all__ = ["Minimized", "minimize"]


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
    history_size: int = 100,
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
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (y, s, rho)
    h_diag = torch.ones((), dtype=grad.dtype, device=param.device)
    direction: torch.Tensor | None = None
    step = torch.zeros_like(h_diag)
    previous_grad, previous_loss = grad, loss
    calls = 1
    for iteration in range(1, evaluations):  # a step, then its evaluation (torch stops at max_eval, unstepped)
        if direction is None:
            direction = grad.neg()
        else:
            y, s = grad - previous_grad, direction * step
            ys = y.dot(s)
            curved = ys > 1e-10
            if len(pairs) == history_size:
                pairs.pop(0)
            pairs.append((y, s, torch.where(curved, 1.0 / ys, torch.zeros_like(ys))))
            h_diag = torch.where(curved, ys / y.dot(y), h_diag)
            direction = _two_loop(grad, pairs, h_diag)
        previous_grad, previous_loss = grad, loss
        length = lr * torch.clamp(1.0 / grad.abs().sum(), max=1.0) if iteration == 1 else torch.full_like(h_diag, lr)
        active = active & (grad.dot(direction) <= -tolerance_change)  # torch stops before a step that cannot descend
        step = torch.where(active, length, torch.zeros_like(length))
        with torch.no_grad():
            param.add_((direction * step).view_as(param))
        loss = closure()
        grad = _flat_grad(param)
        calls += 1
        counted = counted + active.long()
        converged = (grad.abs().max() <= tolerance_grad) | ((direction * step).abs().max() <= tolerance_change)
        active = active & ~converged & ((loss - previous_loss).abs() >= tolerance_change)
        if calls % check_every == 0 and not bool(active):  # one read every check_every evaluations
            break
    return Minimized(calls, int(counted))


def _flat_grad(param: torch.Tensor) -> torch.Tensor:
    """``param.grad`` as a new flat vector (zeros when the closure left none)."""
    if param.grad is None:
        return torch.zeros(param.numel(), dtype=param.dtype, device=param.device)
    return param.grad.reshape(-1).clone()


def _two_loop(
    grad: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], h_diag: torch.Tensor
) -> torch.Tensor:
    """The L-BFGS direction ``-H grad`` from the curvature ``pairs`` (two-loop recursion), all on the device."""
    q = grad.neg()
    alphas = []
    for y, s, rho in reversed(pairs):
        alpha = s.dot(q) * rho
        q.sub_(y * alpha)
        alphas.append(alpha)
    direction = q.mul_(h_diag)
    for (y, s, rho), alpha in zip(pairs, reversed(alphas)):
        beta = y.dot(direction) * rho
        direction.add_(s * (alpha - beta))
    return direction
