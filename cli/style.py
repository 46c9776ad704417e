"""``probe style CONTENT STYLE [STYLE...]``: Gram-matrix neural style transfer into a gallery."""

from __future__ import annotations

from pathlib import Path

from probe.cli.common import (
    echo_done,
    fail_if_diverged,
    load_pretrained_or_say,
    note,
    note_tiny_size,
    progress_bar,
)
from probe.errors import ProbeUsageError
from probe.gallery import check_out_dir, slug
from probe.images import parse_size
from probe.reports.style import summary
from probe.style import style_transfer


def _stem(source: str) -> str:
    return slug(source.split(":", 1)[1] if source.startswith("skimage:") else Path(source).stem)


def run(
    content: str,
    styles: tuple[str, ...],
    model: str,
    weights: str,
    content_layer: list[str] | None,
    style_layer: list[str] | None,
    style_layer_weight: list[float] | None,
    content_weight: float,
    style_weight: float,
    tv_weight: float,
    style_blend: list[float] | None,
    style_scale: float,
    init: str,
    optimizer: str,
    steps: int,
    lr: float | None,
    size: str | None,
    original_colors: bool,
    pooling: str,
    scales: list[int] | None,
    snapshots: int,
    precision: str,
    channels_last: bool,
    device: str,
    seed: int,
    out: Path | None,
    force: bool,
    style_loss: str = "gram",
    match_colors: bool = False,
) -> None:
    """``probe style``'s work, on the options click parsed (see :mod:`probe.cli.commands.style`)."""
    parsed_size = None if size is None else parse_size(size)
    if content_weight == 0 and style_weight == 0:
        raise ProbeUsageError("--content-weight and --style-weight are both 0: nothing would be transferred (the "
                              "result would be CONTENT, smoothed at most); give either a weight above 0",
                              param="style_weight")
    loaded = load_pretrained_or_say("style", "transfer colour and coarse texture with the embedded RGB model, "
                                    "--model shapes", model, weights, device, seed)
    note_tiny_size(min(scales) if scales else parsed_size, loaded)
    what = "-".join([_stem(content), *(_stem(s) for s in styles[:2])])
    destination = check_out_dir(out, Path("runs") / f"style-{slug(model)}-{what}", force=force)
    total = steps * (len(scales) if scales else 1)
    with progress_bar(total, f"style {model}") as bar:
        def progress(step: int, total_steps: int, metrics: dict[str, float]) -> None:
            bar.update(step - bar.n)
            bar.set_postfix(content=f"{metrics['content']:.3g}", style=f"{metrics['style']:.3g}",
                            tv=f"{metrics['tv']:.3g}", refresh=False)

        result = style_transfer(
            loaded,
            content,
            list(styles),
            content_layers=content_layer,
            style_layers=style_layer,
            style_layer_weights=style_layer_weight,
            content_weight=content_weight,
            style_weight=style_weight,
            tv_weight=tv_weight,
            style_blend=style_blend,
            style_scale=style_scale,
            init=init,
            optimizer=optimizer,  # type: ignore[arg-type]
            steps=steps,
            lr=lr,
            size=parsed_size,
            original_colors=original_colors,
            pooling=pooling,  # type: ignore[arg-type]
            scales=scales,
            snapshots=snapshots,
            progress=None if bar.disable else progress,
            seed=seed,
            precision=precision,  # type: ignore[arg-type]
            channels_last=channels_last,
            style_loss=style_loss,
            match_colors=match_colors,
        )
    folder = result.save(destination, **loaded.describe())
    layer_note = result.options.get("layer_note")
    if layer_note:  # a note: stderr, like every command's (stdout holds the results and paths)
        note(f"note: {layer_note}")
    diverged = result.options.get("diverged")
    echo_done(folder, f"{summary(result)}" + (" -- DIVERGED" if diverged else ""))
    fail_if_diverged(folder, diverged)
