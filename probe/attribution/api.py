"""``probe.attribute`` and ``probe.attribute_batch``: check the request, run each method, collect the maps."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from probe.attribution.cam import CamLayer, choose_cam_layer
from probe.attribution.extra import EXTRA_METHODS, completeness_gaps, run_extra
from probe.attribution.gradients import METHODS, Normalized, integration_method, run_gradient
from probe.attribution.occlusion import Progress
from probe.attribution.result import Attribution, heat_of, normalize_heatmap
from probe.attribution.scores import is_dense, no_scores
from probe.checks import check_count, check_names, check_number, check_seed, check_size
from probe.errors import ProbeRuntimeError, ProbeUsageError, unknown_name
from probe.forward import image_grad
from probe.hooks import CALL_SEPARATOR, evaluating, resolve_layers
from probe.inputs import model_input
from probe.memory import is_out_of_memory
from probe.models import LoadedModel, as_loaded
from probe.outputs import Prediction, check_reading, prediction_of, read_output
from probe.runtime import check_finite_output, with_gradients

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


def _methods(method: str | Iterable[str]) -> list[str]:
    names = list(METHODS) if method == "all" else check_names(method, "method", "method name", "'saliency'")
    for name in names:
        if name not in METHODS and name not in EXTRA_METHODS:
            raise unknown_name("method", name, [*METHODS, *EXTRA_METHODS, "all"], param="method")
    if not names:
        raise ProbeUsageError("no attribution method given", param="method")
    return list(dict.fromkeys(names))


GRADIENT_FREE = ("occlusion",)
"""Methods that read only scores, so they run on a model whose forward cuts the image's gradient."""


def check_gradient_reaches(forward: nn.Module, x: torch.Tensor, index: int) -> None:
    """Refuse, in one line, a model whose score for class ``index`` gets no gradient from the image ``x``
    ``(1, C, H, W)``: its forward cuts the graph (``torch.no_grad()``, ``.detach()``, a NumPy round trip), and
    captum's gradient methods fail with autograd's own error. One forward and backward pass, run only once a
    gradient method has failed (a successful method proves the gradient reaches).

    Raises:
        ProbeRuntimeError: no gradient reaches the image (the model's doing; occlusion still runs).
    """
    image = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        score = forward(image)[0, index]
        reached = score.requires_grad and image_grad(score, image, allow_unused=True)[0] is not None
    if not reached:
        raise ProbeRuntimeError(
            "no gradient reaches the image from the model's output: its forward cuts the graph (torch.no_grad(), "
            ".detach(), NumPy), so gradient methods cannot run; use --method occlusion, or remove the cut")


@with_gradients
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
    window: int | None = None,
    stride: int | None = None,
    progress: Progress | None = None,
    output: str = "auto",
) -> Attribution:
    """Attribute the model's score for ``target`` to the pixels of ``image``.

    Args:
        model: a :class:`LoadedModel`, a spec for :func:`probe.load_model`, or an ``nn.Module``.
        image: one image, as for :func:`probe.feature_maps` (resized to the model's input).
        method: one of :data:`METHODS`, several, or ``"all"`` (default ``"saliency"``).
        target: class to explain: None / ``"top"`` (the prediction), an index or a label.
        layer: Grad-CAM's layer: any layer with spatial positions, a ``(N, C, H, W)`` map, a channels-last
            ``(N, H, W, C)`` map or ``(N, L, C)`` tokens on a grid (leading class/distillation tokens dropped;
            :mod:`probe.attribution.cam`). Default None: the last layer, in the order layers finish, whose
            output has more than one position and whose positions the score depends on, before the global
            pooling and outside attention internals (ResNet's ``layer4.2``, VGG's last ReLU, ViT's and DeiT's
            last block's first norm, Swin's final map). The chosen one is ``result.layer``, described in
            ``result.options["gradcam_layer"]``.
        steps: integrated-gradients steps (default 50).
        samples: smoothgrad noisy samples (default 16).
        noise: smoothgrad noise standard deviation, in image units [0, 1] (default 0.1).
        baseline: the baseline of integrated gradients, DeepLift, GradientShap and
            occlusion: a grey level (default 0.0: black) or images in [0, 1],
            ``(C, H, W)`` or ``(K, C, H, W)`` (GradientShap draws from the K).
        seed: smoothgrad's noise seed (default 0); the global RNG is left as it was.
        size: input size ``(H, W)`` or an int; default the model's.
        window: occlusion's square window in pixels (default None: a 7 x 7 grid of windows that covers
            the image, aligned to the model's patches: 32 px at 224 px, 49 occluded passes at any size).
        stride: occlusion's step between windows in pixels (default None: the grid's, or half of ``window``).
        progress: ``progress(method, done, total)``, called as a method that runs many images advances
            (integrated gradients: ``steps``; smoothgrad and GradientShap: ``samples``; occlusion: its
            windows). Default None: silent.
        output: what the model's output is (:data:`probe.outputs.OUTPUT_READINGS`): ``"auto"`` (default: read by
            its shape; ``prediction.assumed`` says where the shape could not tell), ``"classes"`` (a picture read
            as per-pixel class scores, an embedding as logits) or ``"image"`` (a picture: refused, no class).

    Returns:
        An :class:`Attribution`.

    Raises:
        ProbeUsageError: unknown method or target, target out of range, a Grad-CAM
            layer without spatial output (or whose positions the score does not depend on), guided
            backprop asked for a model without ReLUs, a model whose output has no class scores
            (see :mod:`probe.attribution.scores`: ``(1, K)``, ``(1,)`` or a dense ``(1, K, H, W)`` map,
            whose class score is its summed map).
    """
    check_reading(output)
    loaded = as_loaded(model)
    methods = _methods(method)
    check_count(steps, "steps")
    check_count(samples, "samples")
    check_number(noise, "noise", 0)
    check_seed(seed)
    if size is not None:
        size = check_size(size)
    for name, value in (("window", window), ("stride", stride)):
        if value is not None:
            check_count(value, name)
            if "occlusion" not in methods:
                raise ProbeUsageError(f"--{name} is occlusion's; add --method occlusion", param=name)
    if not isinstance(baseline, torch.Tensor):
        check_number(baseline, "baseline")
    finite = bool(torch.isfinite(baseline).all()) if isinstance(baseline, torch.Tensor) else True
    if not finite:
        raise ProbeUsageError("the baseline must be finite (no NaN or inf)", param="baseline")
    module = loaded.module
    x = model_input(loaded, image, size)
    if layer is not None and "gradcam" not in methods:
        raise ProbeUsageError("--layer is Grad-CAM's layer; add --method gradcam (or all)", param="layer")
    if layer is not None and resolve_layers(module, [layer])[layer] is module:
        raise ProbeUsageError(f"Grad-CAM needs an inner layer, not {layer!r}", param="layer")

    forward = Normalized(loaded, output)
    attributions: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    with evaluating(module), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"captum\..*")
        warnings.filterwarnings("ignore", message=r".*(require gradients|backward hook|inplace).*")
        with torch.enable_grad():  # the output's graph tells a sigmoid or softmax head (its last node)
            returned = loaded(x.detach().clone().requires_grad_(True))
        read = read_output(returned, 1, module, image=tuple(x.shape), reading=output)
        prediction, dense = prediction_of(loaded, read), is_dense(read)
        if prediction is None:
            raise no_scores(loaded.name, read)
        del returned  # its graph: not held while the methods run
        check_finite_output(loaded.name, loaded.module, prediction.logits)
        index = resolve_target(target, prediction)
        cam = None
        if "gradcam" in methods:
            try:
                cam = choose_cam_layer(module, lambda image: forward(image)[0, index], x, layer,
                                       dense_classes=len(prediction.labels) if dense else None)
            except ProbeUsageError as error:
                check_gradient_reaches(forward, x, index)  # a cut graph: say so, not that no layer reaches
                if layer is not None or len(methods) == 1:
                    raise
                skipped["gradcam"] = str(error)
                methods = [name for name in methods if name != "gradcam"]
        for name in methods:
            try:
                if name in EXTRA_METHODS:
                    attributions[name] = run_extra(name, forward, x, index, samples, noise, baseline, seed,
                                                   window=window, stride=stride, progress=progress)
                else:
                    attributions[name] = run_gradient(name, forward, x, index, cam, steps, samples, noise,
                                                      baseline, seed, progress=progress)
            except (ProbeUsageError, RuntimeError) as error:
                if name not in GRADIENT_FREE and not is_out_of_memory(error):
                    check_gradient_reaches(forward, x, index)  # a cut graph: say so, not autograd's or captum's words
                if len(methods) == 1 or not isinstance(error, ProbeUsageError):
                    raise
                skipped[name] = str(error)
        gaps = completeness_gaps(forward, x, baseline, index, attributions)
    for name, attr in attributions.items():
        if not bool(torch.isfinite(attr).all()):
            raise ProbeRuntimeError(
                f"{name} gave NaN or infinite attributions (the gradients overflowed); check the model's weights, "
                "or use fewer --steps / a smaller --noise"
            )
    heatmaps = {name: normalize_heatmap(heat_of(name, attr)) for name, attr in attributions.items()}
    return Attribution(
        model=loaded.name,
        image=x[0].detach().cpu(),
        target=index,
        target_label=prediction.labels[index],
        prediction=prediction,
        attributions=attributions,
        heatmaps=heatmaps,
        layer=None if cam is None else cam.name,
        skipped=skipped,
        options={"steps": steps, "samples": samples, "noise": noise, "seed": seed,
                 "baseline": baseline if not isinstance(baseline, torch.Tensor) else f"tensor {tuple(baseline.shape)}",
                 "ig_method": integration_method(steps), "window": window, "stride": stride,
                 "completeness": gaps, "output": output,
                 **({} if cam is None or cam.layout is None else
                    {"gradcam_layer": {"name": cam.name, "map": cam.layout.describe(), "default": layer is None,
                                       "calls": _calls_note(cam)}})},
    )


def _calls_note(cam: CamLayer) -> str:
    """For Grad-CAM's layer that is one call of a module run several times, which call and why, in words for people
    (``"block runs 2 times in one pass, each call on what the one before returned: block#1 is its last"``); ``""``
    for a layer run once."""
    if CALL_SEPARATOR not in cam.name:
        return ""
    module, index = cam.name.split(CALL_SEPARATOR)
    chain = ", each call on what the one before returned (a shared block)" if cam.chained else ""
    which = "its last call" if int(index) == cam.calls - 1 else f"its call {index} (of 0 to {cam.calls - 1})"
    return f"{module} runs {cam.calls} times in one pass{chain}: {cam.name} is {which}"


@with_gradients
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
