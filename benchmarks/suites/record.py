"""Recording overhead: a vgg16 forward pass with ``probe.record`` on three layers vs the plain pass.

Random weights (speed does not depend on them), batch 16 at 224 px, under
``torch.inference_mode``, the two sides interleaved in one process. The
recording case opens and closes the ``with`` block around every forward pass,
as a notebook does, so hook registration and removal are timed too. A second
row keeps only the spatial mean of each channel (``reduce="mean"``): the
memory kept drops by the maps' area. A third records the three convolutions
before those ReLUs, whose outputs the in-place ReLUs rewrite: the copy that
keeps their values is what the third row times. Every pass copies just
before the first write into an output (record watches the pass's writes): the
first two rows copy nothing (the ReLUs' outputs are rewritten by nobody) and
the third copies the three convolutions.
CPU figures before and after: ``benchmarks/measure_record.py``.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Measurement, Row, measure

LAYERS = ("features.8", "features.18", "features.29")  # relu2_2, relu4_1, relu5_3 of vgg16
CONVS = ("features.7", "features.17", "features.28")  # conv2_2, conv4_1, conv5_3: rewritten by in-place ReLUs


@functools.lru_cache(maxsize=None)
def _setup(device: str, batch: int, size: int):
    """vgg16 (seeded random weights) and a batch of images, built once per process."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval().to(device)
    images = torch.rand(batch, 3, size, size, device=device)
    return model, images


def interleaved(
    device: str, batch: int, size: int, reduce: str | None, pairs: int, layers: tuple[str, ...] = LAYERS
) -> Callable[[], Any]:
    """Plain and recorded passes in alternation, ``pairs`` of each, in one process.

    The overhead is a few percent at most, below the spread between fresh
    processes (caches, memory layout), so both sides run in the same process,
    interleaved, and the medians are compared.
    """
    import statistics
    import time

    import torch

    import probe

    model, images = _setup(device, batch, size)

    def timed(record: bool) -> tuple[float, float]:
        start = time.perf_counter()
        kept = 0.0
        with torch.inference_mode():
            if record:
                with probe.record(model, list(layers), reduce=reduce) as acts:
                    model(images)
                kept = sum(t.numel() * t.element_size() for t in acts.values()) / 2**20
            else:
                model(images)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start, kept

    timed(False), timed(True)  # warm-up: allocator, kernels

    def work() -> dict[str, Any]:
        plain_runs, recorded_runs = [], []
        kept = 0.0
        for _ in range(pairs):
            plain_runs.append(timed(False)[0])
            seconds, kept = timed(True)
            recorded_runs.append(seconds)
        return {"plain": plain_runs, "recorded": recorded_runs, "kept_mb": kept}

    return work


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    batch, size, pairs = (4, 112, 5) if quick else (16, 224, 15)
    rows = []
    cases = ((LAYERS, None, "full maps"), (LAYERS, "mean", "reduce=mean"), (CONVS, None, "convs before in-place ReLUs"))
    for layers, reduce, label in cases:
        measured = measure("benchmarks.suites.record:interleaved",
                           {"device": device, "batch": batch, "size": size, "reduce": reduce, "pairs": pairs,
                            "layers": list(layers)},
                           repeat=1, warmup=False)  # the set-up warms up with one pair
        plain, recorded = measured.extra["plain"], measured.extra["recorded"]
        ours = Measurement(statistics.median(recorded), recorded, measured.peak_mb, {"kept_mb": measured.extra["kept_mb"]})
        peer = Measurement(statistics.median(plain), plain, 0.0)
        overhead = ours.seconds / peer.seconds - 1
        rows.append(Row(
            suite="record",
            case=f"vgg16 b{batch} {size}px, 3 layers, {label}",
            peer_name="plain forward",
            ours=ours,
            peer=peer,
            note=f"overhead {100 * overhead:+.1f}%, activations kept {ours.extra['kept_mb']:.2f} MiB",
        ))
    return rows, []
