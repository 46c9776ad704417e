"""cnn-probe: see what a convolutional network learned.

The public API, re-exported here (importing has no side effects)::

    import probe
    m = probe.load_model("digits")                       # embedded, offline
    with probe.record(m.module, ["conv1", "conv2"]) as acts:
        m(images)                                        # images (N, 1, 28, 28) in [0, 1]
    acts["conv2"].shape                                  # (N, 50, 11, 11)
    probe.layers(m.module, m.input_shape)                # names, types, output shapes
"""

__version__ = "0.1.0"

from probe.attribution import METHODS as ATTRIBUTION_METHODS
from probe.attribution import Attribution, attribute
from probe.devices import resolve_device
from probe.dream import DreamResult, dream
from probe.errors import ProbeError, ProbeRuntimeError, ProbeUsageError
from probe.featuremaps import FeatureMaps, feature_maps
from probe.kernels import Filters, filters
from probe.hooks import INPUT, OUTPUT, LayerInfo, Recording, capture, evaluating, layers, record
from probe.images import load_image, to_pil
from probe.models import LoadedModel, Preprocess, load_model
from probe.style import StyleResult, content_loss, gram_matrix, style_loss, style_transfer, total_variation_loss

__all__ = [
    "__version__",
    "DreamResult",
    "ATTRIBUTION_METHODS",
    "Attribution",
    "FeatureMaps",
    "Filters",
    "attribute",
    "feature_maps",
    "filters",
    "INPUT",
    "OUTPUT",
    "LayerInfo",
    "LoadedModel",
    "Preprocess",
    "ProbeError",
    "ProbeRuntimeError",
    "ProbeUsageError",
    "Recording",
    "StyleResult",
    "capture",
    "content_loss",
    "dream",
    "evaluating",
    "gram_matrix",
    "layers",
    "load_image",
    "load_model",
    "record",
    "resolve_device",
    "style_loss",
    "style_transfer",
    "to_pil",
    "total_variation_loss",
]
