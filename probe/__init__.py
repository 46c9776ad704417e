"""cnn-probe: see what a convolutional network learned.

The public API, re-exported here (importing has no side effects)::

    import probe
    m = probe.load_model("digits")                       # embedded, offline
    with probe.record(m.module, ["conv1", "conv2"]) as acts:
        m(images)                                        # images (N, 1, 28, 28) in [0, 1]
    acts["conv2"].shape                                  # (N, 50, 11, 11)
    probe.layers(m.module, m.input_shape)                # names, types, output shapes
    from probe import objectives as O
    result = probe.maximize(m, O.channel("conv2", range(50)))   # 50 images, one batch
"""

__version__ = "0.1.0"

from probe import objectives, param, transforms  # submodules: probe.objectives.channel(...), ...
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

__all__ = [
    "__version__",
    # recording and models
    "record", "capture", "layers", "evaluating", "Recording", "LayerInfo", "INPUT", "OUTPUT",
    "load_model", "LoadedModel", "Preprocess", "load_image", "to_pil", "resolve_device",
    # activation maximization
    "maximize", "MaximizeResult", "objectives", "param", "transforms", "accentuate",
    # dream and style
    "dream", "DreamResult",
    "style_transfer", "StyleResult", "gram_matrix", "content_loss", "style_loss", "total_variation_loss",
    # one prediction
    "feature_maps", "FeatureMaps", "filters", "Filters", "attribute", "Attribution", "ATTRIBUTION_METHODS",
    # errors
    "ProbeError", "ProbeUsageError", "ProbeRuntimeError",
]
