"""Deep Dream: make a network exaggerate what it sees in a photo.

The algorithm (Mordvintsev, Olah and Tyka, 2015):
gradient *ascent* on the image for the activation of chosen layers, so that
whatever a layer responds to in the photo is strengthened, step after step.

Modules, one job each:

- :mod:`~probe.dream.objective`: the score (``"l2"`` or ``"mean"`` activation of
  the layers, chosen channels, layer weights, or the match with a guide image)
  and its gradient, whole or tile by tile;
- :mod:`~probe.dream.geometry`: octave sizes, the random roll undone after each
  step, the zoom of a frame sequence;
- :mod:`~probe.dream.ascent`: the normalized, jittered steps through the octaves;
- :mod:`~probe.dream.inputs`: the image, guide and options, checked, and the memory
  an untiled dream needs;
- :mod:`~probe.dream.layers`: the default layer of each model;
- :mod:`~probe.dream.run`: ``dream()``, the frames and the result;
- :mod:`~probe.dream.result`: ``DreamResult``;
- :mod:`probe.tiling`: the tiles of a large image.

What they do:

- **Normalized steps**: ``image += lr * g / mean(|g|)``, so ``lr`` is the mean
  change of a pixel per step whatever the layer's scale; values stay in [0, 1].
- **Jitter**: before each step the image is rolled by a random shift and the
  gradient is rolled back, which removes the grid artefacts of strided layers.
- **Octaves**: the image is dreamed at ``octaves`` scales, from the smallest
  (the input shrunk ``octave_scale ** (octaves - 1)`` times) to the input's
  size. The *detail* of each scale (dreamed minus original at that scale) is
  upsampled and added to the next, larger scale, so structures grow at every size.
- **Tiles**: with ``tile_size``, each step computes the gradient tile by tile,
  each tile seen with a margin of context, so peak memory follows the tile's
  area instead of the image's; the tile grid moves to a random offset at every
  step (through the same roll as the jitter), so seams never stay in one place.
- **Frames**: a zoom sequence dreams each frame from the previous one, zoomed.

Example::

    import probe
    m = probe.load_model("shapes")
    result = probe.dream(m, "skimage:astronaut", layers=["relu3_1"], octaves=4, steps=10)
    result.image                 # (3, H, W) in [0, 1], the input's size
    result.objective_before, result.objective_after
    result.save("runs/my-dream")
"""

from probe.dream.geometry import MIN_OCTAVE_SIDE, jitter_roll, octave_sizes, unroll, zoom_crop
from probe.dream.inputs import ImageSource
from probe.dream.layers import DEFAULT_LAYERS, default_layers
from probe.dream.objective import OBJECTIVES, DreamObjective, Evaluation, Objective, make_objective
from probe.dream.result import DreamResult
from probe.dream.run import dream

__all__ = [
    "DEFAULT_LAYERS",
    "MIN_OCTAVE_SIDE",
    "OBJECTIVES",
    "DreamObjective",
    "DreamResult",
    "Evaluation",
    "ImageSource",
    "Objective",
    "default_layers",
    "dream",
    "jitter_roll",
    "make_objective",
    "octave_sizes",
    "unroll",
    "zoom_crop",
]
