"""What every result of cnn-probe can do: save itself as a gallery, and show itself in a notebook."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["GalleryResult"]


class GalleryResult:
    """Mixin for the result dataclasses (``MaximizeResult``, ``DreamResult``, ``StyleResult``, ...).

    A subclass names in ``_report`` its adapter module in :mod:`probe.reports`,
    which defines ``save_gallery(result, folder, **fields)`` and
    ``preview(result) -> bytes``. The adapter is imported only when used, so
    the numeric core never loads the gallery code.
    """

    _report: ClassVar[str]

    def save(self, folder: str | Path, *, force: bool = False, **fields: Any) -> Path:
        """Write the gallery the matching ``probe`` command writes (PNGs, contact sheet, index.html, manifest.json).

        Args:
            folder: where to write; created if needed.
            force: replace ``folder`` when it already holds a cnn-probe gallery.
                Default False: a folder that holds files is refused.
            **fields: extra entries for ``manifest.json``.

        Returns:
            The folder.

        Raises:
            ProbeUsageError: ``folder`` holds files (and ``force`` is off, or it
                holds no gallery): nothing is overwritten silently.
        """
        from probe.gallery import prepare_out_dir

        target = prepare_out_dir(folder, folder, force=force)
        importlib.import_module(self._report).save_gallery(self, target, **fields)
        return target

    def _repr_png_(self) -> bytes:
        """The captioned picture Jupyter shows for the result."""
        return importlib.import_module(self._report).preview(self)
