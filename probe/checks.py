"""Check the numbers a public function is given, before any of them reaches torch.

torch's own failures for a bad number are tracebacks that name no argument (``zeros(): argument 'size'
failed to unpack ... Overflow``, ``Invalid learning rate: nan``, ``range() arg 3 must not be zero``);
these checks raise :class:`~probe.errors.ProbeUsageError` naming the argument (the CLI turns that into
exit code 2 naming its option) and saying what would have been valid.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from probe.errors import ProbeUsageError

__all__ = ["MAX_COUNT", "MAX_SEED", "MAX_SIDE", "check_count", "check_number", "check_seed", "check_size"]

MAX_COUNT = 2**31 - 1
"""The largest count (steps, images, octaves, channels, samples) taken: beyond it torch's sizes overflow or a
loop over it never ends; any such run would exhaust memory or time anyway."""
MAX_SEED = 2**63 - 1
"""The largest seed ``torch.Generator.manual_seed`` takes without overflow (a signed 64-bit int)."""
MAX_SIDE = 65536
"""The longest image side taken (pixels): beyond it torch's sizes overflow (a traceback, not an
out-of-memory error), and nothing could hold such an image anyway."""


def check_count(value: Any, name: str, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """``value`` as an int from ``minimum`` to ``maximum`` (default :data:`MAX_COUNT`); else ProbeUsageError.

    Booleans and floats are refused (``steps=2.5`` is a mistake, not 2).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ProbeUsageError(f"{name} must be an integer from {minimum} to {maximum}; got {value!r}", param=name)
    if not minimum <= int(value) <= maximum:
        raise ProbeUsageError(f"{name} must be from {minimum} to {maximum}; got {value}", param=name)
    return int(value)


def check_number(value: Any, name: str, minimum: float | None = None, *, above: bool = False) -> float:
    """``value`` as a finite float, at least ``minimum`` (more than it when ``above``); else ProbeUsageError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ProbeUsageError(f"{name} must be a finite number; got {value!r}", param=name)
    if minimum is not None and (value <= minimum if above else value < minimum):
        raise ProbeUsageError(f"{name} must be {'>' if above else '>='} {minimum:g}; got {value:g}", param=name)
    return float(value)


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed ``torch.Generator.manual_seed`` takes: an int from 0 to :data:`MAX_SEED`."""
    return check_count(seed, name, 0, MAX_SEED)


def check_size(size: Any, name: str = "size") -> int | tuple[int, int]:
    """An image size: ``N`` (an int) or ``(H, W)``, each from 1 to :data:`MAX_SIDE`; else ProbeUsageError."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return check_count(size, name, 1, MAX_SIDE)
    if isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2:
        height, width = (check_count(side, name, 1, MAX_SIDE) for side in size)
        return (height, width)
    raise ProbeUsageError(f"{name} must be N or (H, W) with integers from 1 to {MAX_SIDE}; got {size!r}", param=name)
