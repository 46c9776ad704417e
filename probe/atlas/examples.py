"""The dataset pass: per unit, the top-k images by degree of activation and a histogram, streamed on the device.

One forward pass per batch records every atlas layer at once. For each unit
the pass keeps the ``k`` images with the highest *degree of activation* (the
sum of the unit's map, the number the synthetic images maximize) with the
position of the map's maximum (where the crop goes), and a histogram of the
degree of activation over the whole dataset.

Both are exact and independent of how the dataset is sharded:

- top-k ties are broken by dataset index, so merging the lists of any number
  of ranks in any order gives the same list;
- the histogram has ``2 * BINS`` bins of width ``2**e / BINS`` over
  ``[-2**e, 2**e)``, with ``e`` the smallest power of two that holds every
  value seen; when a larger value arrives the bins merge in pairs, which is
  exact because the edges nest. Any two histograms merge the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from probe.hooks import capture, evaluating
from probe.models import LoadedModel
from probe.runtime import autocast

__all__ = ["BINS", "UnitExamples", "TopK", "Histogram", "dataset_pass", "merge_passes", "batches_of"]

BINS = 64  # per side of zero


@dataclass
class TopK:
    """The best ``k`` images of every unit of one layer so far.

    Attributes:
        scores: ``(C, k)`` degree of activation, best first (``-inf`` where empty).
        index: ``(C, k)`` dataset index (``-1`` where empty).
        position: ``(C, k)`` flat position ``y * W' + x`` of the map's maximum (the token, for ``(N, C, L)`` tokens).
    """

    scores: torch.Tensor
    index: torch.Tensor
    position: torch.Tensor

    @classmethod
    def empty(cls, units: int, k: int, device: torch.device | str = "cpu") -> TopK:
        """No images yet."""
        return cls(torch.full((units, k), -torch.inf, device=device),
                   torch.full((units, k), -1, dtype=torch.long, device=device),
                   torch.zeros((units, k), dtype=torch.long, device=device))

    def add(self, scores: torch.Tensor, index: torch.Tensor, position: torch.Tensor) -> TopK:
        """Merge candidates ``(C, M)`` each; ties go to the lower dataset index, empty slots last."""
        k = self.scores.shape[1]
        all_scores = torch.cat([self.scores, scores.float()], 1)
        all_index = torch.cat([self.index, index], 1)
        all_position = torch.cat([self.position, position], 1)
        key = torch.where(all_index < 0, torch.iinfo(torch.long).max, all_index)
        order = key.argsort(dim=1, stable=True)
        by_score = all_scores.gather(1, order).argsort(dim=1, descending=True, stable=True)
        order = order.gather(1, by_score)[:, :k]
        return TopK(all_scores.gather(1, order), all_index.gather(1, order), all_position.gather(1, order))

    def cpu(self) -> TopK:
        """The same on the CPU."""
        return TopK(self.scores.cpu(), self.index.cpu(), self.position.cpu())


@dataclass
class Histogram:
    """Per-unit histograms over power-of-two ranges (see the module docstring).

    Attributes:
        counts: ``(C, 2 * BINS)`` int64; bin ``j`` holds values in
            ``[(j - BINS) * w, (j - BINS + 1) * w)`` with ``w = 2**exponent / BINS``.
        exponent: ``(C,)`` int64.
    """

    counts: torch.Tensor
    exponent: torch.Tensor

    @classmethod
    def empty(cls, units: int, device: torch.device | str = "cpu") -> Histogram:
        """No values yet (range ``2**-60``)."""
        return cls(torch.zeros((units, 2 * BINS), dtype=torch.long, device=device),
                   torch.full((units,), -60, dtype=torch.long, device=device))

    def widen(self, exponent: torch.Tensor) -> Histogram:
        """The same counts over ``2**exponent`` (each entry >= the current one): bins merge by ``2**d``."""
        shift = (exponent - self.exponent).clamp(0, 40)
        bins = torch.arange(-BINS, BINS, device=self.counts.device).expand_as(self.counts)
        target = torch.div(bins, (2 ** shift)[:, None], rounding_mode="floor") + BINS
        counts = torch.zeros_like(self.counts).scatter_add_(1, target, self.counts)
        return Histogram(counts, torch.maximum(exponent, self.exponent))

    def add(self, values: torch.Tensor) -> Histogram:
        """Count ``values`` ``(C, M)``."""
        values = values.double()
        _, needed = torch.frexp(values.abs().amax(dim=1))
        grown = self.widen(torch.maximum(needed.long(), self.exponent))
        width = torch.pow(2.0, grown.exponent.double()) / BINS
        bins = torch.floor(values / width[:, None]).long().clamp(-BINS, BINS - 1) + BINS
        counts = grown.counts.scatter_add(1, bins, torch.ones_like(bins))
        return Histogram(counts, grown.exponent)

    def merge(self, other: Histogram) -> Histogram:
        """The histogram of both value sets."""
        exponent = torch.maximum(self.exponent, other.exponent)
        a, b = self.widen(exponent), other.widen(exponent)
        return Histogram(a.counts + b.counts, exponent)

    def cpu(self) -> Histogram:
        """The same on the CPU."""
        return Histogram(self.counts.cpu(), self.exponent.cpu())

    def unit(self, unit: int) -> dict[str, object]:
        """One unit's histogram for JSON: ``{"start", "width", "counts"}`` trimmed to the non-empty bins."""
        counts = self.counts[unit].tolist()
        width = 2.0 ** int(self.exponent[unit]) / BINS
        used = [i for i, c in enumerate(counts) if c]
        if not used:
            return {"start": 0.0, "width": width, "counts": []}
        return {"start": (used[0] - BINS) * width, "width": width, "counts": counts[used[0]: used[-1] + 1]}


@dataclass
class UnitExamples:
    """What the dataset pass found for one layer: its top-k and histograms, plus the map width (``L`` for tokens)
    and whether its positions are tokens (an ``(N, C, L)`` output)."""

    layer: str
    top: TopK
    histogram: Histogram
    map_width: int
    seen: int
    tokens: bool = False

    def cpu(self) -> UnitExamples:
        """The same on the CPU (to gather across ranks)."""
        return UnitExamples(self.layer, self.top.cpu(), self.histogram.cpu(), self.map_width, self.seen, self.tokens)


def batches_of(count: int, batch: int) -> list[range]:
    """The dataset's fixed batches: ``range(0, batch)``, ``range(batch, 2 * batch)``, ..."""
    return [range(start, min(count, start + batch)) for start in range(0, count, batch)]


def dataset_pass(
    loaded: LoadedModel,
    load: Callable[[Sequence[int]], torch.Tensor],
    layers: Sequence[str],
    batches: Sequence[range],
    *,
    k: int,
    keep: Sequence[int] | None = None,
    precision: str = "fp32",
    progress: Callable[[int], None] | None = None,
) -> dict[str, UnitExamples]:
    """Stream ``batches`` of the dataset through ``loaded`` and keep each unit's top ``k`` and histogram.

    Args:
        loaded: the model (not changed; no hook is left).
        load: ``load(indices) -> (B, C, H, W)`` images in ``[0, 1]``.
        layers: layers with ``(N, C, H', W')`` maps or ``(N, C, L)`` tokens (as :func:`probe.hooks.capture` gives them).
        batches: the dataset indices of each batch this rank handles.
        k: examples per unit.
        keep: how many units (the first) of each layer to keep, same order as ``layers``; default all.
        precision: autocast for the forward passes (scores are taken in fp32).
        progress: ``progress(images)`` after each batch.

    Returns:
        ``{layer: UnitExamples}`` on the model's device.
    """
    device = loaded.device
    state: dict[str, UnitExamples] = {}
    with evaluating(loaded.module), torch.no_grad():
        for indices in batches:
            images = load(indices).to(device)
            with autocast(device, precision):
                acts = capture(loaded.module, loaded.preprocess.normalize(images), list(layers), stop_early=True)
            index = torch.tensor(list(indices), device=device)
            for number, layer in enumerate(layers):
                act = acts[layer].float()
                if keep is not None:
                    act = act[:, : keep[number]]
                units, width = act.shape[1], act.shape[-1]
                flat = act.flatten(2)  # (B, C, H' * W') of a map, (B, C, L) of tokens
                scores = flat.sum(dim=2).T.contiguous()  # (C, B)
                position = flat.argmax(dim=2).T.contiguous()
                if layer not in state:
                    state[layer] = UnitExamples(layer, TopK.empty(units, k, device), Histogram.empty(units, device),
                                                width, 0, tokens=act.dim() == 3)
                entry = state[layer]
                entry.top = entry.top.add(scores, index.expand(units, -1), position)
                entry.histogram = entry.histogram.add(scores)
                entry.seen += len(indices)
            if progress is not None:
                progress(len(indices))
    return state


def merge_passes(parts: Sequence[dict[str, UnitExamples]]) -> dict[str, UnitExamples]:
    """Merge the passes of several ranks (each over other batches) into one; the order does not matter."""
    merged: dict[str, UnitExamples] = {}
    for part in parts:
        for layer, entry in part.items():
            entry = entry.cpu()
            if layer not in merged:
                merged[layer] = entry
                continue
            have = merged[layer]
            have.top = have.top.add(entry.top.scores, entry.top.index, entry.top.position)
            have.histogram = have.histogram.merge(entry.histogram)
            have.seen += entry.seen
    return merged
