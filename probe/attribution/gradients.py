"""The gradient methods of :data:`METHODS` (saliency, integrated gradients, smoothgrad, guided backprop,
Grad-CAM) on captum."""

from __future__ import annotations

import torch
from torch import nn

from probe.attribution.extra import baselines_of
from probe.attribution.hooked import captum_refusal, hook_copy
from probe.attribution.relus import GuidedRelus, relu_check
from probe.errors import ProbeUsageError
from probe.hooks import first_tensor
from probe.models import LoadedModel
from probe.runtime import global_rng_kept

METHODS: tuple[str, ...] = ("saliency", "integrated-gradients", "smoothgrad", "guided-backprop", "gradcam")
"""Every method, in the order ``method="all"`` shows them."""


class Normalized(nn.Module):
    """``image in [0, 1] -> logits``: the model with its normalization, as captum's forward function."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__()
        self.net = loaded.module
        self.preprocess = loaded.preprocess

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return first_tensor(self.net(self.preprocess.normalize(images)))


IG_BATCH = 32
"""Integrated gradients runs its ``steps`` interpolated images in batches of at most this many:
memory follows the batch, not ``steps``."""

GAUSS_LEGENDRE_MAX_STEPS = 1024
"""Up to this many steps, integrated gradients uses Gauss-Legendre quadrature (captum's default, the
most accurate); its nodes come from an ``steps x steps`` eigenproblem (8 MB and a fraction of a second
at 1024, but 74.5 GiB at 100000), so more steps use the trapezoid rule, whose cost is linear."""


MAX_IG_STEPS = 10_000
"""The most integrated-gradients steps the CLI takes: time grows with the steps (memory does not),
and the trapezoid rule's error is already below 1e-8 of the integral there."""


def integration_method(steps: int) -> str:
    """captum's quadrature for ``steps`` integrated-gradients steps (see :data:`GAUSS_LEGENDRE_MAX_STEPS`)."""
    return "gausslegendre" if steps <= GAUSS_LEGENDRE_MAX_STEPS else "riemann_trapezoid"


def run_gradient(
    method: str,
    forward: Normalized,
    x: torch.Tensor,
    target: int,
    layer: str | None,
    steps: int,
    samples: int,
    noise: float,
    baseline: float | torch.Tensor,
    seed: int,
) -> torch.Tensor:
    """One gradient method of :data:`METHODS` on the batch of one ``x``; returns ``(C, H, W)`` (``(1, H, W)`` for Grad-CAM), on the CPU."""
    from captum.attr import (
        GuidedBackprop,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Saliency,
    )

    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if method == "saliency":
            result = Saliency(forward).attribute(inputs, target=target, abs=False)
        elif method == "integrated-gradients":
            result = IntegratedGradients(forward).attribute(
                inputs, baselines=baselines_of(baseline, x)[:1], target=target, n_steps=steps,
                method=integration_method(steps), internal_batch_size=min(steps, IG_BATCH),
            )  # fmt: skip
        elif method == "smoothgrad":
            with global_rng_kept(seed, [x.device]):  # captum draws the noise from torch's global generator
                result = NoiseTunnel(Saliency(forward)).attribute(
                    inputs, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=min(samples, 8),
                    stdevs=noise, target=target, abs=False,
                )
        elif method == "guided-backprop":
            modules, functional = relu_check(forward, inputs.detach())
            if not modules and not functional:
                raise ProbeUsageError("guided backprop needs ReLU activations; this model has none", param="method")
            net = hook_copy(forward, inputs.detach())
            with GuidedRelus(), captum_refusal("guided-backprop"):  # functional ReLUs: captum guides modules only
                result = GuidedBackprop(net).attribute(inputs, target=target)
        else:
            cam = LayerGradCam(forward, dict(forward.net.named_modules())[layer] if layer else forward.net)
            maps = cam.attribute(inputs, target=target, relu_attributions=True)
            result = LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear").clamp_min(0)
    return result[0].detach().float().cpu()
