"""probe atlas in one process: the dataset pass's merges, receptive fields, the CLI, the site, resuming, refusals."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import probe
from probe.atlas import receptive_field
from probe.atlas.examples import BINS, Histogram, TopK, merge_passes, UnitExamples
from probe.atlas.plan import make_chunks
from probe.cli.main import cli
from probe.gallery.atlas import write_site

from pagecheck import broken_links, reprs

SMALL = ["--model", "digits", "--layers", "conv1,conv2", "--dataset", "zoo", "--steps", "24", "--limit", "240",
         "--examples", "4", "--chunk", "25"]


def _atlas(tmp_path, *extra: str, out: str = "atlas"):
    return CliRunner().invoke(cli, ["atlas", *SMALL, *extra, "--out", str(tmp_path / out)])


@pytest.fixture(scope="module")
def small_atlas(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atlas")
    result = _atlas(folder)
    assert result.exit_code == 0, result.output
    return folder / "atlas", result


def test_topk_merge_is_independent_of_sharding():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (3, 40), generator=g).float()  # many ties
    position = torch.randint(0, 9, (3, 40), generator=g)
    index = torch.arange(40).expand(3, -1)
    whole = TopK.empty(3, 5).add(scores, index, position)
    for order in ([0, 1], [1, 0]):
        parts = [slice(0, 17), slice(17, 40)]
        top = TopK.empty(3, 5)
        for part in (parts[i] for i in order):
            top = top.add(scores[:, part], index[:, part], position[:, part])
        assert torch.equal(top.index, whole.index) and torch.equal(top.scores, whole.scores)
    expected = sorted(range(40), key=lambda i: (-scores[0, i].item(), i))[:5]
    assert whole.index[0].tolist() == expected


def test_histogram_merges_exactly_and_holds_every_value():
    g = torch.Generator().manual_seed(1)
    values = torch.randn(2, 300, generator=g, dtype=torch.float64) * torch.tensor([[3.0], [700.0]])
    whole = Histogram.empty(2).add(values)
    a = Histogram.empty(2).add(values[:, :10])  # a small range first, widened later
    b = Histogram.empty(2).add(values[:, 10:])
    assert torch.equal(a.merge(b).counts, whole.counts) and torch.equal(b.merge(a).counts, whole.counts)
    assert whole.counts.sum(1).tolist() == [300, 300]
    shown = whole.unit(1)
    lo, width = shown["start"], shown["width"]
    assert values[1].min() >= lo and values[1].max() < lo + width * len(shown["counts"])
    assert values[1].abs().max() < 2.0 ** int(whole.exponent[1]) <= 2 * values[1].abs().max() + 1e-9
    assert whole.counts.shape[1] == 2 * BINS


def test_merge_passes_sums_images_seen():
    part = {"c": UnitExamples("c", TopK.empty(1, 2).add(torch.tensor([[1.0]]), torch.tensor([[0]]), torch.tensor([[3]])),
                              Histogram.empty(1).add(torch.tensor([[1.0]])), 4, 1)}
    other = {"c": UnitExamples("c", TopK.empty(1, 2).add(torch.tensor([[2.0]]), torch.tensor([[1]]), torch.tensor([[5]])),
                               Histogram.empty(1).add(torch.tensor([[2.0]])), 4, 1)}
    merged = merge_passes([part, other])["c"]
    assert merged.seen == 2 and merged.top.index[0].tolist() == [1, 0] and merged.top.position[0].tolist() == [5, 3]


def _walked(layers) -> tuple[int, int]:
    """The textbook receptive field of a chain of conv/pool layers: (size, stride)."""
    size, jump = 1, 1
    for layer in layers:
        kernel = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
        dilation = layer.dilation if isinstance(layer.dilation, int) else layer.dilation[0]
        stride = layer.stride if isinstance(layer.stride, int) else layer.stride[0]
        size += (kernel - 1) * dilation * jump
        jump *= stride
    return size, jump


def test_receptive_field_matches_the_walk_along_strides_kernels_and_dilations():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 4, 3, dilation=2, padding=2), nn.ReLU(), nn.Conv2d(4, 3, 5, stride=1))
    loaded = probe.load_model(net)
    field_ = receptive_field(loaded, "5", (64, 64))
    walked = _walked([net[0], net[2], net[3], net[5]])
    assert field_.size == (walked[0], walked[0]) and field_.stride == (walked[1], walked[1])
    digits = receptive_field(probe.load_model("digits"), "conv2")
    assert digits.size == (8, 8) and digits.stride == (2, 2) and digits.box(10, 10) == (20, 20, 28, 28)


def test_chunks_are_deterministic():
    chunks = make_chunks(("conv1", "conv2"), (25, 50), 16)
    assert [(c.layer, c.start, c.stop) for c in chunks][:3] == [("conv1", 0, 16), ("conv1", 16, 25), ("conv2", 0, 16)]
    assert chunks[-1].name == "conv2-0048-0049" and len(chunks) == 6


def test_cli_writes_the_site(small_atlas):
    folder, result = small_atlas
    assert "site:" in result.output
    atlas = json.loads((folder / "atlas.json").read_text())
    layers = {layer["name"]: layer for layer in atlas["layers"]}
    assert list(layers) == ["conv1", "conv2"] and len(layers["conv2"]["units"]) == 50
    assert layers["conv2"]["receptive_field"]["size"] == [8, 8] and layers["conv2"]["dataset_images"] == 240
    unit = layers["conv2"]["units"][7]
    assert len(unit["examples"]) == 4 and sum(unit["histogram"]["counts"]) == 240
    assert [e["score"] for e in unit["examples"]] == sorted((e["score"] for e in unit["examples"]), reverse=True)
    assert layers["conv2"]["above_one"] == 50  # every filter's synthetic image beats its best digit
    crop = Image.open(folder / unit["examples"][0]["file"])
    assert crop.size[0] <= 8 and crop.size[1] <= 8  # the strokes, not the 28x28 digit
    assert Image.open(folder / unit["synthetic"][0]).size == (28, 28)
    for page in ("index.html", "layer-conv2.html", "conv2-0007.html"):
        assert (folder / page).read_text().startswith("<!DOCTYPE html>")
    assert "sortUnits('ratio')" in (folder / "layer-conv2.html").read_text()
    assert broken_links(folder) == []
    for page in folder.glob("*.html"):
        assert reprs(page.read_text()) == [], page.name


def test_rerun_renders_nothing_and_other_settings_are_refused(small_atlas, tmp_path):
    folder, _ = small_atlas
    copy = tmp_path / "atlas"
    shutil.copytree(folder, copy)
    records = sorted((folder / "records").glob("conv*.json"))
    (copy / "records" / records[1].name).unlink()  # as if killed before this chunk finished
    stamps = {p.name: (copy / "records" / p.name).stat().st_mtime_ns for p in records if p != records[1]}
    again = _atlas(tmp_path)
    assert again.exit_code == 0, again.output
    assert "1 chunk(s) rendered now, 2 kept" in again.output
    assert all((copy / "records" / name).stat().st_mtime_ns == stamp for name, stamp in stamps.items())
    for image in (folder / "images").glob("*.png"):
        assert (copy / "images" / image.name).read_bytes() == image.read_bytes()
    other = _atlas(tmp_path, "--seed", "1")
    assert other.exit_code == 2 and "--out" in other.output and "other settings" in other.output
    assert "seed: 0 (there) vs 1 (now)" in other.output


@pytest.mark.parametrize("args, option, message", [
    (["--layers", "conv3"], "--layers", "did you mean"),
    (["--layers", "fc1"], "--layers", "no (C, H, W) map"),
    (["--dataset", "/nonexistent/folder"], "--dataset", "not a folder"),
])
def test_usage_errors_exit_2(tmp_path, args, option, message):
    result = CliRunner().invoke(cli, ["atlas", "--steps", "2", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert option in result.output and message in result.output and "Traceback" not in result.output


def test_a_folder_that_is_not_an_atlas_is_left_alone(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["atlas", "--steps", "2", "--out", str(tmp_path / "out"), "--force"])
    assert result.exit_code == 2 and "holds no atlas" in result.output
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_site_escapes_every_string(tmp_path):
    nasty = "<script>alert(1)</script>"
    unit = {"unit": 0, "page": "u.html", "synthetic": ["s.png"], "scores": [1.0], "score": 1.0, "best": 0.5,
            "median": 0.0, "ratio": 2.0, "spread": 0.0, "histogram": {"start": 0.0, "width": 1.0, "counts": [1, 2]},
            "examples": [{"index": 0, "name": nasty, "file": "e \"x\".png", "y": 0, "x": 0, "box": [0, 0, 1, 1],
                          "score": 0.5}]}
    atlas = {"settings": {"model": nasty}, "layers": [{"name": nasty, "page": "l.html", "units": [unit],
                                                        "receptive_field": {"size": [1, 1], "stride": [1, 1]},
                                                        "above_one": 1, "median_ratio": 2.0}]}
    write_site(tmp_path, atlas)
    for page in ("index.html", "l.html", "u.html"):
        assert nasty not in (tmp_path / page).read_text()
    assert "e%20%22x%22.png" in (tmp_path / "u.html").read_text()


def _unit(number: int, **figures) -> dict:
    """A hand-made unit of ``atlas.json`` (one synthetic image, one example); ``figures`` override its numbers."""
    unit = {"unit": number, "page": f"u{number}.html", "synthetic": ["s.png"], "scores": [1.0], "score": 1.0,
            "best": 0.5, "median": 0.0, "ratio": 2.0, "spread": 0.0,
            "histogram": {"start": -1234.5678, "width": 0.30000000000000004, "counts": [1, 2]},
            "examples": [{"index": 0, "name": "train 0 (3)", "file": "e.png", "y": 1, "x": 2, "box": [0, 0, 1, 1],
                          "score": 0.5}]}
    return {**unit, **figures}


def test_site_formats_every_figure_for_people(tmp_path):
    units = [_unit(0, ratio=-3.8720491234567, score=-109.23456789012345, best=12345.678, median=-130.0),
             _unit(1, ratio=None, best=-7.0, median=-7.0), _unit(2, ratio=27.41714450171142, spread=0.1234567)]
    units[2]["synthetic"], units[2]["scores"] = ["s.png", "s.png"], [1.0, 0.999999999]
    atlas = {"settings": {"model": "digits", "dataset_size": 1797, "per_unit": 1, "steps": 256},
             "layers": [{"name": "conv2", "page": "l.html", "units": units, "above_one": 1, "median_ratio": 27.41714450171142,
                         "receptive_field": {"size": [8, 8], "stride": [2, 2]}}]}
    write_site(tmp_path, atlas)
    pages = {page: (tmp_path / page).read_text() for page in ("index.html", "l.html", "u0.html", "u1.html", "u2.html")}
    for name, page in pages.items():
        assert reprs(page) == [], name
    layer, unit = pages["l.html"], pages["u0.html"]
    assert "unit 0 &middot; \u22123.87\u00d7" in layer and "unit 1 &middot; \u2014<" in layer and "27.4\u00d7" in layer
    assert 'data-ratio="-3.8720491234567"' in layer and 'data-ratio=""' in layer  # the script sorts on every digit
    assert "8\u00d78" in layer and "<td>27.4\u00d7</td>" in pages["index.html"] and "1,797" in pages["index.html"]
    assert "<td>12,346</td>" in unit and "<td>\u2212109.2</td>" in unit and "\u2014 (one image)" in unit
    assert "a = 0.5 at row 1, column 2" in unit
    assert "\u22121,235" in unit and "<td>0.1235</td>" in pages["u2.html"]  # histogram axis; a real spread


def test_layer_page_renders_in_headless_chromium(small_atlas):
    browser = next((shutil.which(n) for n in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
                    if shutil.which(n)), None)
    if browser is None:
        pytest.skip("no Chromium installed")
    folder, _ = small_atlas
    page = (folder / "layer-conv2.html").resolve()
    dom = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--dump-dom", page.as_uri() + "#sort=ratio"],
                         capture_output=True, text=True, timeout=60).stdout
    assert dom.count("data-ratio=") == 50 and "conv2-0007.html" in dom and "images/conv2-0007-s0.png" in dom
    shown = [float(v) for v in re.findall(r'data-ratio="([^"]+)"', dom)]
    assert shown == sorted(shown, reverse=True) and shown != sorted(shown)  # the script sorted the grid
    assert 'data-sort="ratio" aria-pressed="true"' in dom and 'data-sort="unit" aria-pressed="false"' in dom


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def test_all_layers_are_convolutions_and_blocks_but_not_sequentials():
    from probe.atlas import atlas_layers

    net = nn.Sequential(nn.Conv2d(1, 2, 3), _Block(), nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU()), nn.Flatten(),
                        nn.Linear(3 * 6 * 6, 2))
    loaded = probe.LoadedModel("net", net, probe.Preprocess((0.0,), (1.0,), 1, (8, 8)))
    assert atlas_layers(loaded, "all") == [("0", 2), ("1", 2), ("1.conv", 2), ("2.0", 3)]
    assert atlas_layers(probe.load_model("digits"), "all") == [("conv1", 25), ("conv2", 50)]


def test_datasets_from_folders_flat_and_by_class(tmp_path):
    from probe.atlas.data import open_dataset

    loaded = probe.load_model("digits")
    for sub in ("flat", "classes/a", "classes/b"):
        (tmp_path / sub).mkdir(parents=True)
        for number in range(2):
            Image.new("RGB", (40, 30), (number * 200, 0, 0)).save(tmp_path / sub / f"{number}.png")
    flat = open_dataset(tmp_path / "flat", loaded)
    assert flat.names == ["0.png", "1.png"] and flat.load([1]).shape == (1, 1, 28, 28)
    by_class = open_dataset(tmp_path / "classes", loaded, limit=3)
    assert by_class.names == ["a/0.png", "a/1.png", "b/0.png"]
    assert float(by_class.load([0, 1]).max()) > 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(probe.ProbeUsageError, match="holds no images"):
        open_dataset(tmp_path / "empty", loaded)
    # hidden files and folders are no images nor classes: macOS's resource forks, a notebook's checkpoints
    for folder in ("flat", "classes/a"):
        (tmp_path / folder / "._0.png").write_bytes(b"\x00\x05\x16\x07 not an image")
    (tmp_path / "flat" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "classes" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "classes" / ".ipynb_checkpoints" / "x.png")
    assert open_dataset(tmp_path / "flat", loaded).names == ["0.png", "1.png"]
    assert open_dataset(tmp_path / "classes", loaded).names == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]


def test_python_api_several_images_per_unit_differ(tmp_path):
    from probe.atlas import build_atlas

    summary = build_atlas("digits", out=tmp_path / "k2", layers=["conv1"], dataset="zoo", limit=50, examples=2,
                          per_unit=2, steps=6, chunk=25)
    assert summary.rank == 0 and summary.world == 1 and summary.rendered == ["conv1-0000-0024"]
    atlas = json.loads((tmp_path / "k2" / "atlas.json").read_text())
    assert atlas["settings"]["diversity"] == 10.0
    units = atlas["layers"][0]["units"]
    assert all(len(u["synthetic"]) == 2 and u["spread"] > 0 for u in units)
    first, second = (Image.open(tmp_path / "k2" / f).tobytes() for f in units[0]["synthetic"])
    assert first != second


def test_probe_gallery_lists_an_atlas(small_atlas, tmp_path):
    folder, _ = small_atlas
    shutil.copytree(folder, tmp_path / "runs" / "atlas-digits")
    (tmp_path / "runs" / ".atlas-digits.partial-x").mkdir()  # a staging folder is never listed
    shutil.copy(folder / "atlas.json", tmp_path / "runs" / ".atlas-digits.partial-x" / "atlas.json")
    result = CliRunner().invoke(cli, ["gallery", str(tmp_path / "runs")])
    assert result.exit_code == 0 and "1 run(s)" in result.output, result.output
    page = (tmp_path / "runs" / "index.html").read_text()
    assert '<a href="atlas-digits/index.html"><b>atlas</b>: atlas-digits</a>' in page and "units: 75" in page
    assert 'src="atlas-digits/images/conv1-0000-s0.png"' in page and "layers: conv1, conv2" in page
    assert broken_links(tmp_path / "runs") == [] and reprs(page) == []
    # the atlas's own page links back, as a run's does (it had no way back to the index)
    assert '<nav><a href="../index.html">&larr; all runs</a></nav>' in (tmp_path / "runs" / "atlas-digits" / "index.html").read_text()


def test_an_atlas_written_below_a_gallery_index_links_back_to_it(tmp_path):
    """An atlas written (or rewritten, on resume) under a folder that ``probe gallery`` indexed gets the
    link back at once, not only at the next ``probe gallery``."""
    (tmp_path / "runs").mkdir()
    assert CliRunner().invoke(cli, ["gallery", str(tmp_path / "runs")]).exit_code == 0
    result = _atlas(tmp_path, "--steps", "1", "--limit", "8", "--examples", "1",
                    out="runs/atlas")
    assert result.exit_code == 0, result.output
    assert '<nav><a href="../index.html">&larr; all runs</a></nav>' in (tmp_path / "runs" / "atlas" / "index.html").read_text()


def test_every_crop_holds_its_box_of_its_dataset_image(small_atlas):
    """Units that share a crop (image, box) share its one file, which holds that box of that image."""
    import numpy as np

    from probe.atlas.data import open_dataset
    from probe.images import to_pil

    folder, _ = small_atlas
    atlas = json.loads((folder / "atlas.json").read_text())
    data = open_dataset("zoo", probe.load_model("digits"), limit=240)
    examples = [e for layer in atlas["layers"] for unit in layer["units"] for e in unit["examples"]]
    shared = {(e["index"], tuple(e["box"])) for e in examples}
    assert len(shared) < len(examples) == 300  # some are shared
    assert len({e["file"] for e in examples}) == len(shared) == len(list((folder / "images").glob("x*.png")))  # one file each
    for example in examples:
        top, left, bottom, right = example["box"]
        expected = np.asarray(to_pil(data.load([example["index"]])[0][:, top:bottom, left:right]))
        assert np.array_equal(np.asarray(Image.open(folder / example["file"])), expected), example["file"]


def test_ranks_write_disjoint_shares_of_the_crops_that_together_equal_one_process(tmp_path):
    from probe.atlas.data import AtlasData
    from probe.atlas.runner import _write_crops

    images = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    data = AtlasData("test", [f"i{n}" for n in range(5)], 3, (8, 8), tensor=images)
    examples = [{"index": n % 5, "file": f"images/u-{n}.png", "box": [n % 3, 0, 8, 4 + n % 4]} for n in range(12)]
    record = {"layers": {"a": {"units": [{"examples": examples[:6]}, {"examples": examples[6:]}]}}}
    _write_crops(data, record, tmp_path / "one")
    written = []
    for rank in range(3):
        _write_crops(data, record, tmp_path / f"rank{rank}", rank, 3)
        written.append({p.name for p in (tmp_path / f"rank{rank}" / "images").glob("*.png")})
    assert sum(len(names) for names in written) == 12 == len(set().union(*written))  # disjoint, complete
    for rank, names in enumerate(written):
        for name in names:
            assert (tmp_path / f"rank{rank}" / "images" / name).read_bytes() == (tmp_path / "one" / "images" / name).read_bytes()


def test_a_unit_whose_image_never_moved_is_flagged_in_its_record_and_pages(tmp_path):
    """A dead unit's synthetic image is its starting noise (probe.maximize's settings["unmoved"]); the atlas showed
    it like any other, its score the noise's."""
    import atlasnets
    from probe.atlas import build_atlas

    images = tmp_path / "images"
    images.mkdir()
    for number in range(3):
        Image.new("RGB", (16, 16), (80 * number, 40, 200 - 60 * number)).save(images / f"{number}.png")
    folder = tmp_path / "atlas"
    summary = build_atlas(probe.load_model(atlasnets.dead(), input_size=16), out=folder, layers=["relu"],
                          dataset=images, examples=1, steps=2, chunk=2, device="cpu")
    assert summary.unmoved == ["relu:1"]
    record = json.loads((folder / "records" / "relu-0000-0001.json").read_text())
    assert [u["unmoved"] for u in record["units"]] == [[], [0]]
    atlas = json.loads((folder / "atlas.json").read_text())
    layer = atlas["layers"][0]
    assert [u["unmoved"] for u in layer["units"]] == [[], [0]] and layer["unmoved"] == 1
    pages = {page.name: page.read_text() for page in folder.glob("*.html")}
    assert "never changed from its starting noise" in pages["relu-0001.html"]
    assert "never moved" not in pages["relu-0000.html"]
    cards = re.findall(r"<figcaption>(unit \d+[^<]*(?:<span[^>]*>[^<]*</span>)?)</figcaption>", pages["layer-relu.html"])
    assert [("never moved" in card) for card in cards] == [False, True]
    assert "1 of 2 units never moved" in pages["layer-relu.html"]
    assert '<th>never moved</th>' in pages["index.html"] and '<span class="unmoved">1</span>' in pages["index.html"]
    assert broken_links(folder) == [] and all(reprs(page) == [] for page in pages.values())


def test_a_layer_that_runs_twice_is_refused_naming_layers(tmp_path):
    """Refused before anything is written, naming --layers (capture's per-call error, raised mid-run, named
    ``layer`` and left atlas-run.json behind); ``all`` passes over such layers."""
    (tmp_path / "twice.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass Twice(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.conv = nn.Conv2d(3, 3, 3, padding=1)\n"
        "        self.once = nn.Conv2d(3, 3, 3, padding=1)\n"
        "        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))\n\n"
        "    def forward(self, x):\n        return self.head(self.once(self.conv(self.conv(x))))\n\n\n"
        "def build():\n    return Twice().eval()\n")
    spec = f"{tmp_path / 'twice.py'}:build"
    result = CliRunner().invoke(cli, ["atlas", "--model", spec, "--layers", "conv", "--dataset", "skimage",
                                      "--limit", "2", "--steps", "1", "--input-size", "16",
                                      "--out", str(tmp_path / "atlas")])
    assert result.exit_code == 2 and "Invalid value for '--layers'" in result.output, result.output
    assert "runs 2 times in one forward pass" in result.output and not (tmp_path / "atlas").exists()
    from probe.atlas.runner import atlas_layers

    assert atlas_layers(probe.load_model(spec, input_size=16), "all") == [("once", 3)]


def test_photos_a_model_cannot_take_are_refused_naming_dataset(tmp_path):
    """scikit-image's RGB photos for a 4-channel model: the conversion's refusal named no option."""
    (tmp_path / "four.py").write_text("from torch import nn\n\n\ndef build():\n    return nn.Sequential(nn.Conv2d(4, 3, 3), "
                                      "nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).eval()\n")
    result = CliRunner().invoke(cli, ["atlas", "--model", f"{tmp_path / 'four.py'}:build", "--layers", "0", "--dataset",
                                      "skimage", "--steps", "1", "--input-size", "16", "--out", str(tmp_path / "atlas")])
    assert result.exit_code == 2 and "Invalid value for '--dataset': --dataset skimage: cannot convert an image with 3 " \
        "channels to 4" in result.output, result.output
    assert not (tmp_path / "atlas").exists()


def test_the_atlas_files_get_a_new_files_permissions_not_a_temporary_files(small_atlas):
    """Written through a temporary file (mkstemp: 0600), then renamed: others could not read a shared atlas."""
    import stat

    from probe.gallery.files import process_umask

    folder, _ = small_atlas
    files = [folder / "atlas.json", *sorted((folder / "records").glob("*.json"))[:1], *sorted(folder.rglob("*.png"))[:2]]
    assert len(files) == 4
    assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o666 & ~process_umask()}


def test_counts_that_cannot_fit_are_refused_before_any_work_and_examples_stop_at_the_dataset(tmp_path):
    huge = "2147483647"
    tiny = ["atlas", "--layers", "conv1", "--max-units", "2", "--steps", "2", "--limit", "12"]
    refused = CliRunner().invoke(cli, [*tiny, "--per-unit", huge, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 1 and "lower --per-unit" in refused.output, refused.output  # it froze
    assert not (tmp_path / "a").exists()
    many = CliRunner().invoke(cli, [*tiny, "--examples", huge, "--out", str(tmp_path / "b")])
    assert many.exit_code == 0, many.output  # units x 2**31 examples ran out of memory: 12 images are all there are


def test_writing_the_site_marks_progress_after_every_page(small_atlas, tmp_path):
    # a distributed run's rank 0 made no progress mark while it wrote the pages: a site of many pages, written
    # for longer than --timeout, would have been taken for a hung rank and its process ended
    folder, _ = small_atlas
    atlas = json.loads((folder / "atlas.json").read_text())
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    ticks = []
    write_site(copy, atlas, tick=lambda: ticks.append(1))
    assert len(ticks) == sum(len(layer["units"]) for layer in atlas["layers"]) > 0


def test_a_file_over_the_process_size_limit_gets_advice(tmp_path, monkeypatch):
    """EFBIG (``ulimit -f``) was not among the disk failures: 'Error: File too large' and nothing to do."""
    import errno

    import probe.atlas.runner as runner

    def too_large(*args, **kwargs):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(runner, "write_png", too_large)
    result = CliRunner().invoke(cli, ["atlas", "--layers", "conv1", "--steps", "1", "--max-units", "1",
                                      "--out", str(tmp_path / "atlas")])
    assert result.exit_code == 1 and "ulimit -f" in result.output and "Traceback" not in result.output, result.output


def test_the_index_says_what_its_figures_mean(small_atlas):
    """The index's 'median ratio' and 'never moved' columns were not explained anywhere on it."""
    folder, _ = small_atlas
    page = (folder / "index.html").read_text()
    assert "<em>ratio</em> is its synthetic image's degree of activation" in page and "<em>never moved</em>:" in page
