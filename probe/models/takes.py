"""What a model takes as its input, told by its first layer: cnn-probe probes models of ``(N, C, H, W)`` images.

A model's channel count is read from its first convolution (:func:`probe.models.preprocess.first_conv_channels`).
Where that first layer is not a 2-D convolution, the model takes no images, and what it takes is said in one line
before any command runs (where before the commands ran on, or failed in words about channels and sizes), whichever
way the model came in: :func:`probe.models.taking_images` asks it of a spec, a module, a LoadedModel made by hand,
and of :func:`probe.layers`' model:

- a transposed convolution first: a GAN generator or a decoder, whose input is a latent code ``(N, Z, 1, 1)``
  (DCGAN) or ``(N, Z)`` reshaped; it runs on a ``(N, Z, H, W)`` "image" too, so maximize used to optimize Z
  channels of noise and draw three of them;
- a ``Conv1d`` or ``Conv3d`` first: signals ``(N, C, L)``, volumes or clips ``(N, C, D, H, W)``; a ``Conv3d``
  reads one ``(1, C, H, W)`` image as an unbatched volume and runs, so a dream failed later, in words about
  batches;
- an ``nn.Embedding`` before a first ``Conv1d`` (a text CNN): integer tokens.

The layer the definition order puts first is confirmed by one pass that sees which of those layers runs first
(forward pre-hooks, removed at once; no gradients; modes, statistics and random generators kept by
:func:`probe.modes.evaluating`), so a model that defines a ``Conv1d`` (an ECA attention) before its ``Conv2d``
stem still loads.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from probe.errors import ProbeUsageError
from probe.modes import evaluating

__all__ = ["check_takes_images"]

_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _first_layers(module: nn.Module) -> tuple[tuple[str, nn.Module] | None, tuple[str, nn.Module] | None]:
    """``(the first embedding before the first convolution, the first convolution)`` in definition order, as
    ``(name, module)``, None where there is none."""
    embedding = None
    for name, sub in module.named_modules():
        if isinstance(sub, _EMBEDDINGS) and embedding is None:
            embedding = (name, sub)
        if isinstance(sub, _CONVOLUTIONS) and not getattr(sub, "in_channels", 1) == 0:  # not a lazy one
            return embedding, (name, sub)
    return embedding, None


def _runs_first(model: nn.Module, suspect: nn.Module, channels: int, size: tuple[int, int]) -> bool:
    """Whether ``suspect`` runs before every 2-D convolution of ``model`` on a blank ``(1, channels, H, W)``
    input (also when the pass then fails: what ran first is what the model took its input with)."""
    order: list[nn.Module] = []
    watched = [sub for sub in model.modules() if sub is suspect or isinstance(sub, nn.Conv2d)]
    handles = [sub.register_forward_pre_hook(lambda sub, args: order.append(sub)) for sub in watched]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with evaluating(model), torch.no_grad(), contextlib.suppress(Exception):
            model(torch.zeros(1, channels, *size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return bool(order) and order[0] is suspect


def check_takes_images(model: nn.Module, name: str, size: tuple[int, int]) -> None:
    """Refuse a model whose first layer takes no image (see the module docstring).

    Args:
        model: the model.
        name: how to call it in the message (its spec).
        size: ``(H, W)`` the input size of the confirming pass.

    Raises:
        ProbeUsageError: (``param="model"``) its first layer is a transposed convolution, a ``Conv1d`` or a
            ``Conv3d`` (an ``nn.Embedding`` before it: tokens).
    """
    embedding, first = _first_layers(model)
    if first is None or isinstance(first[1], nn.Conv2d):  # timm's StdConv2d, Conv2dSame too
        return
    layer, conv = first
    channels, tokens = conv.in_channels, embedding is not None and isinstance(conv, nn.Conv1d)
    if not _runs_first(model, embedding[1] if tokens else conv, channels, size):
        return
    kind = type(conv).__name__
    advice = "no input size fixes this"
    if tokens:
        what = (f"its {embedding[0]} (an {type(embedding[1]).__name__}) comes before its first convolution {layer} "
                f"({kind}): it takes integer tokens, not images")
    elif isinstance(conv, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        what = (f"its first layer {layer} is a {kind} on {channels} channels, which upsamples: a generator or "
                f"decoder, whose input is a latent code such as (N, {channels}, 1, 1), not an image")
        advice = "give a model that takes images (a GAN's discriminator, an autoencoder's encoder)"
    else:
        takes = "(N, C, L) signals" if isinstance(conv, nn.Conv1d) else "(N, C, D, H, W) volumes or clips"  # Conv3d
        what = f"its first layer {layer} ({kind}) takes {takes}"
    raise ProbeUsageError(f"{name}: {what}, and cnn-probe probes models of (N, C, H, W) images (a 2-D convolution "
                          f"first): {advice}", param="model")
