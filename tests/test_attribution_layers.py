"""Grad-CAM's layer on every architecture (maps, channels-last, tokens), class scores of outputs that are
not plain logits (segmentation, one score, tuples), and the progress of the methods that run many images."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from conftest import model_state, same_state
from torch import nn
from torchvision.models import SwinTransformer, VisionTransformer

import probe
from probe.attribution import EXTRA_METHODS, METHODS, attribute, attribute_batch
from probe.attribution.cam import token_grid
from probe.cli.main import cli
from probe.errors import ProbeUsageError
from probe.models import as_loaded
from tinynets import tiny


@pytest.mark.parametrize("length, image, expected", [
    (197, (224, 224), (1, 14, 14)),  # ViT: the class token
    (198, (224, 224), (2, 14, 14)),  # DeiT distilled: class and distillation tokens
    (6, (32, 32), (2, 2, 2)),  # 2 extra tokens, not a 2x3 grid of a square image
    (281, (224, 320), (1, 14, 20)),
    (16, (64, 64), (0, 4, 4)),  # no extra token
    (197 + 9, (224, 224), None),  # more leading tokens than any model has
])
def test_token_grids_drop_the_fewest_leading_tokens_that_leave_a_grid_of_the_image(length, image, expected):
    assert token_grid(length, image) == expected


def test_gradcam_on_a_convolution_is_captums_layer_gradcam():
    from captum.attr import LayerAttribution, LayerGradCam

    net = tiny().eval()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ours = attribute(net, x, "gradcam", layer="conv2", target=1, size=16).attributions["gradcam"]
    loaded = as_loaded(net)
    maps = LayerGradCam(loaded, net.conv2).attribute(x, target=1, relu_attributions=True)
    theirs = LayerAttribution.interpolate(maps, (16, 16), interpolate_mode="bilinear").clamp_min(0)[0]
    assert torch.allclose(ours, theirs, atol=1e-6) and ours.abs().sum() > 0


def _vit(zero_head: bool) -> nn.Module:
    torch.manual_seed(0)
    net = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                            num_classes=3)
    if not zero_head:  # torchvision zero-initializes the head: a random ViT's score does not move
        nn.init.normal_(net.heads.head.weight)
    return net.eval()


@pytest.mark.parametrize("zero_head", [False, True])
def test_a_vits_default_is_the_last_blocks_first_norm_and_its_tokens_are_a_grid(zero_head):
    net = _vit(zero_head)
    before = model_state(net)
    result = attribute(net, torch.rand(3, 32, 32), "gradcam", size=32)
    assert result.layer == "encoder.layers.encoder_layer_1.ln_1"  # not the patch embedding, conv_proj
    assert result.options["gradcam_layer"]["map"].startswith("tokens (N, L, C) as a 4x4 grid after 1 leading")
    cam = result.attributions["gradcam"]
    assert cam.shape == (1, 32, 32) and torch.isfinite(cam).all() and (cam.abs().sum() > 0) != zero_head
    assert same_state(before, model_state(net))


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.AvgPool2d(2)], ids=["max", "avg"])
def test_the_default_is_the_map_before_a_closing_pool_not_the_pool_or_its_container(pool):
    """VGG's layout: features = (conv, relu, pool), then the head's pooling: Grad-CAM takes relu5_3's map (the
    paper's last convolutional layer), not pool5's coarser copy of it, nor the container returning that copy."""
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), pool))
    net.add_module("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)))
    result = attribute(net.eval(), torch.rand(3, 16, 16), "gradcam", size=16)
    assert result.layer == "features.1", result.layer
    assert result.options["gradcam_layer"]["map"].endswith("16x16")


def test_a_token_map_the_score_does_not_depend_on_is_refused_naming_the_default():
    with pytest.raises(ProbeUsageError, match="does not depend on any position of encoder.ln.*the default is "
                       "encoder.layers.encoder_layer_1.ln_1") as raised:
        attribute(_vit(False), torch.rand(3, 32, 32), "gradcam", size=32, layer="encoder.ln")
    assert raised.value.param == "layer"


def test_channels_last_layers_work_when_named_and_swin_defaults_to_its_final_map():
    torch.manual_seed(0)
    net = SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=[2, 2],
                          num_classes=3).eval()
    x = torch.rand(3, 32, 32)
    named = attribute(net, x, "gradcam", size=32, layer="features.1.0.norm1")  # (N, 8, 8, 8): channels last
    assert named.options["gradcam_layer"]["map"] == "channels-last (N, H, W, C) map, 8x8"
    assert named.attributions["gradcam"].abs().sum() > 0
    default = attribute(net, x, "gradcam", size=32)
    assert default.layer == "permute" and default.options["gradcam_layer"]["map"] == "(N, C, H, W) map, 4x4"


class Segmenter(nn.Module):
    """A dense head: ``{"out": (N, K, H, W)}`` like torchvision's FCN, DeepLabV3 and LRASPP."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.classifier = nn.Conv2d(8, classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.classifier(self.backbone(x))
        return {"out": nn.functional.interpolate(out, size=x.shape[-2:], mode="bilinear")}


def test_a_segmentation_output_is_explained_by_each_classs_summed_map():
    net = Segmenter().eval()
    before = model_state(net)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    result = attribute(net, x, [*METHODS, *EXTRA_METHODS], target=2, size=16, steps=4, samples=2)
    image = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(as_loaded(net)(image)["out"][0, 2].sum(), image)  # normalized as it runs
    assert torch.allclose(result.attributions["saliency"], grad[0], atol=1e-5)
    assert result.layer == "backbone.4"  # the classifier's per-class map is the output itself, passed over
    assert all(torch.isfinite(a).all() for a in result.attributions.values())
    assert set(result.skipped) <= {"lrp"} and torch.isclose(result.prediction.probabilities.sum(), torch.tensor(1.0))
    assert same_state(before, model_state(net))


class Tokens(nn.Module):
    """``(N, L, K)`` per-token scores: no class score cnn-probe can read."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


def test_an_output_without_class_scores_is_one_line_naming_the_model():
    with pytest.raises(ProbeUsageError, match=r"returned shape \(1, 256, 3\)") as raised:
        attribute(Tokens(), torch.rand(3, 16, 16), "saliency", size=16)
    assert raised.value.param == "model"


class Heads(nn.Module):
    """A tuple ``(scores, features)``; ``kind``: "logits" (3), "sigmoid" (3, multi-label) or "score" (1)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.kind = kind
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 1 if kind == "score" else 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(x))
        scores = self.fc(features.mean(dim=(2, 3)))
        return (torch.sigmoid(scores) if self.kind == "sigmoid" else scores), features


@pytest.mark.parametrize("kind", ["logits", "sigmoid", "score"])
def test_tuple_sigmoid_and_single_score_heads_run_every_method_finite(kind):
    net = Heads(kind).eval()
    before = model_state(net)
    result = attribute(net, torch.rand(3, 16, 16), [*METHODS, *EXTRA_METHODS], size=16, steps=4, samples=2)
    assert not result.skipped and result.layer == "conv"
    assert all(torch.isfinite(a).all() for a in result.attributions.values())
    assert same_state(before, model_state(net))


def test_a_batch_explains_each_image_for_its_own_target():
    net = as_loaded(tiny().eval())
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    results = attribute_batch(net, images, "saliency", targets=[0, 3, "top"], size=16)
    for image, target, result in zip(images, [0, 3, None], results):
        x = image.unsqueeze(0).requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x)[0, target if target is not None else int(net(x).argmax())], x)
        assert torch.allclose(result.attributions["saliency"], grad[0], atol=1e-6)


@pytest.mark.parametrize("method, total", [("integrated-gradients", 40), ("smoothgrad", 12),
                                           ("gradient-shap", 12), ("occlusion", 50)])
def test_methods_that_run_many_images_report_progress_to_the_end(method, total):
    calls: list[tuple[str, int, int]] = []
    attribute(tiny(), torch.rand(3, 16, 16), method, size=16, steps=40, samples=12,
              progress=lambda *call: calls.append(call))
    assert calls and calls[-1] == (method, total, total) and len(calls) > 1
    assert all(name == method and done <= total for name, done, _ in calls)


def test_gradient_shap_in_batches_is_seeded():
    first = attribute(tiny(), torch.ones(3, 16, 16), "gradient-shap", size=16, samples=12, seed=1)
    again = attribute(tiny(), torch.ones(3, 16, 16), "gradient-shap", size=16, samples=12, seed=1)
    assert torch.equal(first.attributions["gradient-shap"], again.attributions["gradient-shap"])


def test_the_cli_names_grad_cams_layer_in_one_line_silent_under_quiet(tmp_path):
    runner = CliRunner()
    loud = runner.invoke(cli, ["attribute", "digits:0", "--method", "gradcam", "--out", str(tmp_path / "a")])
    assert loud.exit_code == 0, loud.output
    assert "Grad-CAM on relu2 ((N, C, H, W) map, 11x11; the default" in loud.output
    quiet = runner.invoke(cli, ["attribute", "digits:0", "--method", "gradcam", "--quiet", "--out",
                                str(tmp_path / "b")])
    assert quiet.exit_code == 0 and "Grad-CAM on" not in quiet.output
    probe.load_model("digits")  # the zoo model is shared: nothing above changed it


def _timm_deit() -> nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                             embed_dim=16, num_heads=2, num_classes=3).eval()


def _timm_cait() -> nn.Module:
    import timm

    torch.manual_seed(0)  # class attention (ClassAttn): the class token reads the grid's keys and values
    return timm.create_model("cait_xxs24_224", pretrained=False, img_size=32, patch_size=8, depth=1,
                             depth_token_only=1, embed_dim=16, num_heads=2, num_classes=3).eval()


def _timm_xcit() -> nn.Module:
    import timm

    torch.manual_seed(0)  # cross-covariance attention (XCA), then class attention (ClassAttn)
    return timm.create_model("xcit_nano_12_p8_224", pretrained=False, img_size=32, depth=1, cls_attn_layers=1,
                             embed_dim=16, num_heads=2, num_classes=3).eval()


def _hf_vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    return ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
                                               num_attention_heads=2, intermediate_size=32, num_labels=3)).eval()


@pytest.mark.parametrize("build, layer, extra", [(_timm_deit, "blocks.1.norm1", 2), (_hf_vit, "layernorm_before", 1),
                                                 (_timm_cait, "blocks_token_only.0.norm1", 1),
                                                 (_timm_xcit, "cls_attn_blocks.0.norm1", 1)])
def test_token_models_default_to_the_norm_before_the_last_attention_not_its_keys(build, layer, extra):
    net = build()
    result = attribute(net, torch.rand(3, 32, 32), "gradcam", size=32)  # HF: its output object's .logits
    assert result.layer.endswith(layer)  # not the last attention's qkv / value projection (CaiT's attn.v before)
    assert f"4x4 grid after {extra} leading token" in result.options["gradcam_layer"]["map"]
    assert "(class, distillation or register tokens)" in result.options["gradcam_layer"]["map"]
    assert result.attributions["gradcam"].abs().sum() > 0


@pytest.mark.parametrize("kind, shown", [("logits", r"class \d \(\d+\.\d%\)"), ("sigmoid", r"class \d \(sigmoid \d+\.\d%\)"),
                                         ("score", r"class 0: score -?\d.* \(one output, no probability\)")])
def test_the_prediction_says_what_its_probabilities_are(kind, shown):
    import re

    prediction = attribute(Heads(kind).eval(), torch.rand(3, 16, 16), "saliency", size=16).prediction
    assert re.fullmatch(shown, str(prediction)), str(prediction)
    if kind == "sigmoid":  # each class its own probability (the outputs), not a softmax of probabilities
        assert torch.equal(prediction.probabilities, prediction.logits)
    if kind == "logits":
        assert torch.allclose(prediction.probabilities, prediction.logits.softmax(0))


@pytest.mark.parametrize("kind, shown", [("logits", r"\d+\.\d%"), ("sigmoid", r"sigmoid \d+\.\d%"),
                                         ("score", r"score -?\d.* \(one output, no probability\)")])
def test_the_gallery_captions_the_target_in_the_words_of_its_head(kind, shown):
    import re

    from probe.reports.attribution import entries

    result = attribute(Heads(kind).eval(), torch.rand(3, 16, 16), "saliency", size=16)
    caption = entries(result)[0].caption
    assert re.fullmatch(rf"input; target class \d: {shown}", caption), caption  # a score is not a 100% probability


def test_the_cli_opens_one_bar_per_long_method_and_flags_all_zero_maps(tmp_path, monkeypatch):
    import probe.cli.attribute as command

    class Bar:
        def __init__(self, total: int, description: str) -> None:
            self.total, self.description, self.n = total, description, 0
            opened.append(self)

        def update(self, step: int) -> None:
            self.n += step

        def close(self) -> None:
            pass

    opened: list[Bar] = []
    monkeypatch.setattr(command, "progress_bar", Bar)
    (tmp_path / "zero.py").write_text(
        "from torchvision.models import VisionTransformer\n\n"
        "def vit():\n    return VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=1, "
        "hidden_dim=8, mlp_dim=8, num_classes=3)\n")
    result = CliRunner().invoke(cli, ["attribute", "skimage:astronaut", "--model", f"{tmp_path / 'zero.py'}:vit",
                                      "--weights", "none", "--size", "32", "--method", "integrated-gradients",
                                      "--method", "smoothgrad", "--method", "gradcam", "--steps", "40",
                                      "--samples", "12", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert [(b.description, b.total, b.n) for b in opened] == [("integrated-gradients", 40, 40), ("smoothgrad", 12, 12)]
    assert "integrated-gradients, smoothgrad, gradcam gave all-zero attributions" in result.output


def test_grad_cam_takes_one_call_of_a_module_that_runs_several_times():
    """Each call of a module that runs twice is a layer of its own (tests/test_user_kinds.py checks its map against
    the formula); its plain name asks for one call."""
    from test_attribution import AuxHead

    result = attribute(AuxHead(), torch.rand(3, 16, 16), "gradcam", layer="relu#1", size=16)
    assert result.layer == "relu#1" and torch.isfinite(result.heatmaps["gradcam"]).all()
    with pytest.raises(ProbeUsageError, match="name one call: 'relu#0', 'relu#1'") as raised:
        attribute(AuxHead(), torch.rand(3, 16, 16), "gradcam", layer="relu", size=16)
    assert raised.value.param == "layer"
