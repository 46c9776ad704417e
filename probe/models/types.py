"""What a loaded model is: the module, how images become its input, and what it was loaded from.

Every image cnn-probe handles is a float tensor in ``[0, 1]``; the model's own
normalization (``(x - mean) / std``) is applied by :meth:`LoadedModel.__call__`
and :meth:`Preprocess.normalize`, so objectives and hooks see what the network
was trained on.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeUsageError
from probe.forward import model_input
from probe.models.viewcache import ViewCache

__all__ = ["Preprocess", "LoadedModel", "frozen_view", "shared_memo", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How images in ``[0, 1]`` become the model's input.

    Attributes:
        mean: per-channel mean subtracted, length ``channels``.
        std: per-channel standard deviation divided by, length ``channels``.
        channels: input channels the model expects (1 grayscale, 3 RGB, ...).
        input_size: ``(H, W)`` the model was trained at; the default size of
            synthesized images.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    input_size: tuple[int, int]

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _stat_tensors(self.mean, self.std, like.device, like.dtype, like.dim())

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` images in ``[0, 1]`` -> the model's normalized input, same shape."""
        self.check_channels(images)
        mean, std = self._stats(images)
        return (images - mean) / std

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: the model's input -> images in ``[0, 1]`` (not clamped)."""
        mean, std = self._stats(inputs)
        return inputs * std + mean

    def check_channels(self, images: torch.Tensor) -> None:
        """Raise a clear error unless ``images`` is ``(N, channels, H, W)``."""
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ProbeUsageError(
                f"the model expects images of shape (N, {self.channels}, H, W); got {tuple(images.shape)}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image."""
        return (self.channels, *self.input_size)


@dataclass
class LoadedModel:
    """A model ready for probing.

    Attributes:
        name: the spec it was loaded from (``"digits"``, ``"vgg16"``, ...).
        module: the ``nn.Module``; hooks and layer names refer to it. Models that
            cnn-probe builds are in eval mode with frozen parameters; a module you
            passed in is kept exactly as it was.
        preprocess: normalization, channels and input size.
        labels: class names by output index, when known.
        device: where the module's parameters live.
        source: the model source that loaded it (``"zoo"``, ``"torchvision"``,
            ``"timm"``, ``"hf"``, ``"factory"``, ``"torchscript"``, ``"onnx"``) or
            ``"module"`` for a module you passed in.
        weights: what weights were loaded, in words (``"shipped"``, ``"random"``, a path, ...).
        details: source-specific facts worth recording (factory arguments, how a
            file was converted), JSON-serializable; default empty.
    """

    name: str
    module: nn.Module
    preprocess: Preprocess
    labels: tuple[str, ...] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: str = "module"
    weights: str = "as given"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image."""
        return self.preprocess.input_shape

    def __call__(self, images: torch.Tensor) -> Any:
        """Run the module on ``(N, C, H, W)`` images in ``[0, 1]`` (normalized here).

        Raises:
            ModelInputError: the module's forward pass raised on these images (see :func:`probe.forward.model_input`).
        """
        inputs = self.preprocess.normalize(images)
        with model_input(inputs):
            return self.module(inputs)

    def frozen(self, channels_last: bool = False) -> LoadedModel:
        """This model with a module whose parameters do not require grad, for optimizing inputs.

        Autograd computes every weight gradient of a layer whose parameters
        require grad, even when only the input's gradient is asked for: about
        10-20% of a backward pass wasted in maximize, dream and style. Models
        cnn-probe builds are frozen already and come back as they are; for a
        module you passed in, the result holds a weight-sharing view of it (see
        :func:`frozen_view`), and your module is not touched.

        Args:
            channels_last: also store the convolution weights channels-last
                (default False), see :func:`frozen_view`.
        """
        view = frozen_view(self.module, channels_last=channels_last)
        return self if view is self.module else replace(self, module=view)

    def describe(self) -> dict[str, Any]:
        """What a manifest records about the model: source, weights, preprocessing and details.

        Returns:
            ``{"model_source": ..., "weights": ..., "preprocess": {"mean": [...],
            "std": [...], "channels": C, "input_size": [H, W]}, **details}``,
            JSON-serializable.
        """
        pre = self.preprocess
        return {
            "model_source": self.source,
            "weights": self.weights,
            "preprocess": {"mean": list(pre.mean), "std": list(pre.std), "channels": pre.channels,
                           "input_size": list(pre.input_size)},
            **self.details,
        }

    def label(self, index: int) -> str:
        """The class name of output ``index``, or ``"class <index>"`` when labels are unknown."""
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return f"class {index}"

    def __repr__(self) -> str:
        return (
            f"LoadedModel(name={self.name!r}, source={self.source!r}, weights={self.weights!r}, "
            f"input_shape={self.input_shape}, device={str(self.device)!r})"
        )


def frozen_view(module: nn.Module, channels_last: bool = False) -> nn.Module:
    """A copy of ``module``'s structure that shares its weights, with no parameter requiring grad.

    Parameters become ``nn.Parameter(p.detach(), requires_grad=False)`` over the
    same storage and buffers are shared, so the view costs no weight memory and
    sees later changes of the weights. Its mode flags are the module's. Returns
    ``module`` itself when no parameter requires grad and ``channels_last`` is
    off, or when it cannot be copied (TorchScript).

    Made once per module and format: a later call gets the same view while the
    module is unchanged (:mod:`probe.models.viewcache`: ~1 ms to check on
    googlenet, against ~30 ms to copy), and a new one after a layer, tensor,
    device, ``requires_grad``, mode flag, hook or attribute of it changed.

    Args:
        module: the network; never changed.
        channels_last: store the 4-D (convolution) weights of the view in
            channels-last memory format (default False). Convolutions then
            run, and return their outputs, channels-last whatever the input's
            format, the one GPU tensor cores want. On a 2-core CPU
            (``python -m benchmarks --suite options``) googlenet galleries
            and dreams run 1.3x faster, VGG19 style transfer 5% slower.
            Those weights are copies (their memory once more; later changes
            of the module's weights are not seen); the others stay shared.
    """
    if not channels_last and not any(p.requires_grad for p in module.parameters()):
        return module
    return _VIEWS.get(module, channels_last, lambda: _copied_view(module, channels_last), versions=channels_last)


_VIEWS = ViewCache()
"""The frozen views made so far, one per module and format, each served while its module is unchanged."""


def _copied_view(module: nn.Module, channels_last: bool) -> nn.Module:
    """A new frozen view of ``module`` (see :func:`frozen_view`), or ``module`` when it cannot be copied."""

    def frozen(tensor: torch.Tensor) -> nn.Parameter:
        data = tensor.detach()
        if channels_last and data.dim() == 4:
            data = data.contiguous(memory_format=torch.channels_last)
        return nn.Parameter(data, requires_grad=False)

    memo: dict[int, Any] = {id(p): frozen(p) for p in module.parameters()}
    memo = shared_memo(module, memo)
    try:
        return copy.deepcopy(module, memo)
    except Exception:  # TorchScript and modules that refuse to be copied: use them as they are
        return module


def shared_memo(module: nn.Module, memo: dict[int, Any] | None = None) -> dict[int, Any]:
    """A ``copy.deepcopy`` memo under which a copy of ``module`` shares its tensors instead of copying them.

    Buffers map to themselves; tensors a module holds as plain attributes (``torch.nn.utils.prune``'s ``weight``,
    the old hook-based ``weight_norm``'s and ``spectral_norm``'s, computed from parameters by a forward pre-hook,
    which deepcopy refuses: 'Only Tensors created explicitly by the user (graph leaves) support the deepcopy
    protocol') map to themselves detached: the copy's own pre-hook computes them again from its parameters.
    Parameters are left to the caller (``memo``, entries kept), or map to themselves.

    Args:
        module: the network; never changed.
        memo: entries already chosen (a frozen view's parameters), kept as they are.

    Returns:
        ``{id(tensor): what the copy holds}``, ``memo``'s entries included.
    """
    shared: dict[int, Any] = dict(memo or {})
    for tensor in (*module.parameters(), *module.buffers()):
        shared.setdefault(id(tensor), tensor)
    for sub in module.modules():
        for value in vars(sub).values():
            if isinstance(value, torch.Tensor) and id(value) not in shared:
                shared[id(value)] = value.detach()
    return shared


@functools.lru_cache(maxsize=64)
def _stat_tensors(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, dtype: torch.dtype, dims: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` as ``(1, C, 1, ...)`` tensors for ``dims``-dimensional inputs, made once per device:
    a copy to a GPU at every step would make the step wait for it."""
    shape = (1, -1) + (1,) * (dims - 2)
    with torch.inference_mode(False):  # cached: must stay usable by autograd after a first call in inference mode
        return (torch.tensor(mean, device=device, dtype=dtype).view(shape),
                torch.tensor(std, device=device, dtype=dtype).view(shape))
