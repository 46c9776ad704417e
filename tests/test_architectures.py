"""Architectures the first sweeps had not run: what their layers do that a plain CNN's do not."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import model_state, same_state
from torch import nn

import probe
from probe.cli.main import cli
from probe.kernels import used_kernel


def _standardized() -> list[nn.Conv2d]:
    from timm.layers import ScaledStdConv2d, StdConv2d, StdConv2dSame

    torch.manual_seed(0)
    return [StdConv2d(3, 4, 3), ScaledStdConv2d(3, 4, 3, gain_init=2.0), StdConv2dSame(3, 4, 3, padding="same")]


@pytest.mark.parametrize("index", range(3))
def test_filters_of_a_weight_standardized_conv_are_the_kernels_it_convolves_with(index):
    """timm's StdConv2d / NFNet's ScaledStdConv2d standardize (and scale) their stored weight in forward:
    `probe filters` drew the raw weight, which is not the kernel (its mean per kernel is not even 0)."""
    conv = _standardized()[index]
    calls = []
    conv.register_forward_hook(lambda *args: calls.append(1))
    before = model_state(conv)
    result = probe.filters(nn.Sequential(conv))
    assert result.computed and not calls and same_state(before, model_state(conv))
    x = torch.rand(1, 3, 5, 5)
    assert torch.allclose(conv(x), F.conv2d(x, result.weight, conv.bias, padding=1), atol=1e-5)  # each pads 'same'
    assert result.weight.flatten(1).mean(1).abs().max() < 1e-5 < conv.weight.flatten(1).mean(1).abs().max()


def test_a_plain_and_a_dynamically_padded_conv_show_their_stored_weight():
    from timm.layers import Conv2dSame

    for conv in (nn.Conv2d(3, 4, 3), Conv2dSame(3, 4, 3)):
        kernel, computed = used_kernel(conv)
        assert not computed and torch.equal(kernel, conv.weight.detach())


def test_a_quantization_aware_conv_shows_its_fake_quantized_kernel_and_keeps_its_observers():
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    net.qconfig = torch.ao.quantization.get_default_qat_qconfig("fbgemm")
    torch.ao.quantization.prepare_qat(net.train(), inplace=True)
    net(torch.rand(1, 3, 8, 8))
    before = model_state(net)
    result = probe.filters(net)
    assert same_state(before, model_state(net)) and net.training
    assert torch.equal(result.weight, net[0].weight_fake_quant(net[0].weight).detach())


def test_the_cli_says_the_kernels_are_computed(tmp_path):
    (tmp_path / "std.py").write_text("import torch\nfrom timm.layers import StdConv2d\n\ndef build():\n"
                                     "    torch.manual_seed(0)\n"
                                     "    return torch.nn.Sequential(StdConv2d(3, 4, 3), torch.nn.Flatten(),\n"
                                     "                               torch.nn.LazyLinear(2))\n")
    result = CliRunner().invoke(cli, ["filters", "--model", f"{tmp_path / 'std.py'}:build", "--input-size", "8",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "as convolved" in result.output
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["kernels"] == "computed by the layer"


def _hf_levit_config():
    import transformers

    return transformers.LevitConfig(image_size=32, hidden_sizes=[16, 24, 32], num_attention_heads=[1, 1, 1],
                                    depths=[1, 1, 1], key_dim=[8, 8, 8], num_labels=3)


@pytest.mark.parametrize("kind", ["levit", "deit"])
def test_a_hand_built_config_of_a_model_with_two_heads_loads(tmp_path, kind):
    """A config written by hand (no `architectures`) of a model type with several classifier classes
    (LeViT, DeiT: with and without a teacher) failed inside transformers ('NoneType' object is not iterable)."""
    import transformers

    config = (_hf_levit_config() if kind == "levit" else
              transformers.DeiTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32, num_labels=3))
    config.save_pretrained(tmp_path / kind)
    loaded = probe.load_model(f"hf:{tmp_path / kind}", weights=None, device="cpu", input_size=32)
    assert loaded.module(torch.rand(1, 3, 32, 32)).shape == (1, 3)
    assert loaded.describe()["hf_class"].endswith("ForImageClassification")


def _norm_act_net() -> nn.Module:
    from timm.layers import BatchNormAct2d

    torch.manual_seed(0)  # BatchNormAct2d normalizes in its own forward, then calls its drop and act (Identity)
    return nn.Sequential(nn.Conv2d(3, 4, 3), BatchNormAct2d(4, apply_act=False), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2)).eval()


def _inplace_block_net() -> nn.Module:
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True))
    return nn.Sequential(block, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()


@pytest.mark.parametrize("build, layer", [(_norm_act_net, "1"), (_inplace_block_net, "0.1")])
def test_grad_cams_default_is_named_by_the_module_that_computed_the_map(build, layer):
    """MobileViTv2's default was 'stages.4.1.conv_proj.bn.drop': the Identity that passed the norm's map on
    finished first; an in-place ReLU, which returns its input rewritten, still names the map."""
    result = probe.attribute(build(), torch.rand(3, 16, 16), "gradcam", size=16)
    assert result.layer == layer


def test_lrp_on_a_weight_standardized_conv_is_lrp_on_the_conv_it_computes():
    """captum's LRP was refused on NFNet / nf_resnet ('no rule for ScaledStdConv2d'): standardizing the
    kernel was taken for a normalization on the input's path. Its relevance is that of the plain conv with
    the kernel it convolves with (the oracle)."""
    from timm.layers import ScaledStdConv2d

    torch.manual_seed(0)
    std = nn.Sequential(ScaledStdConv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    plain.load_state_dict({"0.weight": used_kernel(std[0])[0], "0.bias": std[0].bias, "3.weight": std[3].weight,
                           "3.bias": std[3].bias})
    image = torch.rand(3, 8, 8)
    ours, oracle = (probe.attribute(net, image, "lrp", target=1, size=8).attributions["lrp"] for net in (std, plain))
    assert torch.isfinite(ours).all() and ours.abs().sum() > 0
    assert torch.allclose(ours, oracle, atol=1e-5)


def test_grad_cam_drops_a_vits_class_and_register_tokens_and_says_so():
    """timm's ViT with registers (DINOv2's): the class token, then 4 registers, then the grid. The map's
    description called the 5 dropped tokens 'class/distillation'."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=56, depth=2, embed_dim=16,
                            num_heads=2, num_classes=3).eval()
    result = probe.attribute(net, torch.rand(3, 56, 56), "gradcam", size=56)
    assert result.layer == "blocks.1.norm1"
    assert result.options["gradcam_layer"]["map"] == ("tokens (N, L, C) as a 4x4 grid after 5 leading tokens "
                                                      "(class, distillation or register tokens)")


def test_a_transformers_models_own_refusal_is_the_models_not_cnn_probes(tmp_path):
    """LeViT's attention biases fix its input size; the error its forward raises on another size went through
    cnn-probe's transformers wrapper, so it was taken for cnn-probe's own and escaped as a traceback (style
    transfer, whose style images are stretched to the size the model took once it refuses theirs)."""
    _hf_levit_config().save_pretrained(tmp_path / "levit")
    loaded = probe.load_model(f"hf:{tmp_path / 'levit'}", weights=None, device="cpu", input_size=32)
    with pytest.raises(probe.ProbeUsageError, match="cannot run on a 3x16x32"):
        probe.layers(loaded, (3, 16, 32))
    layer = "levit.encoder.stages.0"
    result = probe.style_transfer(loaded, torch.rand(3, 32, 32), torch.rand(3, 16, 32), content_layers=[layer],
                                  style_layers=[layer], steps=1, size=32, snapshots=0)
    assert torch.isfinite(result.image).all()


class _Flattened(nn.Module):
    """A map flattened to tokens by functional code, as CvT's ``CvtSelfAttentionLinearProjection``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class _SquareTokens(nn.Module):
    """conv (3 -> 16, 4x4 stride 4) -> 16 tokens of 16 channels at 16x16 px -> LayerNorm -> mean -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.tokens = nn.Conv2d(3, 16, 4, 4), _Flattened()
        self.norm, self.fc = nn.LayerNorm(16), nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.tokens(self.embed(x))).mean(1))


def test_tokens_as_many_as_channels_are_read_channels_last():
    """CvT at 64 px has 16 key/value tokens of 16 channels: the shape could not tell tokens from a channels-first
    (N, C, L), so they were read channels first, and style transfer compared a (16, 16) Gram matrix of tokens
    with a style image's (12, 12) one ('targets must come from the same layer')."""
    from probe.layout import channels_last_layers

    torch.manual_seed(0)
    net = _SquareTokens().eval()
    assert {"tokens", "norm"} <= channels_last_layers(net, torch.rand(1, 3, 16, 16))
    result = probe.style_transfer(net, torch.rand(3, 16, 16), torch.rand(3, 12, 16), content_layers=["tokens"],
                                  style_layers=["tokens"], steps=1, size=16, snapshots=0)
    assert torch.isfinite(result.image).all()


def test_a_transformers_model_left_in_train_mode_stays_in_train_mode():
    """The wrapper restored every module's flag but the transformers model's own (not one of its modules):
    a user's DINOv2 in train mode came back in eval mode from probe.attribute, maximize, feature_maps."""
    import transformers

    torch.manual_seed(0)
    net = transformers.Dinov2WithRegistersForImageClassification(transformers.Dinov2WithRegistersConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=32,
        patch_size=8, num_labels=3)).train()
    before = model_state(net)
    probe.attribute(net, torch.rand(3, 32, 32), ["saliency", "gradcam"], size=32)
    probe.feature_maps(net, torch.rand(3, 32, 32), size=32)
    assert same_state(before, model_state(net)) and net.training
    assert not probe.load_model(net).module.eval().training and not net.training  # the wrapper's mode is the model's
    net.train()
