"""What the user-model sweep left: outputs whose shape cannot tell a picture from per-pixel logits, a shared block's
Grad-CAM default, decoder layers in the default activations, and the refusal of a model that takes no images on
every way in."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import probe
from probe.errors import ProbeUsageError


def _image(side: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.rand(channels, side, side, generator=torch.Generator().manual_seed(0))


def _conv_autoencoder(channels: int = 3) -> nn.Module:
    """A denoising autoencoder as users write it: a strided conv encoder, a transposed-conv decoder, and a plain
    3x3 convolution last (no sigmoid or tanh): (N, C, H, W) -> (N, C, H, W), the input's very shape."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, 2, 1), nn.ReLU(), nn.ConvTranspose2d(4, 4, 4, 2, 1), nn.ReLU(),
                         nn.Conv2d(4, channels, 3, padding=1))


def _pet_segmenter() -> nn.Module:
    """The Oxford-pets U-Net of the tutorials: 3 classes (pet, border, background) on RGB, the same shape."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))


@pytest.mark.parametrize("channels", [3, 1])
def test_a_dense_output_that_may_be_a_picture_says_what_it_was_read_as(channels, tmp_path) -> None:
    """An autoencoder ending in a plain convolution gives (N, C, H, W) at the input's shape: what a C-class
    segmentation gives. It was read as per-pixel logits without a word ('class 1 (38.2% of the image)'). It is still
    read so (the shape cannot tell; a pet segmenter is the same), but the prediction and the manifest say what was
    assumed and how to say otherwise."""
    net, image = _conv_autoencoder(channels), _image(channels=channels)
    prediction = probe.feature_maps(net, image, size=16).prediction
    assert prediction is not None and prediction.kind == ("dense" if channels > 1 else "dense-score")
    assert "cannot tell" in prediction.assumed and "output='image'" in prediction.assumed
    result = probe.attribute(net, image, "saliency", size=16)
    assert result.prediction.assumed == prediction.assumed
    manifest = json.loads((result.save(tmp_path / "run", image="x") / "manifest.json").read_text())
    assert manifest["prediction_assumed"] == prediction.assumed
    classifier = nn.Sequential(nn.Conv2d(channels, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    assert probe.feature_maps(classifier, image, size=16).prediction.assumed == ""  # nothing assumed of (N, K)
    wide = nn.Sequential(nn.Conv2d(channels, channels + 1, 1))  # 4 maps of RGB, 2 of grey: no picture of it
    assert probe.feature_maps(wide, image, size=16).prediction.assumed == ""
    if channels == 1:  # a colorization's 3 maps of a grey image may be a picture too
        colorized = probe.feature_maps(nn.Sequential(nn.Conv2d(1, 3, 1)), image, size=16).prediction
        assert colorized.assumed.startswith("read as per-pixel scores of 3 class(es): the output (1, 3, 16, 16)")


def test_the_user_says_what_the_output_is() -> None:
    """output='image' reads the autoencoder's reconstruction as a picture: activations describe it, attribution
    refuses it in one line naming the model; output='classes' keeps a segmenter's logits without the note, and reads
    a tanh picture as class maps when the user says it holds them. A reading the output cannot be, or an unknown
    one, is one line naming output, before anything runs."""
    net, image = _conv_autoencoder(), _image()
    maps = probe.feature_maps(net, image, size=16, output="image")
    assert maps.prediction is None and maps.output.startswith("an image, shape (1, 3, 16, 16), read as a picture")
    with pytest.raises(ProbeUsageError, match=r"read as a picture \(output='image'\): a picture") as raised:
        probe.attribute(net, image, "saliency", size=16, output="image")
    assert raised.value.param == "model"
    segmenter = _pet_segmenter()
    said = probe.feature_maps(segmenter, image, size=16, output="classes").prediction
    assert said.kind == "dense" and said.assumed == ""
    tanh = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh())
    assert probe.attribute(tanh, image, "saliency", size=16, output="classes").heatmaps["saliency"].isfinite().all()
    flat = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    for bad, words in (("image", r"output='image' reads a \(N, C, H, W\) picture"),
                       ("picture", "output must be one of")):
        with pytest.raises(ProbeUsageError, match=words) as raised:
            probe.feature_maps(flat, image, size=16, output=bad)
        assert raised.value.param == "output"


class _UNet(nn.Module):
    """A two-level U-Net: a conv encoder, a transposed-conv decoder with a skip, a user's own F.conv2d head layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.down, self.bottom = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.up, self.fuse = nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Upsample(scale_factor=1)
        self.head = _OwnConv(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.relu(self.down(x))
        return self.head(torch.cat([skip, self.fuse(F.relu(self.up(F.relu(self.bottom(skip)))))], 1))


class _OwnConv(nn.Module):
    """A convolution layer written by hand: its kernel a 4-D weight, applied with F.conv2d."""

    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out, channels, 1, 1) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight)


def test_the_default_activations_show_a_decoders_convolutions() -> None:
    """probe activations showed every Conv2d: a U-Net's or autoencoder's decoder (ConvTranspose2d) and a
    convolution written by hand were left out. Every 2-D convolution is shown; upsampling, which repeats the
    maps before it, and the 1-D and 3-D convolutions, batch norms and linears are not convolutions of images."""
    from torchvision.ops import DeformConv2d

    from probe.leaves import is_conv2d

    maps = probe.feature_maps(_UNet(), _image(), size=16)
    assert list(maps.maps) == ["down", "bottom", "up", "head"] and maps.maps["up"].shape == (4, 16, 16)
    assert all(is_conv2d(conv) for conv in (DeformConv2d(3, 4, 3), nn.LazyConv2d(4, 3), nn.ConvTranspose2d(3, 4, 2)))
    for layer in (nn.Upsample(scale_factor=2), nn.PixelShuffle(2), nn.Conv1d(3, 4, 3), nn.Conv3d(3, 4, 3),
                  nn.BatchNorm2d(3), nn.Linear(3, 4), nn.Sequential(nn.Conv2d(3, 4, 3))):
        assert not is_conv2d(layer), layer


class _Generator(nn.Module):
    """DCGAN's generator: a latent (N, 8, 1, 1) up to a (N, 3, 16, 16) image."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.main = nn.Sequential(nn.ConvTranspose2d(8, 4, 4, 1, 0), nn.ReLU(), nn.ConvTranspose2d(4, 3, 4, 4, 0),
                                  nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


def test_a_generator_is_refused_on_every_way_in() -> None:
    """load_model refused a DCGAN generator (its first layer takes a latent code), but probe.layers on the bare
    module listed it for a latent shape, and for an image shape told it to take '--in-channels 8'; a LoadedModel
    made by hand ran everywhere. Each is the one refusal now, naming the model, with the module left as it was."""
    net = _Generator()
    state = {key: value.clone() for key, value in net.state_dict().items()}
    loaded = probe.LoadedModel("gen", net, probe.Preprocess((0.5,) * 8, (0.5,) * 8, 8, (1, 1)))
    calls = [lambda: probe.layers(net, (8, 1, 1)), lambda: probe.layers(net, (3, 16, 16)),
             lambda: probe.layers(loaded, (8, 1, 1)), lambda: probe.feature_maps(loaded, _image(channels=8)),
             lambda: probe.maximize(loaded, "main.0:0", steps=1)]
    for call, name in zip(calls, ["your module (_Generator)"] * 2 + ["your module (gen)"] * 3):
        with pytest.raises(ProbeUsageError, match=rf"^{re.escape(name)}: its first layer main.0 is a ConvTranspose2d") \
                as raised:
            call()
        assert raised.value.param == "model"
    assert net.training and all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert not any(sub._forward_pre_hooks or sub._forward_hooks for sub in net.modules())
    assert [row.name for row in probe.layers(_UNet(), (3, 16, 16))][:2] == ["down", "bottom"]  # an image model lists
