"""Adapters from results (tensors) to gallery folders, shared by the CLI and ``Result.save(folder)``.

The numeric core (:mod:`probe.hooks`, ``optimize``, ``dream``, ``style``, ...)
returns tensors and never writes files; :mod:`probe.gallery` writes folders and
knows nothing of torch. The modules here sit between the two: one per feature,
each turning that feature's result into a :class:`probe.gallery.Gallery`.
"""

from __future__ import annotations


from collections.abc import Callable
from pathlib import Path
from typing import Any


def save_result(write: Callable[..., Any], result: Any, folder: str | Path, *, force: bool = False, **fields: Any) -> Path:
    """What every ``Result.save(folder, force=False, **fields)`` does; returns the folder.

    The folder is created; one that already holds files is refused (a
    :class:`~probe.errors.ProbeUsageError`), unless ``force`` is set and it holds
    a cnn-probe gallery, which is then replaced: nothing is overwritten silently.
    ``write(result, folder, **fields)`` is the feature's ``save_gallery``.
    """
    from probe.gallery import prepare_out_dir

    target = prepare_out_dir(folder, folder, force=force)
    write(result, target, **fields)
    return target
