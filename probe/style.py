"""Neural style transfer (Gatys et al.): match one image's content and another's Gram matrices.

The *content* of an image at a layer is the layer's feature maps; its *style*
is the correlations between feature maps, the Gram matrix
``G[c, d] = mean_over_positions(F[c] * F[d])``. Style transfer looks for the
image whose content (at deep layers) matches a content photo and whose style
(at several layers) matches one or more style images::

    import probe
    m = probe.load_model("vgg19")                     # or "shapes" offline
    result = probe.style_transfer(m, "skimage:astronaut", ["skimage:coffee"], size=256)
    result.image                                      # (3, H, W) in [0, 1]
    result.losses                                     # final content/style/tv/total
    result.save("runs/style-astronaut")               # the gallery the CLI writes

Sign convention: the rest of cnn-probe maximizes *scores*; style transfer is
defined by *losses* and minimizes them (``total = content_weight * content +
style_weight * style + tv_weight * tv``, all >= 0, 0 is a perfect match). Every
loss this module reports is such a loss: lower is better.

Losses are *relative*, so that one set of weights serves every model and
layer: a layer's content loss is the mean squared feature error divided by the
mean square of the content features there, a layer's style loss is the mean
squared Gram error divided by the mean square of the target Gram matrix (a
constant per layer: Gatys's loss with per-layer weights). A content loss of
0.3 means an error of 30% of the features' energy; a style loss is easiest
read against the style loss of the content image itself, which every result
reports (``content_image_style_loss``).

Speed: targets (content features, style Gram matrices) are computed once per
scale, detached, before the loop; each step is one forward pass (stopped at
the deepest layer needed) and one backward pass for the whole objective; the
model keeps no hook and no gradient.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from probe.errors import ProbeUsageError
from probe.hooks import capture, evaluating
from probe.images import fit_size, load_image, resize
from probe.models import LoadedModel, load_model
from probe.runtime import Precision, ProgressFn, autocast, check_finite, make_generator
from probe.vgg_names import LayerPlan, plan_layers

__all__ = [
    "StyleResult",
    "style_transfer",
    "gram_matrix",
    "content_loss",
    "style_loss",
    "total_variation_loss",
    "rgb_to_yiq",
    "yiq_to_rgb",
    "keep_content_colors",
    "normalize_weights",
    "style_network",
]

ImageSource = str | Path | torch.Tensor | np.ndarray | Image.Image
Optimizer = Literal["lbfgs", "adam"]
Pooling = Literal["max", "avg"]

DEFAULT_STEPS = 300
DEFAULT_SIZE = 256
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 1e3
DEFAULT_TV_WEIGHT = 1.0
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
_EPS = 1e-12


# --- the functional core -------------------------------------------------------------------------


def gram_matrix(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Gram matrices of feature maps: the channel-by-channel inner products.

    Args:
        features: ``(N, C, H, W)`` feature maps, or ``(N, C, L)`` with the
            positions already flattened.
        normalize: divide by the number of positions ``H * W`` (default True),
            so the Gram matrix is the mean of the outer products over positions
            and does not grow with the image size. Gatys's style loss per layer,
            ``1 / (4 C^2 (HW)^2) * sum (G - A)^2`` on unnormalized matrices, is a
            quarter of the mean squared difference of normalized ones.

    Returns:
        ``(N, C, C)``: ``G[n, c, d] = sum_p F[n, c, p] * F[n, d, p]`` (``/ (H * W)``).
        Computed in the input's dtype; pass float32 features for exact sums.
    """
    if features.dim() < 3:
        raise ProbeUsageError(
            f"a Gram matrix needs feature maps (N, C, H, W) or (N, C, L); got shape {tuple(features.shape)}"
        )
    flat = features.flatten(2)
    gram = torch.bmm(flat, flat.transpose(1, 2))
    return gram / flat.shape[-1] if normalize else gram


def content_loss(features: torch.Tensor, target: torch.Tensor, *, relative: bool = False) -> torch.Tensor:
    """Mean squared difference between feature maps (a scalar; 0 for identical features).

    Args:
        features: ``(N, C, H, W)`` (any shape) features of the image being optimized.
        target: the content image's features, same shape (or broadcastable).
        relative: divide by the mean square of ``target`` (default False), so
            that 1.0 means an error as large as the features themselves.
    """
    loss = F.mse_loss(features, target.expand_as(features))
    return loss / target.pow(2).mean().clamp_min(_EPS) if relative else loss


def style_loss(
    features: torch.Tensor, target_gram: torch.Tensor, *, normalize: bool = True, relative: bool = False
) -> torch.Tensor:
    """Mean squared difference between the Gram matrix of ``features`` and a target Gram matrix.

    Args:
        features: ``(N, C, H, W)`` features of the image being optimized.
        target_gram: ``(N, C, C)`` or ``(1, C, C)`` target, computed once with
            :func:`gram_matrix` (same ``normalize``) from the style image(s).
        normalize: as in :func:`gram_matrix` (default True).
        relative: divide by the mean square of ``target_gram`` (default False).

    Returns:
        A scalar, 0 when the Gram matrices agree.
    """
    gram = gram_matrix(features, normalize=normalize)
    if gram.shape[-2:] != target_gram.shape[-2:]:
        raise ProbeUsageError(
            f"the target Gram matrix is {tuple(target_gram.shape)} but the features give {tuple(gram.shape)}: "
            "targets must come from the same layer"
        )
    loss = F.mse_loss(gram, target_gram.expand_as(gram))
    return loss / target_gram.pow(2).mean().clamp_min(_EPS) if relative else loss


def total_variation_loss(images: torch.Tensor, exponent: float = 2.0) -> torch.Tensor:
    """Total variation: the mean ``|difference| ** exponent`` between neighbouring pixels.

    Args:
        images: ``(N, C, H, W)`` (or ``(C, H, W)``).
        exponent: 2 (default, smooth) or 1 (anisotropic TV, keeps edges).

    Returns:
        A scalar: the mean over vertical and horizontal neighbour pairs; 0 for
        a constant image.
    """
    down = (images[..., 1:, :] - images[..., :-1, :]).abs().pow(exponent)
    right = (images[..., :, 1:] - images[..., :, :-1]).abs().pow(exponent)
    return (down.sum() + right.sum()) / max(1, down.numel() + right.numel())


# --- colours -------------------------------------------------------------------------------------

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def _apply_matrix(matrix: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    channel_dim = images.dim() - 3
    if images.shape[channel_dim] != 3:
        raise ProbeUsageError(f"colour conversion needs 3-channel images; got shape {tuple(images.shape)}")
    matrix = matrix.to(images.device, images.dtype)
    return torch.movedim(torch.tensordot(matrix, torch.movedim(images, channel_dim, 0), dims=1), 0, channel_dim)


def rgb_to_yiq(images: torch.Tensor) -> torch.Tensor:
    """RGB ``(..., 3, H, W)`` -> YIQ: Y is luminance, I and Q are chroma (NTSC matrix)."""
    return _apply_matrix(_RGB_TO_YIQ, images)


def yiq_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_yiq` (not clamped)."""
    return _apply_matrix(torch.linalg.inv(_RGB_TO_YIQ.double()).float(), images)


def keep_content_colors(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance of ``stylized`` with the chroma of ``content`` (``--original-colors``).

    Both are ``(3, H, W)`` or ``(N, 3, H, W)`` in [0, 1]; ``content`` is
    resized to ``stylized``'s size. The result is converted back to RGB and
    clamped to [0, 1] (so chroma is kept exactly wherever no channel clips).
    One-channel images are returned unchanged.
    """
    channel_dim = stylized.dim() - 3
    if stylized.shape[channel_dim] == 1:
        return stylized
    if tuple(content.shape[-2:]) != tuple(stylized.shape[-2:]):
        content = resize(content, tuple(stylized.shape[-2:]))
    content = content.to(stylized.device, stylized.dtype)
    if content.dim() < stylized.dim():
        content = content.expand(*stylized.shape[:-3], *content.shape)
    luminance = rgb_to_yiq(stylized).narrow(channel_dim, 0, 1)
    chroma = rgb_to_yiq(content).narrow(channel_dim, 1, 2)
    return yiq_to_rgb(torch.cat([luminance, chroma], dim=channel_dim)).clamp(0.0, 1.0)


# --- options -------------------------------------------------------------------------------------


def normalize_weights(
    weights: Sequence[float] | None, count: int, what: str, *, param: str | None = None
) -> list[float]:
    """Weights that sum to 1: ``count`` equal ones for None, else ``weights / sum(weights)``.

    Raises:
        ProbeUsageError: wrong count, a negative weight, or all zero.
    """
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise ProbeUsageError(f"{len(weights)} {what} given for {count} {'item' if count == 1 else 'items'}: "
                              f"give exactly {count}", param=param)
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ProbeUsageError(f"{what} must be finite, >= 0 and not all 0; got {weights}", param=param)
    total = sum(weights)
    return [w / total for w in weights]


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (str, Path, torch.Tensor, np.ndarray, Image.Image)):
        return [value]
    return list(value)


def _label(source: Any, fallback: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else fallback


def _load(source: ImageSource, what: str, channels: int, param: str) -> torch.Tensor:
    """Load an image for the model's channel count; errors name the image and the argument."""
    try:
        image = load_image(source)
    except ProbeUsageError as error:
        raise ProbeUsageError(f"{what}: {error}", param=param) from None
    if image.dim() != 3:
        raise ProbeUsageError(f"{what}: expected an image (C, H, W); got shape {tuple(image.shape)}", param=param)
    if image.shape[0] != channels and not (image.shape[0] == 1 or (image.shape[0] == 3 and channels == 1)):
        raise ProbeUsageError(
            f"{what} has {image.shape[0]} channels but the model takes {channels}; give a grayscale or RGB image",
            param=param,
        )
    return load_image(image, channels=channels)


def _scale_sizes(
    height: int, width: int, size: int | Sequence[int] | None, scales: Sequence[int] | None
) -> list[tuple[int, int]]:
    if scales is not None:
        scales = list(scales)
        if not scales or any(int(s) < 1 for s in scales):
            raise ProbeUsageError(f"scales must be positive sizes, e.g. 256,512; got {scales}", param="scales")
        return [fit_size(height, width, int(s)) for s in scales]
    if size is None:
        size = DEFAULT_SIZE
    if isinstance(size, int) and size < 1 or not isinstance(size, int) and min(size) < 1:
        raise ProbeUsageError(f"size must be positive; got {size}", param="size")
    return [fit_size(height, width, size)]


# --- the network view ----------------------------------------------------------------------------


def style_network(module: nn.Module, pooling: Pooling = "max") -> tuple[nn.Module, int]:
    """A view of ``module`` for style transfer that shares its weights; ``module`` is not changed.

    The view is a copy of the module *structure* whose parameters and buffers
    are the original tensors (no extra weight memory: a few kilobytes of
    module objects), in which

    - in-place ReLUs become out-of-place ones, so that a captured convolution
      output (``conv4_2``) is not overwritten by the ReLU after it;
    - with ``pooling="avg"``, every ``nn.MaxPool2d`` becomes an ``nn.AvgPool2d``
      of the same kernel, stride, padding and ceil mode (Gatys's choice for
      smoother results). Pooling done with ``F.max_pool2d`` inside a
      ``forward`` is not reached.

    Args:
        module: the network.
        pooling: ``"max"`` (as trained) or ``"avg"``.

    Returns:
        ``(view, swapped)``: the view and the number of max pools swapped.

    Raises:
        ProbeUsageError: ``pooling="avg"`` on a model with no ``nn.MaxPool2d``
            or one that cannot be copied (TorchScript).
    """
    if pooling not in ("max", "avg"):
        raise ProbeUsageError(f"unknown pooling {pooling!r}; poolings are: max, avg", param="pooling")
    shared = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    try:
        view = copy.deepcopy(module, shared)
    except Exception:  # TorchScript and exotic modules: use the model as it is
        if pooling == "avg":
            raise ProbeUsageError(
                f"--pooling avg needs a model whose layers can be swapped; {type(module).__name__} cannot be copied",
                param="pooling",
            ) from None
        return module, 0
    swapped = 0
    for parent in list(view.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU) and child.inplace:
                setattr(parent, name, nn.ReLU(inplace=False))
            elif pooling == "avg" and isinstance(child, nn.MaxPool2d):
                setattr(
                    parent,
                    name,
                    nn.AvgPool2d(child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode),
                )
                swapped += 1
    if pooling == "avg" and swapped == 0:
        raise ProbeUsageError(
            f"--pooling avg: {type(module).__name__} has no nn.MaxPool2d module to swap", param="pooling"
        )
    return view, swapped


# --- the result ----------------------------------------------------------------------------------


@dataclass
class StyleResult:
    """What :func:`style_transfer` returns.

    Attributes:
        image: ``(C, H, W)`` result in [0, 1], on the CPU.
        content: ``(C, H, W)`` the content image at the result's size.
        styles: ``[(C, h, w)]`` the style images as used at the last scale.
        history: per optimization step, ``"content"``, ``"style"``, ``"tv"``
            (unweighted losses) and ``"total"`` (the weighted sum minimized),
            plus ``"scale"`` (index into ``options["scales"]``).
        losses: ``content``, ``style``, ``tv`` and ``total`` measured on the
            final image (clamped, colours kept when asked).
        layer_losses: the same per layer: ``{"content:relu4_2": ..., "style:relu1_1": ...}``.
        content_image_style_loss: the style loss of the content image itself at
            the final size: the reference that ``losses["style"]`` improves on.
        snapshots: ``[(step, (C, H, W) image)]`` taken during the optimization.
        options: every option as resolved (layers with their module names,
            normalized weights, sizes, ...), for the manifest.
        seconds: wall-clock time of the optimization.
        model: the model's name.
        content_label: the content source as given (``"skimage:astronaut"``).
        style_labels: the style sources as given.
    """

    image: torch.Tensor
    content: torch.Tensor
    styles: list[torch.Tensor]
    history: dict[str, list[float]]
    losses: dict[str, float]
    layer_losses: dict[str, float]
    content_image_style_loss: float
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    model: str = ""
    content_label: str = "content"
    style_labels: list[str] = field(default_factory=list)

    @property
    def style_ratio(self) -> float:
        """Final style loss / style loss of the content image (0.05 = 5%)."""
        return self.losses["style"] / max(self.content_image_style_loss, _EPS)

    def save(self, folder: str | Path, *, force: bool = False, **fields: Any) -> Path:
        """Write the gallery the CLI writes (content, styles, result, snapshots, loss plot) into ``folder``.

        ``folder`` is created; one that holds files is refused unless ``force``
        (and then only when it holds a gallery, which is replaced). Returns the
        path of ``manifest.json``.
        """
        from probe.gallery import prepare_out_dir
        from probe.reports.style import save_gallery

        return save_gallery(self, prepare_out_dir(folder, folder, force=force), **fields)

    def _repr_png_(self) -> bytes:
        from probe.reports.style import contact_png

        return contact_png(self)


# --- the optimization ----------------------------------------------------------------------------


@dataclass
class _Targets:
    """Detached targets at one scale, and the relative-loss divisors, computed once."""

    content: dict[str, torch.Tensor]
    grams: dict[str, torch.Tensor]
    content_scale: dict[str, torch.Tensor]
    gram_scale: dict[str, torch.Tensor]


class _Objective:
    """The weighted loss of one image: one forward pass (stopped at the deepest layer) per call."""

    def __init__(
        self,
        net: nn.Module,
        loaded: LoadedModel,
        plan: LayerPlan,
        content_weights: dict[str, float],
        style_weights: dict[str, float],
        weights: tuple[float, float, float],
        device: torch.device,
        precision: Precision,
    ) -> None:
        self.net = net
        self.normalize = loaded.preprocess.normalize
        self.plan = plan
        self.content_weights = content_weights
        self.style_weights = style_weights
        self.weights = weights
        self.device = device
        self.precision = precision
        self.modules = plan.modules

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Captured features (float32) of the plan's layers, checked to be feature maps."""
        with autocast(self.device, self.precision):
            try:
                captured = capture(self.net, self.normalize(images), self.modules, stop_early=True)
            except RuntimeError as error:
                if "too small" in str(error) or "Kernel size can't be greater" in str(error):
                    raise ProbeUsageError(
                        f"the image ({images.shape[-2]}x{images.shape[-1]}) is too small for the layers asked for "
                        f"({type(error).__name__}: {str(error).splitlines()[0]}); use a larger --size",
                        param="size",
                    ) from None
                raise
        for name, module in {**self.plan.content, **self.plan.style}.items():
            if module not in captured:
                raise ProbeUsageError(f"layer {name!r} ({module}) did not run in the forward pass", param="style_layer")
            if name in self.plan.style and captured[module].dim() < 3:
                raise ProbeUsageError(
                    f"style layer {name!r} outputs shape {tuple(captured[module].shape)}; style layers need "
                    "feature maps (N, C, H, W): choose a convolutional layer",
                    param="style_layer",
                )
        return {module: tensor.float() for module, tensor in captured.items()}

    def targets(self, content: torch.Tensor, styles: Sequence[torch.Tensor], blend: Sequence[float]) -> _Targets:
        """Content features and blended style Gram matrices, detached, from one pass per image."""
        with torch.no_grad():
            content_features = self.features(content[None])
            grams: dict[str, torch.Tensor] = {}
            for style, weight in zip(styles, blend):
                style_features = self.features(style[None])
                for module in set(self.plan.style.values()):
                    gram = gram_matrix(style_features[module]) * weight
                    grams[module] = grams[module] + gram if module in grams else gram
            kept = {module: content_features[module] for module in set(self.plan.content.values())}
            return _Targets(
                content=kept,
                grams=grams,
                content_scale={m: t.pow(2).mean().clamp_min(_EPS) for m, t in kept.items()},
                gram_scale={m: g.pow(2).mean().clamp_min(_EPS) for m, g in grams.items()},
            )

    def parts(
        self, features: dict[str, torch.Tensor], targets: _Targets, images: torch.Tensor, per_layer: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, {"content", "style", "tv", "total"} [+ per-layer])`` from captured features."""
        layers: dict[str, torch.Tensor] = {}
        content = images.new_zeros(())
        for name, module in self.plan.content.items():
            value = F.mse_loss(features[module], targets.content[module]) / targets.content_scale[module]
            content = content + self.content_weights[name] * value
            layers[f"content:{name}"] = value
        style = images.new_zeros(())
        for name, module in self.plan.style.items():
            value = F.mse_loss(gram_matrix(features[module]), targets.grams[module]) / targets.gram_scale[module]
            style = style + self.style_weights[name] * value
            layers[f"style:{name}"] = value
        tv = total_variation_loss(images)
        content_weight, style_weight, tv_weight = self.weights
        total = content_weight * content + style_weight * style + tv_weight * tv
        parts = {"content": content, "style": style, "tv": tv, "total": total}
        if per_layer:
            parts.update(layers)
        return total, parts


def _as_loaded(model: str | nn.Module | LoadedModel, device: str | torch.device | None) -> LoadedModel:
    if isinstance(model, (str, Path)):
        return load_model(str(model), device="auto" if device is None else device)
    if isinstance(model, LoadedModel):
        if device not in (None, "auto") and torch.device(device) != model.device:
            raise ProbeUsageError(
                f"the model lives on {model.device}; load it on {device} (load_model(..., device=...))",
                param="device",
            )
        return model
    return load_model(model, device="auto" if device is None else device)


def _initial_image(
    init: str | ImageSource, content: torch.Tensor, generator: torch.Generator, channels: int
) -> tuple[torch.Tensor, str]:
    if isinstance(init, str) and init == "content":
        return content.clone(), "content"
    if isinstance(init, str) and init == "random":
        noise = torch.rand(content.shape, generator=generator, device=generator.device, dtype=content.dtype)
        return noise.to(content.device), "random"
    if isinstance(init, str) and not Path(init).expanduser().exists() and ":" not in init:
        raise ProbeUsageError(f"init must be content, random, or an image file; {init!r} is none of these",
                              param="init")
    image = _load(init, "init image", channels, "init").to(content.device)
    return resize(image, tuple(content.shape[-2:])), _label(init, "image")


def _snapshot_steps(total: int, count: int) -> set[int]:
    """``count`` steps evenly spread strictly inside ``(0, total)`` (fewer if ``total`` is small)."""
    return {round(total * i / (count + 1)) for i in range(1, count + 1)} - {0, total}


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
    size: int | Sequence[int] | None = DEFAULT_SIZE,
    original_colors: bool = False,
    pooling: Pooling = "max",
    scales: Sequence[int] | None = None,
    snapshots: int = 4,
    progress: ProgressFn | None = None,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
) -> StyleResult:
    """Neural style transfer: an image with ``content``'s content and ``styles``' style.

    Minimizes ``content_weight * content + style_weight * style + tv_weight * tv``
    over the pixels (losses, lower is better; see the module docstring for the
    relative losses). The model is not changed: it runs through
    :func:`style_network` (weights shared), in eval mode, and keeps no hook
    and no gradient.

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
        size: the content's longer side (int) or ``(H, W)``; default 256.
        original_colors: keep the content's colours: the result's luminance
            with the content's chroma (YIQ), applied to the result and snapshots.
        pooling: ``"max"`` (default) or ``"avg"`` (max pools swapped for average
            pools in a weight-sharing copy of the model's structure).
        scales: multiscale sizes, e.g. ``(256, 512)``, overriding ``size``:
            each scale runs ``steps`` steps and its result, upsampled,
            initializes the next.
        snapshots: intermediate images to keep, evenly spread (default 4).
        progress: ``progress(step, total, metrics)`` after each step, metrics
            being the current losses.
        seed: seed of the random initialization (default 0).
        generator: a ``torch.Generator`` to use instead of ``seed``.
        device: where to run when ``model`` is a spec (default: CUDA if any);
            must match a loaded model's device.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (autocast on
            the forward pass; Gram matrices and losses stay float32).

    Returns:
        A :class:`StyleResult`.

    Raises:
        ProbeUsageError: unknown layer (with suggestions), unreadable image,
            image whose channels the model cannot take, wrong number of blend
            or layer weights, unknown optimizer/pooling/init, bad sizes.
        ProbeRuntimeError: the loss became NaN or infinite.
    """
    if optimizer not in ("lbfgs", "adam"):
        raise ProbeUsageError(f"unknown optimizer {optimizer!r}; optimizers are: lbfgs, adam", param="optimizer")
    if int(steps) < 1:
        raise ProbeUsageError(f"steps must be at least 1; got {steps}", param="steps")
    for name, value in (("content_weight", content_weight), ("style_weight", style_weight), ("tv_weight", tv_weight)):
        if not math.isfinite(value) or value < 0:
            raise ProbeUsageError(f"{name} must be finite and >= 0; got {value}", param=name)
    if not math.isfinite(style_scale) or style_scale <= 0:
        raise ProbeUsageError(f"style_scale must be > 0; got {style_scale}", param="style_scale")
    if int(snapshots) < 0:
        raise ProbeUsageError(f"snapshots must be >= 0; got {snapshots}", param="snapshots")
    steps = int(steps)
    lr = DEFAULT_LR[optimizer] if lr is None else float(lr)

    loaded = _as_loaded(model, device)
    device = loaded.device
    channels = loaded.preprocess.channels
    plan = plan_layers(loaded.module, content_layers, style_layers)
    style_sources = _as_list(styles)
    if not style_sources:
        raise ProbeUsageError("give at least one style image", param="styles")
    blend = normalize_weights(style_blend, len(style_sources), "style blend weights", param="style_blend")
    layer_weights = normalize_weights(
        style_layer_weights, len(plan.style), "style layer weights", param="style_layer_weight"
    )
    content_image = _load(content, "content image", channels, "content")
    style_images = [_load(s, f"style image {i + 1}", channels, "styles") for i, s in enumerate(style_sources)]
    sizes = _scale_sizes(content_image.shape[-2], content_image.shape[-1], size, scales)
    random = make_generator(seed if generator is None else generator, device)
    net, swapped = style_network(loaded.module, pooling)
    objective = _Objective(
        net,
        loaded,
        plan,
        {name: 1.0 / len(plan.content) for name in plan.content},
        dict(zip(plan.style, layer_weights)),
        (float(content_weight), float(style_weight), float(tv_weight)),
        device,
        precision,
    )

    total_steps = steps * len(sizes)
    snapshot_at = _snapshot_steps(total_steps, int(snapshots))
    history: dict[str, list[torch.Tensor]] = {"content": [], "style": [], "tv": [], "total": [], "scale": []}
    kept: list[tuple[int, torch.Tensor]] = []
    image: torch.Tensor | None = None
    init_label = "content"
    started = time.perf_counter()
    with evaluating(net):
        for scale_index, (height, width) in enumerate(sizes):
            content_s = resize(content_image, (height, width)).to(device)
            longer = max(1, round(style_scale * max(height, width)))
            styles_s = [resize(s, longer).to(device) for s in style_images]
            targets = objective.targets(content_s, styles_s, blend)
            if image is None:
                start, init_label = _initial_image(init, content_s, random, channels)
            else:
                start = resize(image, (height, width))
            pixels = start.detach().clone()[None].requires_grad_(True)

            def evaluate() -> torch.Tensor:
                with torch.no_grad():
                    pixels.clamp_(0.0, 1.0)
                total, parts = objective.parts(objective.features(pixels), targets, pixels)
                (grad,) = torch.autograd.grad(total, pixels)
                step = len(history["total"]) + 1
                if progress is not None or step % 25 == 0:  # a check syncs a GPU: not every step
                    check_finite(total.detach(), "the style-transfer loss", step)
                for key in ("content", "style", "tv", "total"):
                    history[key].append(parts[key].detach())
                history["scale"].append(torch.tensor(float(scale_index)))
                if step in snapshot_at:
                    kept.append((step, pixels.detach()[0].clamp(0, 1).cpu()))
                if progress is not None:
                    progress(step, total_steps, {k: float(parts[k].detach()) for k in ("content", "style", "tv", "total")})
                pixels.grad = grad
                return total.detach()

            if optimizer == "lbfgs":
                lbfgs = torch.optim.LBFGS([pixels], lr=lr, max_iter=steps, max_eval=steps)
                lbfgs.step(evaluate)
            else:
                adam = torch.optim.Adam([pixels], lr=lr)
                for _ in range(steps):
                    evaluate()
                    adam.step()
            with torch.no_grad():
                image = pixels.detach()[0].clamp(0.0, 1.0)
            check_finite(image, "the style-transfer image", len(history["total"]))

        # final measurement, on the image as returned, against the last scale's targets
        final = keep_content_colors(image, content_s) if original_colors else image
        with torch.no_grad():
            _, parts = objective.parts(objective.features(final[None]), targets, final[None], per_layer=True)
            _, reference = objective.parts(objective.features(content_s[None]), targets, content_s[None])
    seconds = time.perf_counter() - started

    if original_colors:
        kept = [(step, keep_content_colors(snap, content_image)) for step, snap in kept]
    losses = {k: float(parts[k]) for k in ("content", "style", "tv", "total")}
    layer_losses = {k: float(v) for k, v in parts.items() if ":" in k}
    options = {
        "content_layers": plan.content,
        "style_layers": plan.style,
        "layer_note": plan.note,
        "style_layer_weights": dict(zip(plan.style, layer_weights)),
        "content_weight": float(content_weight),
        "style_weight": float(style_weight),
        "tv_weight": float(tv_weight),
        "style_blend": blend,
        "style_scale": float(style_scale),
        "init": init_label,
        "optimizer": optimizer,
        "lr": lr,
        "steps": steps,
        "scales": [list(s) for s in sizes],
        "image_size": [int(image.shape[-2]), int(image.shape[-1])],
        "original_colors": bool(original_colors),
        "pooling": pooling,
        "pools_swapped": swapped,
        "precision": precision,
        "device": str(device),
        "seed": seed if generator is None else None,
    }
    return StyleResult(
        image=final.detach().cpu(),
        content=content_s.cpu(),
        styles=[s.cpu() for s in styles_s],
        history={k: torch.stack(v).tolist() if v else [] for k, v in history.items()},
        losses=losses,
        layer_losses=layer_losses,
        content_image_style_loss=float(reference["style"]),
        snapshots=kept,
        options=options,
        seconds=seconds,
        model=loaded.name,
        content_label=_label(content, "content"),
        style_labels=[_label(s, f"style {i + 1}") for i, s in enumerate(style_sources)],
    )
