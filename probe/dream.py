"""Deep Dream: make a network exaggerate what it sees in a photo.

The algorithm (Mordvintsev, Olah and Tyka, 2015; seed 003 of this project):
gradient *ascent* on the image for the activation of chosen layers, so that
whatever a layer responds to in the photo is strengthened, step after step.

- **Objective** (a score to maximize, like every objective of cnn-probe):
  per layer, ``"l2"`` is the mean squared activation (positive values grow,
  negative ones shrink: the seed's "make the positive values larger and the
  negative ones smaller") and ``"mean"`` the mean activation; optionally only
  some channels; several layers add up with weights. With a *guide* image the
  objective becomes, at each position of the dreamed image's features, the dot
  product with the guide feature that matches it best (largest dot product),
  which steers the dream toward what the guide contains.
- **Normalized steps**: ``image += lr * g / mean(|g|)``, so ``lr`` is the mean
  change of a pixel per step whatever the layer's scale; values stay in [0, 1].
- **Jitter**: before each step the image is rolled by a random shift and the
  gradient is rolled back (:func:`jitter_roll`, :func:`unroll`), which removes
  the grid artefacts of strided layers.
- **Octaves**: the image is dreamed at ``octaves`` scales, from the smallest
  (the input shrunk ``octave_scale ** (octaves - 1)`` times) to the input's
  size. The *detail* of each scale (dreamed minus original at that scale) is
  upsampled and added to the next, larger scale, so structures grow at every
  size.
- **Tiles**: with ``tile_size``, each step computes the gradient tile by tile
  (:mod:`probe.tiling`), each tile seen with a margin of context, so peak
  memory follows the tile's area instead of the image's; the tile grid moves
  to a random offset at every step (through the same roll as the jitter), so
  seams never stay in one place.

Example::

    import probe
    m = probe.load_model("shapes")
    result = probe.dream(m, "skimage:astronaut", layers=["relu3_1"], octaves=4, steps=10)
    result.image                 # (3, H, W) in [0, 1], the input's size
    result.objective_before, result.objective_after
    result.save("runs/my-dream")
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.hooks import INPUT, OUTPUT, capture, evaluating, layer_names, resolve_layers
from probe.images import load_image, resize, to_channels, to_pil
from probe.models import LoadedModel, load_model
from probe.runtime import Precision, ProgressFn, autocast, check_finite, make_generator
from probe.tiling import Tile, tile_plan

__all__ = [
    "DEFAULT_LAYERS",
    "DreamResult",
    "Objective",
    "default_layers",
    "dream",
    "jitter_roll",
    "octave_sizes",
    "unroll",
    "zoom_crop",
]

Objective = Literal["l2", "mean"]
OBJECTIVES: tuple[str, ...] = ("l2", "mean")

DEFAULT_LAYERS: dict[str, tuple[str, ...]] = {
    "googlenet": ("inception4c",),
    "inception_v3": ("Mixed_5d",),
    "vgg16": ("features.22",),  # relu4_3
    "vgg19": ("features.24",),  # relu4_3
    "resnet18": ("layer3",),
    "resnet50": ("layer3",),
    "digits": ("conv2",),
}
"""The layer :func:`dream` uses when none is given, by model name."""

MIN_OCTAVE_SIDE = 16
"""Octaves whose shorter side would fall below this many pixels are left out."""

_EPSILON = 1e-8


def default_layers(model: LoadedModel) -> list[str]:
    """The default dream layers of ``model`` (see :data:`DEFAULT_LAYERS`).

    Raises:
        ProbeUsageError: the model has no default; the message lists its layers.
    """
    chosen = DEFAULT_LAYERS.get(model.name)
    if chosen is None:
        names = [name for name in layer_names(model.module) if name not in (INPUT, OUTPUT)]
        shown = ", ".join(names[:40]) + (f", ... ({len(names) - 40} more)" if len(names) > 40 else "")
        raise ProbeUsageError(
            f"no default dream layer for model {model.name!r}; choose one or more (--layer / layers=[...]), "
            f"a convolutional layer in the middle of the network dreams best. Layers are: {shown}",
            param="layer",
        )
    return list(chosen)


def octave_sizes(size: tuple[int, int], octaves: int, octave_scale: float) -> list[tuple[int, int]]:
    """The ``(H, W)`` of each octave, from the smallest to ``size`` itself.

    Octave ``k`` (counting from 0 at the smallest) of ``n`` is ``size`` divided
    by ``octave_scale ** (n - 1 - k)``, rounded. Octaves whose shorter side would
    fall below :data:`MIN_OCTAVE_SIDE` are left out (the full size always stays).

    >>> octave_sizes((100, 200), 3, 2.0)
    [(25, 50), (50, 100), (100, 200)]
    """
    if octaves < 1:
        raise ProbeUsageError(f"octaves must be at least 1; got {octaves}", param="octaves")
    if octave_scale < 1.0:
        raise ProbeUsageError(f"octave_scale must be at least 1; got {octave_scale}", param="octave_scale")
    height, width = size
    sizes = []
    for k in range(octaves - 1, 0, -1):
        factor = octave_scale**k
        scaled = (max(1, round(height / factor)), max(1, round(width / factor)))
        if min(scaled) >= MIN_OCTAVE_SIDE:
            sizes.append(scaled)
    return sizes + [(height, width)]


def jitter_roll(
    image: torch.Tensor, jitter: int, generator: torch.Generator, *, extra: int = 0
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Roll ``image`` (``(..., H, W)``) by a random shift, wrapping around.

    Each axis is shifted by an integer drawn uniformly from ``[-jitter, jitter]``
    plus one from ``[0, extra)`` (``extra`` moves a tile grid to a random offset).

    Returns:
        The rolled image and the shift ``(dy, dx)``; :func:`unroll` undoes it exactly.
    """
    shift = torch.randint(-jitter, jitter + 1, (2,), generator=generator, device=generator.device)
    if extra > 1:
        shift = shift + torch.randint(0, extra, (2,), generator=generator, device=generator.device)
    dy, dx = (int(v) for v in shift.tolist())
    if dy == 0 and dx == 0:
        return image, (0, 0)
    return torch.roll(image, shifts=(dy, dx), dims=(-2, -1)), (dy, dx)


def unroll(tensor: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`jitter_roll`'s ``shift`` on ``tensor`` (the image or its gradient)."""
    dy, dx = shift
    if dy == 0 and dx == 0:
        return tensor
    return torch.roll(tensor, shifts=(-dy, -dx), dims=(-2, -1))


def zoom_crop(image: torch.Tensor, zoom: float) -> torch.Tensor:
    """Zoom into the centre of ``image`` (``(C, H, W)``) by ``zoom`` and resize back to ``(H, W)``.

    The next input of a zoom sequence: the central ``H / zoom x W / zoom``
    region, enlarged with bilinear filtering.
    """
    if zoom < 1.0:
        raise ProbeUsageError(f"zoom must be at least 1; got {zoom}", param="zoom")
    height, width = image.shape[-2:]
    crop_h, crop_w = max(1, round(height / zoom)), max(1, round(width / zoom))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = image[..., top : top + crop_h, left : left + crop_w]
    enlarged = F.interpolate(crop[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    return enlarged.clamp(0.0, 1.0)


@dataclass
class DreamResult:
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
            octave sizes, steps, lr, jitter, tiles, guide, ...).
        model: the model's name.
        seconds: wall-clock time of the whole run.
    """

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

    @property
    def octave_sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of each octave, smallest first."""
        return [tuple(image.shape[-2:]) for image in self.octaves]  # type: ignore[misc]

    def save(self, folder: str | Path, **fields: Any) -> Path:
        """Write the gallery the CLI writes (input, dream, octaves, frames, GIF, manifest) into ``folder``."""
        from probe.reports.dream import save_gallery

        return save_gallery(self, folder, **fields)

    def _repr_png_(self) -> bytes:
        from probe.reports.dream import overview

        buffer = io.BytesIO()
        overview(self).save(buffer, format="PNG")
        return buffer.getvalue()


@dataclass
class _Setup:
    """Everything one gradient evaluation needs, fixed for a run."""

    module: nn.Module
    loaded: LoadedModel
    layers: list[str]
    weights: dict[str, float]
    channels: dict[str, list[int] | None]
    objective: str
    guides: dict[str, torch.Tensor]  # layer -> (C', Q) guide features
    device: torch.device
    precision: Precision
    tile_size: int | None
    tile_margin: int


def _as_image(source: Any, channels: int, param: str) -> torch.Tensor:
    try:
        if isinstance(source, torch.Tensor) and source.dim() == 4:
            if source.shape[0] != 1:
                raise ProbeUsageError(f"dream takes one image; got a batch of {source.shape[0]}", param=param)
            source = source[0]
        image = load_image(source)
    except ProbeUsageError as error:
        if param == "image":
            raise
        raise ProbeUsageError(f"{param}: {error}", param=param) from None
    if image.dim() != 3:
        raise ProbeUsageError(f"an image must be (C, H, W); got shape {tuple(image.shape)}", param=param)
    if image.numel() and (image.min() < 0 or image.max() > 1):
        raise ProbeUsageError("images must hold values in [0, 1] (the model's normalization is applied later)", param=param)
    return to_channels(image, channels).float()


def _per_layer(
    value: Any, layers: list[str], what: str, param: str
) -> dict[str, Any]:
    """Expand ``value`` (one for all, a sequence by position, or a mapping by name) to ``{layer: value}``."""
    if isinstance(value, Mapping):
        unknown = [name for name in value if name not in layers]
        if unknown:
            raise ProbeUsageError(
                f"{what} given for {unknown[0]!r}, which is not a dream layer; dream layers are: {', '.join(layers)}",
                param=param,
            )
        return {name: value.get(name) for name in layers}
    return {name: value for name in layers}


def _channel_lists(
    channels: Sequence[int] | Mapping[str, Sequence[int] | None] | None, layers: list[str]
) -> dict[str, list[int] | None]:
    expanded = _per_layer(channels, layers, "channels", "channels")
    result: dict[str, list[int] | None] = {}
    for name, chosen in expanded.items():
        if chosen is None:
            result[name] = None
            continue
        if isinstance(chosen, int):
            chosen = [chosen]
        chosen = [int(c) for c in chosen]
        if not chosen:
            raise ProbeUsageError(f"no channel chosen for layer {name!r}", param="channels")
        if min(chosen) < 0:
            raise ProbeUsageError(f"channel {min(chosen)} is negative; channels count from 0", param="channels")
        result[name] = chosen
    return result


def _layer_weights(layer_weights: Sequence[float] | Mapping[str, float] | None, layers: list[str]) -> dict[str, float]:
    if layer_weights is None:
        return {name: 1.0 for name in layers}
    if isinstance(layer_weights, Mapping):
        given = _per_layer(layer_weights, layers, "a layer weight", "layer_weight")
        return {name: 1.0 if weight is None else float(weight) for name, weight in given.items()}
    weights = [float(w) for w in layer_weights]
    if len(weights) != len(layers):
        raise ProbeUsageError(
            f"{len(weights)} layer weight(s) for {len(layers)} layer(s) ({', '.join(layers)}); give one weight per layer",
            param="layer_weight",
        )
    return dict(zip(layers, weights))


def _as_maps(activation: torch.Tensor) -> torch.Tensor:
    """Any layer output -> ``(N, C, h, w)`` float32 (a linear layer's features are one position)."""
    tensor = activation.float()
    if tensor.dim() == 2:
        return tensor[:, :, None, None]
    if tensor.dim() == 3:
        return tensor[:, :, :, None]
    if tensor.dim() > 4:
        return tensor.flatten(3)
    return tensor


def _select(setup: _Setup, name: str, activation: torch.Tensor) -> torch.Tensor:
    maps = _as_maps(activation)
    chosen = setup.channels[name]
    if chosen is None:
        return maps
    if max(chosen) >= maps.shape[1]:
        raise ProbeUsageError(
            f"channel {max(chosen)} is out of range for layer {name!r}: it has {maps.shape[1]} channels "
            f"(0 to {maps.shape[1] - 1})",
            param="channels",
        )
    return maps[:, chosen]


def _values(setup: _Setup, name: str, activation: torch.Tensor) -> torch.Tensor:
    """The objective of layer ``name`` at each position: ``(h, w)``; the layer's score is their mean."""
    maps = _select(setup, name, activation)[0]  # (C, h, w)
    guide = setup.guides.get(name)
    if guide is not None:
        channels, height, width = maps.shape
        features = maps.reshape(channels, -1)  # (C, P)
        best = (features.T @ guide).amax(dim=1)  # each position's best-matching guide feature
        return best.view(height, width) / channels
    if setup.objective == "l2":
        return maps.pow(2).mean(dim=0)
    return maps.mean(dim=0)


def _forward(setup: _Setup, window: torch.Tensor) -> dict[str, torch.Tensor]:
    inputs = setup.loaded.preprocess.normalize(window)
    try:
        with autocast(setup.device, setup.precision):
            acts = capture(setup.module, inputs, setup.layers, stop_early=True)
    except RuntimeError as error:
        if "out of memory" in str(error).lower():
            raise
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ProbeUsageError(
            f"the model cannot compute layer(s) {', '.join(setup.layers)} on a {window.shape[-2]}x{window.shape[-1]} "
            f"image ({first}). Dream layers must be convolutional (before any flatten/linear layer); small octaves "
            "or tiles can also be too small for deep layers: use fewer octaves, a smaller octave scale, a larger "
            "image or tile",
            param="layer",
        ) from None
    missing = [name for name in setup.layers if name not in acts]
    if missing:
        raise ProbeUsageError(f"layer(s) {', '.join(missing)} did not run in the model's forward pass", param="layer")
    return acts


def _evaluate(
    setup: _Setup, image: torch.Tensor, tiles: list[Tile], *, gradient: bool
) -> tuple[float, dict[str, float], torch.Tensor | None]:
    """The objective of ``image`` (``(1, C, H, W)``), tile by tile, and optionally its gradient.

    Each tile's window contributes the gradient of its own objective to the
    tile's core. The reported score counts only the activations that belong to
    the core (cropped in proportion), so the tiles' shares add up to the
    objective of the whole image (exactly for one tile).
    """
    height, width = image.shape[-2:]
    grad = torch.zeros_like(image) if gradient else None
    per_layer = {name: 0.0 for name in setup.layers}
    for tile in tiles:
        window = image[..., tile.window[0], tile.window[1]].detach()
        if gradient:
            window.requires_grad_(True)
        window_h, window_w = tile.window_size
        share = (window_h * window_w) / (height * width)
        with torch.set_grad_enabled(gradient):
            acts = _forward(setup, window)
            score = torch.zeros((), device=image.device)
            for name in setup.layers:
                values = _values(setup, name, acts[name])
                score = score + setup.weights[name] * values.mean() * share
                rows, cols = tile.core_in_window
                vh, vw = values.shape
                core = values[
                    round(rows.start * vh / window_h) : round(rows.stop * vh / window_h),
                    round(cols.start * vw / window_w) : round(cols.stop * vw / window_w),
                ]
                per_layer[name] += float(core.detach().sum()) / (vh * vw) * share
            if gradient:
                (window_grad,) = torch.autograd.grad(score, window)
                grad[..., tile.core[0], tile.core[1]] = window_grad[..., tile.core_in_window[0], tile.core_in_window[1]]
        del acts
    total = sum(setup.weights[name] * per_layer[name] for name in setup.layers)
    return total, per_layer, grad


def _guide_features(setup: _Setup, guide: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
    """Per layer, the guide image's features as ``(C', Q)`` (channel selection applied)."""
    image = resize(guide, size).to(setup.device)[None]
    with torch.no_grad():
        acts = _forward(setup, image)
    features = {}
    for name in setup.layers:
        maps = _select(setup, name, acts[name])[0]
        features[name] = maps.reshape(maps.shape[0], -1).detach()
    return features


def _dream_once(
    setup: _Setup,
    image: torch.Tensor,
    *,
    sizes: list[tuple[int, int]],
    steps: int,
    lr: float,
    jitter: int,
    generator: torch.Generator,
    on_step: Any,
) -> list[torch.Tensor]:
    """Dream ``image`` (``(1, C, H, W)``) through the octaves; returns the image at the end of each octave."""
    bases = [image if size == tuple(image.shape[-2:]) else resize(image, size) for size in sizes]
    detail = torch.zeros_like(bases[0])
    results = []
    for octave, base in enumerate(bases):
        if detail.shape[-2:] != base.shape[-2:]:
            detail = F.interpolate(detail, size=base.shape[-2:], mode="bilinear", align_corners=False)
        current = (base + detail).clamp(0.0, 1.0)
        tiles = tile_plan(*base.shape[-2:], setup.tile_size, setup.tile_margin)
        tiled = len(tiles) > 1
        for _ in range(steps):
            rolled, shift = jitter_roll(current, jitter, generator, extra=setup.tile_size if tiled else 0)
            score, _, grad = _evaluate(setup, rolled, tiles, gradient=True)
            grad = unroll(grad, shift)
            check_finite(grad, "the dream's gradient")
            current = (current + lr * grad / (grad.abs().mean() + _EPSILON)).clamp(0.0, 1.0)
            on_step(score, octave)
        results.append(current.detach())
        detail = current.detach() - base
    return results


def dream(
    model: LoadedModel | nn.Module | str,
    image: torch.Tensor | str | Path | Image.Image | np.ndarray,
    layers: str | Sequence[str] | None = None,
    *,
    channels: Sequence[int] | Mapping[str, Sequence[int] | None] | None = None,
    layer_weights: Sequence[float] | Mapping[str, float] | None = None,
    objective: Objective = "l2",
    steps: int = 10,
    lr: float = 0.01,
    octaves: int = 4,
    octave_scale: float = 1.4,
    jitter: int = 32,
    tile_size: int | None = None,
    tile_margin: int | None = None,
    guide: torch.Tensor | str | Path | Image.Image | np.ndarray | None = None,
    guide_size: int | None = None,
    frames: int = 0,
    zoom: float = 1.05,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    precision: Precision = "fp32",
    progress: ProgressFn | None = None,
) -> DreamResult:
    """Deep Dream over ``image``: strengthen what ``layers`` see in it (see the module docstring).

    Args:
        model: a :class:`~probe.models.LoadedModel`, or anything
            :func:`~probe.models.load_model` takes (a spec string loads its
            default weights on ``device``).
        image: ``(C, H, W)`` (or ``(1, C, H, W)``) tensor in [0, 1], a file,
            ``skimage:NAME``, a PIL image or an array; converted to the model's
            channel count (grayscale models get grayscale). The dream keeps its size.
        layers: one dotted layer name or several; default: the model's
            (:func:`default_layers`, e.g. ``inception4c`` for googlenet).
        channels: only these channels count: a list for every layer, or
            ``{layer: list}``; default all.
        layer_weights: a weight per layer (a list in ``layers`` order, or
            ``{layer: weight}``); default 1 each.
        objective: per layer, ``"l2"`` (mean squared activation, default) or
            ``"mean"`` (mean activation); a ``guide`` replaces it.
        steps: gradient steps per octave (default 10).
        lr: mean change of a pixel per step, in [0, 1] units (default 0.01).
        octaves: number of scales (default 4).
        octave_scale: size ratio between consecutive octaves (default 1.4).
        jitter: maximal random roll in pixels before each step, undone after
            (default 32; 0 disables).
        tile_size: compute each step's gradient in tiles of at most this many
            pixels on a side, bounding memory by the tile (default None: whole image).
        tile_margin: context pixels around each tile (default ``tile_size // 8``).
        guide: an image to steer toward (same forms as ``image``); default none.
        guide_size: the guide's longer side when its features are taken
            (default: the longer side of ``image``, at most twice the model's
            input size).
        frames: with N > 0, a zoom sequence of N frames: each frame is the
            dream of the previous one zoomed by ``zoom`` (default 0: none).
        zoom: zoom factor between frames (default 1.05).
        seed: random seed of the jitter and tile offsets (default 0).
        generator: a ``torch.Generator`` to draw from instead of ``seed``.
        device: where a spec string is loaded (default ``"auto"``); a loaded
            model runs where it is.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA) for the
            forward pass.
        progress: ``progress(step, total, {"objective", "octave", "frame"})``
            after every step.

    Returns:
        A :class:`DreamResult`.

    Raises:
        ProbeUsageError: unknown layer (with a suggestion), channel out of range,
            unreadable image or guide, invalid option.
        ProbeRuntimeError: the gradient became NaN or infinite.
    """
    started = time.perf_counter()
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device=device)
    module = loaded.module
    device_used = loaded.device
    if objective not in OBJECTIVES:
        raise ProbeUsageError(f"unknown objective {objective!r}; objectives are: {', '.join(OBJECTIVES)}", param="objective")
    if steps < 0:
        raise ProbeUsageError(f"steps must be at least 0; got {steps}", param="steps")
    if jitter < 0:
        raise ProbeUsageError(f"jitter must be at least 0; got {jitter}", param="jitter")
    if tile_size is not None and tile_size < 8:
        raise ProbeUsageError(f"tile_size must be at least 8 pixels; got {tile_size}", param="tile")
    if frames < 0:
        raise ProbeUsageError(f"frames must be at least 0; got {frames}", param="frames")
    with autocast(device_used, precision):  # validates the precision for this device
        pass
    names = [layers] if isinstance(layers, str) else list(layers) if layers is not None else default_layers(loaded)
    names = list(resolve_layers(module, names))
    source = _as_image(image, loaded.preprocess.channels, "image").to(device_used)
    height, width = source.shape[-2:]
    sizes = octave_sizes((height, width), octaves, octave_scale)
    if frames > 0:
        zoom_crop(source, zoom)  # validates zoom before any work
    margin = (tile_size // 8 if tile_size is not None else 0) if tile_margin is None else int(tile_margin)
    setup = _Setup(
        module=module,
        loaded=loaded,
        layers=names,
        weights=_layer_weights(layer_weights, names),
        channels=_channel_lists(channels, names),
        objective=objective,
        guides={},
        device=device_used,
        precision=precision,
        tile_size=tile_size,
        tile_margin=margin,
    )
    seed_used = seed if generator is None else None
    generator = generator if generator is not None else make_generator(seed, "cpu")
    full_tiles = tile_plan(height, width, tile_size, margin)
    total_steps = max(1, frames) * len(sizes) * steps
    history: list[float] = []
    with evaluating(module):
        guide_longer = None
        if guide is not None:
            guide_image = _as_image(guide, loaded.preprocess.channels, "guide")
            guide_longer = guide_size or min(max(height, width), 2 * max(loaded.preprocess.input_size))
            setup.guides = _guide_features(setup, guide_image, guide_longer)
        before, layers_before, _ = _evaluate(setup, source[None], full_tiles, gradient=False)
        frame_images: list[torch.Tensor] = []
        octave_images: list[torch.Tensor] = []
        current = source[None]
        for frame in range(max(1, frames)):
            if frame > 0:
                current = zoom_crop(frame_images[-1].to(device_used), zoom)[None]

            def on_step(score: float, octave: int, frame: int = frame) -> None:
                history.append(score)
                if progress is not None:
                    progress(len(history), total_steps, {"objective": score, "octave": float(octave + 1), "frame": float(frame)})

            dreamed = _dream_once(
                setup, current, sizes=sizes, steps=steps, lr=lr, jitter=jitter, generator=generator, on_step=on_step
            )
            if frame == 0:
                octave_images = [image_[0].cpu() for image_ in dreamed]
            frame_images.append(dreamed[-1][0].cpu())
        result_image = frame_images[0]
        after, layers_after, _ = _evaluate(setup, result_image[None].to(device_used), full_tiles, gradient=False)
    if not np.isfinite(after):
        raise ProbeRuntimeError("the dream's objective became NaN or infinite; lower the learning rate (--lr)")
    options = {
        "layers": names,
        "layer_weights": [setup.weights[name] for name in names],
        "channels": {name: chosen for name, chosen in setup.channels.items() if chosen is not None} or None,
        "objective": "guide" if guide is not None else objective,
        "steps": steps,
        "lr": lr,
        "octaves": len(sizes),
        "octaves_asked": octaves,
        "octave_scale": octave_scale,
        "octave_sizes": [list(size) for size in sizes],
        "jitter": jitter,
        "tile": tile_size,
        "tile_margin": margin if tile_size is not None else None,
        "tiles_at_full_size": len(full_tiles),
        "guide": None if guide is None else (str(guide) if isinstance(guide, (str, Path)) else "image"),
        "guide_size": guide_longer,
        "frames": frames,
        "zoom": zoom if frames > 0 else None,
        "seed": seed_used,
        "precision": precision,
        "device": str(device_used),
        "image_size": [height, width],
    }
    return DreamResult(
        image=result_image,
        input=source.cpu(),
        octaves=octave_images,
        frames=frame_images if frames > 0 else [],
        objective_before=float(before),
        objective_after=float(after),
        layer_objectives={name: {"before": layers_before[name], "after": layers_after[name]} for name in names},
        history=history,
        options=options,
        model=loaded.name,
        seconds=time.perf_counter() - started,
    )
