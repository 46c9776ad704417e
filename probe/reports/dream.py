"""The gallery of a Deep Dream run: input, dream, one image per octave, the zoom frames and their GIF.

Layout of the folder::

    input.png, dream.png          the input (as the model saw it) and the final dream
    octave-1.png ... octave-N.png the dream at the end of each octave, smallest first
    frame-000.png ...             the zoom sequence (with --frames), and zoom.gif
    objective.png                 the objective at every step
    contact-sheet-*.png, index.html, manifest.json

The manifest records the layers, layer weights, channels, objective, octaves,
octave scale and sizes, steps, lr, jitter, tiles, guide, and the objective
before and after (measured without jitter on the input and on the dream).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from probe import __version__
from probe.gallery import Gallery, contact_sheet
from probe.gallery.numbers import number
from probe.images import to_pil
from probe.reports.render import png_bytes

if TYPE_CHECKING:
    from probe.dream import DreamResult

__all__ = ["save_gallery", "overview", "preview", "write_gif"]


def _size(image: Any) -> str:
    return f"{image.shape[-2]}x{image.shape[-1]}"


def overview(result: DreamResult, *, cell: int = 192) -> Image.Image:
    """A contact sheet of the input, the dream and every octave (what notebooks show)."""
    images = [to_pil(result.input), to_pil(result.image)]
    captions = [f"input (objective {number(result.objective_before)})", f"dream (objective {number(result.objective_after)})"]
    if len(result.octaves) > 1:
        images += [to_pil(octave) for octave in result.octaves]
        captions += [f"octave {k + 1}: {_size(octave)}" for k, octave in enumerate(result.octaves)]
    return contact_sheet(images, captions, cell=cell, columns=min(len(images), 6), title=_title(result))


def preview(result: DreamResult) -> bytes:
    """:func:`overview` as PNG bytes (what notebooks show)."""
    return png_bytes(overview(result))


def _title(result: DreamResult) -> str:
    return f"{result.model} {', '.join(result.options.get('layers', []))}"


def write_gif(frames: list[Image.Image], path: Path, *, duration_ms: int = 120) -> Path:
    """Write ``frames`` as an animated GIF that loops forever."""
    frames = [frame.convert("RGB") for frame in frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return path


def save_gallery(result: DreamResult, folder: str | Path, **fields: Any) -> Path:
    """Write ``result`` as a gallery into ``folder`` (created if needed); return the folder.

    Args:
        result: what :func:`probe.dream` returned.
        folder: the output folder (``result.save`` passes a staging folder from ``OutDir.write``).
        **fields: more manifest fields (weights, image source, ...).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    options = dict(result.options)
    manifest = {
        "model": result.model,
        **options,
        "objective_before": result.objective_before,
        "objective_after": result.objective_after,
        "layer_objectives": result.layer_objectives,
        "seconds": round(result.seconds, 3),
        **fields,
    }
    gallery = Gallery(folder, command="dream", title=_title(result), fields=manifest, version=__version__)
    gallery.add(to_pil(result.input), "input.png", f"input {_size(result.input)}, objective {number(result.objective_before)}",
                section="dream", kind="input", score=result.objective_before)
    gallery.add(to_pil(result.image), "dream.png", f"dream {_size(result.image)}, objective {number(result.objective_after)}",
                section="dream", kind="dream", score=result.objective_after)
    count = len(result.octaves)
    for k, octave in enumerate(result.octaves):
        gallery.add(to_pil(octave), f"octave-{k + 1}.png", f"octave {k + 1} of {count}: {_size(octave)}",
                    section="octaves", kind="octave", octave=k + 1, size=list(octave.shape[-2:]))
    if result.frames:
        pictures = [to_pil(frame) for frame in result.frames]
        for k, picture in enumerate(pictures):
            gallery.add(picture, f"frame-{k:03d}.png", f"frame {k}", section="frames", kind="frame", frame=k)
        write_gif(pictures, folder / "zoom.gif")
        gallery.add_extra("zoom.gif", f"zoom sequence: {len(pictures)} frames, zoom {options.get('zoom')} per frame")
    if result.history:
        figure = _history_figure(result)
        gallery.add_extra("objective.png", "objective at every step (jittered, at each octave's scale)", figure=figure)
        figure.clear()
    gallery.write(cell=max(128, min(256, max(result.image.shape[-2:]))))  # dreams at their size, up to 256 px
    return folder


OBJECTIVE_WORDS = {"l2": "mean squared activation", "mean": "mean activation",
                   "guide": "match with the guide's features"}
"""What each dream objective is, for the plot's axis (:mod:`probe.dream.objective`)."""


def objective_label(options: dict[str, Any]) -> str:
    """The objective plot's y label: what is maximized, of which layers (``"mean squared activation of
    relu3_1"``); ``"objective"`` where the options do not say."""
    kind = "guide" if options.get("guide") else options.get("objective")
    layers = options.get("layers") or []
    if kind not in OBJECTIVE_WORDS:
        return "objective"
    return f"{OBJECTIVE_WORDS[kind]} of {', '.join(layers)}" if layers else OBJECTIVE_WORDS[kind]


def _history_figure(result: DreamResult) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 3))  # no pyplot: no global state, no GUI backend
    axis = figure.subplots()
    axis.plot(range(1, len(result.history) + 1), result.history, linewidth=1.2)
    steps = int(result.options.get("steps") or 0)
    if steps:
        for boundary in range(steps, len(result.history), steps):
            axis.axvline(boundary + 0.5, color="#bbb", linewidth=0.6)
    axis.set_xlabel("step (grey lines: octave boundaries)")
    axis.set_ylabel(objective_label(result.options), fontsize=8)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole: no 1.2, 1.4 on a short run
    axis.set_title(f"before {number(result.objective_before)}, after {number(result.objective_after)}")
    figure.tight_layout()
    return figure
