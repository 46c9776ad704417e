"""probe.style.lbfgs.minimize computes torch.optim.LBFGS's iterates (no line search), and stops where it stops."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from probe.style.lbfgs import minimize


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """A smooth, non-quadratic loss that takes L-BFGS well over 30 steps (75 coupled dimensions)."""
    flat = x.reshape(-1)
    return (100 * (flat[1:] - flat[:-1].pow(2)).pow(2) + (1 - flat[:-1]).pow(2)).sum()


def trajectory(loss_of: Callable[[torch.Tensor], torch.Tensor], run: Callable, clamp: bool = False) -> list[torch.Tensor]:
    """The tensor at every closure call of ``run(param, closure)``."""
    param = torch.full((3, 5, 5), 0.3, dtype=torch.float64, requires_grad=True)  # float64: rounding is not compared
    seen = []

    def closure() -> torch.Tensor:
        if clamp:
            with torch.no_grad():
                param.clamp_(-0.5, 0.5)
        seen.append(param.detach().clone())
        loss = loss_of(param)
        (param.grad,) = torch.autograd.grad(loss, param)
        return loss.detach()

    run(param, closure)
    return seen


def torch_lbfgs(steps: int, history: int = 100) -> Callable:
    return lambda param, closure: torch.optim.LBFGS([param], max_iter=steps, max_eval=steps,
                                                    history_size=history).step(closure)


@pytest.mark.parametrize("history, clamp", [(100, False), (100, True)])  # pairs never dropped: torch's iterates
def test_the_iterates_are_torchs(history: int, clamp: bool) -> None:
    done = []
    ours = trajectory(rosenbrock, lambda p, c: done.append(minimize(p, c, 30, history_size=history)), clamp)
    theirs = trajectory(rosenbrock, torch_lbfgs(30, history), clamp)
    assert done[0].evaluations == len(theirs) and len(theirs) == (11 if clamp else 30)  # the clamp stalls it
    for step, (mine, reference) in enumerate(zip(ours, theirs), 1):
        assert torch.allclose(mine, reference, rtol=1e-9, atol=1e-12), step


def test_a_short_history_fills_with_rejected_pairs_as_documented() -> None:
    """Rosenbrock's pairs are rejected (y.s <= 1e-10) from the 5th: torch keeps its 3 pairs, ours age out."""
    ours = trajectory(rosenbrock, lambda p, c: minimize(p, c, 12, history_size=3))
    theirs = trajectory(rosenbrock, torch_lbfgs(12, 3))
    assert all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(ours[:6], theirs[:6]))
    assert not torch.allclose(ours[-1], theirs[-1]) and bool(torch.isfinite(ours[-1]).all())


def test_a_converged_run_stops_where_torch_stops_and_says_so() -> None:
    def bowl(x: torch.Tensor) -> torch.Tensor:
        return (x - 0.7).pow(2).sum()  # L-BFGS reaches the minimum in a few steps, then torch stops

    theirs = trajectory(bowl, torch_lbfgs(200))
    calls = []
    ours = trajectory(bowl, lambda p, c: calls.append(minimize(p, c, 200, check_every=5)))
    [done] = calls
    assert 1 < len(theirs) < 10 and done.evaluations == len(theirs) and done.calls == len(ours) < 200
    assert done.calls % 5 == 0 and done.calls - done.evaluations < 5  # the flag is read every 5 calls
    for mine, reference in zip(ours, theirs):
        assert torch.allclose(mine, reference, atol=1e-6)
    assert all(torch.equal(extra, ours[len(theirs) - 1]) for extra in ours[len(theirs):])  # frozen: no more steps


def test_a_zero_gradient_takes_no_step() -> None:
    ours = trajectory(lambda x: (x * 0).sum(), lambda p, c: minimize(p, c, 30, check_every=4))
    assert len(ours) == 4 and all(torch.equal(x, ours[0]) for x in ours)
