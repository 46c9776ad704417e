"""Deterministic random streams and chunking for the generated data sets.

A generated split is a function of ``(data set, split, seed)`` only. Its
per-image parameters are drawn at once from one ``torch.Generator``; its pixel
noise is drawn chunk by chunk, each chunk from its own generator. So the first
``limit`` images of a split are exactly the first ``limit`` images of the full
split, and rendering only them costs only them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import torch

from probe.errors import ProbeUsageError

__all__ = ["SPLITS", "CHUNK", "check_split", "check_limit", "stream_seed", "generator", "chunks"]

#: The two splits every zoo data set has.
SPLITS: tuple[str, str] = ("train", "test")

#: Images rendered (and noised) together; also the unit of the noise streams.
CHUNK = 256


def check_split(split: str) -> str:
    """Return ``split`` if it is ``"train"`` or ``"test"``, else raise ProbeUsageError."""
    if split not in SPLITS:
        raise ProbeUsageError(f"unknown split {split!r}; splits are: {', '.join(SPLITS)}")
    return split


def check_limit(limit: int | None, total: int) -> int:
    """Number of examples to produce: ``total`` or ``limit`` when it is smaller.

    Raises:
        ProbeUsageError: ``limit`` is not a positive integer.
    """
    if limit is None:
        return total
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ProbeUsageError(f"limit must be a positive integer or None, got {limit!r}")
    return min(limit, total)


def stream_seed(dataset: str, split: str, seed: int, stream: str = "params") -> int:
    """A 63-bit seed derived from its arguments, stable across runs and machines.

    Different ``(dataset, split, seed, stream)`` give unrelated streams, so the
    train and test splits of a data set never share a draw.
    """
    text = f"cnn-probe/{dataset}/{split}/{seed}/{stream}".encode()
    low = zlib.crc32(text)
    high = zlib.crc32(text[::-1])
    return ((high << 32) | low) & ((1 << 63) - 1)


def generator(dataset: str, split: str, seed: int, stream: str = "params") -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`stream_seed`."""
    return torch.Generator().manual_seed(stream_seed(dataset, split, seed, stream))


def chunks(count: int, size: int = CHUNK) -> Iterator[tuple[int, slice]]:
    """``(chunk index, slice)`` pairs covering ``range(count)`` in order."""
    for index, start in enumerate(range(0, count, size)):
        yield index, slice(start, min(start + size, count))
