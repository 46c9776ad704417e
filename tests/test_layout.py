"""Channels-last layers (Swin, ConvNeXt, ViT, MaxViT blocks): channel k is feature k of the last dimension."""

from __future__ import annotations

import torch

import probe
from probe import objectives as O
from probe.layout import channels_last_layers
from tinynets import channels_last, tiny


def test_the_channels_last_layers_are_found_and_listed_with_their_channels() -> None:
    net = channels_last().eval()
    assert channels_last_layers(net, torch.rand(1, 3, 12, 10)) == {"permute", "norm", "fc", "act"}
    rows = {row.name: row for row in probe.layers(net, (3, 12, 10))}
    assert (rows["norm"].output_shape, rows["norm"].channels) == ((12, 10, 8), 8)
    assert (rows["fc"].channels, rows["back"].channels, rows["conv"].channels) == (6, 6, 8)
    assert channels_last_layers(tiny(), torch.rand(1, 3, 16, 16)) == frozenset()  # a CNN: no pass at all


def test_capture_gives_channels_last_layers_channels_first_and_objectives_read_feature_k() -> None:
    net = channels_last().eval()
    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    with probe.record(net, ["fc"]) as acts:
        net(x)
    raw = acts["fc"]  # (2, 12, 10, 6) as the module returned it
    got = probe.capture(net, x, ["fc"])["fc"]
    assert got.shape == (2, 6, 12, 10) and torch.equal(got, raw.movedim(-1, 1))
    score = probe.maximize(net, O.channel("fc", 5), steps=1, image_size=(12, 10), preset="plain")
    check = probe.capture(net, probe.load_model(net).preprocess.normalize(score.images), ["fc"])["fc"]
    assert torch.allclose(score.scores, check[:, 5].flatten(1).sum(1), rtol=1e-4)


def test_style_transfer_on_a_channels_last_layer_takes_a_style_image_of_another_shape() -> None:
    """Swin's style transfer failed: the Gram matrix was taken over the height (10x10 against 16x16)."""
    content, style = torch.rand(3, 16, 16), torch.rand(3, 10, 24)
    result = probe.style_transfer(channels_last(), content, style, content_layers=["norm"], style_layers=["fc"],
                                  steps=1, size=16, device="cpu")
    assert result.image.shape == (3, 16, 16)


def test_gradcam_reads_a_channels_last_layer_by_its_last_dimension() -> None:
    """Grad-CAM was refused on (N, H, W, C) layers; over dim 1 it would weigh the height as channels."""
    net, x = channels_last().eval(), torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0))
    last = probe.attribute(net, x, "gradcam", layer="act", size=12, target=1)  # (N, 12, 12, 6)
    first = probe.attribute(net, x, "gradcam", layer="back", size=12, target=1)  # the same values, (N, 6, 12, 12)
    assert last.options["gradcam_layer"]["map"] == "channels-last (N, H, W, C) map, 12x12"
    assert torch.allclose(last.attributions["gradcam"], first.attributions["gradcam"], atol=1e-6)
    assert first.attributions["gradcam"].abs().sum() > 0
    assert probe.attribute(net, x, "gradcam", size=12).layer == "back"  # the last map before the pool


def test_feature_maps_show_a_channels_last_layer_as_its_channels() -> None:
    """`probe activations` on Swin drew (H, W, C) blocks row by row: H maps of W x C instead of C maps."""
    net = channels_last().eval()
    image = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(0))
    shown = probe.feature_maps(net, image, layers=["norm", "conv"], size=(12, 10))
    with probe.record(net, ["norm"]) as acts:
        net(probe.load_model(net).preprocess.normalize(image.unsqueeze(0)))
    assert shown.maps["norm"].shape == (8, 12, 10) and torch.allclose(shown.maps["norm"], acts["norm"][0].movedim(-1, 0))
    assert torch.allclose(shown.degree["norm"], acts["norm"][0].sum((0, 1)))
    assert shown.maps["conv"].shape[0] == 8  # a convolution stays as it is


def test_a_channels_last_layer_has_its_channels_as_units() -> None:
    """maximize --layer on a Swin stage rendered one unit per row of the (H, W, C) output."""
    from probe.optimize import inspect_layer

    net = channels_last().eval()
    info = inspect_layer(net, "norm", (12, 10))
    assert (info.shape, info.units) == ((8, 12, 10), 8)
    assert inspect_layer(net, "conv", (12, 10)).units == 8


def test_finding_the_layout_leaves_a_training_model_as_it_was() -> None:
    """probe.layers ran the layout pass on a model left in train(): batch-norm statistics moved."""
    from torch import nn

    class Permute(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.permute(0, 2, 3, 1)

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), Permute(), nn.LayerNorm(4)).train()
    statistics = [tensor.clone() for tensor in net[1].buffers()]
    rows = {row.name: row for row in probe.layers(net, (3, 8, 8))}
    assert rows["3"].channels == 4 and all(m.training for m in net.modules())
    assert all(torch.equal(before, after) for before, after in zip(statistics, net[1].buffers()))
