"""The zoo's catalogue: one :class:`ZooSpec` per embedded model, and model building.

Nothing is loaded at import: specs hold functions that build the network,
generate its data and load its weights on demand.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import IO, Union

import torch
from torch import Tensor, nn

from probe.errors import ProbeRuntimeError, ProbeUsageError, unknown_name
from probe.zoo import digits_data, nets, shapes_data, xo_data
from probe.zoo.augment import RandomAffine

__all__ = ["ZooSpec", "ZOO", "get_spec", "zoo_names", "build_zoo_model", "shipped_weights", "WeightsArg"]

#: What ``build_zoo_model`` accepts as ``weights``.
WeightsArg = Union[str, "os.PathLike[str]", None]

#: ``data(split, seed, limit) -> (images (N, C, H, W) in [0, 1], labels (N,) int64)``.
DataFn = Callable[[str, int, Union[int, None]], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class ZooSpec:
    """Everything the toolkit knows about one embedded model.

    Attributes:
        name: Zoo name, e.g. ``"digits"``.
        description: One line for ``probe layers`` and the README.
        build: Returns a fresh, randomly initialised module (training mode).
        input_shape: ``(C, H, W)`` of one input image.
        mean: Per-channel mean; the caller feeds ``(x - mean) / std`` for images in [0, 1].
        std: Per-channel standard deviation.
        labels: Class names, index = output unit.
        weights_file: File name of the shipped state_dict under ``probe/zoo/weights/``.
        epochs: Default number of training epochs.
        lr: Adam learning rate (peak of the cosine schedule).
        batch_size: Training batch size.
        augment: Random warp applied to training batches, or None.
        data: ``data(split, seed, limit)`` returns one split as tensors; see
            :func:`probe.zoo.make_dataset`.
        sample: ``sample(key)`` returns one clean ``(C, H, W)`` image in [0, 1].
        sample_keys: Human description of the keys ``sample`` accepts.
        target_accuracy: Held-out accuracy the shipped weights must reach.
        data_description: One line on the training data, for the README.
        train_build: If set, :func:`probe.zoo.train` trains this network instead
            of ``build`` (e.g. the same layers plus batch norms) and converts
            it to ``build``'s layout with :func:`probe.zoo.nets.fold_batch_norm`.
        channels_last: Train in channels-last memory format (faster for the
            wider networks on CPU; no effect on the result's layout).
    """

    name: str
    description: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]
    weights_file: str
    epochs: int
    lr: float
    batch_size: int
    augment: RandomAffine | None
    data: DataFn
    sample: Callable[[str], Tensor]
    sample_keys: str
    target_accuracy: float
    data_description: str
    train_build: Callable[[], nn.Module] | None = None
    channels_last: bool = False

    @property
    def num_classes(self) -> int:
        """Number of output units."""
        return len(self.labels)


_SPECS = (
    ZooSpec(
        name="digits",
        description="Keras-style digit CNN: conv1(25 3x3) pool conv2(50 3x3) pool fc1(100) fc2(10); 28x28 gray digits",
        build=nets.digits_net,
        input_shape=(1, 28, 28),
        mean=(0.156,),
        std=(0.277,),
        labels=digits_data.LABELS,
        weights_file="digits.pt",
        epochs=30,
        lr=2e-3,
        batch_size=64,
        augment=RandomAffine(shift=2.0, degrees=12.0, scale=(0.9, 1.1)),
        data=functools.partial(digits_data.digits_split, size=28),
        sample=functools.partial(digits_data.digit_sample, size=28),
        sample_keys=digits_data.KEYS_HELP,
        target_accuracy=0.97,
        data_description="sklearn load_digits (1,797 real 8x8 digits) upsampled to 20x20 in a 28x28 frame, augmented",
    ),
    ZooSpec(
        name="lenet5",
        description="LeNet-5 (ReLU, max pool): C1 6@5x5 S2 C3 16@5x5 S4 C5 120 F6 84 out 10; 32x32 gray digits",
        build=nets.lenet5_net,
        input_shape=(1, 32, 32),
        mean=(0.119,),
        std=(0.252,),
        labels=digits_data.LABELS,
        weights_file="lenet5.pt",
        epochs=30,
        lr=2e-3,
        batch_size=64,
        augment=RandomAffine(shift=2.0, degrees=12.0, scale=(0.9, 1.1)),
        data=functools.partial(digits_data.digits_split, size=32),
        sample=functools.partial(digits_data.digit_sample, size=32),
        sample_keys=digits_data.KEYS_HELP,
        target_accuracy=0.97,
        data_description="sklearn load_digits upsampled to 20x20 in a 32x32 frame (as LeNet-5 pads MNIST), augmented",
    ),
    ZooSpec(
        name="xo",
        description="toy X-or-O ConvNet: conv1(4 3x3) pool conv2(8 3x3) pool fc1(32) fc2(2); 32x32 +1/-1 pixels",
        build=nets.xo_net,
        input_shape=(1, 32, 32),
        mean=(0.5,),
        std=(0.5,),
        labels=xo_data.LABELS,
        weights_file="xo.pt",
        epochs=12,
        lr=3e-3,
        batch_size=64,
        augment=None,
        data=xo_data.xo_split,
        sample=xo_data.xo_sample,
        sample_keys="x, o",
        target_accuracy=0.99,
        data_description="generated binary X's and O's: shifted, scaled, rotated, stroke width 1.6-4.4 px, pixel flips",
    ),
    ZooSpec(
        name="shapes",
        description="small VGG-style RGB CNN: conv1_1..conv4_1 (16/32/64/64 ch), max pools, GAP, fc(10); 64x64 RGB",
        build=nets.shapes_net,
        input_shape=(3, 64, 64),
        mean=(0.503, 0.497, 0.504),
        std=(0.286, 0.287, 0.285),
        labels=shapes_data.LABELS,
        weights_file="shapes.pt",
        epochs=8,
        lr=3e-3,
        batch_size=32,
        augment=None,
        data=shapes_data.shapes_split,
        sample=shapes_data.shapes_sample,
        sample_keys=", ".join(shapes_data.LABELS),
        target_accuracy=0.90,
        data_description="generated coloured shapes and textures (10 classes), random colours, gradients, noise",
        train_build=nets.shapes_net_bn,
        channels_last=True,
    ),
)

#: The embedded models by name, in a fixed order. Read-only.
ZOO: Mapping[str, ZooSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def zoo_names() -> list[str]:
    """Names of the embedded models: ``["digits", "lenet5", "xo", "shapes"]``."""
    return list(ZOO)


def get_spec(name: str) -> ZooSpec:
    """The spec of zoo model ``name``.

    Raises:
        ProbeUsageError: Unknown name; the message lists the zoo and suggests the closest.
    """
    try:
        return ZOO[name]
    except (KeyError, TypeError):
        raise unknown_name("zoo model", str(name), zoo_names()) from None


def _load(source: IO[bytes] | Path, what: str) -> dict[str, Tensor]:
    try:
        state = torch.load(source, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise ProbeUsageError(f"cannot read {what} as a state_dict: {error}") from error
    if not isinstance(state, Mapping):
        raise ProbeUsageError(f"{what} holds a {type(state).__name__}, not a state_dict")
    return dict(state)


def shipped_weights(name: str) -> dict[str, Tensor]:
    """The state_dict shipped in ``probe/zoo/weights/`` for zoo model ``name``, on the CPU.

    Raises:
        ProbeUsageError: Unknown name.
        ProbeRuntimeError: The weights file is missing from the installation.
    """
    spec = get_spec(name)
    resource = resources.files("probe.zoo").joinpath("weights", spec.weights_file)
    if not resource.is_file():
        raise ProbeRuntimeError(
            f"the shipped weights of zoo model {name!r} ({spec.weights_file}) are missing; "
            f"regenerate them with `python -m probe.zoo.train_all {name}`"
        )
    with resource.open("rb") as handle:
        return _load(handle, f"shipped weights {spec.weights_file}")


def build_zoo_model(name: str, weights: WeightsArg = "shipped") -> nn.Module:
    """Build zoo model ``name`` in eval mode, on the CPU.

    Args:
        name: A zoo name (see :func:`zoo_names`).
        weights: ``"shipped"`` (default) loads the weights shipped with the
            package; None keeps the random initialisation (from the global torch
            RNG); anything else is the path of a state_dict file (``torch.save``
            of ``model.state_dict()``), loaded with ``weights_only=True``.

    Returns:
        The module in eval mode. Parameters still require grad: freezing is the
        caller's decision.

    Raises:
        ProbeUsageError: Unknown name, missing file, or a file that is not a
            matching state_dict.
        ProbeRuntimeError: Shipped weights missing from the installation.
    """
    spec = get_spec(name)
    model = spec.build()
    if weights is None:
        return model.eval()
    if isinstance(weights, str) and weights == "shipped":
        state, what = shipped_weights(name), f"shipped weights {spec.weights_file}"
    else:
        path = Path(os.fspath(weights)).expanduser()
        if not path.is_file():
            raise ProbeUsageError(f"weights file {str(path)!r} does not exist (or is not a file)")
        state, what = _load(path, f"weights file {str(path)!r}"), f"weights file {str(path)!r}"
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ProbeUsageError(f"{what} does not fit zoo model {name!r}: {error}") from error
    return model.eval()
