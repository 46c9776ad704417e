"""Check the numbers a public function is given, before any of them reaches torch.

torch's own failures for a bad number are tracebacks that name no argument (``zeros(): argument 'size'
failed to unpack ... Overflow``, ``Invalid learning rate: nan``, ``range() arg 3 must not be zero``);
these checks raise :class:`~probe.errors.ProbeUsageError` naming the argument (the CLI turns that into
exit code 2 naming its option) and saying what would have been valid.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from probe.errors import ProbeUsageError

__all__ = ["MAX_COUNT", "MAX_SEED", "MAX_SIDE", "check_callables", "check_count", "check_indices", "check_names",
           "check_name_or_callable", "check_number", "check_numbers", "check_path", "check_seed", "check_size",
           "parse_size"]

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


def parse_size(text: str) -> tuple[int, int] | int:
    """Parse ``"128"`` (longer side) or ``"96x128"`` (H x W) as given on the command line (1 to :data:`MAX_SIDE`).

    Here, free of torch, so that the commands' option callbacks (``--input-size``) can read it while click parses.
    """
    try:
        if "x" in text.lower():
            height, width = (int(part) for part in text.lower().split("x"))
            if 0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE:
                return (height, width)
        else:
            value = int(text)
            if 0 < value <= MAX_SIDE:
                return value
    except ValueError:
        pass
    raise ProbeUsageError(
        f"size must be N or HxW with integers from 1 to {MAX_SIDE} (e.g. 224 or 96x128); got {text!r}", param="size"
    )


def check_indices(value: Any, name: str) -> list[int]:
    """One index or a sequence of them (channels, units), each an int from 0 to :data:`MAX_COUNT`; else
    ProbeUsageError (``channels='a'`` was ``int('a')``'s ValueError naming nothing)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return [check_count(value, name, 0)]
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        values = list(value)
        if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
            return [check_count(v, name, 0) for v in values]
    raise ProbeUsageError(f"{name} must be an integer >= 0 or a list of them; got {value!r}", param=name)


def check_names(value: Any, name: str, what: str = "layer name", example: str = "'conv2'") -> list[str]:
    """One name or an iterable of names (layers, methods) as a list of str; else ProbeUsageError
    (``layers=5`` was ``'int' object is not iterable``)."""
    values = [value] if isinstance(value, str) else list(value) if isinstance(value, Iterable) else None
    if values is None or not all(isinstance(v, str) for v in values):
        raise ProbeUsageError(f"{name} must be a {what} or a list of them (e.g. {example}); got {value!r}", param=name)
    return values


def check_numbers(value: Any, name: str) -> list[float]:
    """A sequence of finite numbers (layer weights); else ProbeUsageError."""
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        values = list(value)
        if all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            return [float(v) for v in values]
    raise ProbeUsageError(f"{name} must be a list of finite numbers; got {value!r}", param=name)


def check_path(value: Any, name: str) -> Path:
    """A folder or file path: a non-empty ``str`` or ``os.PathLike``; else ProbeUsageError
    (``save(None)``, ``save(5)`` were ``Path()``'s TypeError or an internal ValueError)."""
    if isinstance(value, (str, os.PathLike)) and str(os.fspath(value)).strip():
        return Path(os.fspath(value)).expanduser()
    raise ProbeUsageError(f"{name} must be a path (a str or os.PathLike, not empty); got {value!r}", param=name)


def check_name_or_callable(value: Any, name: str, names: Iterable[str], callable_: str) -> str | Callable[..., Any]:
    """``value`` if it is one of ``names`` or a callable (``callable_`` says which one, for the message);
    else ProbeUsageError listing both (``param=5`` was ``'int' object is not callable`` mid-run)."""
    names = list(names)
    if callable(value) or (isinstance(value, str) and value in names):
        return value
    raise ProbeUsageError(f"{name} must be one of {', '.join(map(repr, names))} or {callable_}; got {value!r}",
                          param=name)


def check_callables(value: Any, name: str, what: str) -> list[Callable[..., Any]]:
    """A callable or an iterable of callables (``what`` names the kind); else ProbeUsageError."""
    if callable(value):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        values = list(value)
        if all(callable(v) for v in values):
            return values
    raise ProbeUsageError(f"{name} must be {what} or a list of them; got {value!r}", param=name)
