"""What a Deep Dream returns: :class:`DreamResult`, a gallery result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from probe.results import GalleryResult

__all__ = ["DreamResult"]


@dataclass
class DreamResult(GalleryResult):
    """What :func:`dream` returns.

    Attributes:
        image: the dream, ``(C, H, W)`` in [0, 1], the input's size (the first
            frame when a zoom sequence was asked for), on the CPU.
        input: the input as the model saw it (channels converted), ``(C, H, W)``.
        octaves: the dream at the end of each octave, smallest first; the last
            one is ``image``.
        frames: the zoom sequence, ``(C, H, W)`` each (``frames[0]`` is
            ``image``); empty unless ``frames`` was asked for.
        objective_before: the objective on ``input`` (no jitter; tiled like
            the dream when tiles were used).
        objective_after: the objective on ``image``, measured the same way.
        layer_objectives: per layer, ``{"before": ..., "after": ...}``
            (unweighted).
        history: the objective at every step (on the jittered image, at that
            octave's scale), all frames and octaves in order.
        options: every option of the run (layers, weights, channels, octaves,
            octave sizes, steps, lr, jitter, tiles, guide, ...), and ``diverged``:
            None, or why the dream is not to be trusted (binary noise from a far
            too large ``lr``; see :func:`~probe.images.divergence`).
        model: the model's name.
        seconds: wall-clock time of the whole run.
    """

    _report = "probe.reports.dream"

    image: torch.Tensor
    input: torch.Tensor
    octaves: list[torch.Tensor]
    frames: list[torch.Tensor]
    objective_before: float
    objective_after: float
    layer_objectives: dict[str, dict[str, float]]
    history: list[float]
    options: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    seconds: float = 0.0

    def __repr__(self) -> str:
        layers = ", ".join(self.layer_objectives) or "?"
        return (
            f"DreamResult({self.model} {layers}: image {tuple(self.image.shape)}, objective "
            f"{self.objective_before:.4g} -> {self.objective_after:.4g}, {len(self.octaves)} octave(s), "
            f"{len(self.frames)} frame(s), {self.seconds:.1f}s)"
        )

    @property
    def octave_sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of each octave, smallest first."""
        return [tuple(image.shape[-2:]) for image in self.octaves]  # type: ignore[misc]

