"""``probe dream``: a run writes its gallery; bad requests exit with code 2 and name the option."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from PIL import Image

from probe.cli.dream import parse_channels
from probe.cli.main import cli
from probe.errors import ProbeUsageError

TINY = ["--model", "tinynets:tiny", "--size", "32", "--octaves", "2", "--steps", "2", "--jitter", "4"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.effect_noise((40, 30), 60).convert("RGB").save(path)
    return path


def test_dream_writes_a_gallery(runner, photo, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(cli, ["dream", str(photo), *TINY, "--layer", "conv2", "--channels-last", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "objective" in result.output and "index.html" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "dream" and manifest["layers"] == ["conv2"]
    assert manifest["channels_last"] is True
    assert manifest["octaves"] == 2 and manifest["steps"] == 2 and manifest["image_size"] == [24, 32]
    assert manifest["objective_before"] is not None and manifest["objective_after"] is not None
    assert (out / "dream.png").exists() and (out / "octave-2.png").exists()


def test_frames_guide_tiles_and_weights(runner, photo, tmp_path):
    out = tmp_path / "frames"
    result = runner.invoke(cli, ["dream", "skimage:coffee", *TINY, "--layer", "conv2", "--layer", "conv1",
                                 "--layer-weight", "1", "--layer-weight", "0.5", "--channels", "0-2",
                                 "--guide", str(photo), "--tile", "16", "--frames", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layer_weights"] == [1.0, 0.5] and manifest["channels"] == {"conv2": [0, 1, 2], "conv1": [0, 1, 2]}
    assert manifest["objective"] == "guide" and manifest["tile"] == 16 and manifest["frames"] == 2
    assert manifest["channels_last"] is False
    assert (out / "frame-001.png").exists() and (out / "zoom.gif").exists()
    with Image.open(out / "zoom.gif") as gif:
        assert gif.n_frames == 2


def test_offline_default_model_names_shapes_and_weights_path(runner, photo):
    result = runner.invoke(cli, ["dream", str(photo)])
    assert result.exit_code == 2
    assert "--model shapes" in result.output and "--weights PATH" in result.output
    assert ("probe dream needs trained weights, and googlenet's pretrained ones (--weights default) cannot be "
            "downloaded here") in result.output  # one wording with style's (probe.cli.common.load_pretrained_or_say)


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["--layer", "conv3"], "did you mean 'conv2'"),
        ([], "no default dream layer"),
        (["--layer", "conv2", "--channels", "7"], "out of range"),
        (["--layer", "conv2", "--channels", "a-b"], "--channels"),
        (["--layer", "conv2", "--layer-weight", "1", "--layer-weight", "2"], "--layer-weight"),
        (["--layer", "conv2", "--guide", "nowhere.png"], "--guide"),
        (["--layer", "conv2", "--size", "big"], "--size"),
    ],
)
def test_usage_errors_exit_2(runner, photo, extra, expected):
    result = runner.invoke(cli, ["dream", str(photo), *TINY, *extra])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_unreadable_image_exits_2(runner, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("no image here")
    result = runner.invoke(cli, ["dream", str(broken), *TINY, "--layer", "conv2"])
    assert result.exit_code == 2 and "cannot read image" in result.output and "IMAGE" in result.output


def test_parse_channels():
    assert parse_channels(["0-3", "7", "9"]) == [0, 1, 2, 3, 7, 9]
    assert parse_channels(None) is None
    with pytest.raises(ProbeUsageError):
        parse_channels(["3-1"])


class Bar:
    """Stands in for the tqdm bar: counts what it is told."""

    def __init__(self, total: int, *args, **kwargs) -> None:
        self.total, self.n = total, 0
        BARS.append(self)

    def update(self, count: int) -> None:
        self.n += count

    def set_postfix(self, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


BARS: list[Bar] = []


def test_the_bar_reaches_the_end_when_progress_comes_every_few_steps(runner, photo, tmp_path, monkeypatch):
    import probe.cli.dream
    from probe.dream import run as dream_run

    monkeypatch.setattr(dream_run, "progress_every", lambda device: 3)  # as on CUDA, where it is 16
    monkeypatch.setattr(probe.cli.dream, "progress_bar", Bar)
    BARS.clear()
    result = runner.invoke(cli, ["dream", str(photo), *TINY, "--layer", "conv2", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    [bar] = BARS
    assert bar.total == 4 and bar.n == 4


def test_a_strip_fitted_by_its_longer_side_gets_a_note_not_silence(runner, tmp_path):
    """A 2000x200 strip at --size 256 is 26x256 (HxW): the note says so and what to give instead; an explicit HxW of
    the same size gets none, nor does --quiet (25.6 px rounds to 26)."""
    strip = tmp_path / "strip.png"
    Image.new("RGB", (2000, 200), (120, 80, 40)).save(strip)
    options = [*TINY, "--layer", "conv2", "--octaves", "1"]
    loud = runner.invoke(cli, ["dream", str(strip), *options, "--size", "256", "--out", str(tmp_path / "a")])
    assert loud.exit_code == 0, loud.output
    assert "IMAGE is 26x256 px (HxW) at --size 256" in loud.output and "--size HxW" in loud.output
    for extra, name in ((["--size", "26x256"], "b"), (["--size", "256", "--quiet"], "c")):
        result = runner.invoke(cli, ["dream", str(strip), *options, *extra, "--out", str(tmp_path / name)])
        assert result.exit_code == 0 and "too thin" not in result.output, result.output
