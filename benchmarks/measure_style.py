"""Measure ``probe style`` the way issue 5's "Done means" asks, offline on the CPU.

Runs, as a user would (a fresh process, start-up included)::

    probe style skimage:astronaut skimage:coffee --model shapes --size 128

and reports:

- the wall-clock time of that command (must be under a minute on 2 cores),
  with the machine's load average, since other work on the cores slows it;
- the result's style loss as a percentage of the content image's own style
  loss (must be at most 10%);
- the result's content loss, bounded against a reference: the content loss of
  the random initial image (seeded uniform noise, what ``--init random`` starts
  from), i.e. how far an unrelated image is from the content.

On a shared machine run it with ``OMP_NUM_THREADS=1``: torch's OpenMP threads
spin-wait when another process holds a core, and the same command took 175 s
with 2 threads against 21 s with 1 at a load average of 3.7 on 2 cores (17 s
with 2 threads on the idle machine).

Usage (from the repository root)::

    python -m benchmarks.measure_style                 # prints a Markdown table, exit 1 if a bound fails
    OMP_NUM_THREADS=1 python -m benchmarks.measure_style   # the same on a busy machine
    python -m benchmarks.measure_style --keep runs/m   # keep the gallery to look at it
    python -m benchmarks.measure_style -- --steps 200  # pass more options to probe style
    python -m benchmarks.measure_style --per-evaluation   # the cost of one L-BFGS evaluation (below)

``--per-evaluation`` measures one L-BFGS evaluation of style transfer instead:

- the aten ops (torch.profiler) the optimizer itself runs per evaluation once
  its history is full (``history_size`` pairs), and those of a whole
  evaluation (vgg19, forward and backward, early in a run): views and
  allocations left out, so on a GPU each is about one kernel launch;
- seconds per evaluation of ``probe.style_transfer`` against the PyTorch
  tutorial's algorithm (``benchmarks/reference``) on vgg19 at ``--size`` px,
  fresh processes alternating (``benchmarks.suites.style``'s contenders), with
  enough evaluations that the history fills.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["style", "skimage:astronaut", "skimage:coffee", "--model", "shapes", "--size", "128"]
TIME_LIMIT_S = 60.0
STYLE_LIMIT_PERCENT = 10.0


def probe_executable() -> list[str]:
    """The ``probe`` next to this Python, else ``python -m probe.cli.main``-style invocation."""
    candidate = Path(sys.executable).with_name("probe")
    if candidate.exists():
        return [str(candidate)]
    return [sys.executable, "-c", "from probe.cli.main import cli; cli()"]


def random_init_content_loss(size: int) -> float:
    """Content loss of the seeded noise image ``--init random`` starts from, with the same layers."""
    import probe

    model = probe.load_model("shapes", device="cpu")
    first = probe.style_transfer(model, "skimage:astronaut", "skimage:coffee", size=size, init="random", steps=1,
                                 snapshots=0, device="cpu")
    return first.history["content"][0]  # measured on the initial image, before any update


VIEWS = frozenset(f"aten::{name}" for name in (
    "slice", "select", "unsqueeze", "squeeze", "view", "reshape", "expand", "expand_as", "t", "transpose", "numpy_T",
    "permute", "diagonal", "as_strided", "alias", "detach", "_unsafe_view", "flatten", "view_as", "lift_fresh",
    "resolve_conj", "resolve_neg", "empty", "empty_like", "zeros", "to"))
"""Ops that launch no kernel (views, allocations, a ``to`` that changes nothing): not counted. A ``to``
that converts runs ``_to_copy`` below it, and that is counted."""


def aten_ops(events: list, inside: str) -> tuple[int, int]:
    """``(ops inside, ops outside)`` a ``record_function(inside)`` block among profiler ``events``: the ops a GPU
    would launch (about one kernel each): the outermost aten ops that compute, or, under one that does not
    (a view, a ``to``), the first ones below it that do."""
    counts = [0, 0]
    for event in events:
        if not event.name.startswith("aten::") or event.name in VIEWS:
            continue
        parent, names = event.cpu_parent, []
        while parent is not None:
            names.append(parent.name)
            parent = parent.cpu_parent
        if not any(name.startswith("aten::") and name not in VIEWS for name in names):
            counts[0 if inside in names else 1] += 1
    return counts[0], counts[1]


def optimizer_ops(size: int, history: int = 100, window: int = 20) -> float:
    """aten ops :func:`probe.style.lbfgs.minimize` runs per evaluation outside its closure, history full.

    The closure is a cheap smooth loss of a ``(1, 3, size, size)`` image (the optimizer's work does not
    depend on the loss); counted over ``window`` evaluations after ``history + 2``.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from probe.style.lbfgs import minimize

    def optimizer_ops_of(evaluations: int) -> int:
        pixels = torch.full((1, 3, size, size), 0.3, requires_grad=True)
        target = torch.rand(pixels.shape, generator=torch.Generator().manual_seed(0))

        def closure() -> torch.Tensor:
            with record_function("closure"):
                loss = ((pixels - target).pow(2) * (1 + pixels.pow(2))).sum()
                (pixels.grad,) = torch.autograd.grad(loss, pixels)
                return loss.detach()

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            minimize(pixels, closure, evaluations, history_size=history, check_every=10**9)
        return aten_ops(prof.events(), "closure")[1]

    start = history + 2
    return (optimizer_ops_of(start + window) - optimizer_ops_of(start)) / window


def evaluation_ops(size: int) -> float:
    """aten ops of one whole evaluation of ``probe.style_transfer`` (vgg19 at ``size`` px, the tutorial's
    layers: forward, backward, losses, bookkeeping, the optimizer with one pair): a run of 3 less one of 2."""
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.suites.style import probe_style

    counted = {}
    for steps in (2, 3):
        run = probe_style("cpu", size, steps)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        counted[steps] = sum(aten_ops(prof.events(), "closure"))
    return float(counted[3] - counted[2])


def per_evaluation(size: int, steps: int, repeat: int) -> int:
    """Print the ops and seconds per L-BFGS evaluation (``--per-evaluation``)."""
    import torch

    from benchmarks.harness import measure_pair
    from benchmarks.suites.style import per_evaluation as divided

    ops, whole = optimizer_ops(size), evaluation_ops(size)
    config = {"device": "cpu", "size": size, "steps": steps}
    ours, peer = measure_pair("benchmarks.suites.style:probe_style", "benchmarks.suites.style:tutorial_style", config,
                              repeat=repeat)
    ours, peer = divided(ours), divided(peer)
    rows = [
        ("machine", f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
                    f"load average {os.getloadavg()[0]:.1f}"),
        ("aten ops per evaluation, L-BFGS itself (history full, 100 pairs)", f"{ops:.0f}"),
        (f"aten ops per evaluation, the whole style_transfer evaluation (vgg19 {size} px, 1 pair)", f"{whole:.0f}"),
        (f"ms per evaluation, probe.style_transfer (vgg19 {size} px, {steps} evaluations)",
         f"{1e3 * ours.seconds:.1f} (runs {', '.join(f'{1e3 * t:.1f}' for t in ours.runs)})"),
        (f"ms per evaluation, PyTorch tutorial ({peer.extra['evaluations']} evaluations)",
         f"{1e3 * peer.seconds:.1f} (runs {', '.join(f'{1e3 * t:.1f}' for t in peer.runs)})"),
        ("speed-up", f"{peer.seconds / ours.seconds:.2f}x"),
    ]
    print("| measure | value |\n|---|---|")
    for key, value in rows:
        print(f"| {key} | {value} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the gallery in this folder")
    parser.add_argument("--per-evaluation", action="store_true", help="ops and ms per L-BFGS evaluation instead")
    parser.add_argument("--size", type=int, default=128, help="--per-evaluation: the image side (default 128)")
    parser.add_argument("--steps", type=int, default=120, help="--per-evaluation: evaluations a run (default 120)")
    parser.add_argument("--repeat", type=int, default=2, help="--per-evaluation: timed runs a process (default 2)")
    parser.add_argument("extra", nargs="*", help="more options for probe style (after --)")
    args = parser.parse_args()
    if args.per_evaluation:
        return per_evaluation(args.size, args.steps, args.repeat)

    folder = Path(tempfile.mkdtemp(prefix="measure-style-"))
    out = folder / "gallery"
    command = [*probe_executable(), *COMMAND, *args.extra, "--out", str(out), "--device", "cpu"]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        print(finished.stdout, finished.stderr, sep="\n")
        return finished.returncode
    manifest = json.loads((out / "manifest.json").read_text())
    reference = random_init_content_loss(128)

    import torch

    style_percent = 100 * manifest["losses"]["style"] / manifest["content_image_style_loss"]
    content = manifest["losses"]["content"]
    rows = [
        ("command", "probe " + " ".join(COMMAND + args.extra)),
        ("machine", f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
                    f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after"),
        ("wall-clock time (whole command)", f"{seconds:.1f} s (limit {TIME_LIMIT_S:.0f} s)"),
        ("of which optimization", f"{manifest['seconds']:.1f} s, {manifest['options']['steps']} steps "
                                  f"({manifest['options']['optimizer']})"),
        ("style loss, result", f"{manifest['losses']['style']:.4g}"),
        ("style loss, content image", f"{manifest['content_image_style_loss']:.4g}"),
        ("style loss, result / content image", f"{style_percent:.2f}% (limit {STYLE_LIMIT_PERCENT:.0f}%)"),
        ("content loss, result", f"{content:.4g}"),
        ("content loss, random initial image", f"{reference:.4g}"),
        ("content loss, result / random image", f"{100 * content / reference:.1f}%"),
        ("layers", f"content {', '.join(manifest['options']['content_layers'])}; "
                   f"style {', '.join(manifest['options']['style_layers'])}"),
    ]
    print("| measure | value |\n|---|---|")
    for key, value in rows:
        print(f"| {key} | {value} |")
    if args.keep is not None:
        if args.keep.exists():
            shutil.rmtree(args.keep)
        shutil.copytree(out, args.keep)
        print(f"\ngallery: {args.keep / 'index.html'}")
    shutil.rmtree(folder, ignore_errors=True)
    ok = seconds < TIME_LIMIT_S and style_percent <= STYLE_LIMIT_PERCENT and content < reference
    if not ok:
        print("\nFAILED: a bound of issue 5 does not hold", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
