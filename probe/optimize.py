"""The render loop: gradient ascent on images to maximize an objective (activation maximization).

::

    import probe
    from probe import objectives as O
    m = probe.load_model("digits")
    result = probe.maximize(m, O.channel("conv2", range(50)))     # 50 images, one batch
    result.images.shape, result.scores.shape                     # (50, 1, 28, 28), (50,)
    result.save("runs/conv2")                                    # the gallery the CLI writes

    classes = probe.maximize(m, O.class_logit(range(10)) - 0.3 * O.l1())      # digits that look like digits

Two presets set the parametrization, the transforms and the learning rate
together (any of them can still be given explicitly):

- ``"robust"`` (default): Fourier parametrization with ``1/f`` scaling, colour
  decorrelation for RGB, and random pad/jitter/scale/rotate scaled to the image
  size (:func:`probe.transforms.transforms_for_size`). Smooth, readable images.
- ``"plain"``: the textbook method: gradient ascent on the pixels themselves,
  clipped to ``[0, 1]`` after each step, no transforms. The baseline.

The model is never changed: it runs under :func:`probe.hooks.evaluating`,
gradients are taken with ``torch.autograd.grad`` w.r.t. the image parameters
only, and :func:`probe.hooks.capture` runs each forward pass only up to the
deepest layer the objective needs and leaves no hook behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe import __version__
from probe import param as P
from probe import transforms as T
from probe.chunkstore import ChunkStore, fingerprint, weights_digest
from probe.checks import check_callables, check_count, check_name_or_callable, check_number, check_seed, check_size
from probe.choices import PRESETS, Preset  # torch-free: the commands' --preset offers them
from probe.errors import (
    ProbeRuntimeError, ProbeUsageError, check_depends_on_image, not_per_image, output_not_a_tensor,
)  # fmt: skip
from probe.forward import ModelInputError, image_grad
from probe.hooks import CALL_SEPARATOR, INPUT, OUTPUT, Recording, capture, evaluating, record, resolve_layers
from probe.images import divergence
from probe.layout import channels_last_layers
from probe.leaves import is_leaf
from probe.memory import (
    FLOAT, STEP_HEADROOM, PassCost, check_results_fit, check_run, check_scaled, fit_batch, held_bytes,
    is_out_of_memory, kept_bytes, optimization_text, probe_size, saved_bytes,
)  # fmt: skip
from probe.models import LoadedModel, as_loaded
from probe.models.forms import why_not_run
from probe.objectives import Context, Objective, as_objective, class_scores, parse_objective
from probe.outputs import read_output
from probe.relu import redirected_relu
from probe.results import GalleryResult
from probe.runtime import progress_every as default_progress_every
from probe.runtime import (
    OUT_OF_MEMORY, FiniteLog, ProgressFn, autocast, check_generator, gradients_on, resolve_precision, with_gradients,
)  # fmt: skip
from probe.streams import ImageStreams, image_key

__all__ = ["Preset", "PRESETS", "OPTIMIZERS", "MaximizeResult", "LayerShape", "maximize", "evaluate", "inspect_layer",
           "batch_coupled", "plan_memory", "pass_cost"]

ParamFactory = Callable[[tuple[int, int, int, int], torch.Generator, torch.device], P.ImageParam]
OptimizerFactory = Callable[[list[torch.Tensor], float], torch.optim.Optimizer]

OPTIMIZERS = ("adam", "sgd")
CPU_BATCH = 64
"""``batch="auto"`` on the CPU: at most this many images per pass (a bigger batch gains nothing on a few cores)."""
CPU_SHARE = 0.5
"""``batch="auto"`` on the CPU plans for this share of the memory the OS says is available: the rest is the
other processes' and the page cache's, and a batch that overflows it swaps instead of failing."""
CUDA_SHARE = 0.8
"""``batch="auto"`` on CUDA plans for this share of the free memory (fragmentation, the kernels' workspaces)."""
COUPLING = 1e-3
"""How far (relative to the layer's largest value) an image's activations may move when another image joins
its pass before the model counts as coupling the images of a batch (:func:`batch_coupled`). Batched kernels
round differently by about 1e-7; batch statistics move them by far more."""


@dataclass
class MaximizeResult(GalleryResult):
    """What :func:`maximize` returns. Tensors live on the CPU.

    Attributes:
        images: ``(N, C, H, W)`` synthesized images in ``[0, 1]``, quantized to
            8 bits (exactly what a PNG of them holds).
        scores: ``(N,)`` the objective of each image, measured on ``images``
            without random transforms (for a channel: its degree of activation).
        history: ``(steps, N)`` the objective at each step, as optimized (with
            the random transforms).
        snapshots: ``{step: (N, C, H, W)}`` images after the requested steps.
        units: the unit each image works for (None when the objective has none).
        terms: ``{term name: (N,)}`` each additive term of the objective on
            ``images``, without its coefficient (e.g. the logit and the L1 norm).
        main: the name in ``terms`` of the main term (the first that is not a
            penalty): its value is what captions show (``a=``, ``logit=``);
            empty when there is none (captions then show ``scores``).
        objective: the objective's description.
        kind: the main term's kind (``"channel"``, ``"neuron"``, ``"class"``, ...).
        layer: the main term's layer (None for pure penalties).
        model: the model's name; ``weights`` describes its weights.
        labels: the model's class names, when known.
        outputs: ``(N, classes)`` logits on ``images`` for class objectives (a dense prediction's averaged over its
            positions, see :func:`probe.objectives.class_scores`), else None.
        settings: steps, lr, optimizer, param, transforms, preset, seed,
            image_size, batch, precision, device: everything to reproduce the run;
            ``diverged``: None, or why the images are not to be trusted
            (:func:`~probe.images.divergence`: NaN, or binary noise from a far too large lr).
        seconds: wall time of the optimization.
        maps: ``{name: (N, 1, H, W)}`` per-image maps the parametrization kept
            (``"transparency"`` for MACO: the accumulated |gradient| of the
            image); empty for the others.
    """

    _report = "probe.reports.maximize"

    images: torch.Tensor
    scores: torch.Tensor
    history: torch.Tensor
    snapshots: dict[int, torch.Tensor]
    units: tuple[int | None, ...]
    terms: dict[str, torch.Tensor]
    main: str
    objective: str
    kind: str
    layer: str | None
    model: str = "model"
    weights: str = ""
    labels: tuple[str, ...] | None = None
    outputs: torch.Tensor | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    maps: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def probabilities(self) -> torch.Tensor | None:
        """``(N,)`` softmax probability of each image's own class (class objectives), else None (also for one
        score per image, a regression's, which has no softmax)."""
        if self.outputs is None or self.outputs.shape[1] < 2 or any(unit is None for unit in self.units):
            return None
        rows = torch.arange(len(self))
        return self.outputs.float().softmax(dim=1)[rows, torch.tensor(self.units)]

    @property
    def predicted(self) -> torch.Tensor | None:
        """``(N,)`` the class the model predicts for each image (class objectives), else None."""
        return None if self.outputs is None else self.outputs.argmax(dim=1)

    def contact_sheet(self, cell: int = 96) -> Any:
        """The captioned grid of :attr:`images` as a PIL image."""
        from probe.reports.maximize import contact_sheet

        return contact_sheet(self, cell=cell)

    def __repr__(self) -> str:
        return (
            f"MaximizeResult({self.objective}, images={tuple(self.images.shape)}, "
            f"mean score={float(self.scores.mean()):.4g}, steps={self.settings.get('steps')})"
        )


def _image_size(size: int | Sequence[int] | None, loaded: LoadedModel) -> tuple[int, int]:
    if size is None:
        return tuple(loaded.preprocess.input_size)  # type: ignore[return-value]
    size = check_size(size)
    return (size, size) if isinstance(size, int) else size


def _transform(
    transforms: Any, preset: Preset, size: tuple[int, int]
) -> tuple[T.Transform | None, list[str]]:
    if transforms is None:
        chosen = T.transforms_for_size(size) if preset.transforms else []
    elif isinstance(transforms, str):
        if transforms == "standard":
            chosen = T.transforms_for_size(size)
        elif transforms == "none":
            chosen = []
        else:
            raise ProbeUsageError(f"unknown transforms {transforms!r}; give 'standard', 'none' or a list of transforms",
                                  param="transforms")
    else:
        chosen = check_callables(transforms, "transforms", "'standard', 'none', a transform (images -> images)")
    if not chosen:
        return None, []
    composed = T.compose(*chosen)
    return composed, [repr(t) for t in composed.transforms]


def _param_factory(param: str | ParamFactory | None, preset: Preset) -> tuple[ParamFactory, str]:
    if param is None or param == preset.param:
        kind, options = preset.param, dict(preset.param_options)
    elif isinstance(param, str):
        kind, options = param, {}
    else:
        factory = check_name_or_callable(param, "param", P.PARAMETRIZATIONS, "a factory(shape, generator, device)")
        return factory, getattr(param, "__name__", type(param).__name__)
    factory = P.parametrization(kind, **options)  # per-image: one generator per image; refuses an unknown kind
    described = kind + "".join(f" {k}={v}" for k, v in options.items())
    return factory, described


def _optimizer(optimizer: str | OptimizerFactory, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    if callable(optimizer):
        return optimizer(params, lr)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ProbeUsageError(f"unknown optimizer {optimizer!r}; optimizers are: {', '.join(OPTIMIZERS)}",
                          param="optimizer")


def _scores(objective: Objective, context: Context) -> torch.Tensor:
    """Evaluate and shape as ``(N,)`` float scores (a 0-d result is shared by every image)."""
    value = objective(context)
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value, device=context.images.device)
    value = value.float()
    if value.dim() == 0:
        return value.expand(context.batch)
    if value.shape != (context.batch,):
        raise ProbeUsageError(
            f"objective {objective.name} returned shape {tuple(value.shape)}; objectives give one score per image "
            f"({context.batch},) or one number"
        )
    return value


def _forward(
    loaded: LoadedModel, images: torch.Tensor, layers: frozenset[str],
    stats: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The activations of ``layers``; ``stats`` = (mean, std) already on the device spares a copy (a sync) per call."""
    if not layers:
        return {}
    normalized = loaded.preprocess.normalize(images) if stats is None else (images - stats[0]) / stats[1]
    acts = capture(loaded.module, normalized, sorted(layers), stop_early=True)
    if OUTPUT in layers and OUTPUT not in acts:  # a dict or dataclass of outputs: no tensor to read
        raise output_not_a_tensor(loaded.name)
    return acts


def _device_stats(loaded: LoadedModel, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalization's ``(1, C, 1, 1)`` mean and std on the model's device, copied once."""
    loaded.preprocess.check_channels(torch.empty(1, channels, 1, 1))
    mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(1, -1, 1, 1).to(loaded.device)
                 for v in (loaded.preprocess.mean, loaded.preprocess.std))  # fmt: skip
    return mean, std


def evaluate(
    model: LoadedModel | nn.Module, objective: Objective | str, images: torch.Tensor, *, index: slice = slice(None)
) -> torch.Tensor:
    """Score ``images`` ``(N, C, H, W)`` in ``[0, 1]`` with ``objective``, without gradients: ``(N,)``.

    The number :func:`maximize` reports; also handy to score real images with
    the same objective (for a multi-unit objective, ``index`` picks which units
    these images stand for, as in the render loop).
    """
    loaded = as_loaded(model, None)
    if isinstance(objective, str):
        objective = parse_objective(objective, loaded, image_size=tuple(images.shape[-2:]))
    objective = as_objective(objective)
    images = images.to(loaded.device)
    with evaluating(loaded.module), torch.no_grad():
        context = Context(_forward(loaded, images, objective.layers), images, index)
        return _scores(objective, context).cpu()


def _chunks(total: int, batch: int | None, group: int) -> list[slice]:
    size = total if batch is None or batch <= 0 else batch
    if group > 1:
        size = max(group, size - size % group)
    return [slice(start, min(total, start + size)) for start in range(0, total, size)]


def _term_names(objective: Objective) -> list[tuple[str, Objective]]:
    named: list[tuple[str, Objective]] = []
    seen: dict[str, int] = {}
    for term in objective.terms:
        leaf = term.objective
        if leaf.kind == "constant":
            continue
        seen[leaf.name] = seen.get(leaf.name, 0) + 1
        name = leaf.name if seen[leaf.name] == 1 else f"{leaf.name}#{seen[leaf.name]}"
        named.append((name, leaf))
    return named


def unmoved_images(final: torch.Tensor, start: torch.Tensor) -> list[int]:
    """Indices of the ``(N, C, H, W)`` ``final`` images equal to their ``start`` (both 8-bit quantized): no
    gradient reached their pixels (a unit dead on its start image, a layer constant for these weights) or the
    learning rate moved no pixel by a level. Their images are the starting noise, not a visualization."""
    same = (final - start.to(final.device)).abs().flatten(1).amax(dim=1) == 0
    return [int(i) for i in same.nonzero().flatten().tolist()]


@with_gradients
def maximize(
    model: LoadedModel | nn.Module,
    objective: Objective | Callable[[Context], torch.Tensor] | str,
    *,
    steps: int = 256,
    lr: float | None = None,
    optimizer: str | OptimizerFactory = "adam",
    param: str | ParamFactory | None = None,
    transforms: Any = None,
    preset: str = "robust",
    image_size: int | Sequence[int] | None = None,
    images: int | None = None,
    batch: int | str | None = None,
    snapshots: Iterable[int] = (),
    progress: ProgressFn | None = None,
    progress_every: int | None = None,
    seed: int = 0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    redirect_relu: int = 0,
    resume: str | Path | None = None,
) -> MaximizeResult:
    """Synthesize images that maximize ``objective`` by gradient ascent on their parametrization.

    Args:
        model: a :class:`~probe.models.LoadedModel` (its normalization is
            applied to the images), or an ``nn.Module`` (wrapped by
            :func:`~probe.models.load_model`: ImageNet statistics for 3 channels).
            Never modified.
        objective: an :class:`~probe.objectives.Objective` (score to maximize);
            a multi-unit objective renders one image per unit. A Lucent-style
            string ``"conv2:7"`` / ``"fc1:3"`` is read by
            :func:`~probe.objectives.parse_objective`.
        steps: optimization steps per image (default 256).
        lr: learning rate (default: the preset's, 0.05; 0.005 for ``param="cppn"``,
            :data:`probe.param.LEARNING_RATES`).
        optimizer: ``"adam"`` (default), ``"sgd"`` (momentum 0.9), or
            ``factory(params, lr) -> torch.optim.Optimizer``.
        param: ``"fft"``, ``"pixel"``, ``"maco"``, ``"cppn"``, ``"laplacian"``
            (:data:`probe.param.PARAMETRIZATIONS`), or ``factory(shape, generator,
            device) -> ImageParam`` such as :func:`probe.param.parametrization`
            (default: the preset's). A factory with ``per_image = True`` (the named
            ones and :func:`~probe.param.parametrization`'s) gets one generator per
            image, so a unit's image does not depend on its batch; any other gets one
            generator for the chunk.
        transforms: None (the preset's), ``"standard"``
            (:func:`~probe.transforms.transforms_for_size`), ``"none"``, a
            transform or a list of them.
        preset: ``"robust"`` (default) or ``"plain"``; see the module docstring.
        image_size: ``H`` or ``(H, W)`` (default: the model's input size).
        images: number of images (default: the objective's unit count, 1 for a
            single-unit objective; give more to render several images of one
            unit, e.g. with :func:`~probe.objectives.diversity`).
        batch: at most this many images per optimization pass (default: all in
            one pass); big layers are rendered in chunks. ``"auto"``: on CUDA the
            largest batch that fits 80% of the free memory, halved and retried on
            out-of-memory; on the CPU 64, or fewer (a power of two) when 64 would
            not fit in half the available memory. Both come from the estimate
            that refuses, before the first step, a run whose kept results and one
            pass cannot fit (:func:`plan_memory`, :mod:`probe.memory`). Images whose scores read each other
            (:func:`~probe.objectives.diversity`'s groups, :func:`~probe.objectives.alignment`)
            stay in one pass; a model that mixes the images of a pass (batch norm
            without running statistics, :func:`batch_coupled`) gets one image per pass
            (``settings["batch_coupled"]``). What the batch changes, and what it does
            not: see ``seed``.
        snapshots: steps after which to keep a copy of the images (e.g. 32, 128).
        progress: ``progress(step, total, {"score": mean})`` every
            ``progress_every`` steps and at the end of each chunk;
            ``total = steps x number of chunks``.
        progress_every: steps between progress calls (default: 1 on the CPU,
            16 on CUDA, where each call waits for the device).
        seed: the images' randomness (default 0). Each image draws its initial
            values and its random transforms from its own stream, keyed by
            ``(seed, layer, unit, copy)``: a unit gets the same start and the same
            transforms alone, in a batch of 512, or in another chunk, and its
            gradient is its own (the loss is the sum of the images' scores; Adam's
            state is per pixel). The same request with the same batch on the same
            machine gives the same bytes. Another batch size runs other kernels
            (oneDNN, BLAS and cuDNN choose their blocking by batch size: on the
            CPU one image alone differs from two, and ResNet-18's four from two),
            which round differently, by about 1e-7 relative per pass, and gradient
            ascent can amplify that: on the digits model at 32 steps one pixel level
            in 22 pixels of 7 images; on the shapes model at 32 steps (48 px, 7
            conv3_1 units, one per pass vs all in one) up to 76 levels in half the
            pixels and 1.4% in score (CPPN 6.4%, Laplacian 0.01%). Thread count
            changes the rounding the same way. Turning oneDNN off makes it exact at
            one thread but not at two, and costs googlenet 29%; passes padded to one
            fixed size are exact but cost the padding (README, "Seeds": the table).
        generator: a ``torch.Generator`` whose ``initial_seed()`` stands for ``seed``.
        device: where to run; None or ``"auto"`` = the model's device.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA) autocast
            for the forward passes; final scores are measured in fp32. ``"auto"``:
            bf16 with channels-last on CUDA, fp32 on the CPU.
        channels_last: run the convolutions in channels-last memory format
            (default False): 1.3x faster for googlenet on CPU, 5% slower
            for VGG19 style; see :func:`~probe.models.frozen_view`.
        redirect_relu: for the first this many steps of each pass, every ReLU
            passes Lucid's redirected gradient (:func:`probe.relu.redirected_relu`),
            so units dead on the initial image still move (default 0: never).
        resume: a folder for the finished chunks (:mod:`probe.chunkstore`; default None: none kept). Each chunk
            is saved there when it is done; a rerun of the same request with the same folder, after a crash or
            a kill, loads those and renders the rest: the result is the uninterrupted run's, bit for bit. A
            rerun with another setting or other weights removes the old chunks and renders everything
            (``settings["resume"]`` says how many chunks were reused and discarded). Remove the folder once the
            result is saved.

    Returns:
        A :class:`MaximizeResult`: images, final scores (on the final 8-bit
        images, without random transforms), per-step history, snapshots.

    Raises:
        ProbeUsageError: unknown layer, unit out of range, bad option.
        ProbeRuntimeError: the objective or its gradient became NaN/inf (lower lr), or the run cannot fit in
            memory (refused before its first step, with the numbers and what to change).
    """
    request = _prepare(model, objective, steps=steps, lr=lr, param=param, transforms=transforms, preset=preset,
                       image_size=image_size, images=images, snapshots=snapshots, progress_every=progress_every,
                       seed=seed, generator=generator, device=device, precision=precision,
                       channels_last=channels_last, redirect_relu=redirect_relu)
    loaded, objective, count, shape = request.loaded, request.objective, request.count, request.shape
    precision, channels_last, base_seed, target = request.precision, request.channels_last, request.seed, loaded.device
    learning_rate, snapshot_steps, factory, transform = request.lr, request.snapshots, request.factory, request.transform
    channels, height, width = shape
    keys, group, coupled, batch_size = _plan(request, batch)
    every = request.every

    def render(index: slice, chunk_steps: int, report: Callable[[int, torch.Tensor], None] | None) -> _Chunk:
        return _render_chunk(
            loaded, objective, index, shape, keys[index], factory, transform, optimizer, learning_rate,
            chunk_steps, snapshot_steps, precision, report, every, redirect_relu,
        )  # fmt: skip

    store = None if resume is None else ChunkStore(resume, fingerprint({
        "weights": weights_digest(loaded.module), "model": loaded.name, "objective": objective.name,
        "keys": keys, "group": objective.group, "steps": steps, "lr": learning_rate,
        "optimizer": optimizer if isinstance(optimizer, str) else repr(optimizer), "param": request.param_name,
        "transforms": request.transform_names, "shape": shape, "precision": precision, "channels_last": channels_last,
        "redirect_relu": redirect_relu, "snapshots": snapshot_steps, "device": target.type,
        "normalize": [list(map(float, loaded.preprocess.mean)), list(map(float, loaded.preprocess.std))],
        "versions": [__version__, torch.__version__],
    }))  # fmt: skip
    history = torch.zeros(steps, count)
    snaps = {s: torch.zeros(count, channels, height, width) for s in snapshot_steps}
    final = torch.zeros(count, channels, height, width)
    start = torch.zeros(count, channels, height, width)
    maps: dict[str, torch.Tensor] = {}  # per-image maps a parametrization keeps (MACO's transparency)
    param_record: dict[str, Any] = {}
    done: list[slice] = []
    started = time.perf_counter()
    with evaluating(loaded.module):
        pending = _chunks(count, batch_size, group)
        while pending:
            index = pending.pop(0)
            offset = len(done) * steps
            total_steps = steps * (len(done) + 1 + len(pending))

            def report(step: int, scores: torch.Tensor, offset: int = offset, total: int = total_steps) -> None:
                if progress is not None:
                    with kept_draws(target):  # between two steps: what it draws is not the model's next draws
                        progress(offset + step, total, {"score": float(scores.mean())})

            try:
                chunk = _Chunk.from_saved(store.load(index)) if store is not None else None
                if chunk is None:
                    with model_draws(keys[index.start], target):
                        chunk = render(index, steps, report if progress is not None else None)
                    if store is not None:
                        store.save(index, chunk.as_saved())
            except (RuntimeError, torch.OutOfMemoryError) as error:  # OOM: the same images in smaller chunks
                if batch != "auto" or not is_out_of_memory(error):
                    raise
                halves = _split(index, group)
                if not halves:
                    raise ProbeRuntimeError(f"out of memory with {index.stop - index.start} image(s) per pass; "
                                            f"{OUT_OF_MEMORY}") from None
                pending[:0] = halves
                chunk = None
            if chunk is None:  # outside the except block: the failed pass's tensors are released by now
                _release(target)
                continue
            done.append(index)
            history[:, index] = chunk.history
            final[index] = chunk.final
            start[index] = chunk.start
            for step, images_at in chunk.snapshots.items():
                snaps[step][index] = images_at
            for name, value in chunk.maps.items():
                maps.setdefault(name, torch.zeros(count, *value.shape[1:]))[index] = value
            param_record.update(chunk.options)
    chunks = done
    seconds = time.perf_counter() - started
    with model_draws(base_seed, target):
        scores_final, terms, outputs = _measure(loaded, objective, final, chunks)
    settings = {
        "steps": steps, "lr": learning_rate, "optimizer": optimizer if isinstance(optimizer, str) else "custom",
        "param": request.param_name, "transforms": request.transform_names, "preset": preset, "seed": seed,
        "image_size": [height, width], "images": count, "batch": batch_size, "precision": precision,
        "channels_last": channels_last, "device": str(target),
        "diverged": divergence(final, scores_final, start=start),  # None, or why the result is not to be trusted
    }  # fmt: skip
    unmoved = unmoved_images(final, start)
    if unmoved:
        settings["unmoved"] = unmoved
    if store is not None:
        settings["resume"] = {"folder": str(store.folder), "reused": store.loaded, "discarded": store.discarded}
        if store.failed is not None:
            settings["resume"]["failed"] = store.failed  # the render went on without keeping its chunks
    if coupled:
        settings["batch_coupled"] = True  # one pass per image (group): see batch_coupled
    if redirect_relu:
        settings["redirect_relu"] = redirect_relu
    if param_record:
        settings["param_options"] = param_record
    main = objective.main
    return MaximizeResult(
        images=final, scores=scores_final, history=history, snapshots=snaps, units=_image_units(objective, count),
        terms=terms,
        main=next((name for name, leaf in _term_names(objective) if leaf is main), ""), objective=objective.name,
        kind=main.kind, layer=main.layer, model=loaded.name, weights=loaded.weights, labels=loaded.labels,
        outputs=outputs, settings=settings, seconds=seconds, maps=maps,
    )  # fmt: skip


def _image_units(objective: Objective, count: int) -> tuple[int | None, ...]:
    """The unit each of the ``count`` images works for: the objective's own, one per image, or (a single-unit
    objective rendered ``images=count`` times) its first unit for every image."""
    units = objective.image_units()
    return units if len(units) == count else units[:1] * count


def _image_keys(objective: Objective, count: int, seed: int) -> list[int]:
    """One random-stream key per image: ``(seed, layer, unit, copy)``, copy counting repeats of a unit."""
    layer = objective.main.layer
    seen: dict[int | None, int] = {}
    keys = []
    for unit in _image_units(objective, count):
        copy = seen.get(unit, 0)
        seen[unit] = copy + 1
        keys.append(image_key(seed, layer, unit, copy))
    return keys


@dataclass
class _Chunk:
    """One chunk's render, on the CPU: ``final`` ``(n, C, H, W)``, ``history`` ``(steps, n)``, snapshots."""

    final: torch.Tensor
    history: torch.Tensor
    snapshots: dict[int, torch.Tensor]
    maps: dict[str, torch.Tensor]
    """Per-image maps the parametrization kept (``image.maps()``: MACO's transparency), ``(n, ...)``."""
    options: dict[str, Any]
    """The parametrization's JSON-safe options, for the manifest."""
    start: torch.Tensor
    """The images before the first step, 8-bit ``(n, C, H, W)``: a start image (``init``) that is already
    black and white is not mistaken for divergence (:func:`~probe.images.divergence`)."""

    def as_saved(self) -> dict[str, Any]:
        """The chunk as :class:`~probe.chunkstore.ChunkStore` saves it (tensors, strings and numbers)."""
        return {"final": self.final, "history": self.history, "start": self.start, "maps": self.maps,
                "snapshots": {str(step): value for step, value in self.snapshots.items()}, "options": self.options}

    @classmethod
    def from_saved(cls, saved: dict[str, Any] | None) -> _Chunk | None:
        """The chunk :meth:`as_saved` gave (None for None)."""
        if saved is None:
            return None
        return cls(saved["final"], saved["history"], {int(k): v for k, v in saved["snapshots"].items()},
                   saved["maps"], saved["options"], saved["start"])


def _pass(
    loaded: LoadedModel, objective: Objective, factory: ParamFactory, transform: T.Transform | None, precision: str,
    keys: list[int], shape: tuple[int, int, int], index: slice,
) -> tuple[P.ImageParam, Callable[[bool], torch.Tensor]]:
    """Set up one optimization pass of ``len(keys)`` images: ``(image, scores)``.

    ``image`` is the pass's parametrization of ``(n, C, H, W)`` images, drawn from the images' own streams
    (one generator per image for a ``per_image`` factory, else one for the pass); ``scores(redirect)`` runs
    one step's forward pass and returns the ``(n,)`` scores it ascends: the images through ``transform``
    (drawing from the same streams), the model up to the deepest layer ``objective`` reads (hooks removed
    after), under ``precision``'s autocast, with every ReLU redirected when ``redirect``
    (:func:`~probe.relu.redirected_relu`). ``index`` says which of the objective's units these images are.
    :func:`_render_chunk` steps it and :func:`pass_cost` measures it: the measure is of the step itself.
    """
    device = loaded.device
    streams = ImageStreams(keys, device)
    generators = streams.generators() if getattr(factory, "per_image", False) else streams.generator
    image = factory((len(keys), *shape), generators, device)  # type: ignore[arg-type]
    stats = _device_stats(loaded, shape[0])

    def scores(redirect: bool) -> torch.Tensor:
        current = image()
        shown = transform(current, streams) if transform is not None else current
        with autocast(device, precision), redirected_relu(redirect):
            acts = _forward(loaded, shown, objective.layers, stats)
        return _scores(objective, Context(acts, current, index))

    return image, scores


def _render_chunk(
    loaded: LoadedModel,
    objective: Objective,
    index: slice,
    shape: tuple[int, int, int],
    keys: list[int],
    factory: ParamFactory,
    transform: T.Transform | None,
    optimizer: str | OptimizerFactory,
    lr: float,
    steps: int,
    snapshot_steps: list[int],
    precision: str,
    report: Callable[[int, torch.Tensor], None] | None,
    every: int,
    redirect_relu: int = 0,
) -> _Chunk:
    """Optimize the images ``index`` of the request for ``steps`` steps; no host sync inside the step loop.

    Scores, NaN checks and snapshots stay on the device and come back once at
    the end; ``report(step, scores)`` runs every ``every`` steps and at the last
    (it reads the scores: a sync), only when given. For the first
    ``redirect_relu`` steps ReLUs pass gradient to dead units (:func:`~probe.relu.redirected_relu`).
    """
    target = loaded.device
    image, step_scores = _pass(loaded, objective, factory, transform, precision, keys, shape, index)
    optim = _optimizer(optimizer, image.params, lr)
    with torch.no_grad():
        start = _quantize(image()).cpu()
    history = torch.zeros(steps, len(keys), device=target)
    checks = FiniteLog(steps, ("the objective", "the gradient"), target)
    snaps: dict[int, torch.Tensor] = {}
    for step in range(1, steps + 1):
        scores = step_scores(step <= redirect_relu)
        checks.note(step, 0, scores)
        check_depends_on_image(scores, objective.layers)
        grads = image_grad(-scores.sum(), image.params, allow_unused=True)
        optim.zero_grad(set_to_none=True)
        for tensor, grad in zip(image.params, grads):
            if grad is not None:
                checks.note(step, 1, grad)
                tensor.grad = grad
        optim.step()
        image.constrain()
        history[step - 1] = scores.detach()
        if step in snapshot_steps:
            with torch.no_grad():
                snaps[step] = _quantize(image())
        if report is not None and (step % every == 0 or step == steps):
            checks.check(step)
            report(step, scores.detach())
    checks.check()
    with torch.no_grad():
        final = _quantize(image()).cpu()
    keep = getattr(image, "maps", None)
    maps = {name: value.float().cpu() for name, value in keep().items()} if callable(keep) else {}
    options = {k: v for k, v in image.options.items() if isinstance(v, (str, int, float, bool)) or v is None}
    return _Chunk(final, history.cpu(), {step: value.cpu() for step, value in snaps.items()}, maps, options, start)


@contextmanager
def model_draws(key: int, device: torch.device) -> Iterator[None]:
    """For the block, torch's global generators (the CPU's, and ``device``'s on CUDA) seeded from ``key``,
    then given back as they were.

    For a model that draws random numbers itself in eval mode (noise layers, dropout called with
    ``training=True``): its draws follow the request's seed, chunk by chunk (each chunk seeded by its first
    image's key, so a resumed run's chunks draw what they drew uninterrupted), and the caller's own global
    generators are left where they were. Everything of cnn-probe's own draws from per-image streams anyway.
    """
    with kept_draws(device):
        torch.random.default_generator.manual_seed(key & (2**63 - 1))
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(key & (2**63 - 1))
        yield


def kept_draws(device: torch.device) -> AbstractContextManager[None]:
    """For the block, torch's global generators (the CPU's, and ``device``'s on CUDA) as they are, given back
    as they were after: a caller's code run between a model's draws (a progress callback) cannot move them."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type="cuda")


def batch_coupled(loaded: LoadedModel, layers: Iterable[str], shape: tuple[int, int, int]) -> bool:
    """Whether an image's activations of ``layers`` depend on the other images of its pass, in the model's
    present mode: batch norm without running statistics (``track_running_stats=False``), or any other
    normalization or mixing over the batch. Then :func:`maximize` renders one image (one group) per pass,
    so that a unit's image is its own, whatever the batch.

    Two seeded random ``shape`` ``(C, H, W)`` images run in one pass and each alone (no gradients, up to
    the deepest of ``layers``); they count as coupled when a value moves by more than :data:`COUPLING` of
    the layer's largest (batched kernels' rounding is ~1e-7). A model whose pass of the same images gives
    other values under another seed (it draws random numbers itself) is not judged: False.
    """
    layers = frozenset(layers)
    if not layers:
        return False
    images = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)).to(loaded.device)
    with torch.no_grad():
        with model_draws(0, loaded.device):
            pair = _forward(loaded, images, layers)
        with model_draws(1, loaded.device):
            again = _forward(loaded, images, layers)
        if any(not torch.equal(value, again.get(name)) for name, value in pair.items() if name in again):
            return False  # the model draws random numbers itself: a second image cannot be told from a new draw
        try:
            alone = [_forward(loaded, images[i:i + 1], layers) for i in range(2)]
        except (RuntimeError, ValueError):  # batch norm over a 1x1 map refuses a batch of one: it cannot run alone
            return False
    for name, value in pair.items():
        for i, single in enumerate(alone):
            if name not in single or single[name].shape[1:] != value.shape[1:]:
                return True  # the image's own output changed its shape with the batch: coupled
            scale = float(value.detach().float().abs().max()) or 1.0
            if float((value[i].float() - single[name][0].float()).abs().max()) > COUPLING * scale:
                return True
    return False


def _check_batch(batch: int | str | None) -> int | str | None:
    """``batch`` checked: None, ``"auto"`` or a count (the error names ``batch``)."""
    if batch == "auto" or batch is None:
        return batch
    if isinstance(batch, str):
        raise ProbeUsageError(f"batch must be a number of images or 'auto'; got {batch!r}", param="batch")
    return check_count(batch, "batch")


def _fit(request: _Request, keys: list[int], batch: int | str | None, group: int, coupled: bool) -> int | None:
    """The images per pass (None: all in one), refused before the first step when a pass cannot fit.

    A coupled model gets one group per pass. ``"auto"`` takes the most images whose pass fits
    (:func:`~probe.memory.fit_batch`): on the CPU at most :data:`CPU_BATCH`, a power of two times ``group``,
    in :data:`CPU_SHARE` of the available memory; on CUDA up to every image, in 0.8 of the free memory.
    Both, and the refusal of a run that cannot fit (:func:`~probe.memory.check_run`), use one measured
    :class:`~probe.memory.PassCost` (:func:`pass_cost`).
    """
    count, device = request.count, request.loaded.device
    size = group if coupled else batch
    cost = pass_cost(request, keys[:group])
    if size == "auto":
        cpu = device.type == "cpu"
        most = min(count, max(group, CPU_BATCH - CPU_BATCH % group)) if cpu else count
        size = fit_batch(request.kept(), cost, device, most, group, CPU_SHARE if cpu else CUDA_SHARE,
                         powers_of_two=cpu)
    per_pass = max(index.stop - index.start for index in _chunks(count, size, group))  # type: ignore[arg-type]
    check_run(request.kept(), cost, per_pass, device, request.describe(per_pass), request.advice(per_pass > group))
    return size  # type: ignore[return-value]


def pass_cost(request: _Request, keys: list[int]) -> PassCost:
    """The working set of one pass (:class:`~probe.memory.PassCost`), measured on ``len(keys)`` images.

    The forward pass of a pass's first step, set up as the render sets it up (:func:`_pass`: the request's
    parametrization, transforms, objective and precision, its ReLUs redirected when the run redirects them)
    but not stepped, counts the bytes autograd saves (:func:`~probe.memory.saved_bytes`; the model's weights and
    buffers left out: they are held whatever the pass), times :data:`~probe.memory.STEP_HEADROOM`, plus the
    image parameters four times (value, gradient, Adam's two moments), plus what the pass keeps per image
    on the device (a score per step, the snapshots). An image larger than four times the model's input area
    is measured at about that area and scaled by the areas' ratio, so that measuring never allocates what
    the run would; where the model refuses that smaller size, the activations are not counted.

    Raises:
        ProbeRuntimeError: the measuring pass itself ran out of memory (what to change).
    """
    loaded, (channels, height, width) = request.loaded, request.shape
    area = height * width
    probe_size = request.probe_size()
    scale = area / (probe_size[0] * probe_size[1])
    transform = request.transform if probe_size == (height, width) else \
        _transform(request.transforms, request.preset, probe_size)[0]
    held = frozenset(t.data_ptr() for t in (*loaded.module.parameters(), *loaded.module.buffers()))
    n = len(keys)
    params: list[int] = []

    def forward() -> torch.Tensor:
        image, scores = _pass(loaded, request.objective, request.factory, transform, request.precision, keys,
                              (channels, *probe_size), slice(0, n))
        params.append(sum(t.numel() * t.element_size() for t in image.params))
        return scores(request.redirect_relu > 0)  # a pass's first step is its redirected one, if any

    try:
        activations = STEP_HEADROOM * saved_bytes(forward, exclude=held)
    except ProbeUsageError:
        if probe_size == (height, width):
            raise  # the run's own size: the run would say the same
        activations, params[:] = 0.0, [FLOAT * channels * probe_size[0] * probe_size[1] * n]
    except (RuntimeError, torch.OutOfMemoryError) as error:
        if not is_out_of_memory(error):
            raise
        raise ProbeRuntimeError(f"out of memory with {n} image(s) per pass (measuring one pass of "
                                f"{height}x{width}); {OUT_OF_MEMORY}") from None
    finally:
        _release(loaded.device)
    kept_on_device = FLOAT * (request.steps + channels * area * len(request.snapshots)) + 2 * request.steps
    return PassCost(scale * (activations + 4 * sum(params)) / n + kept_on_device)


@dataclass
class _Request:
    """A maximize request, checked: what :func:`maximize` renders and :func:`plan_memory` sizes."""

    loaded: LoadedModel
    objective: Objective
    preset: Preset
    steps: int
    lr: float
    shape: tuple[int, int, int]
    count: int
    snapshots: list[int]
    transforms: Any
    transform: T.Transform | None
    transform_names: list[str]
    factory: ParamFactory
    param_name: str
    seed: int
    precision: str
    channels_last: bool
    every: int
    redirect_relu: int
    """Steps with redirected ReLUs at the start of each pass (0: none)."""
    what: str | None = None
    """Replaces :meth:`describe`'s text (a caller's own words: "a chunk of 16 images ...")."""
    instead: str | None = None
    """Replaces :meth:`advice`'s text (a caller's own options)."""

    def probe_size(self) -> tuple[int, int]:
        """``(H, W)`` of the small passes that learn about the model before the run (its memory, whether it
        mixes a batch): the run's size, or, for an image larger than four times the model's input area,
        that area at the image's aspect ratio: learning never allocates what the run would."""
        return probe_size(self.shape[1:], self.loaded.preprocess.input_size)

    def kept(self) -> float:
        """:func:`~probe.memory.kept_bytes` of the request's results."""
        channels, height, width = self.shape
        return kept_bytes(self.count, channels * height * width, self.steps, len(self.snapshots))

    def describe(self, per_pass: int | None = None) -> str:
        """The run, for a memory message (:func:`~probe.memory.optimization_text`)."""
        if self.what is not None:
            return self.what
        return optimization_text(self.count, self.shape[1:], self.steps, per_pass)

    def advice(self, batch: bool = False) -> str:
        """What to change, naming the CLI options and maximize's arguments."""
        if self.instead is not None:
            return self.instead
        fewer = "a smaller --batch (batch=), " if batch else ""
        return (f"give {fewer}a smaller --size (image_size=), fewer images (--units, --per-unit; images=), "
                "fewer --steps or --snapshots")


def _prepare(
    model: LoadedModel | nn.Module, objective: Objective | Callable[[Context], torch.Tensor] | str, *, steps: int,
    lr: float | None, param: str | ParamFactory | None, transforms: Any, preset: str,
    image_size: int | Sequence[int] | None, images: int | None, snapshots: Iterable[int],
    progress_every: int | None, seed: int, generator: torch.Generator | None, device: str | torch.device | None,
    precision: str, channels_last: bool, redirect_relu: int, what: str | None = None, advice: str | None = None,
) -> _Request:
    """Check :func:`maximize`'s arguments (each error naming its argument) and resolve the defaults."""
    loaded = as_loaded(model, device)
    precision, channels_last = resolve_precision(precision, loaded.device, channels_last)
    loaded = loaded.frozen(channels_last)  # no weight gradients computed: ~10-20% of each step
    if isinstance(objective, str):
        objective = parse_objective(objective, loaded, image_size=image_size)
    objective = as_objective(objective)
    if preset not in PRESETS:
        raise ProbeUsageError(f"unknown preset {preset!r}; presets are: {', '.join(PRESETS)}", param="preset")
    chosen = PRESETS[preset]
    check_count(steps, "steps")
    check_count(redirect_relu, "redirect_relu", 0)
    if progress_every is not None:
        check_count(progress_every, "progress_every")
    if generator is None:
        check_seed(seed)
    default_lr = P.LEARNING_RATES.get(param, chosen.lr) if isinstance(param, str) else chosen.lr
    learning_rate = default_lr if lr is None else check_number(lr, "lr", 0, above=True)
    if objective.layers:
        resolve_layers(loaded.module, objective.layers)
    height, width = _image_size(image_size, loaded)
    count = objective.batch
    if images is not None:
        check_count(images, "images")
        if count > 1 and images != count:
            raise ProbeUsageError(f"the objective addresses {count} units, so it renders {count} images, not {images}",
                                  param="images")
        count = int(images)
    if isinstance(snapshots, (str, bytes)) or not isinstance(snapshots, Iterable):
        raise ProbeUsageError(f"snapshots must be a list of steps (e.g. [32, 128]); got {snapshots!r}", param="snapshots")
    snapshot_steps = sorted({check_count(s, "snapshots", 1, steps) for s in snapshots})
    transform, transform_names = _transform(transforms, chosen, (height, width))
    factory, param_name = _param_factory(param, chosen)
    base_seed = seed if check_generator(generator) is None else generator.initial_seed()
    with autocast(loaded.device, precision):  # validates the precision before any work
        pass
    every = default_progress_every(loaded.device) if progress_every is None else max(1, int(progress_every))
    return _Request(loaded, objective, chosen, steps, learning_rate, (loaded.preprocess.channels, height, width),
                    count, snapshot_steps, transforms, transform, transform_names, factory, param_name, base_seed,
                    precision, channels_last, every, redirect_relu, what, advice)


def plan_memory(
    model: LoadedModel | nn.Module, objective: Objective | Callable[[Context], torch.Tensor] | str, *,
    steps: int = 256, preset: str = "robust", param: str | ParamFactory | None = None, transforms: Any = None,
    image_size: int | Sequence[int] | None = None, images: int | None = None, batch: int | str | None = None,
    snapshots: Iterable[int] = (), seed: int = 0, device: str | torch.device | None = None,
    precision: str = "fp32", channels_last: bool = False, what: str | None = None, advice: str | None = None,
) -> int | None:
    """Check, without rendering, that :func:`maximize` with these arguments fits in memory; return its batch.

    The same estimate :func:`maximize` makes before its first step (its kept results, one pass's working
    set: :mod:`probe.memory`), for callers that must know before they start other work (the atlas checks
    its largest chunk before the dataset pass). The arguments mean what they mean for :func:`maximize`;
    ``what`` and ``advice``, when given, replace the message's description of the run and what to change
    (the caller's own options).

    Returns:
        The images per pass (None: all in one; ``batch="auto"`` resolved).

    Raises:
        ProbeRuntimeError: the run cannot fit (the numbers, and what to change).
        ProbeUsageError: a bad argument, as :func:`maximize` would raise it.
    """
    request = _prepare(model, objective, steps=steps, lr=None, param=param, transforms=transforms, preset=preset,
                       image_size=image_size, images=images, snapshots=snapshots, progress_every=None, seed=seed,
                       generator=None, device=device, precision=precision, channels_last=channels_last,
                       redirect_relu=0, what=what, advice=advice)
    return _plan(request, batch)[3]


def _plan(request: _Request, batch: int | str | None) -> tuple[list[int], int, bool, int | None]:
    """``(keys, group, coupled, images per pass)``: the request's streams, and its passes sized and checked.

    The kept results are checked before the keys are listed (a count of 2**31 is refused, not listed); then
    whether the model mixes a pass's images (:func:`batch_coupled`, at the request's probe size) and the
    pass (:func:`_fit`)."""
    batch = _check_batch(batch)
    loaded, objective, count = request.loaded, request.objective, request.count
    check_results_fit(count, request.shape, request.steps, len(request.snapshots), loaded.device, request.describe(),
                      request.advice())
    keys = _image_keys(objective, count, request.seed)
    group = count if objective.group is None else objective.group  # images that read each other: one pass
    with evaluating(loaded.module), model_draws(request.seed, loaded.device):
        coupled = count > group and batch_coupled(loaded, objective.layers, (request.shape[0], *request.probe_size()))
        return keys, group, coupled, _fit(request, keys, batch, group, coupled)


def _split(index: slice, group: int) -> list[slice] | None:
    """Two halves of ``index`` made of whole groups, or None when it cannot be split."""
    size = index.stop - index.start
    half = (size // 2) - (size // 2) % max(1, group)
    if half < max(1, group) or half >= size:
        return None
    return [slice(index.start, index.start + half), slice(index.start + half, index.stop)]


def _release(device: torch.device) -> None:
    """Give cached blocks back before measuring or retrying after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _quantize(images: torch.Tensor) -> torch.Tensor:
    """Round to 8 bits, as a PNG stores the image: the reported scores are those of the saved files."""
    return (images.float().clamp(0, 1) * 255).round() / 255


def _measure(
    loaded: LoadedModel, objective: Objective, images: torch.Tensor, chunks: list[slice]
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
    """Final scores, each term's value, and class logits, on the final images without transforms (fp32)."""
    named = _term_names(objective)
    scores = torch.zeros(images.shape[0])
    terms = {name: torch.zeros(images.shape[0]) for name, _ in named}
    main = objective.main
    outputs: list[torch.Tensor] = []
    with evaluating(loaded.module), torch.no_grad():
        for index in chunks:
            batch = images[index].to(loaded.device)
            context = Context(_forward(loaded, batch, objective.layers), batch, index)
            scores[index] = _scores(objective, context).cpu()
            for name, leaf in named:
                terms[name][index] = _scores(leaf, context).cpu()
            if main.kind == "class" and main.layer in context.activations:
                outputs.append(class_scores(context(main.layer).float()).cpu())
    return scores, terms, torch.cat(outputs) if outputs else None


@dataclass(frozen=True)
class LayerShape:
    """What :func:`inspect_layer` finds out about a layer.

    Attributes:
        name: the layer's name.
        shape: its output shape without the batch dimension, e.g. ``(50, 11, 11)``; channels first, also
            for a channels-last block (Swin's ``(H, W, C)`` reads ``(C, H, W)``, see :mod:`probe.layout`).
        units: ``shape[0]``: channels of a convolution, features of a linear layer.
        is_output: whether the layer's output IS the model's output (the logits).
        output_layer: the name of the module whose output is the model's output
            (``"fc2"``; the first leaf module that gives it), or ``"output"``
            when no module gives it as it is.
        output_kind: for ``name == "output"``, what the output is (:func:`probe.outputs.read_output`, read with
            its autograd graph: ``"logits"``, ``"sigmoid"``, ``"dense"``, ``"image"``, ...); ``""`` for a layer.
        assumed: for ``name == "output"``, what the reading assumed where the shape could not tell
            (:attr:`probe.outputs.Output.assumed`); ``""`` otherwise.
    """

    name: str
    shape: tuple[int, ...]
    units: int
    is_output: bool
    output_layer: str
    output_kind: str = ""
    assumed: str = ""


def _shape_pass(loaded: LoadedModel, names: list[str], layer: str, size: tuple[int, int],
                reading: str = "auto") -> tuple[Recording, torch.Tensor, str, str]:
    """Two blank ``(2, C, *size)`` images through the model, every module and the output recorded: the
    recording, the images, and for ``layer == "output"`` the output's kind and what its reading assumed (see
    :class:`LayerShape`; ``reading``: what the user says it is, :data:`probe.choices.OUTPUT_READINGS`). A model
    that refuses the size after ``layer`` ran (a fixed-size head) is fine.

    The output is read with its autograd graph, as a run reads it: without one, a model returning
    ``(features, logits)`` was read by its features and a sigmoid picture (an autoencoder's) by its shape
    alone, and a class objective maximized a feature or a colour plane as a "logit"."""
    graph = layer == OUTPUT
    kind = assumed = ""
    with evaluating(loaded.module), gradients_on() if graph else torch.no_grad(), \
            record(loaded.module, names + [OUTPUT]) as acts:
        blank = torch.full((2, loaded.preprocess.channels, *size), 0.5, device=loaded.device)  # 2: see the batch
        try:
            returned = loaded(blank.requires_grad_(graph))
            if graph:
                read = read_output(returned, blank.shape[0], loaded.module, values=False, image=tuple(blank.shape),
                                   reading=reading)
                kind, assumed = read.kind, read.assumed
            del returned  # the graph
        except ModelInputError:  # a head of fixed size (a Linear after a flatten) refusing this size, after `layer`:
            if layer in (INPUT, OUTPUT) or layer not in acts:  # the layer is known; the output is not this layer's
                raise
    return acts, blank.detach(), kind, assumed


def inspect_layer(model: LoadedModel | nn.Module, layer: str, image_size: int | Sequence[int] | None = None, *,
                  output_param: str = "layer", advice: str = "give a smaller --size (image_size=)",
                  reading: str = "auto") -> LayerShape:
    """Run one blank image through the model to learn ``layer``'s shape and whether it gives the output.

    Args:
        model: the model (not changed; no hook is left).
        layer: a dotted layer name, or ``"output"``.
        image_size: ``H`` or ``(H, W)``; default the model's input size.
        output_param: what asked for ``"output"``, for the refusal of an output that holds no prediction
            (:func:`~probe.errors.output_not_a_tensor`): ``"layer"`` (default; ``--layer output``) or
            ``"objective"`` (a class objective).
        advice: what to change, for the refusal of a pass that cannot fit (default ``"give a smaller --size
            (image_size=)"``; a caller names its own options).
        reading: for ``layer == "output"``, what the user says the output is (default ``"auto"``: its shape and
            last operation tell; :data:`probe.choices.OUTPUT_READINGS`).

    A model that fails after ``layer`` on this size (a fixed-size ``Linear`` head given a larger image) is
    fine: a run on ``layer`` stops the forward pass there, so only ``is_output`` is False.

    Raises:
        ProbeUsageError: unknown layer (with the closest name), or a layer that
            does not run in a forward pass, gives no tensor, or has no batch dimension.
        ModelInputError: the model refused the size before computing ``layer``.
        ProbeRuntimeError: the pass cannot fit in the free memory, estimated before it runs from the same pass
            at a small size (:func:`~probe.memory.check_scaled`), for an image larger than four times the
            model's input area.
    """
    loaded = as_loaded(model, None)
    resolve_layers(loaded.module, [layer])
    height, width = _image_size(image_size, loaded)
    names = [name for name, _ in loaded.module.named_modules() if name]

    def held(size: tuple[int, int]) -> int:  # what the pass below holds at a small size
        acts, blank, _, _ = _shape_pass(loaded, names, layer, size, reading)
        return held_bytes(blank, dict(acts))

    check_scaled(held, (height, width), loaded.preprocess.input_size, loaded.device,
                 f"a {height}x{width} pass of {loaded.name} that learns the shape of {layer!r}", advice)  # before it runs
    acts, blank, kind, assumed = _shape_pass(loaded, names, layer, (height, width), reading)
    channels_last = channels_last_layers(loaded.module, blank)  # a pass that fails keeps what it found
    if layer == INPUT:
        raise ProbeUsageError("'input' is the image itself; name a layer of the model", param="layer")
    if layer == OUTPUT and layer not in acts:  # named as a layer (--layer output, --target output:0)
        raise output_not_a_tensor(loaded.name, param=output_param)
    if layer not in acts and acts.calls.get(layer, 0) <= 1:  # a module that runs twice: acts[layer] names its calls
        raise ProbeUsageError(f"layer {layer!r} does not run in a forward pass of {loaded.name} in eval mode: "
                              f"{why_not_run(loaded.module, layer)}", param="layer")
    output = acts.get(OUTPUT)

    def same(a: torch.Tensor, b: torch.Tensor | None) -> bool:
        return b is not None and a.shape == b.shape and a.data_ptr() == b.data_ptr()

    producers = [name for name in names if name in acts and same(acts[name], output)]
    modules = dict(loaded.module.named_modules())
    leaves = [name for name in producers if is_leaf(modules[name])]
    output_layer = (leaves or producers or [OUTPUT])[0]  # the first leaf: fc, not an identity after it
    value = acts[layer]
    if value.dim() == 0 or value.shape[0] != blank.shape[0]:
        raise not_per_image(layer, tuple(value.shape), blank.shape[0], "a unit")
    is_output = layer == OUTPUT or same(value, output)
    if layer.split(CALL_SEPARATOR)[0] in channels_last and value.dim() > 2:
        value = value.movedim(-1, 1)  # (N, H, W, C) blocks: channel k is feature k of the last dim, see probe.layout
    return LayerShape(layer, tuple(value.shape[1:]), int(value.shape[1]) if value.dim() > 1 else 1, is_output,
                      output_layer, kind, assumed)
