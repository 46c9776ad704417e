"""A torchrun worker for tests/test_atlas_fields.py: every rank measures its share of the tokens net's fields.

Usage: ``torchrun --nproc_per_node=2 tests/atlas_fields_worker.py OUT.json``; rank 0 writes
``{"boxes": {layer: [(field, crop box) per position]}, "calls": [measure_fields calls of each rank]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import probe.atlas.receptive as receptive
import probe.atlas.runner as runner
from probe.atlas.distributed import join

from test_atlas_fields import _atlas_fields, _loaded


def main(out: Path) -> None:
    calls = [0]
    measure = receptive.measure_fields

    def counted(*args, **kwargs):
        calls[0] += 1
        return measure(*args, **kwargs)

    receptive.measure_fields = runner.measure_fields = counted
    with join("cpu") as (group, _):
        loaded = _loaded("tokens")
        boxes = {layer: _atlas_fields(loaded, layer, group) for layer in ("embed", "mix", "block")}
        every = group.gather(calls[0])
        if group.rank == 0:
            out.write_text(json.dumps({"boxes": boxes, "calls": every}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
