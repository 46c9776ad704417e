"""``style_transfer``: the optimization loop (L-BFGS or Adam, one or several scales) and its result."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from probe.checks import check_count, check_number, check_size
from probe.choices import (  # torch-free: the command's options offer them
    STYLE_CONTENT_WEIGHT as DEFAULT_CONTENT_WEIGHT, STYLE_LEARNING_RATES as DEFAULT_LR, STYLE_LOSSES,
    STYLE_STEPS as DEFAULT_STEPS, STYLE_STYLE_WEIGHT as DEFAULT_STYLE_WEIGHT, STYLE_TV_WEIGHT as DEFAULT_TV_WEIGHT,
)
from probe.errors import ProbeUsageError
from probe.forward import image_grad
from probe.hooks import evaluating
from probe.images import divergence, fit_size, resize
from probe.memory import FLOAT, HEADROOM, PassCost, bytes_per_pixel, check_fits, check_run, images_bytes
from probe.models import LoadedModel, as_loaded
from probe.runtime import (
    Precision, ProgressFn, check_finite, check_generator, make_generator, progress_every, resolve_precision,
    with_gradients,
)
from probe.snapshots import snapshot_count, snapshot_steps
from probe.style.colors import keep_content_colors, match_histograms
from probe.style.inputs import (
    ImageSource,
    as_sources,
    default_size,
    initial_image,
    label,
    load_for_model,
    normalize_weights,
    scale_sizes,
    size_the_model_takes,
    targets_for_model,
)
from probe.style.layers import plan_layers
from probe.style.lbfgs import history_pairs, minimize
from probe.style.network import Pooling, style_network
from probe.style.objective import LOSS_NAMES, StyleObjective, StyleTargets
from probe.style.result import StyleResult

__all__ = [
    "STYLE_LOSSES",
    "Optimizer",
    "style_transfer",
    "DEFAULT_STEPS",
    "DEFAULT_CONTENT_WEIGHT",
    "DEFAULT_STYLE_WEIGHT",
    "DEFAULT_TV_WEIGHT",
    "DEFAULT_LR",
]

Optimizer = Literal["lbfgs", "adam"]


def _check_options(
    optimizer: str, steps: int, weights: dict[str, float], style_scale: float, snapshots: int
) -> None:
    if optimizer not in DEFAULT_LR:
        raise ProbeUsageError(f"unknown optimizer {optimizer!r}; optimizers are: {', '.join(DEFAULT_LR)}",
                              param="optimizer")
    check_count(steps, "steps")
    for name, value in weights.items():
        check_number(value, name, 0)
    check_number(style_scale, "style_scale", 0, above=True)
    check_count(snapshots, "snapshots", 0)


def _check_memory(
    objective: StyleObjective, loaded: LoadedModel, size: tuple[int, int], style_sizes: list[tuple[int, int]],
    history_pairs: int = 0,
) -> None:
    """Refuse, before allocating, a scale whose image or style images cannot fit in the free memory.

    The optimization keeps every layer's activations up to the deepest one for the backward pass
    (measured per pixel at the model's input size, :func:`~probe.memory.bytes_per_pixel`), and L-BFGS
    its ``history_pairs`` curvature pairs (two float32 images each, allocated at the start); a style
    image is seen once without gradients (about twice its largest activation). Runs of at most four
    times the model's input area are not checked.
    """
    base = loaded.preprocess.input_size
    largest_style = max((h * w for h, w in style_sizes), default=0)
    if max(size[0] * size[1], largest_style) <= 4 * base[0] * base[1]:
        return

    measure = (objective.features, loaded.preprocess.channels, loaded.device, base)
    per_pixel, per_largest = bytes_per_pixel(*measure), bytes_per_pixel(*measure, largest=True)
    if per_pixel is None or per_largest is None:  # the layers do not run at the probe sizes: the run will say why
        return
    history = 2 * history_pairs * loaded.preprocess.channels * size[0] * size[1] * 4
    check_fits(HEADROOM * per_pixel * size[0] * size[1] + history, loaded.device, f"style transfer at {size[0]}x{size[1]}",
               "use a smaller --size (or --scales), or --device cuda on a GPU with more memory")
    style_h, style_w = max(style_sizes, key=lambda hw: hw[0] * hw[1])
    check_fits(2 * per_largest * style_h * style_w + 24 * style_h * style_w, loaded.device,
               f"a {style_h}x{style_w} style image", "lower --style-scale (style images are resized to it times "
               "the result's size) or use a smaller --size")  # fmt: skip


def _check_kept(loaded: LoadedModel, sizes: Sequence[tuple[int, int]], total_steps: int, snapshots: int) -> None:
    """Refuse, before the first step and before the snapshot steps are listed, a run whose kept results cannot
    fit (:mod:`probe.memory`): the snapshots at the largest scale, the best and the last image, and every
    step's losses. ``steps=snapshots=2**31-1`` listed 2**31 snapshot steps first."""
    height, width = max(sizes, key=lambda size: size[0] * size[1])
    images = snapshot_count(total_steps, snapshots) + 2
    kept = images_bytes(loaded.preprocess.channels, [height * width * images]) + FLOAT * total_steps * (len(LOSS_NAMES) + 1)
    check_run(kept, PassCost(0.0), 0, loaded.device, f"style transfer over {total_steps:,} steps with {images - 2:,} "
              f"snapshot(s) of {height}x{width}", "ask for fewer --steps or --snapshots, or a smaller --size")


class _Run:
    """The optimization state across scales: history, snapshots, progress."""

    def __init__(self, objective: StyleObjective, total_steps: int, snapshots: int, progress: ProgressFn | None):
        self.objective = objective
        self.total_steps = total_steps
        self.snapshot_at = set(snapshot_steps(total_steps, snapshots))
        self.progress = progress
        # the losses stay 0-dim device tensors (read back once, at the end); "scale" is the scale's index, a number
        self.history: dict[str, list[Any]] = {key: [] for key in (*LOSS_NAMES, "scale")}
        self.snapshots: list[tuple[int, torch.Tensor]] = []
        self.best_total = torch.tensor(math.inf)
        self.best_image = torch.empty(0)

    def optimize(
        self, start: torch.Tensor, targets: StyleTargets, optimizer: str, steps: int, lr: float, scale: int
    ) -> torch.Tensor:
        """``steps`` loss evaluations from ``start`` ``(C, H, W)``; returns the ``(C, H, W)`` image of lowest loss.

        The lowest-loss image seen, not the last: L-BFGS without a line search
        (and Adam) can end on a step whose loss jumped up.
        """
        pixels = start.detach().clone()[None].requires_grad_(True)
        self.best_total, self.best_image = torch.tensor(math.inf, device=start.device), start.detach()

        def evaluate() -> torch.Tensor:
            with torch.no_grad():
                pixels.clamp_(0.0, 1.0)
            parts = self.objective.losses(pixels, targets)
            (grad,) = image_grad(parts["total"], pixels)  # the model's parameters get no .grad
            self._record(parts, pixels, scale)
            pixels.grad = grad
            return parts["total"].detach()

        if optimizer == "lbfgs":  # torch.optim.LBFGS's iterates, without its several host reads per evaluation
            recorded = len(self.history["total"])
            self._trim(recorded + minimize(pixels, evaluate, steps, lr=lr).evaluations)
        else:
            adam = torch.optim.Adam([pixels], lr=lr)
            for _ in range(steps):
                evaluate()
                adam.step()
        check_finite(self.best_total, "the style-transfer loss", len(self.history["total"]))  # inf: never finite
        return self.best_image.clamp(0.0, 1.0)

    def _trim(self, evaluations: int) -> None:
        """Forget what was recorded after the first ``evaluations``: those saw the converged image again."""
        for values in self.history.values():
            del values[evaluations:]
        self.snapshots = [(step, image) for step, image in self.snapshots if step <= evaluations]

    def _record(self, parts: dict[str, torch.Tensor], pixels: torch.Tensor, scale: int) -> None:
        step = len(self.history["total"]) + 1
        report = self.progress is not None and (step % progress_every(pixels.device) == 0 or step == self.total_steps)
        if report or step % 25 == 0:  # a check syncs a GPU: not every step
            check_finite(parts["total"].detach(), "the style-transfer loss", step)
        for key in LOSS_NAMES:
            self.history[key].append(parts[key].detach())
        self.history["scale"].append(float(scale))  # not a tensor built every step
        better = parts["total"].detach() < self.best_total  # kept on the device: no sync per step
        self.best_total = torch.where(better, parts["total"].detach(), self.best_total)
        self.best_image = torch.where(better, pixels.detach()[0], self.best_image)
        if step in self.snapshot_at:
            self.snapshots.append((step, pixels.detach()[0].clamp(0, 1).cpu()))
        if report:
            self.progress(step, self.total_steps, {key: float(parts[key].detach()) for key in LOSS_NAMES})


@with_gradients
def style_transfer(
    model: str | nn.Module | LoadedModel,
    content: ImageSource,
    styles: ImageSource | Sequence[ImageSource],
    *,
    content_layers: str | Sequence[str] | None = None,
    style_layers: str | Sequence[str] | None = None,
    style_layer_weights: Sequence[float] | None = None,
    content_weight: float = DEFAULT_CONTENT_WEIGHT,
    style_weight: float = DEFAULT_STYLE_WEIGHT,
    tv_weight: float = DEFAULT_TV_WEIGHT,
    style_blend: Sequence[float] | None = None,
    style_scale: float = 1.0,
    init: str | ImageSource = "content",
    optimizer: Optimizer = "lbfgs",
    steps: int = DEFAULT_STEPS,
    lr: float | None = None,
    size: int | Sequence[int] | None = None,
    original_colors: bool = False,
    pooling: Pooling = "max",
    scales: Sequence[int] | None = None,
    snapshots: int = 4,
    progress: ProgressFn | None = None,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    channels_last: bool = False,
    style_loss: str = "gram",
    match_colors: bool = False,
) -> StyleResult:
    """Neural style transfer: an image with ``content``'s content and ``styles``' style.

    Minimizes ``content_weight * content + style_weight * style + tv_weight * tv``
    over the pixels (losses, lower is better; see :mod:`probe.style.objective`
    for the relative losses). The model is not changed: it runs through
    :func:`~probe.style.network.style_network` (weights shared), in eval mode,
    and keeps no hook and no gradient.

    Args:
        model: a :class:`~probe.models.LoadedModel`, an ``nn.Module`` (ImageNet
            normalization assumed for 3 channels) or a spec for
            :func:`~probe.models.load_model` (``"vgg19"``, ``"shapes"``).
        content: the content image: file, ``skimage:NAME``, ``(C, H, W)``
            tensor in [0, 1], numpy array or PIL image.
        styles: one style image or several (blended, see ``style_blend``).
        content_layers: paper-style (``relu4_2``, ``conv4_2``) or dotted names;
            default ``relu4_2``, or a deep ReLU when the model lacks it (the
            choice is in ``options["layer_note"]``). See :mod:`probe.vgg_names`.
        style_layers: default ``relu1_1, relu2_1, relu3_1, relu4_1, relu5_1``,
            or the first ReLU of each block the model has.
        style_layer_weights: one weight per style layer (normalized to sum 1);
            default equal.
        content_weight: weight of the content loss (default 1).
        style_weight: weight of the style loss (default 1000).
        tv_weight: weight of the total-variation smoothness loss (default 1).
        style_blend: one weight per style image (normalized to sum 1; default
            equal); the target Gram matrices are blended with them.
        style_scale: style images are resized to ``style_scale`` times the
            content's longer side (default 1): larger scales give larger brush
            strokes.
        init: ``"content"`` (default), ``"random"`` (uniform noise from the
            seed), or an image source resized to the content's size.
        optimizer: ``"lbfgs"`` (default, Gatys's choice) or ``"adam"``.
        steps: loss evaluations per scale (default 300): each is one forward and
            one backward pass. L-BFGS may stop earlier when it converges.
        lr: step size; default 1 for L-BFGS, 0.02 for Adam.
        size: the content's longer side (int) or ``(H, W)``; default None:
            256 for ImageNet-sized models, twice the input side of smaller ones
            (128 for ``shapes``), see :func:`~probe.style.inputs.default_size`; the
            model's own input size when it refuses that (ViT, MaxViT take only theirs).
        original_colors: keep the content's colours: the result's luminance
            with the content's chroma (YIQ), applied to the result and snapshots.
        pooling: ``"max"`` (default) or ``"avg"`` (max pools swapped for average
            pools in a weight-sharing copy of the model's structure).
        scales: multiscale sizes, e.g. ``(256, 512)``, overriding ``size``:
            each scale runs ``steps`` steps and its result, upsampled,
            initializes the next.
        snapshots: intermediate images to keep, evenly spread (default 4).
        progress: ``progress(step, total, metrics)`` after each step (every 16
            on CUDA, where each call waits for the device), metrics being the
            current losses.
        seed: seed of the random initialization (default 0).
        generator: a ``torch.Generator`` to use instead of ``seed``.
        device: where to run when ``model`` is a spec (default: CUDA if any);
            must match a loaded model's device.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (autocast on
            the forward pass; Gram matrices and losses stay float32); ``"auto"``:
            bf16 with channels-last on CUDA, fp32 on the CPU.
        channels_last: run the convolutions in channels-last memory format
            (default False): 1.3x faster for googlenet on CPU, 5% slower
            for VGG19 style; see :func:`~probe.models.frozen_view`.
        style_loss: ``"gram"`` (default, Gatys's Gram matrices) or ``"w2"``: the
            Wasserstein-2 distance of the features' mean and covariance
            (:func:`~probe.style.losses.wasserstein_style_loss`).
        match_colors: keep the content's colours the other way (Gatys et al.
            2017): give each style image the content's colour histogram before
            the transfer (:func:`~probe.style.colors.match_histograms`;
            ``original_colors`` transfers luminance only instead).

    Returns:
        A :class:`~probe.style.result.StyleResult`; its losses are measured on
        the returned image against the last scale's targets.

    Raises:
        ProbeUsageError: unknown layer (with suggestions), unreadable image,
            image whose channels the model cannot take, wrong number of blend
            or layer weights, unknown optimizer/pooling/init, bad sizes.
        ProbeRuntimeError: the loss became NaN or infinite.
    """
    weights = {"content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight}
    _check_options(optimizer, steps, weights, style_scale, snapshots)
    steps = int(steps)
    lr = DEFAULT_LR[optimizer] if lr is None else check_number(lr, "lr", 0, above=True)

    loaded = as_loaded(model, device)
    precision, channels_last = resolve_precision(precision, loaded.device, channels_last)  # "auto": bf16 on CUDA
    loaded = loaded.frozen(channels_last)  # no weight gradients computed: ~10-20% of each step
    device = loaded.device
    channels = loaded.preprocess.channels
    plan = plan_layers(loaded.module, content_layers, style_layers)
    style_sources = as_sources(styles)
    if not style_sources:
        raise ProbeUsageError("give at least one style image", param="styles")
    blend = normalize_weights(style_blend, len(style_sources), "style blend weights", param="style_blend")
    layer_weights = normalize_weights(
        style_layer_weights, len(plan.style), "style layer weights", param="style_layer_weight"
    )
    content_image = load_for_model(content, "content image", channels, "content")
    style_images = [
        load_for_model(source, f"style image {i}", channels, "styles") for i, source in enumerate(style_sources, 1)
    ]
    if style_loss not in STYLE_LOSSES:
        raise ProbeUsageError(f"unknown style loss {style_loss!r}; style losses are: {', '.join(STYLE_LOSSES)}",
                              param="style_loss")
    if match_colors:
        style_images = [match_histograms(style, content_image) for style in style_images]
    defaulted = size is None and scales is None
    size = default_size(loaded) if defaulted else size
    if size is not None:
        size = check_size(size)
    sizes = scale_sizes(*content_image.shape[-2:], size, scales)
    random = make_generator(seed if check_generator(generator) is None else generator, "cpu")  # the same noise on any device
    net, swapped = style_network(loaded.module, pooling)
    objective = StyleObjective(
        net,
        loaded.preprocess.normalize,
        plan,
        dict(zip(plan.style, layer_weights)),
        (float(content_weight), float(style_weight), float(tv_weight)),
        device,
        precision,
        style_loss,
    )
    first_features = None  # the content's features at the first size, when the size check below made them
    if defaulted:  # a model that takes one input size (ViT at 224) refuses the default 256: then its own
        sizes, first_features = size_the_model_takes(objective, content_image, sizes, loaded.preprocess.input_size)
    _check_kept(loaded, sizes, steps * len(sizes), int(snapshots))
    run = _Run(objective, steps * len(sizes), int(snapshots), progress)

    started = time.perf_counter()
    with evaluating(net):
        image: torch.Tensor | None = None
        for scale, (height, width) in enumerate(sizes):
            longer = max(1, round(style_scale * max(height, width)))
            _check_memory(objective, loaded, (height, width), [fit_size(*s.shape[-2:], longer) for s in style_images],
                          history_pairs(steps) if optimizer == "lbfgs" else 0)
            content_s = resize(content_image, (height, width)).to(device)
            styles_s = [resize(style, longer).to(device) for style in style_images]
            targets, styles_s = targets_for_model(objective, content_s, styles_s, blend, style_scale,
                                                  loaded.preprocess.input_size, first_features if scale == 0 else None)
            if image is None:
                start, init_label = initial_image(init, content_s, random, channels)
            else:
                start = resize(image, (height, width))
            image = run.optimize(start, targets, optimizer, steps, lr, scale)

        final = keep_content_colors(image, content_s) if original_colors else image
        with torch.no_grad():
            measured = objective.losses(final[None], targets, per_layer=True)
    seconds = time.perf_counter() - started

    snapshots_kept = run.snapshots
    if original_colors:
        snapshots_kept = [(step, keep_content_colors(snap, content_image)) for step, snap in snapshots_kept]
    options = {
        "content_layers": plan.content,
        "style_layers": plan.style,
        "layer_note": plan.note,
        "style_layer_weights": dict(zip(plan.style, layer_weights)),
        **{name: float(value) for name, value in weights.items()},
        "style_blend": blend,
        "style_scale": float(style_scale),
        "init": init_label,
        "optimizer": optimizer,
        "lr": lr,
        "steps": steps,
        "scales": [list(s) for s in sizes],
        "image_size": [int(final.shape[-2]), int(final.shape[-1])],
        "original_colors": bool(original_colors),
        "match_colors": bool(match_colors),
        "style_loss": style_loss,
        "pooling": pooling,
        "pools_swapped": swapped,
        "precision": precision,
        "channels_last": channels_last,
        "device": str(device),
        "seed": seed if generator is None else None,
        "diverged": divergence(final, start=content_s.cpu()),
    }
    return StyleResult(
        image=final.detach().cpu(),
        content=content_s.cpu(),
        styles=[style.cpu() for style in styles_s],
        history={key: torch.stack(values).tolist() if key != "scale" else list(values)
                 for key, values in run.history.items()},
        losses={key: float(measured[key]) for key in LOSS_NAMES},
        layer_losses={key: float(value) for key, value in measured.items() if ":" in key},
        content_image_style_loss=float(targets.content_style),
        snapshots=snapshots_kept,
        options=options,
        seconds=seconds,
        model=loaded.name,
        content_label=label(content, "content"),
        style_labels=[label(source, f"style {i}") for i, source in enumerate(style_sources, 1)],
    )
