"""The model sources cnn-probe knows, registered in the order they are asked (see :mod:`probe.models.registry`)."""

from __future__ import annotations

# Registration order is the order sources are asked: names first, prefixes, existing files, then factories.
from probe.models.sources import zoo_models  # noqa: I001
from probe.models.sources import torchvision_models
from probe.models.sources import timm_models
from probe.models.sources import hf_models
from probe.models.sources import files
from probe.models.sources import factories

__all__ = ["zoo_models", "torchvision_models", "timm_models", "hf_models", "factories", "files"]
