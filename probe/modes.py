"""A user's model run in eval mode for a block: every module's own ``training`` flag, the state its
quantization observers would write in eval mode too, the tensors its forward pre-hooks compute into plain
attributes (``torch.nn.utils.prune``'s ``weight``), and the global random generators its own code draws from
(ViTMAE's random masking), restored after."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import nn

from probe.leaves import quantization_helpers
from probe.runtime import global_rng_kept

__all__ = ["evaluating"]

_Saved = list[tuple[nn.Module, str, torch.Tensor, torch.Tensor]]


def _hold_observers(model: nn.Module) -> _Saved:
    """Stop ``model``'s quantization observers for a while; what they hold, to give back with :func:`_release`.

    Eval mode does not stop them: a quantization-aware (``prepare_qat``) or prepared model's observers
    update their ranges, and the fake-quantizers their scale and zero point, on every forward pass, so
    synthesized images would move a model cnn-probe promised not to change, and its quantization with
    it during a run. A fake-quantizer's observer is switched off (``observer_enabled``); a bare observer
    (it returns its input as it is) observes, and its buffers are given back after.

    Returns:
        ``(module, buffer name, the buffer, a copy of its value)`` for every buffer of every observer
        and fake-quantizer in ``model``; empty, and nothing done, when torch.ao.quantization is not loaded.
    """
    helpers = quantization_helpers()
    if not helpers:
        return []
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase

    saved: _Saved = []
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, helpers):
                saved += [(module, name, buffer, buffer.clone()) for name, buffer in module.named_buffers(recurse=False)]
        for module in model.modules():
            if isinstance(module, FakeQuantizeBase):
                module.disable_observer()  # in place: also a frozen view's (it shares these buffers)
    return saved


def _release(saved: _Saved) -> None:
    """Give the buffers :func:`_hold_observers` saved their values (and their tensors) back."""
    with torch.no_grad(), torch.inference_mode(False):
        for module, name, buffer, value in saved:
            buffer.resize_(value.shape).copy_(value)  # observers resize_ and copy_ their ranges in place
            module._buffers[name] = buffer  # one that replaced its buffer gets the user's tensor back


DRAWS_SEED = 0
"""The seed of the global generators a model's own eval-mode draws come from, in the outermost :func:`evaluating`
block: one fixed number, so the same call draws the same. A caller that wants its draws to follow its own seed
seeds them inside the block (:func:`probe.optimize.model_draws`)."""

_NESTING = threading.local()
"""``depth``: how many :func:`evaluating` blocks this thread is in; only the outermost seeds the generators.
``models``: the ids of the models those blocks hold, each as many times as it is held."""


_Computed = list[tuple[nn.Module, str, torch.Tensor]]


def _computed(model: nn.Module) -> _Computed:
    """The tensors ``model``'s modules hold as plain attributes, neither parameters nor buffers: what a forward
    pre-hook computes from them on every pass (``torch.nn.utils.prune``'s ``weight = weight_orig * weight_mask``,
    the old hook-based ``weight_norm``'s and ``spectral_norm``'s ``weight``). A pass under ``torch.no_grad()``
    replaces each with a tensor that does not require grad and has no graph, so the user's ``conv.weight`` would
    come back changed; :func:`evaluating` puts these very tensors back."""
    return [(module, name, value) for module in model.modules() for name, value in vars(module).items()
            if isinstance(value, torch.Tensor)]  # fmt: skip


def _cuda_devices(model: nn.Module) -> list[torch.device]:
    """The CUDA devices ``model``'s parameters and buffers are on."""
    return list({t.device for t in [*model.parameters(), *model.buffers()] if t.device.type == "cuda"})


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then restore every module's own flag.

    Used by every function that runs a user's model, so that dropout and
    batch-norm behave as at inference without leaving the model changed.
    Quantization observers, which write their ranges in eval mode too, are
    held for the block and their buffers restored after (see :func:`_hold_observers`); the tensors forward
    pre-hooks compute into plain attributes (a pruned layer's ``weight``) are the user's again after (see
    :func:`_computed`).
    A model whose forward draws random numbers itself in eval mode (ViTMAE's random masking of patches, a
    noise layer) draws them from Python's, NumPy's and torch's global generators (the CPU's and those of the
    CUDA devices it is on) seeded with :data:`DRAWS_SEED` for the outermost block: the same call draws the
    same numbers, and the caller's generators are left where they were (see
    :func:`probe.runtime.global_rng_kept`). A block inside seeds them as it wants (maximize's per-chunk draws,
    its batch-coupling probe's two seeds, captum's noise): an ``evaluating`` nested in it leaves them alone.

    A block nested in one that already holds the same ``model``, which is still in eval mode, does nothing: the
    outer block has put every module in eval mode and holds the observers and generators, and gives them back.
    That is every step of a render loop (:func:`probe.hooks.capture` inside the loop's own block), where walking
    the modules, setting their flags and saving the generators again cost a googlenet 8 ms a step on the CPU.
    """
    held: list[int] = getattr(_NESTING, "models", None) or []
    if id(model) in held and not model.training:
        yield model
        return
    flags = [(module, module.training) for module in model.modules()]
    computed = _computed(model)
    saved = _hold_observers(model)
    model.eval()
    outermost = not getattr(_NESTING, "depth", 0)
    _NESTING.depth = getattr(_NESTING, "depth", 0) + 1
    _NESTING.models = [*held, id(model)]
    try:
        with global_rng_kept(DRAWS_SEED, _cuda_devices(model)) if outermost else contextlib.nullcontext():
            yield model
    finally:
        _NESTING.depth -= 1
        _NESTING.models = held
        for module, training in flags:
            module.training = training
        for module, name, value in computed:
            vars(module)[name] = value  # as the pre-hook set it: a plain attribute, not a parameter or buffer
        _release(saved)
