"""probe.record reads exactly what the model computed, and the model computes as it does alone.

The reference is a hook-free copy of the pass: each module's ``forward`` wrapped to clone what it returns
(:func:`truth`), run in the same grad / inference / autocast mode, compared bitwise. The model side: it runs
once per call (its own hooks, global hooks, batch-norm statistics and random draws are a plain forward's), and
what it shares with others after the pass (its input, buffers and parameters) is copied.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import probe
from conftest import no_hooks_left
from test_record_reference import REWRITES, After, Rewritten, keyed, true_outputs

F = nn.functional

MODES: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
    "enable_grad": torch.enable_grad,
    "autocast bf16": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
}


def truth(net: nn.Module, inputs: torch.Tensor, mode: Callable[[], contextlib.AbstractContextManager],
          seed: int = 0) -> dict[str, torch.Tensor]:
    """``{name or name#K: output}``: every module's output, cloned inside its ``forward`` as it returns, from a
    hook-free pass in ``mode`` (the model computes with the originals, as it does alone)."""
    return keyed(true_outputs(net, inputs, seed, mode))


class InParent(nn.Module):
    """conv, then ``rewrite`` in the parent's own forward (not in a module after it), then a 1x1 conv."""

    def __init__(self, rewrite: Callable[[torch.Tensor], torch.Tensor | None]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)
        self.rewrite = rewrite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        out = self.rewrite(y)
        return self.head(y if out is None else out)


def _net(rewrite: str, where: str) -> nn.Module:
    return (Rewritten(After(REWRITES[rewrite])) if where == "later module" else InParent(REWRITES[rewrite])).eval()


CASES = [(rewrite, mode, "later module") for rewrite in REWRITES for mode in ("enable_grad", "autocast bf16")
         if not ("out=" in rewrite)]  # out= refuses a tensor in a graph: the model itself fails
CASES += [(rewrite, "inference_mode", "parent forward") for rewrite in REWRITES]  # no_grad, inference_mode in a
# later module: test_record_reference.test_record_and_capture_read_the_output_before_each_kind_of_in_place_rewrite


@pytest.mark.parametrize(("rewrite", "mode", "where"), CASES)
def test_every_in_place_form_in_every_mode_is_read_before_it(rewrite: str, mode: str, where: str) -> None:
    net = _net(rewrite, where)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = truth(net, x, MODES[mode])
    for _ in range(2):  # a first pass and one like it
        with MODES[mode](), probe.record(net, ["conv", "head"]) as acts:
            net(x)
        assert torch.equal(acts["conv"], expected["conv"]) and torch.equal(acts["head"], expected["head"])
    assert acts["conv"].min() < 0 and no_hooks_left(net)


REDUCTIONS = {None: lambda t: t, "mean": lambda t: t.flatten(2).mean(2), "max": lambda t: t.flatten(2).amax(2),
              "sum": lambda t: t.flatten(2).sum(2)}


@pytest.mark.parametrize("reduce", list(REDUCTIONS))
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_reductions_layouts_and_gradients_of_one_image_are_the_outputs_before_the_rewrite(reduce, layout) -> None:
    """Batch of 1, channels-last or not, each reduction, grads=True: the value and d(loss)/d(value) of the conv's
    output as it returned, before ``relu_`` rewrote it (the gradient from a copy of the pass that starts there)."""
    net = _net("Tensor.relu_", "later module")
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    if layout == "channels_last":
        x, net = x.to(memory_format=torch.channels_last), net.to(memory_format=torch.channels_last)
    start = net.conv(x).detach().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad(net.head(start.clone().relu_()).sum(), start)
    for _ in range(2):
        with probe.record(net, "conv", reduce=reduce, grads=True) as acts:
            net(x).sum().backward()
        assert torch.equal(acts["conv"], REDUCTIONS[reduce](start.detach()))
        assert torch.allclose(acts.grads["conv"], REDUCTIONS[reduce](expected_grad), atol=1e-6)
    net.zero_grad()


class Sometimes(nn.Module):
    """conv -> batch norm -> in-place dropout, then an in-place ReLU only when the batch's mean is positive."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.drop = nn.Dropout(0.3, inplace=True)
        self.head = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        out = self.drop(self.bn(self.conv(x)))
        return self.head(out.relu_() if x.mean() > 0 else out.relu()) * scale


BASE = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
PASSES = (-BASE - 1, -BASE - 1, BASE + 1, BASE + 1, -BASE - 1)  # the third pass rewrites what the others left


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "enable_grad"])
def test_a_pass_under_record_changes_the_model_as_a_plain_pass_does(mode: str, training: bool) -> None:
    """Statistics, random draws and outputs of a recorded pass are a plain pass's, pass after pass, also when a
    pass rewrites in place what the earlier ones left; the values are the reference's."""
    net, plain = Sometimes().train(training), Sometimes().train(training)
    for seed, images in enumerate(PASSES):
        expected = truth(copy.deepcopy(net), images, MODES[mode], seed)
        torch.manual_seed(seed)
        with MODES[mode]():
            plain_out = plain(images)
        after_plain = torch.get_rng_state()
        torch.manual_seed(seed)
        with MODES[mode](), probe.record(net, ["bn", "drop"]) as acts:
            out = net(images)
        assert torch.equal(torch.get_rng_state(), after_plain) and torch.equal(out, plain_out)
        assert all(torch.equal(a, b) for a, b in zip(net.bn.buffers(), plain.bn.buffers()))
        assert torch.equal(acts["bn"], expected["bn"]) and torch.equal(acts["drop"], expected["drop"])
    assert int(net.bn.num_batches_tracked) == (len(PASSES) if training else 0)


def test_the_users_hooks_of_every_kind_run_once_per_pass() -> None:
    net = Sometimes().eval()
    runs: dict[str, int] = dict.fromkeys(["forward", "prepend", "with_kwargs", "pre", "global", "global pre"], 0)

    def counter(kind: str) -> Callable[..., None]:
        return lambda *args: runs.__setitem__(kind, runs[kind] + 1)

    modules = nn.modules.module
    handles = [net.conv.register_forward_hook(counter("forward")),
               net.conv.register_forward_hook(counter("prepend"), prepend=True),
               net.register_forward_hook(counter("with_kwargs"), with_kwargs=True),
               net.register_forward_pre_hook(counter("pre")),
               modules.register_module_forward_hook(lambda m, a, o: counter("global")() if m is net else None),
               modules.register_module_forward_pre_hook(lambda m, a: counter("global pre")() if m is net else None)]
    try:
        for images in PASSES:
            with torch.no_grad(), probe.record(net, ["conv", "drop", "output"]) as acts:
                out = net(images, scale=2.0)
            assert torch.equal(acts["output"], out)
    finally:
        for handle in handles:
            handle.remove()
    assert runs == dict.fromkeys(runs, len(PASSES))
    assert no_hooks_left(net)


class Returns(nn.Module):
    """Returns what it is given, its buffer or its parameter: tensors others write into after the pass."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self.register_buffer("buffer", torch.zeros(1, 3, 4, 4))
        self.parameter = nn.Parameter(torch.ones(1, 3, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.what == "input":
            return x
        if self.what == "buffer":
            self.buffer.copy_(x)  # the next pass overwrites it
            return self.buffer
        return self.parameter


@pytest.mark.parametrize("what", ["input", "buffer", "parameter"])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_outputs_sharing_a_tensor_that_others_write_after_the_pass_keep_their_value(what: str, mode: str) -> None:
    net = nn.Sequential(Returns(what), nn.Conv2d(3, 2, 1)).eval()
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    given = x.clone()
    with MODES[mode]():
        expected = truth(net, x, MODES[mode])["0"]
        with probe.record(net, ["0", "input"]) as acts:
            net(x)
            net(x)  # a second pass
    x.mul_(0)  # the caller reuses its input
    net(torch.full_like(x, 7.0))  # a later pass rewrites the buffer
    with torch.no_grad():
        net[0].parameter.add_(1.0)  # an optimizer step
    assert torch.equal(acts["0"], expected) and torch.equal(acts["input"], given)


class Checkpointed(nn.Module):
    """A conv and an in-place ReLU inside ``torch.utils.checkpoint``: backward() runs the conv again."""

    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)
        self.head = nn.Conv2d(3, 2, 1)
        self.reentrant = reentrant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(checkpoint(lambda t: F.relu(self.conv(t), inplace=True), x, use_reentrant=self.reentrant))


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
def test_a_checkpointed_layer_is_recorded_once_per_pass_with_its_gradient(reentrant: bool) -> None:
    """The recomputation in backward() is no pass of its own: accumulate keeps one value per pass (not two), the
    value before the ReLU, and the gradient w.r.t. it."""
    net = Checkpointed(reentrant)
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    start = net.conv(x).detach().requires_grad_(True)
    (expected_grad,) = torch.autograd.grad(net.head(F.relu(start)).sum(), start)
    with probe.record(net, "conv", grads=True, accumulate=True) as acts:
        for _ in range(2):
            net(x).sum().backward()
    assert torch.equal(acts["conv"], torch.cat([start.detach()] * 2))
    assert torch.allclose(acts.grads["conv"], torch.cat([expected_grad] * 2), atol=1e-6)
    assert acts.calls == {"conv": 1} and no_hooks_left(net)


class Scaled(nn.Module):
    """A conv taking a keyword argument."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, *, scale: float) -> torch.Tensor:
        return self.conv(x) * scale


class TwiceWithKwargs(nn.Module):
    """The same keyword-taking block twice, its output rewritten in place after each call."""

    def __init__(self) -> None:
        super().__init__()
        self.block = Scaled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x, scale=2.0)
        y.relu_()
        z = self.block(y, scale=-1.0)
        z += 1
        return z


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "autocast bf16"])
def test_a_block_called_twice_with_kwargs_is_read_per_call(mode: str) -> None:
    net = TwiceWithKwargs().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = truth(net, x, MODES[mode])
    for _ in range(2):
        with MODES[mode](), probe.record(net, "block") as acts:
            net(x)
        assert set(acts) == {"block#0", "block#1"}
        assert torch.equal(acts["block#0"], expected["block#0"]) and torch.equal(acts["block#1"], expected["block#1"])


def test_a_users_forward_hook_is_part_of_the_layer_when_it_runs_before_records() -> None:
    """What record reads is what its hook receives: the output as changed by the hooks that run before it (the
    user's hooks registered before the block, ``prepend=True`` ones, global hooks), in place or replaced, which
    is what the model's next layers read; a hook added inside the block runs after record's, and its in-place
    change comes after the recorded value."""
    net = _net("Tensor.relu_", "later module")
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    conv = net.conv(x).detach()
    before = [net.conv.register_forward_hook(lambda m, a, out: out.mul_(2.0)),
              net.conv.register_forward_hook(lambda m, a, out: out + 1.0)]
    try:
        with torch.no_grad(), probe.record(net, "conv") as acts:
            net(x)
        assert torch.equal(acts["conv"], conv * 2.0 + 1.0)
        with torch.no_grad(), probe.record(net, "conv") as acts:
            late = net.conv.register_forward_hook(lambda m, a, out: out.mul_(-1.0))
            net(x)
            late.remove()
        assert torch.equal(acts["conv"], conv * 2.0 + 1.0)
    finally:
        for handle in before:
            handle.remove()


@contextlib.contextmanager
def grad_inside_inference_mode():
    """Grad mode on, tensors still inference tensors (no version counter, no graph)."""
    with torch.inference_mode(), torch.enable_grad():
        yield


MODES["enable_grad in inference_mode"] = grad_inside_inference_mode


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "enable_grad in inference_mode"])
def test_capture_without_a_graph_reads_a_rewrite_that_depends_on_the_data_and_runs_the_model_once(mode) -> None:
    """capture (the atlas's dataset pass, under no_grad) keeps what it reads uncopied until a write, as record
    does: right under inference_mode too, and never a second pass."""
    net = Sometimes().eval()
    runs: list[int] = []
    handle = net.bn.register_forward_hook(lambda *args: runs.append(1))
    try:
        for images in PASSES:
            expected = truth(net, images, MODES[mode])
            with MODES[mode]():
                captured = probe.capture(net, images, ["bn", "drop"], stop_early=False)
            assert torch.equal(captured["bn"], expected["bn"]) and torch.equal(captured["drop"], expected["drop"])
    finally:
        handle.remove()
    assert len(runs) == 2 * len(PASSES)  # truth's pass and capture's, each once


class InAThread(nn.Module):
    """Runs its conv and an in-place ReLU in a worker thread, as ``DataParallel`` runs each replica."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import threading

        out: list[torch.Tensor] = []
        worker = threading.Thread(target=lambda: out.append(F.relu(self.conv(x), inplace=True)))
        worker.start()
        worker.join()
        return out[0]


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_a_layer_run_in_another_thread_is_read_before_its_rewrite(mode: str) -> None:
    net = InAThread().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = net.conv(x).detach()
    for _ in range(2):
        with MODES[mode]():
            with probe.record(net, "conv") as acts:
                net(x)
            captured = probe.capture(net, x, ["conv"], stop_early=False)
        assert torch.equal(acts["conv"], expected) and torch.equal(captured["conv"], expected)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_the_layer_that_gives_the_output_and_the_output_are_one_tensor(mode: str) -> None:
    """``acts["head"]`` and ``acts["output"]`` hold the model's output, copied once (probe.optimize tells the
    output layer by the shared storage), and keep their values when the caller rewrites what it got back."""
    net = _net("Tensor.relu_", "later module")
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with MODES[mode](), probe.record(net, ["head", "output"]) as acts:
        out = net(x)
        expected = out.clone()
        out.mul_(0)  # the caller's own in-place use of the output
    assert acts["head"].data_ptr() == acts["output"].data_ptr()
    assert torch.equal(acts["output"], expected)
