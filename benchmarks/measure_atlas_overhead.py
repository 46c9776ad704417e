"""Time ``probe atlas``'s work around the rendering itself, per unit and per chunk, before and after a change.

::

    python -m benchmarks.measure_atlas_overhead --before main      # main against the working tree, interleaved
    python -m benchmarks.measure_atlas_overhead --repeats 3 --out benchmarks/results/x

The atlas is the issue's: ``probe atlas --model resnet18 --weights none
--layers layer2.0 --steps 1 --chunk 2 --dataset skimage`` (128 units, 64
chunks, 16 photos). At one step the optimization is one forward and backward
pass per chunk, so what is left is the overhead. Each code tree (``--before
REV`` exported with ``git archive``; the working tree) runs the same command
in a fresh process with one thread, interleaved ``--repeats`` times so a
shared machine loads both alike. Figures, from the atlas's own files:

- ``optimize_s``: the chunk records' ``seconds`` summed (``probe.maximize``'s
  step loop: the rendering itself);
- ``render_stage_s``: ``records/examples.json`` to the last chunk record;
- ``overhead_per_unit_ms`` and ``overhead_per_chunk_ms``: (render stage -
  optimize) over the units and over the chunks: the final measurement pass,
  PNG encoding, records;
- ``examples_stage_s``: ``atlas-run.json`` to ``records/examples.json``
  (dataset pass, receptive field, 1,152 crops); ``site_s``: the last record to
  ``atlas.json``; ``wall_s``: the whole command (imports and model included).

The images of the two trees are compared pixel for pixel (PNG bytes may
differ when the encoder's settings do).
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

import numpy as np
from PIL import Image

from benchmarks.measure_atlas import publish

ARGS = ["--model", "resnet18", "--weights", "none", "--layers", "layer2.0", "--steps", "1", "--chunk", "2",
        "--dataset", "skimage"]
ROOT = Path(__file__).resolve().parent.parent


def export(rev: str, into: Path) -> Path:
    """The tree of git revision ``rev`` of this repository, extracted into ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_once(tree: Path, out: Path, args: list[str]) -> dict[str, Any]:
    """``probe atlas`` from the code in ``tree`` into a fresh ``out``; the figures of the module docstring."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "probe", "atlas", *args, "--out", str(out)], check=True, cwd=tree,
                   capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    records = [path for path in (out / "records").glob("*.json") if path.name != "examples.json"]
    chunks = [json.loads(path.read_text()) for path in records]
    units = sum(len(chunk["units"]) for chunk in chunks)
    begun = (out / "atlas-run.json").stat().st_mtime
    examples = (out / "records" / "examples.json").stat().st_mtime
    last = max(path.stat().st_mtime for path in records)
    optimize = sum(chunk["seconds"] for chunk in chunks)
    stage = last - examples
    return {"wall_s": wall, "examples_stage_s": examples - begun, "render_stage_s": stage, "optimize_s": optimize,
            "overhead_per_unit_ms": 1000 * (stage - optimize) / units,
            "overhead_per_chunk_ms": 1000 * (stage - optimize) / len(chunks),
            "site_s": (out / "atlas.json").stat().st_mtime - last, "units": units, "chunks": len(chunks)}


def same_pixels(a: Path, b: Path) -> bool:
    """Whether the atlases in ``a`` and ``b`` hold the same image files with the same pixels."""
    names = sorted(p.name for p in (a / "images").glob("*.png"))
    if names != sorted(p.name for p in (b / "images").glob("*.png")):
        return False
    return all(np.array_equal(np.asarray(Image.open(a / "images" / n)), np.asarray(Image.open(b / "images" / n)))
               for n in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=None, help="a git revision to compare with the working tree (e.g. main)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each tree (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="where measurements.json goes (default: printed only)")
    options = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="atlas-overhead-"))
    trees = {"after": ROOT}
    if options.before is not None:
        trees = {"before": export(options.before, root / "before-tree"), **trees}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    load_before = os.getloadavg()
    for _ in range(options.repeats):
        for name, tree in trees.items():
            runs[name].append(run_once(tree, root / name, ARGS))
    table = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]} | {"runs": rows}
             for name, rows in runs.items()}
    result: dict[str, Any] = {"command": "probe atlas " + " ".join(ARGS), "cpu_count": os.cpu_count(),
                              "load_before": load_before, "table": table}
    if options.before is not None:
        result["same_pixels"] = same_pixels(root / "before", root / "after")
        result["before_rev"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", options.before], check=True,
                                              capture_output=True, text=True).stdout.strip()
    publish(result, options.out)
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
