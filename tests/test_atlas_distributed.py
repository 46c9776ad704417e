"""probe atlas under torchrun: two gloo processes, one killed with SIGKILL mid-run, a rerun; two "nodes" by rendezvous.

Each run's site must equal a one-process run's, image for image, byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from probe.cli.main import cli

ARGS = ["atlas", "--model", "digits", "--layers", "conv1,conv2", "--dataset", "zoo", "--steps", "8",
        "--limit", "100", "--examples", "3", "--chunk", "3"]
CHUNKS = 9 + 17  # conv1: 25 units, conv2: 50 units, 3 per chunk
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reference") / "atlas"
    result = CliRunner().invoke(cli, [*ARGS, "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def _same_site(folder: Path, reference: Path) -> None:
    images = sorted(p.name for p in (reference / "images").glob("*.png"))
    assert images and sorted(p.name for p in (folder / "images").glob("*.png")) == images
    for name in images:
        assert (folder / "images" / name).read_bytes() == (reference / "images" / name).read_bytes(), name
    mine, theirs = (json.loads((f / "atlas.json").read_text()) for f in (folder, reference))
    assert mine == theirs


def _chunk_records(folder: Path) -> list[Path]:
    return [p for p in (folder / "records").glob("conv*.json")] if (folder / "records").is_dir() else []


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def test_kill_one_rank_then_rerun_completes_bitwise_equal(tmp_path, reference):
    out = tmp_path / "atlas"
    launcher = subprocess.Popen([*TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "probe", *ARGS,
                                 "--out", str(out)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not _chunk_records(out) and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = _children(launcher.pid)
    assert launcher.poll() is None and len(workers) == 2, launcher.communicate()[0].decode()[-2000:]
    os.kill(workers[-1], signal.SIGKILL)
    output = launcher.communicate(timeout=120)[0].decode()
    assert launcher.returncode != 0, output[-2000:]
    kept = {p.name: p.stat().st_mtime_ns for p in _chunk_records(out)}
    assert 1 <= len(kept) <= CHUNKS and not (out / "atlas.json").exists()  # killed before the site was written
    rerun = subprocess.run([sys.executable, "-m", "probe", *ARGS, "--nproc", "2", "--out", str(out)], env=ENV,
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert f"{len(kept)} kept" in rerun.stdout
    assert {p.name: p.stat().st_mtime_ns for p in _chunk_records(out) if p.name in kept} == kept  # not redone
    assert len(_chunk_records(out)) == CHUNKS and not list(out.rglob(".tmp-*"))
    _same_site(out, reference)


def test_two_nodes_through_the_c10d_rendezvous(tmp_path, reference):
    out = tmp_path / "atlas"
    port = _free_port()
    nodes = [subprocess.Popen([*TORCHRUN, "--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
                               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=atlas-test",
                               "-m", "probe", *ARGS, "--out", str(out)],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for rank in (0, 1)]
    outputs = [node.communicate(timeout=240)[0].decode() for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    assert any("on 2 process(es)" in o for o in outputs)
    _same_site(out, reference)


def _digit_folder(folder: Path, invert: bool) -> Path:
    """Six digits as PNG files ``0.png`` ... ``5.png`` (inverted: other images under the same names)."""
    from PIL import Image

    from probe import zoo

    folder.mkdir(parents=True, exist_ok=True)
    images = zoo.make_dataset("digits", "test").tensors[0][:6]
    for index, image in enumerate(images):
        pixels = ((1 - image if invert else image)[0] * 255).round().byte().numpy()
        Image.fromarray(pixels).save(folder / f"{index}.png")
    return folder


def test_a_rerun_over_another_folder_of_the_same_size_is_refused_on_every_rank(tmp_path):
    # the run file checked the dataset's path and size, not its content: a rerun after the folder's images were
    # replaced by as many others would have resumed, mixing the old synthetic chunks with the new examples
    # (the same folder untouched resumes: tests/test_atlas_resume.py)
    data = _digit_folder(tmp_path / "data", invert=False)
    args = ["atlas", "--model", "digits", "--layers", "conv1", "--max-units", "2", "--steps", "1", "--examples", "1",
            "--chunk", "1", "--dataset", str(data), "--out", str(tmp_path / "atlas"), "--nproc", "2"]
    first = subprocess.run([sys.executable, "-m", "probe", *args], env=ENV, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    _digit_folder(data, invert=True)  # the same six names, other images
    record = (tmp_path / "atlas" / "records" / "examples.json").read_bytes()
    refused = subprocess.run([sys.executable, "-m", "probe", *args], env=ENV, capture_output=True, text=True,
                             timeout=180)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 2, output[-2000:]
    assert "over another dataset" in output and "--dataset" in output and "Traceback" not in output, output[-2000:]
    assert (tmp_path / "atlas" / "records" / "examples.json").read_bytes() == record  # nothing was redone
