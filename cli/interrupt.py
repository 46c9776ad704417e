"""Ctrl-C inside click: one line and exit code 130 (128 + SIGINT), the shell's convention, wherever it lands.

Light (click only), so that the command group can use it before it imports any command's module.
"""

from __future__ import annotations

import click

from probe.cli.entry import EXIT_INTERRUPTED, INTERRUPTED

__all__ = ["INTERRUPTED", "Interrupted"]


class Interrupted(click.ClickException):
    """Ctrl-C: one line and exit code 130 (128 + SIGINT), the shell's convention, instead of click's
    ``Aborted!`` with exit code 1 that scripts cannot tell from a failure."""

    exit_code = EXIT_INTERRUPTED
