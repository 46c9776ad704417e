"""The prediction's bar chart, shared by the galleries that show one (``probe activations``, ``probe attribute``)."""

from __future__ import annotations

from typing import Any

from probe.outputs import Prediction
from probe.reports.render import bar_chart

__all__ = ["prediction_chart"]


def prediction_chart(prediction: Prediction | None, k: int = 5) -> tuple[str, str, Any] | None:
    """``("prediction.png", caption, PIL image)``: the ``k`` most probable classes in the words of the head
    (probability, sigmoid probability, share of the image); None without a prediction, and for one score, which
    has no probabilities to compare (its caption says it)."""
    if prediction is None or prediction.measure is None:
        return None
    top = prediction.top(k)
    image = bar_chart([t["probability"] for t in top], [t["label"] for t in top], f"prediction ({prediction.measure})")
    return "prediction.png", f"prediction: {prediction}", image
