"""Handwritten digits from scikit-learn's bundled ``load_digits``, at MNIST-like sizes.

``load_digits`` holds 1,797 real 8x8 digits (values 0..16) and needs no
download. Each is upsampled bilinearly to 20x20 and centred on a 28x28
(``digits``) or 32x32 (``lenet5``) canvas, which is how MNIST frames its
digits (a 20x20 box in 28x28) and how LeNet-5 frames MNIST (padded to 32x32);
values are scaled to [0, 1], strokes bright on a dark background.

The split is fixed and uses no randomness: within each class, every fifth
sample (ranks 4, 9, 14, ... in file order) is held out for testing, about 20%.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from probe.errors import ProbeUsageError
from probe.runtime import global_rng_kept
from probe.zoo.splits import check_limit, check_split

__all__ = ["LABELS", "DIGIT_BOX", "split_indices", "digits_split", "digit_sample", "KEYS_HELP"]

#: Class names: output unit k is the digit k.
LABELS: tuple[str, ...] = tuple(str(k) for k in range(10))

#: Side of the box the digit fills on its canvas (MNIST's 20 pixels).
DIGIT_BOX = 20

#: What ``digit_sample`` accepts (``load_digits`` always holds 1,797 samples).
KEYS_HELP = "an index into load_digits, '0' to '1796' ('0'..'9' are the digits 0..9)"

#: One sample in ``TEST_EVERY`` of each class is held out.
TEST_EVERY = 5


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[Tensor, Tensor]:
    """All of ``load_digits`` as ``(N, 1, 8, 8)`` float32 in [0, 1] and ``(N,)`` int64."""
    with global_rng_kept():  # importing scikit-learn draws from Python's global random (rich)
        from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return images, labels


def _frame(images: Tensor, size: int) -> Tensor:
    """Upsample ``(N, 1, 8, 8)`` digits to the 20x20 box and centre them on ``size x size``."""
    box = F.interpolate(images, size=(DIGIT_BOX, DIGIT_BOX), mode="bilinear", align_corners=False, antialias=True)
    before = (size - DIGIT_BOX) // 2
    after = size - DIGIT_BOX - before
    return F.pad(box, (before, after, before, after)).clamp_(0.0, 1.0)


def split_indices(split: str) -> Tensor:
    """Indices into ``load_digits`` of one split, ascending.

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(M,)`` int64. The two splits are disjoint and cover all 1,797 samples.
    """
    return _split_indices(check_split(split)).clone()


@functools.lru_cache(maxsize=2)
def _split_indices(split: str) -> Tensor:
    _, labels = _raw()
    rank = torch.empty_like(labels)
    for digit in range(10):
        members = (labels == digit).nonzero().squeeze(1)
        rank[members] = torch.arange(members.numel())
    held_out = rank % TEST_EVERY == TEST_EVERY - 1
    return (held_out if split == "test" else ~held_out).nonzero().squeeze(1)


def digits_split(split: str, seed: int = 0, limit: int | None = None, *, size: int = 28) -> tuple[Tensor, Tensor]:
    """Images and labels of one split.

    Args:
        split: ``"train"`` (1,442 samples) or ``"test"`` (355 samples).
        seed: Ignored: this split uses no randomness (kept for a uniform signature).
        limit: Keep only the first ``limit`` samples. Default None (all).
        size: Canvas side, 28 for ``digits``, 32 for ``lenet5``. Default 28.

    Returns:
        ``(images, labels)``: ``(M, 1, size, size)`` float32 in [0, 1] and ``(M,)`` int64.
    """
    del seed
    indices = _split_indices(check_split(split))
    indices = indices[: check_limit(limit, indices.numel())]
    images, labels = _raw()
    return _frame(images[indices], size), labels[indices].clone()


def digit_sample(key: str, *, size: int = 28) -> Tensor:
    """One framed digit of ``load_digits`` by index.

    The first ten samples of ``load_digits`` are the digits 0 to 9 in order, so
    key ``"7"`` gives a 7.

    Args:
        key: Decimal index into ``load_digits`` (``"0"`` to ``"1796"``).
        size: Canvas side. Default 28.

    Returns:
        ``(1, size, size)`` float32 in [0, 1].

    Raises:
        ProbeUsageError: ``key`` is not a valid index.
    """
    images, _ = _raw()
    text = str(key).strip()
    if not text.isdigit() or int(text) >= images.shape[0]:
        raise ProbeUsageError(f"unknown sample key {key!r}; keys are: {KEYS_HELP}")
    return _frame(images[int(text)].unsqueeze(0), size)[0]
