"""Turn a model spec into a ready model: module, preprocessing and class labels.

A *spec* is one of (each a source in :mod:`probe.models.sources`, asked in this order):

- an embedded zoo name (``"digits"``, ``"lenet5"``, ``"xo"``, ``"shapes"``):
  offline, with the weights shipped in the package;
- a torchvision classification model name (``"vgg16"``, ``"googlenet"``,
  ``"resnet50"``, ...): pretrained weights with ``weights="default"`` (torchvision
  downloads them once on a machine with internet), random weights with
  ``weights=None``, or a local state_dict file with ``weights="path/to.pt"``;
- ``"timm:NAME"``: ``timm.create_model(NAME)``, mean, std and input size from its
  ``pretrained_cfg`` (extra ``timm``);
- ``"hf:NAME_OR_DIR"``: a transformers image classifier, its logits as output (extra ``hf``);
- an ONNX file (``"model.onnx"``, through onnx2torch) or a TorchScript file
  (converted through ONNX so that hooks work; extra ``onnx``);
- ``"path/to/file.py:factory"``, ``"package.module:factory"`` or
  ``"package.module.Class"``: a function or class returning your own ``nn.Module``
  (or a :class:`LoadedModel`, whose preprocessing and labels are kept; imported and
  called because you named it: only name code you trust; what it prints goes to
  stderr);
- an ``nn.Module`` you already have (used as it is, never modified).

A compiled or data-parallel module runs its inner module under the wrapper's
names; a TorchScript module (a file's, a factory's or yours) is converted to
hookable modules of the same names; a torch.export program is refused saying
what to give instead.

Any spec may end in literal arguments, ``"factory(num_classes=10)"``, passed to
its builder with ``model_args``. Random initializations follow ``seed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe import zoo
from probe.devices import normalize_device, resolve_device, same_device
from probe.errors import ProbeUsageError, unknown_name
from probe.models import sources as _sources  # noqa: F401  (registers the sources)
from probe.models.forms import check_form, eager_view, materialize
from probe.models.preprocess import adjust_preprocess, module_preprocess
from probe.models.registry import SOURCES, ModelSource, Request, find_source, parse_model_args, register_source, split_call
from probe.models.sources.files import hookable
from probe.models.sources.hf_models import HFClassifier, is_hf_classifier
from probe.models.sources.torchvision_models import torchvision_names
from probe.models.takes import check_takes_images
from probe.models.types import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, Preprocess, frozen_view
from probe.models.weights import is_none, load_state_dict_file, seeded
from probe.runtime import float32_default

__all__ = [
    "Preprocess", "LoadedModel", "load_model", "as_loaded", "load_state_dict_file", "frozen_view", "torchvision_names",
    "model_names", "ModelSource", "register_source", "SOURCES", "IMAGENET_MEAN", "IMAGENET_STD", "HFClassifier",
    "taking_images",
]  # fmt: skip


def model_names() -> list[str]:
    """Every model name :func:`load_model` knows by name: the zoo first, then torchvision."""
    return list(zoo.zoo_names()) + torchvision_names()


def _module_device(module: nn.Module) -> torch.device:
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


def _check_device(here: torch.device, device: str | torch.device | None, what: str) -> None:
    if device in (None, "auto"):
        return
    wanted = resolve_device(device)
    if not same_device(wanted, here):
        raise ProbeUsageError(
            f"{what} lives on {here}, not {wanted}; move or load it there yourself "
            f"(module.to({str(device)!r}) or probe.load_model(spec, device={str(device)!r})): "
            "cnn-probe does not move a model it did not create",
            param="device",
        )


def _freeze(module: nn.Module, device: torch.device) -> nn.Module:
    module.eval()
    for parameter in module.parameters():  # not requires_grad_(): ScriptModules lack it
        parameter.requires_grad_(False)
    return module.to(device)


def _build(text: str, weights: Any, target: torch.device, request: Request) -> LoadedModel:
    spec, args, kwargs = split_call(text)
    source = find_source(spec)
    if source is None:
        forms = "; or " + ", ".join(s.form for s in SOURCES if s.form and s.names is None)
        error = unknown_name("model", spec, model_names(), param="model", limit=12)
        raise ProbeUsageError(str(error) + forms, param="model")
    if isinstance(weights, str) and weights.lower() == "offline":  # what needs no network: shipped, or random
        weights = None if source.downloads(spec) else "default"
    request = Request(weights, request.seed, args, {**kwargs, **request.kwargs}, request.input_size, request.channels)
    with seeded(request.seed), float32_default():  # a float64 default would build a float64 model
        built = source.build(spec, request)
        channels = request.channels or built.preprocess.channels
        size = request.input_size or built.preprocess.input_size
        built.module = hookable(eager_view(built.module), f"the TorchScript module {text!r} returned", channels, size)
        check_form(built.module, built=True)
        materialize(built.module, channels, size)
    details = dict(built.details)
    if is_none(weights) and request.seed is not None:
        details["init_seed"] = request.seed
    if request.args or request.kwargs:
        details["model_args"] = {**{str(i): a for i, a in enumerate(request.args)}, **dict(request.kwargs)}
    return LoadedModel(name=text, module=_freeze(built.module, target), preprocess=built.preprocess,
                       labels=built.labels, device=target, source=source.name, weights=built.weights,
                       details=details)  # fmt: skip


def _wrap_module(module: nn.Module, device: str | torch.device | None, channels: int | None = None,
                 size: tuple[int, int] | None = None) -> LoadedModel:
    check_form(module)
    here = _module_device(module)
    _check_device(here, device, "your module")
    preprocess = module_preprocess(module)
    wrapped = HFClassifier(module) if is_hf_classifier(module) else eager_view(module)
    wrapped = hookable(wrapped, f"your TorchScript module ({type(module).__name__})", channels or preprocess.channels,
                       size or preprocess.input_size)  # fmt: skip
    return LoadedModel(name=type(module).__name__, module=wrapped, preprocess=preprocess, device=here, source="module")


def load_model(
    spec: str | Path | nn.Module | LoadedModel,
    weights: str | Path | None = "default",
    device: str | torch.device | None = "auto",
    *,
    seed: int | None = 0,
    model_args: Mapping[str, Any] | Sequence[str] | None = None,
    preprocess: Preprocess | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    channels: int | None = None,
    input_size: int | tuple[int, int] | None = None,
    labels: tuple[str, ...] | list[str] | None = None,
) -> LoadedModel:
    """Load a model by spec (see the module docstring) and make it ready for probing.

    Args:
        spec: a spec string (zoo or torchvision name, ``timm:NAME``,
            ``hf:NAME_OR_DIR``, ``.onnx``/TorchScript file, ``file.py:factory``,
            ``pkg.mod:factory``, each optionally with ``(literal arguments)``), an
            ``nn.Module`` or a :class:`LoadedModel`.
        weights: ``"default"`` (zoo: shipped; torchvision/timm: pretrained,
            downloaded once; hf folder: its own), None or ``"none"`` (random
            initialization, seeded by ``seed``), ``"offline"`` (default where it
            needs no network, else random), a torchvision weights name such as
            ``"IMAGENET1K_V1"``, or a state_dict file (``.pt``/``.pth`` loaded with
            ``weights_only=True``, or ``.safetensors``). Default ``"default"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ... An
            ``nn.Module`` or LoadedModel you pass stays where it is; ask for another
            device and you get an error rather than a moved module (``"cuda"``
            and ``"cuda:0"`` are the same device while device 0 is current).
        seed: seeds the random initialization of what is built (default 0;
            None: unseeded); the caller's global random state is not touched.
        model_args: keyword arguments for the builder (``{"num_classes": 10}``
            or ``["num_classes=10"]``), merged over those in the spec.
        preprocess: replace the normalization / channels / input size entirely.
        mean, std: per-channel statistics (one value serves every channel).
        channels: input channels; input_size: ``H`` or ``(H, W)``.
        labels: class names by output index, overriding what is known.

    Returns:
        A :class:`LoadedModel`.

    Raises:
        ProbeUsageError: unknown name (with the closest suggestion), unreadable
            weights, weights that do not fit, pretrained weights unavailable
            offline, a missing optional package (naming the extra), a model on
            another device than ``device``.
    """
    size = (input_size, input_size) if isinstance(input_size, int) else input_size
    if isinstance(spec, LoadedModel):
        _check_device(spec.device, device, f"model {spec.name!r}")
        loaded = spec
    elif isinstance(spec, nn.Module):
        loaded = _wrap_module(spec, device, channels, size)
    elif isinstance(spec, (str, Path)):
        request = Request(weights, seed, (), parse_model_args(model_args), size, channels)
        loaded = _build(str(spec), weights, normalize_device(resolve_device(device)), request)  # cuda -> cuda:N
    else:
        raise ProbeUsageError(
            f"expected a model spec, a torch.nn.Module or a LoadedModel; got {type(spec).__name__}", param="model"
        )
    if preprocess is not None or any(v is not None for v in (mean, std, channels, size)):
        loaded.preprocess = adjust_preprocess(preprocess or loaded.preprocess, mean=mean, std=std, channels=channels,
                                              input_size=size)  # fmt: skip
    if labels is not None:
        loaded.labels = tuple(labels)
    return taking_images(loaded)


def taking_images(model: LoadedModel | nn.Module, size: tuple[int, int] | None = None) -> LoadedModel | nn.Module:
    """``model``, once :func:`~probe.models.takes.check_takes_images` finds that it takes images: the one refusal
    of a model whose first layer takes none (a generator, a text or volume model), for every way a model comes in
    (a spec, your module, a LoadedModel you made; :func:`probe.layers` asks it too).

    Args:
        model: a :class:`LoadedModel` or an ``nn.Module`` (named ``your module (ClassName)``).
        size: ``(H, W)`` of the confirming pass; default the LoadedModel's input size (a module's: 224 x 224).

    Raises:
        ProbeUsageError: (naming ``model``) its first layer takes no image.
    """
    if isinstance(model, LoadedModel):
        name = f"your module ({model.name})" if model.source == "module" else model.name
        check_takes_images(model.module, name, size or model.preprocess.input_size)
    else:
        check_takes_images(model, f"your module ({type(model).__name__})", size or (224, 224))
    return model


def as_loaded(model: str | Path | nn.Module | LoadedModel, device: str | torch.device | None = None) -> LoadedModel:
    """The one way in: a spec, a module or a LoadedModel, plus a device -> a :class:`LoadedModel`.

    Every entry point (maximize, dream, style transfer, attribution, feature
    maps, filters) calls this. A spec is loaded on ``device`` (None or
    ``"auto"``: CUDA when available) with its default weights; a module or
    LoadedModel is used where it lives, and ``device``, when given, must name
    that device (``"cuda"`` matches ``cuda:0`` while device 0 is current).

    Raises:
        ProbeUsageError: the model lives elsewhere than ``device``; its first layer takes no image (a LoadedModel
            you made too); anything :func:`load_model` raises for a spec.
    """
    if isinstance(model, LoadedModel) and device in (None, "auto"):
        return taking_images(model)
    return load_model(model, device="auto" if device is None else device)
