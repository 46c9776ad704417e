"""Neural style transfer (Gatys et al.): match one image's content and another's Gram matrices.

The *content* of an image at a layer is the layer's feature maps; its *style*
is the correlations between feature maps, the Gram matrix
``G[c, d] = mean_over_positions(F[c] * F[d])``. Style transfer looks for the
image whose content (at deep layers) matches a content photo and whose style
(at several layers) matches one or more style images::

    import probe
    m = probe.load_model("vgg19")                     # or "shapes" offline
    result = probe.style_transfer(m, "skimage:astronaut", ["skimage:coffee"], size=256)
    result.image                                      # (3, H, W) in [0, 1]
    result.losses                                     # final content/style/tv/total
    result.save("runs/style-astronaut")               # the gallery the CLI writes

Sign convention: the rest of cnn-probe maximizes *scores*; style transfer is
defined by *losses* and minimizes them (``total = content_weight * content +
style_weight * style + tv_weight * tv``, all >= 0, 0 is a perfect match). Every
loss this package reports is such a loss: lower is better. Losses are relative
(see :mod:`probe.style.objective`); a style loss is easiest read against the
style loss of the content image itself, which every result reports
(``content_image_style_loss``, ``style_ratio``).

Speed: targets (content features, style Gram matrices) are computed once per
scale, detached, before the loop; each step is one forward pass (stopped at
the deepest layer needed) and one backward pass for the whole objective; the
model keeps no hook and no gradient.

Modules, one job each:

- :mod:`~probe.style.losses`: ``gram_matrix`` and the content, style and TV losses;
- :mod:`~probe.style.colors`: YIQ luminance/chroma for ``original_colors``;
- :mod:`~probe.style.layers`: default and requested layers (names from :mod:`probe.vgg_names`);
- :mod:`~probe.style.network`: the weight-sharing view (out-of-place ReLUs, average pooling);
- :mod:`~probe.style.objective`: targets once, the weighted loss per step;
- :mod:`~probe.style.inputs`: images, sizes, weights and the first image, checked;
- :mod:`~probe.style.lbfgs`: torch's L-BFGS iterates without reading the device at each evaluation;
- :mod:`~probe.style.transfer`: ``style_transfer``, the loop;
- :mod:`~probe.style.result`: ``StyleResult``.
"""

from probe.style.colors import keep_content_colors, rgb_to_yiq, yiq_to_rgb
from probe.style.inputs import DEFAULT_SIZE, default_size, normalize_weights
from probe.style.layers import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, LayerPlan, plan_layers
from probe.style.losses import content_loss, gram_matrix, style_loss, total_variation_loss
from probe.style.network import style_network
from probe.style.result import StyleResult
from probe.style.transfer import (
    DEFAULT_CONTENT_WEIGHT,
    DEFAULT_LR,
    DEFAULT_STEPS,
    DEFAULT_STYLE_WEIGHT,
    DEFAULT_TV_WEIGHT,
    style_transfer,
)

__all__ = [
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_CONTENT_WEIGHT",
    "DEFAULT_LR",
    "DEFAULT_SIZE",
    "DEFAULT_STEPS",
    "DEFAULT_STYLE_LAYERS",
    "DEFAULT_STYLE_WEIGHT",
    "DEFAULT_TV_WEIGHT",
    "LayerPlan",
    "StyleResult",
    "content_loss",
    "default_size",
    "gram_matrix",
    "keep_content_colors",
    "normalize_weights",
    "plan_layers",
    "rgb_to_yiq",
    "style_loss",
    "style_network",
    "style_transfer",
    "total_variation_loss",
    "yiq_to_rgb",
]
