"""Measuring one contender in a child process, and the rows that compare two.

A *contender* is a module-level function ``fn(**config) -> Callable[[], Any]``:
it does the set-up (model, images, targets) and returns the work to time. The
child process calls it, runs the work once to warm up, then ``repeat`` times
under the clock, and reports the median seconds and the peak memory the work
(warm-up included) added over the set-up: CUDA ``max_memory_allocated``, or on the CPU the
growth of the process's peak resident set size (``ru_maxrss``).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SUITE_ORDER = ("gallery", "record", "style", "dream", "scaling", "options", "maco", "gpu")


@dataclass
class Measurement:
    """What one contender measured.

    Attributes:
        seconds: Median wall-clock seconds of one run of the timed work.
        runs: Every timed run, in seconds.
        peak_mb: Peak memory the timed work added over its set-up, in MiB.
        extra: Anything the work returned that is worth reporting (e.g. a score).
    """

    seconds: float
    runs: list[float]
    peak_mb: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    """One comparison: cnn-probe against a peer on the same case.

    ``speedup`` is ``peer.seconds / ours.seconds`` (above 1: cnn-probe is
    faster); ``memory_ratio`` is ``ours.peak_mb / peer.peak_mb`` (below 1:
    cnn-probe needs less).
    """

    suite: str
    case: str
    peer_name: str
    ours: Measurement
    peer: Measurement
    note: str = ""

    @property
    def speedup(self) -> float:
        return self.peer.seconds / max(self.ours.seconds, 1e-12)

    @property
    def memory_ratio(self) -> float | None:
        if self.peer.peak_mb <= 0:
            return None
        return self.ours.peak_mb / self.peer.peak_mb

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup, "memory_ratio": self.memory_ratio}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure_here(target: str, config: dict[str, Any], repeat: int, warmup: bool = True) -> Measurement:
    """Set up ``target`` (``"module:function"``) with ``config`` and time its work, in this process.

    ``warmup=False`` skips the untimed first run (for long CPU runs, where one-off costs are negligible).
    """
    module_name, function_name = target.split(":")
    setup: Callable[..., Callable[[], Any]] = getattr(importlib.import_module(module_name), function_name)
    device = str(config.get("device", "cpu"))
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    work = setup(**config)
    _sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _peak_bytes(device)
    extra = (work() or {}) if warmup else {}  # warm-up: caches, lazy initialisation, autotuning
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        extra = work() or extra
        _sync(device)
        runs.append(time.perf_counter() - start)
    peak = max(0, _peak_bytes(device) - base)
    return Measurement(statistics.median(runs), runs, peak / 2**20, dict(extra) if isinstance(extra, dict) else {})


def measure(target: str, config: dict[str, Any], repeat: int = 3, warmup: bool = True, timeout: float = 1800,
            fresh: bool = True) -> Measurement:
    """Run :func:`measure_here` in a fresh Python process (or here, ``fresh=False``: smoke runs) and return it.

    Raises:
        RuntimeError: The child failed; its stderr is in the message.
    """
    if not fresh:
        return measure_here(target, config, repeat, warmup)
    payload = json.dumps({"target": target, "config": config, "repeat": repeat, "warmup": warmup})
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", payload],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    if child.returncode != 0:
        raise RuntimeError(f"{target} failed ({child.returncode}):\n{child.stderr[-3000:]}")
    return Measurement(**json.loads(child.stdout.strip().splitlines()[-1]))


def measure_pair(ours: str, peer: str, config: dict[str, Any], repeat: int = 3, rounds: int = 2,
                 warmup: bool = True) -> tuple[Measurement, Measurement]:
    """Measure two contenders in alternation, ``rounds`` fresh processes each (ours, peer, ours, peer...).

    Alternating spreads slow drifts of the machine (other load, heat) over both
    sides; the runs of all rounds are pooled: median seconds, largest peak memory.
    """
    measured: dict[str, list[Measurement]] = {ours: [], peer: []}
    for _ in range(rounds):
        for target in (ours, peer):
            measured[target].append(measure(target, config, repeat, warmup))

    def pooled(parts: list[Measurement]) -> Measurement:
        runs = [t for part in parts for t in part.runs]
        return Measurement(statistics.median(runs), runs, max(p.peak_mb for p in parts), parts[-1].extra)

    return pooled(measured[ours]), pooled(measured[peer])


def not_installed(package: str) -> Measurement:
    """The peer's side of a row whose peer is not installed: no time (NaN), said in ``extra``."""
    return Measurement(float("nan"), [], 0.0, {"missing": f"peer not installed ({package})"})


def card_slug(device: str) -> str:
    """``"h200"`` for an NVIDIA H200 (the GPU's name, lower case, without the vendor); ``""`` off CUDA."""
    if not device.startswith("cuda"):
        return ""
    import torch

    name = torch.cuda.get_device_name(torch.device(device)).lower().replace("nvidia", "")
    return "-".join("".join(c if c.isalnum() else " " for c in name).split())


def machine(device: str) -> dict[str, Any]:
    """A description of where the numbers were taken."""
    import torch

    info: dict[str, Any] = {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_results(rows: list[Row], device: str, settings: dict[str, Any], curves: list[dict[str, Any]] = (),
                  folder: Path = RESULTS) -> Path:
    """Write ``<date>-<device>[-<card>][-quick].json`` with every row, curve and the machine; return its path.

    On CUDA the card names the file (``2026-12-01-cuda-h200.json``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    suffix = "-quick" if settings.get("quick") else ""
    card = card_slug(device)
    path = folder / f"{stamp}-{device.split(':')[0]}{'-' + card if card else ''}{suffix}.json"
    data = {"date": stamp, "machine": machine(device), "settings": settings,
            "rows": [row.as_dict() for row in rows], "curves": list(curves)}
    if path.exists():  # a run of some suites replaces their rows and keeps the other suites' rows of the day
        earlier = json.loads(path.read_text())
        ran = set(settings.get("suites", []))
        suites = [s for s in earlier.get("settings", {}).get("suites", []) if s not in ran] + list(ran)
        data["settings"] = {**settings, "suites": sorted(suites)}
        keep_rows = [row for row in earlier.get("rows", []) if row["suite"] not in ran]
        keep_curves = [curve for curve in earlier.get("curves", []) if curve["suite"] not in ran]
        order = {name: i for i, name in enumerate(SUITE_ORDER)}
        data["rows"] = sorted(keep_rows + data["rows"], key=lambda row: order.get(row["suite"], len(order)))
        data["curves"] = keep_curves + data["curves"]
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| suite | case | cnn-probe s | peer | peer s | speed-up | cnn-probe MiB | peer MiB | note |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    def seconds(value: float) -> str:
        return f"{value:.3f}" if value >= 0.01 else f"{value:.2e}"

    for row in rows:
        if row.peer.seconds != row.peer.seconds:  # NaN: the peer could not run
            peer, speedup = str(row.peer.extra.get("missing", "-")), "-"
        else:
            peer, speedup = seconds(row.peer.seconds), f"**{row.speedup:.2f}x**"
        lines.append(
            f"| {row.suite} | {row.case} | {seconds(row.ours.seconds)} | {row.peer_name} | {peer} "
            f"| {speedup} | {row.ours.peak_mb:.0f} | {row.peer.peak_mb:.0f} | {row.note} |"
        )
    return "\n".join(lines)


def curve_table(curves: list[dict[str, Any]]) -> str:
    """Scaling curves as Markdown: one line per curve with its points and fitted exponent."""
    lines = ["| grows with | points (x: seconds per step) | exponent k, seconds ~ x^k |", "|---|---|---:|"]
    for curve in curves:
        points = ", ".join(f"{x}: {y:.3f}" for x, y in zip(curve["values"], curve["seconds_per_step"]))
        lines.append(f"| {curve['x']} | {points} | {curve['exponent']:.2f} |")
    return "\n".join(lines)
