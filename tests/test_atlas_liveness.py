"""A rank that hangs or is killed without a word ends every rank within about ``--timeout``, each naming it.

Two gloo processes with torchrun's environment but no torchrun agent (nothing else would end them): rank 1
hangs in its first render, or SIGKILLs itself there. Before the heartbeats (:mod:`probe.atlas.liveness`),
rank 0 waited in its next collective for the process group's timeout, 30 minutes, and rank 1 hung for ever.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.atlas.liveness import Liveness, RankGone

from atlas_hang_worker import TIMEOUT_S

TESTS = Path(__file__).parent
RESUME = "every finished chunk is kept: rerun the same command to resume"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(out: Path, scenario: str) -> tuple[list[int], list[str], float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    workers = [subprocess.Popen([sys.executable, str(TESTS / "atlas_hang_worker.py"), str(out), scenario],
                                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    try:
        logs = [worker.communicate(timeout=90)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return [w.returncode for w in workers], logs, 0.0


def _errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize("scenario", ["hang", "kill"])
def test_a_hung_or_killed_rank_ends_both_within_the_timeout_naming_it(tmp_path, scenario):
    started = time.monotonic()
    codes, logs, _ = _run(tmp_path / "atlas", scenario)
    seconds = time.monotonic() - started
    both = "\n---\n".join(logs)
    assert codes[0] == 1, both
    (line,) = _errors(logs[0])
    if scenario == "hang":
        assert codes[1] == 1, both
        (own,) = _errors(logs[1])
        assert f"rank 1 made no progress for {TIMEOUT_S} s (its main thread is stuck at atlas_hang_worker.py" in own
        assert "in _hang, called from runner.py:" in own and RESUME in own
        assert "rank 1 made no progress" in line, line
    else:
        assert codes[1] == -signal.SIGKILL, both
        assert f"rank 1 gave no sign of life for {TIMEOUT_S} s (killed without a word" in line, line
    assert line.startswith("Error: rank 0: rank 0 stopped waiting for the others while ") and RESUME in line, line
    assert seconds < 60, f"{seconds:.0f} s"  # imports and a digits atlas take most; the wait itself is ~2 x 2 s
    chunks = list((tmp_path / "atlas" / "records").glob("conv1-*.json"))
    assert len(chunks) == 1  # rank 0's chunk is kept for a rerun


class _Store:
    """The few store calls :class:`Liveness` makes, in memory."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def add(self, key: str, amount: int) -> int:
        value = int(self.data.get(key, b"0")) + amount
        self.data[key] = str(value).encode()
        return value

    def set(self, key: str, value: str | bytes) -> None:
        self.data[key] = value.encode() if isinstance(value, str) else value

    def get(self, key: str) -> bytes:
        return self.data[key]

    def check(self, keys: list[str]) -> bool:
        return all(key in self.data for key in keys)


def test_a_beat_that_stops_is_found_after_the_timeout_and_a_moving_one_is_not():
    store = _Store()
    watcher = Liveness(store, 0, 3, 0.2, "failed")
    store.add("alive/1", 1), store.add("alive/2", 1)
    assert watcher.gone([1, 2]) == []
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        store.add("alive/2", 1)  # rank 2 keeps beating, rank 1 does not
        time.sleep(0.02)
    assert [rank for rank, _ in watcher.gone([1, 2])] == [1]
    with pytest.raises(RankGone, match=r"^rank 0 stopped waiting for the others while meeting: rank 1 gave no sign"):
        watcher.wait(["k0", "k1"], "meeting")


def test_a_stuck_main_thread_is_reported_in_the_store_and_ends_the_process():
    store, ended = _Store(), []
    stuck = Liveness(store, 1, 2, 0.2, "failed", exit=ended.append).start()
    time.sleep(0.6)  # the main thread marks no progress
    stuck.stop()
    assert ended == [1] and store.get("failed") == b"1"
    assert store.get("gone/1").decode().startswith("rank 1 made no progress for 0.2 s (its main thread is stuck at ")
    alive = Liveness(store, 0, 2, 0.2, "x", exit=ended.append).start()
    for _ in range(30):
        alive.tick()
        time.sleep(0.02)
    alive.stop()
    assert ended == [1] and "gone/0" not in store.data
