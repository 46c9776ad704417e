"""The methods of :data:`EXTRA_METHODS` (DeepLift, GradientShap, occlusion, LRP) on captum."""

from __future__ import annotations

import torch
from torch import nn

from probe.attribution.hooked import run_deeplift, run_lrp
from probe.attribution.occlusion import Progress, counting, run_occlusion
from probe.choices import EXTRA_ATTRIBUTION_METHODS as EXTRA_METHODS  # torch-free: the command's option offers them
from probe.errors import ProbeUsageError
from probe.runtime import global_rng_kept


SHAP_BATCH = 8
"""GradientShap runs its ``samples`` noisy images in batches of at most this many: memory follows the batch,
and the progress bar moves per batch."""


def baselines_of(baseline: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A grey level or ``(C, H, W)`` / ``(K, C, H, W)`` images -> ``(K, C, H, W)`` baselines on ``x``'s device."""
    if isinstance(baseline, torch.Tensor):
        value = baseline.detach().float().to(x.device)
        value = value.unsqueeze(0) if value.dim() == 3 else value
        if value.dim() != 4 or value.shape[1:] != x.shape[1:]:
            raise ProbeUsageError(f"a baseline of shape {tuple(baseline.shape)} does not fit the input "
                                  f"{tuple(x.shape[1:])}; give (C, H, W) or (K, C, H, W)", param="baseline")
        return value
    return torch.full((1, *x.shape[1:]), float(baseline), device=x.device)


def run_extra(
    method: str, forward: nn.Module, x: torch.Tensor, target: int, samples: int, noise: float,
    baseline: float | torch.Tensor, seed: int, window: int | None = None, stride: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """DeepLift, GradientShap, Occlusion or LRP on ``x`` ``(1, C, H, W)``: ``(C, H, W)`` on the CPU.

    - ``deeplift``: DeepLift's rescale rule against the baseline (the first one of a stack);
    - ``gradient-shap``: expected gradients x (input - baseline) over ``samples`` draws from the
      baselines with Gaussian noise ``noise``, seeded (Lundberg and Lee 2017), :data:`SHAP_BATCH` at a time;
    - ``occlusion``: the score drop when a window is set to the baseline (Zeiler and Fergus 2014); by
      default a 7 x 7 grid of windows covering the image, aligned to the model's patches
      (:func:`probe.attribution.occlusion.occlusion_grid`), else ``window`` squares at ``stride``
      (default half the window);
    - ``lrp``: layer-wise relevance propagation with captum's default rules (epsilon for conv and
      linear layers, batch norm and residual additions); refused in one line when the model has a layer
      or an operation on activations without a rule.

    GradientShap and occlusion report ``progress(method, images done, total)`` as their batches run
    (default None: silent).
    """
    from captum.attr import GradientShap

    inputs = x.detach().clone().requires_grad_(True)
    reference = baselines_of(baseline, x)
    with torch.enable_grad():
        if method == "deeplift":
            result = run_deeplift(forward, inputs, reference[:1], target)
        elif method == "gradient-shap":
            shap = GradientShap(counting(forward, method, samples, progress))
            total = torch.zeros_like(inputs)
            with global_rng_kept(seed, [x.device]):  # captum draws the baselines with numpy, the noise with torch
                for start in range(0, samples, SHAP_BATCH):  # the mean over samples, a batch at a time
                    count = min(SHAP_BATCH, samples - start)
                    total += count * shap.attribute(inputs, baselines=reference, n_samples=count, stdevs=noise,
                                                    target=target).detach()
            result = total / samples
        elif method == "occlusion":
            result = run_occlusion(forward, inputs, reference[:1], target, window=window, stride=stride,
                                   progress=progress)
        else:
            result = run_lrp(forward, inputs, target)
    value = result[0].detach().float().cpu()
    if not torch.isfinite(value).all():
        raise ProbeUsageError(f"{method} gave non-finite attributions for this model; use another --method",
                              param="method")
    return value


COMPLETE_METHODS: tuple[str, ...] = ("integrated-gradients", "deeplift")
"""Methods whose attributions should sum to ``f(x) - f(baseline)`` (completeness, summation-to-delta)."""


def completeness_gaps(forward: nn.Module, x: torch.Tensor, baseline: float | torch.Tensor, target: int,
                      attributions: dict[str, torch.Tensor]) -> dict[str, float]:
    """The relative completeness gap of each method of :data:`COMPLETE_METHODS` in ``attributions``
    (:func:`completeness_gap`) and LRP's conservation gap (:func:`conservation_gap`)."""
    gaps = {name: completeness_gap(forward, x, baseline, target, attributions[name])
            for name in COMPLETE_METHODS if name in attributions}
    if "lrp" in attributions:
        gaps["lrp"] = conservation_gap(forward, x, target, attributions["lrp"])
    return gaps


def conservation_gap(forward: nn.Module, x: torch.Tensor, target: int, relevance: torch.Tensor) -> float:
    """``|sum(relevance) - f(x)| / |f(x)|`` for ``x`` ``(1, C, H, W)``: LRP's relevance sums to the score.

    What the epsilon rule keeps in each layer's bias (batch norm's shift included) and stabilizer is the gap:
    about 1e-7 on a network without biases, about 1% on ResNet-18 with random weights (its classifier's bias).
    """
    with torch.no_grad():
        score = float(forward(x)[0, target].double())
    return abs(float(relevance.double().sum()) - score) / max(abs(score), 1e-12)


def completeness_gap(forward: nn.Module, x: torch.Tensor, baseline: float | torch.Tensor, target: int,
                     attribution: torch.Tensor) -> float:
    """``|sum(attribution) - (f(x) - f(b))| / |f(x) - f(b)|`` for ``x`` ``(1, C, H, W)`` and the first baseline.

    0 for an exact method. Integrated gradients' gap is its quadrature error; DeepLift's is exact (1e-6) through
    ReLUs, linear layers and additions, but captum's max-pool rule is approximate (about 10% on ResNet-18) and
    activations it has no rule for (GELU, SiLU, LayerNorm, functional ReLUs) pass plain gradients.
    """
    with torch.no_grad():
        scores = forward(torch.cat([x, baselines_of(baseline, x)[:1]]))[:, target].double()
    delta = float(scores[0] - scores[1])
    return abs(float(attribution.double().sum()) - delta) / max(abs(delta), 1e-12)
