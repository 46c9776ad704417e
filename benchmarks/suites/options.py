"""Memory format: cnn-probe with ``channels_last=True`` (``--channels-last``) vs its default layout.

The same work three times, each side in fresh processes alternating over
rounds, with the other suites' settings: the gallery suite's largest layer
gallery of googlenet's inception4a, style transfer on VGG19 at the style
suite's largest size (whole runs, not seconds per evaluation), and the dream
suite's Deep Dream on googlenet's inception4c. Only the layout of the
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
    gallery_config = gallery.configs(device, quick)[-1]  # the most channels
    style_config = style.configs(device, quick)[-1]  # the largest image
    dream_config = dream.config(device, quick)
    cases = [
        (f"gallery: {gallery.case(gallery_config)}", "gallery:probe_layer", "gallery_channels_last", gallery_config),
        (f"style: vgg19 {style_config['size']}px, {style_config['steps']} L-BFGS evaluations",
         "style:probe_style", "style_channels_last", style_config),
        (f"dream: {dream.case(dream_config)}", "dream:probe_dream", "dream_channels_last", dream_config),
    ]
    rows = []
    for name, default, channels_last, config in cases:
        ours, peer = measure_pair(f"benchmarks.suites.options:{channels_last}", f"benchmarks.suites.{default}",
                                  config, repeat=1 if quick else 2)
        rows.append(Row("options", f"{name}, channels-last", PEER, ours, peer))
    return rows, []
