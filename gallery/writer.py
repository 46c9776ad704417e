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

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from probe.errors import ProbeUsageError
from probe.gallery.files import create_new, utf8
from probe.gallery.html import index_above, render_run_page
from probe.gallery.outdir import MARKER
from probe.gallery.sheet import contact_sheet
from probe.gallery.stamp import run_stamp

__all__ = ["Gallery", "slug", "file_name", "MANIFEST"]

MANIFEST = "manifest.json"


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (``"layer3.1/conv"`` -> ``"layer3.1-conv"``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return cleaned or "run"


MAX_STEM = 100
"""The longest stem a gallery's file gets (file systems take 255 bytes; suffixes and ``-2`` need room)."""


def file_name(name: str) -> str:
    """``name`` as one safe file name in a gallery folder: stem and extension slugged (no folder separators,
    no leading dot, nothing a shell or URL must quote), a stem over :data:`MAX_STEM` characters cut and
    told apart by a hash (``"conv1/Conv-000.png"`` -> ``"conv1-Conv-000.png"``)."""
    stem, dot, extension = str(name).rpartition(".")
    if not dot or not stem or not re.fullmatch(r"[A-Za-z0-9]{1,8}", extension):
        stem, dot, extension = str(name), "", ""
    safe = slug(stem)
    if len(safe) > MAX_STEM:
        safe = f"{safe[:MAX_STEM - 9]}-{hashlib.sha1(stem.encode()).hexdigest()[:8]}"
    return f"{safe}{dot}{extension.lower()}"


def _format(file: str) -> str:
    """Pillow's format name for ``file``'s extension (``"a.png"`` -> ``"PNG"``; PNG for one it does not know)."""
    return Image.registered_extensions().get(Path(file).suffix.lower(), "PNG")


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
        """A safe, free name for ``file``: its stem slugged (:func:`file_name`), then ``-2``, ``-3``, ... when a
        file of this gallery already has that name."""
        file = file_name(file)
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
        self._save(file, lambda stream: image.save(stream, format=_format(file)))
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
            self._save(file, lambda stream: image.save(stream, format=_format(file),
                                                       **({"save_all": True} if file.endswith(".gif") else {})))
        elif figure is not None:
            self._save(file, lambda stream: figure.savefig(stream, format=Path(file).suffix[1:] or "png", dpi=110,
                                                           bbox_inches="tight"))
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
        stamp = run_stamp(self.fields)
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
            self._save(name, lambda stream, sheet=sheet: sheet.save(stream, format="PNG"))
            sheets.append({"file": name, "caption": f"contact sheet{': ' + section if section else ''}"})
        manifest = {
            "command": self.command,
            "version": self.version,
            **stamp,
            **self.fields,
            "items": self.items,
            "sheets": [sheet["file"] for sheet in sheets],
            "extras": self.extras,
        }
        manifest_path = self.folder / MANIFEST
        text = json.dumps(_jsonable(manifest), indent=2, allow_nan=False) + "\n"
        self._save(MANIFEST, lambda stream: stream.write(utf8(text)))
        small = bool(self._images) and max(max(image.size) for image in self._images) < 96
        page = render_run_page(
            self.title,
            {**{k: v for k, v in self.fields.items() if not isinstance(v, (list, dict)) or len(str(v)) < 200}, **stamp},
            self.sections(),
            sheets + self.extras,
            small_images=small,
            index=index_above(self.folder),
        )
        self._save("index.html", lambda stream: stream.write(utf8(page)))
        return manifest_path

    def _save(self, file: str, write: Callable[[BinaryIO], object]) -> None:
        """Run ``write(stream)`` on ``file`` created new in :attr:`folder` (:func:`~probe.gallery.files.create_new`):
        never over a file that is there, never through a link."""
        with create_new(self.folder / file) as stream:
            write(stream)
