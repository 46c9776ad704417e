"""probe.style.lbfgs.minimize computes torch.optim.LBFGS's iterates (no line search), and stops where it stops."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from probe.style.curvature import CURVED, CurvaturePairs
from probe.style.lbfgs import minimize
from probe.style.losses import content_loss, gram_matrix, style_loss


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """A smooth, non-quadratic loss that takes L-BFGS well over 30 steps (75 coupled dimensions)."""
    flat = x.reshape(-1)
    return (100 * (flat[1:] - flat[:-1].pow(2)).pow(2) + (1 - flat[:-1]).pow(2)).sum()


def trajectory(loss_of: Callable[[torch.Tensor], torch.Tensor], run: Callable, clamp: bool = False,
               start: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The tensor at every closure call of ``run(param, closure)``, from ``start`` (default ``(3, 5, 5)`` of 0.3)."""
    start = torch.full((3, 5, 5), 0.3, dtype=torch.float64) if start is None else start  # float64: rounding not compared
    param = start.clone().requires_grad_(True)
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


def relative_gaps(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> list[float]:
    """The largest relative difference of the two trajectories at each closure call."""
    return [float(((a - b).abs() / (b.abs() + 1e-12)).max()) for a, b in zip(ours, theirs)]


def assert_torchs_to_roundoff(loss_of: Callable, start: torch.Tensor, steps: int, history: int,
                              clamp: bool = False) -> None:
    """Ours follows torch.optim.LBFGS's iterates as closely as torch follows itself from a start moved by 1e-15.

    Without a line search (and with a clamp) these runs amplify rounding differences step after step
    (1e-15 grows to 1e-3 in 50 steps on the style problem): the compact direction differs from the two-loop
    recursion's by roundoff, so its iterates may drift as far as roundoff drifts torch's own, and no further.
    """
    theirs = trajectory(loss_of, torch_lbfgs(steps, history), clamp, start)
    nudged = start * (1 + 1e-15 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1), dtype=start.dtype))
    drift = relative_gaps(trajectory(loss_of, torch_lbfgs(steps, history), clamp, nudged), theirs)
    ours = trajectory(loss_of, lambda p, c: minimize(p, c, steps, history_size=history), clamp, start)
    assert len(ours) == len(theirs) == steps
    envelope = [max(drift[: k + 1]) for k in range(len(drift))]
    for step, (gap, bound) in enumerate(zip(relative_gaps(ours, theirs), envelope), 1):
        assert gap <= 100 * bound + 1e-12, (step, gap, bound)


@pytest.mark.parametrize("history, clamp", [(100, False), (100, True)])  # pairs never dropped: torch's iterates
def test_the_iterates_are_torchs(history: int, clamp: bool) -> None:
    done = []
    ours = trajectory(rosenbrock, lambda p, c: done.append(minimize(p, c, 30, history_size=history)), clamp)
    theirs = trajectory(rosenbrock, torch_lbfgs(30, history), clamp)
    assert done[0].evaluations == len(theirs) and len(theirs) == (11 if clamp else 30)  # the clamp stalls it
    for step, (mine, reference) in enumerate(zip(ours, theirs), 1):
        assert torch.allclose(mine, reference, rtol=1e-9, atol=1e-12), step


def skipped_with_full_history(points: list[torch.Tensor], loss_of: Callable, history: int) -> int:
    """How many of the curvature pairs along ``points`` torch skips (y.s <= 1e-10) once ``history`` are stored."""
    grads = [torch.autograd.grad(loss_of(x.requires_grad_(True)), x)[0] for x in (p.clone() for p in points)]
    stored = skipped = 0
    for k in range(1, len(points) - 1):  # the pair made after the step from points[k - 1] to points[k]
        curved = float((grads[k] - grads[k - 1]).reshape(-1).dot((points[k] - points[k - 1]).reshape(-1))) > CURVED
        skipped += stored >= history and not curved
        stored += curved
    return skipped


def double_well(x: torch.Tensor) -> torch.Tensor:
    """Non-convex (``x^4 / 4 - x^2 / 2`` per entry): steps across the hump give pairs with ``y.s < 0``."""
    return (x.pow(4) / 4 - x.pow(2) / 2).sum()


@pytest.mark.parametrize("seed, history", [(0, 5), (3, 3)])
def test_a_skipped_pair_evicts_no_real_one(seed: int, history: int) -> None:
    """Pairs skipped (y.s <= 1e-10) with the history full, then curved ones again: torch keeps its pairs, so do we."""
    start = 0.6 * torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    theirs = trajectory(double_well, torch_lbfgs(40, history), start=start)
    assert skipped_with_full_history(theirs, double_well, history) > 0  # the case this test is about happens
    assert_torchs_to_roundoff(double_well, start, 40, history)


@pytest.mark.parametrize("history", [100, 7])  # 7: the ring of pairs wraps many times
def test_the_iterates_are_torchs_over_60_evaluations(history: int) -> None:
    assert_torchs_to_roundoff(rosenbrock, torch.linspace(-0.2, 0.5, 75, dtype=torch.float64).reshape(3, 5, 5), 60,
                              history)


def tiny_style_problem(size: int = 32) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """A seeded vgg-like net (float64) and the relative content + Gram style loss of a ``(1, 3, size, size)`` image."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                        nn.ReLU()).double().requires_grad_(False)
    content, style = (torch.rand(1, 3, size, size, generator=generator, dtype=torch.float64) for _ in range(2))

    def features(x: torch.Tensor) -> list[torch.Tensor]:
        first = net[1](net[0](x))
        return [first, net[4](net[3](net[2](first)))]

    grams, target = [gram_matrix(f) for f in features(style)], features(content)[-1]

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        found = features(x)
        return content_loss(found[-1], target, relative=True) + sum(
            style_loss(f, gram, relative=True) for f, gram in zip(found, grams))

    return content, loss_of


def test_the_iterates_are_torchs_on_a_style_problem() -> None:
    """Style transfer's use: a Gram loss through a small conv net, the image clamped to [0, 1] in the closure;
    a history of 5 pairs, so that the ring wraps 9 times in 50 evaluations."""
    start, loss_of = tiny_style_problem()
    assert_torchs_to_roundoff(loss_of, start, 50, 5, clamp=True)


def two_loop(grad: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]], h_diag: torch.Tensor) -> torch.Tensor:
    """The oracle: torch.optim.LBFGS's two-loop recursion over ``pairs`` ``[(s, y)]``, oldest first."""
    q, alphas = grad.neg(), []
    for s, y in reversed(pairs):
        alphas.append(s.dot(q) / y.dot(s))
        q = q - alphas[-1] * y
    direction = q * h_diag
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        direction = direction + (alpha - y.dot(direction) / y.dot(s)) * s
    return direction


def test_the_direction_is_the_two_loops_with_a_wrapped_ring_and_skipped_pairs() -> None:
    generator = torch.Generator().manual_seed(0)
    n, capacity = 60, 6
    hessian = torch.diag(torch.logspace(0, 4, n, dtype=torch.float64))  # curvatures spread over 4 decades
    made = [torch.randn(n, generator=generator, dtype=torch.float64) for _ in range(17)]
    grads = [torch.randn(n, generator=generator, dtype=torch.float64) for _ in made]
    pairs = {dtype: CurvaturePairs(n, capacity, dtype, torch.device("cpu")) for dtype in (torch.float64, torch.float32)}
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    for k, (s, grad) in enumerate(zip(made, grads)):
        y = -hessian @ s if k % 4 == 3 else hessian @ s  # every 4th pair has y.s < 0: skipped
        if k % 4 != 3:
            kept = (kept + [(s, y)])[-capacity:]
        h_diag = kept[-1][0].dot(kept[-1][1]) / kept[-1][1].dot(kept[-1][1]) if kept else torch.tensor(1.0)
        exact = two_loop(grad, kept, h_diag)
        ours = {dtype: p.add_and_direct(s.to(dtype), y.to(dtype), grad.to(dtype)) for dtype, p in pairs.items()}
        assert torch.allclose(ours[torch.float64], exact, rtol=1e-10, atol=1e-12), k
        single = two_loop(grad.float(), [(a.float(), b.float()) for a, b in kept], h_diag.float())
        error = {name: float((d.double() - exact).norm() / exact.norm()) for name, d in
                 (("compact", ours[torch.float32]), ("two-loop", single))}
        assert error["compact"] < 1e-5 and error["compact"] < 10 * error["two-loop"] + 1e-6, (k, error)


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


def test_the_device_is_read_only_every_check_every_evaluations(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``bool``/``float``/``int``/``item``/``tolist`` of a tensor per evaluation (each one is a host sync on a GPU):
    one read of the flag every ``check_every`` evaluations and the count at the end."""
    reads: list[str] = []
    for name in ("__bool__", "__float__", "__int__", "__index__", "item", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _name=name, _original=original: (
            reads.append(_name), _original(self, *a))[1])
    start = torch.linspace(-0.2, 0.5, 75, dtype=torch.float64).reshape(3, 5, 5)
    calls = []
    trajectory(rosenbrock, lambda p, c: calls.append(minimize(p, c, 60, history_size=7, check_every=25)), start=start)
    monkeypatch.undo()
    assert calls[0].calls == 60 and reads == ["__bool__", "__bool__", "__int__"], reads
