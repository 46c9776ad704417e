"""Which modules are a network's layers: a leaf is a module without children but torch's helpers on it.

torch attaches modules to a layer that are not layers of the data path: a parametrization
(``torch.nn.utils.parametrizations.weight_norm`` / ``spectral_norm`` put a ``parametrizations``
ModuleDict on the conv, whose members compute its weight) and quantization-aware training's
observers and fake-quantizers (``weight_fake_quant``, ``activation_post_process``). A ``Conv2d``
carrying them is still one layer, and the helpers never see an image: counting children alone made
a weight-normed or QAT conv a container and hid it from "every conv layer" defaults.

Of those layers, the 2-D convolutions (:func:`is_conv2d`) are the ones that compute new maps of an image: a
``Conv2d`` and a decoder's ``ConvTranspose2d`` alike (an autoencoder's, a U-Net's, a generator's upsampling is
learned there). Upsampling (``nn.Upsample``), ``nn.PixelShuffle`` and ``nn.MaxUnpool2d`` only enlarge or reorder
the maps of the convolution before them, which is one.
"""

from __future__ import annotations

import sys

from torch import nn
from torch.nn.utils import parametrize

__all__ = ["is_conv2d", "is_helper", "is_leaf", "helper_names", "quantization_helpers"]


def quantization_helpers() -> tuple[type[nn.Module], ...]:
    """Observer and fake-quantize base classes, when torch.ao.quantization is loaded (never imported to ask)."""
    if "torch.ao.quantization" not in sys.modules:  # no model can hold them without that import
        return ()
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase
    from torch.ao.quantization.observer import ObserverBase

    return (FakeQuantizeBase, ObserverBase)


def is_helper(parent: nn.Module, name: str, child: nn.Module) -> bool:
    """Whether ``child`` (``parent``'s child ``name``) is a helper torch attached to ``parent``, not a layer."""
    if name == "parametrizations" and parametrize.is_parametrized(parent):
        return True
    helpers = quantization_helpers()
    return bool(helpers) and isinstance(child, helpers)


def is_leaf(module: nn.Module) -> bool:
    """A layer with no sub-layers: no children, or only torch's helpers (parametrizations, QAT observers)."""
    return all(is_helper(module, name, child) for name, child in module.named_children())


def helper_names(model: nn.Module) -> set[str]:
    """Dotted names of every helper in ``model`` and of every module inside one (``conv.parametrizations.weight.0``)."""
    found: set[str] = set()
    for name, module in model.named_modules():
        if name in found:
            continue
        for child_name, child in module.named_children():
            if is_helper(module, child_name, child):
                prefix = f"{name}.{child_name}" if name else child_name
                found.update(f"{prefix}.{sub}" if sub else prefix for sub, _ in child.named_modules())
    return found


def is_conv2d(module: nn.Module) -> bool:
    """Whether ``module`` is a 2-D convolution layer: an ``nn.Conv2d`` or ``nn.ConvTranspose2d`` (their lazy forms
    and subclasses: timm's ``StdConv2d``, QAT's), or any other leaf with a 4-D ``weight`` kernel of its own
    ``(out, in, kh, kw)``: torchvision's ``DeformConv2d``, a user's layer that calls ``F.conv2d`` itself."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return True
    weight = module._parameters.get("weight", module._buffers.get("weight"))
    return weight is not None and not isinstance(weight, nn.parameter.UninitializedParameter) and weight.dim() == 4 \
        and is_leaf(module)
