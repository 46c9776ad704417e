"""Deep Dream: make a network exaggerate what it sees in a photo.

The algorithm (Mordvintsev, Olah and Tyka, 2015):
gradient *ascent* on the image for the activation of chosen layers, so that
whatever a layer responds to in the photo is strengthened, step after step.
The pieces live in modules of their own:

- :mod:`probe.dream_objective`: the score (``"l2"`` or ``"mean"`` activation of
  the layers, chosen channels, layer weights, or the match with a guide image)
  and its gradient, whole or tile by tile;
- :mod:`probe.dream_geometry`: octave sizes, the random roll undone after each
  step, the zoom of a frame sequence;
- :mod:`probe.tiling`: the tiles of a large image.

This module runs them:

- **Normalized steps**: ``image += lr * g / mean(|g|)``, so ``lr`` is the mean
  change of a pixel per step whatever the layer's scale; values stay in [0, 1].
- **Jitter**: before each step the image is rolled by a random shift and the
  gradient is rolled back, which removes the grid artefacts of strided layers.
- **Octaves**: the image is dreamed at ``octaves`` scales, from the smallest
  (the input shrunk ``octave_scale ** (octaves - 1)`` times) to the input's
  size. The *detail* of each scale (dreamed minus original at that scale) is
  upsampled and added to the next, larger scale, so structures grow at every size.
- **Tiles**: with ``tile_size``, each step computes the gradient tile by tile,
  each tile seen with a margin of context, so peak memory follows the tile's
  area instead of the image's; the tile grid moves to a random offset at every
  step (through the same roll as the jitter), so seams never stay in one place.
- **Frames**: a zoom sequence dreams each frame from the previous one, zoomed.

Example::

    import probe
    m = probe.load_model("shapes")
    result = probe.dream(m, "skimage:astronaut", layers=["relu3_1"], octaves=4, steps=10)
    result.image                 # (3, H, W) in [0, 1], the input's size
    result.objective_before, result.objective_after
    result.save("runs/my-dream")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from probe.dream_geometry import jitter_roll, octave_sizes, unroll, zoom_crop
from probe.dream_objective import DreamObjective, Objective, make_objective
from probe.checks import check_count, check_number
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.hooks import INPUT, OUTPUT, evaluating, layer_names, resolve_layers
from probe.images import divergence, load_image, resize, to_channels
from probe.memory import HEADROOM, bytes_per_pixel, check_fits, format_bytes
from probe.models import LoadedModel, as_loaded
from probe.results import GalleryResult
from probe.runtime import Precision, ProgressFn, autocast, check_finite, make_generator, resolve_precision
from probe.tiling import tile_plan

__all__ = ["DEFAULT_LAYERS", "DreamResult", "default_layers", "dream"]

ImageSource = torch.Tensor | str | Path | Image.Image | np.ndarray

DEFAULT_LAYERS: dict[str, tuple[str, ...]] = {
    "googlenet": ("inception4c",),
    "inception_v3": ("Mixed_5d",),
    "vgg16": ("features.22",),  # relu4_3
    "vgg19": ("features.24",),  # relu4_3
    "resnet18": ("layer3",),
    "resnet50": ("layer3",),
    "shapes": ("relu3_1",),
    "digits": ("conv2",),
    "lenet5": ("conv2",),
    "xo": ("conv2",),
}
"""The layer :func:`dream` uses when none is given, by model name."""

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

def _as_image(source: ImageSource, channels: int, param: str) -> torch.Tensor:
    """``source`` as a ``(channels, H, W)`` float tensor in [0, 1]; errors name ``param``."""
    if isinstance(source, torch.Tensor) and source.dim() == 4:
        if source.shape[0] != 1:
            raise ProbeUsageError(f"dream takes one image; got a batch of {source.shape[0]}", param=param)
        source = source[0]
    try:
        image = load_image(source)
    except ProbeUsageError as error:
        raise ProbeUsageError(str(error) if param == "image" else f"{param}: {error}", param=param) from None
    if image.dim() != 3:
        raise ProbeUsageError(f"an image must be (C, H, W); got shape {tuple(image.shape)}", param=param)
    if image.numel() and (image.min() < 0 or image.max() > 1):
        raise ProbeUsageError("images must hold values in [0, 1] (the model's normalization is applied later)", param=param)
    return to_channels(image, channels).float()


def _check_options(steps: int, jitter: int, tile_size: int | None, frames: int, zoom: float, lr: float,
                   octaves: int, octave_scale: float, tile_margin: int | None) -> None:
    """Refuse numbers torch would fail on with a traceback (or loop on for ever), naming the argument."""
    for value, minimum, param in ((steps, 0, "steps"), (jitter, 0, "jitter"), (frames, 0, "frames"),
                                  (octaves, 1, "octaves")):
        check_count(value, param, minimum)
    check_number(lr, "lr", 0)
    check_number(octave_scale, "octave_scale", 1)
    check_number(zoom, "zoom")
    if tile_size is not None:
        check_count(tile_size, "tile", 8)
    if tile_margin is not None:
        check_count(tile_margin, "tile_margin", 0)
    if frames > 0 and zoom < 1.0:
        raise ProbeUsageError(f"zoom must be at least 1; got {zoom}", param="zoom")


def _check_memory(scorer: DreamObjective, loaded: LoadedModel, height: int, width: int) -> None:
    """Refuse, before allocating, an untiled dream whose activations cannot fit in the free memory.

    Measured, not guessed: the activation memory per pixel of this objective's own forward pass at
    the model's input size (:func:`~probe.memory.bytes_per_pixel`), times the image's area. Dreams of
    at most four times the model's input area are not checked (two small passes would cost more).
    """
    base = loaded.preprocess.input_size
    if height * width <= 4 * base[0] * base[1]:
        return

    per_pixel = bytes_per_pixel(scorer.activations, loaded.preprocess.channels, loaded.device, base)
    if per_pixel is None:  # the layers do not run at the probe sizes: the dream itself will say why
        return
    check_fits(HEADROOM * per_pixel * height * width, loaded.device, f"a {height}x{width} dream without tiles",
               f"add --tile 512 (tile_size=512: memory then follows the tile, not the image), or a smaller --size "
               f"(about {format_bytes(HEADROOM * per_pixel)} per pixel)")  # fmt: skip


def _ascend(
    objective: DreamObjective,
    image: torch.Tensor,
    *,
    sizes: list[tuple[int, int]],
    steps: int,
    lr: float,
    jitter: int,
    tile_size: int | None,
    tile_margin: int,
    generator: torch.Generator,
    on_step: Callable[[float, int], None],
) -> list[torch.Tensor]:
    """Dream ``image`` (``(1, C, H, W)``) through the octaves ``sizes``; return the image at the end of each."""
    detail: torch.Tensor | None = None
    results = []
    for octave, size in enumerate(sizes):
        base = image if size == tuple(image.shape[-2:]) else resize(image, size)
        if detail is not None:
            detail = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
            current = (base + detail).clamp(0.0, 1.0)
        else:
            current = base
        tiles = tile_plan(*size, tile_size, tile_margin)
        grid_offset = tile_size if tile_size is not None and len(tiles) > 1 else 0
        finite = torch.ones((), dtype=torch.bool, device=current.device)  # read once per octave: no sync per step
        for _ in range(steps):
            rolled, shift = jitter_roll(current, jitter, generator, extra=grid_offset)
            score, _, grad = objective.evaluate(rolled, tiles, gradient=True)
            del rolled  # image-sized, like grad and current: few such copies bound a tiled dream's memory
            grad = unroll(grad, shift)
            finite &= torch.isfinite(grad).all()
            scale = grad.abs().mean().clamp_min(torch.finfo(grad.dtype).tiny)  # scale-free: tiny gradients still step
            current = current.add(grad.mul_(lr / scale)).clamp_(0.0, 1.0)  # in place: few image-sized temporaries
            on_step(score, octave)
        check_finite(finite, "the dream's gradient")
        results.append(current.detach())
        detail = current.detach() - base
    return results


def dream(
    model: LoadedModel | nn.Module | str,
    image: ImageSource,
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
    guide: ImageSource | None = None,
    guide_size: int | None = None,
    frames: int = 0,
    zoom: float = 1.05,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = "auto",
    precision: Precision = "fp32",
    channels_last: bool = False,
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
            (:data:`DEFAULT_LAYERS`: ``inception4c`` for googlenet, ``relu3_1``
            for shapes, ...).
        channels: only these channels count: a list for every layer, or
            ``{layer: list}``; default all.
        layer_weights: a weight per layer (a list in ``layers`` order, or
            ``{layer: weight}``); default 1 each.
        objective: per layer, ``"l2"`` (mean squared activation, default) or
            ``"mean"`` (mean activation); a ``guide`` replaces it.
        steps: gradient steps per octave (default 10).
        lr: mean change of a pixel per step, in [0, 1] units (default 0.01).
        octaves: number of scales (default 4); those smaller than 16 pixels are left out.
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
            forward pass; ``"auto"``: bf16 with channels-last on CUDA, fp32 on the CPU.
        channels_last: run the convolutions in channels-last memory format
            (default False): 1.3x faster for googlenet on CPU, 5% slower
            for VGG19 style; see :func:`~probe.models.frozen_view`.
        progress: ``progress(step, total, {"objective", "octave", "frame"})``
            after every step.

    Returns:
        A :class:`DreamResult`.

    Raises:
        ProbeUsageError: unknown layer (with a suggestion), channel out of range,
            unreadable image or guide, invalid option.
        ProbeRuntimeError: the gradient became NaN or infinite, or an untiled
            dream would not fit in the free memory (measured before allocating).
    """
    started = time.perf_counter()
    _check_options(steps, jitter, tile_size, frames, zoom, lr, octaves, octave_scale, tile_margin)
    loaded = as_loaded(model, device)
    precision, channels_last = resolve_precision(precision, loaded.device, channels_last)  # "auto": bf16 on CUDA
    loaded = loaded.frozen(channels_last)
    with autocast(loaded.device, precision):  # validates the precision for this device
        pass
    names = [layers] if isinstance(layers, str) else list(layers) if layers is not None else default_layers(loaded)
    names = list(resolve_layers(loaded.module, names))
    scorer = make_objective(loaded, names, channels=channels, layer_weights=layer_weights, objective=objective,
                            precision=precision)  # fmt: skip
    source = _as_image(image, loaded.preprocess.channels, "image").to(loaded.device)
    guide_image = None if guide is None else _as_image(guide, loaded.preprocess.channels, "guide")
    height, width = source.shape[-2:]
    sizes = octave_sizes((height, width), octaves, octave_scale)
    margin = (tile_size // 8 if tile_size is not None else 0) if tile_margin is None else int(tile_margin)
    full_tiles = tile_plan(height, width, tile_size, margin)
    seed_used = seed if generator is None else None
    generator = generator if generator is not None else make_generator(seed, "cpu")
    total_steps = max(1, frames) * len(sizes) * steps
    history: list[float] = []
    frame_images: list[torch.Tensor] = []
    octave_images: list[torch.Tensor] = []
    guide_longer = None
    with evaluating(loaded.module):
        if guide_image is not None:
            guide_longer = guide_size or min(max(height, width), 2 * max(loaded.preprocess.input_size))
            scorer.set_guide(guide_image, guide_longer)
        if tile_size is None:
            _check_memory(scorer, loaded, height, width)
        before = scorer.evaluate(source[None], full_tiles, gradient=False)
        for frame in range(max(1, frames)):
            current = source[None] if frame == 0 else zoom_crop(frame_images[-1].to(loaded.device), zoom)[None]

            def on_step(score: float, octave: int, frame: int = frame) -> None:
                history.append(score)
                if progress is not None:
                    metrics = {"objective": score, "octave": float(octave + 1), "frame": float(frame)}
                    progress(len(history), total_steps, metrics)

            dreamed = _ascend(scorer, current, sizes=sizes, steps=steps, lr=lr, jitter=jitter, tile_size=tile_size,
                              tile_margin=margin, generator=generator, on_step=on_step)  # fmt: skip
            if frame == 0:
                octave_images = [octave_image[0].cpu() for octave_image in dreamed]
            frame_images.append(dreamed[-1][0].cpu())
        after = scorer.evaluate(frame_images[0][None].to(loaded.device), full_tiles, gradient=False)
    if not np.isfinite(after.score):
        raise ProbeRuntimeError("the dream's objective became NaN or infinite; lower the learning rate (--lr)")
    options = {
        "layers": names,
        "layer_weights": [scorer.weights[name] for name in names],
        "channels": {name: chosen for name, chosen in scorer.channels.items() if chosen is not None} or None,
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
        "channels_last": channels_last,
        "device": str(loaded.device),
        "image_size": [height, width],
        "diverged": divergence(torch.stack(frame_images), torch.tensor([after.score]), start=source.cpu()),
    }
    return DreamResult(
        image=frame_images[0],
        input=source.cpu(),
        octaves=octave_images,
        frames=frame_images if frames > 0 else [],
        objective_before=before.score,
        objective_after=after.score,
        layer_objectives={name: {"before": before.per_layer[name], "after": after.per_layer[name]} for name in names},
        history=history,
        options=options,
        model=loaded.name,
        seconds=time.perf_counter() - started,
    )
