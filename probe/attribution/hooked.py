"""captum's hook-based methods (DeepLift, LRP, guided backprop) on a copy of the model made ready for hooks.

The copy (:func:`hook_copy`) shares the user's parameters and buffers, gives each call of a reused module
its own module object (:mod:`probe.attribution.unshared`), and runs every in-place activation out of place,
so captum's hooks, its ``rule`` attributes and these flags never touch the user's module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from probe.attribution.leaves import leaves, supported_base, survey
from probe.attribution.lrp import adopt_base_rules, lrp_input, lrp_network, lrp_plan, passthrough_lrp
from probe.attribution.unshared import Unshared, unshared_copy
from probe.errors import ProbeError, ProbeUsageError
from probe.memory import is_out_of_memory

__all__ = ["hook_copy", "run_deeplift", "run_lrp", "captum_refusal"]


@contextlib.contextmanager
def captum_refusal(method: str) -> Iterator[None]:
    """Turn a failure inside captum's hooks into one line naming ``method`` (out-of-memory and cnn-probe's own
    errors pass through): a hooked module with several outputs (``MaxPool2d(return_indices=True)``) fails in
    captum with an assertion or an AttributeError, which is about the method, not the model."""
    try:
        yield
    except ProbeError:
        raise
    except (RuntimeError, AssertionError, AttributeError, TypeError, ValueError) as error:
        if is_out_of_memory(error):
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ProbeUsageError(f"captum's {method} cannot run on this model ({type(error).__name__}: {first}); "
                              "use another --method", param="method") from None


def hook_copy(forward: nn.Module, x: torch.Tensor) -> Unshared:
    """A weight-sharing copy of ``forward`` with one module per call and no in-place activation.

    Args:
        forward: the model (in the mode it should run in).
        x: ``(1, C, H, W)`` an input, for the pass that counts the calls.
    """
    net = unshared_copy(forward, x)
    for module in net.modules():
        if getattr(module, "inplace", None) is True:
            module.inplace = False
    return net


def _adopt_deeplift_bases(net: nn.Module, x: torch.Tensor) -> None:
    """Give subclasses of DeepLift's activations (``class MyReLU(nn.ReLU)``) that compute their base's math
    the base's class on the copy: captum tells its activations by exact type and would pass plain gradients
    through them."""
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR

    known = tuple(SUPPORTED_NON_LINEAR)
    subclasses = [m for m in leaves(net) if isinstance(m, known) and type(m) not in known]
    seen = survey(net, x, watch=known) if subclasses else None  # a pass only when there is something to check
    for leaf in subclasses:
        base = supported_base(leaf, known, seen.inputs.get(id(leaf)) if seen else None)
        if base is not None:
            leaf.__class__ = base


def run_deeplift(forward: nn.Module, inputs: torch.Tensor, baseline: torch.Tensor, target: int) -> torch.Tensor:
    """captum's DeepLift (rescale rule) of ``inputs`` ``(1, C, H, W)`` against ``baseline`` ``(1, C, H, W)``,
    on :func:`hook_copy`: models that call an activation several times per pass (ResNet's Bottleneck) run."""
    from captum.attr import DeepLift

    net = hook_copy(forward, inputs.detach())
    _adopt_deeplift_bases(net, inputs.detach())
    with captum_refusal("deeplift"):
        return DeepLift(net).attribute(inputs, baselines=baseline, target=target)


def run_lrp(forward: nn.Module, inputs: torch.Tensor, target: int) -> torch.Tensor:
    """captum's LRP (epsilon rules) of ``inputs`` ``(1, C, H, W)`` on :func:`hook_copy`, traced so that residual
    additions, gates and activations have rules (:func:`probe.attribution.lrp.lrp_network`), on the normalized
    image (:func:`probe.attribution.lrp.lrp_input`); ``(1, C, H, W)``, summing to the score less what biases keep.

    Raises:
        ProbeUsageError: a layer that runs and has no rule, an operation on activations without one, or a
            forward fx cannot trace (naming ``method``).
    """
    body, x = lrp_input(forward, inputs)
    with captum_refusal("lrp"):  # the copy's trace runs the model's code once more
        net, unreached = lrp_network(hook_copy(body, x), x)
    plan = lrp_plan(net, x, unreached)
    if plan.missing:
        raise ProbeUsageError(f"captum's LRP has no rule for {', '.join(plan.missing)} in this model; "
                              "use another --method (deeplift is the closest)", param="method")
    adopt_base_rules(plan.bases)
    with captum_refusal("lrp"):
        return passthrough_lrp(net, plan.skip).attribute(x.requires_grad_(True), target=target)
