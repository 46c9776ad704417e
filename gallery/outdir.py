"""Output folders as transactions: nothing a user has is lost, nothing half-written is left.

A run's destination is checked before the run (:func:`check_out_dir`: nothing
is created or deleted but a killed run's leftovers, see below), and the gallery
is written only when there is something to save (:meth:`OutDir.write`):

1. into a staging folder beside the destination (``.NAME.partial-XXXXXXXX``, same
   parent, so every move below is a rename on one file system);
2. a marker file :data:`MARKER` (``.cnn-probe``, JSON) is written first, naming the
   staging folder, and when the gallery is complete rewritten listing every file of it: the only
   files cnn-probe will ever delete there; the folder is locked while it is written
   (:func:`probe.folderlock.lock_folder`), so no other run takes it for a killed one's;
3. the staging folder is swapped in: renamed onto a free name (claimed with a
   ``mkdir`` that fails when the name exists, so concurrent runs never share
   one); emptied, its files last of all the marker, into an empty folder that
   was there before (the user's, the current folder, a mount point: that folder
   itself is kept, never replaced); or with ``force`` exchanged with the old gallery in one atomic
   ``renameat2(RENAME_EXCHANGE)`` where the system has it (else three renames through
   ``.NAME.swap-XXXXXXXX``), after which the old gallery's listed files are deleted, its marker
   last; a folder that must stay itself has its entries moved aside (``.NAME.old-XXXXXXXX``, the
   staging folder's suffix) and the new ones in.

An exception or KeyboardInterrupt at any point removes the staging folder and
the parent folders this write created; the old gallery stays as it was. A
destination that can no longer take the gallery at save time (a file appeared
in it, another run claimed the name) gets it under a fresh sibling name, said
on stderr and returned: finished work is never discarded.

A SIGKILL or a power cut runs no clean-up: it can stop a run between any two of these
renames and deletions. Every state it can leave is told apart by the folders' exact
names, their markers and their locks, and the next run's :func:`recover` finishes or
undoes it before anything else (the old gallery or the new one, whole, in ``NAME``).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.checks import check_path
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.folderlock import lock_folder, release
from probe.gallery.files import is_temporary, process_umask, read_json_object, replace_text
from probe.gallery.stamp import note_written

__all__ = ["MARKER", "MARKER_FORMAT", "OutDir", "check_out_dir", "read_marker", "recover", "write_marker",
           "foreign_files", "newer_refusal", "Words", "CLI_WORDS", "API_WORDS"]

MARKER = ".cnn-probe"
"""The marker file's name, in every folder cnn-probe writes."""

MARKER_FORMAT = 1
"""The marker's format version (its ``"format"`` field)."""

_MANIFEST = "manifest.json"
_SHOWN = 3  # foreign names quoted in a refusal
_PARTIAL = ".partial-"
_OLD = ".old-"
_SWAP = ".swap-"
_SUFFIX = 8
"""Characters of mkdtemp's random suffix: the staging folder ``.NAME.partial-XXXXXXXX`` and the folders paired
with it, ``.NAME.old-XXXXXXXX`` (:func:`_replace_entries`) and ``.NAME.swap-XXXXXXXX`` (:func:`_swap`)."""
_BESIDE = len(f".{_PARTIAL}") + _SUFFIX
"""Bytes the hidden staging folder beside a gallery adds to its name, ``.NAME.partial-XXXXXXXX`` (mkdtemp's 8
random characters): the longest of the names cnn-probe derives from it (``.NAME.old-...``, ``.NAME.chunks``,
``NAME-2``)."""


@dataclass(frozen=True)
class Words:
    """How a refusal names what its caller gave: the folder and the switch that replaces a gallery.

    Attributes:
        param: the :class:`~probe.errors.ProbeUsageError` ``param`` of a refusal about the folder
            (the CLI shows ``"out"`` as its ``--out`` option).
        folder: the folder as advice names it: ``choose another --out`` (default), ``choose another folder``.
        force: the switch that replaces a gallery: ``--force`` (default), ``force=True``.
    """

    param: str = "out"
    folder: str = "--out"
    force: str = "--force"

    @property
    def elsewhere(self) -> str:
        """The advice to write somewhere else: ``"choose another --out"``."""
        return f"choose another {self.folder}"


CLI_WORDS = Words()
"""The ``probe`` commands' options: ``--out``, ``--force``."""

API_WORDS = Words(param="folder", folder="folder", force="force=True")
"""The Python API's arguments, ``result.save(folder, force=True)``."""


def read_marker(folder: str | Path, kind: str | None = None) -> dict[str, Any] | None:
    """The parsed marker of ``folder``, or None when it has none (or one cnn-probe cannot read).

    Args:
        folder: the folder.
        kind: when given, a marker of another kind (``"gallery"``, ``"index"``) counts as none.

    Returns:
        ``{"format": 1, "kind": ..., "files": [relative POSIX paths]}``.
    """
    marker = _marker_object(folder)
    if marker is None or marker.get("format") != MARKER_FORMAT:
        return None
    files = marker.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    if kind is not None and marker.get("kind") != kind:
        return None
    return marker


def _marker_object(folder: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``folder``'s marker, of any format; None when it has none (a link is none)."""
    path = Path(folder) / MARKER
    return None if path.is_symlink() else read_json_object(path)


def newer_marker(folder: str | Path) -> int | None:
    """The format of ``folder``'s marker when a newer cnn-probe wrote it (a format this one cannot read), else None."""
    marker = _marker_object(folder)
    if marker is None or marker.get("tool") != "cnn-probe":
        return None
    found = marker.get("format")
    return found if isinstance(found, int) and not isinstance(found, bool) and found > MARKER_FORMAT else None


def newer_refusal(folder: str | Path, what: str, elsewhere: str = "choose another folder") -> str | None:
    """Why ``folder`` is not touched when a newer cnn-probe marked it, or None.

    Args:
        folder: the folder.
        what: what would have been done (``"overwrite its index.html"``).
        elsewhere: the advice to write somewhere else (:attr:`Words.elsewhere` for a run's ``--out``).
    """
    found = newer_marker(folder)
    if found is None:
        return None
    return (f"{str(folder)!r} was written by a newer cnn-probe (its {MARKER} has format {found}; this one reads "
            f"{MARKER_FORMAT}), so this one cannot tell its files apart and will not {what}; use that newer "
            f"cnn-probe, or {elsewhere}")


def write_marker(folder: str | Path, files: Iterable[str], kind: str = "gallery", *, token: str = "") -> Path:
    """Write ``folder``'s marker listing ``files`` (relative POSIX paths); return its path.

    ``token`` tells one gallery from another written to the same name later.
    """
    path = Path(folder) / MARKER
    body = {"format": MARKER_FORMAT, "tool": "cnn-probe", "kind": kind, "id": token, "files": sorted(set(files))}
    return replace_text(path, json.dumps(body, indent=1) + "\n")  # never half a marker: it says what is whose


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """Every file (or link) and every folder below ``folder``, as relative POSIX paths; links are not followed."""
    files, folders = [], []
    for root, dirs, names in os.walk(folder):
        here = Path(root).relative_to(folder)
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)):
                dirs.remove(name)
                names.append(name)
            else:
                folders.append((here / name).as_posix())
        files.extend((here / name).as_posix() for name in names)
    return files, folders


def foreign_files(folder: str | Path, marker: dict[str, Any] | None = None) -> list[str]:
    """What in ``folder`` its marker does not list (files, links, folders holding no listed file), sorted.

    Args:
        folder: an existing folder.
        marker: its marker (default: read it); with none, everything is foreign.
    """
    folder = Path(folder)
    marker = marker if marker is not None else read_marker(folder)
    listed = set(marker["files"]) if marker else set()
    if marker:
        listed.add(MARKER)
    ancestors = {Path(f).parent.as_posix() for f in listed} | {p.as_posix() for f in listed for p in Path(f).parents}
    files, folders = _walk(folder)
    return sorted([f for f in files if f not in listed] + [d for d in folders if d not in ancestors])


def _quote(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def is_gallery(folder: Path) -> bool:
    """True when ``folder`` holds a run's gallery (a manifest with ``command`` and ``items``), marked or not."""
    manifest = read_json_object(folder / _MANIFEST)
    return manifest is not None and "command" in manifest and "items" in manifest


def _replace_refusal(folder: Path, words: Words) -> str | None:
    """Why ``force`` may not replace ``folder`` (None when it holds a marked cnn-probe gallery and nothing else)."""
    marker = read_marker(folder, "gallery")
    newer = newer_refusal(folder, f"replace it even with {words.force}", words.elsewhere)
    if newer:
        return newer
    if marker is None:
        gallery = is_gallery(folder)
        if os.path.lexists(folder / MARKER) and gallery:
            return (f"output folder {str(folder)!r} holds a {MARKER} marker cnn-probe cannot read (damaged, "
                    f"truncated, or another tool's), so {words.force} cannot tell its files from yours; delete or "
                    f"move the folder yourself, or {words.elsewhere}")
        if gallery:
            return (f"output folder {str(folder)!r} holds no {MARKER} marker (a gallery from cnn-probe before 0.2, "
                    f"or files that only look like one), so {words.force} cannot tell its files from yours; "
                    f"delete or move it yourself, or {words.elsewhere}")
        return (f"output folder {str(folder)!r} holds files cnn-probe did not write "
                f"({_quote(foreign_files(folder, None))}); refusing to touch it even with {words.force}; "
                f"{words.elsewhere}")
    foreign = foreign_files(folder, marker)
    if foreign:
        return (f"output folder {str(folder)!r} holds files cnn-probe did not write ({_quote(foreign)}); "
                f"refusing to replace the gallery even with {words.force}; move them out or {words.elsewhere}")
    return None


def disk_advice(code: int | None, elsewhere: str = CLI_WORDS.elsewhere) -> str:
    """What to do about the disk refusing a write, by ``errno``; ``elsewhere`` is the way to write somewhere
    else (``"choose another --out"``; ``probe gallery``, which has no ``--out``: ``"give another folder"``)."""
    advice = {
        errno.ENOSPC: f"free some space or {elsewhere}",
        errno.EDQUOT: f"free some of your quota or {elsewhere}",
        errno.EROFS: f"the file system is read-only: {elsewhere}",
        errno.EFBIG: f"a file outgrew the largest this file system or process allows (ulimit -f): raise the limit or "
                     f"{elsewhere}",
        errno.EACCES: f"{elsewhere} (one you may write in)",
        errno.EPERM: f"{elsewhere} (one you may write in)",
    }
    return advice.get(code, elsewhere)


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_location(folder: Path, words: Words) -> None:
    """Refuse a destination that is a file, under a file, a symbolic link, or in a folder we cannot write."""
    param = words.param
    if folder.is_symlink():
        raise ProbeUsageError(f"output folder {str(folder)!r} is a symbolic link; give the folder it points to", param=param)
    if os.path.lexists(folder) and not folder.is_dir():
        raise ProbeUsageError(f"output folder {str(folder)!r} is a file", param=param)
    above = _nearest_existing(folder.parent)
    if not above.is_dir():
        raise ProbeUsageError(f"output folder {str(folder)!r} is under {str(above)!r}, which is a file", param=param)
    if not os.access(above, os.W_OK | os.X_OK):
        raise ProbeRuntimeError(f"cannot write in {str(above)!r} (permission denied); {words.elsewhere}")


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, the file system that would hold ``folder`` takes (255 where it cannot say)."""
    try:
        return int(os.pathconf(_nearest_existing(folder.parent), "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _fit_name(folder: Path, words: Words, *, explicit: bool) -> Path:
    """``folder`` when every name in it fits the file system with room for the hidden folders beside it
    (:data:`_BESIDE`); a default name that does not is cut and told apart by a hash (a long layer name),
    a user's is refused before the run (it would have failed at the save, the run's work lost).

    Raises:
        ProbeUsageError: (``param=words.param``) a name of ``folder`` the user gave is too long.
    """
    limit = _name_max(folder)
    for part in folder.parts[:-1]:
        if len(os.fsencode(part)) > limit:
            raise ProbeUsageError(f"output folder {str(folder)[:60]!r}... has a folder name of {len(os.fsencode(part))} "
                                  f"bytes ({part[:20]!r}...); the file system takes {limit} at most: give shorter names",
                                  param=words.param)
    name = os.fsencode(folder.name)
    room = limit - _BESIDE
    if len(name) <= room:
        return folder
    if explicit:
        raise ProbeUsageError(f"output folder name {folder.name[:40]!r}... is {len(name)} bytes long; the file system "
                              f"takes {limit} and cnn-probe needs {_BESIDE} of them for the hidden folders it writes "
                              f"beside it: give a name of at most {room} bytes", param=words.param)
    digest = hashlib.sha1(name).hexdigest()[:8]
    cut = "".join(c for c in os.fsdecode(name[:room - 9]) if not "\udc80" <= c <= "\udcff")  # no half character
    return folder.with_name(f"{cut}-{digest}")


def check_out_dir(out: str | Path | None, default: str | Path | None = None, *, force: bool = False,
                  words: Words = CLI_WORDS) -> OutDir:
    """Check where a run will write, before the run; create and delete nothing but what a killed run left
    half done beside it (:func:`recover`, which finishes or undoes it).

    Args:
        out: the folder the user asked for, or None for ``default``.
        default: the name used when ``out`` is None; if taken at save time,
            ``-2``, ``-3``, ... is appended (claimed atomically).
        force: allow replacing the cnn-probe gallery already in ``out``, once
            the new one is complete. A folder holding any file cnn-probe did not
            write (per its :data:`MARKER`) is refused even so.
        words: how refusals name ``out`` and ``force``: the CLI's ``--out`` and ``--force``
            (:data:`CLI_WORDS`, default) or the Python API's ``folder`` and ``force=True`` (:data:`API_WORDS`).
            The :class:`OutDir` returned words its own failures alike.

    Returns:
        The destination; :meth:`OutDir.write` writes the gallery.

    Raises:
        ProbeUsageError: (``param=words.param``) ``out`` (or, when None, ``default``) is not a path; it
            is a file, under a file, a symbolic link, holds files and ``force`` is off, or holds files
            cnn-probe did not write.
        ProbeRuntimeError: the folder it would be written in is not writable.
    """
    folder = check_path(out if out is not None else default, words.param)
    if any(ord(character) < 32 or ord(character) == 127 for character in str(folder)):
        raise ProbeUsageError(f"output folder {str(folder)!r} holds a control character (a newline, a tab?); "
                              "a script's variable went wrong? give a plain folder name", param=words.param)
    folder = _fit_name(folder, words, explicit=out is not None)
    _check_location(folder, words)
    recover(folder)  # what a killed run left half done there is put right first: it is no file of the user's
    try:
        holds_files = out is not None and folder.is_dir() and any(folder.iterdir())
    except OSError as error:
        raise ProbeRuntimeError(f"cannot read output folder {str(folder)!r}: {error.strerror}; {words.elsewhere}") from None
    if holds_files:
        if not force:
            raise ProbeUsageError(
                f"output folder {str(folder)!r} already holds files; {words.elsewhere}, "
                f"or pass {words.force} to replace the gallery in it",
                param=words.param,
            )
        refusal = _replace_refusal(folder, words)
        if refusal:
            raise ProbeUsageError(refusal, param=words.param)
        token = str((read_marker(folder, "gallery") or {}).get("id", ""))
        return OutDir(folder, explicit=True, force=True, replaces=token, words=words)
    return OutDir(folder, explicit=out is not None, force=force, words=words)


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2  # renameat2's flags (linux/fs.h)


def _renameat2(first: Path, second: Path, flag: int) -> bool:
    """Linux ``renameat2(first, second, flag)``; False where the system or file system has no such call.

    Raises:
        OSError: the call failed for another reason (``EEXIST`` for ``RENAME_NOREPLACE`` onto a name in use).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), flag) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    return _renameat2(first, second, _RENAME_EXCHANGE)


def _move_new(source: Path, destination: Path) -> None:
    """Rename ``source`` to ``destination``, never over something there (``FileExistsError`` instead).

    ``renameat2(RENAME_NOREPLACE)`` where the system has it; else a hard link and an unlink for a
    file (the link fails on a name in use); else a check and a rename.
    """
    if _renameat2(source, destination, _RENAME_NOREPLACE):
        return
    if not source.is_dir():
        try:
            os.link(source, destination, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError:  # no hard links here (FAT, some network file systems)
            pass
        else:
            os.unlink(source)
            return
    if os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(destination))
    os.rename(source, destination)


def _move_entries(staging: Path, folder: Path) -> bool:
    """Move every entry of ``staging`` into the existing empty ``folder``, the marker last, keeping ``folder`` itself.

    For a folder this write did not create (the user's, the current one, a mount point): renaming the
    staging folder onto it would replace it. Returns False, with everything moved back, when a name
    in ``folder`` is taken meanwhile; an exception (or Ctrl-C) also moves everything back first.
    """
    names = _marker_last(staging)
    moved: list[str] = []
    try:
        for name in names:
            _move_new(staging / name, folder / name)
            moved.append(name)
    except BaseException as error:
        for name in reversed(moved):
            os.rename(folder / name, staging / name)
        if isinstance(error, FileExistsError):
            return False
        raise
    staging.rmdir()
    return True


def _marker_last(folder: Path) -> list[str]:
    """The entries of ``folder`` in the order a gallery moves entry by entry, its marker last: cut off at any
    point, the folder it leaves still has the marker that explains what remains in it."""
    return sorted(os.listdir(folder), key=lambda name: (name == MARKER, name))


def _swap(first: Path, second: Path) -> None:
    """Swap the staging folder ``first`` and the gallery ``second``: atomically where possible, else by three
    renames through a hidden third name, ``.NAME.swap-XXXXXXXX`` (:func:`recover` finishes a killed one)."""
    if _exchange(first, second):
        return
    aside = second.with_name(f".{second.name}{_SWAP}{first.name[-_SUFFIX:]}")
    os.rename(second, aside)
    os.rename(first, second)
    os.rename(aside, first)


def _move_into_claimed(staging: Path, claimed: Path, *, ours: bool) -> bool:
    """Rename ``staging`` onto the empty folder ``claimed``; False when ``claimed`` gained a file meanwhile.

    ``ours``: this write made ``claimed`` (by ``mkdir``), so it removes it again when the rename fails.
    """
    try:
        os.rename(staging, claimed)  # POSIX: replaces an empty folder, fails on a non-empty one
        return True
    except OSError as error:
        if os.name == "nt" and _empty_folder(claimed):  # Windows renames onto no folder, empty or not
            os.rmdir(claimed)
            os.rename(staging, claimed)
            return True
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        if ours:
            try:
                claimed.rmdir()
            except OSError:
                pass
        raise


def _empty_folder(folder: Path) -> bool:
    """True when ``folder`` is a folder (not a link to one) that holds nothing: one a gallery may be moved into.

    A folder that cannot be listed (unreadable, or gone meanwhile) is not one: the gallery goes to a fresh
    sibling instead of the write failing with the finished gallery discarded; a link to an empty folder is
    not one either, so a link is never removed to make room."""
    try:
        return folder.is_dir() and not folder.is_symlink() and not os.listdir(folder)
    except OSError:
        return False


def _in_use(folder: Path) -> bool:
    """True when replacing ``folder`` itself would pull it from under its users: it is or holds the current
    folder (``--out .``), or it is a mount point."""
    folder = folder.resolve()
    try:
        here = Path.cwd().resolve()
    except OSError:  # the current folder was deleted: nobody is in it
        return os.path.ismount(folder)
    return here == folder or folder in here.parents or os.path.ismount(folder)


class _Changed(Exception):
    """The folder changed while a gallery was being moved in: everything was put back."""


def _replace_entries(staging: Path, target: Path, marker: dict[str, Any]) -> bool:
    """:meth:`OutDir._replace` for a folder that must stay itself (:func:`_in_use`): entry by entry.

    The old gallery's entries move into a hidden folder beside ``target`` (its marker last), the new
    ones into ``target`` (:func:`_move_entries`), then the old ones are deleted. A file that arrived
    meanwhile, an exception or Ctrl-C puts every entry back where it was first; returns False for
    the arrival. Not atomic for a reader of ``target``, unlike the exchange of whole folders.
    """
    aside = _aside(staging, target)
    try:
        aside.mkdir()  # a name of the user's there: no replace (the gallery goes to a sibling)
    except FileExistsError:
        return False
    held = lock_folder(aside)  # while the old gallery is in it: no other run recovers it meanwhile
    moved: list[str] = []
    try:
        for name in _marker_last(target):
            os.rename(target / name, aside / name)
            moved.append(name)
        if foreign_files(aside, marker) or not _move_entries(staging, target):
            raise _Changed
    except BaseException as error:
        for name in reversed(moved):
            _move_new(aside / name, target / name)
        aside.rmdir()
        release(held)
        if isinstance(error, _Changed):
            return False
        raise
    try:
        _delete_old(aside, marker)
    finally:
        release(held)
    return True


def _aside(staging: Path, target: Path) -> Path:
    """Where :func:`_replace_entries` keeps the old gallery: ``.NAME.old-XXXXXXXX``, with the staging folder's
    own suffix, so that :func:`recover` knows which staging folder's gallery was moving in."""
    return target.with_name(f".{target.name}{_OLD}{staging.name[-_SUFFIX:]}")


def _delete_old(folder: Path, marker: dict[str, Any]) -> None:
    """Delete the replaced gallery, now in ``folder``; a failure only warns (the new gallery is in place)."""
    try:
        _delete_listed(folder, marker)
    except OSError as error:
        print(f"warning: could not delete the old gallery, now in {str(folder)!r}: {error.strerror or error}",
              file=sys.stderr)


def _new_staging(target: Path) -> tuple[Path, int | None]:
    """A new staging folder beside ``target`` and the lock held while it is written (no other run takes it
    for a killed run's); made again when another run's :func:`recover` took the empty folder meanwhile."""
    while True:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{_PARTIAL}", dir=target.parent))
        try:
            lock = lock_folder(staging)
        except FileNotFoundError:
            continue
        if lock is not None:
            return staging, lock


def recover(target: str | Path) -> None:
    """Finish or undo what killed runs (SIGKILL, a power cut) left half done beside ``target``.

    Only folders of cnn-probe's exact names beside ``target`` are looked at, and each only when no live
    run holds its lock (:func:`probe.folderlock.lock_folder`; the kernel drops a dead process's):

    - ``.NAME.old-XXXXXXXX``, an old gallery moving out of a folder that stays itself
      (:func:`_replace_entries`): with its marker (all of it moved out), the new gallery is moved in from
      its staging folder (same suffix) and the old one deleted; without (cut while moving out), its
      entries, each one the marker left in ``target`` lists, go back;
    - ``.NAME.swap-XXXXXXXX``, an old gallery mid-way through three renames (:func:`_swap` where the
      system cannot exchange): put back as ``target`` when that is gone, else deleted as replaced;
    - ``.NAME.partial-XXXXXXXX``: a staging folder (its marker names it): its gallery moved on into an
      empty ``target`` of the user's when that was cut off mid-way, else removed whole; an old gallery
      swapped out (another id): its listed files deleted; an empty folder (a clean-up cut before its
      last step): removed.

    Anything else, or anything holding a file no marker lists, is left as it is: never a file of the user's.
    """
    target = Path(os.path.abspath(target))
    prefix = f".{target.name}."
    try:
        names = sorted(name for name in os.listdir(target.parent) if name.startswith(prefix))
    except OSError:
        return
    for kind in (_OLD, _SWAP, _PARTIAL):
        for name in names:
            if name.startswith(f"{prefix}{kind[1:]}") and len(name) == len(prefix) + len(kind) - 1 + _SUFFIX:
                _recover_one(target.parent / name, kind, target)
    _remove_temporaries(target)


def _remove_temporaries(gallery: Path) -> None:
    """Remove from the marked ``gallery`` the temporary files of the files it lists that a process killed while
    replacing one left (``probe gallery`` adding a run page's link back): one made it look foreign to
    ``--force``. Under the gallery's lock, so never a live writer's; a user's ``.tmp-notes`` is not one."""
    try:
        candidates = [name for name in os.listdir(gallery) if is_temporary(name)] if gallery.is_dir() else []
    except OSError:
        return
    marker = read_marker(gallery, "gallery") if candidates and not gallery.is_symlink() else None
    if marker is None:
        return
    listed = [*marker["files"], MARKER]
    found = [name for name in candidates if any(is_temporary(name, of) for of in listed)]
    try:
        held = lock_folder(gallery) if found else None
    except OSError:
        return
    if held is None:
        return
    try:
        for name in found:
            if not (gallery / name).is_symlink() and (gallery / name).is_file():
                os.unlink(gallery / name)
    except OSError:
        pass
    finally:
        release(held)


def _recover_one(folder: Path, kind: str, target: Path) -> None:
    """:func:`recover` for one folder of the ``kind`` (``_OLD``, ``_SWAP``, ``_PARTIAL``), under its lock."""
    staging = target.with_name(f".{target.name}{_PARTIAL}{folder.name[-_SUFFIX:]}")
    pair = (folder, staging) if kind == _OLD and staging.is_dir() else (folder,)
    held: list[int | None] = []
    try:
        held.extend(lock_folder(path) if path.is_dir() and not path.is_symlink() else None for path in pair)
        if None in held:
            return  # not a real folder, or a live run holds it
        if kind == _PARTIAL and os.path.lexists(_aside(folder, target)):
            return  # moving in for an old gallery that is moving out: the aside's recovery finishes it
        marker = read_marker(folder, "gallery")
        if marker is not None and marker.get("id") != folder.name and foreign_files(folder, marker):
            return  # an old gallery with a file of the user's among its own: left for them to see
        if kind == _OLD:
            _recover_aside(folder, marker, staging, target)
        elif kind == _SWAP and marker is not None:
            if not os.path.lexists(target):
                os.rename(folder, target)
            elif read_marker(target, "gallery") is not None:
                _delete_listed(folder, marker)
        elif kind == _PARTIAL:
            _recover_staging(folder, marker, target)
    except OSError:
        pass  # left as it was found, for the next run to try again
    finally:
        for handle in held:
            release(handle)


def _recover_aside(aside: Path, marker: dict[str, Any] | None, staging: Path, target: Path) -> None:
    """:func:`recover` for ``.NAME.old-XXXXXXXX``: forward when the old gallery is all out, else back."""
    if marker is not None:
        new = read_marker(staging, "gallery") if staging.is_dir() else None
        if new is not None and new.get("id") == staging.name:
            if not _move_entries(staging, target):
                return
        elif staging.is_dir():
            staging.rmdir()  # its marker moved on last: nothing of the new gallery is left in it
        _delete_listed(aside, marker)
        return
    left = read_marker(target, "gallery")
    names = os.listdir(aside)
    if _moved_out(names, target, (left or {}).get("files", [])):
        for name in names:
            _move_new(aside / name, target / name)
        aside.rmdir()


def _recover_staging(staging: Path, marker: dict[str, Any] | None, target: Path) -> None:
    """:func:`recover` for ``.NAME.partial-XXXXXXXX`` (see there)."""
    if marker is None:
        names = os.listdir(staging)
        if all(is_temporary(name, MARKER) for name in names):  # killed before or while its first marker was written
            for name in names:
                os.unlink(staging / name)
            staging.rmdir()
        return
    if marker.get("id") != staging.name:
        _delete_listed(staging, marker)  # an old gallery swapped out; the new one is in target
        return
    if _moving_in(staging, marker, target) and _move_entries(staging, target):
        return
    shutil.rmtree(staging, ignore_errors=True)


def _moving_in(staging: Path, marker: dict[str, Any], target: Path) -> bool:
    """Whether ``target`` holds the first entries of the complete gallery in ``staging`` and nothing else, as
    :func:`_move_entries` leaves a folder of the user's it was cut off filling (its marker moves last)."""
    try:
        present = os.listdir(target) if target.is_dir() and not target.is_symlink() else []
    except OSError:
        return False
    return bool(present) and MARKER not in present and _moved_out(present, staging, marker["files"])


def _moved_out(names: Iterable[str], source: Path, listed: Iterable[str]) -> bool:
    """Whether every one of ``names`` is an entry of ``source`` its marker listed (``listed``: its files) that is
    gone from ``source``: how a move entry by entry out of ``source``, cut off, leaves them where they went."""
    tops = {Path(name).parts[0] for name in listed}
    return all(name in tops and not os.path.lexists(source / name) for name in names)


def _discard(staging: Path) -> None:
    """Remove a staging folder after a failure, never a file cnn-probe did not write.

    Until the swap it holds the unfinished gallery (its marker, if any, carries
    the staging folder's own name): all of it goes. After a swap it holds the old
    gallery: only the files the old marker lists go.
    """
    marker = read_marker(staging, "gallery")
    if marker is None or marker.get("id") == staging.name:
        shutil.rmtree(staging, ignore_errors=True)
        return
    try:
        _delete_listed(staging, marker)
    except OSError:
        pass


def _delete_listed(folder: Path, marker: dict[str, Any]) -> None:
    """Delete the files ``marker`` lists in ``folder``, the folders left empty, then the marker and ``folder``.

    Only files found inside ``folder`` are candidates, so a marker naming ``../x`` deletes nothing outside.
    The marker goes after every listed file and folder: a clean-up killed at any point leaves a folder its
    marker still explains, or an empty one, which :func:`recover` finishes.

    Raises:
        OSError: a file could not be deleted, or ``folder`` holds what the marker does not list (kept, the
            user's files alone in it).
    """
    listed = set(marker["files"])
    files, folders = _walk(folder)
    for name in files:
        if name in listed and name != MARKER:
            (folder / name).unlink()
    for sub in sorted(folders, key=lambda p: -p.count("/")):
        try:
            (folder / sub).rmdir()
        except OSError:
            pass
    (folder / MARKER).unlink(missing_ok=True)
    left = os.listdir(folder)
    if left:
        raise OSError(errno.ENOTEMPTY, f"it holds files the gallery did not list ({_quote(sorted(left))})", str(folder))
    folder.rmdir()


@dataclass(frozen=True)
class OutDir:
    """A checked destination for one gallery (from :func:`check_out_dir`); nothing exists until :meth:`write`.

    Attributes:
        path: the folder asked for (the user's ``--out``, or the default name).
        explicit: True when the user named it (a default name takes ``-2``, ... silently).
        force: replace the cnn-probe gallery in ``path``.
        replaces: the marker id of the gallery ``force`` replaces, as it was at the check
            (a gallery written there meanwhile, by another run, is kept).
        words: how a failure of :meth:`write` names the folder (:class:`Words`; default the CLI's ``--out``).
    """

    path: Path
    explicit: bool = True
    force: bool = False
    replaces: str | None = None
    words: Words = CLI_WORDS

    def write(self, writer: Callable[[Path], object]) -> Path:
        """Run ``writer(staging)`` to fill a staging folder, mark it, and swap it in; return where it landed.

        Args:
            writer: writes every file of the gallery into the folder it is given.

        Returns:
            :attr:`path`, or a fresh sibling (``NAME-2``, ...) when :attr:`path`
            could not take the gallery at save time (said on stderr).

        Raises:
            ProbeRuntimeError: the disk refused a write (full, read-only): the
                staging folder is removed and the old gallery left as it was.
            Whatever ``writer`` raises (and KeyboardInterrupt), after the same clean-up.
        """
        target = Path(os.path.abspath(self.path))
        created = self._make_parents(target.parent)
        staging: Path | None = None
        lock: int | None = None
        try:
            recover(target)
            staging, lock = _new_staging(target)
            staging.chmod(0o777 & ~process_umask())  # mkdtemp's 0700 would hide the gallery from other users
            write_marker(staging, [], "gallery", token=staging.name)  # whose it is, from its first file on
            writer(staging)
            write_marker(staging, [f for f in _walk(staging)[0] if f != MARKER], "gallery", token=staging.name)
            final = self._swap_in(staging, target)
            staging = None
        except BaseException as error:
            if staging is not None:
                _discard(staging)
            for folder in reversed(created):
                try:
                    folder.rmdir()
                except OSError:
                    break
            if isinstance(error, OSError):
                raise ProbeRuntimeError(
                    f"could not write the gallery in {str(target.parent)!r}: {error.strerror or error}; nothing "
                    f"there was changed; {disk_advice(error.errno, self.words.elsewhere)}"
                ) from None
            raise
        finally:
            release(lock)
        landed = self.path if final == target else final if self.path.is_absolute() else Path(os.path.relpath(final))
        note_written(landed)
        return landed

    @staticmethod
    def _make_parents(folder: Path) -> list[Path]:
        """Create ``folder`` and its missing parents; return the ones created, outermost first."""
        missing = []
        while not os.path.lexists(folder):
            missing.append(folder)
            folder = folder.parent
        created = []
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue  # another run made it meanwhile: not ours to remove
            created.append(path)
        return created

    def _swap_in(self, staging: Path, target: Path) -> Path:
        """Move the complete ``staging`` folder to ``target`` (or a fresh sibling); return where it went."""
        if not self.explicit:
            return self._claim_fresh(staging, target, start=1)
        reason = "another run created it"
        try:
            target.mkdir()
            made = True
        except FileExistsError:
            made = False
        if target.is_dir() and not target.is_symlink():
            if _empty_folder(target):
                if made and _move_into_claimed(staging, target, ours=True):
                    return target
                if not made and _move_entries(staging, target):  # the user's folder stays (a cwd, a mount)
                    return target
            if self.force and self.replaces is not None and self._replace(staging, target, self.replaces):
                return target
            foreign = foreign_files(target, read_marker(target, "gallery"))
            reason = f"it gained {_quote(foreign)} during the run" if foreign else "it changed during the run"
        final = self._claim_fresh(staging, target, start=2)
        print(f"warning: {str(self.path)!r} could not take the gallery ({reason}); saved it to {str(final)!r} instead",
              file=sys.stderr)
        return final

    @staticmethod
    def _replace(staging: Path, target: Path, token: str) -> bool:
        """Swap the new gallery for the marked old one in ``target``, then delete the old one's listed files.

        Returns False (nothing changed) when ``target`` holds anything its marker does not list, or
        another gallery than the one (marker id ``token``) seen at the check.
        """
        marker = read_marker(target, "gallery")
        if marker is None or str(marker.get("id", "")) != token or foreign_files(target, marker):
            return False
        if _in_use(target):
            return _replace_entries(staging, target, marker)
        held = lock_folder(target)  # the old gallery's folder, wherever the swap moves it: no recovery meanwhile
        if held is None:  # another run is replacing or recovering it now
            return False
        try:
            _swap(staging, target)  # staging now holds the old gallery
            if foreign_files(staging, marker):  # a file arrived between the check and the swap: undo
                _swap(staging, target)
                return False
            _delete_old(staging, marker)
        finally:
            release(held)
        return True

    @staticmethod
    def _claim_fresh(staging: Path, base: Path, start: int) -> Path:
        """Rename ``staging`` to the first free name of ``base``, ``base-2``, ... (each claimed by ``mkdir``).

        A name held by an empty folder (a run killed between claiming it and renaming onto it) is taken
        too, by the same rename, which fails on a folder that is not empty (another run got there first)."""
        number = start
        while True:
            candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
            number += 1
            try:
                candidate.mkdir()
                made = True
            except FileExistsError:
                if not _empty_folder(candidate) or _in_use(candidate):
                    continue
                made = False
            if _move_into_claimed(staging, candidate, ours=made):
                return candidate
