"""The figures of merit's helpers (benchmarks/measure_methods.py) measure what they say: moves, judges, cache."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed: it runs from the checkout

from benchmarks import measure_methods as M  # noqa: E402

import probe  # noqa: E402
from probe.zoo.registry import get_spec  # noqa: E402


def test_a_shift_moves_the_image_and_replicates_the_uncovered_edge():
    image = torch.arange(20.0).view(1, 1, 4, 5)
    moved = M.shifted(image, 1, -2)  # one down, two left
    assert torch.equal(moved[0, 0, 1:, :3], image[0, 0, :3, 2:])
    assert torch.equal(moved[0, 0, 0], moved[0, 0, 1]) and torch.equal(moved[0, 0, :, 3], moved[0, 0, :, 2])
    assert torch.equal(M.shifted(image, 0, 0), image)


def test_the_judge_scores_the_intended_class_and_its_cache_follows_the_environment(monkeypatch, tmp_path):
    judge = probe.load_model("lenet5")
    images = torch.stack([get_spec("digits").sample(str(k)) for k in range(10)])  # the digits 0..9, 28x28
    labels = torch.arange(10)  # resized to lenet5's 32x32
    right = M.judge_probabilities(judge, images, labels)
    wrong = M.judge_probabilities(judge, images, (labels + 1) % 10)
    assert right.shape == (10,) and right.median() > 0.9 and wrong.median() < 0.1
    moved = M.shifted_probabilities(judge, images, labels, 2)  # the worst of 8 moves: at most the best of them
    assert moved.shape == (10,) and moved.median() > 0.5
    assert bool((moved <= M.judge_probabilities(judge, M.shifted(images, 2, 2), labels) + 1e-6).all())
    monkeypatch.setenv("CNN_PROBE_CACHE", str(tmp_path))
    assert M.judge_path(7) == tmp_path / "judges" / "shapes-seed7.pt"
