"""`probe COMMAND --help` states every option's default, names only options the command has, and the README's command
table is the CLI's."""

from __future__ import annotations

import re
from pathlib import Path

import click

from probe.cli.main import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_option_states_its_default():
    """An option that is not a plain flag says what happens without it: click's [default: ...] or a 'default'
    in its help (for those whose default is none or is computed: 'default: every channel')."""
    silent = []
    for name, command in cli.commands.items():
        context = click.Context(command, info_name=name, parent=click.Context(cli))
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden or (param.is_flag and not param.show_default):
                continue
            _, text = param.get_help_record(context)
            if not param.required and "default" not in text.lower():
                silent.append(f"probe {name} {param.opts[0]}")
    assert not silent, silent


def test_the_readme_command_table_is_the_cli():
    text = README.read_text(encoding="utf-8")
    table = text[text.index("<!-- commands -->"):text.index("`probe --help` lists them")]
    rows = re.findall(r"^\| `probe ([a-z]+)([^`]*)` \|", table, re.M)
    assert sorted(name for name, _ in rows) == sorted(cli.commands)
    for name, usage in rows:
        options = {opt for param in cli.commands[name].params for opt in param.opts}
        assert {word for word in usage.split() if word.startswith("--")} <= options, (name, usage)


NOT_OURS = {"--help", "--standalone"}
"""Options an option's help may name that its command does not have: another command's --help, torchrun's own."""


def test_every_option_names_only_options_its_command_has():
    """An option's help sends the reader to options the command takes: --weights told `probe filters`,
    `activations` and `layers` that 'none' draws from --seed, which none of the three has."""
    foreign = []
    for name, command in cli.commands.items():
        context = click.Context(command, info_name=name, parent=click.Context(cli))
        options = {opt for param in command.params for opt in param.opts} | NOT_OURS
        for param in command.params:
            record = param.get_help_record(context) if isinstance(param, click.Option) else None
            named = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", record[1]) if record else []
            foreign += [f"probe {name} {param.opts[0]}: {word}" for word in named if word not in options]
    assert not foreign, foreign


def test_no_help_shows_a_machine_number():
    """Ranges read as people write them: --seed showed [0<=x<=9223372036854775807] in seven commands."""
    long = []
    for name, command in cli.commands.items():
        context = click.Context(command, info_name=name, parent=click.Context(cli))
        for param in command.params:
            record = param.get_help_record(context) if isinstance(param, click.Option) else None
            long += [f"probe {name} {param.opts[0]}: {n}" for n in re.findall(r"\d{10,}", record[1] if record else "")]
    assert not long, long
