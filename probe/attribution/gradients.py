"""The gradient methods of :data:`METHODS` (saliency, integrated gradients, smoothgrad, guided backprop,
Grad-CAM) on captum."""

from __future__ import annotations

import torch
from torch import nn

from probe.attribution.cam import CamLayer, grad_cam
from probe.attribution.extra import baselines_of
from probe.attribution.hooked import captum_refusal, hook_copy
from probe.attribution.occlusion import Progress, counting
from probe.attribution.relus import GuidedRelus, relu_check
from probe.attribution.scores import attribution_scores
from probe.choices import ATTRIBUTION_METHODS as METHODS  # torch-free: the command's option offers them
from probe.choices import GAUSS_LEGENDRE_MAX_STEPS, IG_BATCH, MAX_IG_STEPS
from probe.errors import ProbeUsageError
from probe.models import LoadedModel
from probe.runtime import global_rng_kept


class Normalized(nn.Module):
    """``image in [0, 1] -> (N, K) class scores``: the model with its normalization, as captum's forward
    function; the scores are :func:`probe.attribution.scores.attribution_scores` of the output (a dense
    ``(N, K, H, W)`` map summed per class); ``reading``: what the user says the output is
    (:data:`probe.outputs.OUTPUT_READINGS`, default ``"auto"``)."""

    def __init__(self, loaded: LoadedModel, reading: str = "auto") -> None:
        super().__init__()
        self.net = loaded.module
        self.preprocess = loaded.preprocess
        self.reading = reading

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return attribution_scores(self.net(self.preprocess.normalize(images)), self.reading)




def integration_method(steps: int) -> str:
    """captum's quadrature for ``steps`` integrated-gradients steps (see :data:`GAUSS_LEGENDRE_MAX_STEPS`)."""
    return "gausslegendre" if steps <= GAUSS_LEGENDRE_MAX_STEPS else "riemann_trapezoid"


def run_gradient(
    method: str,
    forward: Normalized,
    x: torch.Tensor,
    target: int,
    layer: CamLayer | None,
    steps: int,
    samples: int,
    noise: float,
    baseline: float | torch.Tensor,
    seed: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """One gradient method of :data:`METHODS` on the batch of one ``x`` ``(1, C, H, W)``; returns ``(C, H, W)``
    (``(1, H, W)`` for Grad-CAM, on ``layer``), on the CPU. Integrated gradients and smoothgrad report
    ``progress(method, images done, steps or samples)`` as their batches run (default None: silent)."""
    from captum.attr import GuidedBackprop, IntegratedGradients, NoiseTunnel, Saliency

    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if method == "saliency":
            result = Saliency(forward).attribute(inputs, target=target, abs=False)
        elif method == "integrated-gradients":
            result = IntegratedGradients(counting(forward, method, steps, progress)).attribute(
                inputs, baselines=baselines_of(baseline, x)[:1], target=target, n_steps=steps,
                method=integration_method(steps), internal_batch_size=min(steps, IG_BATCH),
            )  # fmt: skip
        elif method == "smoothgrad":
            with global_rng_kept(seed, [x.device]):  # captum draws the noise from torch's global generator
                result = NoiseTunnel(Saliency(counting(forward, method, samples, progress))).attribute(
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
            if layer is None or layer.layout is None:
                raise ProbeUsageError("Grad-CAM needs a layer with spatial output", param="layer")
            return grad_cam(forward.net, lambda image: forward(image)[0, target], x, layer.name, layer.layout)
    return result[0].detach().float().cpu()
