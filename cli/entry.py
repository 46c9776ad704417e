"""The ``probe`` command's entry point: the console script, ``python -m probe`` and ``torchrun -m probe``.

Light on purpose: it imports nothing but :mod:`signal` and :mod:`sys` before it can handle a Ctrl-C, so one
pressed in the first seconds, while the command is still importing click, torch and the rest, exits with code
130 and the same one line as one pressed while the command runs, never a ``KeyboardInterrupt`` traceback. From
click's start on, the command group turns a Ctrl-C into :class:`~probe.cli.interrupt.Interrupted` (it imports a
command's declaration only when that command is named, and the declaration imports the command's work, torch
and the rest, only when it runs: ``probe --help``, ``probe --version`` and ``probe COMMAND --help`` need no torch).

Until the command's work is imported (:func:`probe.cli.common.work`), the Ctrl-C is also remembered
(:func:`check_started`): an import that swallows ``KeyboardInterrupt`` (a bare ``except:`` in a library's
import-time probing) cannot make the command run on as if the key had not been pressed.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130
"""128 + SIGINT, the shell's convention for a command stopped by Ctrl-C."""
INTERRUPTED_HEAD = "interrupted (Ctrl-C)"
"""What happened, the part of an interrupted command's line before its ``;`` (a SIGTERM rewrites only this part)."""
INTERRUPTED = f"{INTERRUPTED_HEAD}; nothing was written"
"""What an interrupted command says (``probe atlas`` says what it kept instead, a command that saved its gallery
where it is), always after a ``;``."""

_pressed: list[bool] = []  # one entry once Ctrl-C was pressed while starting


def main() -> None:
    """Run the ``probe`` command group on ``sys.argv``; exits with the command's exit code."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where a parent ignores SIGINT
        signal.signal(signal.SIGINT, _on_ctrl_c_while_starting)
    try:
        from probe.cli.interrupt import terminate_like_ctrl_c
        from probe.cli.main import cli  # click and the command table, no command's module yet
    except KeyboardInterrupt:
        sys.stderr.write(f"Error: {INTERRUPTED}\n")  # click's format for the same line from a command
        raise SystemExit(EXIT_INTERRUPTED) from None
    terminate_like_ctrl_c()  # SIGTERM: the same clean-up as Ctrl-C, exit code 143
    cli(prog_name="probe")


def check_started() -> None:
    """The command's work is imported: give Ctrl-C back to Python's own handler (the command's cleanup takes
    over), and raise ``KeyboardInterrupt`` if it was pressed while starting, even if an import swallowed it."""
    if signal.getsignal(signal.SIGINT) is _on_ctrl_c_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if _pressed:
        raise KeyboardInterrupt


def _on_ctrl_c_while_starting(signum: int, frame: FrameType | None) -> None:
    _pressed.append(True)
    raise KeyboardInterrupt
