"""The GPU goals of issue 15 as rows: ``python -m benchmarks --suite gpu`` (planned: about 5 minutes on one H100/H200).

Every row runs cnn-probe as a user on a GPU would (``precision="auto"``: bf16
with channels-last on CUDA; ``batch="auto"``), against the peer the issue names:

1. layer gallery, googlenet ``inception4a`` at 128 px, 256 steps, 256 and 512
   units, per unit-step, against Lucent (one ``render_vis`` per unit; its rate
   does not depend on the unit count, so it renders one unit);
2. ``probe maximize --layer conv2`` (digits, 50 units, 256 steps), the call the
   command makes, against the same call on the CPU;
3. style, vgg19 at 512 and 1024 px, seconds per L-BFGS evaluation, against the
   PyTorch tutorial's algorithm (``benchmarks/reference/style_tutorial.py``);
4. dream, googlenet ``inception4c`` at 1024 px, 4 octaves x 10 steps, against
   the single-pass reference (``benchmarks/reference/dream_naive.py``);
5. ``probe.record`` on vgg16, batch 16 at 224 px, full maps and ``reduce="mean"``,
   against the plain forward pass (the record suite's interleaved measurement).

Each row's note gives the achieved TFLOP/s of cnn-probe's side (the FLOPs of
its work counted by ``torch.utils.flop_counter.FlopCounterMode``: matrix
products and convolutions, forward and backward) and, on a card in
:data:`PEAKS`, the fraction of that card's bf16 peak. ``--quick`` runs every row
at toy sizes, in this process, on any device: a smoke test (tests/test_benchmarks_gpu.py).
"""

from __future__ import annotations

import functools
import importlib.util
import statistics
import sys
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Measurement, Row, measure, not_installed, table
from benchmarks.suites.style import CONTENT_LAYERS, STYLE_LAYERS, per_evaluation

PEAKS: dict[str, tuple[float, str]] = {
    "H200": (790e12, "bf16, measured on an H200 (issue 15)"),
    "H100": (989e12, "bf16 dense, H100 SXM data sheet"),
}
"""Peak FLOP/s by a substring of the card's name, and where the number comes from."""

GALLERY_LAYER, DREAM_LAYER = "inception4a", "inception4c"


@functools.lru_cache(maxsize=None)
def _torchvision(name: str, device: str):
    """A torchvision model with seeded random weights (speed does not depend on them), built once per process."""
    import torch
    import torchvision

    torch.manual_seed(0)
    if name == "googlenet":
        model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    else:
        model = getattr(torchvision.models, name)(weights=None)
    return model.eval().to(device)


def flops(work: Callable[[], Any]) -> int:
    """FLOPs of one call of ``work`` (matrix products and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        work()
    return int(counter.get_total_flops())


def _counted(work: Callable[[], Any], count: int) -> Callable[[], dict[str, Any]]:
    """``work`` that also reports ``count`` FLOPs per call (counted once, in the untimed set-up)."""

    def counted() -> dict[str, Any]:
        return {**(work() or {}), "flops": count}

    return counted


# ------------------------------------------------------------------ contenders
def gallery_probe(device: str, units: int, size: int, steps: int, precision: str = "auto") -> Callable[[], Any]:
    """``probe.maximize`` of ``units`` channels of inception4a, batch and precision auto."""
    import probe
    from probe import objectives as O

    loaded = probe.load_model(_torchvision("googlenet", device), device=device)

    def render(count: int, n_steps: int) -> Any:
        return probe.maximize(loaded, O.channel(GALLERY_LAYER, range(count), reduce="mean"), steps=n_steps,
                              image_size=size, seed=0, batch="auto", precision=precision)

    per_unit_step = flops(lambda: render(1, 2)) - flops(lambda: render(1, 1))  # one step: no final scoring
    return _counted(lambda: {"optimization_s": render(units, steps).seconds}, per_unit_step * units * steps)


def gallery_lucent(device: str, units: int, size: int, steps: int) -> Callable[[], Any]:
    """Lucent's ``render_vis`` once per unit (the gallery suite's contender)."""
    from benchmarks.suites.gallery import lucent_layer

    return lucent_layer(device, units, size, steps)


def conv2_probe(device: str, steps: int, precision: str = "auto") -> Callable[[], Any]:
    """What ``probe maximize --layer conv2`` runs: the 50 conv2 filters of digits, batch and precision auto."""
    import probe
    from probe import objectives as O

    loaded = probe.load_model("digits", device=device)

    def render(n_steps: int) -> Any:
        return probe.maximize(loaded, O.channel("conv2", range(50)), steps=n_steps, seed=0, batch="auto",
                              precision=precision)

    per_step = flops(lambda: render(2)) - flops(lambda: render(1))
    return _counted(lambda: {"optimization_s": render(steps).seconds}, per_step * steps)


def style_probe(device: str, size: int, steps: int, precision: str = "auto") -> Callable[[], Any]:
    """``probe.style_transfer`` with the tutorial's layers and L-BFGS."""
    import probe

    loaded = probe.load_model(_torchvision("vgg19", device), device=device)
    content = probe.load_image("skimage:astronaut", channels=3, size=(size, size)).to(device)
    style = probe.load_image("skimage:coffee", channels=3, size=(size, size)).to(device)

    def run(n_steps: int) -> int:
        result = probe.style_transfer(loaded, content, style, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
                                      optimizer="lbfgs", steps=n_steps, size=size, tv_weight=0.0, snapshots=0, seed=0,
                                      precision=precision)  # fmt: skip
        return len(result.history["total"])

    counted: dict[int, tuple[int, int]] = {}  # steps: (FLOPs, evaluations) of a run
    short, long = (1, 2) if steps < 4 else (2, 4)
    for n_steps in (short, long):
        evaluations = [0]
        total = flops(lambda n=n_steps, e=evaluations: e.__setitem__(0, run(n)))
        counted[n_steps] = (total, evaluations[0])
    per_evaluation_flops = (counted[long][0] - counted[short][0]) // max(1, counted[long][1] - counted[short][1])

    def work() -> dict[str, Any]:
        count = run(steps)
        return {"evaluations": count, "flops": per_evaluation_flops * count}

    return work


def style_tutorial(device: str, size: int, steps: int) -> Callable[[], Any]:
    """The PyTorch tutorial's style transfer on the same VGG19 and photos."""
    import probe
    from benchmarks.reference import style_tutorial as tutorial

    vgg = _torchvision("vgg19", device)
    content = probe.load_image("skimage:astronaut", channels=3, size=(size, size)).to(device)
    style = probe.load_image("skimage:coffee", channels=3, size=(size, size)).to(device)
    return lambda: {"evaluations": tutorial.run(vgg.features, content[None], style[None], steps)[1]}


def dream_probe(device: str, size: int, octaves: int, steps: int, precision: str = "auto") -> Callable[[], Any]:
    """``probe.dream`` on inception4c."""
    import probe

    loaded = probe.load_model(_torchvision("googlenet", device), device=device)
    image = probe.load_image("skimage:astronaut", channels=3, size=(size, size)).to(device)

    def work() -> None:
        probe.dream(loaded, image, DREAM_LAYER, octaves=octaves, octave_scale=1.4, steps=steps, lr=0.01, jitter=32,
                    seed=0, precision=precision)  # fmt: skip

    return _counted(work, flops(work))


def dream_reference(device: str, size: int, octaves: int, steps: int) -> Callable[[], Any]:
    """The single-pass reference dream (the dream suite's contender)."""
    from benchmarks.suites.dream import naive_dream

    return naive_dream(device, size, octaves, steps)


# ------------------------------------------------------------------ the plan
def plan(device: str, quick: bool) -> dict[str, Any]:
    """Sizes and steps of every row: the issue's on a GPU, toy ones with ``quick``."""
    if quick:
        return {"gallery": {"units": (2,), "size": 32, "steps": 2}, "lucent_steps": 2, "conv2_steps": 2,
                "style": {"sizes": (32,), "steps": 3}, "dream": {"size": 48, "octaves": 2, "steps": 1},
                "record": {"batch": 1, "size": 32, "pairs": 1}, "repeat": 1}  # fmt: skip
    return {"gallery": {"units": (256, 512), "size": 128, "steps": 256}, "lucent_steps": 64, "conv2_steps": 256,
            "style": {"sizes": (512, 1024), "steps": 20}, "dream": {"size": 1024, "octaves": 4, "steps": 10},
            "record": {"batch": 16, "size": 224, "pairs": 15}, "repeat": 3}  # fmt: skip


def peak(device: str) -> tuple[float, str] | None:
    """The card's peak FLOP/s from :data:`PEAKS` and its source, or None (CPU, or a card not in the table)."""
    if not device.startswith("cuda"):
        return None
    import torch

    name = torch.cuda.get_device_name(torch.device(device))
    return next((value for key, value in PEAKS.items() if key in name), None)


def throughput(measured: Measurement, device: str) -> str:
    """``"12.3 TFLOP/s (1.6% of 790 bf16, measured ...)"`` from the FLOPs the work reported."""
    count = measured.extra.get("flops")
    if not count or not measured.seconds:
        return "FLOPs not counted"
    rate = count / measured.seconds
    measured.extra["tflops"] = rate / 1e12
    card = peak(device)
    if card is None:
        return f"{rate / 1e12:.3g} TFLOP/s"
    measured.extra["peak_fraction"] = rate / card[0]
    return f"{rate / 1e12:.3g} TFLOP/s, {100 * rate / card[0]:.2g}% of {card[0] / 1e12:.0f} ({card[1]})"


def _per(measured: Measurement, count: float) -> Measurement:
    """The measurement with its times divided by ``count`` (unit-steps)."""
    return Measurement(measured.seconds / count, [t / count for t in measured.runs], measured.peak_mb, measured.extra)


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    """Every row of the module docstring, in order."""
    settings, fresh = plan(device, quick), not quick
    repeat = settings["repeat"]
    here = "benchmarks.suites.gpu"

    def timed(name: str, config: dict[str, Any], times: int = repeat) -> Measurement:
        return measure(f"{here}:{name}", config, times, warmup=not quick, fresh=fresh)

    rows: list[Row] = []

    def keep(row: Row) -> None:
        """Keep ``row`` and print it at once: a run stopped by a time limit still shows the rows it finished."""
        rows.append(row)
        print(table([row]), file=sys.stderr, flush=True)

    gallery = settings["gallery"]
    lucent_config = {"device": device, "units": 1, "size": gallery["size"], "steps": settings["lucent_steps"]}
    if importlib.util.find_spec("lucent") is None:
        lucent = not_installed("torch-lucent: pip install -e '.[bench]'")
    else:
        lucent = _per(timed("gallery_lucent", lucent_config, 1), settings["lucent_steps"])
    for units in gallery["units"]:
        config = {"device": device, "units": units, "size": gallery["size"], "steps": gallery["steps"]}
        ours = timed("gallery_probe", config, 1)
        note = throughput(ours, device)
        rate = units * gallery["steps"] / ours.seconds
        keep(Row("gpu", f"gallery inception4a {units} units, {gallery['size']}px, {gallery['steps']} steps, "
                        "s per unit-step", "Lucent 0.1.8", _per(ours, units * gallery["steps"]), lucent,
                        note=f"{rate:,.4g} unit-steps/s (goal 30,000); {note}"))  # fmt: skip

    steps = settings["conv2_steps"]
    ours = timed("conv2_probe", {"device": device, "steps": steps})
    on_cpu = measure(f"{here}:conv2_probe", {"device": "cpu", "steps": steps}, 1, warmup=not quick, fresh=fresh)
    keep(Row("gpu", f"probe maximize --layer conv2 (digits, 50 units, {steps} steps)", "the same on the CPU",
                    ours, on_cpu, note=f"optimization {ours.extra['optimization_s']:.3f} s (goal < 0.5 s); "
                                       f"{throughput(ours, device)}"))  # fmt: skip

    style = settings["style"]
    for size in style["sizes"]:
        config = {"device": device, "size": size, "steps": style["steps"]}
        ours, peer = timed("style_probe", config), timed("style_tutorial", config)
        note = throughput(ours, device)
        keep(Row("gpu", f"style vgg19 {size}px, s per L-BFGS evaluation", "PyTorch tutorial",
                        per_evaluation(ours), per_evaluation(peer), note=f"goal <= {3.5 if size <= 512 else 8} ms; "
                        f"{note}"))  # fmt: skip

    config = {"device": device, **settings["dream"]}
    ours, peer = timed("dream_probe", config), timed("dream_reference", config)
    keep(Row("gpu", f"dream googlenet inception4c {config['size']}px, {config['octaves']} octaves x "
                    f"{config['steps']} steps", "single-pass reference", ours, peer,
                    note=f"goal >= 2x; {throughput(ours, device)}"))  # fmt: skip

    record = settings["record"]
    for reduce in (None, "mean"):
        measured = measure("benchmarks.suites.record:interleaved", {"device": device, **record, "reduce": reduce},
                           1, False, fresh=fresh)
        plain, recorded = measured.extra["plain"], measured.extra["recorded"]
        ours = Measurement(statistics.median(recorded), recorded, measured.peak_mb)
        peer = Measurement(statistics.median(plain), plain, 0.0)
        keep(Row("gpu", f"record vgg16 b{record['batch']} {record['size']}px, 3 layers, "
                        f"{'full maps' if reduce is None else 'reduce=mean'}", "plain forward", ours, peer,
                        note=f"overhead {100 * (ours.seconds / peer.seconds - 1):+.1f}% (goal <= 2%)"))  # fmt: skip
    return rows, []


__all__ = ["PEAKS", "plan", "run", "flops", "peak", "throughput"]
