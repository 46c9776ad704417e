"""What every manifest records about its making: when (``created``) and the command line (``cli``)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = ["recording_invocation", "run_stamp"]

_INVOCATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("probe_invocation", default=None)


@contextlib.contextmanager
def recording_invocation(command_line: str) -> Iterator[None]:
    """Within the block, every manifest written records ``command_line`` as its ``cli`` field.

    The ``probe`` commands wrap their work in it (``probe maximize --layer conv2``);
    galleries saved from Python record no command line.
    """
    token = _INVOCATION.set(command_line)
    try:
        yield
    finally:
        _INVOCATION.reset(token)


def run_stamp(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``created`` (ISO 8601 UTC, to the second) and ``cli`` (when a command is running), unless ``fields`` has them."""
    stamp: dict[str, Any] = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    command_line = _INVOCATION.get()
    if command_line:
        stamp["cli"] = command_line
    return {key: value for key, value in stamp.items() if key not in fields}
