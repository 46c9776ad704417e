"""Files written where a reader may look at any moment: whole or not at all.

The text goes into a hidden temporary file beside the target (same folder, so
the rename stays on one file system), which is then renamed over it. A full or
failing disk, an exception or Ctrl-C leaves the old file (or none) and removes
the temporary one; a process killed mid-write leaves only a ``.tmp-*`` file,
which no page links to and which ``probe atlas`` removes when it resumes.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

__all__ = ["TMP_PREFIX", "process_umask", "replace_bytes", "replace_text"]

TMP_PREFIX = ".tmp-"
"""The name prefix of the temporary files (the one :func:`probe.atlas.records.remove_partial` clears)."""


@functools.cache
def process_umask() -> int:
    """The process's umask, read once: reading it means setting it, which a thread writing files meanwhile
    (the atlas's writer) must not see."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def replace_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, with the permissions a new file gets (``0666 & ~umask``; a
    temporary file's own 0600 would hide it from other users).

    No fsync: this guards against crashes of the process, not of the machine.

    Raises:
        OSError: the disk refused the write; ``path`` is as it was.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o666 & ~process_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def replace_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`replace_bytes`)."""
    return replace_bytes(path, text.encode("utf-8"))
