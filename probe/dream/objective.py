"""What a Deep Dream maximizes: the chosen layers' activation, or its match with a guide image.

A score to maximize, like every objective of cnn-probe. Per layer, at each
position of its feature map (channels optionally restricted):

- ``"l2"``: the mean over channels of the squared activation (positive values
  grow, negative ones shrink: the positive values get larger and the
  negative ones smaller);
- ``"mean"``: the mean activation;
- with a *guide* image: the dot product with the guide feature that matches
  this position best (the largest dot product), divided by the channel count.

The layer's score is the mean over positions; several layers add up with
their weights. :meth:`DreamObjective.evaluate` computes the score and its
gradient with respect to the image, whole or tile by tile
(:mod:`probe.tiling`), so that memory follows the tile instead of the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from probe.checks import check_indices, check_number, check_numbers
from probe.choices import DREAM_OBJECTIVES as OBJECTIVES  # torch-free: the command's option offers it
from probe.errors import (
    ProbeRuntimeError, ProbeUsageError, check_depends_on_image, not_per_image, output_not_a_tensor,
)  # fmt: skip
from probe.forward import ModelInputError, image_grad
from probe.hooks import OUTPUT, capture
from probe.images import resize
from probe.memory import is_out_of_memory
from probe.models import LoadedModel
from probe.models.forms import why_not_run
from probe.runtime import Precision, autocast
from probe.tiling import Tile

__all__ = ["OBJECTIVES", "DreamObjective", "Evaluation", "Objective", "make_objective"]

Objective = Literal["l2", "mean"]


class Evaluation(NamedTuple):
    """What :meth:`DreamObjective.evaluate` returns.

    The numbers stay on the image's device (0-dim tensors, detached): a dream's
    steps never wait for the device; read them with ``float()`` once they are needed.

    Attributes:
        score: the weighted objective of the whole image, 0-dim.
        per_layer: each layer's unweighted objective, 0-dim each.
        grad: d(score)/d(image), the image's shape; None unless asked for.
    """

    score: torch.Tensor
    per_layer: dict[str, torch.Tensor]
    grad: torch.Tensor | None


@dataclass
class DreamObjective:
    """The dream objective of fixed layers, channels and weights on one model.

    Build it with :func:`make_objective` (which checks the options); give it a
    guide with :meth:`set_guide`.

    Attributes:
        loaded: the model and its preprocessing.
        layers: dotted layer names.
        weights: per layer, its weight in the sum.
        channels: per layer, the channels that count (None: all).
        objective: ``"l2"`` or ``"mean"`` (ignored for guided layers).
        precision: the forward pass's precision.
        guides: per layer, the guide's features ``(C', Q)``; empty without a guide.
    """

    loaded: LoadedModel
    layers: list[str]
    weights: dict[str, float]
    channels: dict[str, list[int] | None]
    objective: str = "l2"
    precision: Precision = "fp32"
    guides: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def module(self) -> nn.Module:
        return self.loaded.module

    def activations(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The layers' outputs for ``images`` (``(1, C, H, W)`` in [0, 1]), graph kept.

        Raises:
            ProbeUsageError: the layers cannot be computed at this size (a linear
                layer, or an image too small for a deep layer), or did not run.
        """
        inputs = self.loaded.preprocess.normalize(images)
        try:
            with autocast(self.loaded.device, self.precision):
                acts = capture(self.module, inputs, self.layers, stop_early=True)
        except (RuntimeError, ModelInputError) as error:
            if is_out_of_memory(error):  # CUDA's or the CPU's: the CLI advises --tile / --size, never --layer
                raise
            if isinstance(error, ProbeRuntimeError):  # already says what to do (a float64 model), not the layers
                raise
            if isinstance(error, ModelInputError) and error.param != "size":  # no layer nor size fixes it
                raise
            original = error.original if isinstance(error, ModelInputError) else error
            if not isinstance(original, RuntimeError):  # the model's own input check (ViT's assert): its size
                raise
            first = str(original).splitlines()[0] if str(original) else type(original).__name__
            refused = ModelInputError(
                f"the model cannot compute layer(s) {', '.join(self.layers)} on a {images.shape[-2]}x{images.shape[-1]} "
                f"image ({first}). Dream layers must be convolutional (before any flatten/linear layer); small octaves "
                "or tiles can also be too small for deep layers: use fewer octaves, a smaller octave scale, a larger "
                "image or tile", tuple(inputs.shape), original)
            refused.param = "layer"  # a tile's or an octave's size is named by probe.dream
            raise refused from None
        missing = [name for name in self.layers if name not in acts]
        if OUTPUT in missing:  # the pass ran, but its output holds no tensor known to be the prediction
            raise output_not_a_tensor(self.loaded.name, param="layer")
        if missing:
            raise ProbeUsageError(f"layer(s) {', '.join(missing)} did not run in the model's forward pass: "
                                  f"{why_not_run(self.loaded.module, missing[0])}", param="layer")
        for name in self.layers:  # features() reads image 0 of dim 0: a folded layer's would be its first patch
            if acts[name].dim() == 0 or acts[name].shape[0] != images.shape[0]:
                raise not_per_image(name, tuple(acts[name].shape), images.shape[0], "a dream")
        return acts

    def features(self, name: str, activation: torch.Tensor) -> torch.Tensor:
        """Layer ``name``'s output as ``(C', h, w)`` float32 maps, only the chosen channels.

        A linear layer's ``(1, F)`` output is ``F`` maps of one position; a ``(1,)`` output (one score per
        image) is one map of one position.

        Raises:
            ProbeUsageError: a chosen channel is out of range for the layer.
        """
        maps = activation.float()[0]
        if maps.dim() == 0:  # one value per image, (N,): a regression's score, one map of one position
            maps = maps.reshape(1, 1, 1)
        elif maps.dim() == 1:
            maps = maps[:, None, None]
        elif maps.dim() == 2:
            maps = maps[:, :, None]
        elif maps.dim() > 3:
            maps = maps.flatten(2)
        chosen = self.channels[name]
        if chosen is None:
            return maps
        if max(chosen) >= maps.shape[0]:
            raise ProbeUsageError(
                f"channel {max(chosen)} is out of range for layer {name!r}: it has {maps.shape[0]} channels "
                f"(0 to {maps.shape[0] - 1})",
                param="channels",
            )
        return maps[chosen]

    def values(self, name: str, activation: torch.Tensor) -> torch.Tensor:
        """Layer ``name``'s objective at each position, ``(h, w)``; the layer's score is their mean."""
        maps = self.features(name, activation)
        guide = self.guides.get(name)
        if guide is not None:
            channels, height, width = maps.shape
            best = (maps.reshape(channels, -1).T @ guide).amax(dim=1)  # each position's best-matching guide feature
            return best.view(height, width) / channels
        if self.objective == "l2":
            return maps.pow(2).mean(dim=0)
        return maps.mean(dim=0)

    def set_guide(self, guide: torch.Tensor, size: int) -> None:
        """Steer toward ``guide`` (``(C, H, W)`` in [0, 1]), its features taken with the longer side ``size``."""
        image = resize(guide, size).to(self.loaded.device)[None]
        with torch.no_grad():
            acts = self.activations(image)
        self.guides = {}
        for name in self.layers:
            maps = self.features(name, acts[name])
            self.guides[name] = maps.reshape(maps.shape[0], -1).detach()

    def evaluate(self, image: torch.Tensor, tiles: Sequence[Tile], *, gradient: bool) -> Evaluation:
        """The objective of ``image`` (``(1, C, H, W)``), tile by tile, and optionally its gradient.

        Each tile's window contributes the gradient of its own objective to the
        tile's core, so only one window's activations are alive at a time. The
        reported score counts only the activations that belong to each core
        (cropped in proportion), so the tiles' shares add up to the objective
        of the whole image (exactly for one tile).
        """
        height, width = image.shape[-2:]
        grad = torch.zeros_like(image) if gradient else None
        zero = torch.zeros((), device=image.device)
        per_layer = dict.fromkeys(self.layers, zero)
        for tile in tiles:
            window = image[..., tile.window[0], tile.window[1]].detach().requires_grad_(gradient)
            share = tile.window_size[0] * tile.window_size[1] / (height * width)
            with torch.set_grad_enabled(gradient):
                acts = self.activations(window)
                score = zero
                for name in self.layers:
                    values = self.values(name, acts[name])
                    score = score + self.weights[name] * values.mean() * share
                    per_layer[name] = per_layer[name] + _core_mean(values, tile) * share  # not +=: the zero is shared
                del acts
                if grad is not None:
                    check_depends_on_image(score, self.layers)
                    (window_grad,) = image_grad(score, window)
                    grad[..., tile.core[0], tile.core[1]] = window_grad[..., tile.core_in_window[0], tile.core_in_window[1]]
        total = sum((self.weights[name] * per_layer[name] for name in self.layers), zero)
        return Evaluation(total, per_layer, grad)


def _core_mean(values: torch.Tensor, tile: Tile) -> torch.Tensor:
    """Sum of the ``(h, w)`` ``values`` over the tile's core (scaled to the window), over ``h * w``; 0-dim, detached."""
    vh, vw = values.shape
    window_h, window_w = tile.window_size
    rows, cols = tile.core_in_window
    core = values[
        round(rows.start * vh / window_h) : round(rows.stop * vh / window_h),
        round(cols.start * vw / window_w) : round(cols.stop * vw / window_w),
    ]
    return core.detach().float().sum() / (vh * vw)


def make_objective(
    loaded: LoadedModel,
    layers: list[str],
    *,
    channels: Sequence[int] | Mapping[str, Sequence[int] | None] | None = None,
    layer_weights: Sequence[float] | Mapping[str, float] | None = None,
    objective: Objective = "l2",
    precision: Precision = "fp32",
) -> DreamObjective:
    """Check the options and build the :class:`DreamObjective` of ``layers``.

    Args:
        loaded: the model.
        layers: dotted layer names, already resolved.
        channels: channels that count, for every layer (a list) or per layer
            (``{layer: list}``); default all.
        layer_weights: a weight per layer (a list in ``layers`` order, or
            ``{layer: weight}``); default 1 each.
        objective: ``"l2"`` (default) or ``"mean"``.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``.

    Raises:
        ProbeUsageError: unknown objective, a negative or empty channel list,
            weights that do not match the layers, options for a layer that is
            not dreamed.
    """
    if objective not in OBJECTIVES:
        raise ProbeUsageError(f"unknown objective {objective!r}; objectives are: {', '.join(OBJECTIVES)}", param="objective")
    return DreamObjective(
        loaded=loaded,
        layers=list(layers),
        weights=_layer_weights(layer_weights, layers),
        channels=_channel_lists(channels, layers),
        objective=objective,
        precision=precision,
    )


def _per_layer(value: Any, layers: list[str], what: str, param: str) -> dict[str, Any]:
    """Expand ``value`` (one for all layers, or a mapping by name) to ``{layer: value}``."""
    if not isinstance(value, Mapping):
        return dict.fromkeys(layers, value)
    unknown = [name for name in value if name not in layers]
    if unknown:
        raise ProbeUsageError(
            f"{what} given for {unknown[0]!r}, which is not a dream layer; dream layers are: {', '.join(layers)}",
            param=param,
        )
    return {name: value.get(name) for name in layers}


def _channel_lists(
    channels: Sequence[int] | Mapping[str, Sequence[int] | None] | None, layers: list[str]
) -> dict[str, list[int] | None]:
    result: dict[str, list[int] | None] = {}
    for name, chosen in _per_layer(channels, layers, "channels", "channels").items():
        if chosen is None:
            result[name] = None
            continue
        chosen = check_indices(chosen, "channels")
        if not chosen:
            raise ProbeUsageError(f"no channel chosen for layer {name!r}", param="channels")
        result[name] = chosen
    return result


def _layer_weights(layer_weights: Sequence[float] | Mapping[str, float] | None, layers: list[str]) -> dict[str, float]:
    if layer_weights is None or isinstance(layer_weights, Mapping):
        given = _per_layer(layer_weights, layers, "a layer weight", "layer_weight")
        return {name: 1.0 if weight is None else check_number(weight, "layer_weight")
                for name, weight in given.items()}
    weights = check_numbers(layer_weights, "layer_weight")
    if len(weights) != len(layers):
        raise ProbeUsageError(
            f"{len(weights)} layer weight(s) for {len(layers)} layer(s) ({', '.join(layers)}); give one weight per layer",
            param="layer_weight",
        )
    return dict(zip(layers, weights))
