"""Turn a model spec into a ready model: module, preprocessing and class labels.

A *spec* is one of:

- an embedded zoo name (``"digits"``, ``"lenet5"``, ``"xo"``, ``"shapes"``):
  offline, with the weights shipped in the package;
- a torchvision classification model name (``"vgg16"``, ``"googlenet"``,
  ``"resnet50"``, ...): pretrained weights with ``weights="default"`` (torchvision
  downloads them once on a machine with internet), random weights with
  ``weights=None``, or a local state_dict file with ``weights="path/to.pt"``;
- a TorchScript file (``"model.ts"``);
- an import path ``"package.module:factory"`` to a function returning your own
  ``nn.Module`` (the factory is imported and called: only name code you trust);
- an ``nn.Module`` you already have (wrapped as it is, never modified).

Every image cnn-probe handles is a float tensor in ``[0, 1]``; the model's own
normalization (``(x - mean) / std``) is applied by :meth:`LoadedModel.__call__`
and :meth:`Preprocess.normalize`, so objectives and hooks see what the network
was trained on.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe import zoo
from probe.devices import resolve_device
from probe.errors import ProbeUsageError, unknown_name

__all__ = ["Preprocess", "LoadedModel", "load_model", "load_state_dict_file", "torchvision_names", "model_names"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")


@dataclass(frozen=True)
class Preprocess:
    """How images in ``[0, 1]`` become the model's input.

    Attributes:
        mean: per-channel mean subtracted, length ``channels``.
        std: per-channel standard deviation divided by, length ``channels``.
        channels: input channels the model expects (1 grayscale, 3 RGB, ...).
        input_size: ``(H, W)`` the model was trained at; the default size of
            synthesized images.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    input_size: tuple[int, int]

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1) + (1,) * (like.dim() - 2)
        mean = torch.as_tensor(self.mean, device=like.device, dtype=like.dtype).view(shape)
        std = torch.as_tensor(self.std, device=like.device, dtype=like.dtype).view(shape)
        return mean, std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` images in ``[0, 1]`` -> the model's normalized input, same shape."""
        self.check_channels(images)
        mean, std = self._stats(images)
        return (images - mean) / std

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: the model's input -> images in ``[0, 1]`` (not clamped)."""
        mean, std = self._stats(inputs)
        return inputs * std + mean

    def check_channels(self, images: torch.Tensor) -> None:
        """Raise a clear error unless ``images`` is ``(N, channels, H, W)``."""
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ProbeUsageError(
                f"the model expects images of shape (N, {self.channels}, H, W); got {tuple(images.shape)}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image."""
        return (self.channels, *self.input_size)


@dataclass
class LoadedModel:
    """A model ready for probing.

    Attributes:
        name: the spec it was loaded from (``"digits"``, ``"vgg16"``, ...).
        module: the ``nn.Module``; hooks and layer names refer to it. Models that
            cnn-probe builds are in eval mode with frozen parameters; a module you
            passed in is kept exactly as it was.
        preprocess: normalization, channels and input size.
        labels: class names by output index, when known.
        device: where the module's parameters live.
        source: ``"zoo"``, ``"torchvision"``, ``"torchscript"``, ``"factory"`` or ``"module"``.
        weights: what weights were loaded, in words (``"shipped"``, ``"random"``, a path, ...).
    """

    name: str
    module: nn.Module
    preprocess: Preprocess
    labels: tuple[str, ...] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: str = "module"
    weights: str = "as given"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image."""
        return self.preprocess.input_shape

    def __call__(self, images: torch.Tensor) -> Any:
        """Run the module on ``(N, C, H, W)`` images in ``[0, 1]`` (normalized here)."""
        return self.module(self.preprocess.normalize(images))

    def frozen(self, channels_last: bool = False) -> LoadedModel:
        """This model with a module whose parameters do not require grad, for optimizing inputs.

        Autograd computes every weight gradient of a layer whose parameters
        require grad, even when only the input's gradient is asked for: about
        10-20% of a backward pass wasted in maximize, dream and style. Models
        cnn-probe builds are frozen already and come back as they are; for a
        module you passed in, the result holds a weight-sharing view of it (see
        :func:`frozen_view`), and your module is not touched.

        Args:
            channels_last: also store the convolution weights channels-last
                (default False), see :func:`frozen_view`.
        """
        view = frozen_view(self.module, channels_last=channels_last)
        return self if view is self.module else replace(self, module=view)

    def label(self, index: int) -> str:
        """The class name of output ``index``, or ``"class <index>"`` when labels are unknown."""
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return f"class {index}"

    def __repr__(self) -> str:
        return (
            f"LoadedModel(name={self.name!r}, source={self.source!r}, weights={self.weights!r}, "
            f"input_shape={self.input_shape}, device={str(self.device)!r})"
        )


def frozen_view(module: nn.Module, channels_last: bool = False) -> nn.Module:
    """A copy of ``module``'s structure that shares its weights, with no parameter requiring grad.

    Parameters become ``nn.Parameter(p.detach(), requires_grad=False)`` over the
    same storage and buffers are shared, so the view costs no weight memory and
    sees later changes of the weights. Its mode flags are the module's. Returns
    ``module`` itself when no parameter requires grad and ``channels_last`` is
    off, or when it cannot be copied (TorchScript).

    Args:
        module: the network; never changed.
        channels_last: store the 4-D (convolution) weights of the view in
            channels-last memory format (default False). Convolutions then
            run, and return their outputs, channels-last whatever the input's
            format, the one GPU tensor cores want. On a 2-core CPU
            (``python -m benchmarks --suite options``) googlenet galleries
            and dreams run 1.3x faster, VGG19 style transfer 5% slower.
            Those weights are copies (their memory once more; later changes
            of the module's weights are not seen); the others stay shared.
    """
    parameters = list(module.parameters())
    if not channels_last and not any(p.requires_grad for p in parameters):
        return module

    def frozen(tensor: torch.Tensor) -> nn.Parameter:
        data = tensor.detach()
        if channels_last and data.dim() == 4:
            data = data.contiguous(memory_format=torch.channels_last)
        return nn.Parameter(data, requires_grad=False)

    memo: dict[int, Any] = {id(p): frozen(p) for p in parameters}
    memo.update({id(b): b for b in module.buffers()})
    try:
        return copy.deepcopy(module, memo)
    except Exception:  # TorchScript and modules that refuse to be copied: use them as they are
        return module


def torchvision_names() -> list[str]:
    """Names of torchvision's classification models (``"alexnet"`` ... ``"wide_resnet101_2"``)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def model_names() -> list[str]:
    """Every model name :func:`load_model` knows: the zoo first, then torchvision."""
    return list(zoo.zoo_names()) + torchvision_names()


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict safely (``torch.load(..., weights_only=True)``) onto the CPU.

    Accepts a plain state_dict or a checkpoint dict that holds one under
    ``state_dict``/``model_state_dict``/``model``/``net``; strips the ``module.``
    prefix that ``DataParallel`` adds.

    Raises:
        ProbeUsageError: the file is missing, unreadable, or holds no state_dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ProbeUsageError(f"weights file {str(path)!r} does not exist", param="weights")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors, zip errors, truncated files
        raise ProbeUsageError(
            f"cannot read weights file {str(path)!r}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            " (weights are loaded with weights_only=True; save them with torch.save(model.state_dict(), path))",
            param="weights",
        ) from None
    if isinstance(loaded, dict):
        for key in _STATE_DICT_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ProbeUsageError(f"weights file {str(path)!r} holds no state_dict of tensors", param="weights")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key[len("module.") :]: value for key, value in loaded.items()}
    return loaded


def _load_weights_into(module: nn.Module, path: str | Path) -> None:
    state = load_state_dict_file(path)
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")

        raise ProbeUsageError(
            f"weights file {str(path)!r} does not fit this architecture: "
            f"missing keys: {few(result.missing_keys) or 'none'}; unexpected keys: {few(result.unexpected_keys) or 'none'}",
            param="weights",
        )


def _freeze(module: nn.Module, device: torch.device) -> nn.Module:
    module.eval()
    for parameter in module.parameters():  # not requires_grad_(): ScriptModules lack it
        parameter.requires_grad_(False)
    return module.to(device)


def _is_default(weights: Any) -> bool:
    return isinstance(weights, str) and weights.lower() in ("default", "shipped", "pretrained")


def _is_none(weights: Any) -> bool:
    return weights is None or (isinstance(weights, str) and weights.lower() in ("none", "random"))


def _first_conv_channels(module: nn.Module, fallback: int = 3) -> int:
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return sub.in_channels
        in_channels = getattr(sub, "in_channels", None)  # TorchScript convolutions keep the attribute
        if isinstance(in_channels, int):
            return in_channels
    return fallback


def _load_zoo(name: str, weights: Any, device: torch.device) -> LoadedModel:
    spec = zoo.get_spec(name)
    if _is_default(weights):
        source_weights: Any = "shipped"
    elif _is_none(weights):
        source_weights = None
    else:
        source_weights = Path(weights)
        if not source_weights.is_file():
            raise ProbeUsageError(f"weights file {str(weights)!r} does not exist", param="weights")
    module = zoo.build_zoo_model(name, weights="shipped" if source_weights == "shipped" else None)
    if isinstance(source_weights, Path):
        _load_weights_into(module, source_weights)
    channels, height, width = spec.input_shape
    return LoadedModel(
        name=name,
        module=_freeze(module, device),
        preprocess=Preprocess(tuple(spec.mean), tuple(spec.std), channels, (height, width)),
        labels=tuple(spec.labels),
        device=device,
        source="zoo",
        weights="shipped" if source_weights == "shipped" else ("random" if source_weights is None else str(weights)),
    )


def _load_torchvision(name: str, weights: Any, device: torch.device) -> LoadedModel:
    import torchvision

    weights_enum = torchvision.models.get_model_weights(name)
    meta_weights = weights_enum.DEFAULT
    kwargs: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        # Match the architecture of the pretrained checkpoints: no auxiliary heads, and
        # the input re-normalization those checkpoints were trained with.
        kwargs = {"aux_logits": False, "transform_input": True, "init_weights": False}
    if _is_default(weights) or (isinstance(weights, str) and hasattr(weights_enum, weights)):
        chosen = meta_weights if _is_default(weights) else getattr(weights_enum, weights)
        meta_weights = chosen
        try:
            module = torchvision.models.get_model(name, weights=chosen)
        except Exception as error:  # URLError, OSError, hub errors: no internet here
            raise ProbeUsageError(
                f"cannot get the pretrained weights of {name!r} ({type(error).__name__}: {error}). "
                "torchvision downloads them once on a machine with internet access. Offline, pass a local "
                "state_dict file (--weights PATH / weights='path.pt') or random weights (--weights none / "
                "weights=None), or use an embedded model that works offline (--model shapes, digits, ...)",
                param="weights",
            ) from None
        described = f"pretrained ({chosen.name})" if hasattr(chosen, "name") else "pretrained"
    else:
        module = torchvision.models.get_model(name, weights=None, **kwargs)
        described = "random"
        if not _is_none(weights):
            _load_weights_into(module, weights)
            described = str(weights)
    transforms = meta_weights.transforms()
    crop = getattr(transforms, "crop_size", [224])
    size = int(crop[0]) if isinstance(crop, (list, tuple)) else int(crop)
    return LoadedModel(
        name=name,
        module=_freeze(module, device),
        preprocess=Preprocess(
            tuple(getattr(transforms, "mean", IMAGENET_MEAN)),
            tuple(getattr(transforms, "std", IMAGENET_STD)),
            3,
            (size, size),
        ),
        labels=tuple(meta_weights.meta.get("categories", ())) or None,
        device=device,
        source="torchvision",
        weights=described,
    )


def _load_factory(spec: str, weights: Any, device: torch.device) -> LoadedModel:
    module_path, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_path), attribute)
    except (ImportError, AttributeError) as error:
        raise ProbeUsageError(
            f"cannot import model factory {spec!r}: {error}; give 'package.module:function' importable from here",
            param="model",
        ) from None
    module = factory()
    if not isinstance(module, nn.Module):
        raise ProbeUsageError(f"{spec!r} returned {type(module).__name__}, not a torch.nn.Module", param="model")
    described = "as built"
    if not (_is_default(weights) or _is_none(weights)):
        _load_weights_into(module, weights)
        described = str(weights)
    return LoadedModel(
        name=spec,
        module=_freeze(module, device),
        preprocess=_generic_preprocess(module),
        device=device,
        source="factory",
        weights=described,
    )


def _load_torchscript(path: Path, device: torch.device) -> LoadedModel:
    try:
        with warnings.catch_warnings():  # the user asked for TorchScript: torch's deprecation notice is noise here
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device)
    except Exception as error:
        raise ProbeUsageError(
            f"{str(path)!r} is not a TorchScript model ({type(error).__name__}). To load a state_dict, name the "
            "architecture and pass the file as weights: --model resnet18 --weights FILE",
            param="model",
        ) from None
    return LoadedModel(
        name=str(path),
        module=_freeze(module, device),
        preprocess=_generic_preprocess(module),
        device=device,
        source="torchscript",
        weights="in file",
    )


def _generic_preprocess(module: nn.Module) -> Preprocess:
    channels = _first_conv_channels(module)
    if channels == 3:
        return Preprocess(IMAGENET_MEAN, IMAGENET_STD, 3, (224, 224))
    return Preprocess((0.0,) * channels, (1.0,) * channels, channels, (224, 224))


def _module_device(module: nn.Module) -> torch.device:
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


def load_model(
    spec: str | Path | nn.Module | LoadedModel,
    weights: str | Path | None = "default",
    device: str | torch.device | None = "auto",
    *,
    preprocess: Preprocess | None = None,
    labels: tuple[str, ...] | list[str] | None = None,
) -> LoadedModel:
    """Load a model by spec (see the module docstring) and make it ready for probing.

    Args:
        spec: zoo name, torchvision name, TorchScript path, ``"pkg.mod:factory"``,
            or an ``nn.Module`` / :class:`LoadedModel`.
        weights: ``"default"`` (zoo: the shipped weights; torchvision: its
            pretrained ``DEFAULT`` weights, downloaded on first use), None or
            ``"none"`` (random initialization), a torchvision weights name such as
            ``"IMAGENET1K_V1"``, or a path to a state_dict file (loaded with
            ``weights_only=True``). Default ``"default"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ... An
            ``nn.Module`` you pass stays where it is; ask for another device and
            you get an error rather than a moved module.
        preprocess: override the normalization / channels / input size (needed
            for your own models when they were not trained on ImageNet statistics;
            the default for 3-channel models is ImageNet's, else none).
        labels: class names by output index, overriding what is known.

    Returns:
        A :class:`LoadedModel`.

    Raises:
        ProbeUsageError: unknown name (with the closest suggestion), unreadable
            weights, weights that do not fit, pretrained weights unavailable offline.
    """
    if isinstance(spec, LoadedModel):
        loaded = spec
    elif isinstance(spec, nn.Module):
        here = _module_device(spec)
        if device not in (None, "auto") and resolve_device(device) != here:
            raise ProbeUsageError(
                f"your module lives on {here}; move it yourself (module.to({str(device)!r})) — "
                "cnn-probe does not move a module it did not create",
                param="device",
            )
        loaded = LoadedModel(
            name=type(spec).__name__,
            module=spec,
            preprocess=_generic_preprocess(spec),
            device=here,
            source="module",
        )
    else:
        target = resolve_device(device)
        text = str(spec)
        if text in zoo.zoo_names():
            loaded = _load_zoo(text, weights, target)
        elif text in torchvision_names():
            loaded = _load_torchvision(text, weights, target)
        elif Path(text).expanduser().is_file():
            loaded = _load_torchscript(Path(text).expanduser(), target)
        elif ":" in text and not Path(text).suffix:
            loaded = _load_factory(text, weights, target)
        else:
            raise unknown_name("model", text, model_names(), param="model", limit=12)
    if preprocess is not None:
        loaded.preprocess = preprocess
    if labels is not None:
        loaded.labels = tuple(labels)
    return loaded

