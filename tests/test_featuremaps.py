"""Feature maps and filters: oracle equality with probe.record, ordering, errors, galleries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import no_hooks_left

import probe
from probe.errors import ProbeUsageError
from probe.featuremaps import default_layers, feature_maps
from probe.kernels import filters
from probe.reports import filters as filters_report
from probe.reports.filters import kernel_image
from probe.reports.render import value_map


@pytest.fixture(scope="module")
def digits():
    return probe.load_model("digits", device="cpu")


def test_maps_equal_what_record_sees(digits):
    fm = feature_maps(digits, "digits:3", ["conv1", "conv2", "fc1"])
    x = probe.load_image("digits:3").unsqueeze(0)
    with torch.no_grad(), probe.record(digits.module, ["conv2", "fc1"]) as acts:
        logits = digits(x)
    assert torch.equal(fm.maps["conv2"], acts["conv2"][0]) and fm.maps["conv2"].shape == (50, 11, 11)
    assert torch.equal(fm.maps["fc1"], acts["fc1"][0])
    assert torch.allclose(fm.degree["conv2"], acts["conv2"][0].sum(dim=(1, 2)))
    assert fm.prediction.index == int(logits.argmax()) == 3
    assert torch.allclose(fm.prediction.probabilities.sum(), torch.tensor(1.0))


def test_top_orders_by_degree_of_activation(digits):
    fm = feature_maps(digits, "digits:0", "relu2", top=5)
    degree, order = fm.degree["relu2"], fm.order["relu2"]
    assert len(order) == 5 and torch.equal(degree[order], degree.sort(descending=True).values[:5])
    assert feature_maps(digits, "digits:0", "relu2", limit=7).order["relu2"].tolist() == list(range(7))


def test_default_and_all_layers(digits):
    assert default_layers(digits.module) == ["conv1", "conv2"]
    fm = feature_maps(digits, "digits:0", "all")
    assert "flatten" not in fm.maps and list(fm.maps)[:3] == ["conv1", "relu1", "pool1"] and "fc2" in fm.maps


def test_user_module_is_left_as_it_was(model):
    fm = feature_maps(model, torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)), size=16)
    assert set(fm.maps) == {"conv1", "conv2"} and fm.maps["conv2"].shape == (6, 8, 8)
    assert model.training and no_hooks_left(model)


@pytest.mark.parametrize("kwargs, match", [({"layers": "conv3"}, "did you mean 'conv"), ({"top": 0}, "at least 1")])
def test_feature_map_errors(digits, kwargs, match):
    with pytest.raises(ProbeUsageError, match=match):
        feature_maps(digits, "digits:0", **kwargs)


def test_feature_map_gallery(digits, tmp_path):
    fm = feature_maps(digits, "digits:2", ["conv1", "fc1"], top=4)
    manifest = json.loads((fm.save(tmp_path) / "manifest.json").read_text())
    items = [i for i in manifest["items"] if i.get("layer") == "conv1"]
    assert [i["rank"] for i in items] == [0, 1, 2, 3] and items[0]["caption"].startswith("#1 conv1:")
    assert {"prediction.png", "fc1.png"} <= {e["file"] for e in manifest["extras"]}
    assert all((tmp_path / i["file"]).exists() for i in manifest["items"])
    assert manifest["prediction"][0]["label"] == "2"
    assert fm._repr_png_().startswith(b"\x89PNG")


def test_filters_views(digits):
    conv1 = filters(digits)
    assert conv1.layer == "conv1" and conv1.weight.shape == (25, 1, 3, 3) and conv1.view == "single"
    assert torch.equal(conv1.weight, digits.module.conv1.weight.detach())
    assert filters(digits, "conv2").view == "channels"
    mean = filters(digits, "conv2", view="mean")
    assert mean.weight.shape == (50, 1, 3, 3) and mean.view == "single"
    assert torch.allclose(mean.norms, digits.module.conv2.weight.detach().flatten(1).norm(dim=1))
    assert filters("shapes").view == "rgb"


@pytest.mark.parametrize("shape", [(5, 3, 2), (1, 3, 3), (9, 1, 1)])
def test_the_channels_mosaic_is_one_signed_tile_per_input_channel_on_grey_gaps(shape):
    """Pixel for pixel what pasting tile by tile draws: 5 channels of 3x2 in a 3x2 grid, one cell empty."""
    kernel = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    limit = float(kernel.abs().max())
    count, height, width = shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    expected = Image.new("RGB", (columns * (width + 1) - 1, rows * (height + 1) - 1), (60, 60, 60))
    for index in range(count):
        row, column = divmod(index, columns)
        expected.paste(value_map(kernel[index], signed=True, limit=limit), (column * (width + 1), row * (height + 1)))
    assert np.array_equal(np.array(kernel_image(kernel, "channels", limit)), np.array(expected))


def test_a_deep_layers_kernels_draw_in_one_colour_lookup_each(monkeypatch):
    """256 kernels of 256 input channels (wide_resnet50_2's layer2.0.conv2) took minutes drawn tile by tile."""
    calls = []
    monkeypatch.setattr(filters_report, "value_map", lambda *a, **k: calls.append(1) or value_map(*a, **k))
    weight = torch.randn(4, 64, 3, 3, generator=torch.Generator().manual_seed(0))
    result = probe.kernels.Filters(model="m", layer="conv", weight=weight, view="channels",
                                   norms=weight.flatten(1).norm(dim=1))
    assert [e.image.size for e in filters_report.entries(result)] == [(62, 62)] * 4 and len(calls) == 4  # 8x8 tiles of 3 px + gaps, doubled


@pytest.mark.parametrize("kwargs, match", [
    ({"layer": "fc1"}, "is a Linear, not a 2-D convolution; the Conv2d layers are: conv1, conv2"),
    ({"layer": "conv9"}, "did you mean"),
    ({"view": "rgb"}, "needs kernels with 3 input channels"),
    ({"view": "gray"}, "views are: auto, rgb"),
])
def test_filter_errors(digits, kwargs, match):
    with pytest.raises(ProbeUsageError, match=match):
        filters(digits, **kwargs)


def test_kernel_colours_on_a_hand_made_kernel():
    kernel = torch.tensor([[[1.0, 0.0, -1.0]]])
    image = kernel_image(kernel, "single", 1.0)
    red, white, blue = (image.getpixel((x, 0)) for x in range(3))
    assert red[0] > 2 * max(red[1:]) and blue[2] > 2 * max(blue[:2]) and min(white) > 240
    grey = kernel_image(torch.zeros(3, 1, 1), "rgb", 1.0).getpixel((0, 0))
    assert grey == (128, 128, 128)


def test_filter_gallery(digits, tmp_path):
    manifest = json.loads((filters(digits, "conv2").save(tmp_path) / "manifest.json").read_text())
    assert len(manifest["items"]) == 50 and manifest["view"] == "channels" and manifest["kernel_shape"] == [25, 3, 3]
    assert (tmp_path / "conv2-049.png").exists() and (tmp_path / "contact-sheet.png").exists()
