"""Source ``zoo``: the embedded models (``digits``, ``lenet5``, ``xo``, ``shapes``), weights shipped in the package."""

from __future__ import annotations

from probe import zoo
from probe.models.registry import Built, ModelSource, Request, register_source
from probe.models.types import Preprocess
from probe.models.weights import is_default, is_none, load_weights_into


def build(name: str, request: Request) -> Built:
    """Build zoo model ``name`` with its shipped, random (seeded) or file weights."""
    request.no_arguments(name, "the zoo's architectures are fixed")
    spec = zoo.get_spec(name)
    shipped = is_default(request.weights)
    module = zoo.build_zoo_model(name, weights="shipped" if shipped else None)
    described = "shipped" if shipped else "random"
    if not shipped and not is_none(request.weights):
        load_weights_into(module, request.weights)
        described = str(request.weights)
    channels, height, width = spec.input_shape
    return Built(module, Preprocess(tuple(spec.mean), tuple(spec.std), channels, (height, width)),
                 labels=tuple(spec.labels), weights=described)  # fmt: skip


SOURCE = register_source(ModelSource(
    "zoo", lambda spec: spec in zoo.zoo_names(), build, names=zoo.zoo_names, form="digits, lenet5, xo, shapes",
))  # fmt: skip
