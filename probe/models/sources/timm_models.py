"""Source ``timm``: ``timm:NAME`` through timm's own ``create_model``; its ``pretrained_cfg`` gives mean, std and size.

``timm:NAME(k=v)`` and ``timm:create_model('NAME', k=v)`` (timm's call, written
as a factory spec) build the same model.
"""

from __future__ import annotations

from probe.errors import ProbeUsageError, unknown_name
from probe.models.preprocess import timm_preprocess
from probe.quiet import import_tqdm_quietly
from probe.models.registry import Built, ModelSource, Request, register_source
from probe.models.weights import is_default, is_none, load_weights_into, require

PREFIX = "timm:"


def build(spec: str, request: Request) -> Built:
    """``timm.create_model(NAME, pretrained=..., **kwargs)``; pretrained weights come through timm (network once)."""
    import_tqdm_quietly()  # timm imports tqdm.auto through huggingface_hub: no "IProgress" warning in notebooks
    timm = require("timm", "timm", f"model {spec!r}")
    name, args, kwargs = spec[len(PREFIX):], request.args, dict(request.kwargs)
    if name == "create_model":  # timm:create_model('resnet18', ...) or (model_name='resnet18'): timm's own call
        if args and isinstance(args[0], str):
            name, args = args[0], args[1:]
        elif isinstance(kwargs.get("model_name"), str):
            name = kwargs.pop("model_name")
    if not timm.is_model(name):
        raise unknown_name("timm model", name, timm.list_models(), param="model", limit=12)
    pretrained = is_default(request.weights)
    try:
        module = timm.create_model(name, *args, pretrained=pretrained, **kwargs)
    except (TypeError, ValueError, KeyError) as error:
        raise ProbeUsageError(f"timm refused the arguments of {name!r}: {error}", param="model_arg") from None
    except Exception as error:  # no internet, no cached weights
        raise ProbeUsageError(
            f"cannot get the pretrained weights of timm model {name!r} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); timm downloads them once on a machine with internet. "
            "Offline, pass --weights none (random, seeded) or --weights PATH (a state_dict or .safetensors file)",
            param="weights",
        ) from None
    described = "pretrained (timm)" if pretrained else "random"
    if not pretrained and not is_none(request.weights):
        load_weights_into(module, request.weights)
        described = str(request.weights)
    return Built(module, timm_preprocess(dict(module.pretrained_cfg), module), weights=described, details={"timm_model": name})


SOURCE = register_source(ModelSource(
    "timm", lambda spec: spec.startswith(PREFIX), build, downloads=lambda spec: True, form="timm:NAME",
))  # fmt: skip
