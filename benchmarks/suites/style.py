"""Style transfer: cnn-probe vs the PyTorch tutorial's algorithm (benchmarks/reference/style_tutorial.py).

Same VGG19 (random weights, seeded: speed does not depend on them), same
content and style photos at the same size, the tutorial's layers (content
conv_4 = conv2_2; style conv_1..conv_5 = conv1_1, conv1_2, conv2_1, conv2_2,
conv3_1), torch's L-BFGS on the pixels, about the same number of loss
evaluations. The row reports seconds per evaluation (one forward and one
backward pass: L-BFGS may evaluate more than once an iteration) and the peak
memory of the whole run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.harness import Measurement, Row, measure, measure_pair

CONTENT_LAYERS = ["conv2_2"]
STYLE_LAYERS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"]


def _inputs(device: str, size: int):
    import torch
    import torchvision

    import probe

    torch.manual_seed(0)
    vgg = torchvision.models.vgg19(weights=None).eval().to(device)
    content = probe.load_image("skimage:astronaut", channels=3, size=(size, size)).to(device)
    style = probe.load_image("skimage:coffee", channels=3, size=(size, size)).to(device)
    return vgg, content, style


def probe_style(device: str, size: int, steps: int, precision: str = "fp32",
                channels_last: bool = False) -> Callable[[], Any]:
    """``probe.style_transfer`` with the tutorial's layers and L-BFGS."""
    import probe

    vgg, content, style = _inputs(device, size)
    loaded = probe.load_model(vgg, device=device)

    def work() -> dict[str, float]:
        result = probe.style_transfer(
            loaded, content, style, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
            optimizer="lbfgs", steps=steps, size=size, tv_weight=0.0, snapshots=0,
            seed=0, device=device, precision=precision, channels_last=channels_last,
        )
        return {"evaluations": len(result.history["total"])}

    return work


def tutorial_style(device: str, size: int, steps: int) -> Callable[[], Any]:
    """The reference: the tutorial's model surgery and L-BFGS loop."""
    from benchmarks.reference import style_tutorial

    vgg, content, style = _inputs(device, size)

    def work() -> dict[str, float]:
        _, evaluations = style_tutorial.run(vgg.features, content[None], style[None], steps)
        return {"evaluations": evaluations}

    return work


def per_evaluation(measured: Measurement) -> Measurement:
    """The measurement with its times divided by the number of loss evaluations (forward + backward) per run."""
    count = measured.extra["evaluations"]
    return Measurement(measured.seconds / count, [t / count for t in measured.runs], measured.peak_mb, measured.extra)


def configs(device: str, quick: bool) -> list[dict[str, Any]]:
    """The rows' settings, one per image size: ``device``, ``size``, ``steps`` (L-BFGS evaluations)."""
    sizes = (64,) if quick else ((128, 256) if device == "cpu" else (256, 512))
    return [{"device": device, "size": size, "steps": 3 if quick else 20} for size in sizes]


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    rows = []
    for config in configs(device, quick):
        size = config["size"]
        ours, peer = measure_pair("benchmarks.suites.style:probe_style", "benchmarks.suites.style:tutorial_style",
                                  config, repeat=3)
        rows.append(Row("style", f"vgg19 {size}px, s per L-BFGS evaluation", "PyTorch tutorial",
                        per_evaluation(ours), per_evaluation(peer),
                        note=f"{ours.extra['evaluations']} vs {peer.extra['evaluations']} evaluations a run"))
        if device.startswith("cuda"):
            bf16 = measure("benchmarks.suites.style:probe_style", {**config, "precision": "bf16", "channels_last": True}, 3)
            rows.append(Row("style", f"vgg19 {size}px, s per L-BFGS evaluation, bf16, channels-last", "PyTorch tutorial",
                            per_evaluation(bf16), per_evaluation(peer)))
    return rows, []
