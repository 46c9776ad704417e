"""probe atlas in two gloo processes with an error injected on one rank at each stage: both ranks end within
seconds, each with one line (its rank, the cause, what to do) and the right exit code, and a rerun keeps
every finished chunk.

The processes get torchrun's environment but no torchrun agent, so nothing kills a rank whose peer failed:
before failures agreed across ranks, the other rank waited in its next collective until the timeout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from probe.cli.main import cli

from atlas_fail_worker import ARGS, SCENARIOS, TIMEOUT_S

TESTS = Path(__file__).parent

FULL = "No space left on device: 'images/injected.png'"
RESUME = "every finished chunk is kept: rerun the same command to resume"
EXPECTED = {  # name: ((exit, words) of the failing rank, (exit, words) of the other)
    "folder": ((1, "rank 0: cannot write 'images/injected.png': No space left"), (1, f"rank 1: rank 0 failed: {FULL}")),
    "dataset": ((1, "rank 1: the computer ran out of memory"), (1, "rank 0: rank 1 failed: out of memory")),
    "fields": ((1, "rank 1: RuntimeError: injected raw torch error"),
               (1, "rank 0: rank 1 failed: RuntimeError: injected raw torch error")),
    "bad-layer": ((2, "'--layers': rank 1: layer 'conv2' gets a zero gradient"), (2, "(found by rank 1)")),
    "refused-input": ((2, "'--input-size': rank 1: the model cannot run"),
                      (2, "'--input-size': rank 0: the model cannot run on a 3x28x28 float32 image (injected) (found by rank 1)")),
    "crops": ((1, "rank 1: cannot write 'images/injected.png'"), (1, f"rank 0: rank 1 failed: {FULL}")),
    "render": ((130, "rank 1: interrupted"), (1, "rank 0: rank 1 was interrupted")),
    "writer": ((1, "rank 1: cannot write 'images/injected.png'"), (1, f"rank 0: rank 1 failed: {FULL}")),
    "site": ((1, "rank 0: cannot write 'images/injected.png'"), (1, f"rank 1: rank 0 failed: {FULL}")),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def failed_runs(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("failures")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    workers = [subprocess.Popen([sys.executable, str(TESTS / "atlas_fail_worker.py"), str(out)],
                                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    logs = [worker.communicate(timeout=60 + TIMEOUT_S * len(SCENARIOS))[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(log[-2000:] for log in logs)
    return out, [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_the_scenarios_cover_every_stage_and_rank():
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_failure_on_one_rank_ends_both_at_once_with_one_line_each(failed_runs, name):
    _, results = failed_runs
    failing = SCENARIOS[name][0]
    for rank, (code, words) in ((failing, EXPECTED[name][0]), (1 - failing, EXPECTED[name][1])):
        result = results[rank][name]
        errors = [line for line in result["output"].splitlines() if line.startswith("Error:")]
        assert result["exit"] == code and len(errors) == 1 and words in errors[0], (rank, result)
        assert "Traceback" not in result["output"] and result["seconds"] < TIMEOUT_S / 2, (rank, result)
        if code == 1 and rank != failing:
            assert RESUME in errors[0]


def test_the_record_of_a_stage_is_written_only_when_every_rank_finished_it(failed_runs):
    out, _ = failed_runs
    assert not (out / "crops" / "records" / "examples.json").exists()  # rank 1's crops are missing
    assert (out / "render" / "records" / "examples.json").exists()
    assert not any((out / name / "atlas.json").exists() for name in EXPECTED)


@pytest.mark.parametrize("name, kept", [("render", None), ("site", 6)])
def test_a_rerun_keeps_every_chunk_finished_before_the_failure(failed_runs, name, kept):
    out, _ = failed_runs
    records = {p.name: p.stat().st_mtime_ns for p in (out / name / "records").glob("conv*.json")}
    assert kept is None or len(records) == kept
    rerun = CliRunner().invoke(cli, [*ARGS, "--out", str(out / name)])
    assert rerun.exit_code == 0, rerun.output
    assert f"{len(records)} kept" in rerun.output
    assert {p.name: p.stat().st_mtime_ns for p in (out / name / "records").glob("conv*.json") if p.name in records} == records
    assert (out / name / "atlas.json").exists()


def test_an_error_of_the_process_group_itself_is_one_line_and_ends_the_collectives():
    """A peer killed without a word, or a timeout, surfaces as torch's DistBackendError (a RuntimeError with a
    gloo or NCCL trace): one ProbeRuntimeError line naming the rank and what to do, and no more collectives."""
    import torch.distributed as dist

    from probe.atlas.distributed import Group
    from probe.errors import ProbeRuntimeError

    group = Group(1, 2)

    def lost() -> None:
        raise dist.DistBackendError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer "
                                    "[127.0.0.1]:18342\nmore of gloo's trace")

    with pytest.raises(ProbeRuntimeError, match=r"^rank 1 lost the other processes while gathering \(DistBackendError: "
                                                r"\[.*Connection closed by peer \[127.0.0.1\]:18342\).*" + RESUME) as error:
        group._collective("gathering", lost)
    assert "\n" not in str(error.value) and group.settled
    group.check()  # settled: no store, no collective
    group.fail(RuntimeError("later"))


@pytest.mark.parametrize("signal_name, code, words", [("SIGINT", 130, "interrupted (Ctrl-C)"),
                                                      ("SIGTERM", 1, "stopped by SIGTERM")])
def test_a_signal_to_the_launcher_of_nproc_is_one_line(monkeypatch, tmp_path, signal_name, code, words):
    """Ctrl-C reaches --nproc's launcher as torch's SignalException, which was worded as an unknown error."""
    import signal

    import torch.distributed.run as launcher
    from torch.distributed.elastic.multiprocessing.api import SignalException

    def stopped(args):
        raise SignalException(f"Process 1 got signal: {signal_name}", getattr(signal, signal_name))

    monkeypatch.setattr(launcher, "run", stopped)
    result = CliRunner().invoke(cli, ["atlas", "--nproc", "2", "--out", str(tmp_path / "atlas")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == code and len(errors) == 1 and words in errors[0], result.output


@pytest.mark.parametrize("env, variable", [
    ({"WORLD_SIZE": "abc", "RANK": "0"}, "WORLD_SIZE='abc'"),  # a bare ValueError
    ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK='5' is not a whole number from 0 to 1"),  # waited for ever
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "99999"}, "MASTER_PORT='99999'"),
])
def test_a_torchrun_environment_out_of_range_is_one_line_before_any_connection(tmp_path, env, variable):
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29512", **env}
    result = CliRunner().invoke(cli, ["atlas", "--layers", "conv1", "--out", str(tmp_path / "a")], env=env)
    assert result.exit_code == 1 and variable in result.output and "torchrun" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "a").exists()
