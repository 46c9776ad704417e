"""``probe attribute IMAGE``: which pixels drove the prediction (captum), as a gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe.attribution import METHODS, attribute, parse_baseline
from probe.cli.activations import image_slug
from probe.cli.common import (
    echo_done,
    load_model_from_options,
    note,
    option_given,
    progress_bar,
)
from probe.errors import ProbeUsageError
from probe.gallery import check_out_dir, slug
from probe.images import parse_size


DEEPLIFT_NOTE_GAP = 0.05
"""Above this relative completeness gap the command notes that DeepLift was approximate on this model."""


OPTION_METHODS = {
    "steps": ("integrated-gradients",),
    "samples": ("smoothgrad", "gradient-shap"),
    "noise": ("smoothgrad", "gradient-shap"),
    "baseline": ("integrated-gradients", "deeplift", "gradient-shap", "occlusion"),
}
"""Each method-specific option -> the methods that read it (``--window``/``--stride``: occlusion, checked by
:func:`probe.attribute`)."""


def _refuse_unused_options(methods: list[str]) -> None:
    """Refuse an option given on the command line that none of ``methods`` reads, naming it: it was ignored
    (``--method saliency --steps 200`` ran saliency as if no --steps had been given)."""
    for option, readers in OPTION_METHODS.items():
        if option_given(option) and not set(readers) & set(methods):
            listed = readers[0] if len(readers) == 1 else f"{', '.join(readers[:-1])} and {readers[-1]}"
            raise ProbeUsageError(f"--{option} is read only by {listed}, and no such method runs here; add "
                                  f"--method {readers[0]}, or drop --{option}", param=option)


def run(image: str, model: str, weights: str, method: list[str], target: str, layer: str | None, steps: int,
        samples: int, noise: float, size: str | None, window: int | None, stride: int | None, baseline: str,
        output: str, device: str, seed: int, out: Path | None, force: bool) -> None:
    """``probe attribute``'s work, on the options click parsed (see :mod:`probe.cli.commands.attribute`)."""
    methods = list(METHODS) if "all" in method else list(dict.fromkeys(method))
    _refuse_unused_options(methods)
    loaded = load_model_from_options(model, weights, device, seed)
    parsed = parse_size(size) if size else None
    what = "all" if len(methods) == len(METHODS) else "-".join(methods)
    destination = check_out_dir(out, f"runs/attribute-{slug(loaded.name)}-{image_slug(image)}-{slug(what)}", force=force)
    bars: dict[str, Any] = {}

    def progress(name: str, done: int, total: int) -> None:
        bar = bars.get(name) or bars.setdefault(name, progress_bar(total, name))  # opened once the method runs
        bar.update(done - bar.n)

    try:
        result = attribute(loaded, image, methods, target=target, layer=layer, steps=steps, samples=samples,
                           noise=noise, seed=seed, size=parsed, baseline=parse_baseline(baseline, loaded, parsed),
                           window=window, stride=stride, output=output, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    folder = result.save(destination, image=image, seed=seed, **loaded.describe())
    chosen = result.options.get("gradcam_layer")
    if chosen:
        how = "the default: the last layer with positions the score depends on" if chosen["default"] else "--layer"
        if chosen.get("calls"):
            how += f"; {chosen['calls']}"
        note(f"Grad-CAM on {chosen['name']} ({chosen['map']}; {how})")
    if result.prediction.assumed:
        note(f"the output was {result.prediction.assumed}")
    for name, reason in result.skipped.items():
        note(f"skipped {name}: {reason}")
    flat = [name for name, attribution in result.attributions.items() if not bool(attribution.any())]
    if flat:
        note(f"{', '.join(flat)} gave all-zero attributions: the score does not change with the image there (a "
             "zero-initialized head, as torchvision's ViTs have with --weights none, or dead ReLUs); the maps are black")
    gap = result.options["completeness"].get("deeplift", 0.0)
    if gap > DEEPLIFT_NOTE_GAP:
        note(f"deeplift's attributions sum to {gap:.0%} off f(image) - f(baseline): captum's DeepLift is exact through "
             "ReLUs and linear layers only (its max-pool rule is approximate; GELU, SiLU, LayerNorm and functional "
             "activations pass plain gradients); integrated-gradients is exact up to --steps")
    echo_done(folder, f"{loaded.name} on {image}: prediction {result.prediction}; "
                      f"explained {result.target_label} with {', '.join(result.heatmaps)}")
