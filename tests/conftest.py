"""Shared fixtures: tiny seeded models, and a guarantee that no test downloads anything."""

from __future__ import annotations

import urllib.error

import pytest
import torch

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
