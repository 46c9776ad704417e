"""Small pieces every optimization loop shares: seeds, precision, NaN checks, progress callbacks, batch sizes.

Loops on a GPU must not wait for it at every step: a ``float(tensor)``,
``.item()``, ``.cpu()`` or ``if tensor:`` blocks the host until the device has
caught up, and a short step then costs a launch round trip. So NaN checks are
noted on the device (:class:`FiniteLog`) and read at a few points, and progress
callbacks run every :func:`progress_every` steps on CUDA.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

import torch

from probe.checks import check_seed
from probe.choices import PRECISIONS  # torch-free: the commands' --precision offers it
from probe.errors import ProbeRuntimeError, ProbeUsageError

__all__ = [
    "Precision", "ProgressFn", "make_generator", "check_generator", "global_rng_kept", "gradients_on", "float32_default", "with_gradients", "autocast", "check_finite", "check_finite_output", "PRECISIONS", "resolve_precision",
    "FiniteLog", "progress_every", "free_memory", "CUDA_PROGRESS_EVERY", "OUT_OF_MEMORY",
]  # fmt: skip

Precision = Literal["fp32", "bf16", "fp16", "auto"]
OUT_OF_MEMORY = (
    "reduce the work per pass (--batch, --size, --tile where the command has them), try --precision bf16, "
    "or run on --device cpu"
)
"""What to do after an out-of-memory error."""
CUDA_PROGRESS_EVERY = 16
"""Steps between progress callbacks on CUDA (each callback reads a number back: one sync)."""

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
    generator.manual_seed(0 if seed is None else check_seed(seed))
    return generator


def check_generator(generator: Any) -> torch.Generator | None:
    """``generator`` if it is None or a ``torch.Generator``; else ProbeUsageError (``generator=5`` was an
    AttributeError mid-run, or taken silently as a seed)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ProbeUsageError(f"generator must be a torch.Generator or None (give a number as seed=); "
                              f"got {generator!r}", param="generator")
    return generator


@contextlib.contextmanager
def global_rng_kept(seed: int | None = None, devices: Sequence[torch.device] = ()) -> Iterator[None]:
    """Run the block with the global random states saved and restored: Python's ``random``, NumPy's, torch's.

    For code that is not ours and draws from global state: captum's noise
    (torch) and baselines (NumPy), or a library that draws a number when it is
    first imported (``rich``, which scikit-learn imports, calls
    ``random.getrandbits``). The caller's states come back unchanged, whatever
    the block drew.

    Args:
        seed: when given, all three generators (and torch's on ``devices``) are
            seeded with it inside the block, so what it draws is a function of
            ``seed`` (default None: only isolate).
        devices: CUDA devices whose generators are saved, restored (and seeded) too.
    """
    import random

    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[d for d in devices if torch.device(d).type == "cuda"]):
            if seed is not None:
                random.seed(seed)
                np.random.seed((seed ^ (seed >> 32)) & 0xFFFFFFFF)  # NumPy takes 32 bits; both halves count
                torch.manual_seed(seed)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def gradients_on() -> Iterator[None]:
    """Run the block with autograd on, outside inference mode, and float32 as torch's default dtype, whatever the
    caller set around the call; the caller's modes come back after, also on error.

    cnn-probe's gradient work (maximize, dream, style transfer, attribution) differentiates scores w.r.t. images it
    makes itself, so the caller's global modes must not reach it:

    - under ``torch.no_grad()`` or ``torch.set_grad_enabled(False)`` no graph is built, and the image's gradient
      was missing (maximize blamed a cut in the model's forward; style's autograd raised);
    - under ``torch.inference_mode()`` every new tensor is an inference tensor, which keeps no graph and no
      version counter (captum's Grad-CAM raised);
    - after ``torch.set_default_dtype(torch.float64)``, the images and statistics made without a dtype
      (``torch.rand``, ``torch.tensor(...)``) were float64, which a float32 model refused.

    Only these three modes are set; the model, its weights and the caller's tensors are not touched (an image the
    caller made under inference mode is read, never differentiated in place). The default dtype is process-wide in
    torch, so another thread making tensors without a dtype during the block gets float32 too.
    """
    with contextlib.ExitStack() as stack:
        if torch.is_inference_mode_enabled():
            stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        stack.enter_context(float32_default())
        yield


@contextlib.contextmanager
def float32_default() -> Iterator[None]:
    """Run the block with float32 as torch's default dtype (what ``torch.rand``, ``torch.tensor`` and every new
    module's parameters get without a dtype), then the caller's again: a model cnn-probe builds after the caller's
    ``torch.set_default_dtype(torch.float64)`` was a float64 model, which its float32 images did not fit."""
    default = torch.get_default_dtype()
    if default == torch.float32:
        yield
        return
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


_Function = TypeVar("_Function", bound=Callable[..., Any])


def with_gradients(function: _Function) -> _Function:
    """Decorate a public function that differentiates w.r.t. images: it runs under :func:`gradients_on`."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with gradients_on():
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision = "fp32") -> Iterator[None]:
    """Mixed precision for the forward pass: ``bf16``/``fp16`` autocast on CUDA, nothing for ``fp32``.

    On the CPU, ``bf16`` autocast is used as asked (slow on most CPUs); ``fp16``
    is CUDA-only.

    Raises:
        ProbeUsageError: unknown precision, or fp16 off CUDA.
    """
    precision = resolve_precision(precision, device)[0]
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


def resolve_precision(precision: str, device: torch.device | str, channels_last: bool = False) -> tuple[str, bool]:
    """``"auto"`` -> ``("bf16", True)`` (bf16 with channels-last) on a CUDA device with bf16, else ``("fp32", flag)``.

    Other precisions pass through with ``channels_last`` as given.
    """
    if precision != "auto":
        return precision, channels_last
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16", True
    return "fp32", channels_last


def _nonfinite(what: str, step: int | None) -> ProbeRuntimeError:
    """The error for ``what`` turning NaN/inf at ``step`` (counted from 1). At step 1 nothing was optimized yet,
    so no learning rate is to blame: the model gives NaN/inf on the starting image."""
    if step == 1:
        return ProbeRuntimeError(
            f"{what} is NaN or infinite at step 1, on the starting image, before any step was taken, so no learning "
            "rate causes it: the model's output or a layer overflows there; check its weights (--weights) and "
            "its input normalization, or use --precision fp32"
        )
    where = f" at step {step}" if step is not None else ""
    return ProbeRuntimeError(
        f"{what} became NaN or infinite{where}; lower the learning rate (--lr) or the penalty weights, "
        "or use --precision fp32"
    )


def check_finite(tensor: torch.Tensor, what: str, step: int | None = None) -> None:
    """Raise :class:`ProbeRuntimeError` if ``tensor`` holds NaN or inf, saying what to change (syncs a GPU).

    A bool ``tensor`` is taken as flags already computed on the device (True: finite).
    """
    finite = tensor.all() if tensor.dtype == torch.bool else torch.isfinite(tensor).all()
    if not bool(finite):
        raise _nonfinite(what, step)


class FiniteLog:
    """NaN/inf checks of a step loop, noted on the device and read only by :meth:`check` (one sync).

    Args:
        steps: the loop's steps (counted from 1).
        names: what each kind of check is about, e.g. ``("the objective", "the gradient")``.
        device: where the checked tensors live.
    """

    def __init__(self, steps: int, names: tuple[str, ...], device: torch.device | str) -> None:
        self.names = names
        self.flags = torch.ones(len(names), steps, dtype=torch.bool, device=device)

    def note(self, step: int, which: int, tensor: torch.Tensor) -> None:
        """Record whether ``tensor`` is finite, as check ``which`` of ``step``; no sync."""
        self.flags[which, step - 1] &= torch.isfinite(tensor.detach()).all()

    def check(self, upto: int | None = None) -> None:
        """Raise :class:`ProbeRuntimeError` naming the first failed check of steps ``1..upto`` (default all)."""
        flags = self.flags if upto is None else self.flags[:, :upto]
        if bool(flags.all()):
            return
        failed = ~flags
        step = int(failed.any(0).nonzero()[0, 0])
        which = int(failed[:, step].nonzero()[0, 0])
        raise _nonfinite(self.names[which], step + 1)


def progress_every(device: torch.device | str) -> int:
    """Steps between progress callbacks: 1 on the CPU (reading a number costs nothing), more on CUDA."""
    return 1 if torch.device(device).type == "cpu" else CUDA_PROGRESS_EVERY


def free_memory(device: torch.device | str) -> int:
    """Bytes this process may still allocate on CUDA ``device``: free memory, reserved-but-unused memory,
    within ``torch.cuda.set_per_process_memory_fraction``'s cap."""
    device = torch.device(device)
    free, total = torch.cuda.mem_get_info(device)
    reserved, allocated = torch.cuda.memory_reserved(device), torch.cuda.memory_allocated(device)
    available = free + reserved - allocated
    fraction = torch.cuda.get_per_process_memory_fraction(device) if hasattr(torch.cuda, "get_per_process_memory_fraction") else 1.0
    return int(max(0, min(available, fraction * total - allocated)))


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
