"""The probe command group: version, layers, gallery, and usage errors with exit code 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from probe import __version__
from probe.cli.main import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_every_command_has_help_with_an_example(runner):
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, f"probe {name} --help shows no example"


def test_layers_of_a_torchvision_model_offline(runner):
    result = runner.invoke(cli, ["layers", "squeezenet1_1", "--weights", "none", "--size", "64", "--leaves"])
    assert result.exit_code == 0, result.output
    assert "features.0" in result.output and "Conv2d" in result.output and "[64, 31, 31]" in result.output


def test_unknown_model_is_a_usage_error(runner):
    result = runner.invoke(cli, ["layers", "resnet05"])
    assert result.exit_code == 2
    assert "unknown model 'resnet05'" in result.output and "did you mean 'resnet50'" in result.output


def test_pretrained_offline_is_a_usage_error_naming_weights(runner):
    result = runner.invoke(cli, ["layers", "squeezenet1_1", "--weights", "default"])
    assert result.exit_code == 2 and "--weights" in result.output and "weights none" in result.output


def test_bad_size_names_the_option(runner):
    result = runner.invoke(cli, ["layers", "squeezenet1_1", "--size", "abc"])
    assert result.exit_code == 2 and "--size" in result.output


def test_gallery_index_command(runner, tmp_path):
    result = runner.invoke(cli, ["gallery", str(tmp_path)])
    assert result.exit_code == 0 and "0 run(s) indexed" in result.output
    assert (tmp_path / "index.html").exists()
