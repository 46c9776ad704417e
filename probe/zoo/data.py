"""Data sets and sample images of the zoo models, by zoo name."""

from __future__ import annotations

from torch import Tensor
from torch.utils.data import TensorDataset

from probe.errors import ProbeUsageError, closest
from probe.zoo.registry import get_spec
from probe.zoo.splits import check_split

__all__ = ["make_dataset", "sample_input"]


def make_dataset(name: str, split: str = "train", seed: int = 0, *, limit: int | None = None) -> TensorDataset:
    """The training or held-out data of zoo model ``name``.

    The split is fixed and deterministic: ``digits`` and ``lenet5`` hold out
    every fifth sample of each class of ``load_digits`` (355 of 1,797);
    ``xo`` and ``shapes`` generate their splits from independent random
    streams (4,000 train and 1,000 test images each). The held-out split is
    never used for training.

    Args:
        name: A zoo name.
        split: ``"train"`` (default) or ``"test"``.
        seed: Which draw of a generated split (``xo``, ``shapes``); the shipped
            weights were trained and measured with seed 0. Ignored by
            ``digits`` and ``lenet5``, whose data is fixed. Default 0.
        limit: Keep only the first ``limit`` examples, exactly as slicing the
            full split would (and faster for generated data). Default None (all).

    Returns:
        ``TensorDataset(images, labels)``: images ``(N, C, H, W)`` float32 in
        [0, 1] with ``(C, H, W)`` the spec's ``input_shape``, not normalized;
        labels ``(N,)`` int64 indexing ``spec.labels``.

    Raises:
        ProbeUsageError: Unknown name or split, or a bad ``limit``.
    """
    spec = get_spec(name)
    images, labels = spec.data(check_split(split), seed, limit)
    return TensorDataset(images, labels)


def sample_input(name: str, key: str) -> Tensor:
    """One clean example image for zoo model ``name``, for demos and tests.

    Keys: ``digits`` / ``lenet5``: an index into ``load_digits`` as a string,
    ``"0"`` to ``"1796"``; its first ten samples are the digits 0..9, so ``"7"``
    is a 7. ``xo``: ``"x"`` or ``"o"`` (a centred, upright, noiseless letter).
    ``shapes``: a class name such as ``"circle"`` (centred, yellow on dark blue,
    noiseless).

    Args:
        name: A zoo name.
        key: Which sample, as above (case-insensitive for ``xo`` and ``shapes``).

    Returns:
        ``(C, H, W)`` float32 in [0, 1], not normalized.

    Raises:
        ProbeUsageError: Unknown name, or a key the model does not have (the
            message lists the valid keys).
    """
    spec = get_spec(name)
    try:
        return spec.sample(key)
    except ProbeUsageError:
        message = f"unknown sample key {key!r} for zoo model {name!r}; keys are: {spec.sample_keys}"
        text = str(key).strip().lower()
        if not text.isdigit():
            suggestion = closest(text, [label.lower() for label in spec.labels])
            if suggestion is not None:
                message += f" (did you mean {suggestion!r}?)"
        raise ProbeUsageError(message) from None
