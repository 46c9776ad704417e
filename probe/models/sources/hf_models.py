"""Source ``hf``: ``hf:NAME_OR_DIR``, a transformers image classifier whose forward returns its logits.

A local folder (``save_pretrained``) loads with ``from_pretrained``; with
``weights=None`` only its ``config.json`` is read and the weights are a seeded
random initialization (offline, for tests). A hub name downloads once through
transformers. The module is wrapped by :class:`HFClassifier` so class objectives
and attribution see a ``(N, K)`` tensor, and layer names stay transformers'
(``resnet.encoder.stages.0``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeUsageError
from probe.forward import passes_through
from probe.models.preprocess import hf_preprocess
from probe.quiet import import_tqdm_quietly
from probe.models.registry import Built, ModelSource, Request, register_source
from probe.models.weights import is_default, is_none, load_weights_into, require

__all__ = ["HFClassifier", "is_hf_classifier", "build", "SOURCE"]

PREFIX = "hf:"


class HFClassifier(nn.Module):
    """A transformers image classifier whose ``forward(pixel_values)`` returns ``.logits`` ``(N, K)``.

    The wrapper shares the model's submodules, parameters and buffers (the same
    dictionaries), so named_modules() gives transformers' own names and nothing is
    copied; the wrapped model is never changed.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "wrapped", model)  # not a child: its children are ours
        self._modules = model._modules
        self._parameters = model._parameters
        self._buffers = model._buffers

    @property
    def training(self) -> bool:  # type: ignore[override]
        """The wrapped model's own flag: setting the wrapper's (``train()``, ``eval()``, a restore of every
        module's flag by :func:`probe.modes.evaluating`, which sees the wrapper, not the wrapped model) sets
        it, so a caller's model in train mode is in train mode again after cnn-probe ran it."""
        return self.__dict__["wrapped"].training if "wrapped" in self.__dict__ else self.__dict__.get("_mode", True)

    @training.setter
    def training(self, mode: bool) -> None:
        if "wrapped" in self.__dict__:
            self.__dict__["wrapped"].training = mode
        else:  # nn.Module.__init__, before the model is wrapped
            self.__dict__["_mode"] = mode

    @passes_through  # an error raised inside is the model's, not cnn-probe's
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` normalized images -> ``(N, K)`` logits."""
        return self.wrapped(pixel_values=pixel_values).logits


def is_hf_classifier(module: nn.Module) -> bool:
    """True for a transformers ``PreTrainedModel`` whose outputs carry logits (an ``*ForImageClassification``)."""
    transformers = sys.modules.get("transformers")  # never imported just to ask
    if transformers is None or not isinstance(module, transformers.PreTrainedModel):
        return False
    return type(module).__name__.endswith("ForImageClassification")


def _labels(config: Any) -> tuple[str, ...] | None:
    id2label = getattr(config, "id2label", None) or {}
    labels = tuple(str(id2label[i]) for i in sorted(id2label))
    return None if not labels or all(label.startswith("LABEL_") for label in labels) else labels


def build(spec: str, request: Request) -> Built:
    """Load ``hf:NAME_OR_DIR`` as an :class:`HFClassifier`; ``request.kwargs`` go to the config."""
    import_tqdm_quietly()  # transformers' logging imports tqdm.auto: no "IProgress" warning in notebooks
    require("transformers", "hf", f"model {spec!r}")
    from transformers import AutoConfig, AutoModelForImageClassification

    name = spec[len(PREFIX):]
    folder = Path(name).expanduser()
    source = str(folder) if folder.is_dir() else name
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Loading weights" bars are noise beside cnn-probe's own output
    try:
        config = AutoConfig.from_pretrained(source, **request.kwargs)
        if getattr(config, "architectures", None) is None:  # a config built by hand, not saved from a model:
            config.architectures = []  # transformers iterates it to choose among DeiT's, LeViT's, Perceiver's heads
        if is_default(request.weights):
            model = AutoModelForImageClassification.from_pretrained(source, config=config)
            described = "in folder" if folder.is_dir() else "pretrained (hub)"
        else:
            model = AutoModelForImageClassification.from_config(config)
            described = "random"
            if not is_none(request.weights):
                load_weights_into(model, request.weights)
                described = str(request.weights)
    except ProbeUsageError:
        raise
    except Exception as error:  # not a folder with config.json, no internet, not an image classifier
        first = str(error).splitlines()[0] if str(error) else ""
        raise ProbeUsageError(
            f"cannot load {spec!r} as a transformers image classifier ({type(error).__name__}: {first}); give a folder "
            "written by save_pretrained (config.json and weights) or a hub name reachable from here",
            param="model",
        ) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return Built(HFClassifier(model), hf_preprocess(config, source),
                 labels=_labels(config), weights=described, details={"hf_class": type(model).__name__})  # fmt: skip


SOURCE = register_source(ModelSource(
    "hf", lambda spec: spec.startswith(PREFIX), build, downloads=lambda spec: not Path(spec[len(PREFIX):]).is_dir(),
    form="hf:NAME_OR_DIR",
))  # fmt: skip
