"""``probe train NAME``: its arguments, options and help, free of torch; its work is :mod:`probe.cli.train`,
imported when it runs."""

from __future__ import annotations

from typing import Any

import click

from probe.cli.common import ProbeCommand, gallery_command, out_options, seed_option, work
from probe.cli.types import count


@click.command("train", cls=ProbeCommand)
@click.argument("name", metavar="NAME")
@click.option("--epochs", type=count(1), default=None, help="Training epochs (default: the model's own).")
@seed_option
@out_options
@gallery_command
def command(**options: Any) -> None:
    """Train the embedded zoo model NAME (digits, lenet5, xo, shapes) on the CPU.

    Deterministic: the same seed gives the same weights as the shipped ones
    (seed 0). Writes NAME.pt (a state_dict) and the held-out accuracy into the
    output folder; use it with --model NAME --weights OUT/NAME.pt.

    \b
    Example:
      probe train digits --out runs/my-digits
    """
    work("train", **options)
