"""Receptive fields where one box and stride do not hold (clipped fields, tokens, squeeze-excitation), token
layers in the atlas, --max-units, and the fields shared by two gloo processes (torchrun) as one process measures them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import probe
from probe.atlas import receptive_field
from probe.atlas.distributed import Group
from probe.atlas.examples import Histogram, TopK, UnitExamples
from probe.atlas.plan import AtlasSettings
from probe.atlas.receptive import measure_boxes, measure_fields
from probe.atlas.runner import _boxes
from probe.cli.main import cli

import atlasnets
from pagecheck import broken_links, reprs

TESTS = Path(__file__).parent


def _loaded(name: str, size: int = 16) -> probe.LoadedModel:
    return probe.load_model(getattr(atlasnets, name)(), input_size=size)


def _every_position(loaded: probe.LoadedModel, layer: str) -> dict[str, UnitExamples]:
    """A dataset pass result whose one unit's examples sit at every position of ``layer``'s map."""
    with torch.no_grad():
        output = probe.capture(loaded.module, torch.zeros(1, 3, *loaded.preprocess.input_size), [layer])[layer]
    count = output[0, 0].numel()
    top = TopK(torch.zeros(1, count), torch.zeros(1, count, dtype=torch.long), torch.arange(count)[None])
    return {layer: UnitExamples(layer, top, Histogram.empty(1), output.shape[-1], 1)}


def _noise_images(folder: Path, count: int) -> Path:
    """``folder`` with ``count`` seeded 16x16 RGB noise images (a dataset for an atlas)."""
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for number in range(count):
        pixels = (torch.rand(16, 16, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{number}.png")
    return folder


def _settings(layer: str, size: int = 16) -> AtlasSettings:
    return AtlasSettings("net", "random", (layer,), (1,), "test", 1, image_size=(size, size))


def _atlas_fields(loaded: probe.LoadedModel, layer: str, group: Group | None = None) -> list[tuple[tuple[int, ...], ...]]:
    """The (field, crop box) the atlas gives each flat position of ``layer`` (as its examples record does)."""
    merged = _every_position(loaded, layer)
    fields, measured = _boxes(group or Group(), loaded, merged, _settings(layer, loaded.preprocess.input_size[0]))
    field_, width = fields[layer], merged[layer].map_width
    return [(field_.box(*divmod(p, width)),) * 2 if field_.regular else measured[(layer, p)]
            for p in range(merged[layer].top.position.shape[1])]


def _atlas_boxes(loaded: probe.LoadedModel, layer: str, group: Group | None = None) -> list[tuple[int, ...]]:
    """The field the atlas gives each flat position of ``layer``."""
    return [field_ for field_, _ in _atlas_fields(loaded, layer, group)]


def _within(box: tuple[int, ...], outer: tuple[int, ...]) -> bool:
    return outer[0] <= box[0] < box[2] <= outer[2] and outer[1] <= box[1] < box[3] <= outer[3]


def test_a_field_wider_than_the_image_gets_each_positions_own_box():
    """Two 7x7 stride-2 convolutions at 16 px: the field (19 px) is clipped at every position. The stride read from
    two clipped boxes was 1 (resnext50's layer1 at 32 px: 3 instead of 4) and every box was shifted."""
    loaded = _loaded("clipped")
    assert not receptive_field(loaded, "conv2").regular
    boxes = _atlas_boxes(loaded, "conv2")

    def span(j: int) -> tuple[int, int]:  # conv2 output j sees conv1 outputs 2j-3..2j+3 (in 0..7), each 2i-3..2i+3
        first, last = max(0, 2 * j - 3), min(7, 2 * j + 3)
        return max(0, 2 * first - 3), min(16, 2 * last + 4)

    expected = [(span(y)[0], span(x)[0], span(y)[1], span(x)[1]) for y in range(4) for x in range(4)]
    assert boxes == expected
    assert receptive_field(loaded, "conv1").regular  # 7 px inside the image at the centre: one box, stride 2
    assert _atlas_boxes(loaded, "conv1") == measure_boxes(loaded, "conv1", range(64))  # and it holds everywhere


@pytest.mark.parametrize("name, layer", [("tokens", "mix"), ("tokens", "block"), ("excite", "gate")])
def test_token_and_global_layers_get_the_box_each_position_measures_alone(name, layer):
    size = 16 if name == "tokens" else 8  # 16 tokens; an 8x8 gate map
    loaded = _loaded(name, size)
    both = _atlas_fields(loaded, layer)
    assert [both[p] for p in range(0, len(both), 3)] == [measure_fields(loaded, layer, [p])[0]
                                                        for p in range(0, len(both), 3)]
    assert all(_within(box, field_) for field_, box in both)
    boxes = [field_ for field_, _ in both]
    if layer == "mix":  # token p sees its own 4x4 patch
        assert boxes == [(4 * (p // 4), 4 * (p % 4), 4 * (p // 4) + 4, 4 * (p % 4) + 4) for p in range(16)]
    else:  # every token (every position after the gate) sees the whole image
        assert set(boxes) == {(0, 0, size, size)}
    assert not receptive_field(loaded, layer).regular


def test_tokens_normalized_by_batchnorm1d_are_read_channels_last():
    """LeViT normalizes its (N * L, C) flattened tokens with BatchNorm1d, and has no LayerNorm: its token
    layers were read channels-first, 196 'units' that were tokens, 128 'positions' that were channels."""
    from probe.atlas import atlas_layers

    loaded = _loaded("levit")
    assert atlas_layers(loaded, ["embed", "mix", "mix.linear"]) == [("embed", 8), ("mix", 6), ("mix.linear", 6)]
    output = probe.capture(loaded.module, torch.zeros(2, 3, 16, 16), ["mix"])["mix"]
    assert output.shape == (2, 6, 16)


def test_tokens_made_by_functional_code_after_a_convolution_are_read_channels_last():
    """ViT's encoder.dropout, after the patch map is flattened and transposed by functional code, was read
    channels-first: 197 'units' that were tokens."""
    from probe.atlas import atlas_layers

    loaded = _loaded("tokens")
    assert atlas_layers(loaded, ["embed", "drop", "mix"]) == [("embed", 8), ("drop", 8), ("mix", 6)]
    assert probe.capture(loaded.module, torch.zeros(2, 3, 16, 16), ["drop"])["drop"].shape == (2, 8, 16)


def test_a_position_no_pixel_reaches_gets_the_whole_image():
    """ViT's class token before the first attention depends on no pixel: an example there failed the whole
    atlas ('does not depend on the input image'); its crop is the image, its other tokens made its score."""
    loaded = _loaded("class_token")
    boxes = _atlas_boxes(loaded, "mix")
    assert boxes[0] == (0, 0, 16, 16) and boxes[1:] == [(4 * (p // 4), 4 * (p % 4), 4 * (p // 4) + 4, 4 * (p % 4) + 4)
                                                       for p in range(16)]
    constant = probe.load_model(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Flatten()), input_size=4)
    with torch.no_grad():
        constant.module[0].weight.zero_()  # a layer no pixel reaches at all is still refused, naming --layers
    with pytest.raises(probe.ProbeUsageError, match="zero gradient from every pixel") as error:
        receptive_field(constant, "0")
    assert error.value.param == "layers"


def test_fields_leave_the_model_as_they_found_it():
    loaded = _loaded("tokens")
    loaded.module.train()
    flags = [p.requires_grad for p in loaded.module.parameters()]
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    _atlas_boxes(loaded, "block")
    assert loaded.module.training and [p.requires_grad for p in loaded.module.parameters()] == flags
    assert all(torch.equal(v, before[k]) for k, v in loaded.module.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in loaded.module.modules())


def test_an_atlas_of_token_layers(tmp_path):
    """ViT's and LeViT's token layers were refused ('no (C, H, W) map'); they map like channels over tokens."""
    from probe.atlas import build_atlas

    images = _noise_images(tmp_path / "images", 5)
    loaded = _loaded("tokens")
    build_atlas(loaded, out=tmp_path / "atlas", layers=["embed", "mix", "block"], dataset=images, examples=2,
                steps=1, max_units=2, chunk=2, device="cpu")
    folder = tmp_path / "atlas"
    atlas = json.loads((folder / "atlas.json").read_text())
    layers = {layer["name"]: layer for layer in atlas["layers"]}
    assert [len(layer["units"]) for layer in atlas["layers"]] == [2, 2, 2]
    assert layers["embed"]["receptive_field"]["regular"] and not layers["block"]["receptive_field"]["regular"]
    for name, layer in layers.items():
        for unit in layer["units"]:
            for example in unit["examples"]:
                top, left, bottom, right = example["box"]
                assert Image.open(folder / example["file"]).size == (right - left, bottom - top)
                position = example["y"] * layer["receptive_field"]["map_size"][1] + example["x"]
                field_, box = measure_fields(loaded, name, [position])[0]
                assert example["field"] == list(field_), (name, example)
                assert example["box"] == list(box if not layer["receptive_field"]["regular"] else field_), (name, example)
    assert broken_links(folder) == [] and all(reprs(page.read_text()) == [] for page in folder.glob("*.html"))
    assert "measured per position" in (folder / "index.html").read_text()
    token = layers["mix"]["units"][0]["examples"][0]
    assert f"at token {token['token']}<" in (folder / "mix-0000.html").read_text()
    assert "token" not in layers["embed"]["units"][0]["examples"][0]  # a map's examples keep rows and columns
    assert len(list((folder / "images").glob("mix-*-s0.png"))) == 2  # only the first two units were rendered


def test_max_units_maps_the_first_units_and_refuses_zero(tmp_path):
    args = ["atlas", "--layers", "conv1", "--steps", "1", "--limit", "20", "--examples", "2"]
    result = CliRunner().invoke(cli, [*args, "--max-units", "3", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    units = json.loads((tmp_path / "a" / "atlas.json").read_text())["layers"][0]["units"]
    assert [u["unit"] for u in units] == [0, 1, 2]
    crops = {p.name for p in (tmp_path / "a" / "images").glob("x*.png")}
    assert crops == {Path(e["file"]).name for u in units for e in u["examples"]}  # none for the units left out
    refused = CliRunner().invoke(cli, [*args, "--max-units", "0", "--out", str(tmp_path / "b")])
    assert refused.exit_code == 2 and "--max-units" in refused.output and not (tmp_path / "b").exists()


def test_two_gloo_processes_share_the_fields_and_measure_what_one_process_measures(tmp_path):
    """Each rank measures every other layer and every other group of positions; the all-gathered result is
    the one process's, box for box."""
    out = tmp_path / "shared.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(TESTS / "atlas_fields_worker.py"), str(out)], env=env, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    shared = json.loads(out.read_text())
    loaded = _loaded("tokens")
    for layer in ("embed", "mix", "block"):
        assert shared["boxes"][layer] == [[list(box) for box in pair] for pair in _atlas_fields(loaded, layer)], layer
    calls = shared["calls"]  # measure_fields calls per rank: both ranks worked
    assert len(calls) == 2 and all(count > 0 for count in calls)


def test_a_layer_zeroed_by_its_weights_is_named_as_such():
    """A norm whose scale is zero (a residual block's last norm under timm's random initialization) gives the same
    output for every image: the atlas said it 'does not depend on the input image', blaming the layer's place in
    the graph (as for a position bias) rather than its weights."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    torch.nn.init.zeros_(net[1].weight)
    loaded = probe.load_model(net, input_size=16)
    with pytest.raises(probe.ProbeUsageError, match="zero gradient from every pixel.*load trained weights") as info:
        receptive_field(loaded, "1")
    assert info.value.param == "layers"
    assert receptive_field(loaded, "0").size == (3, 3)


def test_squeeze_excitation_crops_to_the_gradient_mass_not_to_where_any_gradient_reaches():
    """After squeeze-excitation every pixel reaches every position (its mean), so each example's crop was the whole
    image; the crop is now the box holding 95% of the gradient: here the convolution's own 3x3 field."""
    loaded = _loaded("squeeze", 16)
    field_ = receptive_field(loaded, "se")
    assert not field_.regular and field_.size == (16, 16) and field_.effective == (3, 3)
    positions = [0, 15, 17, 40, 100, 135, 200, 240, 255]  # corners, edges, inside
    both = measure_fields(loaded, "se", positions)
    local = [(max(0, y - 1), max(0, x - 1), min(16, y + 2), min(16, x + 2)) for y, x in (divmod(p, 16) for p in positions)]
    assert [field_ for field_, _ in both] == [(0, 0, 16, 16)] * len(positions)
    assert [box for _, box in both] == local


def test_an_atlas_of_a_squeeze_excitation_layer_shows_its_crops_and_their_fields(tmp_path):
    from probe.atlas import build_atlas

    images = _noise_images(tmp_path / "images", 3)
    folder = tmp_path / "atlas"
    build_atlas(_loaded("squeeze", 16), out=folder, layers=["se"], dataset=images, examples=2, steps=1, max_units=1,
                device="cpu")
    layer = json.loads((folder / "atlas.json").read_text())["layers"][0]
    assert layer["receptive_field"]["effective"] == [3, 3]
    examples = layer["units"][0]["examples"]
    assert [e["field"] for e in examples] == [[0, 0, 16, 16]] * 2
    for example in examples:
        top, left, bottom, right = example["box"]
        assert bottom - top <= 3 and right - left <= 3
        assert Image.open(folder / example["file"]).size == (right - left, bottom - top)
    page = (folder / "se-0000.html").read_text()
    assert f"crop {bottom - top}\u00d7{right - left} of its 16\u00d716 field" in page and "holding 95% of the gradient" in page
    assert "16\u00d716 at the centre, 95% of its gradient within 3\u00d73" in (folder / "index.html").read_text()
    assert broken_links(folder) == [] and all(reprs(page.read_text()) == [] for page in folder.glob("*.html"))


def test_the_effective_box_is_the_smallest_peel_that_keeps_the_share():
    from probe.atlas.receptive import effective_box

    mass = torch.zeros(6, 7)
    mass[1:5, 2:6] = 1.0  # support: rows 1-4, columns 2-5
    mass[2:4, 3:5] = 10.0  # 40 of the 52 in the middle 2x2
    assert effective_box(mass, 1.0) == (1, 2, 5, 6)
    assert effective_box(mass, 0.75) == (2, 3, 4, 5)  # 40 / 52 = 0.77
    # 0.8 (41.6): top (4 of 52, the first of four equal edges), left (3: before right), bottom (2: tied with right,
    # and first), then the right column (2) would leave 40
    assert effective_box(mass, 0.8) == (2, 3, 4, 6)
    assert effective_box(torch.zeros(3, 3)) is None
    spike = torch.zeros(5, 5)
    spike[4, 0], spike[2, 2] = 1e-30, 1.0
    assert effective_box(spike, 0.999) == (2, 2, 3, 3)
