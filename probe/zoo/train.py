"""Deterministic training of the zoo models on the CPU.

Same name, seed, epochs and limit give bitwise the same weights on the same
machine and torch build: the initialisation comes from the global torch RNG
seeded inside ``torch.random.fork_rng`` (so the caller's RNG state is left
alone), and shuffling and augmentation draw from one ``torch.Generator``.
The data is always the fixed seed-0 train split; the seed changes the
initialisation and the order and warps of the batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probe.errors import ProbeUsageError
from probe.zoo.nets import fold_batch_norm
from probe.zoo.registry import ZooSpec, get_spec
from probe.zoo.splits import check_limit

__all__ = ["TrainReport", "train", "accuracy", "normalizer"]

#: ``progress(epoch, epochs, mean_loss)``, called after each epoch (epoch counts from 1).
ProgressFn = Callable[[int, int, float], None]


@dataclass
class TrainReport:
    """What :func:`train` produced.

    Attributes:
        name: Zoo name.
        state_dict: The trained weights, float32 CPU tensors (contiguous clones).
        train_accuracy: Accuracy on the (unaugmented) training examples used.
        test_accuracy: Accuracy on the full held-out split.
        seconds: Wall-clock time of the whole call (data, training, evaluation).
        epochs: Epochs run.
        seed: The seed used.
        examples: Number of training examples used.
    """

    name: str
    state_dict: dict[str, Tensor]
    train_accuracy: float
    test_accuracy: float
    seconds: float
    epochs: int
    seed: int
    examples: int


def normalizer(spec: ZooSpec) -> Callable[[Tensor], Tensor]:
    """``x -> (x - mean) / std`` with the spec's per-channel statistics, for ``(N, C, H, W)``."""
    mean = torch.tensor(spec.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).reshape(1, -1, 1, 1)
    return lambda x: (x - mean) / std


@torch.no_grad()
def accuracy(model: nn.Module, spec: ZooSpec, images: Tensor, labels: Tensor, batch_size: int = 100) -> float:
    """Top-1 accuracy of ``model`` on un-normalized images.

    Args:
        model: A zoo network (its mode is left as it was after the call).
        spec: Its spec, for the normalization.
        images: ``(N, C, H, W)`` in [0, 1].
        labels: ``(N,)`` int64.
        batch_size: Images per forward pass. Default 100.

    Returns:
        Fraction of correct predictions in [0, 1].
    """
    was_training = model.training
    model.eval()
    normalize = normalizer(spec)
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        logits = model(normalize(images[start : start + batch_size]))
        correct += int((logits.argmax(dim=1) == labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, images.shape[0])


def _cosine(step: int, total: int) -> float:
    """Learning-rate factor: cosine decay from 1 to 0 over ``total`` steps."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))


def train(
    name: str,
    *,
    seed: int = 0,
    epochs: int | None = None,
    progress: ProgressFn | None = None,
    limit: int | None = None,
) -> TrainReport:
    """Train zoo model ``name`` from scratch on the CPU.

    Adam with a per-step cosine learning-rate decay, cross-entropy loss,
    batches of ``spec.batch_size`` drawn without replacement, ``spec.augment``
    applied to each batch when the spec has one. A spec with ``train_build``
    trains that network and folds its batch norms into the convolutions, so
    the returned weights always fit ``spec.build()``; the accuracies are
    measured on ``spec.build()`` loaded with them.

    Args:
        name: A zoo name.
        seed: Seeds the initialisation, the shuffling and the augmentation. Default 0.
        epochs: Passes over the training data. Default None (``spec.epochs``).
        progress: Called as ``progress(epoch, epochs, mean_loss)`` after each epoch.
        limit: Use only the first ``limit`` training examples (for fast tests).
            Default None (all). The test accuracy is always on the full held-out split.

    Returns:
        A :class:`TrainReport`; save ``report.state_dict`` with ``torch.save``.

    Raises:
        ProbeUsageError: Unknown name, or a bad ``epochs`` / ``limit``.
    """
    spec = get_spec(name)
    if epochs is None:
        epochs = spec.epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ProbeUsageError(f"epochs must be a positive integer, got {epochs!r}")
    check_limit(limit, 1)
    start_time = time.perf_counter()

    train_images, train_labels = spec.data("train", 0, limit)
    test_images, test_labels = spec.data("test", 0, None)
    count = train_images.shape[0]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (spec.train_build or spec.build)()
    model.train()
    memory_format = torch.channels_last if spec.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    generator = torch.Generator().manual_seed(seed)
    normalize = normalizer(spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    steps_per_epoch = math.ceil(count / spec.batch_size)
    total_steps = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _cosine(step, total_steps))

    for epoch in range(1, epochs + 1):
        order = torch.randperm(count, generator=generator)
        loss_sum = 0.0
        for first in range(0, count, spec.batch_size):
            batch = order[first : first + spec.batch_size]
            images = train_images[batch]
            if spec.augment is not None:
                images = spec.augment(images, generator)
            inputs = normalize(images).contiguous(memory_format=memory_format)
            loss = F.cross_entropy(model(inputs), train_labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach()) * batch.numel()
        if progress is not None:
            progress(epoch, epochs, loss_sum / count)

    model.eval()
    if spec.train_build is not None:
        model = fold_batch_norm(model)
    state = {key: value.detach().to(torch.float32).contiguous().clone() for key, value in model.state_dict().items()}
    # Measure the model as it ships: spec.build() with these weights (checks the fold too).
    with torch.random.fork_rng(devices=[]):  # its throwaway initialisation must not use the caller's RNG
        final = spec.build()
    final.load_state_dict(state)
    final.eval()
    return TrainReport(
        name=spec.name,
        state_dict=state,
        train_accuracy=accuracy(final, spec, train_images, train_labels),
        test_accuracy=accuracy(final, spec, test_images, test_labels),
        seconds=time.perf_counter() - start_time,
        epochs=epochs,
        seed=seed,
        examples=count,
    )
