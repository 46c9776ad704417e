"""The result of an attribution: :class:`Attribution`, and the heat drawn from a raw map."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from probe.outputs import Prediction
from probe.results import GalleryResult

@dataclass
class Attribution(GalleryResult):
    """Attribution maps of one image for one target class.

    Attributes:
        model: the model's name.
        image: ``(C, H, W)`` the input in [0, 1] as the model saw it.
        target: the class explained; ``target_label`` its name.
        prediction: the model's class probabilities for the image.
        attributions: method -> raw attribution: ``(C, H, W)`` like the input for
            the pixel methods (signed), ``(1, H, W)`` for Grad-CAM (upsampled, >= 0).
        heatmaps: method -> ``(H, W)`` in [0, 1], what the gallery draws.
        layer: the Grad-CAM layer, when Grad-CAM ran.
        skipped: method -> why it did not run (``method="all"`` skips what cannot run).
        options: the settings used (steps, samples, noise, seed, baseline).
    """

    _report = "probe.reports.attribution"

    model: str
    image: torch.Tensor
    target: int
    target_label: str
    prediction: Prediction
    attributions: dict[str, torch.Tensor]
    heatmaps: dict[str, torch.Tensor]
    layer: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        skipped = f", skipped {', '.join(self.skipped)}" if self.skipped else ""
        return (
            f"Attribution({self.model}: target {self.target} ({self.target_label}), prediction {self.prediction}, "
            f"methods {', '.join(self.heatmaps) or 'none'}{skipped}; image {tuple(self.image.shape)})"
        )


def normalize_heatmap(heat: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Scale a non-negative ``(H, W)`` map so its ``percentile`` is 1, clamped to [0, 1] (all zero stays zero)."""
    heat = heat.float()
    scale = torch.quantile(heat.flatten(), percentile / 100.0) if heat.numel() > 1 else heat.max()
    if scale <= 0:
        scale = heat.max()
    if scale <= 0:
        return torch.zeros_like(heat)
    return (heat / scale).clamp(0.0, 1.0)


def heat_of(method: str, attribution: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` attribution -> ``(H, W)`` non-negative heat."""
    if method == "saliency":
        return attribution.abs().amax(dim=0)
    return attribution.abs().sum(dim=0)
