"""``probe gallery DIR``: one index page over every run in a folder."""

from __future__ import annotations

from pathlib import Path

import click

from probe.gallery import write_collection_index


def run(folder: Path) -> None:
    """``probe gallery``'s work, on the options click parsed (see :mod:`probe.cli.commands.gallery_index`)."""
    page, count = write_collection_index(folder)
    click.echo(f"{count} run(s) indexed: {page}")
