"""Galleries: the folder every cnn-probe command writes (PNGs, contact sheets, index.html, manifest.json).

Knows PIL, matplotlib and the standard library, nothing of torch models: the
CLI and the notebook helpers turn tensors into PIL images first.
"""

from probe.gallery.html import render_collection_page, render_run_page
from probe.gallery.sheet import contact_sheet
from probe.gallery.stamp import recording_invocation, run_stamp
from probe.gallery.writer import MANIFEST, Gallery, prepare_out_dir, slug
from probe.gallery.collection import write_collection_index

__all__ = [
    "Gallery",
    "MANIFEST",
    "contact_sheet",
    "prepare_out_dir",
    "recording_invocation",
    "render_collection_page",
    "render_run_page",
    "run_stamp",
    "slug",
    "write_collection_index",
]
