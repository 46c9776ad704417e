"""Layer gallery: N channels of googlenet's inception4a, cnn-probe (batched) vs Lucent (one call per channel).

Both sides use the same recipe: a Fourier-parametrized, colour-decorrelated
128 px image, Adam at lr 0.05, random pad/jitter/scale/rotate transforms,
ImageNet normalization, the channel's mean activation as the objective, the
same number of steps, torchvision's googlenet with random weights (speed does
not depend on the weights). Two things keep Lucent's side fair: its images are
not upsampled to 224 px (``fixed_image_size=128``; by default it upsamples
anything smaller), and the forward hooks each ``render_vis`` call leaves on the
model are removed after the call, so later calls are not slowed by earlier ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.harness import Row, measure

LAYER = "inception4a"


def _googlenet(device: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval().to(device)


def probe_layer(device: str, units: int, size: int, steps: int, precision: str = "fp32",
                channels_last: bool = False) -> Callable[[], Any]:
    """cnn-probe: all ``units`` channels in one batched optimization."""
    import probe
    from probe import objectives as O

    loaded = probe.load_model(_googlenet(device), device=device)
    objective = O.channel(LAYER, range(units), reduce="mean")

    def work() -> dict[str, float]:
        result = probe.maximize(loaded, objective, steps=steps, image_size=size, preset="robust",
                                seed=0, device=device, precision=precision,
                                channels_last=channels_last)
        return {"mean_score": float(result.scores.float().mean())}

    return work


def lucent_layer(device: str, units: int, size: int, steps: int) -> Callable[[], Any]:
    """Lucent: ``render_vis`` once per channel, as its layer galleries do."""
    from lucent.optvis import param, render, transform

    model = _googlenet(device)

    def clear_hooks() -> None:
        for module in model.modules():
            module._forward_hooks.clear()

    def work() -> None:
        for unit in range(units):
            render.render_vis(
                model, f"{LAYER}:{unit}",
                param_f=lambda: param.image(size, fft=True, decorrelate=True),
                transforms=transform.standard_transforms, thresholds=(steps,),
                preprocess=True, progress=False, show_image=False, fixed_image_size=size,
            )
            clear_hooks()

    return work


def configs(device: str, quick: bool) -> list[dict[str, Any]]:
    """The rows' settings, one per channel count: ``device``, ``units``, ``size``, ``steps``."""
    # On 2 CPU cores Lucent needs ~0.2 s a step at 128 px: 64 channels x 256 steps would take an hour,
    # so the CPU run uses 32 steps and stops at 16 channels (the CPU target); the GPU runs all.
    steps = 8 if quick else (32 if device == "cpu" else 256)
    counts = (1, 4) if quick else ((1, 4, 16) if device == "cpu" else (1, 4, 16, 64))
    return [{"device": device, "units": units, "size": 128, "steps": steps} for units in counts]


def case(config: dict[str, Any]) -> str:
    """A row's name for one of :func:`configs`."""
    return f"googlenet {LAYER} {config['units']} ch, {config['size']}px, {config['steps']} steps"


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    rows = []
    for config in configs(device, quick):
        units, steps = config["units"], config["steps"]
        repeat, warmup = (1, units < 16) if device == "cpu" else (3, True)
        ours = measure("benchmarks.suites.gallery:probe_layer", config, repeat, warmup)
        peer = measure("benchmarks.suites.gallery:lucent_layer", config, repeat, warmup)
        rows.append(Row("gallery", case(config), "Lucent 0.1.8", ours, peer,
                        note=f"{units * steps / ours.seconds:.1f} vs {units * steps / peer.seconds:.1f} unit-steps/s"))
        if device.startswith("cuda"):
            fast = {**config, "precision": "bf16", "channels_last": True}
            bf16 = measure("benchmarks.suites.gallery:probe_layer", fast, repeat, warmup)
            rows.append(Row("gallery", f"{case(config)}, bf16, channels-last", "Lucent 0.1.8", bf16, peer))
    return rows, []
