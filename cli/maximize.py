"""``probe maximize``: synthesize the images that excite a layer's filters, neurons or classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from probe import objectives as O
from probe.cli.common import (
    ProbeCommand,
    complete_layer,
    echo_done,
    fail_if_diverged,
    gallery_command,
    list_option,
    model_options,
    note,
    note_tiny_size,
    option_given,
    out_options,
    load_model_from_options,
    progress_bar,
    shared,
    snapshot_count,
    snapshot_steps,
    snapshots_option,
    speed_options,
)
from probe.cli.methods import apply_methods, method_options, target_shorthand
from probe.chunkstore import clear as clear_chunks
from probe.cli.types import count, finite
from probe.errors import ProbeUsageError
from probe.gallery import check_out_dir, slug
from probe.hooks import OUTPUT
from probe.images import parse_size
from probe.memory import check_results_fit, optimization_text
from probe.optimize import PRESETS, LayerShape, MaximizeResult, inspect_layer, maximize

OBJECTIVES = ("channel", "neuron", "class")
WHAT = {"channel": "degree of activation", "neuron": "activation", "class": "logit"}


class BatchSize(click.ParamType):
    """``--batch``: a positive number of images, or ``auto``."""

    name = "batch"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or str(value).strip().isdigit():
            number = int(value)
            if number >= 1:
                return number
        elif str(value).strip().lower() == "auto":
            return "auto"
        self.fail(f"give a number of images >= 1 or 'auto'; got {value!r}", param, ctx)


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parsed = parse_size(text)
    return (parsed, parsed) if isinstance(parsed, int) else parsed


def _target_layer(loaded: Any, objective: str, layer: str | None, size: tuple[int, int] | None,
                  known: LayerShape | None = None, caricature: bool = False) -> LayerShape:
    """Check --layer against --objective and learn its shape (``known``: already learned for ``layer``;
    ``caricature``: --caricature was given, which needs a layer whatever the objective)."""
    if layer is None:
        if objective != "class":
            needs = ("--caricature amplifies what a layer sees in its IMAGE" if caricature else
                     f"--objective {objective}{'' if option_given('objective') else ' (the default)'} maximizes a "
                     f"layer's {objective}s")
            raise ProbeUsageError(f"{needs}: give --layer (e.g. --layer conv2; 'probe layers {loaded.name}' lists "
                                  "them)", param="layer")
        layer = OUTPUT
    info = known if known is not None and known.name == layer else inspect_layer(
        loaded, layer, size, output_param="objective" if objective == "class" else "layer")
    if objective == "class":
        if not info.is_output:
            raise ProbeUsageError(
                f"--objective class maximizes the model's output (logits), but {layer!r} is not the output layer; "
                f"use --layer {info.output_layer} (or leave --layer out), or --objective channel/neuron for {layer}",
                param="layer",
            )
        if layer == OUTPUT:  # the output's own shape refused, before it is read at the module that made it
            O.check_class_scores(torch.empty((1, *info.shape), device="meta"), OUTPUT, batch=1,
                                 image=(1, loaded.preprocess.channels, *(size or loaded.preprocess.input_size)))
            if info.output_layer != OUTPUT:
                info = inspect_layer(loaded, info.output_layer, size)
    return info


def _summary(result: MaximizeResult, name: str) -> str:
    values = result.terms.get(result.main, result.scores)
    what = WHAT.get(result.kind, "score")
    text = (
        f"{result.model} {name}: {len(result)} image(s) in {result.seconds:.1f}s; {what}: median {values.median():.4g} "
        f"(min {values.min():.4g}, max {values.max():.4g})"
    )
    probabilities = result.probabilities
    if probabilities is not None:
        text += f"; probability of the own class: min {probabilities.min():.3f}"
    return text


@click.command("maximize", cls=ProbeCommand)
@model_options(default="digits")
@click.option("--layer", default=None, metavar="LAYER", shell_complete=complete_layer,
              help="Dotted layer name (see 'probe layers MODEL'). Activations are the module's output: conv2 is "
                   "before its ReLU; name relu2 for the rectified map. No default: needed unless --target names it or "
                   "--objective class (the output layer).")
@list_option("--units", default=["all"], metavar="all|0-9|3",
             help="Which filters/neurons/classes, by index or range; one image each, all in one batch (see --batch).")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="channel", show_default=True,
              help="channel: degree of activation, the sum over a filter's map; neuron: the centre position "
                   "(or a linear layer's unit); class: the logit of the model's output.")
@click.option("--l1", type=finite(min=0), default=0.0, show_default=True, metavar="W",
              help="Subtract W x sum|x| (the image in [0,1], summed over pixels): the L1 constraint, which keeps "
                   "only the pixels the objective needs. 0.3 makes the digits model's class images look like digits.")
@click.option("--tv", type=finite(min=0), default=0.0, show_default=True, metavar="W",
              help="Subtract W x total variation (summed absolute differences of neighbouring pixels).")
@click.option("--diversity", type=finite(min=0), default=0.0, show_default=True, metavar="W",
              help="Add W x diversity: several images per unit (--per-unit, 4 by default then) that differ.")
@click.option("--per-unit", type=count(1), default=None, metavar="K",
              help="Images per unit (default 1, or 4 with --diversity).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="robust", show_default=True,
              help="robust: Fourier parametrization + colour decorrelation + random jitter/scale/rotate; "
                   "plain: gradient ascent on the pixels themselves, clipped to [0, 1], no transforms.")
@click.option("--steps", type=count(1), default=256, show_default=True,
              help="Optimization steps: Adam updates of the image.")
@click.option("--lr", type=finite(min=0, min_open=True), default=None,
              help="Adam's learning rate on the image's parameters (default: 0.05; 0.005 for --param cppn).")
@click.option("--size", default=None, metavar="H[xW]",
              help="Image size in pixels: N (square) or HxW (default: the model's input size).")
@click.option("--batch", type=BatchSize(), default="auto", show_default=True, metavar="N|auto",
              help="At most N images per optimization pass; bigger requests run in chunks. auto: on CUDA the "
                   "largest batch that fits 80% of the free memory (halved and retried if it runs out); on the CPU "
                   "64, or fewer when 64 would not fit in half the free memory. Each image has its own seed, so it "
                   "depends on N only at float rounding (README, 'Seeds').")
@snapshots_option(default=0)
@method_options
@speed_options()
@shared
@out_options
@gallery_command
def command(
    model: str, weights: str, layer: str | None, units: str, objective: str, l1: float,
    tv: float, diversity: float, per_unit: int | None, preset: str, steps: int, lr: float | None, size: str | None,
    batch: int | str, snapshots: int, precision: str, channels_last: bool, device: str, seed: int,
    out: Path | None, force: bool, **methods: Any,
) -> None:
    """Synthesize the images that maximize a layer's filters, neurons or classes.

    Gradient ascent on the image with the network frozen, for a filter's
    "degree of activation": the sum of its feature map. One image per unit; a
    whole layer renders in one batch. Writes a gallery: one PNG per
    unit, a captioned contact sheet (a = degree of activation), index.html
    and manifest.json with the score of every image.

    Finished batches are kept beside the gallery (.NAME.chunks) until it is
    written: the same command run again after a kill resumes where it
    stopped, and gives the images an uninterrupted run gives.

    \b
    Examples:
      probe maximize --layer conv2                         the 50 conv2 filters of digits
      probe maximize --objective class                     the 10 digit classes: cluttered
      probe maximize --objective class --l1 0.3            ... under the L1 constraint: digits
      probe maximize --objective class --preset plain      plain pixel ascent: noise-like
      probe maximize --layer conv2 --units 0-3,7 --preset plain --snapshots 2
      probe maximize --model shapes --layer conv3_1 --units 0-15
      probe maximize --model googlenet --layer inception4a --units 0-15 --size 128
      probe maximize --target conv2:7 --param maco          MACO, with its transparency map
      probe maximize --model shapes --target conv3_1:5 --from shapes:circle --accentuate 2
    """
    image_size = _size(size)
    loaded = load_model_from_options(model, weights, device, seed)
    note_tiny_size(image_size, loaded)
    layer, units, objective, known = target_shorthand(methods, loaded, layer, units, objective, image_size)
    info = _target_layer(loaded, objective, layer, image_size, known, caricature=bool(methods.get("caricature")))
    chosen = O.parse_units(",".join(units), info.units, info.name)
    copies = per_unit or (4 if diversity > 0 else 1)
    height_width = image_size or loaded.preprocess.input_size
    images = len(chosen) * copies  # refused before the objective lists them: --per-unit 2147483647 listed 2**31
    check_results_fit(images, (loaded.preprocess.channels, *height_width), steps, snapshot_count(steps, snapshots),
                      loaded.device, optimization_text(images, height_width, steps),
                      "give a smaller --size, fewer images (--units, --per-unit), fewer --steps or --snapshots")
    expanded = [unit for unit in chosen for _ in range(copies)]
    if objective == "channel":
        target = O.channel(info.name, expanded)
    elif objective == "neuron":
        target = O.neuron(info.name, expanded)
    else:
        target = O.class_logit(expanded, layer=info.name)
    if l1 > 0:
        target = target - l1 * O.l1()
    if tv > 0:
        target = target - tv * O.total_variation()
    if diversity > 0:
        target = target + diversity * O.diversity(info.name, group=copies)
    target, method_kwargs, method_record = apply_methods(methods, loaded, target, info, preset, tuple(height_width))
    destination = check_out_dir(out, Path("runs") / f"maximize-{slug(loaded.name)}-{slug(info.name)}", force=force)
    place = destination.path.resolve()
    chunks = place.parent / f".{place.name}.chunks"  # finished chunks, kept until the gallery is: the same command resumes
    note(
        f"maximize {target.name} on {loaded.name} ({loaded.weights} weights): {target.batch} image(s) of "
        f"{height_width[0]}x{height_width[1]}, preset {preset}, {steps} steps, on {loaded.device}"
    )
    with progress_bar(steps, f"{info.name}") as bar:

        def progress(step: int, total: int, metrics: dict[str, float]) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(step - bar.n)
            bar.set_postfix(score=f"{metrics['score']:.4g}", refresh=False)

        result = maximize(
            loaded, target, steps=steps, lr=lr, preset=preset, image_size=image_size, batch=batch,
            snapshots=snapshot_steps(steps, snapshots), progress=None if bar.disable else progress, seed=seed,
            precision=precision, channels_last=channels_last, resume=chunks, **method_kwargs,
        )  # fmt: skip
    resumed = result.settings.get("resume", {})
    resumed.pop("folder", None)  # removed once the gallery is written: the page would name a folder that is gone
    if resumed.get("reused"):
        note(f"resumed: {resumed['reused']} finished chunk(s) of an interrupted run of this command were kept")
    if resumed.get("failed"):
        note(f"note: finished chunks could not be kept for a resume ({resumed['failed']}); the run went on without")
    if resumed.get("discarded"):
        note(f"{resumed['discarded']} chunk(s) an interrupted run with other settings or weights left in {chunks} "
             "were discarded; those images were rendered again")
    folder = result.save(
        destination,
        **loaded.describe(),
        units=",".join(units),
        options={"l1": l1, "tv": tv, "diversity": diversity, "per_unit": copies, **method_record},
    )
    clear_chunks(chunks)  # the gallery holds them all now
    diverged = result.settings.get("diverged")
    echo_done(folder, _summary(result, info.name) + (" -- DIVERGED" if diverged else ""))
    unmoved = result.settings.get("unmoved", [])
    if unmoved:
        note(f"note: {len(unmoved)} of {len(result.images)} image(s) never changed from their start (units "
             f"{', '.join(str(result.units[i]) for i in unmoved[:8])}{', ...' if len(unmoved) > 8 else ''}): no "
             "gradient reached them (a unit dead on its start image, or constant for these weights: load trained "
             "weights, or try another --seed), or --lr is too small")
    fail_if_diverged(folder, diverged)
