"""``dream()``: check the inputs, run the octaves over every frame, gather the :class:`DreamResult`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from probe.checks import check_names
from probe.dream.ascent import ascend
from probe.dream.geometry import octave_sizes, zoom_crop
from probe.dream.inputs import ImageSource, as_image, check_memory, check_options, naming_size_options
from probe.dream.layers import default_layers
from probe.dream.objective import Objective, make_objective
from probe.dream.result import DreamResult
from probe.errors import ProbeRuntimeError
from probe.hooks import evaluating, resolve_layers
from probe.images import divergence
from probe.memory import FLOAT, PassCost, check_run, images_bytes
from probe.models import LoadedModel, as_loaded
from probe.runtime import Precision, ProgressFn, autocast, check_generator, make_generator, progress_every, resolve_precision
from probe.runtime import with_gradients
from probe.tiling import tile_plan

__all__ = ["dream"]


@with_gradients
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
            after every step (every 16 on CUDA, where each call waits for the
            device) and after the last.

    Returns:
        A :class:`DreamResult`.

    Raises:
        ProbeUsageError: unknown layer (with a suggestion), channel out of range,
            unreadable image or guide, invalid option.
        ProbeRuntimeError: the gradient became NaN or infinite, or an untiled
            dream would not fit in the free memory (measured before allocating).
    """
    started = time.perf_counter()
    check_options(steps, jitter, tile_size, frames, zoom, lr, octaves, octave_scale, tile_margin)
    loaded = as_loaded(model, device)
    precision, channels_last = resolve_precision(precision, loaded.device, channels_last)  # "auto": bf16 on CUDA
    loaded = loaded.frozen(channels_last)
    with autocast(loaded.device, precision):  # validates the precision for this device
        pass
    names = check_names(layers, "layer") if layers is not None else default_layers(loaded)
    names = list(resolve_layers(loaded.module, names))
    scorer = make_objective(loaded, names, channels=channels, layer_weights=layer_weights, objective=objective,
                            precision=precision)  # fmt: skip
    source = as_image(image, loaded.preprocess.channels, "image").to(loaded.device)
    guide_image = None if guide is None else as_image(guide, loaded.preprocess.channels, "guide")
    height, width = source.shape[-2:]
    sizes = octave_sizes((height, width), octaves, octave_scale)
    margin = (tile_size // 8 if tile_size is not None else 0) if tile_margin is None else int(tile_margin)
    full_tiles = tile_plan(height, width, tile_size, margin)
    seed_used = seed if generator is None else None
    generator = check_generator(generator) or make_generator(seed, "cpu")
    total_steps = max(1, frames) * len(sizes) * steps
    every = progress_every(loaded.device)
    history: list[torch.Tensor] = []  # 0-dim scores on the device, read back once at the end
    frame_images: list[torch.Tensor] = []
    octave_images: list[torch.Tensor] = []
    guide_longer = None
    with evaluating(loaded.module), naming_size_options((height, width), tile_size, margin, len(sizes)):
        if guide_image is not None:
            guide_longer = guide_size or min(max(height, width), 2 * max(loaded.preprocess.input_size))
            scorer.set_guide(guide_image, guide_longer)
        if tile_size is None:
            check_memory(scorer, loaded, height, width)  # first: its advice is --tile
        _check_kept(loaded, (height, width), sizes, frames, total_steps)
        before = scorer.evaluate(source[None], full_tiles, gradient=False)
        for frame in range(max(1, frames)):
            current = source[None] if frame == 0 else zoom_crop(frame_images[-1].to(loaded.device), zoom)[None]

            def on_step(score: torch.Tensor, octave: int, frame: int = frame) -> None:
                history.append(score)
                step = len(history)
                if progress is not None and (step % every == 0 or step == total_steps):  # a read waits for a GPU
                    metrics = {"objective": float(score), "octave": float(octave + 1), "frame": float(frame)}
                    progress(step, total_steps, metrics)

            dreamed = ascend(scorer, current, sizes=sizes, steps=steps, lr=lr, jitter=jitter, tile_size=tile_size,
                              tile_margin=margin, generator=generator, on_step=on_step)  # fmt: skip
            if frame == 0:
                octave_images = [octave_image[0].cpu() for octave_image in dreamed]
            frame_images.append(dreamed[-1][0].cpu())
        after = scorer.evaluate(frame_images[0][None].to(loaded.device), full_tiles, gradient=False)
    before_score, after_score = float(before.score), float(after.score)
    if not np.isfinite(after_score):
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
        "diverged": divergence(torch.stack(frame_images), torch.tensor([after_score]), start=source.cpu()),
    }
    return DreamResult(
        image=frame_images[0],
        input=source.cpu(),
        octaves=octave_images,
        frames=frame_images if frames > 0 else [],
        objective_before=before_score,
        objective_after=after_score,
        layer_objectives={name: {"before": float(before.per_layer[name]), "after": float(after.per_layer[name])}
                          for name in names},
        history=torch.stack(history).tolist() if history else [],
        options=options,
        model=loaded.name,
        seconds=time.perf_counter() - started,
    )


def _check_kept(loaded: LoadedModel, size: tuple[int, int], sizes: Sequence[tuple[int, int]], frames: int,
                total_steps: int) -> None:
    """Refuse, before the first step, a dream whose kept images cannot fit, tiled or not (:mod:`probe.memory`).

    It keeps every frame, one image per octave, the input, and a score per step on the host, and holds
    the full image four times on its device (the image, its octave detail, the gradient, the rolled copy);
    an untiled dream's activations are :func:`~probe.dream.inputs.check_memory`'s. ``frames=2**31-1`` from
    Python ran on for ever (the CLI alone checked its frames).
    """
    channels, area = loaded.preprocess.channels, size[0] * size[1]
    kept = images_bytes(channels, [area * (max(1, frames) + 2), *(h * w for h, w in sizes)]) + FLOAT * total_steps
    what = f"a {size[0]}x{size[1]} dream" + (f" of {frames:,} frames" if frames else "")
    check_run(kept, PassCost(4 * images_bytes(channels, [area])), 1, loaded.device, what,
              "ask for fewer --frames (frames=), a smaller --size (a smaller image), or fewer --steps")
