"""The embedded model zoo: small CNNs that cnn-probe trains itself and ships.

Four models, so that every command works offline out of the box:

- ``digits``: a small Keras-style network on 28x28 handwritten digits;
- ``lenet5``: LeNet-5 on 32x32 handwritten digits;
- ``xo``: the toy X-or-O ConvNet on 32x32 +1/-1 pixel images;
- ``shapes``: a small VGG-style RGB network on 64x64 coloured shapes and textures.

Images are float tensors in [0, 1]; the caller normalizes them with the spec's
``mean`` and ``std`` before the forward pass (the modules expect normalized
input). Weights ship in ``probe/zoo/weights/`` and are rebuilt with
``python -m probe.zoo.train_all``. Nothing is loaded at import.
"""

from probe.zoo.data import make_dataset, sample_input
from probe.zoo.registry import ZOO, ZooSpec, build_zoo_model, get_spec, shipped_weights, zoo_names
from probe.zoo.train import TrainReport, train

__all__ = [
    "ZOO",
    "ZooSpec",
    "get_spec",
    "zoo_names",
    "build_zoo_model",
    "shipped_weights",
    "make_dataset",
    "sample_input",
    "train",
    "TrainReport",
]
