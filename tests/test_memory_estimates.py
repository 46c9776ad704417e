"""Passes that keep every layer's output are estimated at a small size and refused before they allocate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import probe
import probe.memory
from probe import featuremaps, hooks, optimize
from probe.cli.main import cli
from probe.errors import ProbeRuntimeError
from tinynets import tiny

MIB = 2**20
REFUSAL = r"needs about [\d.]+ \w+ of memory, but [\d.]+ \w+ is free on cpu; give a smaller --size"


def convolutions() -> nn.Sequential:
    """A fully convolutional net: any input size runs to the end."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)).eval()


@pytest.fixture
def little_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 MiB free: a 512 px pass of these nets holds 20-40 MiB, a probe at 32-64 px well under 1 MiB; the
    CLI finds :func:`convolutions` as ``test_memory_estimates:convolutions``."""
    monkeypatch.setattr(probe.memory, "available_bytes", lambda device: 4 * MIB)
    monkeypatch.setitem(sys.modules, "test_memory_estimates", sys.modules[__name__])


def _sizes(monkeypatch: pytest.MonkeyPatch, module: object, name: str, at: int) -> list[tuple[int, ...]]:
    """The ``(H, W)`` of every call of ``module.name`` (its argument ``at``: a shape or a size) from now on."""
    seen: list[tuple[int, ...]] = []
    original = getattr(module, name)

    def spied(*args: object, **kwargs: object) -> object:
        shape = args[at]
        seen.append((shape, shape) if isinstance(shape, int) else tuple(shape)[-2:])  # type: ignore[arg-type]
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spied)
    return seen


def test_inspect_layer_refuses_a_size_that_cannot_fit_before_its_full_size_pass(
        monkeypatch: pytest.MonkeyPatch, little_memory: None) -> None:
    loaded = probe.load_model(tiny().eval(), input_size=16)
    sizes = _sizes(monkeypatch, optimize, "_shape_pass", 3)
    with pytest.raises(ProbeRuntimeError, match=REFUSAL):
        optimize.inspect_layer(loaded, "conv2", 512)
    assert sizes and all(h * w <= 4 * 16 * 16 for h, w in sizes)  # only the probe ran: never 512x512


def test_inspect_layer_at_a_size_that_fits_gives_the_same_shape_after_its_estimate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = probe.load_model(tiny().eval(), input_size=16)
    sizes = _sizes(monkeypatch, optimize, "_shape_pass", 3)
    info = optimize.inspect_layer(loaded, "conv2", 96)
    assert info.shape == (6, 48, 48) and sizes == [(32, 32), (96, 96)]  # the probe, then the pass itself
    assert optimize.inspect_layer(loaded, "conv2", 32).shape == (6, 16, 16) and sizes[-1] == (32, 32)  # no probe


def test_probe_maximize_at_a_huge_size_says_the_estimate_in_one_line(little_memory: None) -> None:
    result = CliRunner().invoke(cli, ["maximize", "--model", "tinynets:tiny", "--layer", "conv2", "--units", "0",
                                      "--size", "512", "--steps", "1", "--out", "unused"])
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "pass of tiny" in line.lower() and "'conv2'" in line
    assert re.search(REFUSAL, line), line


def test_layers_refuses_a_size_that_cannot_fit_before_its_full_size_pass(
        monkeypatch: pytest.MonkeyPatch, little_memory: None) -> None:
    sizes = _sizes(monkeypatch, hooks, "_dummy_pass", 2)
    with pytest.raises(ProbeRuntimeError, match=REFUSAL):
        probe.layers(convolutions(), (3, 1024, 1024))
    assert sizes and all(h * w <= 4 * 224 * 224 for h, w in sizes)
    result = CliRunner().invoke(cli, ["layers", "test_memory_estimates:convolutions", "--size", "1024"])
    assert result.exit_code == 1 and "needs about" in result.output and "Traceback" not in result.output


def test_feature_maps_refuse_a_size_that_cannot_fit_before_the_image_is_resized(
        monkeypatch: pytest.MonkeyPatch, little_memory: None) -> None:
    sizes = _sizes(monkeypatch, featuremaps, "model_input", 2)
    loaded = probe.load_model(convolutions(), input_size=16)
    with pytest.raises(ProbeRuntimeError, match=REFUSAL):
        probe.feature_maps(loaded, torch.rand(3, 32, 32), size=512)
    assert sizes == []  # the image was never made 512x512
    result = CliRunner().invoke(cli, ["activations", "skimage:astronaut", "--model",
                                      "test_memory_estimates:convolutions", "--size", "1024", "--out", "unused"])
    assert result.exit_code == 1 and "needs about" in result.output and "Traceback" not in result.output


PEAK = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch
import probe
from probe import optimize
from tinynets import tiny

def status(key):
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(key))
    return int(line.split()[1]) * 1024

torch.set_num_threads(1)
loaded = probe.load_model(tiny().eval(), input_size=32)
optimize.inspect_layer(loaded, "bn2", 64)  # what a first pass allocates once (kernels, tables)
estimates = []
original = optimize.check_scaled
optimize.check_scaled = lambda *a, **k: estimates.append(original(*a, **k))
Path("/proc/self/clear_refs").write_text("5")  # VmHWM, the peak RSS, is the RSS now
before = status("VmRSS:")
optimize.inspect_layer(loaded, "bn2", 512)
print(json.dumps({"estimate": estimates[0], "peak": status("VmHWM:") - before}))
"""


def test_the_estimate_is_within_a_stated_factor_of_the_measured_peak() -> None:
    """The estimate over the peak RSS rise of inspect_layer's pass, in [1, 2.5] (probe.memory.PASS_HEADROOM's
    measurements), in a fresh process whose allocator gives freed blocks back (a fixed mmap threshold), so
    that its RSS is what the pass holds."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs (it resets the peak RSS)")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    done = subprocess.run([sys.executable, "-c", PEAK, str(Path(__file__).parent)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert 1.0 <= figures["estimate"] / figures["peak"] <= 2.5, figures
