"""Write a run's results as a gallery folder: PNGs, contact sheets, index.html, manifest.json.

Every command writes the same layout::

    OUT/
      conv2-000.png ...        one file per result, at its native size
      contact-sheet.png        the captioned grid (one per section when there are several)
      index.html               opens from disk in any browser
      manifest.json            the machine-readable record of the run

A :class:`Gallery` writes into the folder it is given: the CLI and
``Result.save`` give it a staging folder from :meth:`probe.gallery.OutDir.write`,
which swaps it in only when complete (see :mod:`probe.gallery.outdir`).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.gallery.html import render_collection_page, render_run_page
from probe.gallery.outdir import MARKER, read_marker, write_marker
from probe.gallery.sheet import contact_sheet

__all__ = ["Gallery", "slug", "write_collection_index", "MANIFEST"]

MANIFEST = "manifest.json"


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (``"layer3.1/conv"`` -> ``"layer3.1-conv"``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return cleaned or "run"


def _is_gallery(folder: Path) -> bool:
    """True when ``folder`` holds a run's gallery (a manifest with ``command`` and ``items``), marked or not."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "command" in manifest and "items" in manifest


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    return value


class Gallery:
    """Collects a run's images and writes the gallery folder.

    Images are saved as they are added; :meth:`write` adds the contact sheets,
    the page and the manifest. Two files whose names clash (equal, or equal but
    for case, as ``slug("a<b")`` and ``slug("a>b")``) get distinct names
    (``-2``, ``-3``, ... before the extension): nothing is overwritten.

    Args:
        folder: an existing folder, usually the staging folder of :meth:`probe.gallery.OutDir.write`.
        command: the command name recorded in the manifest (``"maximize"``).
        title: the page heading.
        fields: run-level manifest fields (model, layer, steps, seed, ...).
        version: the cnn-probe version recorded in the manifest.
    """

    def __init__(
        self, folder: str | Path, *, command: str, title: str, fields: Mapping[str, Any] | None = None, version: str = ""
    ) -> None:
        self.folder = Path(folder)
        self.command = command
        self.title = title
        self.fields: dict[str, Any] = dict(fields or {})
        self.version = version
        self.items: list[dict[str, Any]] = []
        self._images: list[Image.Image] = []
        self.extras: list[dict[str, Any]] = []
        self._taken: set[str] = {MANIFEST.casefold(), "index.html", MARKER}

    def _claim(self, file: str) -> str:
        """``file``, or ``stem-2.ext``, ``stem-3.ext``, ... when a file of this gallery already has that name."""
        stem, dot, extension = file.rpartition(".") if "." in file else (file, "", "")
        candidate, number = file, 1
        while candidate.casefold() in self._taken:
            number += 1
            candidate = f"{stem}-{number}{dot}{extension}"
        self._taken.add(candidate.casefold())
        return candidate

    def add(self, image: Image.Image, file: str, caption: str, *, section: str = "", **fields: Any) -> dict[str, Any]:
        """Save ``image`` as ``file`` (PNG) and record it with its caption and extra manifest fields.

        Returns the manifest item; its ``"file"`` is ``file`` or, when that name is taken, ``file`` with a suffix.
        """
        file = self._claim(file)
        image.save(self.folder / file)
        item = {"file": file, "caption": caption, **({"section": section} if section else {}), **fields}
        self.items.append(item)
        self._images.append(image)
        return item

    def add_extra(self, file: str, caption: str, *, image: Image.Image | None = None, figure: Any = None) -> None:
        """Record an overview file (plot, animation): saved from a PIL ``image`` or matplotlib ``figure``, or already on disk."""
        if image is not None or figure is not None:
            file = self._claim(file)
        else:
            self._taken.add(file.casefold())
        if image is not None:
            image.save(self.folder / file, **({"save_all": True} if file.endswith(".gif") else {}))
        elif figure is not None:
            figure.savefig(self.folder / file, dpi=110, bbox_inches="tight")
        elif not (self.folder / file).exists():
            raise FileNotFoundError(self.folder / file)
        self.extras.append({"file": file, "caption": caption})

    def sections(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """Items grouped by section, in the order sections first appear."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for item in self.items:
            grouped.setdefault(item.get("section", ""), []).append(item)
        return list(grouped.items())

    def write(self, *, cell: int = 128, columns: int | None = None, **fields: Any) -> Path:
        """Write the contact sheet(s), ``index.html`` and ``manifest.json``; return the manifest's path.

        Args:
            cell: contact-sheet cell size in pixels (default 128).
            columns: contact-sheet columns (default about sqrt of the count).
            **fields: more run-level manifest fields (final losses, timings, ...).
        """
        self.fields.update(fields)
        sheets = []
        by_file = dict(zip((item["file"] for item in self.items), self._images))
        for section, items in self.sections():
            if not items:
                continue
            name = self._claim(f"contact-sheet-{slug(section)}.png" if section else "contact-sheet.png")
            sheet = contact_sheet(
                [by_file[item["file"]] for item in items],
                [item["caption"] for item in items],
                columns=columns,
                cell=cell,
                title=f"{self.title}: {section}" if section else self.title,
            )
            sheet.save(self.folder / name)
            sheets.append({"file": name, "caption": f"contact sheet{': ' + section if section else ''}"})
        manifest = {
            "command": self.command,
            "version": self.version,
            **self.fields,
            "items": self.items,
            "sheets": [sheet["file"] for sheet in sheets],
            "extras": self.extras,
        }
        manifest_path = self.folder / MANIFEST
        manifest_path.write_text(json.dumps(_jsonable(manifest), indent=2, allow_nan=False) + "\n")
        small = bool(self._images) and max(max(image.size) for image in self._images) < 96
        page = render_run_page(
            self.title,
            {k: v for k, v in self.fields.items() if not isinstance(v, (list, dict)) or len(str(v)) < 200},
            self.sections(),
            sheets + self.extras,
            small_images=small,
        )
        (self.folder / "index.html").write_text(page, encoding="utf-8")
        return manifest_path


def _check_index_destination(root: Path, page: Path) -> None:
    """Refuse to write ``root/index.html`` anywhere but where ``probe gallery`` wrote it before, or where none is."""
    if _is_gallery(root) or read_marker(root, "gallery") is not None:
        raise ProbeUsageError(
            f"{str(root)!r} is one run's gallery and its index.html is that run's page; "
            "index the folder that holds the runs instead (probe gallery runs)",
            param="folder",
        )
    ours = read_marker(root, "index")
    if os.path.lexists(page) and (ours is None or "index.html" not in ours["files"] or page.is_symlink()):
        raise ProbeUsageError(
            f"{str(page)!r} was not written by probe gallery; refusing to overwrite it -- "
            "move it away, or index another folder",
            param="folder",
        )
    if ours is None and os.path.lexists(root / MARKER):
        raise ProbeUsageError(f"{str(root / MARKER)!r} is not a cnn-probe marker; refusing to overwrite it", param="folder")


def _replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: into a hidden temporary file, then renamed over ``path``."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_collection_index(root: str | Path, *, title: str | None = None) -> tuple[Path, int]:
    """Write ``root/index.html`` linking every gallery found below ``root``.

    The page is written only where ``probe gallery`` wrote it before (``root``'s
    :data:`~probe.gallery.outdir.MARKER` of kind ``"index"`` lists it) or where
    there is no ``index.html`` yet; never over a user's page or over a run's own
    page. It replaces the old page in one rename.

    Returns:
        The page's path and the number of runs it links.

    Raises:
        ProbeUsageError: ``root`` is not a folder, is a run's gallery, or holds
            an ``index.html`` that ``probe gallery`` did not write (nothing is written).
    """
    root = Path(root)
    if not root.is_dir():
        raise ProbeUsageError(f"{str(root)!r} is not a folder", param="folder")
    page = root / "index.html"
    _check_index_destination(root, page)
    runs = []
    for manifest_path in sorted(root.rglob(MANIFEST)):
        folder = manifest_path.parent
        if folder == root or not _is_gallery(folder) or any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # hidden: a staging folder being written, or one left by a crash
        manifest = json.loads(manifest_path.read_text())
        relative = folder.relative_to(root).as_posix()
        sheets = manifest.get("sheets") or []
        thumbnail = f"{relative}/{sheets[0]}" if sheets else None
        keys = ("model", "layer", "layers", "objective", "steps", "seed")
        runs.append(
            {
                "link": f"{relative}/index.html",
                "thumbnail": thumbnail,
                "caption": f"{manifest['command']}: {relative}",
                "fields": {k: manifest[k] for k in keys if k in manifest},
            }
        )
    try:
        _replace_file(page, render_collection_page(title or f"cnn-probe runs in {root.name}", runs))
        write_marker(root, ["index.html"], "index")
    except OSError as error:
        raise ProbeRuntimeError(f"could not write {str(page)!r}: {error.strerror or error}") from None
    return page, len(runs)
