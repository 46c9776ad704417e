"""``probe gallery DIR``: its arguments, options and help, free of torch; its work is :mod:`probe.cli.gallery_index`,
imported when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from probe.cli.common import ProbeCommand, work


@click.command("gallery", cls=ProbeCommand)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("runs"))
def command(**options: Any) -> None:
    """Write FOLDER/index.html linking every gallery below FOLDER (default: runs).

    Only where probe gallery wrote that page before, or where there is none:
    a page of yours, or a run's own page, is refused and left as it is.

    \b
    Example:
      probe gallery runs && xdg-open runs/index.html
    """
    work("gallery_index", **options)
