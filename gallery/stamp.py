"""What every manifest records about its making: when (``created``) and the command line (``cli``); and
where a command's galleries landed (so a Ctrl-C after the last one was saved does not say nothing was)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["recording_invocation", "run_stamp", "note_written"]

_INVOCATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("probe_invocation", default=None)
_WRITTEN: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("probe_written", default=None)


@contextlib.contextmanager
def recording_invocation(command_line: str, written: list[Path] | None = None) -> Iterator[None]:
    """Within the block, every manifest written records ``command_line`` as its ``cli`` field, and every
    gallery saved is appended to ``written`` (when given) where it landed.

    The ``probe`` commands wrap their work in it (``probe maximize --layer conv2``);
    galleries saved from Python record no command line.
    """
    tokens = _INVOCATION.set(command_line), _WRITTEN.set(written)
    try:
        yield
    finally:
        _INVOCATION.reset(tokens[0])
        _WRITTEN.reset(tokens[1])


def note_written(folder: Path) -> None:
    """A gallery landed in ``folder`` (complete): tell the :func:`recording_invocation` block, if any."""
    written = _WRITTEN.get()
    if written is not None:
        written.append(folder)


def run_stamp(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``created`` (ISO 8601 UTC, to the second) and ``cli`` (when a command is running), unless ``fields`` has them."""
    stamp: dict[str, Any] = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    command_line = _INVOCATION.get()
    if command_line:
        stamp["cli"] = command_line
    return {key: value for key, value in stamp.items() if key not in fields}
