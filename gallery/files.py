"""Files written where a reader may look at any moment: whole or not at all, and never through a link.

:func:`replace_bytes` writes into a hidden temporary file beside the target (same folder, so the rename
stays on one file system), which is then renamed over it. A full or failing disk, an exception or Ctrl-C
leaves the old file (or none) and removes the temporary one; a process killed mid-write leaves only a
``.tmp-*`` file, which no page links to and which ``probe atlas`` removes when it resumes.

Both it and :func:`create_new` work inside the folder opened once with ``O_NOFOLLOW`` (and refuse a
folder that is a symbolic link), create their file with ``O_EXCL | O_NOFOLLOW`` and never open a name
that exists for writing: a link planted in the folder (``index.html -> ~/notes``), a link swapped in for
the folder between a check and the write, or a hard link to a file elsewhere is replaced as a name, and
the file it leads to is never written.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO

from probe.folderlock import open_folder

__all__ = ["TMP_PREFIX", "create_new", "process_umask", "replace_bytes", "replace_text", "utf8"]

TMP_PREFIX = ".tmp-"
"""The name prefix of the temporary files (the one :func:`probe.atlas.records.remove_partial` clears)."""

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_TMP_NAME = 40
"""Characters of the target's name kept in its temporary file's name (which must stay under NAME_MAX)."""


@functools.cache
def process_umask() -> int:
    """The process's umask, read once: reading it means setting it, which a thread writing files meanwhile
    (the atlas's writer) must not see."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def create_new(path: str | Path) -> BinaryIO:
    """Open ``path`` for writing as a new file (``0666 & ~umask``), never one that exists, never through a link.

    For a folder being filled from empty (a gallery's staging folder): a name already there is a
    ``FileExistsError``, not a file to truncate.

    Raises:
        OSError: ``FileExistsError`` for a name in use, ``ELOOP`` for a folder that is a link, or the disk's error.
    """
    path = Path(path)
    folder = open_folder(path.parent)
    try:
        handle = os.open(path.name, _NEW, 0o666, dir_fd=folder)
    finally:
        os.close(folder)
    return os.fdopen(handle, "wb")


def replace_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, with the permissions a new file gets (``0666 & ~umask``).

    What was at ``path`` (a file, a link, a hard link to a file elsewhere) is replaced as a name; the
    file it led to is left as it was. No fsync: this guards against crashes of the process, not of
    the machine.

    Raises:
        OSError: the disk refused the write, or ``path``'s folder is a symbolic link (``ELOOP``,
            :data:`probe.folderlock.LINKED`); ``path`` is as it was.
    """
    path = Path(path)
    folder = open_folder(path.parent)
    try:
        while True:
            temporary = f"{TMP_PREFIX}{path.name[:_TMP_NAME]}.{secrets.token_hex(4)}"
            try:
                handle = os.open(temporary, _NEW, 0o666, dir_fd=folder)
                break
            except FileExistsError:
                continue
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=folder)
            except OSError:
                pass
            raise
    finally:
        os.close(folder)
    return path


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, whatever it holds: a lone surrogate (how Python keeps a byte of a file name that is
    not UTF-8, ``caf\\xe9.jpg``) is written as ``\\xe9``, and any other one as ``\\ud800``, never an error
    at the save, after the run."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escaped, text).encode("utf-8")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def replace_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, :func:`utf8`) to ``path`` atomically (:func:`replace_bytes`)."""
    return replace_bytes(path, utf8(text))
