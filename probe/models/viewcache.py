"""Frozen views made once per module, and served again only while the module is still what they were made from.

:func:`probe.models.frozen_view` deep-copies a user's module structure (25-45 ms on googlenet or a timm
ConvNeXt on a 2-core CPU), and every API call that optimizes an input asks for one. A fresh view is also a
fresh key for what cnn-probe learns per model (:func:`probe.capture`'s rewrites, the channels-last layers,
call counts), so each call paid those first passes again. :class:`ViewCache` keeps one view per module and
kind, checked at every call against a :func:`fingerprint` of the module (about 1 ms on either model): what
the view was copied from.

The fingerprint holds, per module in the tree: its class; its attributes, each by the object it holds (so
``training``, whose two values are two objects, and a number or a layer set anew); its children; its
parameters and buffers (each object, the address of its storage, ``requires_grad``; a parameter's
in-place version too, for views that copy weights); the keys of its hook dictionaries. So a replaced layer
or tensor, ``.to()`` (a new storage under the same parameter), a flipped ``requires_grad``,
``train()``/``eval()``, a hook added or removed, or ``relu.inplace = False`` make the next call build a new
view. What it does not see: a change inside a mutable attribute that stays the same object (a list
appended to). In-place writes into shared weights need no new view (the view shares their storage:
``load_state_dict`` copies in place).

A view is cached only when it holds no reference to the module it was copied from (a hook closure
naming the model would otherwise keep a deleted model alive through the cache); such a module gets a
fresh view at every call, as before.
"""

from __future__ import annotations

import functools
import types
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import nn

__all__ = ["ViewCache", "fingerprint"]

_SCALARS = (bool, int, float, str, bytes, type(None))
_HOOKS = tuple(name for name in vars(nn.Module()) if name.endswith(("hooks", "hooks_with_kwargs", "always_called")))
"""The hook dictionaries every module has (``_forward_hooks``, ``_forward_pre_hooks_with_kwargs``, ...)."""


def _version(tensor: torch.Tensor | None) -> int | None:
    """The in-place version counter, or None where there is none (an empty slot, inference tensors)."""
    try:
        return None if tensor is None or tensor.is_inference() else tensor._version
    except RuntimeError:
        return None


def _slot(tensor: torch.Tensor | None) -> tuple[Any, ...]:
    """A parameter or buffer slot as numbers: the object, its storage address, ``requires_grad``."""
    if tensor is None:
        return (None,)
    try:
        pointer = tensor.data_ptr()
    except (RuntimeError, ValueError, NotImplementedError):  # sparse, nested or uninitialized tensors
        pointer = None
    return id(tensor), pointer, tensor.requires_grad


def fingerprint(module: nn.Module, versions: bool = False) -> tuple[Any, ...]:
    """What a view copied from ``module`` depends on, as a tuple of numbers, names and types (see the module
    docstring); equal fingerprints mean a view made then is still a faithful copy.

    Per module: its class, its attribute names and the objects they hold (``training`` included: booleans
    are two objects), its children, its parameters and buffers (:func:`_slot`), the keys of its hook
    dictionaries (hook handles' ids only grow: a hook removed and another added changes them).

    Args:
        module: the network; only read.
        versions: also the parameters' in-place version counters (default False), for views that copy
            weights instead of sharing them (channels-last).

    Returns:
        A tuple, compared with ``==`` (no tensor inside).
    """
    parts: list[Any] = []
    append = parts.append
    for sub in module.modules():
        attributes = sub.__dict__
        append(type(sub))
        append(tuple(attributes))
        append(tuple(map(id, attributes.values())))
        append(tuple(sub._modules))
        append(tuple(map(id, sub._modules.values())))
        for table in (sub._parameters, sub._buffers):
            append(tuple(table))
            append(tuple(map(_slot, table.values())))
        if versions:
            append(tuple(map(_version, sub._parameters.values())))
        append(tuple(tuple(attributes[name]) for name in _HOOKS if attributes.get(name)))
    return tuple(parts)


_OWN = frozenset({"_parameters", "_buffers", "_modules"})
"""A module's attributes that hold only its tensors and children (walked as the view's own)."""
_ATOMIC = frozenset({*_SCALARS, type, types.ModuleType, weakref.ref, torch.dtype, torch.device})


def _reaches(view: nn.Module, originals: set[int], limit: int = 200_000) -> bool:
    """Whether ``view`` holds a reference to one of the objects ``originals`` (ids), through its modules'
    attributes: containers, closures, bound methods, partials and plain objects' attributes (not through
    tensors, classes, Python modules or a function's globals). True also when the walk passes ``limit`` objects.
    """
    if any(id(sub) in originals for sub in view.modules()):  # a module that copies as itself
        return True
    seen: set[int] = set()
    stack: list[Any] = [value for sub in view.modules() for key, value in vars(sub).items() if key not in _OWN]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _ATOMIC or id(item) in seen:
            continue
        if id(item) in originals:
            return True
        seen.add(id(item))
        if len(seen) > limit:
            return True
        if kind is dict or isinstance(item, dict):
            if item:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, (torch.Tensor, nn.Module)):
            continue  # tensors hold no modules; the view's own modules are walked from the start
        elif isinstance(item, types.FunctionType):
            stack.extend(cell.cell_contents for cell in item.__closure__ or () if _filled(cell))
            stack.extend(item.__defaults__ or ())
            stack.extend((item.__kwdefaults__ or {}).values())
        elif isinstance(item, types.MethodType):
            stack.extend((item.__self__, item.__func__))
        elif isinstance(item, functools.partial):
            stack.extend((item.func, *item.args, *item.keywords.values()))
        elif hasattr(item, "__dict__"):
            stack.append(vars(item))
    return False


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True


class ViewCache:
    """One view per module and kind, rebuilt when the module's :func:`fingerprint` changes.

    Entries are kept by the module's id with a weak reference to it (the module is not kept alive, and a
    module's own ``__eq__``/``__hash__`` play no part), and dropped when it is collected.
    """

    def __init__(self) -> None:
        self._views: dict[tuple[int, Hashable], tuple[weakref.ref[nn.Module], tuple[Any, ...], nn.Module]] = {}

    def get(self, module: nn.Module, kind: Hashable, build: Callable[[], nn.Module], versions: bool = False) -> nn.Module:
        """The view of ``kind`` made from ``module`` by ``build()``: the cached one when the module has not changed
        since it was made, else a new one (cached when it holds no reference to ``module``).

        Args:
            module: the user's network; never changed.
            kind: what distinguishes views of one module (e.g. channels-last or not).
            build: makes the view; it may return ``module`` itself (nothing is cached then).
            versions: fingerprint the parameters' version counters too (see :func:`fingerprint`).
        """
        key = (id(module), kind)
        try:
            now = fingerprint(module, versions)
        except Exception:  # noqa: BLE001 - a module unlike nn.Module inside (TorchScript's): a view each time
            return build()
        entry = self._views.get(key)
        if entry is not None and entry[0]() is module and entry[1] == now:
            return entry[2]
        self._views.pop(key, None)
        view = build()
        if view is module or _reaches(view, {id(sub) for sub in module.modules()}):
            return view
        try:
            reference = weakref.ref(module, lambda _, views=self._views, key=key: views.pop(key, None))
        except TypeError:  # a module that cannot be weakly referenced: not cached
            return view
        self._views[key] = (reference, now, view)
        return view

    def clear(self) -> None:
        """Forget every view."""
        self._views.clear()
