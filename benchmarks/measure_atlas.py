"""Measure what issue 16 promises of ``probe atlas`` on the shipped ``digits`` model.

::

    python -m benchmarks.measure_atlas                      # both measurements, printed and in OUT/measurements.json
    python -m benchmarks.measure_atlas --repeats 3 --steps 64    # short runs: the per-process warm-up shows

1. **Units per second, 1 and 2 processes.** The same atlas (conv1 and conv2,
   75 units) made by ``probe atlas`` in one process with one thread and by
   ``probe atlas --nproc 2`` (torchrun's launcher, one thread per process as
   torchrun sets; ``--default-threads`` adds one process with torch's default
   threads), interleaved back to back ``--repeats`` times so that a
   machine shared with others loads both alike. The render stage is timed
   from the files: from ``records/examples.json`` (the dataset pass done) to
   the last chunk record; units/s = 75 / that span. The whole command's wall
   time is reported too (imports, dataset pass and site included). The images
   of the two runs are compared byte for byte.
2. **The figure above 1.** ``probe atlas --layers conv2`` at the defaults
   (256 steps, robust preset, the whole zoo dataset): how many of the 50
   filters' synthetic images beat their best digit, the smallest ratio, and
   the largest example crop (the receptive field, 8x8, not the 28x28 digit).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

BASE = ["--model", "digits", "--layers", "conv1,conv2", "--dataset", "zoo"]


def _atlas(out: Path, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``probe atlas`` into a fresh ``out``; return its wall time and render span."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "probe", "atlas", *args, "--out", str(out)], check=True,
                   capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    first = (out / "records" / "examples.json").stat().st_mtime
    last = max(p.stat().st_mtime for p in (out / "records").glob("conv*.json"))
    return {"wall_s": wall, "render_s": last - first}


def speed(root: Path, steps: int, chunk: int, repeats: int, default_threads: bool) -> dict[str, Any]:
    """Interleaved 1-process and 2-process runs of the same atlas."""
    args = [*BASE, "--steps", str(steps), "--chunk", str(chunk)]
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs: dict[str, list[dict[str, Any]]] = {"1 process, 1 thread": [], "2 processes": []}
    if default_threads:
        runs["1 process, default threads"] = []
    for _ in range(repeats):
        runs["1 process, 1 thread"].append(_atlas(root / "one", args, one_thread))
        runs["2 processes"].append(_atlas(root / "two", [*args, "--nproc", "2"]))
        if default_threads:
            runs["1 process, default threads"].append(_atlas(root / "default", args))
    same = all((root / "two" / "images" / p.name).read_bytes() == p.read_bytes()
               for p in (root / "one" / "images").glob("*.png"))
    table = {}
    for name, rows in runs.items():
        render = statistics.median(r["render_s"] for r in rows)
        table[name] = {"units_per_s": 75 / render, "render_s": render,
                       "wall_s": statistics.median(r["wall_s"] for r in rows), "runs": rows}
    speedup = table["2 processes"]["units_per_s"] / table["1 process, 1 thread"]["units_per_s"]
    return {"steps": steps, "chunk": chunk, "repeats": repeats, "table": table, "speedup": speedup,
            "bitwise_equal": same, "unit_steps_per_s": {k: v["units_per_s"] * steps for k, v in table.items()}}


def figure(root: Path) -> dict[str, Any]:
    """The conv2 atlas at the defaults: synthetic vs best digit, and crop sizes."""
    out = root / "conv2"
    timing = _atlas(out, ["--model", "digits", "--layers", "conv2", "--dataset", "zoo"],
                    {**os.environ, "OMP_NUM_THREADS": "1"})
    atlas = json.loads((out / "atlas.json").read_text())
    units = atlas["layers"][0]["units"]
    ratios = [u["ratio"] for u in units]
    crops = [Image.open(out / e["file"]).size for u in units for e in u["examples"]]
    return {"units": len(units), "above_one": sum(r is not None and r > 1 for r in ratios),
            "beats_best": sum(u["score"] > u["best"] for u in units),
            "min_ratio": min(r for r in ratios if r is not None), "median_ratio": statistics.median(ratios),
            "largest_crop": [max(w for w, _ in crops), max(h for _, h in crops)], **timing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=256, help="steps of the speed runs (default 256, the atlas default: fewer leave each process's warm-up unamortized)")
    parser.add_argument("--chunk", type=int, default=4, help="units per chunk of the speed runs (default 4)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved pairs of runs (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="where measurements.json goes (default: a temp folder)")
    parser.add_argument("--skip-figure", action="store_true", help="only the speed runs")
    parser.add_argument("--default-threads", action="store_true",
                        help="also one process with torch's default threads (on a loaded machine OpenMP's "
                             "threads wait on each other: 20x slower here once)")
    options = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    result = {"cpu_count": os.cpu_count(), "load_before": os.getloadavg(),
              "speed": speed(root, options.steps, options.chunk, options.repeats, options.default_threads)}
    if not options.skip_figure:
        result["figure"] = figure(root)
    publish(result, options.out)
    shutil.rmtree(root, ignore_errors=True)
    return 0


def publish(result: dict[str, Any], out: Path | None) -> None:
    """Add the load average now to ``result``, print it as JSON, and write ``out/measurements.json`` when given."""
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "measurements.json").write_text(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
