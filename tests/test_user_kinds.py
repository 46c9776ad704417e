"""Model kinds users write in their own repositories (image-to-image nets, generators, token and volume models,
time-major sequence heads), as those repositories write them: each read for what it is, or refused in one line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import probe
from probe.errors import ProbeUsageError


def _image(side: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.rand(channels, side, side, generator=torch.Generator().manual_seed(0))


def _autoencoder() -> nn.Module:
    """Conv encoder, transposed-conv decoder, sigmoid: (N, 3, H, W) -> the (N, 3, H, W) reconstruction."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.ConvTranspose2d(4, 3, 4, 2, 1), nn.Sigmoid())


def _super_resolution() -> nn.Module:
    """ESPCN: convolutions, then PixelShuffle(2): (N, 3, H, W) -> (N, 3, 2H, 2W)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 12, 3, padding=1), nn.PixelShuffle(2))


def _upsampler() -> nn.Module:
    """A plain learned x2 upsampler ending in a transposed convolution (no tanh, no shuffle): larger than its input."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 3, 2, stride=2))


def _tanh_translator() -> nn.Module:
    """pix2pix / CycleGAN style: the same size out, ending in tanh."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1), nn.Tanh())


def _segmenter(classes: int, channels: int = 3, sigmoid: bool = False) -> nn.Module:
    """A fully convolutional segmenter: per-pixel logits (N, classes, H, W), a sigmoid mask for one class."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, classes, 1)]
    return nn.Sequential(*layers, *([nn.Sigmoid()] if sigmoid else []))


@pytest.mark.parametrize("build", [_autoencoder, _super_resolution, _upsampler, _tanh_translator])
def test_an_image_to_image_models_picture_is_not_read_as_a_segmentation(build) -> None:
    """An autoencoder's reconstruction, a super-resolution net's or a translator's image, (N, 3, H', W'), was read
    as a 3-class segmentation: activations printed 'class 1 (38.2% of the image)' for the red, green or blue
    plane, attribution explained a colour plane's sum as a class, and a class objective maximized it. The picture is
    described as one, and attribution refuses it in one line naming the model."""
    net = build()
    maps = probe.feature_maps(net, _image(), size=16)
    assert maps.prediction is None and maps.output is not None and maps.output.startswith("an image, shape (1, 3,")
    with pytest.raises(ProbeUsageError, match=r"returned shape \(1, 3, \d+, \d+\): a picture") as raised:
        probe.attribute(net, _image(), "saliency", size=16)
    assert raised.value.param == "model"


@pytest.mark.parametrize("build, kind", [(lambda: _segmenter(3), "dense"),
                                         (lambda: _segmenter(1, channels=1, sigmoid=True), "dense-score"),
                                         (lambda: _segmenter(4, sigmoid=True), "dense")])
def test_segmentations_stay_dense_predictions(build, kind) -> None:
    """The picture rules leave a segmentation alone: 3 classes on an RGB image (the input's shape, no sigmoid), a
    1-channel medical U-Net's sigmoid mask on a 1-channel scan, a 4-class sigmoid multi-label map."""
    net = build()
    channels = net[0].in_channels
    maps = probe.feature_maps(net, _image(channels=channels), size=16)
    assert maps.prediction is not None and maps.prediction.kind == kind
    assert probe.attribute(net, _image(channels=channels), "saliency", size=16).heatmaps["saliency"].isfinite().all()
