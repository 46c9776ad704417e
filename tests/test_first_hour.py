"""What a new user meets first: error lines that name the option they typed, one wording per refusal."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

import probe
from outputnets import head
from probe import objectives as O
from probe.cli.main import cli
from probe.errors import ProbeUsageError
from test_pages import BROWSER, browser_dom

MAPS = "outputnets:head('maps')"  # an output of several maps (an FPN backbone's): no tensor is the prediction
HEAD = "output holds no tensor known to be its prediction"


def _refusal(*args: str) -> str:
    """The error line of ``probe ARGS`` (exit code 2, one ``Error:`` line naming an option)."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_the_output_that_holds_no_prediction_is_refused_in_one_wording_naming_each_callers_option():
    image = torch.rand(3, 16, 16)
    with pytest.raises(ProbeUsageError) as maximized:
        probe.maximize(head("maps"), O.class_logit(0), steps=1, image_size=16)
    with pytest.raises(ProbeUsageError) as dreamed:
        probe.dream(head("maps").eval(), image, layers=["output"], octaves=1, steps=1)
    assert (maximized.value.param, dreamed.value.param) == ("objective", "layer")
    first, second = str(maximized.value), str(dreamed.value)
    assert first.startswith(f"Head's {HEAD}") and second.startswith(f"Head's {HEAD}")  # dream's began "the model's"
    assert first.split(", so ")[0] == second.split(", so ")[0]
    assert "--layer" in second and "dreamed on" in second


@pytest.mark.parametrize(("args", "option"), [
    (["--objective", "class"], "--objective"),
    (["--layer", "output"], "--layer"),  # named --objective: the user asked for a layer
    (["--target", "output:0"], "--target"),
])
def test_maximize_on_an_output_without_a_prediction_names_the_option_that_asked_for_it(args, option):
    line = _refusal("maximize", "--model", MAPS, "--size", "16", "--steps", "1", *args)
    assert line.startswith(f"Error: Invalid value for '{option}'") and HEAD in line, line


def test_a_layer_named_by_target_is_refused_naming_target():
    line = _refusal("maximize", "--target", "conv9:0", "--steps", "1")  # named --layer, which was never typed
    assert line.startswith("Error: Invalid value for '--target'") and "did you mean 'conv2'" in line, line
    line = _refusal("maximize", "--layer", "conv9", "--steps", "1")
    assert line.startswith("Error: Invalid value for '--layer'"), line


def test_dream_on_an_output_without_a_prediction_names_layer():
    line = _refusal("dream", "digits:3", "--model", MAPS, "--layer", "output", "--octaves", "1", "--steps", "1",
                    "--size", "16")
    assert line.startswith("Error: Invalid value for '--layer'") and HEAD in line and "dreamed on" in line, line


def test_a_missing_weights_file_is_told_as_it_is_not_as_an_offline_download(tmp_path):
    line = _refusal("style", "digits:3", "digits:5", "--model", "shapes", "--weights", str(tmp_path / "no.pt"))
    assert "does not exist" in line and "offline" not in line, line  # style appended its offline advice to it


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_an_overview_plot_is_drawn_at_its_own_size_not_stretched_to_the_page(tmp_path):
    # every extra (prediction chart, history, contact sheet) was stretched to the page's width: a 420 px bar
    # chart of five classes drawn 1200 px wide in a 1280 px window, its labels three times their size
    from PIL import Image

    from probe.gallery import Gallery

    folder = tmp_path / "run"
    folder.mkdir()
    gallery = Gallery(folder, command="attribute", title="t")
    gallery.add(Image.new("L", (28, 28)), "a.png", "a")
    gallery.add_extra("chart.png", "a chart", image=Image.new("RGB", (420, 220), "white"))
    gallery.write()
    dom = browser_dom(folder / "index.html", """window.addEventListener('load', function () {
      var img = document.querySelector('.extras img[src="chart.png"]');
      document.body.setAttribute('data-width', Math.round(img.getBoundingClientRect().width)); });""")
    width = re.search(r'data-width="(\d+)"', dom)
    assert width is not None and int(width.group(1)) <= 422, dom[-400:]  # its own width and a 1 px border


@pytest.mark.parametrize(("mark", "text"), [(371.1, "371.1 \u2192"), (-500.0, "\u2190 \u2212500"), (-50.0, "\u221250")])
def test_an_atlas_histogram_labels_its_synthetic_mark_and_says_when_it_lies_off_the_scale(mark, text):
    # digits conv2 unit 7: the dataset spans -106 to -18, the synthetic image scores 371; its red line was
    # drawn at -18, the best example's place, with no value
    from probe.gallery.atlas import histogram_svg

    svg = histogram_svg({"start": -106.0, "width": 8.8, "counts": [1, 3, 9, 4, 2, 1, 1, 1, 1, 1]}, mark=mark)
    assert f">{text}</text>" in svg, svg[-300:]


def test_a_maximize_gallerys_title_tells_its_penalties_and_parametrization_apart(tmp_path):
    # 'digits fc2 (class, robust)' headed the unconstrained classes and the L1 ones alike, and a MACO render
    # was titled 'robust' only, the preset whose Fourier parametrization it replaced
    digits = probe.load_model("digits")
    titles = {}
    for name, objective, param in (("l1", O.class_logit([0, 1]) - 0.3 * O.l1(), None), ("maco", "conv2:7", "maco")):
        probe.maximize(digits, objective, steps=2, param=param).save(tmp_path / name)
        titles[name] = re.search(r"<h1>([^<]*)</h1>", (tmp_path / name / "index.html").read_text()).group(1)
    assert titles == {"l1": "digits output (class, robust, L1 0.3)", "maco": "digits conv2 (channel, robust, maco)"}
