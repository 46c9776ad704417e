"""Finished chunks of a render on disk, so that a run killed mid-way (SIGKILL included) resumes where it stopped.

:func:`probe.maximize` with ``resume=FOLDER`` saves each finished chunk (its final and start images,
history, snapshots and maps) as ``FOLDER/<fingerprint>-<first>-<last>.pt``, written to a temporary file
beside it, synced and renamed (:func:`probe.gallery.files.replace_with`), so a kill leaves either a whole
file or none under that name. A rerun with the same request
loads the chunks whose slice it would render and renders only the others: a chunk's images depend only on
the request and on which images share its pass, so the result is the uninterrupted run's, bit for bit.

The fingerprint hashes everything the images depend on: the model's weights
(:func:`weights_digest`), the objective, every image's random-stream key (seed, layer, unit, copy), steps,
learning rate, optimizer, parametrization, transforms, size, precision and the rest. Files of another
fingerprint (the rerun changed a setting or the weights) are never read: they are removed and the request
is computed again, which the result says (``settings["resume"]``).

A store claims its folder (:func:`probe.folderlock.lock_folder`) for the process that writes it, until
:func:`clear` or the process's end: a second run keeping its chunks in the same folder at the same time
(two ``probe maximize`` into one ``--out``) finds it claimed and keeps no chunks (``failed`` says why)
instead of deleting the first run's chunks and temporary files, and its :func:`clear` leaves them. Only
the holder removes a killed run's temporary files: with the folder free, no live run is writing them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.folderlock import lock_folder, release
from probe.gallery.files import is_temporary, replace_with

__all__ = ["ChunkStore", "clear", "fingerprint", "weights_digest"]

_CHUNK = re.compile(r"(?P<key>[0-9a-f]{16})-\d{6}-\d{6}\.pt")
_OF_CHUNK = re.compile(r"\.tmp-(?P<key>[0-9a-f]{16})-\d{6}-\d{6}\.pt\.[0-9a-f]{8}")
"""A chunk file's name: ``<fingerprint>-<first>-<last>.pt``; nothing else in the folder is the store's."""


_HELD: dict[tuple[int, int], int] = {}
"""The chunk folders this process has claimed: ``(device, inode)`` -> the descriptor holding the lock."""

BUSY = "another run is keeping its chunks there now (two runs into one --out?)"
"""Why a store keeps no chunks in a folder another process has claimed."""


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(folder, follow_symlinks=False)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _claim(folder: Path) -> bool:
    """Claim ``folder`` for this process (kept until :func:`clear` or its end); False when another process holds it.

    Raises:
        OSError: the folder cannot be opened (a symbolic link, not a folder).
    """
    identity = _identity(folder)
    if identity in _HELD:
        return True
    handle = lock_folder(folder)
    if handle is None:
        return False
    _HELD[identity or (-1, handle)] = handle
    return True


def _ours(path: Path) -> bool:
    """Whether ``path`` is a file a :class:`ChunkStore` wrote: a chunk, or a temporary file a kill left behind.
    The folder may hold the user's own files (``resume=`` named a folder of theirs): those are never touched."""
    return _key(path.name) is not None and path.is_file()


def _temporary(name: str) -> bool:
    """Whether ``name`` is a chunk's temporary file (:func:`probe.gallery.files.is_temporary` of a chunk's name)."""
    return is_temporary(name) and _OF_CHUNK.fullmatch(name) is not None


def _key(name: str) -> str | None:
    """The request fingerprint of a chunk file or of a chunk's temporary file named ``name``; None for any
    other name."""
    found = _CHUNK.fullmatch(name) or (_OF_CHUNK.fullmatch(name) if _temporary(name) else None)
    return found.group("key") if found else None


def weights_digest(module: nn.Module) -> str:
    """A 16-hex-digit hash of ``module``'s state_dict: every tensor's name, dtype, shape and bytes, in order.

    What ``weights`` in words cannot say: a weights file changed under the same path, or random weights of
    another seed. About a second for ResNet-50's 100 MB on a busy core.
    """
    digest = hashlib.blake2b(digest_size=8)
    for name, tensor in module.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        if value.numel() and not value.is_quantized:
            digest.update(value.view(-1).view(torch.uint8).numpy().tobytes() if value.dtype != torch.bool
                          else value.numpy().tobytes())
    return digest.hexdigest()


def fingerprint(parts: dict[str, Any]) -> str:
    """A 16-hex-digit hash of ``parts`` (JSON-able: numbers, strings, lists, dicts; others by ``repr``)."""
    text = json.dumps(parts, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ChunkStore:
    """The finished chunks of one request in ``folder`` (created when the first chunk is saved).

    Args:
        folder: where the chunk files live; a rerun of the same request must name the same folder.
        key: the request's :func:`fingerprint`.

    Attributes:
        discarded: chunk files of another fingerprint found and removed when opened.
        loaded: chunks read back so far.
        failed: why chunks could not be saved (the folder could not be made or written), else None.
    """

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key
        self.loaded = 0
        self.discarded = 0
        self.failed: str | None = None
        try:
            if self.folder.is_dir() and not _claim(self.folder):
                self.failed = f"{BUSY}: {self.folder}"
                return
            for path in self.folder.iterdir() if self.folder.is_dir() else ():
                if _ours(path) and (_temporary(path.name) or _key(path.name) != key):  # a kill's, another request's
                    self.discarded += not _temporary(path.name)
                    path.unlink(missing_ok=True)
        except OSError as error:  # an unreadable folder: no chunk is kept (see save)
            self.failed = f"{error.strerror or error}: {self.folder}"

    def _path(self, index: slice) -> Path:
        return self.folder / f"{self.key}-{index.start:06d}-{index.stop - 1:06d}.pt"

    def load(self, index: slice) -> dict[str, Any] | None:
        """The saved chunk of images ``index`` (what :meth:`save` got), or None when there is none or it cannot
        be read (it is then removed, to be rendered again)."""
        path = self._path(index)
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged file (a disk error): render the chunk again
            path.unlink(missing_ok=True)
            return None
        if not isinstance(saved, dict) or saved.get("key") != self.key:
            path.unlink(missing_ok=True)
            return None
        self.loaded += 1
        return saved

    def save(self, index: slice, chunk: dict[str, Any]) -> None:
        """Write the chunk of images ``index`` (a dict of tensors, numbers and strings) atomically.

        Keeping chunks is a convenience, never a reason to fail the render: a folder that cannot be made or
        written (a read-only parent, a full disk) is noted in :attr:`failed` and no later chunk is tried."""
        if self.failed is not None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not _claim(self.folder):
                self.failed = f"{BUSY}: {self.folder}"
                return
            replace_with(self._path(index), lambda file: torch.save({**chunk, "key": self.key}, file), sync=True)
        except OSError as error:
            self.failed = f"{error.strerror or error}: {self.folder}"

    def clear(self) -> None:
        """Remove this request's chunk files and the folder when it is left empty (after the result is saved)."""
        clear(self.folder, self.key)


def clear(folder: str | Path, key: str | None = None) -> None:
    """Remove the chunk files in ``folder`` (of request ``key`` only, or of any), then the folder if it is left
    empty; the user's own files there stay, and so does the folder then. A folder another process has
    claimed (a run still rendering into it) is left as it is; this process's claim ends."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return
    identity = _identity(folder)
    try:
        if not _claim(folder):
            return
    except OSError:
        return
    try:
        for path in folder.iterdir():
            if _ours(path) and (key is None or _key(path.name) == key):
                path.unlink(missing_ok=True)
        folder.rmdir()
    except OSError:
        pass
    finally:
        release(_HELD.pop(identity, None))
