"""What probe.record does per forward pass: no host read, no listing of the model."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F
from syncshim import SyncCounter
from torch import nn

import probe


class InPlace(nn.Module):
    """conv -> in-place ReLU -> conv -> ``out += x`` -> an output that is a view of its own weight."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.table = Table()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv1(x)
        F.relu(first, inplace=True)
        second = self.conv2(first)
        second += first
        return second.mean((2, 3)) + self.table(x).sum()


class Table(nn.Module):
    """Returns a view of its own parameter (a learned table): the recording must copy it after the pass."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.arange(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight.detach()[None]


LAYERS = ["conv1", "conv2", "table"]
MODES: dict[str, Callable[[], object]] = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


@pytest.fixture
def model() -> InPlace:
    return InPlace().eval()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduce", [None, "mean"])
def test_a_recorded_pass_reads_nothing_back_from_the_device(model: InPlace, mode: str, reduce: str | None) -> None:
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with SyncCounter() as syncs, MODES[mode](), probe.record(model, LAYERS, reduce=reduce):
        for _ in range(3):
            model(x)
    assert len(syncs) == 0 and not syncs.uploads, (syncs.where(), syncs.uploads)


def _listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of ``nn.Module.parameters``/``buffers``/``modules``/``named_modules`` from now on."""
    calls: list[str] = []
    for name in ("parameters", "buffers", "modules", "named_modules"):
        original = getattr(nn.Module, name)

        def counted(self: nn.Module, *args: object, _name: str = name, _original: Callable = original,
                    **kwargs: object) -> Iterator:
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(nn.Module, name, counted)
    return calls


@pytest.mark.parametrize("reduce", [None, "mean"])
def test_passes_inside_one_block_do_not_list_the_model(model: InPlace, monkeypatch: pytest.MonkeyPatch,
                                                       reduce: str | None) -> None:
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), probe.record(model, LAYERS, reduce=reduce) as acts:
        calls = _listings(monkeypatch)
        for _ in range(3):
            model(x)
    assert calls == []  # the weights' storages are read from the modules listed when the block began
    expected = model.conv1(x)
    if reduce is not None:
        expected = expected.mean((2, 3))
    torch.testing.assert_close(acts["conv1"], expected)  # the conv's own output, before the in-place ReLU


def test_a_parameter_replaced_between_passes_of_one_block_is_still_not_handed_out(model: InPlace) -> None:
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad(), probe.record(model, LAYERS) as acts:
        model(x)
        model.table.weight = nn.Parameter(torch.full((4,), 7.0))  # a new tensor the block did not see at its start
        model(x)
    with torch.no_grad():
        model.table.weight.zero_()  # the user writes into their weight after the pass
    assert torch.equal(acts["table"], torch.full((1, 4), 7.0))  # a copy: what the module returned then
