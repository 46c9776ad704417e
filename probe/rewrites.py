"""Which module outputs a forward pass rewrites in place: seen while the pass runs, before each write.

:func:`probe.record` and :func:`probe.capture` keep a module's output uncopied
unless a later operation of the pass rewrites that tensor in place
(``ReLU(inplace=True)``, ``out += identity``, ``x[:, :2].relu_()``,
``torch.mul(x, 2, out=x)``). This module supplies what that needs:

- :class:`WriteWatch`, a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
  active during a pass, notes the first operation that writes into the
  storage of each tracked output, and can call back just before it runs
  (:func:`probe.record` copies the output there). It reads the schema of each
  ATen operation (``alias_info.is_write``), so it sees every in-place
  spelling, writes through views and ``.data``, and works under
  ``torch.inference_mode`` where tensors have no version counter.
- :class:`Rewrites`, per model (weakly) and kind of pass, what
  :func:`probe.capture` learned: ``{label: rewritten}`` with the module each
  label was seen on.
- :func:`storages` gives the storages a value (a tensor, or tuples, lists and
  dicts of them) holds, to tell which outputs alias what the pass was given or
  returns (the caller may rewrite those after the pass: DenseNet's
  ``F.relu(self.features(x), inplace=True)``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from probe.forward import passes_through

__all__ = ["WriteWatch", "Rewrites", "storage_key", "storages"]


def storage_key(tensor: torch.Tensor) -> int | None:
    """The address of ``tensor``'s storage (shared by all its views), or None for an empty or storage-less tensor."""
    try:
        storage = tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse, nested, functional or meta tensors
        return None
    pointer = storage.data_ptr()
    return pointer or None


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor in ``value``: a tensor, or tuples, lists and dicts (``ModelOutput``) of them, nested."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from tensors_in(item)


def storages(value: Any) -> set[int]:
    """The storage addresses of every tensor in ``value`` (see :func:`tensors_in`)."""
    return {key for key in map(storage_key, tensors_in(value)) if key is not None}


_WRITES: dict[Any, tuple[tuple[int, str], ...]] = {}
"""Per ATen operation overload: the (position, name) of each argument it writes into."""


def _written_arguments(func: Any) -> tuple[tuple[int, str], ...]:
    try:
        return _WRITES[func]
    except KeyError:
        pass
    try:
        arguments = func._schema.arguments
    except AttributeError:
        arguments = []
    written = tuple((position, argument.name) for position, argument in enumerate(arguments)
                    if argument.alias_info is not None and argument.alias_info.is_write)
    _WRITES[func] = written
    return written


class WriteWatch(TorchDispatchMode):
    """Notes which tracked tensors an operation writes into while the mode is active, before it writes.

    :meth:`track` a module's output under a label; the first ATen operation
    whose schema writes into an argument sharing that tensor's storage adds the
    label to :attr:`written` and, before the operation runs, calls
    ``before_write(labels)`` with every label tracked on that storage (which
    then stops being watched): the tensors still hold what they held, so a
    caller can copy them there and then. Operations run unchanged.

    Args:
        before_write: called with the labels of a storage about to be written for the first time (default
            None: only :attr:`written` is kept).
    """

    def __init__(self, before_write: Callable[[list[Hashable]], None] | None = None) -> None:
        super().__init__()
        self.tracked: dict[int, list[Hashable]] = {}
        self.written: set[Hashable] = set()
        self.before_write = before_write

    def track(self, tensor: torch.Tensor, label: Hashable) -> bool:
        """Watch ``tensor``'s storage (and so every view of it) for writes, reported under ``label``.

        Returns False for a tensor without a storage to watch (sparse, nested, functional, empty)."""
        key = storage_key(tensor)
        if key is None:
            return False
        self.tracked.setdefault(key, []).append(label)
        return True

    def untrack(self, tensor: torch.Tensor, label: Hashable) -> None:
        """Stop watching ``tensor``'s storage for ``label`` (no-op when it is not watched, or was written)."""
        key = storage_key(tensor)
        labels = self.tracked.get(key, [])
        if label in labels:
            labels.remove(label)
            if not labels:
                del self.tracked[key]

    @passes_through
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if self.tracked:  # one dict lookup for the operations that write nothing (most of a forward pass)
            written = _WRITES.get(func)
            if written is None:
                written = _written_arguments(func)
            if written:
                self._before_write(written, args, kwargs or {})
        return func(*args, **kwargs) if kwargs else func(*args)

    def _before_write(self, written: tuple[tuple[int, str], ...], args: tuple, kwargs: dict) -> None:
        """An operation is about to write into the arguments ``written``: note, and report, the tracked
        storages among them."""
        for position, name in written:
            value = args[position] if position < len(args) else kwargs.get(name)
            for tensor in tensors_in(value):
                labels = self.tracked.pop(storage_key(tensor), None)
                if labels:
                    self.written.update(labels)
                    if self.before_write is not None:
                        self.before_write(labels)


class Rewrites:
    """What passes of each model rewrote: per model (weakly held) and kind of pass, ``{label: rewritten}``.

    A label is ``(module name, call index)``; each is stored with the module it
    was seen on, and forgotten when that name comes to hold another module.
    Learning is monotone: a label once rewritten stays rewritten.
    """

    def __init__(self) -> None:
        self._known: weakref.WeakKeyDictionary[nn.Module, dict[Hashable, dict[Hashable, tuple[weakref.ref, bool]]]] = (
            weakref.WeakKeyDictionary())

    def get(self, model: nn.Module, kind: Hashable, modules: Mapping[str, nn.Module]) -> dict[Hashable, bool] | None:
        """``{label: rewritten}`` for passes of ``kind`` on ``model``, labels whose module is still ``modules[name]``;
        None when no such pass was learned."""
        try:
            known = self._known.get(model, {}).get(kind)
        except TypeError:  # a model that cannot be weakly referenced: nothing remembered
            return None
        if known is None:
            return None
        return {label: rewritten for label, (ref, rewritten) in known.items() if ref() is modules.get(label[0])}

    def learn(self, model: nn.Module, kind: Hashable, modules: Mapping[str, nn.Module],
              rewritten: Mapping[Hashable, bool]) -> None:
        """Add what one pass showed; a label already known as rewritten stays so."""
        try:
            known = self._known.setdefault(model, {}).setdefault(kind, {})
        except TypeError:
            return
        for label, moved in rewritten.items():
            module = modules.get(label[0])
            if module is None:
                continue
            previous = known.get(label)
            earlier = previous is not None and previous[0]() is module and previous[1]
            known[label] = (weakref.ref(module), moved or earlier)

    def forget(self, model: nn.Module, kind: Hashable) -> None:
        """Drop what passes of ``kind`` on ``model`` taught (the next such pass learns again)."""
        try:
            self._known.get(model, {}).pop(kind, None)
        except TypeError:
            pass
