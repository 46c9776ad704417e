"""Time the atlas's crop stage alone: one file per example (the layout before) against one per (image, box).

::

    python -m benchmarks.measure_atlas_crops                       # resnet18 layer2.0 and layer4.1, skimage
    python -m benchmarks.measure_atlas_crops --repeats 5 --out benchmarks/results/x

The examples record is built once, in this process, by the atlas's own code
(``--weights none``, scikit-image's 16 photos, 9 examples per unit, every unit
of ``--layers``): the dataset pass, then the receptive fields and boxes. The
crops of that one record are then written by :func:`probe.atlas.runner._write_crops`
into fresh folders, interleaved ``--repeats`` times, in two layouts:

- ``per_example``: each example its own file, ``<layer>-<unit>-e<k>.png``, as
  the atlas wrote them before (each (image, box) encoded once, its bytes
  written to every unit's file);
- ``shared``: one file per (image, box) (:func:`probe.atlas.runner.crop_file`),
  which every unit whose example it is links to: the layout now.

Figures per layout: ``seconds`` (median), ``per_unit_ms``, ``files``, ``bytes``;
``same_pixels``: every example's crop has the same pixels in both layouts.
The dataset pass and the fields are not timed (they are the same in both).
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.measure_atlas import publish


def build_record(model: str, layers: list[str], examples: int) -> tuple[Any, dict[str, Any]]:
    """``(data, record)``: the dataset and the examples record of an atlas of ``layers`` (not timed)."""
    import probe
    from probe.atlas.data import open_dataset
    from probe.atlas.distributed import Group
    from probe.atlas.examples import batches_of, dataset_pass
    from probe.atlas.plan import AtlasSettings
    from probe.atlas.runner import _examples_record, atlas_layers

    loaded = probe.load_model(model, weights=None, device="cpu")
    chosen = atlas_layers(loaded, layers)
    data = open_dataset("skimage", loaded)
    settings = AtlasSettings(model, "random", tuple(n for n, _ in chosen), tuple(c for _, c in chosen), "skimage",
                             len(data), examples=examples, image_size=tuple(loaded.preprocess.input_size))
    merged = dataset_pass(loaded, data.load, settings.layers, batches_of(len(data), 64), k=examples)
    return data, _examples_record(Group(), loaded, data, merged, settings)


def per_example(record: dict[str, Any]) -> dict[str, Any]:
    """The same record with the file names of before: ``images/<layer>-<unit>-e<k>.png``."""
    from probe.atlas.plan import file_stem

    renamed = copy.deepcopy(record)
    for layer, entry in renamed["layers"].items():
        for unit, shown in enumerate(entry["units"]):
            for rank, example in enumerate(shown["examples"]):
                example["file"] = f"images/{file_stem(layer)}-{unit:04d}-e{rank}.png"
    return renamed


def examples_of(record: dict[str, Any]) -> list[str]:
    """Every example's file, in record order."""
    return [e["file"] for entry in record["layers"].values() for unit in entry["units"] for e in unit["examples"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--layers", default="layer2.0,layer4.1", help="comma-separated (default layer2.0,layer4.1)")
    parser.add_argument("--examples", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each layout (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="where measurements.json goes (default: printed only)")
    options = parser.parse_args(argv)
    from probe.atlas.runner import _write_crops

    data, shared = build_record(options.model, options.layers.split(","), options.examples)
    layouts = {"per_example": per_example(shared), "shared": shared}
    units = sum(len(entry["units"]) for entry in shared["layers"].values())
    root = Path(tempfile.mkdtemp(prefix="atlas-crops-"))
    load_before = os.getloadavg()
    seconds: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(options.repeats):
        for name, record in layouts.items():
            shutil.rmtree(root / name, ignore_errors=True)
            started = time.perf_counter()
            _write_crops(data, record, root / name)
            seconds[name].append(time.perf_counter() - started)
    table = {}
    for name, record in layouts.items():
        files = list((root / name / "images").glob("*.png"))
        median = statistics.median(seconds[name])
        table[name] = {"seconds": median, "per_unit_ms": 1000 * median / units, "files": len(files),
                       "bytes": sum(p.stat().st_size for p in files), "runs": seconds[name]}
    same = all(np.array_equal(np.asarray(Image.open(root / "per_example" / a)), np.asarray(Image.open(root / "shared" / b)))
               for a, b in zip(examples_of(layouts["per_example"]), examples_of(shared)))
    fields = {layer: entry["receptive_field"] for layer, entry in shared["layers"].items()}
    publish({"model": options.model, "layers": options.layers, "units": units, "examples": len(examples_of(shared)),
             "fields": fields, "cpu_count": os.cpu_count(), "load_before": load_before, "same_pixels": same,
             "table": table}, options.out)
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
