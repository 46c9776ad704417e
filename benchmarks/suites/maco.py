"""MACO: cnn-probe's ``param="maco"`` against Horama's ``maco`` (Fel et al. 2023), same model, steps and size.

googlenet with random weights (speed does not depend on the weights),
channel 0 of ``inception4a``. Both optimize the Fourier phase with the
magnitude fixed to a natural-image spectrum; both get the same one, the mean
spectrum of scikit-image's photos that cnn-probe computes
(:func:`probe.spectrum.default_spectrum`), written where Horama looks for
its own (``spectrum_decorrelated.npy`` in the working folder) so that Horama
downloads nothing.

Horama evaluates ``crops_per_iteration`` crops of its image per step (6 by
default): one row with its default, one with 2 crops, the fewest it takes
(with one, its ``squeeze(0)`` drops the batch dimension and the resize
fails); cnn-probe runs one transformed image per step. Seconds are for one
whole image; peak memory is what the run added over its set-up.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Row, measure_pair

LAYER = "inception4a"
UNIT = 0


def _googlenet(device: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval().to(device)


def probe_maco(device: str, size: int, steps: int, crops: int = 1) -> Callable[[], Any]:
    """``probe.maximize`` with ``param="maco"`` on one channel, the robust transforms, ``steps`` steps."""
    import probe
    from probe import objectives as O

    loaded = probe.load_model(_googlenet(device), device=device)

    def work() -> dict[str, float]:
        result = probe.maximize(loaded, O.channel(LAYER, UNIT), steps=steps, param="maco", image_size=size, seed=0,
                                precision="fp32", batch=1)
        return {"score": float(result.scores[0])}

    return work


def horama_maco(device: str, size: int, steps: int, crops: int = 6) -> Callable[[], Any]:
    """Horama's ``maco`` on the same channel: ``steps`` steps of ``crops`` crops, an image of ``size`` px."""
    import numpy as np
    import torch
    from horama import maco

    from probe.spectrum import default_spectrum

    model = _googlenet(device)
    for parameter in model.parameters():
        parameter.requires_grad_(False)  # as cnn-probe's frozen view: no weight gradients for either side
    folder = tempfile.mkdtemp(prefix="horama-")
    spectrum = default_spectrum(size, size, 3).magnitude.numpy().astype(np.float32)
    np.save(os.path.join(folder, "spectrum_decorrelated.npy"), spectrum)
    os.chdir(folder)  # Horama reads (or downloads) its spectrum from the working folder
    captured: dict[str, torch.Tensor] = {}
    getattr(model, LAYER).register_forward_hook(lambda module, args, out: captured.__setitem__("act", out))

    def objective(images: torch.Tensor) -> torch.Tensor:
        model(images)
        return captured["act"][:, UNIT].mean()

    def work() -> dict[str, float]:
        torch.manual_seed(0)
        maco(objective, total_steps=steps, image_size=size, model_input_size=size, crops_per_iteration=crops,
             device=device)
        return {}

    return work


def config(device: str, quick: bool) -> dict[str, Any]:
    """The rows' settings: ``device``, ``size`` (image and model input), ``steps``."""
    if quick:
        return {"device": device, "size": 64, "steps": 2}
    return {"device": device, "size": 128 if device == "cpu" else 224, "steps": 16 if device == "cpu" else 256}


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    try:
        import horama  # noqa: F401
    except ImportError:
        print("maco: Horama is not installed (pip install horama); no rows", flush=True)
        return [], []
    settings = config(device, quick)
    case = f"googlenet {LAYER}:{UNIT} {settings['size']}px, {settings['steps']} steps"
    rows = []
    for crops in (6, 2):
        ours, peer = measure_pair("benchmarks.suites.maco:probe_maco", "benchmarks.suites.maco:horama_maco",
                                  {**settings, "crops": crops}, repeat=1, rounds=1 if quick else 2)
        rows.append(Row("maco", case, f"Horama maco, {crops} crop(s)/step", ours, peer,
                        note=f"peak memory {ours.peak_mb:.0f} vs {peer.peak_mb:.0f} MiB"))
    return rows, []
