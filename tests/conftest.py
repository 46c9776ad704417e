"""Shared fixtures: tiny seeded models, and a guarantee that no test downloads anything."""

from __future__ import annotations

import urllib.error
from collections.abc import Callable

import pytest
import torch

from benchmarks.measure_record import cloned
from tinynets import tiny

torch.set_num_threads(2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``cuda``-marked tests without a GPU, and ``slow`` ones unless asked for with ``-m slow``."""
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is false)")
    not_asked = pytest.mark.skip(reason="slow: run with -m slow")
    asked_for_slow = "slow" in (config.getoption("-m") or "")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        if "slow" in item.keywords and not asked_for_slow:
            item.add_marker(not_asked)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any weight download fail as it does offline, so tests never reach the network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("downloads are disabled in tests")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture
def model() -> torch.nn.Sequential:
    """A fresh tiny 3-channel CNN for 16x16 inputs, in training mode (as users often leave theirs)."""
    return tiny()


@pytest.fixture
def batch() -> torch.Tensor:
    """A seeded batch of two 3x16x16 images in [0, 1]."""
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def no_hooks_left(module: torch.nn.Module) -> bool:
    """True when no module of ``module`` keeps any forward, pre-forward or backward hook."""
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks and not m._backward_pre_hooks
        for m in module.modules()
    )


def model_state(module: torch.nn.Module) -> tuple[object, ...]:
    """What cnn-probe must never change on a module: every mode flag, ``requires_grad``, weight and buffer
    value, and device, with the hook count (compare before and after a call)."""
    flags = tuple(m.training for m in module.modules())
    grads = tuple(p.requires_grad for p in module.parameters())
    values = tuple((name, t.device, t.detach().clone()) for name, t in [*module.named_parameters(), *module.named_buffers()])
    return flags, grads, values, no_hooks_left(module)


def same_state(before: tuple[object, ...], after: tuple[object, ...]) -> bool:
    """Whether two :func:`model_state` snapshots agree (tensors compared exactly)."""
    (flags, grads, values, hooks), (flags2, grads2, values2, hooks2) = before, after
    return (flags, grads, hooks) == (flags2, grads2, hooks2) and len(values) == len(values2) and all(
        n == n2 and d == d2 and torch.equal(t, t2) for (n, d, t), (n2, d2, t2) in zip(values, values2))


def clones_while(work: Callable[[], object]) -> int:
    """How many tensors ``work`` cloned."""
    return cloned(work)[0]
