"""Memory format: cnn-probe with ``channels_last=True`` (``--channels-last``) vs its default layout.

The same work three times, each side in fresh processes alternating over
rounds: a 16-channel layer gallery of googlenet's inception4a (the gallery
suite's recipe), style transfer on VGG19 (the style suite's), and Deep Dream on
googlenet's inception4c (the dream suite's). Only the layout of the
convolution weights differs (see :func:`probe.models.frozen_view`), so a row's
speed-up is what the option buys on this device.
"""

from __future__ import annotations

from functools import partial

from benchmarks.harness import Row, measure_pair
from benchmarks.suites import dream, gallery, style

gallery_channels_last = partial(gallery.probe_layer, channels_last=True)
style_channels_last = partial(style.probe_style, channels_last=True)
dream_channels_last = partial(dream.probe_dream, channels_last=True)

PEER = "cnn-probe, default layout"


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    cpu = device == "cpu"
    units, steps = (4, 4) if quick else ((16, 32) if cpu else (64, 256))
    style_size = 64 if quick else (256 if cpu else 512)
    dream_size, octaves = (128, 2) if quick else ((384 if cpu else 1024), dream.SETTINGS["octaves"])
    evaluations, dream_steps = (3, 2) if quick else (20, dream.SETTINGS["steps"])
    cases = [
        ("gallery", f"googlenet {gallery.LAYER} {units} ch, 128px, {steps} steps",
         "gallery:probe_layer", "gallery_channels_last",
         {"device": device, "units": units, "size": 128, "steps": steps}),
        ("style", f"vgg19 {style_size}px, {evaluations} L-BFGS evaluations",
         "style:probe_style", "style_channels_last",
         {"device": device, "size": style_size, "steps": evaluations}),
        ("dream", f"googlenet {dream.LAYER} {dream_size}px, {octaves} octaves x {dream_steps} steps",
         "dream:probe_dream", "dream_channels_last",
         {"device": device, "size": dream_size, "octaves": octaves, "steps": dream_steps}),
    ]  # fmt: skip
    rows = []
    for name, case, default, channels_last, config in cases:
        ours, peer = measure_pair(f"benchmarks.suites.options:{channels_last}", f"benchmarks.suites.{default}",
                                  config, repeat=1 if quick else 2)
        rows.append(Row("options", f"{name}: {case}, channels-last", PEER, ours, peer))
    return rows, []
