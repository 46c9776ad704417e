"""The first second of every command: a Ctrl-C while it is still importing exits 130 with one line, ``--help``
and ``--version`` import no torch, and ``import probe`` is lazy without changing what it exports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import probe
from probe.cli import entry
from probe.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]["probe"]


def _console_script() -> list[str]:
    """What pip's ``probe`` script runs: pyproject's entry point, called like the generated script calls it."""
    module, _, function = SCRIPT.partition(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


@pytest.mark.parametrize("starting", [_console_script(), [sys.executable, "-m", "probe"]], ids=["script", "-m"])
def test_ctrl_c_in_the_first_fifth_of_a_second_exits_130_in_one_line(starting: list[str]) -> None:
    """A real SIGINT 0.2 s after the start, while torch is still being imported: exit 130 and one line,
    no traceback, nothing on stdout (the old entry point printed a KeyboardInterrupt traceback)."""
    process = subprocess.Popen([*starting, "layers", "digits"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT)
    time.sleep(0.2)
    assert process.poll() is None, "the command finished before the signal: nothing was tested"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, err, out) == (130, f"Error: {entry.INTERRUPTED}\n", "")


def test_a_ctrl_c_an_import_swallowed_still_stops_the_command() -> None:
    """A library whose import catches KeyboardInterrupt (a bare ``except:``) cannot make the command run on."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, entry._on_ctrl_c_while_starting)
    try:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # the handler runs here, in the main thread
        except KeyboardInterrupt:
            pass  # swallowed, as the import did
        with pytest.raises(KeyboardInterrupt):
            entry.check_started()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the command's own handling from now
    finally:
        entry._pressed.clear()
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_import_no_torch(option: str) -> None:
    code = (f"import sys; sys.argv = ['probe', '{option}']\nfrom probe.cli.entry import main\n"
            "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
            "heavy = sorted(name for name in ('torch', 'numpy', 'PIL', 'matplotlib') if name in sys.modules)\n"
            "print('heavy:', heavy)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "heavy: []", run.stdout
    assert ("Commands:" in run.stdout) if option == "--help" else (f"version {probe.__version__}" in run.stdout)


def test_the_command_table_is_the_commands() -> None:
    """COMMANDS' summaries (what ``probe --help`` lists before any command is imported) are the commands' own."""
    assert sorted(COMMANDS) == sorted(cli.commands)
    for name, (_, summary) in COMMANDS.items():
        assert cli.commands[name].get_short_help_str(1000) == summary, name


def test_the_lazy_listing_is_clicks() -> None:
    """``probe --help`` from the table, no command imported, is click's own listing of the imported commands."""
    settings = {"help": cli.help, "context_settings": cli.context_settings, "params": cli.params}
    lazy = CliRunner().invoke(type(cli)(cli.name, lazy=COMMANDS, **settings), ["--help"])
    eager = CliRunner().invoke(click.Group(cli.name, commands=dict(cli.commands), **settings), ["--help"])
    assert lazy.exit_code == eager.exit_code == 0 and "Commands:" in lazy.output
    assert lazy.output == eager.output


def test_import_probe_is_lazy_and_exports_the_same() -> None:
    """``import probe`` imports no torch; every public name is its module's object; ``probe.dream`` and
    ``probe.accentuate`` stay the functions whoever imported their modules first; ``from probe import *``."""
    code = ("import sys, probe\nassert 'torch' not in sys.modules\n"
            "import probe.dream.run, probe.accentuate\n"
            "assert callable(probe.dream) and callable(probe.accentuate), (probe.dream, probe.accentuate)\n"
            "from probe import *\nfrom probe import dream, objectives\n"
            "assert dream is probe.dream and dream.__module__ == 'probe.dream.run', dream\n"
            "assert objectives.channel and set(probe.__all__) <= set(dir(probe))\nprint('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.stdout.strip() == "ok", run.stderr
    for name in probe.__all__:
        value = getattr(probe, name)
        module, _, attribute = probe._EXPORTS.get(name, "").partition(":")
        if module:
            assert value is getattr(sys.modules[module], attribute or name), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        probe.nope  # noqa: B018
