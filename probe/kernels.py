"""The learned kernels of a convolution layer, ready to be drawn.

::

    f = probe.filters("digits", "conv1")
    f.weight.shape        # (25, 1, 3, 3)
    f.view                # "single": one map per kernel (one input channel)
    f.save("runs/k")      # the gallery `probe filters` writes

Views:

- ``"rgb"``: a first layer on RGB input, each kernel drawn in colour (its three
  input channels as R, G, B);
- ``"single"``: one map per kernel (one input channel, or after ``"mean"``);
- ``"channels"``: one tile per input channel, in a mosaic per kernel;
- ``"mean"``: each kernel averaged over its input channels (a summary).

The kernels are those the layer convolves with (:func:`used_kernel`): a weight-standardized convolution
(timm's ``StdConv2d`` and NFNet's ``ScaledStdConv2d``, transformers' BiT ``WeightStandardizedConv2d``)
stores a raw ``weight`` that its forward standardizes (and NFNet's scales by a gain) before convolving, so
the stored tensor is not the kernel; a quantization-aware conv convolves with its fake-quantized weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from probe.choices import FILTER_VIEWS as VIEWS  # torch-free: the command's option offers it
from probe.errors import ProbeUsageError, unknown_name
from probe.models import LoadedModel, as_loaded
from probe.modes import evaluating
from probe.results import GalleryResult

__all__ = ["Filters", "filters", "conv_layers", "used_kernel", "VIEWS"]



def conv_layers(module: nn.Module) -> list[str]:
    """The names of every ``Conv2d`` in ``module``, in ``named_modules()`` order."""
    return [name for name, sub in module.named_modules() if name and isinstance(sub, nn.Conv2d)]


class _Convolutions(TorchFunctionMode):
    """Records every 2-D convolution call: ``(kernel, output)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        if func in (F.conv2d, torch.conv2d):
            self.calls.append((args[1] if len(args) > 1 else kwargs["weight"], output))
        return output


def used_kernel(conv: nn.Conv2d) -> tuple[torch.Tensor, bool]:
    """The ``(O, I, kH, kW)`` kernel ``conv`` convolves with (detached, its device and dtype), and whether
    its own forward computed it from the stored ``weight``.

    A ``Conv2d`` that keeps ``nn.Conv2d``'s forward convolves with ``conv.weight`` (a parametrized one's
    ``weight`` is already the computed tensor). Another forward (weight standardization, a fake quantizer,
    dynamic padding) is run once (``forward`` itself: no hook of the caller's fires), without gradients, in
    eval mode with quantization observers held, on a zero image the size of the kernel's field, and the kernel of its one convolution is taken when that
    convolution's output is what the layer returns; otherwise (several convolutions, a rescaled output as
    a fused conv-batch-norm's) the stored ``weight``.
    """
    plain = type(conv).forward is nn.Conv2d.forward and type(conv)._conv_forward is nn.Conv2d._conv_forward
    stored = conv.weight.detach()
    if plain:
        return stored, False
    field = [d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation)]
    blank = torch.zeros(1, conv.in_channels, *field, dtype=stored.dtype, device=stored.device)
    watch = _Convolutions()
    try:
        with evaluating(conv), torch.no_grad(), watch:
            output = conv.forward(blank)
    except Exception:  # noqa: BLE001 - a forward that needs more than an image: its stored weight is all we know
        return stored, False
    if len(watch.calls) != 1 or watch.calls[0][1] is not output or watch.calls[0][0].shape != stored.shape:
        return stored, False
    kernel = watch.calls[0][0].detach()
    return kernel, not torch.equal(kernel, stored)


@dataclass
class Filters(GalleryResult):
    """The kernels of one convolution layer.

    Attributes:
        model: the model's name.
        layer: the layer's dotted name.
        weight: ``(O, I, kH, kW)`` the kernels (CPU, float; ``I`` is per group).
        view: how they are drawn: ``"rgb"``, ``"single"``, ``"channels"`` (see the module doc).
        norms: ``(O,)`` the L2 norm of each kernel (over all its input channels).
        computed: whether the layer computes its kernel from its stored ``weight`` (weight standardization,
            fake quantization; see :func:`used_kernel`): ``weight`` is the computed kernel. Default False.
    """

    _report = "probe.reports.filters"

    model: str
    layer: str
    weight: torch.Tensor
    view: str
    norms: torch.Tensor
    computed: bool = False

    def __repr__(self) -> str:
        shape = "x".join(str(size) for size in self.weight.shape[1:])
        computed = ", as convolved (computed from its weight)" if self.computed else ""
        return f"Filters({self.model} {self.layer}: {self.weight.shape[0]} kernels {shape}, view {self.view}{computed})"

def filters(model: str | nn.Module | LoadedModel, layer: str | None = None, *, view: str = "auto") -> Filters:
    """The kernels of convolution ``layer`` of ``model``.

    Args:
        model: a :class:`LoadedModel`, a spec for :func:`probe.load_model`, or an ``nn.Module``.
        layer: a ``Conv2d`` layer name; default the first one.
        view: ``"auto"`` (``"rgb"`` for 3 input channels, ``"single"`` for 1,
            else ``"channels"``), ``"rgb"``, ``"channels"`` or ``"mean"``.

    Returns:
        :class:`Filters`; with ``view="mean"`` the weight is already averaged
        over input channels, shape ``(O, 1, kH, kW)``, and the view is ``"single"``.

    Raises:
        ProbeUsageError: no such layer, not a convolution, unknown view, ``"rgb"``
            for a layer without 3 input channels.
    """
    loaded = as_loaded(model)
    convs = conv_layers(loaded.module)
    if not convs:
        raise ProbeUsageError(f"{loaded.name} has no Conv2d layer, so no kernels to show", param="layer")
    if view not in VIEWS:
        raise unknown_name("view", view, VIEWS, param="view")
    if layer is not None and not isinstance(layer, str):
        raise ProbeUsageError(f"layer must be one layer name (e.g. {convs[0]!r}); got {layer!r}", param="layer")
    name = convs[0] if layer is None else layer
    if name not in convs:
        modules = dict(loaded.module.named_modules())
        if name in modules:
            raise ProbeUsageError(
                f"{name!r} is a {type(modules[name]).__name__}, not a 2-D convolution; the Conv2d layers are: "
                + ", ".join(convs),
                param="layer",
            )
        raise unknown_name("convolution layer", name, convs, param="layer")
    kernel, computed = used_kernel(dict(loaded.module.named_modules())[name])
    weight = kernel.float().cpu().clone()
    inputs = weight.shape[1]
    norms = weight.flatten(1).norm(dim=1)
    if view == "auto":
        view = "rgb" if inputs == 3 else "single" if inputs == 1 else "channels"
    elif view == "rgb" and inputs != 3:
        raise ProbeUsageError(f"view 'rgb' needs kernels with 3 input channels; {name} has {inputs}", param="view")
    elif view == "mean":
        weight, view = weight.mean(dim=1, keepdim=True), "single"
    elif view == "channels" and inputs == 1:
        view = "single"
    return Filters(model=loaded.name, layer=name, weight=weight, view=view, norms=norms, computed=computed)
