"""A worker for tests/test_atlas_failures.py: ``probe atlas`` with an error injected on one rank at each stage.

Usage, in each of two processes with torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), started without torchrun's agent, so that nothing kills a rank whose peer failed::

    python tests/atlas_fail_worker.py OUT_DIR

The process group is joined once, with a short timeout (:data:`TIMEOUT_S`: code whose ranks disagree fails
there instead of after 30 minutes), and every scenario of :data:`SCENARIOS` runs ``probe atlas --out
OUT_DIR/<name>`` through click's CliRunner in both processes, the injected failure on one rank. Each rank
writes ``OUT_DIR/rank<R>.json``: ``{name: {"exit": code, "output": text, "seconds": wall time}}``.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from click.testing import CliRunner

import probe.atlas.runner as runner
from probe.atlas.distributed import leave_together
from probe.cli.main import cli

TIMEOUT_S = 40
ARGS = ["atlas", "--model", "digits", "--layers", "conv1,conv2", "--dataset", "zoo", "--limit", "16", "--batch", "8",
        "--examples", "2", "--steps", "1", "--max-units", "3", "--chunk", "1", "--device", "cpu"]


def _disk_full(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", "images/injected.png")


def _raw(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("injected raw torch error")


def _out_of_memory(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] DefaultCPUAllocator: not enough memory: you tried to "
                       "allocate 123456789 bytes.")


def _bad_layer(*args: Any, **kwargs: Any) -> None:
    from probe.errors import ProbeUsageError

    raise ProbeUsageError("layer 'conv2' gets a zero gradient from every pixel (injected)", param="layers")


def _refused_input(*args: Any, **kwargs: Any) -> None:
    from probe.forward import ModelInputError

    raise ModelInputError("the model cannot run on a 3x28x28 float32 image (injected)", (1, 3, 28, 28),
                          RuntimeError("injected"))


def _interrupt(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt


SCENARIOS: dict[str, tuple[int, str, Callable[..., Any]]] = {
    "folder": (0, "_start_folder", _disk_full),  # rank 0 alone starts the folder
    "dataset": (1, "dataset_pass", _out_of_memory),
    "fields": (1, "receptive_field", _raw),  # a raw torch error inside Group.share
    "bad-layer": (1, "receptive_field", _bad_layer),
    "refused-input": (1, "receptive_field", _refused_input),  # a usage error the CLI words as --input-size's
    "crops": (1, "write_bytes", _disk_full),
    "render": (1, "maximize", _interrupt),
    "writer": (1, "write_png", _disk_full),
    "site": (0, "_write_site", _disk_full),  # rank 0 alone writes the site
}
"""``name: (rank that fails, name in probe.atlas.runner replaced there, the replacement)``."""


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=TIMEOUT_S))
    results = {}
    try:
        for name, (failing, target, replacement) in SCENARIOS.items():
            real = getattr(runner, target)
            if rank == failing:
                setattr(runner, target, replacement)
            started = time.perf_counter()
            try:
                result = CliRunner().invoke(cli, [*ARGS, "--out", str(out / name)])
            finally:
                setattr(runner, target, real)
            results[name] = {"exit": result.exit_code, "output": result.output,
                             "seconds": time.perf_counter() - started}
    finally:
        (out / f"rank{rank}.json").write_text(json.dumps(results))
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=timedelta(seconds=TIMEOUT_S))
        leave_together(dist.PrefixStore("worker/", store), int(os.environ["WORLD_SIZE"]), TIMEOUT_S)
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
