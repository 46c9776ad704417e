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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probe.errors import ProbeUsageError, unknown_name
from probe.models import LoadedModel, as_loaded
from probe.results import GalleryResult

__all__ = ["Filters", "filters", "conv_layers", "VIEWS"]

VIEWS: tuple[str, ...] = ("auto", "rgb", "channels", "mean")


def conv_layers(module: nn.Module) -> list[str]:
    """The names of every ``Conv2d`` in ``module``, in ``named_modules()`` order."""
    return [name for name, sub in module.named_modules() if name and isinstance(sub, nn.Conv2d)]


@dataclass
class Filters(GalleryResult):
    """The kernels of one convolution layer.

    Attributes:
        model: the model's name.
        layer: the layer's dotted name.
        weight: ``(O, I, kH, kW)`` the kernels (CPU, float; ``I`` is per group).
        view: how they are drawn: ``"rgb"``, ``"single"``, ``"channels"`` (see the module doc).
        norms: ``(O,)`` the L2 norm of each kernel (over all its input channels).
    """

    _report = "probe.reports.filters"

    model: str
    layer: str
    weight: torch.Tensor
    view: str
    norms: torch.Tensor

    def __repr__(self) -> str:
        shape = "x".join(str(size) for size in self.weight.shape[1:])
        return f"Filters({self.model} {self.layer}: {self.weight.shape[0]} kernels {shape}, view {self.view})"

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
    weight = dict(loaded.module.named_modules())[name].weight.detach().float().cpu().clone()
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
    return Filters(model=loaded.name, layer=name, weight=weight, view=view, norms=norms)
