"""The layer a Deep Dream uses when none is given, by model name."""

from __future__ import annotations

from probe.errors import ProbeUsageError
from probe.hooks import INPUT, OUTPUT, layer_names
from probe.models import LoadedModel

__all__ = ["DEFAULT_LAYERS", "default_layers"]

DEFAULT_LAYERS: dict[str, tuple[str, ...]] = {
    "googlenet": ("inception4c",),
    "inception_v3": ("Mixed_5d",),
    "vgg16": ("features.22",),  # relu4_3
    "vgg19": ("features.24",),  # relu4_3
    "resnet18": ("layer3",),
    "resnet50": ("layer3",),
    "shapes": ("relu3_1",),
    "digits": ("conv2",),
    "lenet5": ("conv2",),
    "xo": ("conv2",),
}
"""The layer :func:`dream` uses when none is given, by model name."""

def default_layers(model: LoadedModel) -> list[str]:
    """The default dream layers of ``model`` (see :data:`DEFAULT_LAYERS`).

    Raises:
        ProbeUsageError: the model has no default; the message lists its layers.
    """
    chosen = DEFAULT_LAYERS.get(model.name)
    if chosen is None:
        names = [name for name in layer_names(model.module) if name not in (INPUT, OUTPUT)]
        shown = ", ".join(names[:40]) + (f", ... ({len(names) - 40} more)" if len(names) > 40 else "")
        raise ProbeUsageError(
            f"no default dream layer for model {model.name!r}; choose one or more (--layer / layers=[...]), "
            f"a convolutional layer in the middle of the network dreams best. Layers are: {shown}",
            param="layer",
        )
    return list(chosen)


