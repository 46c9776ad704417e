"""Layer names as style-transfer papers and users write them (``relu4_2``, ``conv4_2``, ``pool3``).

Gatys et al. and every style-transfer tool after them name VGG's layers by
block and position: ``conv{block}_{index}``, ``relu{block}_{index}``,
``bn{block}_{index}`` (batch-norm variants) and ``pool{block}``. torchvision
keeps those layers in one flat ``features`` Sequential addressed by position
(``features.22``). :func:`vgg_aliases` recovers the paper names by walking that
Sequential: a convolution starts the next position of the current block, a
pooling layer closes the block. Nothing is tabulated, so ``vgg11`` ...
``vgg19_bn``, a plain ``vgg19().features`` Sequential, and any other network
built the same way get correct names.

Models whose modules already carry such names (the embedded ``shapes`` net:
``conv1_1``, ``relu1_1``, ``pool1``, ...) need no aliases; plain dotted
``named_modules()`` names work for every model. :func:`resolve_name` accepts
both, so any feature can take ``--layer relu4_2`` on a VGG.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from probe.errors import unknown_name
from probe.hooks import split_call

__all__ = ["PAPER_NAME", "vgg_aliases", "module_names", "resolve_name"]

_FEATURE_TYPES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d)
#: ``conv3_2`` / ``bn3_2`` / ``relu3_2`` (groups: kind, block, position) or ``pool3`` (group 4: block).
PAPER_NAME = re.compile(r"^(conv|bn|relu)(\d+)_(\d+)$|^pool(\d+)$")


def _feature_sequence(model: nn.Module) -> tuple[str, nn.Sequential] | None:
    """The flat Sequential to walk: ``model.features`` (torchvision VGG) or ``model`` itself."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return "features", features
    if isinstance(model, nn.Sequential):
        return "", model
    return None


def vgg_aliases(model: nn.Module) -> dict[str, str]:
    """Map paper-style names to dotted module names by walking the model's feature Sequential.

    The walk starts at ``model.features`` when that is an ``nn.Sequential``
    (torchvision's VGG family), else at ``model`` when it is one, and stops at
    the first module that is not a ``Conv2d``, ``BatchNorm2d``, ``ReLU``,
    ``MaxPool2d`` or ``AvgPool2d`` (the classifier head). Blocks count from 1
    and end at each pooling layer; positions count convolutions within a block.

    Args:
        model: any ``nn.Module`` (not run, not changed).

    Returns:
        ``{"conv1_1": "features.0", "relu1_1": "features.1", ..., "pool1": "features.4", ...}``
        in network order; ``{}`` when the model has no such Sequential. On
        torchvision's ``vgg19``: ``relu4_2 -> features.22``, ``conv4_2 ->
        features.21``, ``relu5_1 -> features.29``.
    """
    found = _feature_sequence(model)
    if found is None:
        return {}
    prefix, sequence = found
    aliases: dict[str, str] = {}
    block, position = 1, 0
    for child_name, module in sequence.named_children():
        if not isinstance(module, _FEATURE_TYPES):
            break
        full = f"{prefix}.{child_name}" if prefix else child_name
        if isinstance(module, nn.Conv2d):
            position += 1
            aliases[f"conv{block}_{position}"] = full
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            aliases[f"pool{block}"] = full
            block, position = block + 1, 0
        elif position == 0:  # a ReLU or batch norm before any convolution: not VGG-like
            break
        else:
            kind = "bn" if isinstance(module, nn.BatchNorm2d) else "relu"
            aliases.setdefault(f"{kind}{block}_{position}", full)
    return aliases if any(name.startswith("conv") for name in aliases) else {}


def module_names(model: nn.Module) -> list[str]:
    """Dotted ``named_modules()`` names, without the root's empty name."""
    return [name for name, _ in model.named_modules() if name]


def resolve_name(
    name: str, modules: Sequence[str], aliases: dict[str, str], *, param: str = "layer"
) -> str:
    """The dotted module name for ``name``: a real module name wins over a paper-style alias.

    Raises:
        ProbeUsageError: unknown name; the message lists paper names and module
            names and suggests the closest.
    """
    if name in modules:
        return name
    if split_call(name, modules) is not None:  # "NAME#K": one call of a module that runs several times
        return name
    if name in aliases:
        return aliases[name]
    valid = list(aliases) + [module for module in modules if module not in aliases]
    raise unknown_name("layer", name, valid, param=param)
