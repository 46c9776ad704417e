"""What the report adapters put before a reader: a notebook's plotting left as it was, probabilities that
keep a digit, a style run's weighted total explained."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import pytest
import torch

import probe
from probe import objectives as O
from probe.gallery.numbers import probability


@pytest.fixture(scope="module")
def styled():
    """One tiny style transfer for the tests of its saved gallery."""
    return probe.style_transfer("shapes", "shapes:circle", "shapes:stripes", steps=1, size=32, seed=0)


@pytest.fixture
def notebook_backend():
    """A backend that is not Agg, as a notebook's inline one is; restored afterwards."""
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield "svg"
    matplotlib.use(before)


def test_saving_results_leaves_a_notebooks_plotting_backend_alone(tmp_path, notebook_backend, styled):
    """maximize's and style's saves called matplotlib.use("Agg") (and left pyplot figures open): every plot
    a notebook drew after result.save() was no longer shown inline."""
    import matplotlib.pyplot as plt

    from probe.reports.render import bar_chart

    probe.maximize("digits", O.channel("conv2", [0]), steps=1, seed=0).save(tmp_path / "max")
    styled.save(tmp_path / "st")
    bar_chart([0.7, 0.3], ["a", "b"], "prediction")  # activations' and attributions' charts
    assert matplotlib.get_backend() == notebook_backend and plt.get_fignums() == []
    assert (tmp_path / "max" / "history.png").is_file() and (tmp_path / "st" / "losses.png").is_file()


def test_a_style_page_says_the_total_is_weighted(tmp_path, styled):
    """The page read 'losses: content 0.049; style 0.47; tv 0.017; total 474' with no weight in sight."""
    page = (styled.save(tmp_path / "st") / "index.html").read_text()
    assert "<td>loss weights</td><td>content: 1; style: 1,000; tv: 1</td>" in page


def test_class_captions_keep_a_digit_of_small_probabilities():
    """With 1,000 classes every image read p=0.00."""
    from probe.reports.maximize import captions

    result = SimpleNamespace(kind="class", units=[0, 1], layer="fc", labels=None, terms={}, main="main",
                             scores=torch.tensor([0.5, -0.2]), probabilities=torch.tensor([0.0012, 0.97]))
    assert [text.split()[-1] for text in captions(result)] == ["p=0.0012", "p=0.97"]
    assert probability(3.4e-7) == "3.4e-7" and probability(1.0) == "1.00" and probability(0.0) == "0.00"
