"""probe activations / filters / attribute through click: galleries written, usage errors exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from probe.cli.main import cli


@pytest.fixture
def run(tmp_path):
    def invoke(*args: str):
        return CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])

    return invoke


def test_activations_all_layers(run, tmp_path):
    result = run("activations", "digits:0", "--all")
    assert result.exit_code == 0, result.output
    assert "prediction 0 (" in result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["command"] == "activations" and manifest["image"] == "digits:0"
    assert "contact-sheet-conv2.png" in manifest["sheets"] and manifest["channels"]["conv2"] == 50


def test_attribute_all_methods(run, tmp_path):
    result = run("attribute", "digits:0", "--method", "all", "--steps", "8", "--samples", "2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["methods"] == ["saliency", "integrated-gradients", "smoothgrad", "guided-backprop", "gradcam"]
    assert (tmp_path / "out" / "gradcam-overlay.png").exists()


def test_filters_of_the_xo_net(run, tmp_path):
    result = run("filters", "--model", "xo")
    assert result.exit_code == 0, result.output
    assert "4 kernels" in result.output
    assert len(json.loads((tmp_path / "out" / "manifest.json").read_text())["items"]) == 4


@pytest.mark.parametrize("args, option, message", [
    (["attribute", "digits:0", "--target", "12"], "--target", "out of range (0 to 9)"),
    (["attribute", "digits:0", "--method", "gradcam", "--layer", "fc1"], "--layer", "spatial output"),
    (["attribute", "digits:0", "--method", "deconvnet"], "--method", "deconvnet"),
    (["activations", "digits:0", "--layer", "conv3"], "--layer", "did you mean"),
    (["filters", "--layer", "fc2"], "--layer", "not a 2-D convolution"),
    (["attribute", "digits:0", "--method", "occlusion", "--window", "4", "--stride", "9"], "--stride",
     "larger than the window (4x4 px"),  # captum's AssertionError, a traceback
    (["attribute", "digits:0", "--method", "saliency", "--steps", "9"], "--steps", "only by integrated-gradients"),
    (["attribute", "digits:0", "--method", "gradcam", "--samples", "4"], "--samples", "smoothgrad and gradient-shap"),
    (["attribute", "digits:0", "--method", "lrp", "--baseline", "0.5"], "--baseline", "no such method runs here"),
])
def test_usage_errors_exit_2(run, args, option, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert option in result.output and message in result.output


def test_index_renders_in_headless_chromium(run, tmp_path):
    browser = next((shutil.which(n) for n in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if browser is None:
        pytest.skip("no Chromium installed")
    assert run("attribute", "xo:o", "--model", "xo", "--method", "gradcam").exit_code == 0
    page = (tmp_path / "out" / "index.html").resolve()
    dom = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=60).stdout
    assert "gradcam.png" in dom and "<img" in dom
