"""``probe gallery DIR``: one index page over every run in a folder."""

from __future__ import annotations

from pathlib import Path

import click

from probe.cli.common import ProbeCommand
from probe.gallery import write_collection_index


@click.command("gallery", cls=ProbeCommand)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("runs"))
def command(folder: Path) -> None:
    """Write FOLDER/index.html linking every gallery below FOLDER (default: runs).

    Only where probe gallery wrote that page before, or where there is none:
    a page of yours, or a run's own page, is refused and left as it is.

    \b
    Example:
      probe gallery runs && xdg-open runs/index.html
    """
    page, count = write_collection_index(folder)
    click.echo(f"{count} run(s) indexed: {page}")
