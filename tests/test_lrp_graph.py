"""LRP on residual networks: the traced copy gives additions, gates, activations and the input's normalization
rules that conserve relevance, matches captum on a hand-written model, and leaves the user's model as it was."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import model_state, same_state
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

import probe
from probe.attribution import attribute
from probe.errors import ProbeUsageError
from probe.models import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, Preprocess

IMAGE = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(5))
SMALL = IMAGE[:, :16, :16]  # the ResNet's layer4 still sees 1 x 1


def _gap(model: nn.Module, image: torch.Tensor = IMAGE, target: int | None = None) -> tuple[torch.Tensor, float]:
    """LRP's relevance and ``|sum - score| / |score|`` (the score computed here, not by the code under test)."""
    result = attribute(model, image, "lrp", target=target, size=tuple(image.shape[-2:]))
    relevance = result.attributions["lrp"]
    with torch.no_grad():
        score = float(model(probe.load_model(model).preprocess.normalize(image[None]))[0, result.target])
    assert result.options["completeness"]["lrp"] == pytest.approx(abs(float(relevance.sum()) - score) / abs(score),
                                                                  rel=1e-3, abs=1e-5)
    return relevance, abs(float(relevance.sum()) - score) / abs(score)


def _resnet10() -> nn.Module:
    """torchvision's ResNet with one BasicBlock a stage (ResNet-18's code paths: in-place ``out += identity``, a
    ReLU called twice per block, downsampling shortcuts), 10 classes, random weights."""
    torch.manual_seed(0)
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10).eval()


class ExplicitBlock(nn.Module):
    """BasicBlock written for captum: one ReLU per call and captum's ``Addition_Module`` for the residual."""

    def __init__(self, block: BasicBlock) -> None:
        from captum.attr._utils.custom_modules import Addition_Module

        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2 = block.conv1, block.bn1, block.conv2, block.bn2
        self.downsample = block.downsample
        self.relu1, self.relu2, self.add = nn.ReLU(), nn.ReLU(), Addition_Module()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(self.add(out, x if self.downsample is None else self.downsample(x)))


class ExplicitResNet(nn.Module):
    """``model`` (a torchvision ResNet) rebuilt from the same modules with explicit additions: the oracle."""

    def __init__(self, model: ResNet) -> None:
        super().__init__()
        self.stem = nn.Sequential(model.conv1, model.bn1, nn.ReLU(), model.maxpool)
        self.blocks = nn.Sequential(*[ExplicitBlock(b) for layer in (model.layer1, model.layer2, model.layer3,
                                                                     model.layer4) for b in layer])
        self.avgpool, self.fc = model.avgpool, model.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.blocks(self.stem(x))), 1))


def test_lrp_on_a_resnet_conserves_relevance_and_is_captums_lrp_with_explicit_additions():
    from captum.attr import LRP

    model = _resnet10()
    before = model_state(model)
    attributes = {id(m): dict(vars(m)) for m in model.modules()}
    forwards = (ResNet.forward, BasicBlock.forward)
    relevance, gap = _gap(model, SMALL, target=3)
    assert same_state(before, model_state(model)) and (ResNet.forward, BasicBlock.forward) == forwards
    assert {id(m): dict(vars(m)) for m in model.modules()} == attributes and model.relu.inplace
    loaded = probe.load_model(model)
    x = loaded.preprocess.normalize(SMALL[None]).requires_grad_(True)
    with torch.no_grad():  # the classifier's bias keeps its share (the only bias: BN's shift is 0 at random init)
        kept = float(model(x)[0, 3] - model.fc.bias[3])
    assert float(relevance.sum()) == pytest.approx(kept, rel=1e-4) and 0 < gap < 0.2
    oracle = ExplicitResNet(model).eval()
    expected = LRP(oracle).attribute(x, target=3)[0]  # captum itself, on the user's modules (they keep its marks)
    assert torch.allclose(relevance, expected, rtol=1e-4, atol=1e-7)


def _without_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(getattr(module, "bias", None), nn.Parameter):
                module.bias.zero_()
    return model


def test_lrp_on_a_resnet_without_biases_sums_to_the_score():
    """The epsilon rule loses relevance only to biases: without them a residual network conserves it to roundoff
    (the additions' old plain gradient doubled it at each of the 4 blocks)."""
    assert _gap(_without_biases(_resnet10()), SMALL)[1] < 1e-4


def _loaded(net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> LoadedModel:
    return LoadedModel("net", net.eval(), Preprocess(mean, std, 3, (16, 16)), labels=tuple("abcd"))


def test_relevance_passes_the_input_normalization_unchanged():
    """Through autograd a pixel got its normalized value's relevance divided by std: 4.4 times the score."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(6, 4, bias=False))
    image = IMAGE[:, :16, :16]
    plain = attribute(_loaded(net, (0.0,) * 3, (1.0,) * 3), image, "lrp", target=0).attributions["lrp"]
    loaded = _loaded(net, IMAGENET_MEAN, IMAGENET_STD)
    result = attribute(loaded, image, "lrp", target=0)
    with torch.no_grad():
        score = float(net(loaded.preprocess.normalize(image[None]))[0, 0])
    assert float(result.attributions["lrp"].sum()) == pytest.approx(score, rel=1e-4)
    assert result.options["completeness"]["lrp"] < 1e-4 and plain.shape == result.attributions["lrp"].shape


class Excited(nn.Module):
    """A squeeze-and-excitation block (torchvision's) between bias-free layers, ReLU6 and functional SiLU."""

    def __init__(self) -> None:
        from torchvision.ops import SqueezeExcitation

        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.act = nn.ReLU6()
        self.se = SqueezeExcitation(8, 4)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.fc = nn.Linear(8, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.act(self.conv(x) * 4))  # scaled so ReLU6 saturates somewhere
        x = F.silu(self.conv2(x)) * 0.5
        return self.fc(x.mean((2, 3)))


def test_gates_activations_and_scalings_conserve_relevance():
    """The gate (sigmoid) gets no relevance, the signal all of it; ReLU6, SiLU and a scaling pass it unchanged
    (captum refused ReLU6 and Sigmoid; through autograd ReLU6 dropped the saturated units' relevance)."""
    model = Excited().eval()
    with torch.no_grad():
        x = probe.load_model(model).preprocess.normalize(IMAGE[None])
        assert float(model.act(model.conv(x) * 4).eq(6).float().mean()) > 0.01
    relevance, gap = _gap(model)
    assert gap < 1e-4 and torch.isfinite(relevance).all()


class SharedInput(nn.Module):
    """timm DLA's root: a child concatenated into a conv and added to its output, so one tensor feeds a layer
    directly (the addition) and through another operation (the concatenation)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv0 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.root = nn.Conv2d(8, 4, 1, bias=False)
        self.fc = nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        child = torch.relu(self.conv0(x))
        out = self.root(torch.cat([child, child.flip(-1)], 1))
        out += child
        return self.fc(F.adaptive_avg_pool2d(torch.relu(out), 1).flatten(1))


def test_a_tensor_that_feeds_a_layer_and_a_concatenation_conserves_relevance():
    """captum hooks a layer's input tensor and multiplies all its relevance by it, also what came through the
    concatenation; each layer's input gets its own alias."""
    assert _gap(SharedInput().eval())[1] < 1e-4


class InPlace(nn.Module):
    """In-place methods in forward: ``add_`` (the tensor's later users must see the sum) and ``relu_``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.fc = nn.Linear(3, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y.add_(x)
        y.relu_()
        return self.fc(y.mean((2, 3)))


def test_in_place_additions_keep_their_meaning_on_the_copy():
    assert _gap(InPlace().eval())[1] < 1e-4


class Attention(nn.Module):
    """Self-attention over the pixels: ``softmax(q k^T) v`` multiplies activations."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)
        t = torch.softmax(t @ t.transpose(1, 2), -1) @ t
        return self.fc(t.mean(1))


class Branching(nn.Module):
    """A forward whose control flow reads an activation's value: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if x.sum() > 0:
            x = -x
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize(("model", "words"), [(Attention, "matmul"), (Branching, "cannot trace")])
def test_operations_without_a_rule_and_untraceable_forwards_are_refused_in_one_line(model, words):
    net = model().eval()
    before = model_state(net)
    with pytest.raises(ProbeUsageError, match=words) as error:
        attribute(net, IMAGE[:, :8, :8], "lrp", size=8)
    assert error.value.param == "method" and "\n" not in str(error.value) and "--method" in str(error.value)
    assert same_state(before, model_state(net))
    both = attribute(net, IMAGE[:, :8, :8], ["saliency", "lrp"], size=8)
    assert "lrp" in both.skipped and "saliency" in both.heatmaps


def test_lrp_on_resnet18_from_the_cli_records_its_gap(tmp_path):
    import json

    from click.testing import CliRunner

    from probe.cli.main import cli

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["attribute", "digits:3", "--model", "resnet18", "--weights", "none",
                                      "--model-arg", "num_classes=10", "--method", "lrp", "--size", "16",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    gap = manifest["options"]["completeness"]["lrp"]
    assert 0 < gap < 1  # the classifier's bias keeps a share; plain gradients through 8 additions multiplied it


def _bn_net(norm: nn.Module) -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 6, 3, bias=False), norm, nn.Conv2d(6, 6, 3, bias=False),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4, bias=False)).eval()


def test_a_functional_batch_norm_gets_the_rule_of_nn_batchnorm2d():
    """timm's BatchNormAct2d calls F.batch_norm in its forward: it had plain gradients (scaled by gamma / sigma);
    it gets captum's BatchNorm2d rule, so it gives what nn.BatchNorm2d followed by its activation gives."""
    from timm.layers import BatchNormAct2d

    fused = BatchNormAct2d(6, act_layer=nn.SiLU)
    with torch.no_grad():
        for tensor in (fused.weight, fused.bias, fused.running_mean):
            tensor.normal_(generator=torch.Generator().manual_seed(6))
        fused.running_var.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(7))
    plain = nn.BatchNorm2d(6)
    plain.load_state_dict(fused.state_dict())
    ours = attribute(_bn_net(fused), IMAGE[:, :16, :16], "lrp", target=1).attributions["lrp"]
    expected = attribute(_bn_net(nn.Sequential(plain, nn.SiLU())), IMAGE[:, :16, :16], "lrp", target=1)
    assert torch.allclose(ours, expected.attributions["lrp"], rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        fused.bias.zero_()
        fused.running_mean.zero_()
    assert _gap(_bn_net(fused), IMAGE[:, :16, :16])[1] < 1e-4


class Flags(nn.Module):
    """A sum with ``keepdim`` given as a positional True (not in place: ``y`` stays ``y``), next to a functional
    ReLU whose True is ``inplace``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.fc = nn.Linear(5, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x), True)
        total = y.sum(1, True)
        return self.fc(torch.cat([y.mean((2, 3)), total.mean((2, 3))], 1))


def test_a_positional_true_is_inplace_only_where_the_function_says_so():
    assert _gap(Flags().eval(), IMAGE[:, :8, :8])[1] < 1e-4


class Dropped(nn.Module):
    """timm's heads: ``F.dropout(x, p, training=self.training)``, the identity in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.fc = nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1).flatten(1)
        return self.fc(F.dropout(x, p=0.5, training=self.training))


def test_a_functional_dropout_in_eval_mode_passes_relevance():
    assert _gap(Dropped().eval(), IMAGE[:, :8, :8])[1] < 1e-4


class _Inner(nn.Module):
    """A model whose output is a namespace with ``.logits``, as transformers' models return."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc = nn.Conv2d(3, 4, 3, bias=False), nn.Linear(4, 3, bias=False)

    def forward(self, pixel_values: torch.Tensor):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.fc(torch.relu(self.conv(pixel_values)).mean((2, 3))))


def test_lrp_follows_a_wrapper_that_shares_its_models_modules_without_holding_it():
    # cnn-probe's transformers wrapper keeps the model out of its children: fx refused every hf: model with
    # "module is not installed as a submodule", whatever the model's forward
    from probe.models.sources.hf_models import HFClassifier

    result = attribute(HFClassifier(_Inner()), torch.rand(3, 16, 16), "lrp", size=16)
    assert abs(result.options["completeness"]["lrp"]) < 1e-4  # no biases: the relevance sums to the score


class _TwoOutputs(nn.Module):
    """Logits and features, as a plain tuple or a namedtuple (``named``)."""

    def __init__(self, named: bool) -> None:
        super().__init__()
        import collections

        self.out = collections.namedtuple("Out", "logits features") if named else (lambda *values: values)
        self.conv, self.relu, self.fc = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.relu(self.conv(x)).mean((2, 3))
        return self.out(self.fc(features), features)


def test_lrp_reads_a_namedtuple_of_outputs_as_a_tuple():
    """A model returning a namedtuple was refused: 'captum's LRP has no rule for Out' (its construction taken for
    an operation on activations), while the same model returning a plain tuple ran."""
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    heats = []
    for named in (False, True):
        torch.manual_seed(0)
        heats.append(attribute(_TwoOutputs(named).eval(), image, "lrp", size=16).attributions["lrp"])
    assert torch.equal(heats[0], heats[1]) and heats[1].abs().sum() > 0


class _Excited(nn.Module):
    """A conv whose channels a squeeze-excitation gate scales, the gate ``gate``."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.conv, self.relu, self.squeeze, self.gate = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1), gate
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.conv(x))
        h = h * self.gate(self.squeeze(h.mean((2, 3), keepdim=True)))
        return self.fc(h.mean((2, 3)))


def test_lrp_takes_another_librarys_sigmoid_module_for_the_gate_it_is():
    """timm's squeeze-excitation gates are its own ``Sigmoid`` class (rexnet): the product was refused ('no rule
    for mul'), where torch's nn.Sigmoid made it a gate."""
    from timm.layers.activations import Sigmoid

    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    heats = []
    for gate in (nn.Sigmoid(), Sigmoid()):
        torch.manual_seed(0)
        heats.append(attribute(_Excited(gate).eval(), image, "lrp", size=16).attributions["lrp"])
    assert torch.equal(heats[0], heats[1]) and heats[1].abs().sum() > 0
