"""Third-party imports made quiet in a notebook: what they warn about there is not the user's to fix."""

from __future__ import annotations

import warnings

__all__ = ["import_tqdm_quietly"]


def import_tqdm_quietly() -> None:
    """Import ``tqdm.auto`` once with its "IProgress not found" warning silenced.

    captum (with ``captum.attr``) and transformers (with its logging) import ``tqdm.auto``; in a Jupyter
    kernel without ipywidgets that import warns "IProgress not found. Please update jupyter and
    ipywidgets" into the first cell that attributes or loads a model, though neither draws a bar unless
    asked. The module is cached, so their own imports find it made and warn nothing; a bar anyone asks
    for still falls back to tqdm's text bar. Call it before importing them.
    """
    try:
        from tqdm.std import TqdmWarning
    except ImportError:  # nothing imports tqdm.auto then
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
        import tqdm.auto  # noqa: F401
