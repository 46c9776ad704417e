"""L-BFGS's curvature pairs in compact form: the direction in a few matrix products, whatever the history's length.

The two-loop recursion visits the ``m`` stored pairs ``(s_i, y_i)`` one at a
time: about six small kernels per pair, ~600 launches per direction for
torch's default ``history_size`` of 100. Byrd, Nocedal and Schnabel (1994,
"Representations of quasi-Newton matrices and their use in limited memory
methods", eq. 3.13) write the same inverse Hessian approximation, with
``H_0 = gamma I``, as

    H g = gamma g + [S  gamma Y] M [S^T g; gamma Y^T g],
    M = [[R^-T (D + gamma Y^T Y) R^-1, -R^-T], [-R^-1, 0]],

where ``S``, ``Y`` hold the pairs as columns (oldest first), ``R`` is the upper
triangle of ``S^T Y`` (``R_ij = s_i . y_j`` for ``i <= j``) and ``D`` its
diagonal. :class:`CurvaturePairs` keeps ``S`` and ``Y`` as one preallocated
``(2m, n)`` ring on the device and ``S^T Y``, ``Y^T Y`` as ``(m, m)`` matrices
updated by one row and column per pair, so a direction costs one ``(2m, n) x
(n, 3)`` product (the new pair's and the gradient's inner products with every
stored pair), two ``m x m`` triangular solves and one ``(n, 2m) x (2m)``
product: a fixed number of kernels and no host read.

The small matrices and solves are in float64 (float32 on MPS, which has no
float64), whatever the vectors' dtype: ``R``'s conditioning follows the spread
of the curvatures ``s . y``. Measured with float32 vectors (synthetic pairs
over up to six decades of curvature, nearly parallel steps, a style
problem's trajectories), float32 solves were as accurate as float64 ones,
both within 2x of the float32 two-loop recursion's error against float64:
the inner products, in the vectors' dtype, bound the accuracy. float64 costs nothing at ``m x m`` and keeps the
solves from being the weak part.
"""

from __future__ import annotations

import torch

__all__ = ["CurvaturePairs", "CURVED"]

CURVED = 1e-10
"""A pair is stored only when ``y . s`` exceeds this (torch.optim.LBFGS's test); otherwise it is skipped."""


def _small_dtype(device: torch.device) -> torch.dtype:
    """float64 for the ``(m, m)`` matrices, except on MPS (no float64 there)."""
    return torch.float32 if device.type == "mps" else torch.float64


class CurvaturePairs:
    """Up to ``capacity`` pairs ``(s, y)`` of ``n`` entries, the newest replacing the oldest, and the direction.

    A pair with ``y . s <= 1e-10`` is skipped as torch.optim.LBFGS skips it:
    nothing is written, the ring does not advance, and no stored pair is
    evicted. The decision stays a tensor (no host read).

    Args:
        n: the length of the vectors (the number of pixels times channels).
        capacity: the most pairs kept (torch's ``history_size``), at least 1.
        dtype: the vectors' dtype (the parameter's).
        device: where everything lives.
    """

    def __init__(self, n: int, capacity: int, dtype: torch.dtype, device: torch.device) -> None:
        m = max(1, int(capacity))
        small = _small_dtype(device)
        self.capacity = m
        self.pairs = torch.zeros(2 * m, n, dtype=dtype, device=device)  # rows: s_0 .. s_m-1, y_0 .. y_m-1 (slots)
        self.inner = torch.zeros(2, m, m, dtype=small, device=device)  # [s_i . y_j, y_i . y_j], slot order
        self.inner[0].diagonal().fill_(1.0)  # an empty slot: 1 on R's diagonal, zeros elsewhere, so it is inert
        self.gamma = torch.ones((), dtype=small, device=device)  # H_0 = gamma I: y.s / y.y of the newest pair
        self.slot = torch.zeros((), dtype=torch.long, device=device)  # the slot the next pair is written to
        self._slots = torch.arange(m, device=device)

    def add_and_direct(self, s: torch.Tensor, y: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Store the pair ``(s, y)`` (unless skipped) and return the L-BFGS direction ``-H grad``.

        Args:
            s: ``(n,)`` the last step, ``x_k - x_k-1``.
            y: ``(n,)`` the change of the gradient over it, ``g_k - g_k-1``.
            grad: ``(n,)`` the gradient ``g_k``.

        Returns:
            ``(n,)``: the direction, equal to the two-loop recursion's over the stored pairs (to roundoff).
        """
        m, small = self.capacity, self.inner.dtype
        ys = y.dot(s)
        curved = ys > CURVED  # in the vectors' dtype, as torch decides
        rows = torch.stack([self.slot, self.slot + m])
        self.pairs.index_copy_(0, rows, torch.where(curved, torch.stack([s, y]), self.pairs.index_select(0, rows)))
        # (2m, 3): every stored pair with s, y and g; as (3, n) x (n, 2m), 2.3x faster on a CPU than (2m, n) x (n, 3)
        products = (torch.stack([s, y, grad]) @ self.pairs.T).T.to(small)
        hit = ((self._slots == self.slot) & curved)[:, None]  # (m, 1): the slot written, if it was
        rows = products[m:, :2].T[:, None, :]  # (2, 1, m): the new row of each, [s . y_j, y . y_j]
        columns = products[:, 1].view(2, m, 1)  # (2, m, 1): the new column of each, [s_i . y, y_i . y]
        self.inner = torch.where(hit.T, columns, torch.where(hit, rows, self.inner))
        self.gamma = torch.where(curved, ys.to(small) / y.dot(y).to(small), self.gamma)
        self.slot = torch.where(curved, (self.slot + 1) % m, self.slot)
        return self._direction(grad, products[:, 2].view(2, m))

    def _direction(self, grad: torch.Tensor, stored_grad: torch.Tensor) -> torch.Tensor:
        """``-H grad`` from ``stored_grad = [S^T grad, Y^T grad]`` (``(2, m)``, slot order)."""
        m, gamma = self.capacity, self.gamma
        order = (self.slot + self._slots) % m  # chronological: the oldest first; empty slots before any
        sy, yy = self.inner.index_select(1, order).index_select(2, order)
        sg, yg = stored_grad.index_select(1, order)[:, :, None]
        upper = sy.triu()  # R (an empty slot has 1 on the diagonal and zeros around it: u and a are 0 there)
        u = torch.linalg.solve_triangular(upper, sg, upper=True)  # R^-1 S^T g
        rhs = gamma * (yg - yy @ u) - sy.diagonal()[:, None] * u
        minus_a = torch.linalg.solve_triangular(upper.T, rhs, upper=False)  # -R^-T ((D + gamma Y^T Y) u - gamma Y^T g)
        back = (self._slots - self.slot) % m  # chronological position of each slot
        coefficients = torch.cat([minus_a, gamma * u], 1)[back].T.reshape(-1).to(grad.dtype)  # [-a, gamma u]
        return torch.addmv(grad * -gamma.to(grad.dtype), self.pairs.T, coefficients)  # -(gamma g + S a - gamma Y u)
