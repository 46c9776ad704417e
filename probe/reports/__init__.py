"""Adapters from results (tensors) to gallery folders, shared by the CLI and ``Result.save(folder)``.

The numeric core (:mod:`probe.hooks`, ``optimize``, ``dream``, ``style``, ...)
returns tensors and never writes files; :mod:`probe.gallery` writes folders and
knows nothing of torch. The modules here sit between the two: one per feature,
each turning that feature's result into a :class:`probe.gallery.Gallery`.
"""
