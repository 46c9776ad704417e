"""Where a layer's channels are: dim 1 of ``(N, C, H, W)``, or last in channels-last blocks.

Convolutional networks put channels at dim 1. Transformer-style blocks put them
last: ViT's encoder gives ``(N, L, C)`` tokens, Swin's stages and ConvNeXt's
LayerNorm/Linear inside a block ``(N, H, W, C)``, MaxViT's attention
``(N, P, L, C)``. "Channel k" of such a layer is feature ``k`` of its last
dimension, so cnn-probe reads those layers channels-last.

The rule, from one forward pass with a hook on every module: a layer's
channel axis is that of the last channel-defining leaf module that ran before
its output: a convolution or a batch/group/instance norm sets dim 1 (channels
first); ``Linear``, ``LayerNorm`` and ``MultiheadAttention`` set the last dim;
other modules (activations, dropout, pools, stochastic depth, reshapes) keep
it; torchvision's ``Permute`` moves it. A channels-last state whose width (the last such module's features) no
longer matches the last dimension but matches dim 1 has been permuted back
(MaxViT's departition): channels first; a channels-first state whose width
matches the last dimension of a 3-D output but not dim 1 has become tokens
(ViT flattens and transposes its patch map by functional code): channels last.
Outputs with fewer than three dimensions, ``(N, F)``, have their features at
dim 1 either way; a convolution or norm with such an output (LeViT's
``BatchNorm1d`` over tokens flattened to ``(N * L, C)``) leaves the state
channels-last, as the tokens reshaped from it have their channels last.
Models with no ``LayerNorm``, ``MultiheadAttention``, ``BatchNorm1d`` or
``Permute`` module are channels-first throughout, with no extra pass. A
``torch.nn.functional`` layer norm or permutation is not seen.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from probe.leaves import is_leaf
from probe.modes import evaluating
from probe.runtime import global_rng_kept

__all__ = ["channels_last_layers", "may_be_channels_last"]

_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
_LAST = (nn.Linear, nn.LayerNorm, nn.MultiheadAttention)

_KNOWN: weakref.WeakKeyDictionary[nn.Module, frozenset[str]] = weakref.WeakKeyDictionary()
"""Per model: the names of its channels-last layers, found once."""


def may_be_channels_last(model: nn.Module) -> bool:
    """Whether ``model`` has a module that can put channels last (a LayerNorm, attention, a Permute, or a
    BatchNorm1d, which LeViT runs over its tokens flattened to ``(N * L, C)``)."""
    return any(isinstance(m, (nn.LayerNorm, nn.MultiheadAttention, nn.BatchNorm1d)) or type(m).__name__ == "Permute"
               for m in model.modules())


def _width(module: nn.Module) -> int | None:
    """The number of features a channel-defining module produces (None when it says nothing)."""
    for attribute in ("out_channels", "num_features", "num_channels", "out_features", "embed_dim"):
        value = getattr(module, attribute, None)
        if isinstance(value, int):
            return value
    shape = getattr(module, "normalized_shape", None)
    return int(shape[-1]) if shape else None


def _last_by_strides(tensor: torch.Tensor, last: bool) -> bool:
    """Whether the channels of ``tensor``, whose dim 1 and last dim both have the channel count, are last.

    Shapes cannot tell (CvT's keys and values at 64 px: 16 tokens of 16 channels, flattened and transposed
    by functional code); memory can. The channel axis had the largest stride in a channels-first state (an
    ``(N, C, H, W)`` map) and stride 1 in a channels-last one, and a view (``transpose``, ``permute``) moves
    the strides with the axis; a copy in the new order keeps the state.
    """
    first, final = tensor.stride(1), tensor.stride(-1)
    if first == final:
        return last
    return first < final if not last else final < first


def channels_last_layers(model: nn.Module, inputs: torch.Tensor) -> frozenset[str]:
    """The names of ``model``'s layers whose channels are last (see the module docstring), found once per model.

    Args:
        model: the network (run once in eval mode under ``torch.no_grad`` on ``inputs[:1]``; no hook stays, no
            module's mode or statistic changes, and the global generators it draws from are given back as they
            were: a later call, which finds the layers known, draws what the first drew).
        inputs: a batch the model takes, e.g. ``(N, C, H, W)``.

    Returns:
        Dotted names (first call of a module that runs several times); empty for a model with no
        module that can put channels last. A forward pass that fails keeps what it found so far.
    """
    try:
        known = _KNOWN.get(model)
    except TypeError:
        known = None
    if known is not None:
        return known
    found: set[str] = set()
    if may_be_channels_last(model):
        state: dict[str, Any] = {"last": False, "width": None}
        seen: set[str] = set()

        def hook(name: str, module: nn.Module, output: Any) -> None:
            tensor = output[0] if isinstance(output, (tuple, list)) and output else output
            if is_leaf(module):
                if isinstance(module, (_FIRST, _LAST)):  # a norm over (M, C) rows (LeViT's BatchNorm1d on
                    # flattened tokens) has its features last too: the tokens it returns to keep them there
                    flat = isinstance(tensor, torch.Tensor) and tensor.dim() == 2
                    state["last"], state["width"] = isinstance(module, _LAST) or flat, _width(module)
                elif type(module).__name__ == "Permute" and isinstance(tensor, torch.Tensor) and tensor.dim() > 2:
                    dims = [d % tensor.dim() for d in getattr(module, "dims", ())]
                    axis = tensor.dim() - 1 if state["last"] else 1
                    if axis in dims:  # torchvision's Permute: where the channel axis went
                        state["last"] = dims.index(axis) == tensor.dim() - 1
            if name in seen or not isinstance(tensor, torch.Tensor) or tensor.dim() < 3:
                return
            seen.add(name)
            width = state["width"]
            both = width is not None and tensor.shape[1] == width == tensor.shape[-1]
            if both and (state["last"] or tensor.dim() == 3):  # as many positions as channels
                state["last"] = _last_by_strides(tensor, state["last"])
            elif state["last"] and width is not None and tensor.shape[-1] != width and tensor.shape[1] == width:
                state["last"] = False  # permuted back to channels first
            elif (not state["last"] and width is not None and tensor.dim() == 3 and tensor.shape[1] != width
                  and tensor.shape[-1] == width):
                state["last"] = True  # a map flattened to (N, L, C) tokens by functional code (ViT's patches)
            if state["last"]:
                found.add(name)

        handles = [m.register_forward_hook(lambda m, a, out, n=name: hook(n, m, out))
                   for name, m in model.named_modules() if name]
        try:  # its draws kept: a pass made once per model must not move what the caller's passes draw next
            with global_rng_kept(devices=[inputs.device]), evaluating(model), torch.no_grad():  # and train()'s
                model(inputs[:1])  # batch-norm statistics kept
        except Exception:  # noqa: BLE001 - the layers before the failure are known; the caller's pass reports it
            pass
        finally:
            for handle in handles:
                handle.remove()
    result = frozenset(found)
    try:
        _KNOWN[model] = result
    except TypeError:
        pass
    return result
