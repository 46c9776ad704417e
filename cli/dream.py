"""``probe dream IMAGE``: Deep Dream with octaves, jitter, tiles, guides and zoom sequences."""

from __future__ import annotations

from pathlib import Path

import torch

from probe.cli.common import (
    echo_done,
    fail_if_diverged,
    load_pretrained_or_say,
    note,
    option_given,
    progress_bar,
)
from probe.choices import DREAM_AUTO_MIN_SIDE
from probe.dream import dream
from probe.dream.geometry import MIN_OCTAVE_SIDE
from probe.errors import ProbeUsageError
from probe.gallery import check_out_dir, slug
from probe.images import load_image, parse_size
from probe.memory import check_fits, images_bytes
from probe.models import LoadedModel

MAX_CHANNEL = 2**20 - 1
"""The largest channel index ``--channels`` takes; the layer's own count is checked once it is known."""


def parse_channels(parts: list[str] | None) -> list[int] | None:
    """``["0-9"]``, ``["3"]``, ``["0", "4", "7-9"]`` -> a sorted list of channel indices (None for None)."""
    if parts is None:
        return None
    chosen: set[int] = set()
    try:
        for part in parts:
            start, dash, stop = part.partition("-")
            first, last = int(start), int(stop) if dash else int(start)
            if first < 0 or last < first:
                raise ValueError
            if last > MAX_CHANNEL:  # before any set is built: "0-99999999999" must not allocate
                raise ProbeUsageError(f"channel {last} is beyond any layer's channels (at most {MAX_CHANNEL})",
                                      param="channels")
            chosen.update(range(first, last + 1))
    except ValueError:
        raise ProbeUsageError(
            f"channels must be indices or ranges such as 5, 0-9 or 0,4,7-9; got {','.join(parts)!r}", param="channels"
        ) from None
    return sorted(chosen)


THIN_SIDE = 32
"""Below this many pixels across, a resized IMAGE gets a note (a 200x10000 strip at 256 px is 5 px tall)."""


def _input_image(source: str, loaded: LoadedModel, size: str) -> torch.Tensor:
    """IMAGE as the model's channels, resized as ``--size`` says."""
    if size == "full":
        target = None
    elif size == "auto":
        target = max(DREAM_AUTO_MIN_SIDE, 2 * max(loaded.preprocess.input_size))
    else:
        target = parse_size(size)
    if target is not None:  # the picture, its resize and its float copy are made before the dream checks memory
        height, width = (target, target) if isinstance(target, int) else target
        check_fits(3 * images_bytes(loaded.preprocess.channels, [height * width]), "cpu",
                   f"IMAGE resized to --size {size}", "give a smaller --size")
    picture = load_image(source, channels=loaded.preprocess.channels, size=target)
    height, width = picture.shape[-2:]
    if isinstance(target, int) and min(height, width) < THIN_SIDE:  # a strip, its longer side fitted (not HxW)
        note(f"IMAGE is {height}x{width} px (HxW) at --size {size} (its longer side fitted): {min(height, width)} px "
             "across is too thin to dream on; give --size HxW, a larger --size, or --size full --tile 512")
    return picture


def _image_name(source: str) -> str:
    prefix, sep, key = source.partition(":")
    if sep and not Path(source).exists():
        return slug(key or prefix)
    return slug(Path(source).stem)


def run(image: str, model: str, weights: str, layer: list[str] | None, layer_weight: list[float] | None,
        channels: list[str] | None, objective: str, octaves: int, octave_scale: float, steps: int, lr: float,
        jitter: int, tile: int | None, tile_margin: int | None, guide: str | None, frames: int, zoom: float,
        size: str, precision: str, channels_last: bool, device: str, seed: int, out: Path | None,
        force: bool) -> None:
    """``probe dream``'s work, on the options click parsed (see :mod:`probe.cli.commands.dream`)."""
    if size not in ("auto", "full"):
        parse_size(size)  # a clear --size error before any loading
    if tile_margin is not None and tile is None:  # both were ignored without their option
        raise ProbeUsageError("--tile-margin is the context around each tile; add --tile PX", param="tile_margin")
    if frames == 0 and option_given("zoom"):
        raise ProbeUsageError("--zoom is the zoom between the frames of a zoom sequence; add --frames N",
                              param="zoom")
    if layer_weight and not any(layer_weight):
        raise ProbeUsageError("every layer's weight is 0: the objective would be 0 and the dream the input itself; "
                              "give at least one weight that is not 0", param="layer_weight")
    loaded = load_pretrained_or_say("dream", "dream with the embedded RGB model, --model shapes", model, weights, device,
                                    seed)
    picture = _input_image(image, loaded, size)
    if frames:  # every frame is kept for the PNGs and the GIF: --frames 2147483647 ran on for ever
        check_fits(4.0 * (frames + 1) * picture.numel(), "cpu", f"{frames:,} frames of {picture.shape[-2]}x"
                   f"{picture.shape[-1]}", "ask for fewer --frames, or a smaller --size")
    chosen_layers = layer
    folder_name = f"dream-{slug(model if not Path(model).exists() else Path(model).stem)}-{_image_name(image)}"
    destination = check_out_dir(out, Path("runs") / folder_name, force=force)
    bar = None

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        nonlocal bar
        if bar is None:  # opened at the first step, so that usage errors print without a bar
            bar = progress_bar(total, "dream")
        bar.update(step - bar.n)  # calls come every 16 steps on CUDA
        bar.set_postfix(objective=f"{metrics['objective']:.4g}", octave=int(metrics["octave"]))

    try:
        result = dream(
            loaded, picture, chosen_layers, channels=parse_channels(channels),
            layer_weights=layer_weight, objective=objective, steps=steps, lr=lr, octaves=octaves,
            octave_scale=octave_scale, jitter=jitter, tile_size=tile, tile_margin=tile_margin, guide=guide,
            frames=frames, zoom=zoom, seed=seed, precision=precision, channels_last=channels_last,
            progress=progress,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    folder = result.save(destination, image=image, size=size, **loaded.describe())
    if result.options["octaves"] < octaves:
        note(f"note: {result.options['octaves']} of the {octaves} octaves asked ran: at --octave-scale "
             f"{octave_scale:g} the others would be under {MIN_OCTAVE_SIDE} px across on this "
             f"{picture.shape[-2]}x{picture.shape[-1]} image")
    layers_text = ", ".join(result.options["layers"])
    diverged = result.options.get("diverged")
    echo_done(folder, f"{loaded.name} {layers_text}: objective {result.objective_before:.4g} -> "
                      f"{result.objective_after:.4g} ({result.seconds:.1f}s, {picture.shape[-2]}x{picture.shape[-1]})"
                      + (" -- DIVERGED" if diverged else ""))
    fail_if_diverged(folder, diverged)

