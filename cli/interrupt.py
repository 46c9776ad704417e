"""Ctrl-C and SIGTERM inside click: one line and the shell's exit code (130, 143), wherever they land.

A SIGTERM (``kill``, ``timeout``, a batch scheduler stopping a job) is raised as :class:`Terminated`, a
``KeyboardInterrupt``, so it runs the clean-up a Ctrl-C runs: the gallery being written is removed
(its hidden staging folder would otherwise stay beside ``--out`` for good), an old one left whole.

Light (click only), so that the command group can use it before it imports any command's module.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

import click

from probe.cli.entry import EXIT_INTERRUPTED, INTERRUPTED, INTERRUPTED_HEAD

__all__ = ["INTERRUPTED", "INTERRUPTED_HEAD", "EXIT_TERMINATED", "Interrupted", "Terminated", "terminate_like_ctrl_c"]

EXIT_TERMINATED = 143
"""128 + SIGTERM, the shell's convention for a command stopped by ``kill``."""

_TORCHRUN = ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT")
"""Set in the processes torchrun starts: its agent stops them with SIGTERM and expects them gone at once."""


class Terminated(KeyboardInterrupt):
    """A SIGTERM, raised where it landed; every ``except KeyboardInterrupt`` clean-up handles it as a Ctrl-C."""


_terminated: list[int] = []  # the signal, once SIGTERM arrived


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _terminated.append(signum)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up short (SIGKILL still can)
    raise Terminated


def terminate_like_ctrl_c() -> None:
    """From now on a SIGTERM cleans up as a Ctrl-C does, then exits 143 with one line.

    Only where SIGTERM has its default action (a parent that ignores or handles it keeps its choice), in the
    main thread, and not under torchrun (its agent stops workers with SIGTERM; the atlas's chunks are
    written atomically, so a worker killed outright loses nothing).
    """
    if any(name in os.environ for name in _TORCHRUN):
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        pass


class Interrupted(click.ClickException):
    """Ctrl-C: one line and exit code 130 (128 + SIGINT), the shell's convention, instead of click's
    ``Aborted!`` with exit code 1 that scripts cannot tell from a failure; after a SIGTERM the same line
    says so and the exit code is 143.

    ``message`` is what happened, a ``;``, then what was kept (``interrupted (Ctrl-C); nothing was written``,
    ``...; the finished gallery is kept: runs/x``): after a SIGTERM the part before the ``;`` becomes
    ``terminated (SIGTERM)`` and what was kept stays, so both say where the finished work is.
    """

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str) -> None:
        if _terminated:
            _terminated.clear()
            head, _, rest = message.partition(";")
            message = "terminated (SIGTERM)" + (f";{rest}" if rest and "Ctrl-C" in head else "")
            self.exit_code = EXIT_TERMINATED
        super().__init__(message)
