"""``probe maximize``: synthesize the images that excite a layer's filters, neurons or classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from probe import objectives as O
from probe.cli.common import (
    echo_done,
    fail_if_diverged,
    note,
    note_tiny_size,
    option_given,
    load_model_from_options,
    progress_bar,
)
from probe.cli.methods import apply_methods, target_shorthand
from probe.chunkstore import clear as clear_chunks
from probe.errors import ProbeUsageError
from probe.snapshots import snapshot_count, snapshot_steps
from probe.gallery import check_out_dir, slug
from probe.hooks import OUTPUT
from probe.images import parse_size
from probe.memory import check_results_fit, optimization_text
from probe.optimize import LayerShape, MaximizeResult, inspect_layer, maximize

WHAT = {"channel": "degree of activation", "neuron": "activation", "class": "logit"}


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parsed = parse_size(text)
    return (parsed, parsed) if isinstance(parsed, int) else parsed


def _target_layer(loaded: Any, objective: str, layer: str | None, size: tuple[int, int] | None,
                  known: LayerShape | None = None, caricature: bool = False, reading: str = "auto") -> LayerShape:
    """Check --layer against --objective and learn its shape (``known``: already learned for ``layer``;
    ``caricature``: --caricature was given, which needs a layer whatever the objective; ``reading``: --output,
    what the model's output is)."""
    if layer is None:
        if objective != "class":
            needs = ("--caricature amplifies what a layer sees in its IMAGE" if caricature else
                     f"--objective {objective}{'' if option_given('objective') else ' (the default)'} maximizes a "
                     f"layer's {objective}s")
            raise ProbeUsageError(f"{needs}: give --layer (e.g. --layer conv2; 'probe layers {loaded.name}' lists "
                                  "them)", param="layer")
        layer = OUTPUT
    info = known if known is not None and known.name == layer else inspect_layer(
        loaded, layer, size, output_param="objective" if objective == "class" else "layer", reading=reading,
        advice="give a smaller --size")
    if objective == "class":
        if not info.is_output:
            raise ProbeUsageError(
                f"--objective class maximizes the model's output (logits), but {layer!r} is not the output layer; "
                f"use --layer {info.output_layer} (or leave --layer out), or --objective channel/neuron for {layer}",
                param="layer",
            )
        if layer == OUTPUT:  # the output, read with its graph, refused before it is read at the module that made it
            O.check_class_kind(info.output_kind, (1, *info.shape), OUTPUT)
            if info.assumed:
                note(f"the output was {info.assumed}")
            if info.output_layer != OUTPUT:
                info = inspect_layer(loaded, info.output_layer, size, advice="give a smaller --size")
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


def run(
    model: str, weights: str, layer: str | None, units: str, objective: str, l1: float,
    tv: float, diversity: float, per_unit: int | None, preset: str, steps: int, lr: float | None, size: str | None,
    batch: int | str, snapshots: int, precision: str, channels_last: bool, device: str, seed: int, output: str,
    out: Path | None, force: bool, **methods: Any,
) -> None:
    """``probe maximize``'s work, on the options click parsed (see :mod:`probe.cli.commands.maximize`)."""
    image_size = _size(size)
    loaded = load_model_from_options(model, weights, device, seed)
    note_tiny_size(image_size, loaded)
    layer, units, objective, known = target_shorthand(methods, loaded, layer, units, objective, image_size)
    if option_given("output") and objective != "class":
        raise ProbeUsageError(f"--output says what the model's output is, for --objective class; --objective "
                              f"{objective} maximizes a layer's units", param="output")
    info = _target_layer(loaded, objective, layer, image_size, known, caricature=bool(methods.get("caricature")),
                         reading=output)
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
