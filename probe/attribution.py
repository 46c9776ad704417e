"""Which pixels drove a prediction: captum's attribution methods behind one call.

::

    a = probe.attribute("digits", "digits:3", method="all")
    a.target, a.target_label          # 3, '3' (the top class unless asked)
    a.attributions["saliency"].shape  # (1, 28, 28): the input's shape
    a.attributions["gradcam"].shape   # (1, 28, 28): Grad-CAM upsampled to the input
    a.heatmaps["integrated-gradients"]  # (28, 28) in [0, 1], ready to draw
    a.save("runs/attr")               # the gallery `probe attribute` writes

Methods (all from captum, run on the image in [0, 1] with the model's own
normalization inside the forward function, so attributions are per input pixel):

- ``saliency``: ``|d score / d x|`` (Simonyan et al. 2014); heatmap: max over colour channels;
- ``integrated-gradients``: path integral from a black image (Sundararajan et al. 2017);
- ``smoothgrad``: saliency averaged over noisy copies of the image (Smilkov et al.
  2017, captum ``NoiseTunnel``), seeded;
- ``guided-backprop``: gradients with negative signals stopped at every ReLU
  (Springenberg et al. 2015). It needs ``nn.ReLU`` modules: in-place ReLUs are
  switched to out-of-place for the pass and restored; a model that applies
  ReLU functionally (``F.relu`` in ``forward``) is refused, since captum would
  silently leave those gradients unmodified;
- ``gradcam``: a convolution layer's maps weighted by their mean gradient, ReLU,
  bilinearly upsampled to the input (Selvaraju et al. 2017; default layer: the last ``Conv2d``).

The score is the target class's logit (the model's output before softmax).
Heatmaps of the pixel methods add ``|attribution|`` over colour channels; each
heatmap is scaled so its 99th percentile is 1 (one hot pixel does not wash out the rest).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from probe.errors import ProbeRuntimeError, ProbeUsageError, unknown_name
from probe.hooks import OUTPUT, evaluating, first_tensor, record, resolve_layers
from probe.inputs import Prediction, model_input, predict
from probe.kernels import conv_layers
from probe.models import LoadedModel, as_loaded
from probe.results import GalleryResult
from probe.runtime import check_finite_output

__all__ = ["METHODS", "Attribution", "attribute", "resolve_target", "relu_check", "normalize_heatmap"]

METHODS: tuple[str, ...] = ("saliency", "integrated-gradients", "smoothgrad", "guided-backprop", "gradcam")
"""Every method, in the order ``method="all"`` shows them."""

_RELU_FUNCTIONS = {torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_}


@dataclass
class Attribution(GalleryResult):
    """Attribution maps of one image for one target class.

    Attributes:
        model: the model's name.
        image: ``(C, H, W)`` the input in [0, 1] as the model saw it.
        target: the class explained; ``target_label`` its name.
        prediction: the model's class probabilities for the image.
        attributions: method -> raw attribution: ``(C, H, W)`` like the input for
            the pixel methods (signed), ``(1, H, W)`` for Grad-CAM (upsampled, >= 0).
        heatmaps: method -> ``(H, W)`` in [0, 1], what the gallery draws.
        layer: the Grad-CAM layer, when Grad-CAM ran.
        skipped: method -> why it did not run (``method="all"`` skips what cannot run).
        options: the settings used (steps, samples, noise, seed, baseline).
    """

    _report = "probe.reports.attribution"

    model: str
    image: torch.Tensor
    target: int
    target_label: str
    prediction: Prediction
    attributions: dict[str, torch.Tensor]
    heatmaps: dict[str, torch.Tensor]
    layer: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        skipped = f", skipped {', '.join(self.skipped)}" if self.skipped else ""
        return (
            f"Attribution({self.model}: target {self.target} ({self.target_label}), prediction {self.prediction}, "
            f"methods {', '.join(self.heatmaps) or 'none'}{skipped}; image {tuple(self.image.shape)})"
        )

class _Normalized(nn.Module):
    """``image in [0, 1] -> logits``: the model with its normalization, as captum's forward function."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__()
        self.net = loaded.module
        self.preprocess = loaded.preprocess

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return first_tensor(self.net(self.preprocess.normalize(images)))


class _ReluCalls(TorchFunctionMode):
    """Counts ReLU calls made outside ``nn.ReLU`` modules during a forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.functional = 0

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        if self.depth == 0 and func in _RELU_FUNCTIONS:
            self.functional += 1
        return func(*args, **(kwargs or {}))


def relu_check(module: nn.Module, inputs: torch.Tensor) -> tuple[int, int]:
    """Count ``nn.ReLU`` modules and functional ReLU calls in one forward pass of ``module(inputs)``.

    Returns:
        ``(modules, functional)``: how many ``nn.ReLU`` modules ran, and how many
        times ``torch.relu`` / ``F.relu`` / ``Tensor.relu`` ran outside one.
    """
    counter = _ReluCalls()
    ran = []

    def enter(m: nn.Module, args: Any) -> None:
        counter.depth += 1
        ran.append(m)

    def leave(m: nn.Module, args: Any, out: Any) -> None:
        counter.depth -= 1

    relus = [m for m in module.modules() if isinstance(m, nn.ReLU)]
    handles = [m.register_forward_pre_hook(enter) for m in relus] + [m.register_forward_hook(leave) for m in relus]
    try:
        with torch.no_grad(), counter:
            module(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return len(ran), counter.functional


@contextlib.contextmanager
def _out_of_place_relus(module: nn.Module) -> Iterator[None]:
    """Switch in-place ``nn.ReLU`` modules to out-of-place for the block, then restore them."""
    changed = [m for m in module.modules() if isinstance(m, nn.ReLU) and m.inplace]
    for m in changed:
        m.inplace = False
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True


def resolve_target(target: int | str | None, prediction: Prediction) -> int:
    """The class index to explain.

    Args:
        target: None or ``"top"`` (the predicted class), an index (int or digit
            string), or a class label (case-insensitive).
        prediction: the model's prediction (gives the labels and their count).

    Raises:
        ProbeUsageError: an index out of range or an unknown label.
    """
    count = len(prediction.labels)
    if target is None or (isinstance(target, str) and target.strip().lower() == "top"):
        return prediction.index
    if isinstance(target, str):
        text = target.strip()
        lowered = [label.lower() for label in prediction.labels]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if not text.lstrip("-").isdigit():
            raise unknown_name("target", text, ["top", *prediction.labels], param="target", limit=20)
        target = int(text)
    if not 0 <= int(target) < count:
        raise ProbeUsageError(f"target {int(target)} is out of range (0 to {count - 1})", param="target")
    return int(target)


def normalize_heatmap(heat: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Scale a non-negative ``(H, W)`` map so its ``percentile`` is 1, clamped to [0, 1] (all zero stays zero)."""
    heat = heat.float()
    scale = torch.quantile(heat.flatten(), percentile / 100.0) if heat.numel() > 1 else heat.max()
    if scale <= 0:
        scale = heat.max()
    if scale <= 0:
        return torch.zeros_like(heat)
    return (heat / scale).clamp(0.0, 1.0)


def _methods(method: str | Iterable[str]) -> list[str]:
    names = list(METHODS) if method == "all" else [method] if isinstance(method, str) else list(method)
    for name in names:
        if name not in METHODS:
            raise unknown_name("method", name, [*METHODS, "all"], param="method")
    if not names:
        raise ProbeUsageError("no attribution method given", param="method")
    return list(dict.fromkeys(names))


def attribute(
    model: str | nn.Module | LoadedModel,
    image: Any,
    method: str | Iterable[str] = "saliency",
    *,
    target: int | str | None = None,
    layer: str | None = None,
    steps: int = 50,
    samples: int = 16,
    noise: float = 0.1,
    baseline: float = 0.0,
    seed: int = 0,
    size: int | Sequence[int] | None = None,
) -> Attribution:
    """Attribute the model's score for ``target`` to the pixels of ``image``.

    Args:
        model: a :class:`LoadedModel`, a spec for :func:`probe.load_model`, or an ``nn.Module``.
        image: one image, as for :func:`probe.feature_maps` (resized to the model's input).
        method: one of :data:`METHODS`, several, or ``"all"`` (default ``"saliency"``).
        target: class to explain: None / ``"top"`` (the prediction), an index or a label.
        layer: Grad-CAM's layer (default: the last ``Conv2d``).
        steps: integrated-gradients steps (default 50).
        samples: smoothgrad noisy samples (default 16).
        noise: smoothgrad noise standard deviation, in image units [0, 1] (default 0.1).
        baseline: integrated-gradients baseline grey level (default 0.0: black).
        seed: smoothgrad's noise seed (default 0); the global RNG is left as it was.
        size: input size ``(H, W)`` or an int; default the model's.

    Returns:
        An :class:`Attribution`.

    Raises:
        ProbeUsageError: unknown method or target, target out of range, a Grad-CAM
            layer without spatial output, guided backprop asked for a model with
            functional ReLUs, a model whose output is not ``(1, K)`` class scores.
    """
    loaded = as_loaded(model)
    methods = _methods(method)
    for name, value, least in (("steps", steps, 1), ("samples", samples, 1)):
        if value < least:
            raise ProbeUsageError(f"{name} must be at least {least}; got {value}", param=name)
    if not math.isfinite(noise) or noise < 0:
        raise ProbeUsageError(f"noise must be finite and >= 0; got {noise}", param="noise")
    if not math.isfinite(baseline):
        raise ProbeUsageError(f"baseline must be finite; got {baseline}", param="baseline")
    module = loaded.module
    x = model_input(loaded, image, size)
    cam_layer = None
    if "gradcam" in methods:
        convs = conv_layers(module)
        cam_layer = layer if layer is not None else (convs[-1] if convs else None)
        if cam_layer is None:
            raise ProbeUsageError(f"{loaded.name} has no Conv2d layer; name Grad-CAM's layer with --layer", param="layer")
        if resolve_layers(module, [cam_layer])[cam_layer] is module:
            raise ProbeUsageError(f"Grad-CAM needs an inner layer, not {cam_layer!r}", param="layer")
    elif layer is not None:
        raise ProbeUsageError("--layer is Grad-CAM's layer; add --method gradcam (or all)", param="layer")

    forward = _Normalized(loaded)
    attributions: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    with evaluating(module), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"captum\..*")
        warnings.filterwarnings("ignore", message=r".*(require gradients|backward hook|inplace).*")
        watched = [OUTPUT] if cam_layer is None else [OUTPUT, cam_layer]
        with torch.no_grad(), record(module, watched) as acts:
            loaded(x)
        prediction = predict(loaded, acts.get(OUTPUT))
        if prediction is None:
            raise ProbeUsageError(f"attribution needs a classifier with (1, K) outputs; {loaded.name} returned another shape")
        check_finite_output(loaded.name, loaded.module, prediction.logits)
        if cam_layer is not None and (cam_layer not in acts or acts[cam_layer].dim() != 4):
            shape = tuple(acts[cam_layer].shape) if cam_layer in acts else "nothing (it did not run)"
            raise ProbeUsageError(
                f"Grad-CAM needs a layer with spatial output (N, C, H, W); {cam_layer} gives {shape}; "
                f"convolution layers are: {', '.join(conv_layers(module))}",
                param="layer",
            )
        index = resolve_target(target, prediction)
        for name in methods:
            try:
                attributions[name] = _run(name, forward, x, index, cam_layer, steps, samples, noise, baseline, seed)
            except ProbeUsageError as error:
                if len(methods) == 1:
                    raise
                skipped[name] = str(error)
    for name, attr in attributions.items():
        if not bool(torch.isfinite(attr).all()):
            raise ProbeRuntimeError(
                f"{name} gave NaN or infinite attributions (the gradients overflowed); check the model's weights, "
                "or use fewer --steps / a smaller --noise"
            )
    heatmaps = {name: normalize_heatmap(_reduce(name, attr)) for name, attr in attributions.items()}
    return Attribution(
        model=loaded.name,
        image=x[0].detach().cpu(),
        target=index,
        target_label=prediction.labels[index],
        prediction=prediction,
        attributions=attributions,
        heatmaps=heatmaps,
        layer=cam_layer,
        skipped=skipped,
        options={"steps": steps, "samples": samples, "noise": noise, "baseline": baseline, "seed": seed,
                 "ig_method": integration_method(steps)},
    )


IG_BATCH = 32
"""Integrated gradients runs its ``steps`` interpolated images in batches of at most this many:
memory follows the batch, not ``steps``."""

GAUSS_LEGENDRE_MAX_STEPS = 1024
"""Up to this many steps, integrated gradients uses Gauss-Legendre quadrature (captum's default, the
most accurate); its nodes come from an ``steps x steps`` eigenproblem (8 MB and a fraction of a second
at 1024, but 74.5 GiB at 100000), so more steps use the trapezoid rule, whose cost is linear."""


MAX_IG_STEPS = 10_000
"""The most integrated-gradients steps the CLI takes: time grows with the steps (memory does not),
and the trapezoid rule's error is already below 1e-8 of the integral there."""


def integration_method(steps: int) -> str:
    """captum's quadrature for ``steps`` integrated-gradients steps (see :data:`GAUSS_LEGENDRE_MAX_STEPS`)."""
    return "gausslegendre" if steps <= GAUSS_LEGENDRE_MAX_STEPS else "riemann_trapezoid"


def _reduce(method: str, attribution: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` attribution -> ``(H, W)`` non-negative heat."""
    if method == "saliency":
        return attribution.abs().amax(dim=0)
    return attribution.abs().sum(dim=0)


def _run(
    method: str,
    forward: _Normalized,
    x: torch.Tensor,
    target: int,
    layer: str | None,
    steps: int,
    samples: int,
    noise: float,
    baseline: float,
    seed: int,
) -> torch.Tensor:
    """One captum method on the batch of one ``x``; returns ``(C, H, W)`` (``(1, H, W)`` for Grad-CAM), on the CPU."""
    from captum.attr import (
        GuidedBackprop,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Saliency,
    )

    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if method == "saliency":
            result = Saliency(forward).attribute(inputs, target=target, abs=False)
        elif method == "integrated-gradients":
            result = IntegratedGradients(forward).attribute(
                inputs, baselines=baseline, target=target, n_steps=steps, method=integration_method(steps),
                internal_batch_size=min(steps, IG_BATCH),
            )  # fmt: skip
        elif method == "smoothgrad":
            devices = [x.device] if x.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                result = NoiseTunnel(Saliency(forward)).attribute(
                    inputs, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=min(samples, 8),
                    stdevs=noise, target=target, abs=False,
                )
        elif method == "guided-backprop":
            modules, functional = relu_check(forward, inputs.detach())
            if functional:
                raise ProbeUsageError(
                    f"guided backprop needs every ReLU to be an nn.ReLU module, but this model applies ReLU "
                    f"functionally ({functional} call(s) of F.relu / torch.relu in forward), and captum would leave "
                    "those gradients unguided; use another --method, or replace them with nn.ReLU modules",
                    param="method",
                )
            if not modules:
                raise ProbeUsageError("guided backprop needs nn.ReLU activations; this model has none", param="method")
            with _out_of_place_relus(forward):
                result = GuidedBackprop(forward).attribute(inputs, target=target)
        else:
            cam = LayerGradCam(forward, dict(forward.net.named_modules())[layer] if layer else forward.net)
            maps = cam.attribute(inputs, target=target, relu_attributions=True)
            result = LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear").clamp_min(0)
    return result[0].detach().float().cpu()
