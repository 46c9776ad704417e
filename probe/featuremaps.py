"""Feature maps: what every chosen layer computes for one input (the Harley MNIST view).

A thin layer over :func:`probe.record`: one forward pass with the chosen layers
recorded, each channel's *degree of activation* (the sum of its map)
computed, and the model's prediction kept::

    fm = probe.feature_maps("digits", "digits:3", layers=["conv1", "conv2"], top=8)
    fm.maps["conv2"].shape      # (50, 11, 11): every channel of conv2 for this digit
    fm.degree["conv2"]          # (50,): sum of each map
    fm.order["conv2"]           # the 8 most active channels, most active first
    fm.prediction               # '3 (99.8%)'
    fm.save("runs/fm")          # the gallery `probe activations` writes

The same maps straight from the hooks::

    with probe.record(m.module, ["conv2"]) as acts:
        m(x)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from probe.checks import check_names
from probe.errors import ProbeUsageError
from probe.hooks import CALL_SEPARATOR, Recording, evaluating, record, resolve_layers
from probe.inputs import model_input
from probe.layout import channels_last_layers
from probe.leaves import helper_names, is_conv2d, is_leaf
from probe.memory import check_scaled, held_bytes, saved_bytes
from probe.models import LoadedModel, as_loaded
from probe.models.forms import why_not_run
from probe.outputs import Prediction, check_reading, describe, prediction_of, read_output
from probe.results import GalleryResult
from probe.rewrites import tensors_in
from probe.runtime import check_finite_output, with_gradients

__all__ = ["FeatureMaps", "feature_maps", "default_layers", "SKIPPED_TYPES"]

#: Layer types ``layers="all"`` leaves out: they repeat the previous layer's values.
SKIPPED_TYPES: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Dropout, nn.Dropout2d, nn.Identity)


def default_layers(module: nn.Module, which: str = "conv") -> list[str]:
    """Layer names to show when none are named.

    Args:
        module: the network.
        which: ``"conv"`` (every 2-D convolution, :func:`probe.leaves.is_conv2d`: ``Conv2d`` and a decoder's
            ``ConvTranspose2d``) or ``"all"`` (every leaf module but flatten, dropout and identity, which repeat
            their input).
    """
    names = []
    helpers = helper_names(module)  # a weight-normed or QAT conv's parametrizations and observers are not layers
    for name, sub in module.named_modules():
        if not name or name in helpers or not is_leaf(sub):
            continue
        if which == "conv" and is_conv2d(sub):
            names.append(name)
        elif which == "all" and not isinstance(sub, SKIPPED_TYPES):
            names.append(name)
    return names


@dataclass
class FeatureMaps(GalleryResult):
    """The activations of some layers for one image.

    Attributes:
        model: the model's name.
        image: ``(C, H, W)`` the input in [0, 1], as the model saw it (resized).
        maps: layer -> ``(C, H', W')`` maps of a convolutional layer, or ``(F,)``
            features of a flat one, for the single input (CPU, float).
        degree: layer -> ``(C,)`` degree of activation of each channel (sum of its
            map); for a flat layer, the features themselves.
        order: layer -> channel indices shown, in display order (all channels by
            index; with ``top``, the most active first).
        prediction: the model's class scores (:func:`probe.outputs.prediction_of`: logits, a sigmoid or
            softmax head, one score, a dense map), or None when its output has none.
        top: how many channels per layer were kept by activation (None: all).
        output: what the model returned, in words, when it has no class scores (an embedding, a depth
            map, a base model's features, detections; :func:`probe.outputs.describe`), else ``""``.
    """

    _report = "probe.reports.activations"

    model: str
    image: torch.Tensor
    maps: dict[str, torch.Tensor]
    degree: dict[str, torch.Tensor]
    order: dict[str, torch.Tensor]
    prediction: Prediction | None = None
    top: int | None = None
    output: str = ""

    def __repr__(self) -> str:
        layers = ", ".join(f"{name} {tuple(maps.shape)}" for name, maps in self.maps.items())
        prediction = f"; prediction {self.prediction}" if self.prediction is not None else \
            f"; output {self.output}" if self.output else ""
        return f"FeatureMaps({self.model}: {len(self.maps)} layer(s): {layers}{prediction})"

def _ordered(degree: torch.Tensor, top: int | None, limit: int | None) -> torch.Tensor:
    if top is not None:
        return degree.argsort(descending=True, stable=True)[:top]
    indices = torch.arange(degree.numel())
    return indices if limit is None else indices[:limit]


def _maps_pass(loaded: LoadedModel, names: list[str], image: torch.Tensor) -> tuple[Recording, Any]:
    """``image`` ``(1, C, H, W)`` (requiring grad: the output's graph tells a sigmoid or softmax head) through
    the model with ``names`` recorded on the CPU: the recording and the model's output."""
    with evaluating(loaded.module), torch.enable_grad(), record(loaded.module, names, to_cpu=True) as acts:
        output = loaded(image)
    return acts, output


def _check_fits(loaded: LoadedModel, names: list[str], size: int | Sequence[int] | None) -> None:
    """Refuse, before the image is resized or run, a pass at ``size`` whose maps and graph cannot fit in memory:
    the same pass at a small size, its held bytes scaled by the areas (:func:`~probe.memory.check_scaled`)."""
    if size is None:
        return
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(height, width) < 1:
        return  # model_input's to refuse

    def held(small: tuple[int, int]) -> int:
        kept: list[Any] = []

        def forward() -> Any:
            blank = torch.full((1, loaded.preprocess.channels, *small), 0.5, device=loaded.device)
            kept.append(_maps_pass(loaded, names, blank.requires_grad_(True)))
            return kept[-1][1]

        graph = saved_bytes(forward)
        acts, output = kept[0]
        return graph + held_bytes(dict(acts), output)

    check_scaled(held, (height, width), loaded.preprocess.input_size, loaded.device,
                 f"recording the feature maps of {len(names)} layer(s) of {loaded.name} at {height}x{width}",
                 "give a smaller --size (size=), or fewer layers (--layer instead of --all)")


@with_gradients  # the output's graph tells a sigmoid or softmax head, also under the caller's inference_mode
def feature_maps(
    model: str | nn.Module | LoadedModel,
    image: Any,
    layers: str | Iterable[str] | None = None,
    *,
    top: int | None = None,
    limit: int | None = None,
    size: int | Sequence[int] | None = None,
    output: str = "auto",
) -> FeatureMaps:
    """Record the feature maps of ``layers`` for one image.

    Args:
        model: a :class:`LoadedModel`, a spec for :func:`probe.load_model`, or an ``nn.Module``.
        image: a file, ``skimage:NAME``, ``digits:3``, PIL image, array, or a
            ``(C, H, W)`` / ``(1, C, H, W)`` tensor in [0, 1]; converted to the
            model's channels, centre-cropped and resized to its input size.
        layers: layer names; ``"all"`` for every leaf layer (but flatten, dropout,
            identity); default None: every 2-D convolution (``Conv2d``, ``ConvTranspose2d``: a decoder's too).
        top: keep only the ``top`` most active channels per layer, most active
            first (default None: every channel, in index order).
        limit: without ``top``, keep the first ``limit`` channels per layer
            (default None: all).
        size: input size ``(H, W)`` or an int; default the model's.
        output: what the model's output is (:data:`probe.outputs.OUTPUT_READINGS`): ``"auto"`` (default: read by
            its shape; ``prediction.assumed`` says where the shape could not tell), ``"classes"`` or ``"image"``.

    Returns:
        A :class:`FeatureMaps`.

    Raises:
        ProbeUsageError: unknown layers, ``top``/``limit`` below 1, no layer to show, an ``output`` reading that
            is not known or that the output cannot be.
        ProbeRuntimeError: the pass cannot fit in the free memory (estimated before it runs, for a ``size``
            larger than four times the model's input area: :func:`~probe.memory.check_scaled`).
    """
    check_reading(output)
    loaded = as_loaded(model)
    for name, value in (("top", top), ("limit", limit)):
        if value is not None and value < 1:
            raise ProbeUsageError(f"{name} must be at least 1; got {value}", param=name)
    if layers is None or layers == "all":
        names = default_layers(loaded.module, "conv" if layers is None else "all")
        if not names:
            if not default_layers(loaded.module, "all"):  # no module at all: a forward of F.conv2d on parameters
                raise ProbeUsageError(
                    f"{loaded.name} has no layers: its forward computes with functions (F.conv2d) on its own "
                    "parameters, and cnn-probe records modules; make its operations modules (nn.Conv2d, ...) to see "
                    "their maps", param="layer")
            raise ProbeUsageError(f"{loaded.name} has no 2-D convolution (Conv2d, ConvTranspose2d); name layers with "
                                  "--layer, or give --all", param="layer")
    else:
        names = check_names(layers, "layer")
        resolve_layers(loaded.module, names)
    _check_fits(loaded, names, size)
    x = model_input(loaded, image, size)
    channels_last = channels_last_layers(loaded.module, x)  # (H, W, C) blocks are shown as C maps
    image = x.detach().clone().requires_grad_(True)  # the output's graph tells a sigmoid or softmax head
    acts, returned = _maps_pass(loaded, names, image)
    for tensor in tensors_in(returned):
        if tensor.is_floating_point():
            check_finite_output(loaded.name, loaded.module, tensor.detach())
    read = read_output(returned, 1, loaded.module, image=tuple(x.shape), reading=output)
    prediction = prediction_of(loaded, read)
    del returned, image  # the graph
    named = layers is not None and layers != "all"
    unrun = [layer for layer in names if not any(key in acts for key in acts.recorded_as(layer))]
    if named and unrun:  # asked for by name: an empty sheet would say nothing of why
        raise ProbeUsageError(f"layer {unrun[0]!r} did not run in {loaded.name}'s forward pass: "
                              f"{why_not_run(loaded.module, unrun[0])}", param="layer")
    maps: dict[str, torch.Tensor] = {}
    degree: dict[str, torch.Tensor] = {}
    order: dict[str, torch.Tensor] = {}
    for name in [key for layer in names for key in acts.recorded_as(layer)]:  # per call where a module runs twice
        if name not in acts:
            continue  # a default layer the forward pass never reached (an auxiliary head in eval mode)
        activation = acts[name][0].float()
        if name.split(CALL_SEPARATOR)[0] in channels_last and activation.dim() >= 2:
            activation = activation.movedim(-1, 0)  # (H, W, C) or (L, C) -> (C, H, W) or (C, L), see probe.layout
        maps[name] = activation
        degree[name] = activation.flatten(1).sum(1) if activation.dim() >= 2 else activation
        order[name] = _ordered(degree[name], top, limit)
    return FeatureMaps(
        model=loaded.name,
        image=x[0].detach().cpu(),
        maps=maps,
        degree=degree,
        order=order,
        prediction=prediction,
        top=top,
        output="" if prediction is not None else describe(read),
    )
