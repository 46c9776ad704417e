"""Architectures whose layers lay out positions unlike a CNN's: tokens folded into the batch, tokens out of
raster order, outputs without class scores (the third architecture sweep)."""

from __future__ import annotations

import pytest
import torch
from conftest import model_state, same_state

import probe


def _tnt() -> torch.nn.Module:
    """timm's TNT at 32 px: 4 patch tokens (and a class token), each holding 16 pixel tokens ``(N * 4, 16, 8)``."""
    from timm.models.tnt import TNT

    torch.manual_seed(0)
    return TNT(img_size=32, embed_dim=16, inner_dim=8, depth=2, num_heads_inner=1, num_heads_outer=2,
               num_classes=3).eval()


def test_grad_cam_takes_no_layer_whose_dim_0_is_not_the_batch():
    """TNT's blocks return (pixel tokens, patch tokens); the pixel tokens fold the patches into dim 0. Grad-CAM
    took them as the default ('blocks.1', 'a 4x4 grid') and drew the first patch's pixel grid over the whole
    image; a pixel-token layer named by hand did the same."""
    net = _tnt()
    before = model_state(net)
    result = probe.attribute(net, torch.rand(3, 32, 32), "gradcam", size=32)
    assert result.layer == "blocks.1.norm_out"  # the outer tokens before the last attention, as for a ViT
    assert result.options["gradcam_layer"]["map"].startswith("tokens (N, L, C) as a 2x2 grid after 1 leading")
    refusal = "Grad-CAM needs a layer whose dim 0 is the image batch; 'blocks.0.norm_in' gives"
    with pytest.raises(probe.ProbeUsageError, match=refusal) as caught:
        probe.attribute(net, torch.rand(3, 32, 32), "gradcam", size=32, layer="blocks.0.norm_in")
    assert caught.value.param == "layer"
    assert same_state(before, model_state(net))


def _vitmae() -> torch.nn.Module:
    """transformers' ViTMAE at 32 px: its forward masks 75% of the 4 patches at random (``torch.rand``)."""
    import transformers

    torch.manual_seed(0)
    return transformers.ViTMAEModel(transformers.ViTMAEConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=32,
        patch_size=16)).eval()


def _global_states() -> tuple[object, ...]:
    import random

    import numpy as np

    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()


def _same_states(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1] and (a[2] == b[2]).all()


def test_a_model_that_draws_random_numbers_itself_leaves_the_callers_generators_and_repeats():
    """ViTMAE draws its patch mask from torch's global generator in eval mode: every command moved the
    caller's generator (probe.layers, feature maps, dream, style) and drew another mask on every call."""
    net, image = _vitmae(), torch.rand(3, 32, 32)
    layer = "layers.0.mlp.fc2"
    states = _global_states()
    maps = [probe.feature_maps(net, image, layer, size=32).maps[layer] for _ in range(2)]
    probe.layers(net, (3, 32, 32))
    dreams = [probe.dream(net, image, layers=[layer], octaves=1, steps=2).image for _ in range(2)]
    assert _same_states(states, _global_states())
    assert torch.equal(*maps) and torch.equal(*dreams)


def test_grad_cams_default_with_a_zero_head_followed_by_a_parameter_free_leaf():
    """timm's ClassifierHead flattens after its fc, which Sequencer2d initializes to zero: the score gave no
    gradient, and the random direction that judges the layers then was put at the flatten's input (the fc's
    output), which reaches nothing: Grad-CAM found no layer. The direction goes to the classifier's input."""
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 3)
    torch.nn.init.zeros_(head.weight)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), head, torch.nn.Flatten()).eval()
    result = probe.attribute(net, torch.rand(3, 16, 16), "gradcam", size=16)
    assert result.layer == "1"


def _hiera() -> torch.nn.Module:
    """timm's Hiera at 32 px: 8x8 tokens unrolled into mask units, pooled to 4x4 and 2x2, the last stage's
    tokens back in raster order (q_pool=2 consumes both unroll strides)."""
    from timm.models.hiera import Hiera

    torch.manual_seed(0)
    return Hiera(img_size=(32, 32), embed_dim=8, num_heads=1, stages=(1, 1, 1), q_pool=2, mask_unit_size=(4, 4),
                 mask_unit_attn=(True, False, False), num_classes=3).eval()


def test_grad_cam_measures_tokens_that_ran_after_a_reordering_and_refuses_those_out_of_raster_order():
    """Hiera's tokens are in mask-unit order until its last stage: a Grad-CAM of an earlier stage read as a
    raster grid put every position elsewhere, silently. The default (the last stage) is measured to be in
    raster order and kept; an earlier stage named by hand is refused naming --layer."""
    net, image = _hiera(), torch.rand(3, 32, 32)
    before = model_state(net)
    result = probe.attribute(net, image, "gradcam", size=32)
    assert result.layer == "blocks.2" and result.options["gradcam_layer"]["map"] == "tokens (N, L, C) as a 2x2 grid"
    with pytest.raises(probe.ProbeUsageError, match="blocks.0's .* tokens ran after the model reordered") as caught:
        probe.attribute(net, image, "gradcam", size=32, layer="blocks.0")
    assert caught.value.param == "layer" and "the default is blocks.2" in str(caught.value)
    assert same_state(before, model_state(net))


def test_tokens_moved_by_an_unrolling_are_told_from_tokens_computed_anew():
    from probe.attribution.cam import _shuffled

    tokens = torch.randn(2, 16, 8)
    assert _shuffled(tokens, tokens[:, torch.randperm(16)])  # reordered (Hiera's unroll)
    assert _shuffled(tokens, tokens[:, [3, 9, 1]])  # a subset, in another order (random masking)
    assert not _shuffled(tokens, tokens.clone())  # the same order
    assert not _shuffled(tokens, tokens + 0.5)  # new values (a residual addition)
    assert not _shuffled(tokens, torch.cat([tokens[:, :1], tokens], 1))  # a class token added


class _Shuffled(torch.nn.Module):
    """Patch tokens reordered by functional code between two modules (as transformers' Hiera unrolls them):
    conv 4x4/4 -> 4x4 tokens -> a fixed permutation -> LayerNorm -> Linear -> mean -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.norm = torch.nn.Conv2d(3, 8, 4, 4), torch.nn.LayerNorm(8)
        self.mix, self.fc = torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)
        self.register_buffer("order", torch.randperm(16, generator=torch.Generator().manual_seed(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)[:, self.order]
        return self.fc(self.mix(self.norm(tokens)).mean(1))


def test_tokens_reordered_by_functional_code_are_measured_too():
    torch.manual_seed(0)
    net, image = _Shuffled().eval(), torch.rand(3, 16, 16)
    assert probe.attribute(net, image, "gradcam", size=16).layer == "embed"  # 'mix' is out of raster order
    with pytest.raises(probe.ProbeUsageError, match="mix's .* tokens ran after the model reordered"):
        probe.attribute(net, image, "gradcam", size=16, layer="mix")


def test_a_transformers_task_model_that_is_its_own_base_model_is_read_by_its_task():
    """DepthAnythingForDepthEstimation's base_model_prefix names no submodule, so transformers gives the model
    itself as its base model, and its depth map was read as 'a model without a head gives features'."""
    import transformers

    from probe.outputs import read_output

    torch.manual_seed(0)
    backbone = transformers.Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, image_size=28, patch_size=14,
                                         reshape_hidden_states=False, out_features=["stage1", "stage2"])
    net = transformers.DepthAnythingForDepthEstimation(transformers.DepthAnythingConfig(
        backbone_config=backbone, neck_hidden_sizes=[8, 8], fusion_hidden_size=8, head_hidden_size=8,
        reassemble_hidden_size=16, reassemble_factors=[2, 1], patch_size=14)).eval()
    with torch.no_grad():
        assert read_output(net(torch.rand(1, 3, 28, 28)), 1, net).kind == "depth"
    with pytest.raises(probe.ProbeUsageError, match="a depth map, no classes"):
        probe.attribute(net, torch.rand(3, 28, 28), "saliency", size=28)


def test_a_dream_takes_no_layer_whose_dim_0_is_not_the_batch():
    """A dream reads image 0 of dim 0: on TNT's pixel tokens that was the first patch's, dreamed on as the
    image's, without a word; maximize and Grad-CAM refused the layer."""
    net = _tnt()
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(probe.ProbeUsageError, match="a dream needs a layer whose dim 0 is the image batch; "
                                                    "'blocks.0.norm_in' gives") as caught:
        probe.dream(net, image, ["blocks.0.norm_in"], steps=1, octaves=1)
    assert caught.value.param == "layer"
    assert probe.dream(net, image, ["blocks.1.norm_out"], steps=1, octaves=1).image.shape[-2:] == (32, 32)
