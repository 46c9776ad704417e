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
import numbers
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from probe.checks import check_count, check_names, check_number, check_seed, check_size
from probe.errors import ProbeRuntimeError, ProbeUsageError, unknown_name
from probe.hooks import OUTPUT, evaluating, first_tensor, record, resolve_layers
from probe.inputs import Prediction, model_input, predict
from probe.kernels import conv_layers
from probe.layout import channels_last_layers
from probe.models import LoadedModel, as_loaded
from probe.results import GalleryResult
from probe.runtime import check_finite_output, global_rng_kept

__all__ = ["METHODS", "Attribution", "attribute", "resolve_target", "relu_check", "normalize_heatmap",
           "EXTRA_METHODS", "attribute_batch", "lrp_support", "parse_baseline", "tensor_additions"]

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
    if not isinstance(target, numbers.Integral) or isinstance(target, bool):
        raise ProbeUsageError(f"target must be a class index, a label or 'top'; got {target!r}", param="target")
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
    names = list(METHODS) if method == "all" else check_names(method, "method", "method name", "'saliency'")
    for name in names:
        if name not in METHODS and name not in EXTRA_METHODS:
            raise unknown_name("method", name, [*METHODS, *EXTRA_METHODS, "all"], param="method")
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
    baseline: float | torch.Tensor = 0.0,
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
        baseline: the baseline of integrated gradients, DeepLift, GradientShap and
            occlusion: a grey level (default 0.0: black) or images in [0, 1],
            ``(C, H, W)`` or ``(K, C, H, W)`` (GradientShap draws from the K).
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
    check_count(steps, "steps")
    check_count(samples, "samples")
    check_number(noise, "noise", 0)
    check_seed(seed)
    if size is not None:
        size = check_size(size)
    if not isinstance(baseline, torch.Tensor):
        check_number(baseline, "baseline")
    finite = bool(torch.isfinite(baseline).all()) if isinstance(baseline, torch.Tensor) else True
    if not finite:
        raise ProbeUsageError("the baseline must be finite (no NaN or inf)", param="baseline")
    module = loaded.module
    x = model_input(loaded, image, size)
    cam_layer = None
    if "gradcam" in methods:
        convs = conv_layers(module)
        cam_layer = layer if layer is not None else _last_conv_run(loaded, x, convs)
        if cam_layer is None:
            raise ProbeUsageError(f"{loaded.name} has no Conv2d layer that runs; name Grad-CAM's layer with --layer",
                                  param="layer")
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
        if cam_layer is not None and acts.calls.get(cam_layer, 0) > 1:
            raise ProbeUsageError(
                f"Grad-CAM's layer {cam_layer} runs {acts.calls[cam_layer]} times in one forward pass and captum's "
                "Grad-CAM takes a layer that runs once; name another layer (a convolution runs once)", param="layer")
        if cam_layer is not None and cam_layer in channels_last_layers(module, x):
            raise ProbeUsageError(
                f"Grad-CAM's layer {cam_layer} is channels-last, {tuple(acts[cam_layer].shape)} (see probe.layout), and "
                f"captum's Grad-CAM takes channels at dim 1; name a convolution layer: {', '.join(conv_layers(module))}",
                param="layer")
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
        options={"steps": steps, "samples": samples, "noise": noise, "seed": seed,
                 "baseline": baseline if not isinstance(baseline, torch.Tensor) else f"tensor {tuple(baseline.shape)}",
                 "ig_method": integration_method(steps)},
    )


def _last_conv_run(loaded: LoadedModel, x: torch.Tensor, convs: list[str]) -> str | None:
    """Grad-CAM's default layer: the last of ``convs`` to run in a forward pass of ``x`` (in eval mode), or None.

    Not the last in ``named_modules()`` order: GoogLeNet's and Inception's auxiliary heads come last there
    and do not run in eval mode.
    """
    modules = dict(loaded.module.named_modules())
    ran: list[str] = []
    handles = [modules[name].register_forward_hook(lambda m, a, out, n=name: ran.append(n)) for name in convs]
    try:
        with evaluating(loaded.module), torch.no_grad():
            loaded(x)
    finally:
        for handle in handles:
            handle.remove()
    return ran[-1] if ran else None


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
    baseline: float | torch.Tensor,
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

    if method in EXTRA_METHODS:
        return _run_extra(method, forward, x, target, samples, noise, baseline, seed)
    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if method == "saliency":
            result = Saliency(forward).attribute(inputs, target=target, abs=False)
        elif method == "integrated-gradients":
            result = IntegratedGradients(forward).attribute(
                inputs, baselines=_baselines(baseline, x)[:1], target=target, n_steps=steps,
                method=integration_method(steps), internal_batch_size=min(steps, IG_BATCH),
            )  # fmt: skip
        elif method == "smoothgrad":
            with global_rng_kept(seed, [x.device]):  # captum draws the noise from torch's global generator
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


# ------------------------------------------------------- more of captum's methods
EXTRA_METHODS: tuple[str, ...] = ("deeplift", "gradient-shap", "occlusion", "lrp")
"""The methods beyond the first five, asked for by name (``method="all"`` stays the five of :data:`METHODS`).

LRP uses captum's default rules on the leaf modules; a model that adds activations in ``forward`` (ResNet's
residuals, which captum has no rule for) is refused in one line, like one with a layer captum has no rule for."""

LRP_PASSTHROUGH = (nn.Flatten, nn.Identity, nn.Unflatten)
"""Reshaping modules LRP passes relevance through unchanged (no rule, no hook: their gradient is the reshape)."""


def _passthrough_lrp_class() -> type:
    from captum.attr import LRP

    class PassthroughLRP(LRP):
        """captum's LRP, with :data:`LRP_PASSTHROUGH` modules left out of its rules (captum has none for them)."""

        def _get_layers(self, model: nn.Module) -> None:
            super()._get_layers(model)
            self.layers = [layer for layer in self.layers if not isinstance(layer, LRP_PASSTHROUGH)]

    return PassthroughLRP


def _PassthroughLRP(forward: nn.Module) -> Any:  # noqa: N802 (a class made on first use: captum loads lazily)
    return _passthrough_lrp_class()(forward)


@contextlib.contextmanager
def _restored_attributes(module: nn.Module) -> Iterator[None]:
    """Remove every attribute the block adds to ``module``'s submodules (captum's LRP leaves ``rule`` and
    ``activations`` behind), also on error."""
    before = {id(m): set(vars(m)) for m in module.modules()}
    try:
        yield
    finally:
        for m in module.modules():
            for name in set(vars(m)) - before.get(id(m), set()):
                delattr(m, name)


def lrp_support(module: nn.Module) -> list[str]:
    """The leaf module types of ``module`` captum's LRP has no rule for (empty: LRP can run)."""
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS

    known = (*SUPPORTED_LAYERS_WITH_RULES, *SUPPORTED_NON_LINEAR_LAYERS, *LRP_PASSTHROUGH)
    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    return sorted({type(m).__name__ for m in leaves if type(m) not in known})


_ADDITIONS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__iadd__,
              torch.Tensor.__radd__}


class _Additions(TorchFunctionMode):
    """Counts additions of two same-shaped batch tensors (residual connections) during a forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        if func in _ADDITIONS and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]) \
                and args[0].dim() >= 2 and args[0].shape == args[1].shape:
            self.count += 1
        return func(*args, **(kwargs or {}))


def tensor_additions(module: nn.Module, inputs: torch.Tensor) -> int:
    """How many times one forward pass of ``module(inputs)`` adds two same-shaped activations (residuals),
    which captum's LRP has no rule for."""
    counter = _Additions()
    with torch.no_grad(), counter:
        module(inputs)
    return counter.count


def _baselines(baseline: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A grey level or ``(C, H, W)`` / ``(K, C, H, W)`` images -> ``(K, C, H, W)`` baselines on ``x``'s device."""
    if isinstance(baseline, torch.Tensor):
        value = baseline.detach().float().to(x.device)
        value = value.unsqueeze(0) if value.dim() == 3 else value
        if value.dim() != 4 or value.shape[1:] != x.shape[1:]:
            raise ProbeUsageError(f"a baseline of shape {tuple(baseline.shape)} does not fit the input "
                                  f"{tuple(x.shape[1:])}; give (C, H, W) or (K, C, H, W)", param="baseline")
        return value
    return torch.full((1, *x.shape[1:]), float(baseline), device=x.device)


def _run_extra(
    method: str, forward: nn.Module, x: torch.Tensor, target: int, samples: int, noise: float,
    baseline: float | torch.Tensor, seed: int, window: int | None = None,
) -> torch.Tensor:
    """DeepLift, GradientShap, Occlusion or LRP on ``x`` ``(1, C, H, W)``: ``(C, H, W)`` on the CPU.

    - ``deeplift``: DeepLift's rescale rule against the baseline (the first one of a stack);
    - ``gradient-shap``: expected gradients x (input - baseline) over ``samples`` draws from the
      baselines with Gaussian noise ``noise``, seeded (Lundberg and Lee 2017);
    - ``occlusion``: the score drop when a ``window`` square (default 1/7 of the image) is set to
      the baseline, stride half the window (Zeiler and Fergus 2014);
    - ``lrp``: layer-wise relevance propagation with captum's default rules (epsilon for conv and
      linear layers); refused in one line when the model has a layer captum has no rule for.
    """
    from captum.attr import DeepLift, GradientShap, Occlusion

    inputs = x.detach().clone().requires_grad_(True)
    reference = _baselines(baseline, x)
    with torch.enable_grad(), _out_of_place_relus(forward), _restored_attributes(forward):
        if method == "deeplift":
            try:
                result = DeepLift(forward).attribute(inputs, baselines=reference[:1], target=target)
            except RuntimeError as error:
                if "more than once" not in str(error):
                    raise
                raise ProbeUsageError("DeepLift needs every activation module to run once per forward pass, and "
                                      "this model calls one several times (a shared ReLU); use another --method",
                                      param="method") from None
        elif method == "gradient-shap":
            with global_rng_kept(seed, [x.device]):  # captum draws the baselines with numpy, the noise with torch
                result = GradientShap(forward).attribute(inputs, baselines=reference, n_samples=samples,
                                                         stdevs=noise, target=target)
        elif method == "occlusion":
            height, width = x.shape[-2:]
            size = window or max(2, min(height, width) // 7)
            stride = max(1, size // 2)
            result = Occlusion(forward).attribute(inputs, sliding_window_shapes=(x.shape[1], size, size),
                                                  strides=(x.shape[1], stride, stride), baselines=reference[:1],
                                                  target=target, perturbations_per_eval=16)
        else:
            missing = lrp_support(forward)
            if missing:
                raise ProbeUsageError(f"captum's LRP has no rule for {', '.join(missing)} in this model; "
                                      "use another --method (deeplift is the closest)", param="method")
            added = tensor_additions(forward, x.detach())
            if added:
                raise ProbeUsageError(f"captum's LRP has no rule for the {added} addition(s) of activations in this "
                                      "model's forward (residual connections); use another --method, e.g. "
                                      "integrated-gradients", param="method")
            result = _PassthroughLRP(forward).attribute(inputs, target=target)
    value = result[0].detach().float().cpu()
    if not torch.isfinite(value).all():
        raise ProbeUsageError(f"{method} gave non-finite attributions for this model; use another --method",
                              param="method")
    return value


def attribute_batch(
    model: str | nn.Module | LoadedModel,
    images: Sequence[Any] | torch.Tensor,
    method: str | Iterable[str] = "saliency",
    *,
    targets: Sequence[int | str | None] | None = None,
    baselines: torch.Tensor | float = 0.0,
    **options: Any,
) -> list[Attribution]:
    """Attribute a batch of images, one :class:`Attribution` each, with per-image tensor baselines.

    Args:
        model: as for :func:`attribute`.
        images: a ``(N, C, H, W)`` tensor in ``[0, 1]`` or a list of anything :func:`attribute` takes.
        method: as for :func:`attribute`.
        targets: one target per image (default: each image's predicted class).
        baselines: a grey level, one ``(C, H, W)`` baseline for all, or ``(N, C, H, W)``
            (image ``i`` gets row ``i``; for ``gradient-shap`` give ``(N, K, C, H, W)``
            for K baselines per image).
        **options: the other keyword arguments of :func:`attribute`.

    Raises:
        ProbeUsageError: as :func:`attribute`, or lists of the wrong length.
    """
    loaded = as_loaded(model)
    items = list(images.unbind(0)) if isinstance(images, torch.Tensor) else list(images)
    chosen = list(targets) if targets is not None else [None] * len(items)
    if len(chosen) != len(items):
        raise ProbeUsageError(f"{len(chosen)} targets for {len(items)} images", param="target")
    per_image = isinstance(baselines, torch.Tensor) and baselines.dim() in (4, 5) and baselines.shape[0] == len(items) \
        and (baselines.dim() == 5 or len(items) > 1)
    results = []
    for i, (item, target) in enumerate(zip(items, chosen)):
        baseline = baselines[i] if per_image else baselines  # type: ignore[index]
        results.append(attribute(loaded, item, method, target=target, baseline=baseline, **options))
    return results


def parse_baseline(text: str, loaded: LoadedModel, size: int | Sequence[int] | None = None) -> float | torch.Tensor:
    """``--baseline``: a grey level (``"0"``, ``"0.5"``) or an image source, as the model sees it ``(C, H, W)``.

    Raises:
        ProbeUsageError: a grey level outside ``[0, 1]``, or an unreadable image (naming ``--baseline``).
    """
    try:
        grey = float(text)
    except ValueError:
        try:
            return model_input(loaded, text, size)[0]
        except ProbeUsageError as error:
            raise ProbeUsageError(str(error), param="baseline") from None
    if not 0.0 <= grey <= 1.0:
        raise ProbeUsageError(f"a grey baseline lies in [0, 1]; got {grey}", param="baseline")
    return grey
