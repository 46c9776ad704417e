"""cnn-probe: see what a convolutional network learned.

The public API, re-exported here::

    import probe
    m = probe.load_model("digits")                       # embedded, offline
    with probe.record(m.module, ["conv1", "conv2"]) as acts:
        m(images)                                        # images (N, 1, 28, 28) in [0, 1]
    acts["conv2"].shape                                  # (N, 50, 11, 11)
    probe.layers(m.module, m.input_shape)                # names, types, output shapes
    from probe import objectives as O
    result = probe.maximize(m, O.channel("conv2", range(50)))   # 50 images, one batch

Importing has no side effects and is light: each name is imported from its module the first time it is used
(PEP 562), so ``import probe`` (and the ``probe`` command's ``--help`` and ``--version``) does not import torch.
"""

from __future__ import annotations

import importlib
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (milliseconds of the command's start)

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # recording and models
    "record": "probe.hooks", "capture": "probe.hooks", "layers": "probe.hooks", "evaluating": "probe.hooks",
    "Recording": "probe.hooks", "LayerInfo": "probe.hooks", "INPUT": "probe.hooks", "OUTPUT": "probe.hooks",
    "load_model": "probe.models", "LoadedModel": "probe.models", "Preprocess": "probe.models",
    "load_image": "probe.images", "to_pil": "probe.images", "resolve_device": "probe.devices",
    # activation maximization
    "maximize": "probe.optimize", "MaximizeResult": "probe.optimize",
    "objectives": "", "param": "", "transforms": "",  # "": the submodule itself (probe.objectives.channel(...))
    "accentuate": "probe.accentuate",
    # dream and style
    "dream": "probe.dream", "DreamResult": "probe.dream",
    "style_transfer": "probe.style", "StyleResult": "probe.style", "gram_matrix": "probe.style",
    "content_loss": "probe.style", "style_loss": "probe.style", "total_variation_loss": "probe.style",
    # one prediction
    "feature_maps": "probe.featuremaps", "FeatureMaps": "probe.featuremaps", "filters": "probe.kernels",
    "Filters": "probe.kernels", "attribute": "probe.attribution", "Attribution": "probe.attribution",
    "ATTRIBUTION_METHODS": "probe.attribution:METHODS",
    # errors
    "ProbeError": "probe.errors", "ProbeUsageError": "probe.errors", "ProbeRuntimeError": "probe.errors",
}
"""Each public name -> the module that defines it (``module:name`` where it is named otherwise there)."""

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use and keep it here (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'probe' has no attribute {name!r}")
    module, _, attribute = _EXPORTS[name].partition(":")
    value = importlib.import_module(f"probe.{name}") if not module else getattr(
        importlib.import_module(module), attribute or name)
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """``probe`` itself. ``probe.dream`` and ``probe.accentuate`` are functions named like their modules: when
    the import system binds a freshly imported submodule ``probe.dream`` on the package, the function is bound
    instead (as the eager ``from probe.dream import dream`` did), so ``probe.dream(...)`` keeps working whoever
    imported the submodule first."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

if TYPE_CHECKING:  # what static checkers and IDEs see; at run time __getattr__ imports each on first use
    from typing import Any

    from probe import objectives, param, transforms
    from probe.accentuate import accentuate
    from probe.attribution import METHODS as ATTRIBUTION_METHODS
    from probe.attribution import Attribution, attribute
    from probe.devices import resolve_device
    from probe.dream import DreamResult, dream
    from probe.errors import ProbeError, ProbeRuntimeError, ProbeUsageError
    from probe.featuremaps import FeatureMaps, feature_maps
    from probe.hooks import INPUT, OUTPUT, LayerInfo, Recording, capture, evaluating, layers, record
    from probe.images import load_image, to_pil
    from probe.kernels import Filters, filters
    from probe.models import LoadedModel, Preprocess, load_model
    from probe.optimize import MaximizeResult, maximize
    from probe.style import StyleResult, content_loss, gram_matrix, style_loss, style_transfer, total_variation_loss
