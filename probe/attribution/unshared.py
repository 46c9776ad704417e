"""A structural copy of a model for captum's hook-based methods: one module object per call.

captum's DeepLift and LRP keep per-module state between a module's forward and backward hooks
(``module.input``, ``module.output``, ``module.activations``), so a module that runs several times in
one forward pass (torchvision's Bottleneck calls ``self.relu`` three times, timm's DLA reuses its ReLUs,
a net that reuses one ``nn.MaxPool2d``) overwrites its own state and captum refuses it ("used more than
once"). :func:`unshared_copy` builds a copy of the model in which each such module is replaced by
:class:`PerCall`, which sends call ``k`` of a forward pass to its own copy; every copy, and the rest of
the model, shares the user's parameters and buffers (nothing is duplicated but the module objects), so
the copy computes exactly the user's function. Hooks, rules and flags go on the copy; the user's module
is never touched.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from probe.attribution.leaves import leaves, observe
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.models.types import shared_memo

__all__ = ["PerCall", "Unshared", "unshared_copy", "call_counts"]


class PerCall(nn.Module):
    """Call ``k`` of a forward pass goes to ``calls[k]``: a module that ran several times, one copy per call.

    Args:
        copies: one module per call, all sharing the original's parameters and buffers.
        name: the original's dotted name, for errors.
    """

    def __init__(self, copies: list[nn.Module], name: str) -> None:
        super().__init__()
        self.calls = nn.ModuleList(copies)
        self.label = name
        self.count = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.count >= len(self.calls):
            raise ProbeRuntimeError(
                f"{self.label} ran more than the {len(self.calls)} times it ran in the first forward pass; this "
                "model's control flow changes between passes, so the hook-based methods (deeplift, lrp) cannot "
                "give each call its own module; use another --method")
        module = self.calls[self.count]
        self.count += 1
        return module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:  # a forward that reads the reused module's attributes (its weight, its stride)
            calls = self.__dict__.get("_modules", {}).get("calls")
            if calls is None or not len(calls):
                raise
            return getattr(calls[0], name)


class Unshared(nn.Module):
    """The copy's root: resets every :class:`PerCall` counter at the start of each forward pass.

    Args:
        net: the structural copy (its reused modules already replaced).
        per_call: the :class:`PerCall` modules inside ``net``.
    """

    def __init__(self, net: nn.Module, per_call: list[PerCall]) -> None:
        super().__init__()
        self.net = net
        self.per_call = per_call

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        for module in self.per_call:
            module.count = 0
        return self.net(*args, **kwargs)


def call_counts(module: nn.Module, inputs: torch.Tensor) -> dict[int, int]:
    """``id(leaf) -> calls`` of every leaf module of ``module`` in one forward pass of ``inputs`` (no gradient).

    The hooks are removed on exit, also when the pass raises.
    """
    counts: dict[int, int] = {}

    def count(m: nn.Module, args: Any) -> None:
        counts[id(m)] = counts.get(id(m), 0) + 1

    observe(module, inputs, leaves(module), before=count)
    return counts


def _copy(module: nn.Module, shared: dict[int, Any]) -> nn.Module:
    try:
        return copy.deepcopy(module, dict(shared))
    except Exception as error:  # noqa: BLE001 (any object a model holds may refuse to be copied)
        raise ProbeUsageError(
            f"the hook-based methods (deeplift, lrp) run on a copy of the model that shares its weights, and this "
            f"model cannot be copied ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "use another --method", param="method") from None


def unshared_copy(module: nn.Module, inputs: torch.Tensor) -> Unshared:
    """A copy of ``module`` sharing its parameters and buffers, with one module object per call.

    Every leaf module that runs ``n > 1`` times in a forward pass of ``inputs`` is replaced, wherever it is
    registered, by a :class:`PerCall` of ``n`` copies. ``module`` itself is not changed (no hooks, no
    attributes); the copy's modules are new objects, so flags set on them (``inplace``, captum's ``rule``)
    stay on the copy.

    Args:
        module: the model (its mode as it should run: the caller puts it in eval mode first).
        inputs: ``(N, C, H, W)`` an input of the pass that counts the calls.

    Raises:
        ProbeUsageError: the model cannot be deep-copied (naming ``method``).
    """
    shared = shared_memo(module)
    net = _copy(module, shared)
    counts = call_counts(net, inputs)
    names = {id(m): name for name, m in net.named_modules()}
    per_call: dict[int, PerCall] = {}
    for leaf in leaves(net):
        calls = counts.get(id(leaf), 0)
        if calls > 1:
            per_call[id(leaf)] = PerCall([_copy(leaf, shared) for _ in range(calls)], names.get(id(leaf), "a module"))
    for parent in list(net.modules()):
        for name, child in list(parent._modules.items()):
            if child is not None and id(child) in per_call:
                parent._modules[name] = per_call[id(child)]
    return Unshared(net, list(per_call.values()))
