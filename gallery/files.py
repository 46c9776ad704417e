"""Files written where a reader may look at any moment: whole or not at all, and never through a link.

:func:`replace_bytes` writes into a hidden temporary file beside the target (same folder, so the rename
stays on one file system), which is then renamed over it. A full or failing disk, an exception or Ctrl-C
leaves the old file (or none) and removes the temporary one; a process killed mid-write leaves only a
temporary file (``.tmp-NAME.XXXXXXXX``, :func:`is_temporary`), which no page links to and which the next
writer of that folder removes once it holds the folder's lock (:mod:`probe.folderlock`): a name of that
exact shape in a folder no live run holds is provably a killed run's, and a user's ``.tmp-notes`` is not.
:func:`replace_with` is the same for a writer that streams (``torch.save``), with an optional fsync.

Both it and :func:`create_new` work inside the folder opened once with ``O_NOFOLLOW`` (and refuse a
folder that is a symbolic link), create their file with ``O_EXCL | O_NOFOLLOW`` and never open a name
that exists for writing: a link planted in the folder (``index.html -> ~/notes``), a link swapped in for
the folder between a check and the write, or a hard link to a file elsewhere is replaced as a name, and
the file it leads to is never written.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from probe.folderlock import open_folder

__all__ = ["TMP_PREFIX", "create_new", "followed", "is_temporary", "process_umask", "read_json_object", "read_regular",
           "replace_bytes", "replace_text", "replace_with", "utf8"]

TMP_PREFIX = ".tmp-"
"""The name prefix of the temporary files (:func:`is_temporary` tells them by their whole name)."""

_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_TMP_NAME = 40
"""Characters of the target's name kept in its temporary file's name (which must stay under NAME_MAX)."""
_TMP_SUFFIX = 8
"""Hex digits of the random suffix that tells one temporary file of a name from another."""
_TEMPORARY = re.compile(rf"{re.escape(TMP_PREFIX)}(?P<name>.{{1,{_TMP_NAME}}})\.[0-9a-f]{{{_TMP_SUFFIX}}}", re.DOTALL)


def is_temporary(name: str, of: str | None = None) -> bool:
    """Whether the file name ``name`` has the exact shape of :func:`replace_with`'s temporary files,
    ``.tmp-`` + the target's name (its first 40 characters) + ``.`` + 8 hex digits; with ``of``, of the
    target named ``of``. A user's ``.tmp-notes`` or ``.tmp-index.html.bak`` is not one.

    The shape alone proves nothing: remove such a file only under the lock of its folder
    (:func:`probe.folderlock.lock_folder`), which no live writer of it holds then.
    """
    found = _TEMPORARY.fullmatch(name)
    return found is not None and (of is None or found.group("name") == of[:_TMP_NAME])


def followed(folder: str | Path) -> Path:
    """``folder`` itself, or where it leads when it is a symbolic link (followed once, here, for a folder the
    user named: a shared disk's link); no link below it is ever followed."""
    folder = Path(folder)
    return Path(os.path.realpath(folder)) if folder.is_symlink() else folder


@functools.cache
def process_umask() -> int:
    """The process's umask, read once: reading it means setting it, which a thread writing files meanwhile
    (the atlas's writer) must not see."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def read_regular(path: str | Path, limit: int = -1) -> bytes | None:
    """The bytes of ``path`` (its first ``limit``; default all) when it is a regular file or a link to one, else
    None: missing, unreadable, a folder, or a FIFO or device, which is opened without blocking and never read
    (a FIFO named ``manifest.json`` in a user's folder hung ``--force`` and ``probe gallery`` for good)."""
    try:
        handle = os.open(path, _READ)
    except OSError:
        return None
    try:
        regular = stat.S_ISREG(os.fstat(handle).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(handle)
        return None
    with os.fdopen(handle, "rb") as stream:
        try:
            return stream.read(limit)
        except OSError:
            return None


def read_json_object(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is no regular file (:func:`read_regular`), unreadable, not
    UTF-8, not JSON (or nested too deep to parse) or not an object."""
    data = read_regular(path)
    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


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
    """Write ``data`` to ``path`` atomically (:func:`replace_with`, no fsync)."""
    return replace_with(path, lambda stream: stream.write(data))


def replace_with(path: str | Path, write: Callable[[BinaryIO], object], *, sync: bool = False) -> Path:
    """Run ``write(stream)`` into a new temporary file beside ``path``, then rename it over ``path``.

    The file gets the permissions a new file gets (``0666 & ~umask``). What was at ``path`` (a file, a
    link, a hard link to a file elsewhere) is replaced as a name; the file it led to is left as it was.

    Args:
        path: the file to write.
        write: writes the whole content into the binary stream it is given.
        sync: fsync the file before the rename (default False: this guards against crashes of the
            process, not of the machine; a resume's chunks, meant to outlive a crash, ask for it).

    Raises:
        OSError: the disk refused the write, or ``path``'s folder is a symbolic link (``ELOOP``,
            :data:`probe.folderlock.LINKED`); ``path`` is as it was, and the temporary file removed.
        Whatever ``write`` raises (and KeyboardInterrupt), after the same clean-up.
    """
    path = Path(path)
    folder = open_folder(path.parent)
    try:
        while True:
            temporary = f"{TMP_PREFIX}{path.name[:_TMP_NAME]}.{secrets.token_hex(_TMP_SUFFIX // 2)}"
            try:
                handle = os.open(temporary, _NEW, 0o666, dir_fd=folder)
                break
            except FileExistsError:
                continue
        try:
            with os.fdopen(handle, "wb") as stream:
                write(stream)
                if sync:
                    stream.flush()
                    os.fsync(stream.fileno())
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
