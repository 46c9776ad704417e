"""How the cost of ``probe.maximize`` grows with the number of units and with the image size.

googlenet (random weights), inception4a, robust preset. Time per step against
the number of units rendered in one batch (at 128 px), and against the image
side (one unit); the fitted exponent ``k`` of ``seconds ~ x**k`` says how cost
grows (1: linear; below 1: batching amortizes fixed costs).
"""

from __future__ import annotations

import math

from benchmarks.harness import Row, measure


def _exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def run(device: str, quick: bool) -> tuple[list[Row], list[dict]]:
    steps = 4 if quick else 16
    target = "benchmarks.suites.gallery:probe_layer"
    units = (1, 4) if quick else (1, 4, 16, 64)
    sizes = (64, 96) if quick else (64, 128, 224, 320)
    by_units = [measure(target, {"device": device, "units": n, "size": 128, "steps": steps}, 1).seconds / steps for n in units]
    by_size = [measure(target, {"device": device, "units": 1, "size": s, "steps": steps}, 1).seconds / steps for s in sizes]
    curves = [
        {"suite": "scaling", "x": "units", "values": list(units), "seconds_per_step": by_units,
         "exponent": _exponent(list(units), by_units)},
        {"suite": "scaling", "x": "image side (px)", "values": list(sizes), "seconds_per_step": by_size,
         "exponent": _exponent(list(sizes), by_size)},
    ]
    return [], curves
