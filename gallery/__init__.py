"""Galleries: the folder every cnn-probe command writes (PNGs, contact sheets, index.html, manifest.json).

Knows PIL, matplotlib and the standard library, nothing of torch models: the
CLI and the notebook helpers turn tensors into PIL images first.
"""

from probe.gallery.html import render_collection_page, render_run_page
from probe.gallery.outdir import MARKER, OutDir, check_out_dir
from probe.gallery.sheet import contact_sheet
from probe.gallery.stamp import recording_invocation, run_stamp
from probe.gallery.writer import MANIFEST, Gallery, slug
from probe.gallery.collection import write_collection_index

__all__ = [
    "Gallery",
    "MANIFEST",
    "MARKER",
    "OutDir",
    "check_out_dir",
    "contact_sheet",
    "recording_invocation",
    "render_collection_page",
    "render_run_page",
    "run_stamp",
    "slug",
    "write_collection_index",
]
