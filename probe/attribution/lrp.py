"""What captum's LRP can run on: the rules it has, the reshapes it passes through, and the network it runs on
(the weight-sharing copy, traced and given a rule for every operation between layers by
:mod:`probe.attribution.lrp_graph`, on the normalized image)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from probe.attribution.leaves import leaves, supported_base, survey
from probe.attribution.lrp_graph import ACTIVATION_MODULES, Pass, lrp_graph
from probe.attribution.unshared import Unshared
from probe.hooks import first_tensor

LRP_PASSTHROUGH = (nn.Flatten, nn.Identity, nn.Unflatten)
"""Reshaping modules LRP passes relevance through unchanged (no rule, no hook: their gradient is the reshape)."""


def _passthrough_lrp_class() -> type:
    from captum.attr import LRP

    class PassthroughLRP(LRP):
        """captum's LRP with the leaves in ``skip`` left out of its rules (captum has none for them)."""

        def __init__(self, model: nn.Module, skip: set[int]) -> None:
            super().__init__(model)
            self.skip = skip

        def _get_layers(self, model: nn.Module) -> None:
            # captum takes modules without children; a weight-normed conv has its parametrization as a child
            self.layers = [layer for layer in leaves(model) if id(layer) not in self.skip]

    return PassthroughLRP


def passthrough_lrp(forward: nn.Module, skip: set[int]) -> Any:
    """captum's LRP on ``forward``, leaving out the leaves whose ``id`` is in ``skip`` (see :func:`lrp_plan`)."""
    return _passthrough_lrp_class()(forward, skip)


@dataclass
class LrpPlan:
    """How LRP runs on a model, from one forward pass.

    Attributes:
        missing: the type names of the leaves that run and have no rule (LRP is refused unless empty).
        skip: ``id`` of the leaves LRP leaves out: reshapes (:data:`LRP_PASSTHROUGH`), leaves that return
            their input (Dropout, StochasticDepth, DropPath in eval mode) and leaves that do not run.
        bases: leaf -> the supported type whose math it computes (a subclass captum matches by exact type).
    """

    missing: list[str]
    skip: set[int]
    bases: dict[nn.Module, type] = field(default_factory=dict)


def _supported() -> tuple[dict[type, type], tuple[type, ...]]:
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS

    return SUPPORTED_LAYERS_WITH_RULES, tuple(SUPPORTED_NON_LINEAR_LAYERS)


def lrp_plan(module: nn.Module, inputs: torch.Tensor, unreached: set[int] | None = None) -> LrpPlan:
    """Which leaves of ``module`` LRP gives a rule, leaves out, or has no rule for, in a pass of ``inputs``.

    Args:
        module: the model (LRP then runs on a copy; this only runs one forward pass, hooks removed on exit).
        inputs: ``(N, C, H, W)``.
        unreached: ``id`` of leaves relevance never reaches (a gate's branch, see
            :func:`probe.attribution.lrp_graph.lrp_graph`), left out like those that do not run (default none).
    """
    rules, non_linear = _supported()
    known = (*rules, *non_linear)
    seen = survey(module, inputs, watch=tuple(known))
    plan = LrpPlan(missing=[], skip=set())
    missing = set()
    for leaf in leaves(module):
        passes = isinstance(leaf, (*LRP_PASSTHROUGH, Pass)) or type(leaf) in ACTIVATION_MODULES
        if passes or id(leaf) in seen.identity or id(leaf) not in seen.ran or id(leaf) in (unreached or ()):
            plan.skip.add(id(leaf))
        elif type(leaf) not in known and not hasattr(leaf, "rule"):
            base = supported_base(leaf, known, seen.inputs.get(id(leaf)))
            if base is None:
                missing.add(type(leaf).__name__)
            else:
                plan.bases[leaf] = base
    plan.missing = sorted(missing)
    return plan


def adopt_base_rules(bases: dict[nn.Module, type]) -> None:
    """Give each leaf of ``bases`` (modules of a copy, never the user's) the LRP rule of its base: the rule
    object for a layer with a rule (``Conv2d``, ``Linear``, ...), the base's class for an activation (captum
    tells activations by exact type)."""
    rules, _ = _supported()
    for leaf, base in bases.items():
        if base in rules:
            leaf.rule = rules[base]()
        else:
            leaf.__class__ = base


def lrp_support(module: nn.Module, inputs: torch.Tensor | None = None) -> list[str]:
    """The leaf module types of ``module`` captum's LRP has no rule for (empty: no layer stops LRP; the operations
    its forward applies between layers are checked when LRP runs, :func:`probe.attribution.lrp_graph.lrp_graph`).

    Args:
        module: the model.
        inputs: ``(N, C, H, W)`` (default None). With an input, one forward pass decides: leaves that do not
            run or return their input need no rule, and subclasses of supported layers that compute their
            base's math take its rule (:func:`probe.attribution.leaves.supported_base`). Without one, every leaf
            whose exact type has no rule is listed.
    """
    if inputs is not None:
        return lrp_plan(module, inputs).missing
    rules, non_linear = _supported()
    known = (*rules, *non_linear, *LRP_PASSTHROUGH, *ACTIVATION_MODULES)
    return sorted({type(m).__name__ for m in leaves(module) if type(m) not in known})


_ADDITIONS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__,
              torch.Tensor.__radd__}


class _Additions(TorchFunctionMode):
    """Counts additions of two same-shaped batch tensors (residual connections) during a forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        if func in _ADDITIONS and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]) \
                and args[0].dim() >= 2 and args[0].shape == args[1].shape:
            self.count += 1
        return func(*args, **(kwargs or {}))


def tensor_additions(module: nn.Module, inputs: torch.Tensor) -> int:
    """How many times one forward pass of ``module(inputs)`` adds two same-shaped activations (residuals):
    captum's LRP has no rule for them in a forward, and :func:`lrp_network` gives each captum's
    ``Addition_Module``."""
    counter = _Additions()
    with torch.no_grad(), counter:
        module(inputs)
    return counter.count


class Scores(nn.Module):
    """``inputs -> (N, K)`` scores: the traced network's first tensor output (a tuple's, a ``ModelOutput``'s logits).

    Args:
        graph: the network LRP runs on.
    """

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return first_tensor(self.graph(inputs))


def lrp_input(forward: nn.Module, images: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """The network LRP explains and its input: for a :class:`probe.attribution.gradients.Normalized` forward, the
    model on the normalized image. The normalization ``(x - mean) / std`` maps each pixel to one input value,
    so the pixel takes that value's relevance; through autograd it would get it divided by ``std`` (4.4 times
    the score on ImageNet's statistics).

    Args:
        forward: the forward captum's other methods run (the model with its normalization), or any module.
        images: ``(N, C, H, W)`` in ``[0, 1]``.

    Returns:
        The network and ``(N, C, H, W)`` its input, detached.
    """
    from probe.attribution.gradients import Normalized

    if isinstance(forward, Normalized):
        with torch.no_grad():
            return forward.net, forward.preprocess.normalize(images.detach())
    return forward, images.detach()


def lrp_network(copy: Unshared, inputs: torch.Tensor) -> tuple[nn.Module, set[int]]:
    """The per-call copy ``copy`` traced and given a rule for every operation between layers
    (:func:`probe.attribution.lrp_graph.lrp_graph`), returning ``(N, K)`` scores.

    Args:
        copy: :func:`probe.attribution.hooked.hook_copy` of the network.
        inputs: ``(N, C, H, W)`` its input.

    Returns:
        The network captum's LRP runs on, and the ``id`` of its leaves relevance never reaches.
    """
    for module in copy.per_call:  # the trace follows call k of each reused module to its k-th copy
        module.count = 0
    graph, unreached = lrp_graph(copy.net, inputs)
    return Scores(graph), unreached
