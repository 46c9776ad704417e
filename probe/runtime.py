"""Small pieces every optimization loop shares: seeds, precision, NaN checks, progress callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

import torch

from probe.errors import ProbeRuntimeError, ProbeUsageError

__all__ = ["Precision", "ProgressFn", "make_generator", "autocast", "check_finite", "check_finite_output", "PRECISIONS"]

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")

ProgressFn = Callable[[int, int, dict[str, float]], None]
"""``progress(step, total, metrics)``: called once per optimization step (step counts from 1)."""


def make_generator(seed: int | torch.Generator | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (0 when None); a generator passes through.

    Every random choice of cnn-probe (initial images, jitter, offsets) draws
    from such a generator, never from global state: same seed, same image on
    the same device.
    """
    if isinstance(seed, torch.Generator):
        return seed
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(0 if seed is None else int(seed))
    return generator


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision = "fp32") -> Iterator[None]:
    """Mixed precision for the forward pass: ``bf16``/``fp16`` autocast on CUDA, nothing for ``fp32``.

    On the CPU, ``bf16`` autocast is used as asked (slow on most CPUs); ``fp16``
    is CUDA-only.

    Raises:
        ProbeUsageError: unknown precision, or fp16 off CUDA.
    """
    if precision not in PRECISIONS:
        raise ProbeUsageError(f"unknown precision {precision!r}; precisions are: {', '.join(PRECISIONS)}", param="precision")
    if precision == "fp32":
        yield
        return
    if precision == "fp16" and device.type != "cuda":
        raise ProbeUsageError("fp16 needs a CUDA device; use --precision bf16 or fp32", param="precision")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def check_finite(tensor: torch.Tensor, what: str, step: int | None = None) -> None:
    """Raise :class:`ProbeRuntimeError` if ``tensor`` holds NaN or inf, saying what to change."""
    if not bool(torch.isfinite(tensor).all()):
        where = f" at step {step}" if step is not None else ""
        raise ProbeRuntimeError(
            f"{what} became NaN or infinite{where}; lower the learning rate (--lr) or the penalty weights, "
            "or use --precision fp32"
        )


def check_finite_output(name: str, module: torch.nn.Module, output: torch.Tensor) -> None:
    """Refuse a NaN/inf model output (no "prediction 0 (nan%)", no NaN heat maps), saying where it comes from.

    Args:
        name: the model's name, for the message.
        module: the network, whose weights and buffers are counted when the output is not finite.
        output: what it returned, e.g. ``(N, K)`` logits.

    Raises:
        ProbeRuntimeError: ``output`` holds NaN or inf; the message says whether the weights do.
    """
    if bool(torch.isfinite(output).all()):
        return
    bad = sum(int((~torch.isfinite(p)).sum()) for p in module.parameters())
    bad += sum(int((~torch.isfinite(b)).sum()) for b in module.buffers() if b.is_floating_point())
    where = (f"{bad:,} of its weights/buffers are NaN or infinite: load other weights (--weights)" if bad else
             "its weights are finite, so a layer overflowed: check the image and the model's normalization")
    raise ProbeRuntimeError(f"{name}'s output for this image is NaN or infinite; {where}")
