"""What the leaf modules of a model do in one forward pass: which run, which pass their input through, and
which subclasses of a layer captum supports compute that layer's math.

captum matches its DeepLift and LRP rules by exact type, so torch's ``NonDynamicallyQuantizableLinear``
(inside ``nn.MultiheadAttention``), timm's ``Linear`` and ``Conv2dSame`` and a user's ``class
MyConv(nn.Conv2d)`` get no rule. A subclass whose forward, on this pass's inputs, applies to them no torch
function that its base's forward does not (besides padding, casts and shape queries, which keep a layer
linear) computes its base's math, and the base's rule is sound for it. What it computes from its parameters
alone does not count: a weight-standardized convolution (timm's ``StdConv2d``, NFNet's ``ScaledStdConv2d``)
normalizes its kernel, not its input, and is still a convolution of the input. A subclass that adds
anything on the input's path (an activation, a normalization) is left without a rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from probe.leaves import helper_names, is_leaf
from probe.rewrites import tensors_in

__all__ = ["Survey", "survey", "supported_base", "NEUTRAL_OPS", "leaves", "observe"]

NEUTRAL_OPS = frozenset({"pad", "to", "type", "type_as", "contiguous", "float", "double", "half", "bfloat16",
                         "__get__", "size", "dim", "numel", "view", "reshape", "clone", "detach"})
"""torch functions (by name) a subclass may call beyond its base's and still be its base's math: padding
(timm's ``Conv2dSame``), dtype casts (timm's ``Linear``), shape queries and reshapes; all keep a layer linear."""


class _Ops(TorchFunctionMode):
    """The names of the torch functions called inside the block on the ``inputs`` or on what was computed
    from them (not those on parameters alone)."""

    def __init__(self, inputs: Sequence[Any]) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.derived: list[torch.Tensor] = list(tensors_in(list(inputs)))  # held, so that no id is reused meanwhile

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        output = func(*args, **(kwargs or {}))
        known = {id(tensor) for tensor in self.derived}
        if any(id(tensor) in known for tensor in tensors_in([list(args), kwargs or {}])):
            self.names.add(getattr(func, "__name__", repr(func)))
            self.derived += tensors_in(output)
        return output


def _ops(function: Any, module: nn.Module, args: tuple[Any, ...]) -> set[str] | None:
    """The torch functions ``function(module, *args)`` applies to ``args`` and what it computes from them
    (None when it raises)."""
    recorder = _Ops(args)
    try:
        with torch.no_grad(), recorder:
            function(module, *args)
    except Exception:  # noqa: BLE001 (the base's forward may not take the subclass's input)
        return None
    return recorder.names


def leaves(module: nn.Module) -> list[nn.Module]:
    """The layers of ``module`` without sub-layers (:func:`probe.leaves.is_leaf`): a weight-normed or QAT conv
    is one leaf, and torch's helpers on it (parametrizations, observers) are none."""
    helpers = helper_names(module)
    return [m for name, m in module.named_modules() if name not in helpers and is_leaf(m)]


def observe(module: nn.Module, x: torch.Tensor, watched: Sequence[nn.Module], *, before: Any = None,
            after: Any = None) -> None:
    """Run ``module(x)`` once without gradient, with forward pre-hook ``before`` and forward hook ``after``
    on each of ``watched``; the hooks are removed on exit, also when the pass raises."""
    handles = [m.register_forward_pre_hook(before) for m in watched] if before is not None else []
    handles += [m.register_forward_hook(after) for m in watched] if after is not None else []
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class Survey:
    """One forward pass, seen from the leaves.

    Attributes:
        ran: ``id`` of every leaf module that ran.
        identity: ``id`` of every leaf that returned its input tensor itself on every call (Dropout,
            StochasticDepth or DropPath in eval mode, ``nn.Identity``): no rule needed, relevance passes.
        inputs: ``id(leaf) -> `` the positional arguments of its first call, for leaves of ``watch`` types.
    """

    ran: set[int] = field(default_factory=set)
    identity: set[int] = field(default_factory=set)
    inputs: dict[int, tuple[Any, ...]] = field(default_factory=dict)


def survey(module: nn.Module, x: torch.Tensor, watch: tuple[type, ...] = ()) -> Survey:
    """Run ``module(x)`` once (no gradient) and record what its leaves did; hooks removed on exit.

    Args:
        module: the model (or a copy of it).
        x: ``(N, C, H, W)`` the input.
        watch: leaf types whose first call's inputs to keep (in :attr:`Survey.inputs`).
    """
    seen = Survey()
    not_identity: set[int] = set()

    def after(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        seen.ran.add(id(m))
        if args and out is args[0] and id(m) not in not_identity:
            seen.identity.add(id(m))
        else:
            not_identity.add(id(m))
            seen.identity.discard(id(m))
        if isinstance(m, watch) and id(m) not in seen.inputs:
            seen.inputs[id(m)] = args

    observe(module, x, leaves(module), after=after)
    return seen


def supported_base(module: nn.Module, supported: Sequence[type], args: tuple[Any, ...] | None) -> type | None:
    """The type of ``supported`` whose math ``module`` (a strict subclass of it) computes on ``args``, or None.

    Args:
        module: a leaf whose type is not itself in ``supported``.
        supported: the types a captum method has a rule for.
        args: the module's inputs in the forward pass (None: it did not run, so nothing can be checked).
    """
    bases = [base for base in type(module).__mro__[1:] if base in supported]
    if not bases or args is None:
        return None
    base = bases[0]
    own = _ops(type(module).forward, module, args)
    reference = _ops(base.forward, module, args)
    if own is None or reference is None or not own:
        return None
    return base if own - NEUTRAL_OPS <= reference else None
