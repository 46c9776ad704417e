"""Source ``torchvision``: its classification models by name, pretrained (downloaded once), random or from a file."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from probe.errors import ProbeUsageError
from probe.models.registry import Built, ModelSource, Request, register_source
from probe.models.types import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from probe.models.weights import is_default, is_none, load_weights_into

__all__ = ["torchvision_names", "build", "SOURCE"]


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def torchvision_names() -> list[str]:
    """Names of torchvision's classification models (``"alexnet"`` ... ``"wide_resnet101_2"``)."""
    return list(_names())


def build(name: str, request: Request) -> Built:
    """Build torchvision model ``name``; ``request.kwargs`` go to ``torchvision.models.get_model``."""
    import torchvision

    weights = request.weights
    weights_enum = torchvision.models.get_model_weights(name)
    meta_weights = weights_enum.DEFAULT
    kwargs: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        # Match the architecture of the pretrained checkpoints: no auxiliary heads, and
        # the input re-normalization those checkpoints were trained with.
        kwargs = {"aux_logits": False, "transform_input": True, "init_weights": False}
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
    crop = getattr(transforms, "crop_size", [224])
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
    "torchvision", lambda spec: spec in _names(), build, downloads=lambda spec: True, names=torchvision_names,
    form="vgg16, googlenet, resnet50, ... (torchvision)",
))  # fmt: skip
