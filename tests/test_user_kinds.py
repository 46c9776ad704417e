"""Model kinds users write in their own repositories (image-to-image nets, generators, token and volume models,
time-major sequence heads), as those repositories write them: each read for what it is, or refused in one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
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


class _Generator(nn.Module):
    """DCGAN's generator: a latent (N, Z, 1, 1), or (N, Z) reshaped, up to a (N, 3, 16, 16) image."""

    def __init__(self, flat: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.flat = flat
        self.main = nn.Sequential(nn.ConvTranspose2d(8, 4, 4, 1, 0), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.ConvTranspose2d(4, 3, 4, 4, 0), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], -1, 1, 1) if self.flat else z)


class _TextCNN(nn.Module):
    """Kim's text CNN: integer tokens (N, L) -> embeddings -> Conv1d -> (N, 3)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.conv, self.fc = nn.Embedding(50, 6), nn.Conv1d(6, 4, 3, padding=1), nn.Linear(4, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.emb(tokens).transpose(1, 2)).amax(2))


class _AttentionFirst(nn.Module):
    """An image model that defines its ECA attention's Conv1d before its Conv2d stem (it runs after it)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.eca, self.stem, self.fc = nn.Conv1d(1, 1, 3, padding=1, bias=False), nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.stem(x).mean((2, 3))
        return self.fc(pooled * torch.sigmoid(self.eca(pooled.unsqueeze(1)).squeeze(1)))


def _volume() -> nn.Module:
    """A 1-channel medical 3-D CNN: (N, 1, D, H, W) scans."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten(), nn.Linear(4, 2))


@pytest.mark.parametrize("build, words", [
    (_Generator, r"main.0 is a ConvTranspose2d on 8 channels.*latent code such as \(N, 8, 1, 1\)"),
    (lambda: _Generator(flat=True), r"main.0 is a ConvTranspose2d on 8 channels.*latent code"),
    (_TextCNN, r"its emb \(an Embedding\) comes before its first convolution conv \(Conv1d\): it takes integer tokens"),
    (_volume, r"its first layer 0 \(Conv3d\) takes \(N, C, D, H, W\) volumes")])
def test_a_model_whose_first_layer_takes_no_image_is_refused_by_what_it_takes(build, words) -> None:
    """A DCGAN generator ran on a 'latent image' of 8 x 16 x 16 noise (maximize drew three of its channels as a
    picture), its (N, Z) variant was told it takes (N, H, W, C), a text CNN was asked for 6-channel images, a 1-channel
    Conv3d scan model dreamed on a single image read as an unbatched volume and was then told of folded tokens. Each
    is refused before it runs, in one line naming the model and what it takes; the module is left as it was."""
    net = build()
    net.train()
    state = {key: value.clone() for key, value in net.state_dict().items()}
    for call in (lambda: probe.feature_maps(net, _image(channels=1), size=16),
                 lambda: probe.maximize(net, probe.objectives.class_logit(0), steps=1, image_size=16),
                 lambda: probe.dream(net, _image(channels=1), ["main.0" if isinstance(net, _Generator) else "conv"],
                                     steps=1, octaves=1)):
        with pytest.raises(ProbeUsageError, match=words) as raised:
            call()
        assert raised.value.param == "model"
    assert net.training and all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert not any(sub._forward_pre_hooks for sub in net.modules())


def test_a_conv1d_defined_before_the_stem_that_runs_after_it_is_an_image_model() -> None:
    """The first layer is the first that runs: an attention's Conv1d defined before the Conv2d stem loads."""
    net = _AttentionFirst()
    assert probe.attribute(net, _image(), "saliency", size=16).heatmaps["saliency"].isfinite().all()


class _SharedBlock(nn.Module):
    """One conv block run twice, as a recurrent or weight-shared net does: 16 px, then 8 px."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem, self.block, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.block(self.stem(x))), 2)
        return self.fc(F.relu(self.block(x)).mean((2, 3)))


class _FlipAverage(_SharedBlock):
    """Test-time augmentation inside forward: the mean of the image's and its mirror's scores."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (super().forward(x) + super().forward(torch.flip(x, dims=[3]))) / 2


def test_grad_cam_takes_one_call_of_a_module_that_runs_twice() -> None:
    """A block named once and run twice was refused ('takes a layer that runs once; name another layer (a
    convolution runs once)'), also as 'block#1', and a model run twice on the image and its mirror had no layer at
    all. One call is now a layer, 'block#1', its map the Grad-CAM of that call's output and gradient (checked
    against the formula); the plain name asks for a call. The default took the stem, which runs first: it takes
    the block's last call, as each call is given what the one before returned, and says which call it took and
    why; it never takes calls on the image and on its mirror (a map may be of the mirror) and, when nothing else
    has positions, names one."""
    net, image = _SharedBlock(), _image()
    result = probe.attribute(net, image, "gradcam", layer="block#1", size=16, target=1)
    seen: list[torch.Tensor] = []
    handle = net.block.register_forward_hook(lambda module, args, out: seen.append(out))
    x = ((image - torch.tensor(probe.models.IMAGENET_MEAN)[:, None, None])
         / torch.tensor(probe.models.IMAGENET_STD)[:, None, None])[None].requires_grad_(True)
    try:
        score = net(x)[0, 1]
    finally:
        handle.remove()
    grad = torch.autograd.grad(score, seen[1])[0]
    cam = (grad.mean((2, 3), keepdim=True) * seen[1]).sum(1, keepdim=True).clamp_min(0)
    cam = F.interpolate(cam, size=(16, 16), mode="bilinear").clamp_min(0)[0, 0].detach()
    assert result.layer == "block#1"
    assert torch.allclose(result.attributions["gradcam"].reshape(16, 16), cam, atol=1e-5)
    with pytest.raises(ProbeUsageError, match=r"runs 2 times.*name one call: 'block#0', 'block#1'"):
        probe.attribute(net, image, "gradcam", layer="block", size=16)
    default = probe.attribute(net, image, "gradcam", size=16, target=1)
    assert default.layer == "block#1" and torch.equal(default.attributions["gradcam"], result.attributions["gradcam"])
    assert default.options["gradcam_layer"]["calls"] == ("block runs 2 times in one pass, each call on what the one "
                                                         "before returned (a shared block): block#1 is its last call")
    with pytest.raises(ProbeUsageError, match=r"run several times, and not one call after another on one image "
                                              r".* name one call, e.g. 'block#3'"):
        probe.attribute(_FlipAverage(), image, "gradcam", size=16)


class _CRNN(nn.Module):
    """An OCR CRNN: a 1-channel text line through convolutions, then an LSTM over its columns: (T, N, classes)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 8)))
        self.rnn, self.fc = nn.LSTM(4, 4), nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = self.cnn(x).squeeze(2).permute(2, 0, 1)  # (T, N, C)
        return self.fc(self.rnn(columns)[0]).log_softmax(2)


def test_a_time_major_sequence_is_said_to_be_one() -> None:
    """A CRNN's (T, N, C) CTC scores were called 'detections' by activations and attribution, and its output and
    LSTM layer 'tokens of several patches or windows folded into the batch' by maximize. Each now says it is a
    time-major sequence whose dim 1 is the batch."""
    net, line = _CRNN(), _image(channels=1)
    assert probe.feature_maps(net, line, size=16).output.startswith("a time-major sequence, shape (8, 1, 5)")
    with pytest.raises(ProbeUsageError, match=r"per-step scores of a time-major sequence \(T, N, C\)"):
        probe.attribute(net, line, "saliency", size=16)
    with pytest.raises(ProbeUsageError, match=r"'rnn' gives \(8, 2, 4\) for 2 image\(s\): a time-major sequence"):
        probe.maximize(net, "rnn:0", steps=1, image_size=16)
    with pytest.raises(ProbeUsageError, match=r"output gives \(8, 1, 5\): per-step scores of a time-major sequence") as raised:
        probe.maximize(net, probe.objectives.class_logit(0), steps=1, image_size=16)
    assert "detections" not in str(raised.value)


class _CodeMapNet(nn.Module):
    """A map of integer codes (a VQ index map, a label map) embedded per pixel, then a Conv2d: (N, H, W) longs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.conv, self.fc = nn.Embedding(16, 3), nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.emb(codes).permute(0, 3, 1, 2)).mean((2, 3)))


def test_an_embedding_given_the_float_image_names_the_model() -> None:
    """An nn.Embedding before a Conv2d met cnn-probe's float image: the refusal named --size ('give an input size it
    accepts'), which no size can fix. It names the model and says the embedding takes integer indices."""
    with pytest.raises(ProbeUsageError, match="an nn.Embedding of it takes integer indices") as raised:
        probe.maximize(_CodeMapNet(), "conv:0", steps=1, image_size=16)
    assert raised.value.param == "model"


def test_a_model_of_0_to_255_pixels_gets_them_from_mean_0_and_std_1_over_255() -> None:
    """README's recipe for a model that divides by 255 itself: it sees 255 x for cnn-probe's image x in [0, 1]."""

    class Bytes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x.float() / 255.0 - 0.5).mean((2, 3)))

    net, image = Bytes(), _image()
    loaded = probe.load_model(net, mean=[0.0], std=[1 / 255], input_size=16)
    assert torch.allclose(probe.feature_maps(loaded, image).prediction.logits, net(255 * image[None])[0].detach(),
                          atol=1e-5)


def test_feature_maps_of_a_functional_model_say_it_has_no_layers() -> None:
    """A forward of F.conv2d on nn.Parameters has no module to record: activations said 'has no Conv2d layer; name
    layers with --layer' (there are none to name), with --all too."""

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.weight).mean((2, 3))

    for layers in (None, "all"):
        with pytest.raises(ProbeUsageError, match="has no layers: its forward computes with functions"):
            probe.feature_maps(Functional(), _image(), layers, size=16)


class _FeaturesAndLogits(nn.Module):
    """``return features, self.fc(features)`` (metric learning, distillation): (N, 8) then (N, 3); or the other
    way round; or two heads on one trunk, neither computed from the other."""

    def __init__(self, order: str = "features-first") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.order = order
        self.conv, self.fc, self.aux = nn.Conv2d(3, 8, 3), nn.Linear(8, 3), nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.conv(x).mean((2, 3))
        if self.order == "two-heads":
            return self.fc(features), self.aux(features)
        logits = self.fc(features)
        return (features, logits) if self.order == "features-first" else (logits, features)


@pytest.mark.parametrize("order, classes", [("features-first", 3), ("logits-first", 3), ("two-heads", 3)])
def test_a_tuple_of_features_and_logits_is_read_by_its_logits(order, classes) -> None:
    """(features, logits) was read by its first tensor: activations showed 'class 5' of 8 feature dimensions,
    attribution explained one, a class objective maximized one. The item computed from the first is the head's
    scores; (logits, features) and two heads on one trunk keep the first."""
    net = _FeaturesAndLogits(order)
    assert len(probe.feature_maps(net, _image(), size=16).prediction.labels) == classes
    assert len(probe.attribute(net, _image(), "saliency", size=16).prediction.labels) == classes
    with pytest.raises(ProbeUsageError, match=rf"unit {classes} is out of range for output \(0 to {classes - 1}\)"):
        probe.maximize(net, probe.objectives.class_logit(classes), steps=1, image_size=16)


def test_logits_with_their_own_softmax_are_read_by_the_logits() -> None:
    """``return logits, logits.softmax(1)``: the second is computed from the first, but it is the same scores
    normalized, not a head on an embedding; the logits stay what is read."""

    class LogitsAndProbabilities(_FeaturesAndLogits):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.fc(self.conv(x).mean((2, 3)))
            return logits, logits.softmax(1)

    prediction = probe.feature_maps(LogitsAndProbabilities(), _image(), size=16).prediction
    assert prediction.kind == "logits" and len(prediction.labels) == 3


def test_a_class_objective_on_an_upsamplers_picture_is_refused_before_the_run(tmp_path) -> None:
    """``probe maximize --objective class`` on a learned x2 upsampler (a transposed convolution last, no tanh)
    maximized a colour plane of its picture as a dense 3-class prediction: the check before the run saw the
    output's shape without the input's. It is told a picture now, in one line naming --objective."""
    from click.testing import CliRunner

    from probe.cli.main import cli

    (tmp_path / "nets.py").write_text(
        "from torch import nn\n\n"
        "def upsampler():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 3, 2, stride=2))\n")
    result = CliRunner().invoke(cli, ["maximize", "--model", f"{tmp_path / 'nets.py'}:upsampler", "--objective",
                                      "class", "--size", "16", "--steps", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--objective" in result.output and "a picture" in result.output, result.output
    assert not (tmp_path / "run").exists()
