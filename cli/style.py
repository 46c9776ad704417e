"""``probe style CONTENT STYLE [STYLE...]``: Gram-matrix neural style transfer into a gallery."""

from __future__ import annotations

from pathlib import Path

import click

from probe.cli.common import (
    ProbeCommand,
    complete_layer,
    echo_done,
    fail_if_diverged,
    gallery_command,
    list_option,
    load_pretrained_or_say,
    model_options,
    note,
    note_tiny_size,
    out_options,
    progress_bar,
    shared,
    snapshots_option,
    speed_options,
)
from probe.cli.types import count, finite
from probe.checks import MAX_SIDE
from probe.errors import ProbeUsageError
from probe.gallery import check_out_dir, slug
from probe.images import parse_size
from probe.reports.style import summary
from probe.style import (
    DEFAULT_CONTENT_WEIGHT,
    DEFAULT_STEPS,
    DEFAULT_STYLE_WEIGHT,
    DEFAULT_TV_WEIGHT,
    style_transfer,
)
from probe.style.transfer import STYLE_LOSSES


def _stem(source: str) -> str:
    return slug(source.split(":", 1)[1] if source.startswith("skimage:") else Path(source).stem)


@click.command("style", cls=ProbeCommand)
@click.argument("content")
@click.argument("styles", nargs=-1, required=True, metavar="STYLE [STYLE...]")
@model_options(default="vgg19", help_extra=" Offline: --model shapes (embedded RGB model) or --weights PATH.")
@list_option("--content-layer", "content_layer", metavar="NAME", shell_complete=complete_layer,
             help="Content layer(s): relu4_2, conv4_2, ... (VGG names) or dotted module names. "
                  "[default: relu4_2, or a deep ReLU the model has]")
@list_option("--style-layer", "style_layer", metavar="NAME", shell_complete=complete_layer,
             help="Style layer(s). [default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1, or the first ReLU "
                  "of each block the model has]")
@list_option("--style-layer-weight", "style_layer_weight", item=finite(), metavar="W",
             help="One weight per style layer (normalized to sum 1). [default: equal]")
@click.option("--content-weight", type=finite(min=0), default=DEFAULT_CONTENT_WEIGHT, show_default=True,
              help="Weight of the content loss.")
@click.option("--style-weight", type=finite(min=0), default=DEFAULT_STYLE_WEIGHT, show_default=True,
              help="Weight of the style loss (each layer's loss is relative to its target, so one weight fits every model).")
@click.option("--tv-weight", type=finite(min=0), default=DEFAULT_TV_WEIGHT, show_default=True,
              help="Weight of the total-variation (smoothness) loss.")
@list_option("--style-blend", "style_blend", item=finite(), metavar="W",
             help="One weight per style image, e.g. 0.7,0.3 (normalized to sum 1). [default: equal]")
@click.option("--style-scale", type=finite(min=0, min_open=True), default=1.0, show_default=True,
              help="Style images are resized to this times the content's size: larger, bigger strokes.")
@click.option("--init", default="content", show_default=True, metavar="content|random|PATH",
              help="Start from the content image, seeded noise, or an image.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True,
              help="L-BFGS (Gatys) or Adam.")
@click.option("--steps", type=count(1), default=DEFAULT_STEPS, show_default=True,
              help="Forward+backward passes per scale.")
@click.option("--lr", type=finite(min=0, min_open=True), default=None,
              help="Step size. [default: 1 for lbfgs, 0.02 for adam]")
@click.option("--size", default=None, metavar="N|HxW",
              help="Result size in pixels: longer side N (aspect kept) or HxW; 512 wants a GPU. "
                   "[default: 256, or twice a small model's input side: 128 for shapes]")
@click.option("--original-colors", is_flag=True, help="Keep the content's colours (transfer luminance only).")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max", show_default=True,
              help="avg swaps max pools for average pools (in a weight-sharing copy; the model is not changed).")
@list_option("--scales", item=count(1, MAX_SIDE), metavar="N",
             help="Multiscale, e.g. 256,512: each scale's result initializes the next (overrides --size; "
                  "default: one scale, --size). In pixels, the longer side.")
@snapshots_option(default=4)
@click.option("--style-loss", "style_loss", type=click.Choice(STYLE_LOSSES), default="gram", show_default=True,
              help="gram: Gatys's Gram matrices; w2: the Wasserstein-2 distance of the features' mean and covariance.")
@click.option("--match-histograms", "match_colors", is_flag=True,
              help="Keep the content's colours by giving each style image the content's colour histogram first "
                   "(the other way of Gatys et al. 2017; --original-colors transfers luminance only).")
@speed_options()
@shared
@out_options
@gallery_command
def command(
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
    """Paint CONTENT in the style of STYLE (Gatys et al.'s Gram-matrix style transfer).

    CONTENT and STYLE are image files or bundled samples (skimage:astronaut,
    skimage:coffee, skimage:chelsea, ...). Several STYLE images are blended
    (--style-blend). The result is the image whose deep features match
    CONTENT's and whose Gram matrices (feature correlations) match STYLE's.

    Real, painterly results want the default model: torchvision's vgg19 with
    its ImageNet weights (--weights DEFAULT, downloaded once; or --weights
    PATH, a local vgg19 state_dict). Offline, the embedded RGB model
    (--model shapes, trained on 64x64 shapes and textures) gives a coarser
    transfer of colour and texture in seconds on a CPU.

    \b
    Examples:
      probe style skimage:astronaut skimage:coffee --model shapes
      probe style photo.jpg starry.jpg --model vgg19 --weights DEFAULT --size 512 --device cuda
      probe style photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 --original-colors
      probe style photo.jpg starry.jpg --scales 256,512 --pooling avg
      probe style photo.jpg starry.jpg --content-layer conv4_2 --style-layer relu1_1,relu3_1
      probe style skimage:astronaut skimage:coffee --model shapes --style-loss w2 --match-histograms
    """
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
