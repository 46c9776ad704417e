"""Source ``torchvision``: its classification models by name, pretrained (downloaded once), random or from a file."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from probe.errors import ProbeUsageError, unknown_name
from probe.models.registry import Built, ModelSource, Request, register_source
from probe.models.types import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from probe.models.weights import is_default, is_none, load_weights_into

__all__ = ["torchvision_names", "build", "SOURCE"]


PREFIX = "torchvision:"
"""An explicit prefix: ``torchvision:resnet18`` is ``resnet18``."""

_REFUSED = {
    "video": "video model: it takes clips (N, C, T, H, W), and cnn-probe probes 2-D image models (N, C, H, W)",
    "detection": "detection model: it takes a list of images and returns boxes; probe its backbone, a map of "
                 "features, with a factory file returning model.backbone (--model net.py:backbone)",
    "optical_flow": "optical-flow model: it takes two images; cnn-probe calls a model with one batch of images",
    "quantization": "int8 quantized model: no gradient flows through its quantized kernels; give the float "
                    "model of the same name",
}
"""The torchvision families other than classification and segmentation, and why each is refused."""


@lru_cache(maxsize=1)
def _families() -> dict[str, str]:
    """Every torchvision model name -> its family: ``""`` (classification), ``"segmentation"``, or a key of
    :data:`_REFUSED`."""
    import torchvision

    families = {name: "" for name in torchvision.models.list_models(module=torchvision.models)}
    for family in ("segmentation", *_REFUSED):
        families.update(dict.fromkeys(torchvision.models.list_models(module=getattr(torchvision.models, family)),
                                      family))  # fmt: skip
    return families


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(sorted(name for name, family in _families().items() if family in ("", "segmentation")))


def torchvision_names() -> list[str]:
    """Names of torchvision's classification and semantic segmentation models (``"alexnet"`` ...
    ``"wide_resnet101_2"``, ``"fcn_resnet50"``, ``"lraspp_mobilenet_v3_large"``)."""
    return list(_names())


def build(name: str, request: Request) -> Built:
    """Build torchvision model ``name`` (``torchvision:`` may prefix it); ``request.kwargs`` go to
    ``torchvision.models.get_model``.

    A segmentation model (``fcn_resnet50``, ...) returns ``{"out": (N, classes, H, W), "aux": ...}``; with
    random weights its backbone is random too (torchvision would download the backbone's). Video, detection,
    optical-flow and quantized names are refused in one line saying why.
    """
    import torchvision

    name = name.removeprefix(PREFIX)
    if name not in _families():
        raise unknown_name("torchvision model", name, _names(), param="model", limit=12)
    family = _families()[name]
    if family in _REFUSED:
        raise ProbeUsageError(f"{name!r} is a torchvision {_REFUSED[family]}", param="model")
    weights = request.weights
    weights_enum = torchvision.models.get_model_weights(name)
    meta_weights = weights_enum.DEFAULT
    kwargs: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        # Match the architecture of the pretrained checkpoints: no auxiliary heads, and
        # the input re-normalization those checkpoints were trained with.
        kwargs = {"aux_logits": False, "transform_input": True, "init_weights": False}
    if family == "segmentation":
        kwargs = {"weights_backbone": None}  # random means random: no download of the backbone's weights
    kwargs.update(request.kwargs)
    try:
        if is_default(weights) or (isinstance(weights, str) and hasattr(weights_enum, weights)):
            chosen = meta_weights if is_default(weights) else getattr(weights_enum, weights)
            meta_weights = chosen
            try:
                module = torchvision.models.get_model(name, weights=chosen, **request.kwargs)
            except (TypeError, ValueError):  # a model argument: reported below
                raise
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
            if not is_none(weights):
                load_weights_into(module, weights)
                described = str(weights)
    except ProbeUsageError:
        raise
    except (TypeError, ValueError) as error:  # a model argument torchvision refuses
        raise ProbeUsageError(f"torchvision refused the arguments of {name!r}: {error}", param="model_arg") from None
    transforms = meta_weights.transforms()
    crop = getattr(transforms, "crop_size", None) or getattr(transforms, "resize_size", None) or [224]
    size = int(crop[0]) if isinstance(crop, (list, tuple)) else int(crop)
    labels = tuple(meta_weights.meta.get("categories", ())) or None
    classes = request.kwargs.get("num_classes")
    return Built(
        module,
        Preprocess(tuple(getattr(transforms, "mean", IMAGENET_MEAN)), tuple(getattr(transforms, "std", IMAGENET_STD)),
                   3, (size, size)),  # fmt: skip
        labels=None if classes is not None and labels is not None and classes != len(labels) else labels,
        weights=described,
    )


SOURCE = register_source(ModelSource(
    "torchvision", lambda spec: spec.startswith(PREFIX) or spec in _families(), build, downloads=lambda spec: True, names=torchvision_names,
    form="vgg16, googlenet, resnet50, ... or torchvision:NAME (torchvision)",
))  # fmt: skip
