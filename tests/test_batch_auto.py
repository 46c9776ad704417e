"""``batch="auto"``: halving after out-of-memory, and the precision and batch options it works with."""

from __future__ import annotations

import pytest
import torch
from tinynets import tiny_gray

import probe
from probe import objectives as O
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.models import Preprocess, load_model
from probe.runtime import resolve_precision


def gray():
    return load_model(tiny_gray(), preprocess=Preprocess((0.2,), (0.3,), 1, (16, 16)))


def limited(most: int) -> O.Objective:
    """conv2's units 0-5, but a pass of more than ``most`` images runs 'out of memory'."""

    def fn(context):
        if context.batch > most:
            raise torch.OutOfMemoryError(f"CUDA out of memory (fake: {context.batch} images)")
        return O.channel("conv2", range(6))(context)

    return O.Objective(fn, "limited", layers=["conv2"], units=range(6), kind="channel", layer="conv2")


def test_out_of_memory_halves_the_batch_and_gives_the_same_images():
    model = gray()
    halved = probe.maximize(model, limited(3), steps=3, image_size=12, batch="auto")
    assert halved.settings["batch"] == 6  # the plan; the passes that ran were 3 + 3
    direct = probe.maximize(model, limited(3), steps=3, image_size=12, batch=3)
    assert torch.equal(halved.images, direct.images) and torch.equal(halved.history, direct.history)
    with pytest.raises(torch.OutOfMemoryError):  # a batch the user chose is not second-guessed
        probe.maximize(model, limited(3), steps=3, image_size=12, batch=6)
    with pytest.raises(ProbeRuntimeError, match="out of memory with 1 image"):
        probe.maximize(model, limited(0), steps=3, image_size=12, batch="auto")
    with pytest.raises(ProbeUsageError, match="'auto'"):
        probe.maximize(model, limited(3), steps=3, image_size=12, batch="most")


def test_auto_precision_is_fp32_on_the_cpu():
    assert resolve_precision("auto", "cpu") == ("fp32", False)
    assert resolve_precision("auto", "cpu", True) == ("fp32", True)
    assert resolve_precision("bf16", "cpu") == ("bf16", False)
    result = probe.maximize(gray(), O.channel("conv2", 0), steps=2, image_size=12, precision="auto")
    assert result.settings["precision"] == "fp32"


def test_the_cli_takes_batch_auto_or_a_number_and_names_the_option_otherwise(tmp_path):
    import json

    from click.testing import CliRunner

    from probe.cli.main import cli

    args = ["maximize", "--model", "tinynets:tiny", "--size", "16", "--layer", "conv2", "--steps", "2"]
    bad = CliRunner().invoke(cli, [*args, "--batch", "many"])
    assert bad.exit_code == 2 and "--batch" in bad.output and "'auto'" in bad.output
    for extra, batch in ((["--batch", "4"], 4), ([], 6)):  # the default, auto: 64 on the CPU, at most the units
        out = tmp_path / str(batch)
        ran = CliRunner().invoke(cli, [*args, *extra, "--out", str(out)])
        assert ran.exit_code == 0, ran.output
        options = json.loads((out / "manifest.json").read_text())["options"]
        assert options["batch"] == batch and options["precision"] == "fp32"  # auto precision on the CPU: fp32
