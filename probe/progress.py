"""Progress a person can read anywhere: one line of text, rewritten in place.

``probe.maximize``, ``probe.dream`` and ``probe.style_transfer`` call ``progress(step, total, metrics)``
(:data:`probe.runtime.ProgressFn`) and are silent without one. :func:`text_progress` is one that needs
nothing but a text stream: a terminal, a log, or a Jupyter notebook without ipywidgets (where
``tqdm.auto`` falls back to a text bar after warning "IProgress not found")::

    probe.style_transfer(model, photo, painting, progress=text_progress("style"))
    # style: step 64/128 (50%), content 0.0312, style 1.21, tv 0.0144
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from probe.errors import ProbeUsageError
from probe.runtime import ProgressFn

__all__ = ["text_progress"]


class _Line:
    """The state of one progress line: when it was last written and how wide it was."""

    def __init__(self, label: str, every: float, stream: TextIO | None) -> None:
        self.label, self.every, self.stream = label, every, stream
        self.shown, self.width = -math.inf, 0

    def __call__(self, step: int, total: int, metrics: Mapping[str, float]) -> None:
        now, done = time.monotonic(), step >= total
        if not done and now - self.shown < self.every:
            return
        self.shown = now
        values = ", ".join(f"{key} {value:.3g}" for key, value in metrics.items())
        text = (f"{self.label}: " if self.label else "") + f"step {step:,}/{total:,} ({100 * step // max(total, 1)}%)"
        text += f", {values}" if values else ""
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write("\r" + text.ljust(self.width) + ("\n" if done else ""))
        stream.flush()
        self.width = 0 if done else len(text)


def text_progress(label: str = "", *, every: float = 1.0, stream: TextIO | None = None) -> ProgressFn:
    """A progress callback that writes ``label: step 40/128 (31%), score 12.3`` on one line.

    Args:
        label: what is running, before the step count (default none).
        every: seconds between writes (default 1.0; 0 writes every call); the first call and the
            last step are always written, the last ending the line.
        stream: where to write (default ``sys.stdout`` at each call, which is a notebook cell's output).

    Returns:
        A :data:`probe.runtime.ProgressFn` for the ``progress`` argument of maximize, dream and
        style_transfer; each run wants its own.
    """
    if not math.isfinite(every) or every < 0:
        raise ProbeUsageError(f"every must be a number of seconds >= 0, not {every!r}", param="every")
    return _Line(label, every, stream)
