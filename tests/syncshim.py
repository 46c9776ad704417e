"""Count, on the CPU, the calls that would make the host wait for a GPU: a counting shim over torch.

On CUDA a step loop runs ahead of the device only while nothing reads a tensor back: ``.item()``, ``float(t)``,
``bool(t)`` (an ``if`` on a tensor), ``int(t)``, ``.tolist()``, ``.cpu()``, ``.numpy()``, and every operation
whose output shape depends on the values (``torch.nonzero``, a boolean mask as an index, ``masked_select``,
``unique``, ``torch.equal``...) waits for the device to finish. :class:`SyncCounter` wraps those entry points
(methods of ``torch.Tensor`` and functions of ``torch``) and records every call made from a file under the given
roots (cnn-probe's own code by default: torch's internals reading their own state are not the project's), with
the caller's file and line, so a test can run a method for a few steps and for more and compare.

    with SyncCounter() as syncs:
        probe.maximize(...)
    syncs.calls       # ["item objectives.py:123", ...]
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

import probe

PROBE = str(Path(probe.__file__).parent)
"""cnn-probe's own files (probe/, and probe/cli, probe/gallery where installed inside it)."""

TENSOR_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "__array__",
                "__format__", "nonzero", "nonzero_static", "masked_select", "unique", "unique_consecutive", "equal",
                "allclose")
"""Methods of ``torch.Tensor`` that read values back to the host, or whose output shape depends on them."""

TORCH_READS = ("nonzero", "masked_select", "unique", "unique_consecutive", "equal", "allclose", "is_nonzero",
               "argwhere", "bincount")
"""Functions of ``torch`` that read values back to the host or give a value-dependent shape."""

UPLOADS = (("torch", "tensor"), ("torch", "as_tensor"), ("torch", "from_numpy"), ("Tensor", "new_tensor"))
"""Tensors built from host data (Python numbers, lists, arrays): on CUDA each is a blocking host-to-device copy,
which waits for the device like a read; in a step loop, one that could be built once before the loop."""


def _is_mask(index: Any) -> bool:
    """Whether a ``__getitem__``/``__setitem__`` index holds a boolean tensor (a value-dependent shape)."""
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(item, torch.Tensor) and item.dtype == torch.bool and item.dim() > 0 for item in items)


class SyncCounter:
    """A context manager that counts host reads of tensors made from files under ``roots``.

    Args:
        roots: path prefixes of the calling files that count (default: cnn-probe's package folder).

    Attributes:
        calls: one ``"<what> <file>:<line>"`` per counted read, in order.
        uploads: the same for each tensor built from host data (:data:`UPLOADS`).
    """

    def __init__(self, roots: tuple[str, ...] = (PROBE,)) -> None:
        self.roots = roots
        self.calls: list[str] = []
        self.uploads: list[str] = []
        self._undo: list[tuple[object, str, object]] = []

    def __enter__(self) -> SyncCounter:
        for name in TENSOR_READS:
            self._wrap(torch.Tensor, name, name)
        for name in TORCH_READS:
            self._wrap(torch, name, f"torch.{name}")
        for name in ("__getitem__", "__setitem__"):
            self._wrap(torch.Tensor, name, f"mask {name}", when=lambda args: _is_mask(args[1]))
        for owner, name in UPLOADS:
            data = 1 if owner == "Tensor" else 0  # new_tensor(self, data): the data comes second
            self._wrap(torch.Tensor if owner == "Tensor" else torch, name, f"{owner}.{name}", into=self.uploads,
                       when=lambda args, data=data: len(args) > data and not isinstance(args[data], torch.Tensor))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)

    def clear(self) -> None:
        """Forget the calls counted so far."""
        self.calls.clear()
        self.uploads.clear()

    def __len__(self) -> int:
        return len(self.calls)

    def where(self) -> Counter[str]:
        """The counted calls by ``"<what> <file>:<line>"``, most frequent first."""
        return Counter(self.calls)

    def _wrap(self, owner: object, name: str, label: str,
              when: Callable[[tuple[Any, ...]], bool] | None = None, into: list[str] | None = None) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return
        roots, calls = self.roots, self.calls if into is None else into

        def counted(*args: Any, **kwargs: Any) -> Any:
            frame = sys._getframe(1)
            caller = frame.f_code.co_filename
            if caller.startswith(roots) and (when is None or when(args)):
                calls.append(f"{label} {Path(caller).name}:{frame.f_lineno}")
            return original(*args, **kwargs)

        self._undo.append((owner, name, original))
        setattr(owner, name, counted)
