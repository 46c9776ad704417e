"""benchmarks.measure_steps counts what a step costs: its Python calls and ATen operations, by origin."""

from __future__ import annotations

import torch

from benchmarks.measure_steps import aten_operations, python_calls


def stepper(calls_per_step: int):
    x = torch.ones(3)

    def helper() -> None:
        pass

    def work(steps: int) -> None:
        for _ in range(steps):
            x.add(1.0).mul(2.0)  # two operations a step, from this test file (not the model's)
            for _ in range(calls_per_step):
                helper()

    return work


def test_the_counts_are_per_step_and_grow_with_what_a_step_does():
    assert python_calls(stepper(5)) - python_calls(stepper(2)) == 3
    total, origins = aten_operations(stepper(0))
    assert total == 2 and origins == {"backward or caller": 2}


def test_operations_asked_for_by_cnn_probe_are_named_by_file_and_function():
    from probe.streams import ImageStreams

    streams = ImageStreams([1, 2])
    total, origins = aten_operations(lambda steps: [streams.uniform(1) for _ in range(steps)])
    assert total > 0 and all(origin.startswith("probe/streams.py:") for origin in origins)
