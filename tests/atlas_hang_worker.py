"""A worker for tests/test_atlas_liveness.py: ``probe atlas --timeout 2`` in which rank 1 hangs or is killed.

Usage, in each of two processes with torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), started without torchrun's agent, so that nothing but cnn-probe ends a rank::

    python tests/atlas_hang_worker.py OUT_DIR hang|kill

On rank 1 the first render never returns (``hang``: its main thread sleeps for ever) or the process kills
itself with SIGKILL (``kill``: no word to anyone). The atlas's output is printed; the exit code is the atlas's.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from click.testing import CliRunner

import probe.atlas.runner as runner
from probe.cli.main import cli

TIMEOUT_S = 3
ARGS = ["atlas", "--model", "digits", "--layers", "conv1", "--dataset", "zoo", "--limit", "8", "--batch", "8",
        "--examples", "1", "--steps", "1", "--max-units", "2", "--chunk", "1", "--device", "cpu",
        "--timeout", str(TIMEOUT_S)]


def _hang(*args: Any, **kwargs: Any) -> None:
    while True:
        time.sleep(3600)


def _kill(*args: Any, **kwargs: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def warm_up() -> None:
    """Import and load, before the timed run, what a first atlas imports on the way (torch._dynamo at the first
    conv2d, scikit-learn for the digits): seconds on a busy machine, without a step to mark as progress."""
    from probe.atlas.data import open_dataset
    from probe.atlas.runner import atlas_layers
    from probe.models import load_model

    loaded = load_model("digits", device="cpu")
    atlas_layers(loaded, ["conv1"])
    loaded.module(open_dataset("zoo", loaded, limit=1).load([0]).to(torch.float32))


def main(out: Path, scenario: str) -> int:
    torch.set_num_threads(1)
    warm_up()
    if os.environ["RANK"] == "1":
        runner.maximize = {"hang": _hang, "kill": _kill}[scenario]
    result = CliRunner().invoke(cli, [*ARGS, "--out", str(out)])
    print(result.output, flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
