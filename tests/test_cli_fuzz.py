"""Every option of every command against the values a sweep of the command line found wrong answers for.

Walks click's own command objects, so an option added later is checked too: an empty value (an unset
shell variable) and non-finite or out-of-range numbers are usage errors naming the option, before any
model loads; numbers the commands cannot honour (an all-zero weighting, a run whose results cannot fit
in memory) are refused at once; an error about the input size names the option that set it.
"""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from probe.cli.main import cli
from probe.cli.types import Count, FiniteFloat
from test_out_safety import one_error_line as one_error


def value_params() -> Iterator[tuple[str, click.Parameter]]:
    """``(command, parameter)`` for every option that takes a value and every argument of every command."""
    for name, command in sorted(cli.commands.items()):
        for param in command.params:
            if not getattr(param, "is_flag", False) and param.name != "help":
                yield name, param


def command_line(name: str, param: click.Parameter, value: str) -> list[str]:
    """``probe NAME`` with ``value`` for ``param`` and a placeholder for every other argument."""
    command = cli.commands[name]
    words = [name]
    for other in command.params:
        if isinstance(other, click.Argument):
            words.append(value if other is param else "digits:3")
    if isinstance(param, click.Option):
        words += [param.opts[0], value]
    return words


def named(param: click.Parameter) -> str:
    return f"'{param.opts[0]}'" if isinstance(param, click.Option) else param.human_readable_name


PARAMS = list(value_params())


@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.parametrize("name, param", PARAMS, ids=[f"{n}-{p.name}" for n, p in PARAMS])
def test_an_empty_value_is_refused_naming_its_option(name, param, blank, tmp_path, monkeypatch):
    """``--weights ""`` read the current folder, ``--target ""`` and ``--caricature ""`` were ignored,
    ``--layer ""`` was the root module, ``probe gallery ""`` indexed the current folder."""
    monkeypatch.chdir(tmp_path)
    line = one_error(CliRunner().invoke(cli, command_line(name, param, blank)), 2)
    assert named(param) in line and "is empty" in line
    assert list(tmp_path.iterdir()) == []


NUMBERS = [(n, p) for n, p in PARAMS if isinstance(p.type, (Count, FiniteFloat, click.IntRange))]


def invalid(param: click.Parameter, value: str) -> bool:
    """Whether ``value`` is one ``param`` must refuse: -1 only where the range starts at 0 or above, a huge
    integer and 1.5 only for integer options."""
    lowest = getattr(param.type, "min", None)
    if value == "-1":
        return lowest is not None and lowest >= 0
    if value in ("99999999999999999999", "1.5"):
        return isinstance(param.type, click.IntRange)
    return True


BAD_NUMBERS = [(n, p, v) for n, p in NUMBERS
               for v in ("nan", "inf", "-inf", "1e999", "99999999999999999999", "1.5", "-1", "ünï") if invalid(p, v)]


@pytest.mark.parametrize("name, param, value", BAD_NUMBERS, ids=[f"{n}-{p.name}-{v}" for n, p, v in BAD_NUMBERS])
def test_a_number_option_refuses_what_it_cannot_take(name, param, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # should a value be taken, its run writes nothing of the project's
    line = one_error(CliRunner().invoke(cli, command_line(name, param, value)), 2)
    assert named(param) in line


def test_every_number_option_has_a_checked_type_and_a_short_metavar():
    """A plain float type takes NaN; click's metavars for ranges say ``INTEGER RANGE``, not what to give."""
    for name, param in PARAMS:
        assert not isinstance(param.type, (click.types.FloatParamType, click.types.IntParamType)) or isinstance(
            param.type, (FiniteFloat, click.IntRange)), (name, param.name)
    for name, command in cli.commands.items():
        for param in command.params:
            metavar = param.make_metavar(click.Context(command))
            assert metavar not in ("INTEGER RANGE", "FLOAT RANGE", "FLOAT", "INTEGER"), (name, param.name)


@pytest.mark.parametrize("args, option", [
    (["layers", "digits", "--input-size", "3"], "'--input-size'"),
    (["layers", "digits", "--size", "3"], "'--size'"),
    (["layers", "digits", "--size", "3", "--input-size", "28"], "'--size'"),
])
def test_a_size_the_model_refuses_names_the_option_that_set_it(args, option):
    line = one_error(CliRunner().invoke(cli, args), 2)
    assert option in line and "cannot run" in line


@pytest.mark.parametrize("args, option, says", [
    (["dream", "digits:3", "--steps", "0"], "--steps", "x>=1"),
    (["dream", "digits:3", "--lr", "0"], "--lr", "0<x<=1"),
    (["dream", "digits:3", "--model", "digits", "--layer-weight", "0"], "--layer-weight", "is 0"),
    (["dream", "digits:3", "--model", "digits", "--layer", "conv1,conv2", "--layer-weight", "0,0"],
     "--layer-weight", "is 0"),
    (["style", "a.png", "b.png", "--content-weight", "0", "--style-weight", "0"], "--style-weight", "both 0"),
    (["style", "a.png", "b.png", "--scales", "99999999"], "--scales", "65536"),
    (["maximize", "--target", "conv2:7", "--units", "3"], "--target", "leave --units out"),
    (["maximize", "--target", "conv2:7", "--objective", "class"], "--target", "leave --objective out"),
    (["maximize", "--layer", "conv2", "--caricature", "digits:3", "--units", "0-3"], "--caricature",
     "leave --units out"),
    (["dream", "digits:3", "--model", "digits", "--tile-margin", "4"], "--tile-margin", "add --tile"),
    (["dream", "digits:3", "--model", "digits", "--zoom", "2"], "--zoom", "add --frames"),
])
def test_settings_that_would_change_nothing_or_cannot_run_are_refused(args, option, says, tmp_path, monkeypatch):
    """Each ran before: wrote its input back as the result, ignored an option another one overrides (the
    run did not do what was asked, without a word), or failed deep inside."""
    monkeypatch.chdir(tmp_path)
    line = one_error(CliRunner().invoke(cli, args), 2)
    assert f"'{option}'" in line and says in line
    assert list(tmp_path.iterdir()) == []


def test_results_that_cannot_fit_are_refused_before_any_work(tmp_path, monkeypatch):
    """``--per-unit 2147483647`` listed 2**31 units first (minutes, gigabytes), then ran out of memory."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["maximize", "--layer", "conv2", "--units", "0", "--per-unit", "2147483647"])
    line = one_error(result, 1)
    assert "needs about" in line and "--per-unit" in line and list(tmp_path.iterdir()) == []
    result = CliRunner().invoke(cli, ["dream", "digits:3", "--model", "digits", "--frames", "2147483647"])
    line = one_error(result, 1)  # every frame is kept; it ran on for ever
    assert "needs about" in line and "--frames" in line and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, says, never", [
    (["filters", "--in-channels", "70000"], "lower --in-channels 70000", "--tile"),
    (["dream", "digits:3", "--model", "digits"], "--tile", "--batch"),
])
def test_out_of_memory_advice_names_this_commands_options(args, says, never, monkeypatch):
    """It told ``probe filters`` and ``probe atlas`` to lower --tile and --size, which they lack, and never
    named the huge count that caused it."""
    def fail(*args, **kwargs):
        raise MemoryError

    module = "probe.cli.filters" if args[0] == "filters" else "probe.cli.common"  # dream's load_pretrained_or_say
    monkeypatch.setattr(f"{module}.load_model_from_options", fail)
    line = one_error(CliRunner().invoke(cli, args), 1)
    assert "ran out of memory" in line and says in line and never not in line


def test_a_dream_says_when_octaves_were_left_out(tmp_path):
    result = CliRunner().invoke(cli, ["dream", "digits:3", "--model", "digits", "--steps", "1", "--octaves", "9",
                                      "--size", "32", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "3 of the 9 octaves asked ran" in result.stderr and "asked" not in result.stdout


@pytest.mark.parametrize("size, noted", [("3", True), ("4x400", True), ("16", False)])
def test_a_tiny_size_is_noted_on_stderr(size, noted, tmp_path):
    """``--size 3`` wrote 3x3 images without a word."""
    result = CliRunner().invoke(cli, ["maximize", "--layer", "conv1", "--units", "0", "--steps", "1", "--size", size,
                                      "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert ("under 16 px on a side" in result.stderr) is noted and "under 16 px" not in result.stdout
