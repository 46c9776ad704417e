"""Galleries: the folder every cnn-probe command writes (PNGs, contact sheets, index.html, manifest.json).

Knows PIL, matplotlib and the standard library, nothing of torch models: the
CLI and the notebook helpers turn tensors into PIL images first.
"""

from probe.gallery.html import render_collection_page, render_run_page
from probe.gallery.outdir import MARKER, OutDir, check_out_dir
from probe.gallery.sheet import contact_sheet
from probe.gallery.writer import MANIFEST, Gallery, slug, write_collection_index

__all__ = [
    "Gallery",
    "MANIFEST",
    "MARKER",
    "OutDir",
    "check_out_dir",
    "contact_sheet",
    "render_collection_page",
    "render_run_page",
    "slug",
    "write_collection_index",
]
