"""Measure ``probe dream`` the way issue 4's "Done means" asks, offline on the CPU.

1. The default offline dream, run as a user would (a fresh process, start-up
   included)::

       probe dream skimage:astronaut --model shapes

   reports its wall-clock time (must be under a minute), the layer objective
   before and after from the manifest (after must be higher), and how much the
   dream differs from the input (mean absolute pixel change, in [0, 1] units).
   The machine's load is printed too: on a shared machine, times grow with it.

2. Peak memory of a 2048x2048 dream, untiled and in tiles of 512 (and, with
   ``--big``, 4096x4096 in tiles of 512), each in a fresh process: the growth of
   the process's peak resident set (Linux ``VmHWM``, reset after the model and
   the image are loaded) during ``probe.dream(..., octaves=1, steps=2)``. The
   peak of a dream step is the same at every step, so two steps suffice.

Usage (from the repository root)::

    python -m benchmarks.measure_dream                  # prints Markdown tables, exit 1 if a bound fails
    python -m benchmarks.measure_dream --big            # also 4096x4096 in tiles (slower)
    python -m benchmarks.measure_dream --keep runs/m    # keep the default run's gallery to look at it
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

COMMAND = ["dream", "skimage:astronaut", "--model", "shapes"]
TIME_LIMIT_S = 60.0

CHILD = r"""
import json, sys, time, torch
import probe
from probe.images import load_image

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
side, tile = int(sys.argv[1]), (int(sys.argv[2]) or None)
model = probe.load_model("shapes", device="cpu")
picture = load_image("skimage:astronaut", channels=3, size=(side, side))
probe.dream(model, picture[:, :64, :64], octaves=1, steps=1)  # warm up the kernels
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset VmHWM to the current resident set
before = status("VmRSS")
started = time.perf_counter()
result = probe.dream(model, picture, octaves=1, steps=2, tile_size=tile)
seconds = time.perf_counter() - started
print(json.dumps({"side": side, "tile": tile, "peak_growth": status("VmHWM") - before, "seconds": seconds,
                  "tiles": result.options["tiles_at_full_size"], "rise": [result.objective_before, result.objective_after]}))
"""


def probe_executable() -> list[str]:
    """The ``probe`` next to this Python, else the CLI through ``python -c``."""
    candidate = Path(sys.executable).with_name("probe")
    if candidate.exists():
        return [str(candidate)]
    return [sys.executable, "-c", "from probe.cli.main import cli; cli()"]


def measure_default(keep: Path | None) -> dict:
    """Run the default offline dream; return its time, objective and pixel change."""
    import numpy as np
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="measure-dream-")) / "run"
    started = time.perf_counter()
    subprocess.run([*probe_executable(), *COMMAND, "--out", str(folder)], check=True, capture_output=True)
    seconds = time.perf_counter() - started
    manifest = json.loads((folder / "manifest.json").read_text())
    before = np.asarray(Image.open(folder / "input.png"), dtype=np.float64) / 255
    after = np.asarray(Image.open(folder / "dream.png"), dtype=np.float64) / 255
    row = {
        "seconds": seconds,
        "dream_seconds": manifest["seconds"],
        "size": "x".join(map(str, manifest["image_size"])),
        "layers": ", ".join(manifest["layers"]),
        "before": manifest["objective_before"],
        "after": manifest["objective_after"],
        "change": float(np.abs(after - before).mean()),
    }
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(folder, keep)
    shutil.rmtree(folder.parent)
    return row


def measure_memory(side: int, tile: int | None) -> dict:
    """One dream of a ``side x side`` image in a fresh process; its peak memory growth and time."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(side), str(tile or 0)], check=True, capture_output=True,
                          text=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the default run's gallery in this folder")
    parser.add_argument("--big", action="store_true", help="also dream 4096x4096 in tiles of 512")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU cores\n")
    row = measure_default(args.keep)
    print(f"`probe {' '.join(COMMAND)}`\n")
    print("| wall time (start-up included) | dream itself | size | layer | objective before | objective after "
          "| mean pixel change |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {row['seconds']:.1f} s | {row['dream_seconds']:.1f} s | {row['size']} | {row['layers']} | {row['before']:.3f} | {row['after']:.3f} "
          f"| {row['change']:.3f} |")
    failed = row["seconds"] > TIME_LIMIT_S or not row["after"] > row["before"]

    runs = [(2048, None), (2048, 512)] + ([(4096, 512)] if args.big else [])
    print("\nPeak memory of `probe.dream(shapes, ..., octaves=1, steps=2)` (growth of the peak resident set; two "
          "steps measure memory, they are not a finished dream):\n")
    print("| image | tiles | peak memory growth | time (2 steps) | objective before -> after |")
    print("|---|---|---|---|---|")
    results = {}
    for side, tile in runs:
        measured = measure_memory(side, tile)
        results[side, tile] = measured["peak_growth"]
        tiles = f"{measured['tiles']} of {tile}" if tile else "none"
        rise = " -> ".join(f"{value:.3f}" for value in measured["rise"])
        print(f"| {side}x{side} | {tiles} | {measured['peak_growth'] / 2**20:,.0f} MiB | {measured['seconds']:.1f} s "
              f"| {rise} |")
    ratio = results[2048, None] / results[2048, 512]
    print(f"\nuntiled / tiled peak at 2048x2048: {ratio:.1f}x")
    failed = failed or ratio < 2.0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
