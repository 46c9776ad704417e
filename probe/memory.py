"""Memory estimates made before a large allocation, so that a run too big for the machine says so at once.

A dream or a style transfer keeps, for the backward pass, the activations of every layer up to the
deepest one it reads: their size grows with the image's area. :func:`bytes_per_pixel` measures what
autograd saves in two small forward passes (the slope between them, so the weights it also saves do
not count), :func:`available_bytes` asks the device what is free, and :func:`check_fits` compares
the two and raises one clear error naming what to change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.runtime import free_memory

__all__ = ["is_out_of_memory", "available_bytes", "saved_bytes", "bytes_per_pixel", "check_fits", "format_bytes", "HEADROOM"]

HEADROOM = 1.5
"""Peak memory of a gradient step over the activations saved for it (the gradients being computed)."""


OOM_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")
"""Substrings of the errors torch raises when an allocation fails: CUDA's, and the CPU allocator's."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a failed allocation: ``MemoryError``, CUDA's or the CPU allocator's RuntimeError."""
    if isinstance(error, MemoryError):
        return True
    return isinstance(error, RuntimeError) and any(words in str(error).lower() for words in OOM_WORDS)


def format_bytes(count: float) -> str:
    """``1.5e9`` -> ``"1.4 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory on ``device`` in bytes: on CUDA what this process may still allocate
    (:func:`probe.runtime.free_memory`: free, plus torch's unused cache, within the per-process cap), else the OS's.

    On the CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else ``os.sysconf`` available pages.
    None when it cannot be known (the caller then skips its check).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return free_memory(device)
    if device.type != "cpu":
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def saved_bytes(forward: Callable[[], Any], *, largest: bool = False) -> int:
    """Bytes autograd keeps for the backward pass while ``forward()`` runs (each storage counted once).

    With ``largest``, the size of the largest one tensor instead: about half the peak of the same
    forward pass without gradients (its input and output alive together).
    """
    seen: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta":
            seen[(tensor.data_ptr(), tensor.numel())] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), torch.enable_grad():
        result = forward()
    del result
    return max(seen.values(), default=0) if largest else sum(seen.values())


def bytes_per_pixel(
    features: Callable[[torch.Tensor], Any],
    channels: int,
    device: torch.device,
    size: tuple[int, int],
    *,
    largest: bool = False,
) -> float | None:
    """Activation memory per input pixel of ``features(images)``, a forward pass with gradients.

    ``features`` gets a grey ``(1, channels, H, W)`` image that requires grad, on ``device``, at
    ``size`` and at 1.5 times its sides; the slope between the two leaves out what does not grow with
    the image (the weights). ``largest``: per pixel of the largest single activation (see
    :func:`saved_bytes`). None when the forward pass refuses a probe size (a
    :class:`~probe.errors.ProbeUsageError`: the real run will say why).
    """
    small = (max(1, size[0]), max(1, size[1]))
    large = (small[0] * 3 // 2 + 1, small[1] * 3 // 2 + 1)

    def forward_at(rows: int, columns: int) -> Any:
        return features(torch.full((1, channels, rows, columns), 0.5, device=device).requires_grad_(True))

    try:
        low, high = (saved_bytes(lambda s=s: forward_at(*s), largest=largest) for s in (small, large))
    except ProbeUsageError:
        return None
    return max(0.0, (high - low) / (large[0] * large[1] - small[0] * small[1]))


def check_fits(needed: float, device: torch.device | str, what: str, advice: str) -> None:
    """Raise :class:`~probe.errors.ProbeRuntimeError` when ``needed`` bytes exceed the free memory of ``device``.

    Args:
        needed: the estimate, in bytes.
        device: where it would be allocated.
        what: the work, for the message (``"a 8000x8000 dream without tiles"``).
        advice: what to change, first thing first (``"add --tile 512, or a smaller --size"``).
    """
    free = available_bytes(device)
    if free is not None and needed > free:
        raise ProbeRuntimeError(
            f"{what} needs about {format_bytes(needed)} of memory, but {format_bytes(free)} is free on "
            f"{torch.device(device)}; {advice}"
        )
