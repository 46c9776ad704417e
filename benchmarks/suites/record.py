"""Recording overhead: a vgg16 forward pass with ``probe.record`` on three layers vs the plain pass.

Random weights (speed does not depend on them), batch 16 at 224 px, under
``torch.inference_mode``. The recording case opens and closes the ``with``
block around every forward pass, as a notebook does, so hook registration and
removal are timed too. A second row keeps only the spatial mean of each
channel (``reduce="mean"``): the memory kept drops by the maps' area.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.harness import Row, measure

LAYERS = ("features.8", "features.18", "features.29")  # relu2_2, relu3_4... conv blocks 2, 3, 5 of vgg16


def _setup(device: str, batch: int, size: int):
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval().to(device)
    images = torch.rand(batch, 3, size, size, device=device)
    return model, images


def plain(device: str, batch: int, size: int) -> Callable[[], Any]:
    """The model's own forward pass, nothing recorded."""
    import torch

    model, images = _setup(device, batch, size)

    def work() -> None:
        with torch.inference_mode():
            model(images)

    return work


def recorded(device: str, batch: int, size: int, reduce: str | None = None) -> Callable[[], Any]:
    """The same pass inside ``probe.record(model, LAYERS, reduce=reduce)``."""
    import torch

    import probe

    model, images = _setup(device, batch, size)

    def work() -> dict[str, float]:
        with torch.inference_mode(), probe.record(model, list(LAYERS), reduce=reduce) as acts:
            model(images)
        kept = sum(t.numel() * t.element_size() for t in acts.values())
        return {"kept_mb": kept / 2**20}

    return work


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    batch, size, repeat = (4, 112, 3) if quick else (16, 224, 7)
    config = {"device": device, "batch": batch, "size": size}
    base = measure("benchmarks.suites.record:plain", config, repeat)
    rows = []
    for reduce in (None, "mean"):
        ours = measure("benchmarks.suites.record:recorded", {**config, "reduce": reduce}, repeat)
        overhead = ours.seconds / base.seconds - 1
        rows.append(Row(
            suite="record",
            case=f"vgg16 b{batch} {size}px, 3 layers, {'full maps' if reduce is None else 'reduce=mean'}",
            peer_name="plain forward",
            ours=ours,
            peer=base,
            note=f"overhead {100 * overhead:+.1f}%, kept {ours.extra['kept_mb']:.2f} MiB",
        ))
    return rows, []
