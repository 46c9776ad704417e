"""On a GPU: the API with a user's own CUDA module, every command on ``--device cuda``, bf16 and channels-last,
``--batch auto`` under a memory cap, no host sync per step, and a tiny benchmark run.

Every test here carries the ``cuda`` marker and skips without a GPU (tests/conftest.py).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tinynets import tiny

import probe
from probe import objectives as O
from probe.cli.main import cli
from probe.models import Preprocess, load_model
from probe.streams import ImageStreams, image_key

pytestmark = pytest.mark.cuda

SMALL = Preprocess((0.5,) * 3, (0.25,) * 3, 3, (16, 16))


def gpu_module() -> torch.nn.Module:
    """The user's own module, already on the GPU (as a user leaves it: training mode)."""
    return tiny().cuda()


def test_the_api_takes_a_users_gpu_module():
    module = gpu_module()
    flags = [m.training for m in module.modules()]
    result = probe.maximize(module, O.channel("conv2", range(6)), steps=4, image_size=16)
    assert result.images.shape == (6, 3, 16, 16) and torch.isfinite(result.scores).all()
    assert result.settings["device"].startswith("cuda")
    image = torch.rand(3, 32, 32)
    dreamed = probe.dream(module, image, "conv2", octaves=2, steps=2, jitter=4)
    assert dreamed.image.shape == (3, 32, 32)
    styled = probe.style_transfer(module, image, torch.rand(3, 32, 32), content_layers=["conv2"],
                                  style_layers=["conv1", "conv2"], steps=3, size=16)
    assert torch.isfinite(torch.tensor(list(styled.losses.values()))).all()
    explained = probe.attribute(module, torch.rand(3, 16, 16), "saliency", size=16)
    assert explained is not None
    with probe.record(module, ["conv1", "conv2"]) as acts:
        module(torch.rand(2, 3, 16, 16, device="cuda"))
    assert acts["conv2"].device.type == "cuda" and acts["conv2"].shape == (2, 6, 16, 16)
    assert [m.training for m in module.modules()] == flags and all(p.grad is None for p in module.parameters())


@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_bf16_with_channels_last(precision):
    loaded = load_model(gpu_module(), preprocess=SMALL)
    result = probe.maximize(loaded, O.channel("conv2", range(6)), steps=8, precision=precision, channels_last=True)
    assert result.settings["precision"] == "bf16" and result.settings["channels_last"]
    assert torch.isfinite(result.scores).all() and (result.history[-1] > result.history[0]).float().mean() > 0.5


def test_each_image_is_the_same_alone_or_in_a_batch_on_the_gpu_too():
    keys = [image_key(0, "conv2", unit, 0) for unit in range(16)]
    assert torch.equal(ImageStreams(keys, "cuda").uniform(7).cpu(), ImageStreams(keys).uniform(7))  # device-free hash
    loaded = load_model(gpu_module(), preprocess=SMALL)
    first = probe.maximize(loaded, O.channel("conv2", [0, 1, 2, 3]), steps=6, seed=3)
    second = probe.maximize(loaded, O.channel("conv2", [5, 1, 4, 0]), steps=6, seed=3)
    assert torch.allclose(first.images[1], second.images[1], atol=2 / 255)  # kernels may round differently


def test_the_render_loop_does_not_sync_per_step():
    # the loop's own work: an objective that reads conv2 without building index tensors from Python lists
    # (O.channel's unit index is such a copy each step, a sync: objectives.py's to fix)
    loaded = load_model(gpu_module(), preprocess=SMALL)
    objective = O.Objective(lambda c: c("conv2")[:, 0].sum((1, 2)), "conv2[0]", layers=["conv2"], units=range(6))

    def syncs(steps: int) -> int:
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                probe.maximize(loaded, objective, steps=steps, progress_every=1000)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    syncs(2)  # warm-up: lazy initialization syncs once
    assert syncs(4) == syncs(16)


def test_batch_auto_fits_a_whole_layer_under_a_memory_cap():
    import torchvision

    free, total = torch.cuda.mem_get_info()
    module = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval().cuda()
    loaded = load_model(module)
    torch.cuda.empty_cache()
    allowed = torch.cuda.memory_allocated() + 2 * 2**30  # the weights and 2 GiB to work in
    torch.cuda.set_per_process_memory_fraction(min(1.0, allowed / total))
    try:
        result = probe.maximize(loaded, O.channel("inception4a", range(128), reduce="mean"), steps=2, image_size=128,
                                batch="auto", precision="auto")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert len(result) == 128 and torch.isfinite(result.scores).all()
    assert 1 <= result.settings["batch"] <= 128


@pytest.mark.parametrize(
    "args",
    [
        ["maximize", "--model", "shapes", "--layer", "conv3_1", "--units", "0-3", "--steps", "4"],
        ["dream", "skimage:coffee", "--model", "shapes", "--size", "64", "--octaves", "2", "--steps", "2"],
        ["style", "skimage:astronaut", "skimage:coffee", "--model", "shapes", "--size", "32", "--steps", "3"],
        ["attribute", "digits:0", "--method", "saliency"],
    ],
    ids=lambda args: args[0],
)
def test_each_command_runs_on_cuda(args, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [*args, "--device", "cuda", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "cuda" in json.dumps(manifest) or args[0] == "attribute"


def test_a_tiny_benchmark_run():
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.suites import gpu

    rows, _ = gpu.run("cuda", quick=True)
    assert len(rows) == 6 and all(row.ours.seconds > 0 for row in rows)
    assert all(row.ours.extra.get("tflops", 0) > 0 for row in rows[:4])
