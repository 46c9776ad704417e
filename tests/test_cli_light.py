"""``probe --help``, every ``probe COMMAND --help`` and the usage errors click finds itself answer without importing
torch (the options are declared in probe.cli.commands, the work imported when a command runs), and the
declarations hand every option to the work they start."""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import inspect
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from probe.cli import entry
from probe.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "PIL", "matplotlib", "captum", "probe.gallery")
"""What a light answer must not import: torch and what comes with it, and the gallery writer (Pillow)."""
FILL = "digits:3"
"""A value for each required argument, so that the option under test is what click refuses."""

RUN_CASES = """
import json, sys
import click
from probe.cli.main import cli
codes = []
for args in json.loads(sys.argv[1]):
    try:
        codes.append(cli.main(args, prog_name="probe", standalone_mode=False) or 0)
    except click.ClickException as error:
        codes.append(error.exit_code)
print(json.dumps({"codes": codes, "heavy": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)}))
"""
"""Runs each command line in one fresh process, as the ``probe`` script would, and says what it imported."""


def _refusals(name: str) -> list[list[str]]:
    """Command lines that click (or cnn-probe's blank-value check) refuses before the command runs: for every
    option a bad choice, a word for a number, no value, an empty value; a required argument left out; a bad
    number after good values of the options whose callbacks read them (``--input-size 32``)."""
    command = cli.commands[name]
    required = [FILL] * sum(1 for p in command.params if isinstance(p, click.Argument) and p.required)
    lines = [[name, "--no-such-option"]]
    if "input_size" in {p.name for p in command.params}:  # the model's options, read before the bad one
        lines.append([name, *required, "--input-size", "32", "--mean", "0.5", "--std", "0.5", "--in-channels", "x"])
    if required:
        lines.append([name])  # a required argument missing
    for param in command.params:
        if not isinstance(param, click.Option) or param.is_flag:
            continue
        option = param.opts[0]
        lines += [[name, *required, option], [name, *required, option, ""]]
        if isinstance(param.type, click.Choice):
            lines.append([name, *required, option, "nope"])
        if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
            lines.append([name, *required, option, "x"])
    return lines


def _good_line(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A command line click accepts: ``name`` with a value for each required argument, run in ``tmp_path``
    (with the ``runs`` folder that ``probe gallery`` reads by default)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir(exist_ok=True)
    command = cli.commands[name]
    return [name, *[FILL] * sum(1 for p in command.params if isinstance(p, click.Argument) and p.required)]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_and_click_usage_errors_import_no_torch(name: str) -> None:
    """``probe NAME --help`` (exit 0) and every refusal of :func:`_refusals` (exit 2), run in one process that
    starts as the ``probe`` script does: none imports torch (``probe maximize --help`` took 2-3 s, 2.2 s of it
    importing torch, because each command's module imported its work at the top)."""
    lines = [[name, "--help"], [name, "-h"], *_refusals(name)]
    run = subprocess.run([sys.executable, "-c", RUN_CASES, json.dumps(lines), json.dumps(HEAVY)], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.splitlines()[-1])
    assert answer["heavy"] == [], answer["heavy"]
    assert answer["codes"] == [0, 0] + [2] * (len(lines) - 2), list(zip(lines, answer["codes"]))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_declaration_hands_its_options_to_its_work(name: str, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """The options click parsed reach the work's ``run`` as its own parameters, whatever they are called
    (``probe train``'s ``name`` collided with the work helper's own argument: a TypeError on every run), and the
    work reads each one (``probe activations --scale`` was parsed, taken and never used)."""
    module = importlib.import_module(f"probe.cli.{COMMANDS[name][0]}")
    signature = inspect.signature(module.run)
    source = ast.parse(textwrap.dedent(inspect.getsource(module.run)))
    received: list[inspect.BoundArguments] = []

    def record(*args: Any, **options: Any) -> None:
        received.append(signature.bind(*args, **options))  # a missing or an unknown parameter raises here

    monkeypatch.setattr(module, "run", record)
    result = CliRunner().invoke(cli, _good_line(name, tmp_path, monkeypatch))
    assert result.exit_code == 0, result.output
    [bound] = received
    assert set(bound.arguments) == set(signature.parameters)
    read = {node.id for node in ast.walk(source) if isinstance(node, ast.Name)}
    dropped = [parameter for parameter in signature.parameters if parameter not in read]
    assert dropped == [], f"{name}'s work takes {dropped} and never reads it"  # activations' --scale was dropped


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_ctrl_c_while_the_work_imports_exits_130_in_one_line(name: str, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """Torch is imported once the command line is read now, not while the group starts: a Ctrl-C there, or
    one an import swallowed, still exits 130 with the starting line (not atlas's 'every finished chunk is
    saved', nor a traceback)."""
    line = _good_line(name, tmp_path, monkeypatch)
    module = f"probe.cli.{COMMANDS[name][0]}"
    work = importlib.import_module(module)

    class Pressed(importlib.abc.MetaPathFinder):
        """Ctrl-C while the work module is imported."""

        def find_spec(self, fullname: str, *args: Any) -> None:
            if fullname == module:
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(sys, "meta_path", [Pressed(), *sys.meta_path])
    result = CliRunner().invoke(cli, line)
    assert (result.exit_code, result.output) == (130, f"Error: {entry.INTERRUPTED}\n")

    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(entry, "_pressed", [True])  # pressed while starting, and swallowed by an import
    monkeypatch.setattr(work, "run", lambda *a, **k: pytest.fail("the command ran on after the Ctrl-C"))
    result = CliRunner().invoke(cli, line)
    assert (result.exit_code, result.output) == (130, f"Error: {entry.INTERRUPTED}\n")


def test_every_package_folder_is_installed() -> None:
    """The wheel holds the packages pyproject lists, not what is on disk: a folder of modules left out of the
    list (the commands' declarations, probe.cli.commands) would install a ``probe`` that cannot start."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {folder: package for package, folder in setuptools["package-dir"].items()}
    found = set()
    for top in ("probe", "cli", "gallery"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join([folders.get(parts[0], parts[0]), *parts[1:]]))
    assert found == set(setuptools["packages"]), found ^ set(setuptools["packages"])
