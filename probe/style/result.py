"""What a style transfer returns: the images, the losses, the history and every option, ready to save or show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from probe.results import GalleryResult
from probe.style.losses import EPS

__all__ = ["StyleResult"]


@dataclass
class StyleResult(GalleryResult):
    """What :func:`style_transfer` returns.

    Attributes:
        image: ``(C, H, W)`` result in [0, 1], on the CPU.
        content: ``(C, H, W)`` the content image at the result's size.
        styles: ``[(C, h, w)]`` the style images as used at the last scale.
        history: per optimization step, ``"content"``, ``"style"``, ``"tv"``
            (unweighted losses) and ``"total"`` (the weighted sum minimized),
            plus ``"scale"`` (index into ``options["scales"]``).
        losses: ``content``, ``style``, ``tv`` and ``total`` measured on the
            final image (clamped, colours kept when asked).
        layer_losses: the same per layer: ``{"content:relu4_2": ..., "style:relu1_1": ...}``.
        content_image_style_loss: the style loss of the content image itself at
            the final size: the reference that ``losses["style"]`` improves on.
        snapshots: ``[(step, (C, H, W) image)]`` taken during the optimization.
        options: every option as resolved (layers with their module names,
            normalized weights, sizes, ...), for the manifest.
        seconds: wall-clock time of the optimization.
        model: the model's name.
        content_label: the content source as given (``"skimage:astronaut"``).
        style_labels: the style sources as given.
    """

    _report = "probe.reports.style"

    image: torch.Tensor
    content: torch.Tensor
    styles: list[torch.Tensor]
    history: dict[str, list[float]]
    losses: dict[str, float]
    layer_losses: dict[str, float]
    content_image_style_loss: float
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    model: str = ""
    content_label: str = "content"
    style_labels: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        styles = ", ".join(self.style_labels) or f"{len(self.styles)} style(s)"
        return (
            f"StyleResult({self.model}: {self.content_label} in the style of {styles}, image {tuple(self.image.shape)}, "
            f"style loss {self.style_ratio:.2%} of the content's, {len(self.snapshots)} snapshot(s), {self.seconds:.1f}s)"
        )

    @property
    def style_ratio(self) -> float:
        """Final style loss / style loss of the content image (0.05 = 5%)."""
        return self.losses["style"] / max(self.content_image_style_loss, EPS)
