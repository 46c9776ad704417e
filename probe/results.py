"""What every result of cnn-probe can do: save itself as a gallery, and show itself in a notebook."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from probe.gallery import OutDir

__all__ = ["GalleryResult"]


class GalleryResult:
    """Mixin for the result dataclasses (``MaximizeResult``, ``DreamResult``, ``StyleResult``, ...).

    A subclass names in ``_report`` its adapter module in :mod:`probe.reports`,
    which defines ``save_gallery(result, folder, **fields)`` and
    ``preview(result) -> bytes``. The adapter is imported only when used, so
    the numeric core never loads the gallery code.
    """

    _report: ClassVar[str]

    def save(self, folder: str | Path | OutDir, *, force: bool = False, **fields: Any) -> Path:
        """Write the gallery the matching ``probe`` command writes (PNGs, contact sheet, index.html, manifest.json).

        The gallery is written beside ``folder`` and moved in only when complete,
        so an error or interrupt leaves ``folder`` as it was (see :mod:`probe.gallery.outdir`).

        Args:
            folder: where to write; created if needed. Or a destination already
                checked by :func:`probe.gallery.check_out_dir` (the CLI checks
                before the run); ``force`` is then its own.
            force: replace the cnn-probe gallery already in ``folder`` (only files
                its ``.cnn-probe`` marker lists are deleted). Default False: a
                folder that holds files is refused.
            **fields: extra entries for ``manifest.json``.

        Returns:
            The folder written: ``folder``, or a fresh sibling (``folder-2``, said
            on stderr) when ``folder`` gained files or was taken while writing.

        Raises:
            ProbeUsageError: (``param="folder"``) ``folder`` is not a path, holds files (and ``force``
                is off), or files cnn-probe did not write: nothing is overwritten or deleted.
            ProbeRuntimeError: the disk refused a write (full, read-only); nothing was changed.
            Both name ``folder`` and ``force=True`` (:data:`probe.gallery.outdir.API_WORDS`); given an
            ``OutDir``, the words it was checked with (the CLI's ``--out`` and ``--force``).
        """
        from probe.gallery import OutDir, check_out_dir
        from probe.gallery.outdir import API_WORDS

        destination = folder if isinstance(folder, OutDir) else check_out_dir(folder, force=force, words=API_WORDS)
        report = importlib.import_module(self._report)
        return destination.write(lambda staging: report.save_gallery(self, staging, **fields))

    def _repr_png_(self) -> bytes:
        """The captioned picture Jupyter shows for the result."""
        return importlib.import_module(self._report).preview(self)
