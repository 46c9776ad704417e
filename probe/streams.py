"""Per-image random streams: each image's randomness depends on its own key, never on its batch.

A layer of 512 units may be rendered in one batch, in chunks of 64, or one
unit at a time on another rank; unit 7 must come out the same every time. So
every image gets a key, ``image_key(seed, layer, unit, copy)``, and draws all
its random numbers from a stream of that key alone:

- initial images: from a ``torch.Generator`` seeded with the key
  (:meth:`ImageStreams.generators`), a few thousand numbers per image, once;
- random transforms: from a counter-based hash of ``(key, counter)`` computed
  on the images' device (:meth:`ImageStreams.uniform`), so that a step draws
  ``(N, k)`` numbers with a handful of integer tensor operations and never
  waits for the host. The counter advances the same way for every image, so
  image ``i`` of a batch gets exactly the numbers it gets alone.

The hash is integer arithmetic on 32-bit words kept in int64 (no overflow), so
it gives the same numbers on the CPU and on CUDA.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Sequence

import torch

__all__ = ["ImageStreams", "image_key"]

_M32 = 0xFFFFFFFF


def image_key(seed: int, *parts: object) -> int:
    """A 63-bit key for one image from ``seed`` and what identifies it (layer, unit, copy, ...)."""
    text = repr((int(seed), *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & (2**63 - 1)


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """``(x * constant) mod 2**32`` for int64 ``x`` in ``[0, 2**32)``, with no int64 overflow."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32 by C. Wellons): ``[0, 2**32)`` -> ``[0, 2**32)``, well mixed."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class ImageStreams:
    """One random stream per image of a batch, all drawn together on ``device``.

    Args:
        keys: one key per image (:func:`image_key`); length ``N``.
        device: where :meth:`uniform` puts its numbers (the images' device).

    Attributes:
        keys: ``(N,)`` int64 keys on ``device``.
        generator: a CPU ``torch.Generator`` seeded from the first key, for
            transforms that draw one number for the whole batch (your own
            callables): those are shared by the batch, unlike the built-in ones.
    """

    def __init__(self, keys: Sequence[int], device: torch.device | str = "cpu") -> None:
        self._keys = [int(k) for k in keys]
        self.device = torch.device(device)
        self.keys = torch.tensor(self._keys, dtype=torch.int64, device=self.device)
        self._low = self.keys & _M32
        self._high = (self.keys >> 32) & _M32
        self.counter = 0
        self.generator = torch.Generator().manual_seed(self._keys[0] if self._keys else 0)
        self._tables: dict[Hashable, torch.Tensor] = {}
        self._ahead: tuple[int, torch.Tensor] | None = None  # (first counter, (N, k) numbers) drawn ahead

    def __len__(self) -> int:
        return len(self._keys)

    def generators(self) -> list[torch.Generator]:
        """A fresh CPU ``torch.Generator`` per image, seeded with its key (for the initial images)."""
        return [torch.Generator().manual_seed(key) for key in self._keys]

    def uniform(self, count: int) -> torch.Tensor:
        """``(N, count)`` float32 numbers in ``[0, 1)`` on ``device``, 24 random bits each; advances the counter.

        Served from what :meth:`prefetch` drew when that starts at the counter (the same numbers: each depends on
        the image's key and its counter alone)."""
        ahead = self._ahead
        if ahead is not None and ahead[0] == self.counter and ahead[1].shape[1] >= count:
            numbers, rest = ahead[1][:, :count], ahead[1][:, count:]
            self._ahead = (self.counter + count, rest) if rest.shape[1] else None
        else:
            self._ahead = None
            numbers = self._draw(self.counter, count)
        self.counter += count
        return numbers

    def prefetch(self, count: int) -> None:
        """Draw the next ``count`` numbers of every stream now, in one go, for the next :meth:`uniform` calls.

        A step's transforms draw a few numbers each; the hash costs some 60 small tensor operations per draw
        (each a kernel launch on CUDA), so drawing them together costs one draw's. The counter does not move.
        """
        self._ahead = (self.counter, self._draw(self.counter, count)) if count > 0 else None

    def _draw(self, start: int, count: int) -> torch.Tensor:
        """``(N, count)`` numbers of counters ``start .. start + count - 1``."""
        counters = torch.arange(start, start + count, dtype=torch.int64, device=self.device) & _M32
        mixed = _mix32(self._low[:, None] ^ _mix32(counters)[None, :])
        mixed = _mix32(mixed ^ self._high[:, None])
        return (mixed >> 8).to(torch.float32) * (1.0 / (1 << 24))

    def table(self, values: Sequence[float]) -> torch.Tensor:
        """``values`` as a float32 tensor on ``device``, copied once per stream (a copy per step would sync)."""
        key = tuple(float(v) for v in values)
        return self.constant(key, lambda: torch.tensor(key, dtype=torch.float32).to(self.device))

    def constant(self, key: Hashable, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``make()``, made once per stream and ``key``: what every step of a batch uses alike (a transform's fixed
        matrices, a grid's coordinates), built once instead of a few tensor operations at every step. Read it,
        never write into it."""
        if key not in self._tables:
            self._tables[key] = make()
        return self._tables[key]

    def integers(self, high: int, count: int) -> torch.Tensor:
        """``(N, count)`` int64 numbers in ``0..high-1``, uniform, on ``device``."""
        return (self.uniform(count) * high).long().clamp_(max=high - 1)
