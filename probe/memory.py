"""Memory estimates made before a large allocation, so that a run too big for the machine says so at once.

This module owns "what a run will hold". An optimization run (``probe.maximize``, each atlas chunk) holds
two things: the **results it keeps** on the host (:func:`kept_bytes`: every final and start image, the
snapshots, a score per step), and the **working set of one pass** on its device (:class:`PassCost`:
``fixed + per_image * n`` for a pass of ``n`` images, measured by :func:`probe.optimize.pass_cost`).
:func:`check_results_fit` refuses, before anything is listed or measured, a run whose kept results alone
cannot fit; :func:`check_run` one whose kept results plus one pass exceed the free memory, and
:func:`fit_batch` picks ``batch="auto"``'s pass size from the same numbers; the CLI, the atlas and the
Python API all call them before the first step.

A dream or a style transfer keeps, for the backward pass, the activations of every layer up to the
deepest one it reads: their size grows with the image's area. :func:`bytes_per_pixel` measures what
autograd saves in two small forward passes (the slope between them, so the weights it also saves do
not count), :func:`available_bytes` asks the device what is free, and :func:`check_fits` compares
the two and raises one clear error naming what to change.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.runtime import free_memory

__all__ = ["is_out_of_memory", "available_bytes", "saved_bytes", "bytes_per_pixel", "check_fits", "format_bytes",
           "HEADROOM", "PassCost", "images_bytes", "kept_bytes", "check_run", "check_results_fit", "optimization_text",
           "fit_batch", "FLOAT", "STEP_HEADROOM", "probe_size", "held_bytes", "check_scaled", "PASS_HEADROOM"]

HEADROOM = 1.5
"""Peak memory of a gradient step over the activations saved for it (the gradients being computed)."""

STEP_HEADROOM = 4.5
"""Peak memory of an optimization step of ``probe.maximize`` over the activations autograd saves for it: the
gradients being computed, the forward pass's transients, the kernels' own buffers (im2col, oneDNN) and the
allocator's. One step's peak RSS over its saved bytes (CPU, one thread) was 3.5 on digits conv2 and 2.1 on
shapes conv3_1 (128 px); whole runs' estimate / peak RSS with this factor: digits conv2 50 images 28 px 1.01,
8 images 128 px 1.05; shapes conv3_1 16 images 128 px 1.76; resnet18 layer3 8 images 224 px 2.36 (with
:data:`HEADROOM`'s 1.5, digits' estimates were 0.35 of the peak)."""

PASS_HEADROOM = 2.0
"""Peak memory of a pass that keeps every layer's output (:func:`probe.layers`, the shape pass of
:func:`probe.optimize.inspect_layer`, :func:`probe.feature_maps`) over the bytes it holds at its end: the
transients of the operation under way (a convolution's unfolded input). The estimate of
:func:`probe.optimize.inspect_layer` with this factor over the peak RSS rise of its pass (CPU, one thread):
1.17 and 1.24 on a 2-conv tiny net at 1024 and 2048 px (its few-channel first convolution's transients are
0.7x what it holds), 1.92 on googlenet at 1024 px (``tests/test_memory_estimates.py`` keeps it in [1, 2.5])."""

FLOAT = 4
"""Bytes of one float32 value: images, scores and optimizer state are float32 whatever the precision."""


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


CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "inactive_file", "/sys/fs/cgroup/memory.stat"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
     "total_inactive_file", "/sys/fs/cgroup/memory/memory.stat"),
)
"""A container's memory limit and use, cgroup v2 then v1: ``(limit, usage, reclaimable page cache's key, stat)``."""


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory on ``device`` in bytes: on CUDA what this process may still allocate
    (:func:`probe.runtime.free_memory`: free, plus torch's unused cache, within the per-process cap), else the OS's.

    On the CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else ``os.sysconf`` available pages, within the
    limits it does not see (:func:`_cpu_limits`: a container's cgroup, ``ulimit -v``), where the kernel would
    kill the process without a word or refuse its allocations. None when it cannot be known (the caller then
    skips its check).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return free_memory(device)
    if device.type != "cpu":
        return None
    limits = _cpu_limits()
    return min([*([] if (free := _system_available()) is None else [free]), *limits], default=None)


def _system_available() -> int | None:
    """The machine's available memory: ``MemAvailable`` (Linux), else the available pages."""
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


def _cpu_limits() -> list[int]:
    """Bytes this process may still take under the limits ``MemAvailable`` does not see: its container's
    (cgroup v2 ``memory.max``, v1 ``memory.limit_in_bytes``, less what the cgroup uses beyond reclaimable page
    cache), and its address space's (``ulimit -v``, less the address space it maps now). Empty: no limit."""
    room = []
    for limit_file, usage_file, cache_key, stat_file in CGROUP_FILES:
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 2**60:  # no limit (v1 writes 'none' as a huge page-aligned number)
                continue
            used = int(Path(usage_file).read_text())
        except (OSError, ValueError):
            continue
        cache = 0
        try:
            for line in Path(stat_file).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == cache_key:
                    cache = int(value)
        except (OSError, ValueError):
            pass
        room.append(max(0, int(limit) - max(0, used - cache)))
        break
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            mapped = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                          if line.startswith("VmSize:"))
            room.append(max(0, soft - mapped))
    except (ImportError, OSError, ValueError, IndexError, StopIteration):
        pass
    return room


def saved_bytes(forward: Callable[[], Any], *, largest: bool = False, exclude: frozenset[int] = frozenset()) -> int:
    """Bytes autograd keeps for the backward pass while ``forward()`` runs (each storage counted once).

    With ``largest``, the size of the largest one tensor instead: about half the peak of the same
    forward pass without gradients (its input and output alive together). Tensors whose ``data_ptr()``
    is in ``exclude`` are not counted (a model's weights: held anyway, whatever the batch).
    """
    seen: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta" and tensor.data_ptr() not in exclude:
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

    It is :func:`check_run` of one pass of ``needed`` bytes that keeps no results: one check, one message.
    """
    check_run(0.0, PassCost(needed), 1, device, what, advice)


def images_bytes(channels: int, areas: Iterable[int]) -> float:
    """Bytes of float32 images of ``channels`` channels, one per ``H * W`` in ``areas``."""
    return float(FLOAT * channels * sum(areas))


def kept_bytes(images: int, pixels: int, steps: int, snapshots: int) -> float:
    """Bytes of the results a maximize run keeps on the host until it returns.

    Per image: its final and its start image and one copy per snapshot, ``pixels`` (``C * H * W``)
    float32 values each, and a float32 score per step (the history).
    """
    return float(FLOAT * images * (pixels * (2 + snapshots) + steps))


@dataclass(frozen=True)
class PassCost:
    """What one optimization pass of ``n`` images holds on its device: ``fixed + per_image * n`` bytes.

    Attributes:
        per_image: one more image's bytes: the activations autograd saves for it times :data:`STEP_HEADROOM`,
            its parameters four times (value, gradient, Adam's two moments), and what the pass keeps of it
            on the device until it ends (a score per step, the snapshots).
        fixed: bytes that do not grow with the pass (0 when the weights are counted elsewhere).
    """

    per_image: float
    fixed: float = 0.0

    def at(self, images: int) -> float:
        """The bytes of a pass of ``images`` images."""
        return self.fixed + self.per_image * images


def _needed(kept: float, cost: PassCost, images: int, device: torch.device) -> tuple[float, float | None, float | None]:
    """``(needed on device, free on device, free on the host)``: on the CPU the kept results share the memory."""
    on_device = cost.at(images) + (kept if device.type == "cpu" else 0.0)
    host = None if device.type == "cpu" else available_bytes("cpu")
    return on_device, available_bytes(device), host


def check_run(kept: float, cost: PassCost, images: int, device: torch.device | str, what: str, advice: str) -> None:
    """Refuse, before the first step, a run whose kept results and one pass of ``images`` images cannot fit.

    On the CPU both live in the same memory; on CUDA the kept results are the host's and the pass the device's.

    Args:
        kept: :func:`kept_bytes` of the whole run.
        cost: one pass's working set (:class:`PassCost`).
        images: images per pass.
        device: where the passes run.
        what: the run, for the message (``"64 image(s) of 224x224 in passes of 64"``).
        advice: what to change, naming the options (``"give a smaller --batch (batch=) or --size"``).

    Raises:
        ProbeRuntimeError: ``needed`` bytes (said, with the free bytes) exceed what is free.
    """
    device = torch.device(device)
    needed, free, host = _needed(kept, cost, images, device)
    if host is not None and kept > host:
        raise ProbeRuntimeError(f"{what} keeps about {format_bytes(kept)} of results, but {format_bytes(host)} is "
                                f"free on cpu; {advice}")
    if free is not None and needed > free:
        parts = (f" ({format_bytes(kept)} of kept results, {format_bytes(cost.at(images))} per pass)"
                 if device.type == "cpu" and 0.01 * needed <= kept < needed else "")
        raise ProbeRuntimeError(f"{what} needs about {format_bytes(needed)} of memory{parts}, but "
                                f"{format_bytes(free)} is free on {device}; {advice}")


def optimization_text(images: int, size: tuple[int, int], steps: int, per_pass: int | None = None, *,
                      run: str = "maximizing") -> str:
    """An optimization run, as a memory message names it: ``"maximizing 50 image(s) of 28x28 over 256 steps"``.

    Args:
        images: the run's images.
        size: their ``(H, W)``.
        steps: its steps.
        per_pass: when given, `` in passes of N`` is added (default None).
        run: the words before the count (default ``"maximizing"``; the atlas: ``"a chunk of"``).
    """
    passes = "" if per_pass is None else f" in passes of {per_pass:,}"
    return f"{run} {images:,} image(s) of {size[0]}x{size[1]} over {steps:,} steps{passes}"


def check_results_fit(images: int, shape: tuple[int, int, int], steps: int, snapshots: int,
                      device: torch.device | str, what: str, advice: str) -> float:
    """Refuse a run whose kept results alone (:func:`kept_bytes`) cannot fit, before anything lists its images
    or measures its pass (``--per-unit 2147483647`` froze the command while it listed 2**31 units).

    Args:
        images: the run's images, of ``shape`` ``(C, H, W)``.
        steps, snapshots: its steps and the snapshots it keeps of each image.
        device: where the passes will run (on the CPU the results share its memory).
        what: the run, for the message (:func:`optimization_text`).
        advice: what to change, naming the options of the caller (``"lower --per-unit, --chunk or --steps"``).

    Returns:
        The kept bytes, for :func:`check_run` with the pass once it is measured.

    Raises:
        ProbeRuntimeError: the kept results exceed the free memory (the numbers, and ``advice``).
    """
    kept = kept_bytes(images, math.prod(shape), steps, snapshots)
    check_run(kept, PassCost(0.0), 0, device, what, advice)
    return kept


def fit_batch(kept: float, cost: PassCost, device: torch.device | str, most: int, group: int, share: float,
              *, powers_of_two: bool = False) -> int:
    """The most images per pass (whole groups of ``group``, at most ``most``) whose pass fits in ``share`` of
    the free memory beside the kept results; ``most`` when the free memory cannot be known.

    ``powers_of_two``: a power of two times ``group`` (a small change in the free memory then does not
    change the batch, nor, through the kernels' rounding, the images). At least ``group``: whether even
    that fits is :func:`check_run`'s to say.
    """
    device = torch.device(device)
    free = available_bytes(device)
    if free is None or cost.per_image <= 0:
        return most
    room = share * free - (kept if device.type == "cpu" else 0.0) - cost.fixed
    fits = int(max(0.0, room) // cost.per_image)
    size = min(most, max(group, fits - fits % group))
    if powers_of_two and size < most:
        size = group * 2 ** int(math.floor(math.log2(max(1, size // group))))
    return max(1, size)


def probe_size(size: tuple[int, int], model_size: tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` of a small pass that learns what a pass at ``size`` would hold: ``size`` itself, or, for an
    image larger than four times ``model_size``'s area (the model's input size), that area at the image's
    aspect ratio, so that measuring never allocates what the real pass would."""
    height, width = size
    if height * width <= 4 * model_size[0] * model_size[1]:
        return height, width
    shrink = math.sqrt(4 * model_size[0] * model_size[1] / (height * width))
    return max(1, round(height * shrink)), max(1, round(width * shrink))


def held_bytes(*values: Any) -> int:
    """Bytes of the storages the tensors in ``values`` hold (tensors, or tuples, lists and dicts of them; each
    storage counted once, views and aliases included)."""
    from probe.rewrites import storage_key, tensors_in  # it imports probe.forward, which imports this module

    sizes: dict[int, int] = {}
    for tensor in tensors_in(list(values)):
        key = storage_key(tensor)
        if key is not None and tensor.device.type != "meta":
            sizes[key] = tensor.untyped_storage().nbytes()
    return sum(sizes.values())


def check_scaled(measure: Callable[[tuple[int, int]], float], size: tuple[int, int], model_size: tuple[int, int],
                 device: torch.device | str, what: str, advice: str, headroom: float = PASS_HEADROOM) -> float | None:
    """Refuse, before a pass at ``size`` allocates anything, one that cannot fit in the free memory.

    ``measure(small)`` runs the same pass at :func:`probe_size` and returns the bytes it held; the estimate at
    ``size`` is that times the areas' ratio (activations grow with the area) times ``headroom``. A ``size``
    no larger than four times the model's input area is not measured (its own pass is as small as a probe).

    Args:
        measure: the pass at a small ``(H, W)``, returning its bytes (:func:`held_bytes`, :func:`saved_bytes`).
        size: the ``(H, W)`` of the pass to come.
        model_size: the model's input size.
        device, what, advice: as :func:`check_fits`.
        headroom: peak over held bytes (default :data:`PASS_HEADROOM`).

    Returns:
        The estimate in bytes, or None when nothing was measured (a small ``size``, or a model that refuses
        the small size: the real pass will say why).

    Raises:
        ProbeRuntimeError: the estimate exceeds the free memory (:func:`check_fits`'s message).
    """
    from probe.forward import ModelInputError  # probe.forward imports this module

    small = probe_size(size, model_size)
    if small == tuple(size):
        return None
    try:
        held = measure(small)
    except (ModelInputError, ProbeUsageError):
        return None
    needed = headroom * held * (size[0] * size[1]) / (small[0] * small[1])
    check_fits(needed, device, what, advice)
    return needed
