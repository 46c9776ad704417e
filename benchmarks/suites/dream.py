"""Deep Dream: cnn-probe vs the straightforward algorithm (benchmarks/reference/dream_naive.py), and tiling's memory.

Speed: googlenet (random weights), inception4c, the same photo, octaves,
octave scale, steps, step size and jitter; the reference runs the whole
network every step and carries nothing across octaves. Memory: cnn-probe on a
large photo with and without tiles: the peak memory of the tiled run is
bounded by the tile, the untiled one grows with the image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.harness import Row, measure

LAYER = "inception4c"
SETTINGS = {"octaves": 4, "octave_scale": 1.4, "steps": 10, "jitter": 32}


def _inputs(device: str, size: int):
    import torch
    import torchvision

    import probe

    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval().to(device)
    image = probe.load_image("skimage:astronaut", channels=3, size=(size, size)).to(device)
    return model, image


def probe_dream(device: str, size: int, octaves: int, steps: int, tile_size: int | None = None,
                channels_last: bool = False) -> Callable[[], Any]:
    """``probe.dream`` on ``LAYER``."""
    import probe

    model, image = _inputs(device, size)
    loaded = probe.load_model(model, device=device)

    def work() -> dict[str, float]:
        probe.dream(loaded, image, LAYER, octaves=octaves, octave_scale=SETTINGS["octave_scale"], steps=steps,
                    lr=0.01, jitter=SETTINGS["jitter"], tile_size=tile_size, seed=0, device=device,
                    channels_last=channels_last)
        return {}

    return work


def naive_dream(device: str, size: int, octaves: int, steps: int) -> Callable[[], Any]:
    """The reference: a full forward pass per step, no detail carried across octaves."""
    import torch

    from benchmarks.reference import dream_naive

    model, image = _inputs(device, size)
    model.requires_grad_(False)  # conservative: spare the reference the weight gradients cnn-probe also skips
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    def work() -> dict[str, float]:
        dream_naive.run(model, getattr(model, LAYER), image[None], octaves=octaves,
                        octave_scale=SETTINGS["octave_scale"], steps=steps, lr=0.01, jitter=SETTINGS["jitter"],
                        normalize=lambda x: (x - mean) / std, generator=torch.Generator().manual_seed(0))
        return {}

    return work


def config(device: str, quick: bool) -> dict[str, Any]:
    """The speed row's settings: ``device``, ``size``, ``octaves``, ``steps`` (per octave)."""
    size = 128 if quick else (384 if device == "cpu" else 1024)
    octaves, steps = (2, 2) if quick else (SETTINGS["octaves"], SETTINGS["steps"])
    return {"device": device, "size": size, "octaves": octaves, "steps": steps}


def case(config: dict[str, Any]) -> str:
    """The speed row's name for :func:`config`."""
    return f"googlenet {LAYER} {config['size']}px, {config['octaves']} octaves x {config['steps']} steps"


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    speed = config(device, quick)
    ours = measure("benchmarks.suites.dream:probe_dream", speed, 1 if quick else 3)
    peer = measure("benchmarks.suites.dream:naive_dream", speed, 1 if quick else 3)
    rows = [Row("dream", case(speed), "single-pass reference", ours, peer)]
    big = 256 if quick else (1536 if device == "cpu" else 4096)
    tile = 128 if quick else 512
    memory = {"device": device, "size": big, "octaves": 1, "steps": 2}
    tiled = measure("benchmarks.suites.dream:probe_dream", {**memory, "tile_size": tile}, 1)
    untiled = measure("benchmarks.suites.dream:probe_dream", memory, 1)
    rows.append(Row("dream", f"{big}px photo, tiles of {tile} vs untiled", "cnn-probe untiled", tiled, untiled,
                    note=f"peak memory {tiled.peak_mb:.0f} vs {untiled.peak_mb:.0f} MiB"))
    return rows, []
