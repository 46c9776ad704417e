"""The gpu benchmark suite cannot rot: its every row runs here at toy sizes on the CPU, in this process."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed: it runs from the checkout

from benchmarks import harness  # noqa: E402
from benchmarks.suites import gpu  # noqa: E402


def test_every_gpu_row_runs_quick_on_the_cpu():
    rows, curves = gpu.run("cpu", quick=True)
    cases = [row.case for row in rows]
    assert curves == [] and len(rows) == 6 and {row.suite for row in rows} == {"gpu"}
    assert [case.split()[0] for case in cases] == ["gallery", "probe", "style", "dream", "record", "record"]
    gallery = rows[0]
    if importlib.util.find_spec("lucent") is None:
        assert math.isnan(gallery.peer.seconds) and "peer not installed" in harness.table(rows)
    for row in rows[:4]:  # cnn-probe's sides that count their FLOPs
        assert row.ours.extra["flops"] > 0 and row.ours.extra["tflops"] > 0 and "TFLOP/s" in row.note, row.case
        assert row.ours.seconds > 0 and row.peer.peak_mb >= 0
    assert "unit-steps/s" in gallery.note and "overhead" in rows[-1].note


def test_peaks_name_the_card_and_the_results_file(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "NVIDIA H200")
    assert gpu.peak("cuda") == gpu.PEAKS["H200"] and gpu.peak("cpu") is None
    measured = harness.Measurement(2.0, [2.0], 0.0, {"flops": 790e12})
    assert gpu.throughput(measured, "cuda").startswith("395 TFLOP/s, 50% of 790 (bf16, measured on an H200")
    assert measured.extra["peak_fraction"] == pytest.approx(0.5)
    assert harness.card_slug("cuda:0") == "h200" and harness.card_slug("cpu") == ""
    row = harness.Row("gpu", "case", "peer", measured, harness.not_installed("lucent"))
    path = harness.write_results([row], "cuda", {"suites": ["gpu"]}, folder=tmp_path)
    assert path.name.endswith("-cuda-h200.json") and json.loads(path.read_text())["machine"]["gpu"] == "NVIDIA H200"
