"""The style-transfer objective: targets computed once, then one weighted loss per forward pass.

``total = content_weight * content + style_weight * style + tv_weight * tv``,
where ``content`` is the mean over content layers of the *relative* content
loss (mean squared feature error / mean square of the content's features) and
``style`` the weighted sum over style layers of the relative style loss (mean
squared Gram error / mean square of the target Gram matrix). Relative losses
let one set of weights serve every model and layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from probe.errors import ProbeUsageError, check_depends_on_image
from probe.forward import ModelInputError
from probe.hooks import capture
from probe.models.forms import why_not_run
from probe.runtime import Precision, autocast
from probe.style.layers import LayerPlan
from probe.style.losses import (
    content_loss,
    feature_moments,
    gram_matrix,
    relative_divisor,
    sqrtm_psd,
    style_loss,
    total_variation_loss,
    wasserstein_style_loss,
)

__all__ = ["StyleTargets", "StyleObjective", "LOSS_NAMES"]

LOSS_NAMES: tuple[str, ...] = ("content", "style", "tv", "total")
"""The losses every step reports (unweighted parts and the weighted total)."""


@dataclass
class StyleTargets:
    """Detached targets at one scale: content features and (blended) style Gram matrices, by module name."""

    content: dict[str, torch.Tensor]
    grams: dict[str, torch.Tensor]
    content_style: torch.Tensor | None = None
    """The content image's own style loss (the denominator of ``StyleResult.style_ratio``)."""
    moments: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    """For the ``"w2"`` style loss: ``{module: (mean (1, C), covariance (1, C, C), its square root)}``, blended."""
    divisors: dict[str, torch.Tensor] = field(default_factory=dict)
    """``{"content:MODULE" or "style:MODULE": relative_divisor(target)}``: what each relative loss divides by,
    computed once with the targets instead of at every step (missing ones are computed when needed; a
    target replaced after :meth:`StyleObjective.targets` needs its entry replaced or removed too)."""


@dataclass
class StyleObjective:
    """The weighted loss of an image batch under a layer plan.

    Attributes:
        net: the network to run (see :func:`probe.style.network.style_network`).
        normalize: images in [0, 1] -> the network's input (the model's mean/std).
        plan: content and style layers.
        style_layer_weights: ``{style layer name: weight}``, summing to 1.
        weights: ``(content_weight, style_weight, tv_weight)``.
        device: where autocast applies.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` for the forward pass.
        style_kind: ``"gram"`` (default: Gatys's Gram matrices) or ``"w2"``
            (:func:`~probe.style.losses.wasserstein_style_loss`: mean and covariance).
    """

    net: nn.Module
    normalize: Callable[[torch.Tensor], torch.Tensor]
    plan: LayerPlan
    style_layer_weights: Mapping[str, float]
    weights: tuple[float, float, float]
    device: torch.device
    precision: Precision = "fp32"
    style_kind: str = "gram"

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Float32 features of the plan's layers for ``(N, C, H, W)`` images; the forward stops at the deepest.

        Raises:
            ProbeUsageError: the image is too small for the layers, a layer did
                not run, or a style layer gives no feature maps.
        """
        with autocast(self.device, self.precision):
            try:
                captured = capture(self.net, self.normalize(images), self.plan.modules, stop_early=True)
            except ModelInputError:  # the model refused this image: a --size error as it is
                raise
            except ProbeUsageError as error:  # a module that runs several times: name the option it came from
                if error.param != "layer":  # about the model itself (its forward's arguments): as it is
                    raise
                content = [m for m in self.plan.content.values() if f"{m!r} runs" in str(error)]
                raise ProbeUsageError(str(error), param="content_layer" if content else "style_layer") from None
            except RuntimeError as error:
                if "too small" not in str(error) and "Kernel size can't be greater" not in str(error):
                    raise
                raise ProbeUsageError(
                    f"the image ({images.shape[-2]}x{images.shape[-1]}) is too small for the layers asked for "
                    f"({str(error).splitlines()[0]}); use a larger --size",
                    param="size",
                ) from None
        traced = images.requires_grad and torch.is_grad_enabled()
        for name, module in {**self.plan.content, **self.plan.style}.items():
            if module not in captured:
                raise ProbeUsageError(f"layer {name!r} ({module}) did not run in the forward pass: "
                                      f"{why_not_run(self.net, module)}", param="style_layer")
            if traced:  # a no_grad/detach in the model: only tv would move the image
                check_depends_on_image(captured[module], [name],
                                       param="content_layer" if name in self.plan.content else "style_layer")
            if name in self.plan.style and captured[module].dim() < 3:
                raise ProbeUsageError(
                    f"style layer {name!r} outputs shape {tuple(captured[module].shape)}; style layers need "
                    "feature maps (N, C, H, W): choose a convolutional layer",
                    param="style_layer",
                )
        return {module: tensor.float() for module, tensor in captured.items()}

    @torch.no_grad()
    def targets(self, content: torch.Tensor, styles: Sequence[torch.Tensor], blend: Sequence[float],
                content_features: dict[str, torch.Tensor] | None = None) -> StyleTargets:
        """Content features and style Gram matrices blended with ``blend``, detached: one pass per image.

        Args:
            content: ``(C, H, W)`` content image in [0, 1].
            styles: ``[(C, h, w)]`` style images (any sizes).
            blend: one weight per style image, summing to 1.
            content_features: :meth:`features` of ``content[None]`` when already computed (default None:
                computed here).
        """
        if content_features is None:
            content_features = self.features(content[None])
        grams: dict[str, torch.Tensor] = {}
        for style, weight in zip(styles, blend):
            style_features = self.features(style[None])
            for module in set(self.plan.style.values()):
                gram = weight * gram_matrix(style_features[module])
                grams[module] = grams[module] + gram if module in grams else gram
        kept = {module: content_features[module] for module in set(self.plan.content.values())}
        targets = StyleTargets(content=kept, grams=grams)
        targets.divisors = {**{f"content:{m}": relative_divisor(t) for m, t in kept.items()},
                            **{f"style:{m}": relative_divisor(g) for m, g in grams.items()}}
        if self.style_kind == "w2":
            targets.moments = self._moments(styles, blend)
        # The content image's style loss from the same features: no extra forward pass.
        targets.content_style = self.losses_of(content_features, content[None], targets)["style"]
        return targets

    def _moments(self, styles: Sequence[torch.Tensor],
                 blend: Sequence[float]) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The blended style mean and covariance of every style module, with the covariance's square root.

        Several styles blend their means and covariances linearly (an approximation of the W2 barycenter).
        """
        sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for style, weight in zip(styles, blend):
            style_features = self.features(style[None])
            for module in set(self.plan.style.values()):
                mean, cov = feature_moments(style_features[module])
                old = sums.get(module)
                sums[module] = (weight * mean, weight * cov) if old is None else (old[0] + weight * mean,
                                                                                   old[1] + weight * cov)
        return {module: (mean, cov, sqrtm_psd(cov)) for module, (mean, cov) in sums.items()}

    def losses(
        self, images: torch.Tensor, targets: StyleTargets, *, per_layer: bool = False
    ) -> dict[str, torch.Tensor]:
        """The losses of ``(N, C, H, W)`` images: ``content``, ``style``, ``tv`` and the weighted ``total``.

        With ``per_layer``, also ``content:NAME`` and ``style:NAME`` for each
        layer (relative, unweighted). All are scalars with the graph kept.
        """
        return self.losses_of(self.features(images), images, targets, per_layer=per_layer)

    def losses_of(
        self, features: dict[str, torch.Tensor], images: torch.Tensor, targets: StyleTargets, *, per_layer: bool = False
    ) -> dict[str, torch.Tensor]:
        """:meth:`losses` from features already computed by :meth:`features` for ``images``."""
        layers: dict[str, torch.Tensor] = {}
        divisors = targets.divisors
        for name, module in self.plan.content.items():
            layers[f"content:{name}"] = content_loss(features[module], targets.content[module], relative=True,
                                                     divisor=divisors.get(f"content:{module}"))
        for name, module in self.plan.style.items():
            if self.style_kind == "w2":
                mean, cov, root = targets.moments[module]
                layers[f"style:{name}"] = wasserstein_style_loss(features[module], mean, cov, target_cov_sqrt=root,
                                                                 relative=True)
            else:
                layers[f"style:{name}"] = style_loss(features[module], targets.grams[module], relative=True,
                                                     divisor=divisors.get(f"style:{module}"))
        content = sum(layers[f"content:{name}"] for name in self.plan.content) / len(self.plan.content)
        style = sum(self.style_layer_weights[name] * layers[f"style:{name}"] for name in self.plan.style)
        content_weight, style_weight, tv_weight = self.weights
        with torch.set_grad_enabled(torch.is_grad_enabled() and tv_weight != 0):  # weighted 0: reported, no gradient
            tv = total_variation_loss(images)
        parts = {
            "content": content,
            "style": style,
            "tv": tv,
            "total": content_weight * content + style_weight * style + tv_weight * tv,
        }
        return {**parts, **layers} if per_layer else parts
