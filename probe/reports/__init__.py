"""Adapters from results (tensors) to gallery folders, shared by the CLI and ``Result.save(folder)``.

The numeric core (:mod:`probe.hooks`, ``optimize``, ``dream``, ``style``, ...)
returns tensors and never writes files; :mod:`probe.gallery` writes folders and
knows nothing of torch. The modules here sit between the two: one per feature,
each turning that feature's result into a :class:`probe.gallery.Gallery`
with ``save_gallery(result, folder, **fields)``, and into the picture a
notebook shows with ``preview(result) -> bytes`` (see :class:`probe.results.GalleryResult`).
"""
