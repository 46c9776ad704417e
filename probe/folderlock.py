"""Folders opened as themselves (never through a link), and claimed by the one process writing them.

:func:`open_folder` opens a folder with ``O_NOFOLLOW``: the files cnn-probe writes are created relative
to that descriptor, so a link planted as the folder, or swapped in after a check, is refused.
:func:`lock_folder` takes an advisory ``flock`` on the folder itself.

The lock lives as long as the descriptor holding it: the kernel drops it when the process ends, killed
(SIGKILL) or not, so a lock is never stale and there is no lock file to clean up. What a folder holds
that only a writer would leave (a temporary file, a staging folder, chunks) is therefore provably
left by a dead run when its folder's lock can be taken, and is only then removed; a second run that
finds the lock taken refuses, or keeps off, instead of both writing into one folder.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; every folder counts as free
    fcntl = None  # type: ignore[assignment]

__all__ = ["LINKED", "lock_folder", "open_folder", "release"]

LINKED = ("is a symbolic link; cnn-probe writes only into real folders, never through a link: "
          "give the folder it points to, or remove the link")
"""The reason given (``OSError.strerror``, errno ``ELOOP``) for a folder that is a link."""

_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

_UNSUPPORTED = frozenset({errno.ENOLCK, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def open_folder(folder: str | Path) -> int:
    """A descriptor of ``folder`` itself, not of what a link there points to.

    Raises:
        OSError: ``ELOOP`` (:data:`LINKED`) when ``folder`` is a symbolic link; the system's error otherwise.
    """
    try:
        return os.open(folder, _FOLDER)
    except OSError as error:
        if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and os.path.islink(folder)):
            raise OSError(errno.ELOOP, LINKED, str(folder)) from None
        raise


def lock_folder(folder: str | Path) -> int | None:
    """Take ``folder``'s exclusive lock without waiting; return the descriptor that holds it (give it to
    :func:`release`), or None when another process (or another descriptor of this one) holds it.

    Where the file system has no locks (some network file systems) the descriptor is returned unlocked:
    such a folder counts as free, as every folder did before locks.

    Raises:
        OSError: ``folder`` cannot be opened (missing, not a folder; ``ELOOP`` for a symbolic link).
    """
    folder = Path(folder)
    handle = open_folder(folder)
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in _UNSUPPORTED:
            return handle
        os.close(handle)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    try:
        same = os.path.samestat(os.fstat(handle), os.stat(folder, follow_symlinks=False))
    except OSError:
        same = False
    if not same:  # the folder was removed or replaced meanwhile: what we hold is not the folder there now
        os.close(handle)
        return None
    return handle


def release(handle: int | None) -> None:
    """Drop a lock :func:`lock_folder` took (None: nothing to drop)."""
    if handle is not None:
        os.close(handle)
