"""The named choices and defaults that both the ``probe`` commands' options and the library take.

One source for each list: the library checks its arguments against it, and each command's option offers
it (``--preset [robust|plain]``, ``[default: 300]``), so the two cannot drift apart.

Free of torch on purpose, and of everything but the standard library: the commands' option declarations
import it, so that ``probe --help``, ``probe COMMAND --help`` and click's own usage errors answer at once
(tests/test_cli_light.py checks that none of them imports torch). Keep it that way: data here, the code that
uses it in its own module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "PRECISIONS", "Preset", "PRESETS", "PARAMETRIZATIONS", "ATTRIBUTION_METHODS", "EXTRA_ATTRIBUTION_METHODS",
    "MAX_IG_STEPS", "FILTER_VIEWS", "FILTER_SCALES", "ACTIVATION_SCALES", "DREAM_OBJECTIVES", "STYLE_LOSSES",
    "STYLE_STEPS", "STYLE_CONTENT_WEIGHT", "STYLE_STYLE_WEIGHT", "STYLE_TV_WEIGHT", "STYLE_LEARNING_RATES",
    "POOLINGS", "ATLAS_DIVERSITY", "ATLAS_TIMEOUT_S", "OUTPUT_READINGS", "PARAM_LEARNING_RATES", "IG_BATCH",
    "GAUSS_LEGENDRE_MAX_STEPS", "DREAM_AUTO_MIN_SIDE",
]  # fmt: skip

# ------------------------------------------------------------------ how the forward passes run

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "auto")
"""The autocast precisions (:func:`probe.runtime.resolve_precision`): ``auto`` is bf16 on CUDA, fp32 on the CPU."""

OUTPUT_READINGS: tuple[str, ...] = ("auto", "classes", "image")
"""What a user may say a model's output is (:func:`probe.outputs.read_output`): ``"auto"`` (default: read by its
shape and last operation), ``"classes"`` (class scores: a 4-D picture read as per-pixel class scores, an embedding
as logits), ``"image"`` (a ``(N, C, H, W)`` output is a picture: no class scores)."""

# ------------------------------------------------------------------ activation maximization


@dataclass(frozen=True)
class Preset:
    """A named recipe of :func:`probe.maximize`: parametrization, its options, whether to use transforms, learning rate.

    Attributes:
        name: ``"robust"`` or ``"plain"``.
        param: ``"fft"`` or ``"pixel"``.
        param_options: keyword options for :func:`probe.param.image_param`.
        transforms: use :func:`probe.transforms.transforms_for_size` (True) or none.
        lr: the default learning rate.
        description: one line for ``--help`` and the docs.
    """

    name: str
    param: str
    param_options: dict[str, Any]
    transforms: bool
    lr: float
    description: str


PRESETS: dict[str, Preset] = {
    "robust": Preset(
        "robust", "fft", {}, True, 0.05,
        "Fourier parametrization (1/f), colour decorrelation for RGB, random pad/jitter/scale/rotate",
    ),
    "plain": Preset(
        "plain", "pixel", {"squash": "clip"}, False, 0.05,
        "gradient ascent on the pixels themselves, clipped to [0, 1], no transforms",
    ),
}  # fmt: skip
"""Each preset's name -> its recipe; ``robust`` first, the default."""

PARAMETRIZATIONS: tuple[str, ...] = ("pixel", "fft", "maco", "cppn", "laplacian")
"""The image parametrizations :func:`probe.param.parametrization` builds by name."""

PARAM_LEARNING_RATES: dict[str, float] = {"cppn": 0.005}
"""Default learning rates of parametrizations that need another than the preset's (Lucid's 0.005 for CPPNs)."""

# ------------------------------------------------------------------ attribution

ATTRIBUTION_METHODS: tuple[str, ...] = ("saliency", "integrated-gradients", "smoothgrad", "guided-backprop", "gradcam")
"""Every method, in the order ``method="all"`` shows them."""

IG_BATCH = 32
"""Integrated gradients runs its ``steps`` interpolated images in batches of at most this many:
memory follows the batch, not ``steps``."""

GAUSS_LEGENDRE_MAX_STEPS = 1024
"""Up to this many steps, integrated gradients uses Gauss-Legendre quadrature (captum's default, the
most accurate); its nodes come from an ``steps x steps`` eigenproblem (8 MB and a fraction of a second
at 1024, but 74.5 GiB at 100000), so more steps use the trapezoid rule, whose cost is linear."""

EXTRA_ATTRIBUTION_METHODS: tuple[str, ...] = ("deeplift", "gradient-shap", "occlusion", "lrp")
"""The methods beyond the first five, asked for by name (``method="all"`` stays the five of
:data:`ATTRIBUTION_METHODS`).

LRP uses captum's default rules on the leaf modules, and on a traced copy gives residual additions, sigmoid gates
and activations their rules (:mod:`probe.attribution.lrp_graph`); a layer or an operation on activations without
one, or a forward torch.fx cannot trace, is refused in one line."""

MAX_IG_STEPS = 10_000
"""The most integrated-gradients steps the CLI takes: time grows with the steps (memory does not),
and the trapezoid rule's error is already below 1e-8 of the integral there."""

# ------------------------------------------------------------------ filters and feature maps

FILTER_VIEWS: tuple[str, ...] = ("auto", "rgb", "channels", "mean")
"""How :func:`probe.filters` draws a kernel: auto (rgb for 3 input channels, one map for 1, else channels)."""

FILTER_SCALES: tuple[str, ...] = ("kernel", "layer")
"""A filters gallery's colour scale: per kernel or per layer."""

ACTIVATION_SCALES: tuple[str, ...] = ("map", "layer")
"""A feature-maps gallery's colour scale: per map or per layer."""

# ------------------------------------------------------------------ dream and style

DREAM_OBJECTIVES: tuple[str, ...] = ("l2", "mean")
"""What a dream maximizes: the mean squared activation, or the mean activation."""

DREAM_AUTO_MIN_SIDE = 256
"""``probe dream --size auto``: the longer side is twice the model's input size, and at least this."""

STYLE_LOSSES: tuple[str, ...] = ("gram", "w2")
"""The style losses :func:`probe.style_transfer` takes: Gram matrices or Wasserstein-2 of mean and covariance."""

STYLE_STEPS = 300
"""Style transfer's default steps per scale."""
STYLE_CONTENT_WEIGHT = 1.0
"""Style transfer's default weight of the content loss."""
STYLE_STYLE_WEIGHT = 1e3
"""Style transfer's default weight of the style loss."""
STYLE_TV_WEIGHT = 1.0
"""Style transfer's default weight of the total-variation loss."""
STYLE_LEARNING_RATES: dict[str, float] = {"lbfgs": 1.0, "adam": 0.02}
"""Style transfer's optimizers, L-BFGS (the default) first, each -> its default learning rate."""

POOLINGS: tuple[str, ...] = ("max", "avg")
"""Style transfer's pooling: the model's max pools as trained, or swapped for average pools."""

# ------------------------------------------------------------------ atlas

ATLAS_DIVERSITY = 10.0
"""The atlas's default weight of the diversity term when it makes several images per unit."""

ATLAS_TIMEOUT_S = 600.0
"""Default ``--timeout``: seconds without progress after which a rank counts as hung or gone. Every step
counts as progress, so it only needs to exceed the slowest single step (loading the model, one optimization
step of a large model on a CPU)."""
