"""The gallery of a style transfer: inputs, result, snapshots, loss curves, manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe import __version__
from probe.gallery import Gallery, contact_sheet, slug
from probe.gallery.numbers import number, seconds
from probe.images import to_pil
from probe.reports.render import png_bytes
from probe.style import StyleResult

__all__ = ["save_gallery", "preview", "loss_figure", "loss_weights", "summary"]


def _percent(value: float) -> str:
    """A fraction as a percentage to 3 significant digits: ``0.133%``, ``17.1%`` (``.1f`` wrote 0.133% as 0.1%)."""
    return f"{number(100 * value, digits=3)}%"


def summary(result: StyleResult) -> str:
    """One line: the final losses against the content image's style loss."""
    losses = result.losses
    return (
        f"style loss {number(losses['style'])} ({_percent(result.style_ratio)} of the content image's "
        f"{number(result.content_image_style_loss)}), content loss {number(losses['content'])}, "
        f"tv {number(losses['tv'])} in {seconds(result.seconds)}"
    )


def loss_weights(options: dict[str, Any]) -> dict[str, float]:
    """The weight of each loss in the total: ``{"content": 1.0, "style": 1000.0, "tv": 1.0}``."""
    return {part: options[f"{part}_weight"] for part in ("content", "style", "tv")}


def loss_figure(result: StyleResult) -> Any:
    """A matplotlib figure: the content, style and TV losses (weighted) and the total, per step, log scale."""
    from matplotlib.figure import Figure

    steps = range(1, len(result.history["total"]) + 1)
    figure = Figure(figsize=(6, 3.4))  # no pyplot: no global state, a notebook's backend left as it is
    axis = figure.subplots()
    for key, weight in loss_weights(result.options).items():
        values = [weight * value for value in result.history[key]]
        if weight > 0 and any(v > 0 for v in values):
            axis.plot(steps, values, label=f"{weight:g} × {key}")
    axis.plot(steps, result.history["total"], label="total", color="black", linewidth=1.2)
    scale = result.history.get("scale", [])
    for step in range(1, len(scale)):
        if scale[step] != scale[step - 1]:
            axis.axvline(step + 0.5, color="grey", linestyle=":", linewidth=1)
    axis.set_yscale("log")
    axis.set_xlabel("step (one forward + backward pass)")
    axis.set_ylabel("weighted loss (lower is better)")
    axis.set_title(f"style transfer on {result.model}: style at {_percent(result.style_ratio)} of the content image's")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _tiles(result: StyleResult) -> tuple[list[Any], list[str]]:
    images = [to_pil(result.content), *(to_pil(s) for s in result.styles), to_pil(result.image)]
    captions = [
        f"content: {result.content_label}",
        *(f"style: {label}" for label in result.style_labels),
        f"result: style loss {_percent(result.style_ratio)}",
    ]
    return images, captions


def preview(result: StyleResult) -> bytes:
    """Content, style(s) and result side by side, as PNG bytes (for notebooks)."""
    images, captions = _tiles(result)
    return png_bytes(contact_sheet(images, captions, columns=len(images), cell=192,
                                   title=f"style transfer on {result.model}"))


def save_gallery(result: StyleResult, folder: str | Path, **fields: Any) -> Path:
    """Write ``folder`` (which must exist): content, styles, result, snapshots, loss plot, page and manifest.

    Args:
        result: what :func:`probe.style_transfer` returned.
        folder: an existing (empty) folder, e.g. the staging folder of :meth:`probe.gallery.OutDir.write`.
        **fields: more manifest fields (the CLI adds ``command_line``, ``weights``).

    Returns:
        The path of ``manifest.json``.
    """
    folder = Path(folder)
    options = result.options
    gallery = Gallery(
        folder,
        command="style",
        title=f"probe style on {result.model}",
        version=__version__,
        fields={
            "model": result.model,
            "content": result.content_label,
            "styles": result.style_labels,
            "steps": options["steps"],
            "seed": options.get("seed"),
            "image_size": options["image_size"],
            "options": options,
            **fields,
        },
    )
    section = "transfer" if result.snapshots else ""  # one sheet needs no section name
    gallery.add(to_pil(result.content), "content.png", f"content: {result.content_label}", section=section)
    blend = options.get("style_blend", [1.0] * len(result.styles))
    for index, (style, label) in enumerate(zip(result.styles, result.style_labels), start=1):
        caption = f"style {index}: {label}" + (f" (blend {blend[index - 1]:.2f})" if len(result.styles) > 1 else "")
        gallery.add(to_pil(style), f"style-{index}-{slug(Path(label).stem or label)}.png", caption, section=section)
    gallery.add(
        to_pil(result.image),
        "result.png",
        f"result: style loss {_percent(result.style_ratio)} of content's",
        section=section,
        losses=result.losses,
    )
    for step, snapshot in result.snapshots:
        gallery.add(to_pil(snapshot), f"step-{step:04d}.png", f"step {step}", section="snapshots", step=step)
    if result.history.get("total"):
        gallery.add_extra("losses.png", "losses per step (log scale)", figure=loss_figure(result))
    tiles = len(result.styles) + 2  # content, styles, result: one row; snapshots wrap to the same width
    return gallery.write(
        cell=192,
        columns=max(tiles, min(4, len(result.snapshots))),
        # the total is weighted, the parts are not: a page showing 'style 0.47; total 474' says why
        loss_weights=loss_weights(result.options),
        losses=result.losses,
        content_image_style_loss=result.content_image_style_loss,
        style_loss_percent=round(100 * result.style_ratio, 3),
        layer_losses=result.layer_losses,
        seconds=round(result.seconds, 3),
        history=result.history,
    )
