"""``probe gallery``: one page over every run below a folder, newest first, with thumbnails that can be read."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.gallery.atlas import ATLAS_JSON
from probe.folderlock import lock_folder, release
from probe.gallery.files import followed, is_temporary, read_json_object, replace_text
from probe.gallery.html import SMALL_IMAGE, render_collection_page, with_index_link
from probe.gallery.outdir import MARKER, disk_advice, is_gallery, newer_refusal, read_marker, write_marker
from probe.gallery.writer import MANIFEST

__all__ = ["write_collection_index", "run_card", "atlas_card"]

THUMBNAILS = 4
"""Images shown on a run's card: its first items, at a size one can read (not a shrunk contact sheet)."""

CARD_FIELDS = ("model", "weights", "layer", "layers", "objective", "preset", "L1", "methods", "content", "styles",
               "steps", "epochs", "test_accuracy", "seed")
"""What tells runs apart on their cards, in this order (when the manifest has it)."""

def _list(value: Any) -> list[Any]:
    """``value`` if it is a JSON list, else an empty one (a manifest may be old, edited or not ours)."""
    return value if isinstance(value, list) else []


def _file(value: Any, folder: Path) -> str | None:
    """``value`` when it names a file inside ``folder`` that exists (relative, no ``..``), else None."""
    if not isinstance(value, str) or not value or "\\" in value or value.startswith("/"):
        return None
    if ".." in Path(value).parts or not (folder / value).is_file():
        return None
    return value


def _thumbnails(manifest: Mapping[str, Any], folder: Path) -> list[str]:
    """The first items of the first section that exist in ``folder`` (else the first extra, else the first sheet)."""
    items = [item for item in _list(manifest.get("items"))
             if isinstance(item, Mapping) and item.get("kind") != "scale" and _file(item.get("file"), folder)]
    first = items[0].get("section", "") if items else ""
    files = [item["file"] for item in items if item.get("section", "") == first][:THUMBNAILS]
    if not files:  # train: its loss plot; else the contact sheet itself
        files = [extra["file"] for extra in _list(manifest.get("extras"))
                 if isinstance(extra, Mapping) and _file(extra.get("file"), folder)][:1]
    return files or [sheet for sheet in _list(manifest.get("sheets")) if _file(sheet, folder)][:1]


def _is_small(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return max(image.size) < SMALL_IMAGE
    except (OSError, ValueError):
        return False


def _created(manifest: Mapping[str, Any], manifest_path: Path) -> str:
    created = manifest.get("created")
    if isinstance(created, str) and created:
        return created
    stamp = datetime.fromtimestamp(manifest_path.stat().st_mtime, tz=timezone.utc)  # older runs: the file's time
    return stamp.isoformat(timespec="seconds")


def run_card(manifest: Mapping[str, Any], manifest_path: Path, root: Path) -> dict[str, Any]:
    """What :func:`~probe.gallery.html.render_collection_page` shows for one run (paths relative to ``root``)."""
    folder = manifest_path.parent
    relative = folder.relative_to(root).as_posix()
    values = dict(manifest)
    l1 = (manifest.get("options") or {}).get("l1") if isinstance(manifest.get("options"), Mapping) else None
    if isinstance(l1, (int, float)) and l1 > 0:
        values["L1"] = l1
    thumbnails = _thumbnails(manifest, folder)
    weights = str(manifest.get("weights", ""))
    return {
        "link": f"{relative}/index.html",
        "name": relative,
        "command": manifest["command"] if isinstance(manifest.get("command"), str) else "",
        "created": _created(manifest, manifest_path),
        "thumbnails": [f"{relative}/{file}" for file in thumbnails],
        "small": bool(thumbnails) and _is_small(folder / thumbnails[0]),
        "badges": ["random weights"] if weights.lower().startswith("random") else [],
        "fields": {key: values[key] for key in CARD_FIELDS if values.get(key) not in (None, "", [])},
    }


def atlas_card(atlas: Mapping[str, Any], atlas_path: Path, root: Path) -> dict[str, Any]:
    """What the collection page shows for a ``probe atlas`` site: its first layer's synthetic images and settings."""
    folder = atlas_path.parent
    relative = folder.relative_to(root).as_posix()
    settings = dict(atlas["settings"]) if isinstance(atlas.get("settings"), Mapping) else {}
    layers = [layer for layer in _list(atlas.get("layers")) if isinstance(layer, Mapping)]
    units = [unit for unit in _list(layers[0].get("units")) if isinstance(unit, Mapping)] if layers else []
    files = [_file((_list(unit.get("synthetic")) or [None])[0], folder) for unit in units]
    thumbnails = [file for file in files if file][:THUMBNAILS]
    settings["units"] = sum(len(_list(layer.get("units"))) for layer in layers)
    weights = str(settings.get("weights", ""))
    return {
        "link": f"{relative}/index.html",
        "name": relative,
        "command": "atlas",
        "created": _created({}, atlas_path),
        "thumbnails": [f"{relative}/{file}" for file in thumbnails],
        "small": bool(thumbnails) and _is_small(folder / thumbnails[0]),
        "badges": ["random weights"] if weights.lower().startswith("random") else [],
        "fields": {key: settings[key] for key in ATLAS_FIELDS if settings.get(key) not in (None, "", [])},
    }


ATLAS_FIELDS = ("model", "weights", "layers", "units", "dataset", "steps", "preset", "seed")
"""What tells atlases apart on their cards."""


def _atlases(root: Path) -> list[dict[str, Any]]:
    """The cards of the ``probe atlas`` sites below ``root`` (an ``atlas.json`` beside the ``index.html`` it wrote)."""
    cards = []
    for atlas_path in sorted(root.rglob(ATLAS_JSON)):
        folder = atlas_path.parent
        if folder == root or any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue
        atlas = read_json_object(atlas_path)  # None: half written, or not ours: not listed
        if atlas is not None and atlas.get("command") == "atlas" and (folder / "index.html").is_file():
            cards.append(atlas_card(atlas, atlas_path, root))
            _link_back(folder, root, atlas=True)
    return cards


def _remove_stale_temporaries(folder: Path, names: tuple[str, ...]) -> None:
    """Remove the temporary files (:func:`~probe.gallery.files.is_temporary`) of ``names`` that a killed
    ``probe gallery`` left in ``folder``; the caller holds ``folder``'s lock, so no live run is writing them
    (one left there would make the gallery look foreign to ``--force``). A user's ``.tmp-index.html.bak``
    is not one."""
    try:
        for entry in os.scandir(folder):
            if any(is_temporary(entry.name, name) for name in names) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
    except OSError:
        pass


def _link_back(folder: Path, root: Path, *, atlas: bool = False) -> None:
    """Give a run page written before the collection page its link back (the page is cnn-probe's own: listed
    by the gallery's marker, or, with ``atlas``, the ``index.html`` of a ``probe atlas`` site, whose
    ``atlas.json`` the caller read).

    Under the run folder's lock (:func:`probe.folderlock.lock_folder`, which a running atlas holds too): a
    folder another process is writing is left for this time."""
    page = folder / "index.html"
    if page.is_symlink() or not page.is_file():
        return  # not a page cnn-probe wrote: never touched
    if not atlas:
        ours = read_marker(folder, "gallery")
        if ours is None or "index.html" not in ours["files"]:
            return
    try:
        lock = lock_folder(folder)
    except OSError:
        return
    if lock is None:
        return
    try:
        _remove_stale_temporaries(folder, ("index.html",))
        text = page.read_text(encoding="utf-8")
        linked = with_index_link(text, "../" * len(folder.relative_to(root).parts) + "index.html")
        if linked != text:
            replace_text(page, linked)
    except OSError:
        return
    finally:
        release(lock)


def _check_index_destination(root: Path, page: Path) -> None:
    """Refuse to write ``root/index.html`` anywhere but where ``probe gallery`` wrote it before, or where none is."""
    if is_gallery(root) or read_marker(root, "gallery") is not None:
        raise ProbeUsageError(
            f"{str(root)!r} is one run's gallery and its index.html is that run's page; "
            "index the folder that holds the runs instead (probe gallery runs)",
            param="folder",
        )
    newer = newer_refusal(root, "overwrite its index.html")
    if newer:
        raise ProbeUsageError(newer, param="folder")
    ours = read_marker(root, "index")
    if os.path.lexists(page) and (ours is None or "index.html" not in ours["files"] or page.is_symlink()):
        raise ProbeUsageError(
            f"{str(page)!r} was not written by probe gallery; refusing to overwrite it -- "
            "move it away, or index another folder",
            param="folder",
        )
    if ours is None and os.path.lexists(root / MARKER):
        raise ProbeUsageError(f"{str(root / MARKER)!r} is not a cnn-probe marker; refusing to overwrite it", param="folder")


def write_collection_index(root: str | Path, *, title: str | None = None) -> tuple[Path, int]:
    """Write ``root/index.html`` linking every gallery and every ``probe atlas`` site found below ``root``, newest first.

    Run pages that do not link back to the index yet get the link (only pages
    their gallery's marker says cnn-probe wrote). The index is written only where
    ``probe gallery`` wrote it before (``root``'s :data:`~probe.gallery.outdir.MARKER`
    of kind ``"index"`` lists it) or where there is no ``index.html`` yet; never
    over a user's page or over a run's own page. It replaces the old page in one rename.

    Returns:
        The page's path and the number of runs it links.

    Raises:
        ProbeUsageError: ``root`` is not a folder, is a run's gallery, or holds
            an ``index.html`` that ``probe gallery`` did not write (nothing is written).
        ProbeRuntimeError: the page could not be written (disk full, read-only).
    """
    root = Path(root)
    if not root.is_dir():
        raise ProbeUsageError(f"{str(root)!r} is not a folder", param="folder")
    shown = root / "index.html"
    root = followed(root)  # the folder named, also through a link to it; no link below it is followed
    try:
        lock = lock_folder(root)
    except OSError as error:
        raise ProbeRuntimeError(f"cannot open {str(root)!r}: {error.strerror or error}; give another folder") from None
    if lock is None:
        raise ProbeRuntimeError(f"another probe gallery is writing {str(shown)!r} now; nothing was changed: run "
                                "this one again when it is done")
    try:
        return shown, _write_index(root, title)
    finally:
        release(lock)


def _write_index(root: Path, title: str | None) -> int:
    """:func:`write_collection_index` under ``root``'s lock; return the number of runs linked."""
    page = root / "index.html"
    _check_index_destination(root, page)
    _remove_stale_temporaries(root, ("index.html", MARKER))
    runs = []
    for manifest_path in sorted(root.rglob(MANIFEST)):
        folder = manifest_path.parent
        if folder == root or any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # hidden: a staging folder being written, or one left by a crash
        manifest = read_json_object(manifest_path)
        if manifest is None or "command" not in manifest or "items" not in manifest or not (folder / "index.html").is_file():
            continue  # not a run's gallery with a page to link to (or one half written by another tool)
        runs.append(run_card(manifest, manifest_path, root))
        _link_back(folder, root)
    runs += _atlases(root)
    runs.sort(key=lambda run: run["created"], reverse=True)
    try:
        write_marker(root, ["index.html"], "index")  # first: a page it does not list would be refused next time
        replace_text(page, render_collection_page(title or f"cnn-probe runs in {root.resolve().name}", runs))
    except OSError as error:
        raise ProbeRuntimeError(f"could not write {str(page)!r}: {error.strerror or error}; the runs are untouched; "
                                f"{disk_advice(error.errno, 'give another folder')}") from None
    return len(runs)
