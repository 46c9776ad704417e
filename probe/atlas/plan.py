"""The plan of an atlas: its settings, their hash, and the deterministic list of chunks.

A chunk is ``(layer, first unit, last unit + 1)``. The list depends only on the
layers, their unit counts and the chunk size, so every rank of a distributed run
(and every rerun) computes the same list, and a unit always falls in the same
chunk; its synthetic images do not depend on the chunk anyway (each image has
its own random stream, :mod:`probe.streams`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from probe.chunkstore import fingerprint
from probe.errors import ProbeUsageError

__all__ = ["STREAMS", "AtlasSettings", "Chunk", "make_chunks", "file_stem"]


MAX_STEM = 100
"""The longest stem of a layer's files (file systems take 255 bytes; unit numbers and suffixes need room)."""


def file_stem(layer: str) -> str:
    """A file-name-safe form of a layer name, one per name: ``"layer3.1.conv1"`` stays as it is; a name whose
    characters had to be replaced or that is over :data:`MAX_STEM` characters gets a short hash of the name
    (``"layer3.1/conv"`` -> ``"layer3.1-conv-1b7e2c9a"``), so that ``"a b"`` and ``"a-b"``, which torch both
    allows, never share pages and images."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", layer).strip("-.") or "layer"
    if stem != layer or len(stem) > MAX_STEM:
        stem = f"{stem[:MAX_STEM - 9]}-{hashlib.sha1(layer.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return stem


STREAMS = 2
"""2: every image from its own stream keyed by (seed, layer, unit, copy); 1 (absent): one seed per chunk."""


@dataclass(frozen=True)
class AtlasSettings:
    """Everything that decides what an atlas contains; its :meth:`digest` keys every record.

    Attributes:
        model: the model spec (``"digits"``, ``"resnet50"``, a file ...).
        weights: the weights, in words (``"shipped"``, ``"random"``, a path).
        layers: dotted layer names, in atlas order.
        units: units (channels) of each layer, same order.
        dataset: ``"zoo"``, ``"skimage"`` or a folder, as given.
        dataset_size: images in the dataset pass (after ``limit``).
        examples: dataset examples kept per unit (default 9).
        per_unit: synthetic images per unit (default 1).
        diversity: weight of the diversity term when ``per_unit > 1``.
        steps: optimization steps per synthetic image.
        preset: ``"robust"`` or ``"plain"``.
        lr: learning rate, or None for the preset's.
        image_size: ``(H, W)`` of the synthetic images and of the dataset images.
        chunk: units per chunk.
        seed: the atlas seed: every image's random stream is keyed by (seed, layer, unit, copy).
        precision: ``"fp32"`` / ``"bf16"`` / ``"fp16"`` for the forward passes.
        channels_last: convolutions channels-last.
        streams: how images draw their randomness (:data:`STREAMS`), so that an
            atlas begun by an older cnn-probe is refused, not completed with images of another kind.
        extra: anything else a caller wants in the key.
    """

    model: str
    weights: str
    layers: tuple[str, ...]
    units: tuple[int, ...]
    dataset: str
    dataset_size: int
    examples: int = 9
    per_unit: int = 1
    diversity: float = 0.0
    steps: int = 256
    preset: str = "robust"
    lr: float | None = None
    image_size: tuple[int, int] = (28, 28)
    chunk: int = 16
    seed: int = 0
    precision: str = "fp32"
    channels_last: bool = False
    streams: int = STREAMS
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    def digest(self) -> str:
        """A 16-hex-digit hash of every setting: records with another digest belong to another atlas."""
        return fingerprint(self.as_dict())

    def differences(self, other: dict[str, Any]) -> list[str]:
        """``["steps: 64 (there) vs 32 (now)", ...]`` against the settings dict of another atlas."""
        mine = self.as_dict()
        keys = sorted(set(mine) | set(other))
        return [f"{key}: {other.get(key)!r} (there) vs {mine.get(key)!r} (now)" for key in keys
                if other.get(key) != mine.get(key)]


@dataclass(frozen=True)
class Chunk:
    """Units ``start..stop-1`` of ``layer``: the unit of work one rank claims and writes at once."""

    layer: str
    start: int
    stop: int

    @property
    def units(self) -> range:
        """The units of the chunk."""
        return range(self.start, self.stop)

    @property
    def name(self) -> str:
        """The file-name stem of the chunk's record, e.g. ``conv2-0016-0031``."""
        return f"{file_stem(self.layer)}-{self.start:04d}-{self.stop - 1:04d}"


def make_chunks(layers: tuple[str, ...], units: tuple[int, ...], size: int) -> list[Chunk]:
    """The chunks of an atlas, layer by layer, ``size`` units each (the last of a layer may be smaller).

    Raises:
        ProbeUsageError: ``size < 1`` or a layer without units.
    """
    if size < 1:
        raise ProbeUsageError(f"the chunk size must be >= 1; got {size}", param="chunk")
    chunks = []
    for layer, count in zip(layers, units):
        if count < 1:
            raise ProbeUsageError(f"layer {layer!r} has no units", param="layers")
        chunks.extend(Chunk(layer, start, min(count, start + size)) for start in range(0, count, size))
    return chunks
