"""No step of a render loop waits for the device, and none rebuilds what it could build once.

Every method's main loop runs for few and for more steps under :class:`syncshim.SyncCounter` (host reads:
``.item()``, ``float``/``bool``/``int`` of a tensor, ``.tolist()``, ``.cpu()``, ``.numpy()``, ``nonzero``, a
boolean mask as an index, ...; and tensors built from host data, a blocking copy on CUDA): the counts must not
grow with the steps. Progress points are the exception, once every ``progress_every`` steps
(tests/test_host_sync.py). A nested :func:`probe.hooks.evaluating` of the model a loop already holds costs
nothing, where it walked every module at every step.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from syncshim import PROBE, SyncCounter
from tinynets import tiny

import probe
from probe import objectives as O
from probe.hooks import capture, evaluating
from probe.models import Preprocess, load_model


def rgb() -> probe.LoadedModel:
    return load_model(tiny(), preprocess=Preprocess((0.4, 0.4, 0.4), (0.2, 0.2, 0.2), 3, (16, 16)))


def maximize(objective: O.Objective, **options):
    return lambda steps: probe.maximize(rgb(), objective, steps=steps, image_size=16, **options)


def dream(**options):
    image = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))
    return lambda steps: probe.dream(rgb(), image, "conv2", octaves=2, jitter=3, steps=steps, **options)


def style(optimizer: str):
    content, painting = (torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(k)) for k in (1, 2))
    return lambda steps: probe.style_transfer(rgb(), content, painting, content_layers=["conv2"],
                                              style_layers=["conv1", "conv2"], size=24, steps=steps, snapshots=0,
                                              optimizer=optimizer)


LOOPS = {
    "maximize channel, fft": maximize(O.channel("conv2", range(3))),
    "maximize neuron, pixel": maximize(O.neuron("conv2", range(3)), param="pixel"),
    "maximize class - l1, plain": maximize(O.class_logit(range(3)) - 0.3 * O.l1(), preset="plain"),
    "maximize channel + diversity, maco": maximize(O.channel("conv2", [0, 0]) + O.diversity("conv2", group=2),
                                                   param="maco"),
    "dream": dream(),
    "dream tiled": dream(tile_size=12),
    "style lbfgs": style("lbfgs"),
    "style adam": style("adam"),
}


def counted(run, steps: int, roots: tuple[str, ...] = (PROBE,)) -> SyncCounter:
    with SyncCounter(roots) as syncs:
        run(steps)
    return syncs


@pytest.mark.parametrize("name", list(LOOPS))
def test_no_step_reads_the_device_or_uploads(name):
    run = LOOPS[name]
    run(1)  # what is built once per process (cached tables) is built here
    few, more = counted(run, 2), counted(run, 5)
    assert few.where() == more.where(), more.where() - few.where()  # what grew, by file:line
    assert Counter(few.uploads) == Counter(more.uploads), Counter(more.uploads) - Counter(few.uploads)


def test_a_read_added_inside_a_step_is_caught():
    """The check is not vacuous: one ``.item()`` per step (an objective's, counted as cnn-probe's) shows."""

    def reading(context):
        value = context("conv2").sum((1, 2, 3))
        value.sum().item()
        return value

    run = maximize(O.Objective(reading, "reading", layers=["conv2"]))
    run(1)
    roots = (PROBE, str(Path(__file__)))
    few, more = counted(run, 2, roots), counted(run, 5, roots)
    assert len(more) - len(few) == 3 and more.where() - few.where() == {
        f"item {Path(__file__).name}:{reading.__code__.co_firstlineno + 2}": 3}


def test_the_shim_sees_each_kind_of_read_and_gives_torch_back():
    x = torch.arange(4.0)
    originals = (torch.Tensor.item, torch.Tensor.__getitem__, torch.nonzero, torch.tensor)
    with SyncCounter((str(Path(__file__)),)) as syncs:
        x[0].item(), float(x[1]), bool(x[2]), int(x[3]), x.tolist(), x.cpu(), x.numpy(), torch.nonzero(x)
        x[x > 1], x[1:], torch.tensor([1.0]), torch.as_tensor(x)
    assert [call.split()[0] for call in syncs.calls] == [
        "item", "__float__", "__bool__", "__int__", "tolist", "cpu", "numpy", "torch.nonzero", "mask"]
    assert [call.split()[0] for call in syncs.uploads] == ["torch.tensor"]  # as_tensor of a tensor copies nothing
    assert (torch.Tensor.item, torch.Tensor.__getitem__, torch.nonzero, torch.tensor) == originals


def test_a_capture_inside_the_loops_block_does_not_walk_the_model(monkeypatch):
    model = tiny()
    model.train()
    calls = []
    original = torch.nn.Module.train

    def train(self, mode=True):
        calls.append(mode)
        return original(self, mode)

    monkeypatch.setattr(torch.nn.Module, "train", train)
    x = torch.rand(2, 3, 16, 16)
    with evaluating(model):
        calls.clear()
        for _ in range(3):
            capture(model, x, ["conv2"])
        assert calls == []  # the outer block set eval mode once; the old code set it again for every pass
        assert not any(module.training for module in model.modules())
        model.train()  # changed inside the block: the next capture puts it back in eval mode for its pass
        seen = []
        handle = model.drop.register_forward_hook(lambda module, args, out: seen.append(module.training))
        capture(model, x, ["drop"], stop_early=False)
        handle.remove()
        assert seen == [False]
    assert all(module.training for module in model.modules())  # the user's own flags, given back
