"""Which pixels drove a prediction: captum's attribution methods behind one call.

::

    a = probe.attribute("digits", "digits:3", method="all")
    a.target, a.target_label          # 3, '3' (the top class unless asked)
    a.attributions["saliency"].shape  # (1, 28, 28): the input's shape
    a.attributions["gradcam"].shape   # (1, 28, 28): Grad-CAM upsampled to the input
    a.heatmaps["integrated-gradients"]  # (28, 28) in [0, 1], ready to draw
    a.save("runs/attr")               # the gallery `probe attribute` writes

Methods (all from captum, run on the image in [0, 1] with the model's own
normalization inside the forward function, so attributions are per input pixel):

- ``saliency``: ``|d score / d x|`` (Simonyan et al. 2014); heatmap: max over colour channels;
- ``integrated-gradients``: path integral from a black image (Sundararajan et al. 2017);
- ``smoothgrad``: saliency averaged over noisy copies of the image (Smilkov et al.
  2017, captum ``NoiseTunnel``), seeded;
- ``guided-backprop``: gradients with negative signals stopped at every ReLU
  (Springenberg et al. 2015), ``nn.ReLU`` modules and functional ``F.relu`` /
  ``torch.relu`` alike (:class:`~probe.attribution.relus.GuidedRelus`; captum
  alone guides only the modules); a model without ReLUs is refused;
- ``gradcam``: a layer's maps weighted by their mean gradient, ReLU, bilinearly upsampled to the input
  (Selvaraju et al. 2017); any layer with spatial positions, tokens and channels-last maps included
  (:mod:`probe.attribution.cam`); default: the last layer whose positions the score depends on, before
  the global pooling (ResNet's ``layer4.2``, ViT's last block's first norm).

Asked for by name (:data:`EXTRA_METHODS`): ``deeplift``, ``gradient-shap``, ``occlusion`` (a 7 x 7
grid of windows by default, aligned to the model's patches: 49 occluded passes at any size) and ``lrp``.
DeepLift, LRP and guided backprop hook modules, so they run on a copy of the model that shares its
weights and gives each call of a reused module (ResNet's ``relu``) its own module
(:mod:`probe.attribution.unshared`); the user's module never gets a hook, a flag or an attribute.

The score is the target class's logit (the model's output before softmax); for a dense output
``(N, K, H, W)`` (segmentation) the class's map summed over the positions (:mod:`probe.attribution.scores`).
Heatmaps of the pixel methods add ``|attribution|`` over colour channels; each
heatmap is scaled so its 99th percentile is 1 (one hot pixel does not wash out the rest).
"""

from probe.quiet import import_tqdm_quietly

import_tqdm_quietly()  # before captum imports tqdm.auto

from probe.attribution.api import attribute, attribute_batch, parse_baseline, resolve_target  # noqa: E402
from probe.attribution.extra import EXTRA_METHODS
from probe.attribution.gradients import (
    GAUSS_LEGENDRE_MAX_STEPS,
    IG_BATCH,
    MAX_IG_STEPS,
    METHODS,
    integration_method,
)
from probe.attribution.lrp import LRP_PASSTHROUGH, lrp_support, tensor_additions
from probe.attribution.relus import relu_check
from probe.attribution.result import Attribution, normalize_heatmap

__all__ = ["METHODS", "Attribution", "attribute", "resolve_target", "relu_check", "normalize_heatmap",
           "EXTRA_METHODS", "attribute_batch", "lrp_support", "parse_baseline", "tensor_additions",
           "IG_BATCH", "GAUSS_LEGENDRE_MAX_STEPS", "MAX_IG_STEPS", "integration_method", "LRP_PASSTHROUGH"]
