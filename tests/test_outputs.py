"""Models whose output is not one (N, K) tensor of logits: probe.outputs reads each kind once, and every command
that reads an output (activations, attribute, class objectives) gives it its meaning or refuses it in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import model_state, same_state
from outputnets import head
from torch import nn

import probe
from probe import objectives as O
from probe.cli.main import cli
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.outputs import class_scores, output_tensor, prediction_of, read_output, tensor_kind

IMAGE = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))


def _output(kind: str, half: bool = False) -> object:
    """``head(kind)``'s output for two images, with its graph (as attribution and activations run it)."""
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    return head(kind, half)(x)


@pytest.mark.parametrize("kind, read", [
    ("regression", "score"), ("score", "score"), ("sigmoid", "sigmoid"), ("binary", "sigmoid"), ("softmax", "softmax"),
    ("embedding", "embedding"), ("two-heads", "logits"), ("list", "logits"), ("heads-dict", "outputs"),
    ("maps", "outputs"), ("detections", "detections"), ("depth", "depth"), ("tokens", "other"), ("fp16", "logits"),
])
def test_each_kind_of_output_is_read_for_what_it_is(kind, read):
    assert read_output(_output(kind), 2).kind == read


def test_a_sigmoid_is_seen_through_a_dtype_cast_and_a_dense_map_by_its_channels():
    assert read_output(_output("sigmoid", half=True), 2).kind == "sigmoid"
    assert tensor_kind(torch.zeros(2, 3, 4, 4)) == "dense" and tensor_kind(torch.zeros(2, 1, 4, 4)) == "dense-score"
    assert tensor_kind(torch.zeros(5, 4), batch=2) == "detections"  # a row per box, not per image


def test_a_dict_is_read_by_logits_then_out_then_its_only_tensor():
    logits, out = torch.zeros(1, 3), torch.zeros(1, 3, 4, 4)
    assert read_output({"features": torch.zeros(1, 8, 2, 2), "logits": logits}).tensor is logits
    assert read_output({"aux": torch.zeros(1, 3, 4, 4), "out": out}).kind == "dense"
    assert read_output({"scores": logits}).tensor is logits
    assert output_tensor({"0": out, "1": out}) is None and output_tensor([{"boxes": logits}]) is None


def test_class_scores_average_or_sum_a_dense_map_and_take_one_score_as_a_column():
    dense = torch.arange(8.0).reshape(1, 2, 2, 2)
    assert class_scores(dense).tolist() == [[1.5, 5.5]] and class_scores(dense, "sum").tolist() == [[6.0, 22.0]]
    assert class_scores(torch.tensor([0.5, 2.0])).shape == (2, 1)


def _tiny_hf(base: bool, return_dict: bool = True) -> nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification, ResNetModel

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1], num_labels=3, return_dict=return_dict)
    return (ResNetModel if base else ResNetForImageClassification)(config).eval()


@pytest.mark.parametrize("return_dict", [True, False])
def test_a_transformers_base_model_gives_features_and_its_classifier_logits(return_dict):
    x = torch.rand(1, 3, 32, 32)
    base = _tiny_hf(True, return_dict)
    assert read_output(base(x), 1, base).kind == "features"  # its (N, C, H, W) map is not a segmentation
    classifier = _tiny_hf(False, return_dict)
    assert read_output(classifier(x), 1, classifier).kind == "logits"


def _without_classifier(source: str) -> nn.Module:
    import timm
    import torchvision

    torch.manual_seed(0)
    if source == "timm":
        return timm.create_model("resnet18", pretrained=False, num_classes=0).eval()  # (N, 512) pooled features
    net = torchvision.models.resnet18(weights=None)
    net.fc = nn.Identity()  # the feature-extractor idiom
    return net.eval()


@pytest.mark.parametrize("source", ["timm", "torchvision"])
def test_a_model_whose_classifier_was_removed_gives_features_not_512_classes(source):
    net = _without_classifier(source)
    shown = probe.feature_maps(net, IMAGE, ["conv1"], size=32)
    assert shown.prediction is None and shown.output.startswith("features of a model without a head, shape (1, 512)")
    with pytest.raises(ProbeUsageError, match="a model without a head gives features") as raised:
        probe.attribute(net, IMAGE, "saliency", size=32)
    assert raised.value.param == "model"


def test_activations_shows_each_head_in_its_own_words():
    shown = {kind: probe.feature_maps(head(kind), IMAGE, ["conv"], size=16) for kind in
             ("regression", "sigmoid", "binary", "softmax", "embedding", "maps", "detections", "depth")}
    assert str(shown["regression"].prediction).startswith("class 0: score ")  # not "class 0 (100.0%)"
    assert "(sigmoid " in str(shown["sigmoid"].prediction)
    assert str(shown["binary"].prediction).startswith("class 0 (sigmoid ")  # (N,) after a sigmoid: a probability
    softmax = shown["softmax"].prediction
    assert softmax is not None and torch.equal(softmax.probabilities, softmax.logits)  # not a softmax of a softmax
    for kind, words in (("embedding", "an embedding"), ("maps", "several outputs, an OrderedDict of 2"),
                        ("detections", "detections"), ("depth", "a depth map")):
        assert shown[kind].prediction is None and shown[kind].output.startswith(words), shown[kind].output


def test_the_activations_gallery_charts_probabilities_but_not_a_single_score(tmp_path):
    from probe.reports.activations import extras

    regression = probe.feature_maps(head("regression"), IMAGE, ["conv"], size=16)
    assert [file for file, _, _ in extras(regression)] == []
    manifest = json.loads((regression.save(tmp_path / "r") / "manifest.json").read_text())
    assert manifest["prediction"] == [{"index": 0, "label": "class 0", "score": pytest.approx(
        float(regression.prediction.logits[0]))}] and manifest["prediction_kind"] == "score"
    sigmoid = probe.feature_maps(head("sigmoid"), IMAGE, ["conv"], size=16)
    assert [caption for _, caption, _ in extras(sigmoid)] == [f"prediction: {sigmoid.prediction}"]


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_a_non_finite_output_is_one_runtime_line(kind):
    for run in (lambda: probe.feature_maps(head(kind), IMAGE, size=16),
                lambda: probe.attribute(head(kind), IMAGE, size=16)):
        with pytest.raises(ProbeRuntimeError, match="output for this image is NaN or infinite; its weights are finite"):
            run()


@pytest.mark.parametrize("kind", ["fp16", "bf16"])
def test_an_output_in_half_precision_is_read_in_float(kind):
    prediction = probe.feature_maps(head(kind), IMAGE, size=16).prediction
    assert prediction is not None and prediction.logits.dtype == torch.float32
    assert torch.isclose(prediction.probabilities.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("kind, words", [
    ("embedding", "unit L2 norm, an embedding"), ("heads-dict", "none of its tensors is named 'logits' or 'out'"),
    ("maps", "an OrderedDict of 2 tensor"), ("detections", "detections, not a row of class scores per image"),
    ("depth", "a depth map, no classes"), ("tokens", r"returned shape \(1, 256, 4\)"),
])
def test_attribution_refuses_an_output_without_class_scores_in_one_line(kind, words):
    net = head(kind)
    before = model_state(net)
    with pytest.raises(ProbeUsageError, match=words) as raised:
        probe.attribute(net, IMAGE, "saliency", size=16)
    assert raised.value.param == "model" and "\n" not in str(raised.value)
    assert same_state(before, model_state(net))


def test_attribution_refuses_a_transformers_base_model():
    with pytest.raises(ProbeUsageError, match="a model without a head gives features") as raised:
        probe.attribute(_tiny_hf(True, return_dict=False), torch.rand(3, 32, 32), "saliency", size=32)
    assert raised.value.param == "model"


@pytest.mark.parametrize("kind", ["regression", "score"])
def test_a_class_objective_climbs_a_single_score(kind):
    net = head(kind)
    result = probe.maximize(net, O.class_logit(0), steps=3, image_size=16, preset="plain", lr=0.1)
    assert result.history[-1, 0] > result.history[0, 0]
    assert result.outputs is not None and result.outputs.shape == (1, 1)


@pytest.mark.parametrize("objective", [O.neuron("output", 0), O.channel("output", 0), O.class_logit(0)])
def test_every_objective_reads_one_value_per_image_as_one_unit(objective):
    result = probe.maximize(head("score"), objective, steps=2, image_size=16, preset="plain")
    check = head("score")(probe.load_model(head("score")).preprocess.normalize(result.images))
    assert torch.allclose(result.scores, check, atol=1e-5)  # it raised IndexError (tuple index out of range)


@pytest.mark.parametrize("kind", ["maps", "heads-dict", "detections"])
def test_the_output_of_a_dict_of_maps_or_detections_is_no_first_tensor(kind):
    # 'output' was the first tensor found: an FPN's first map, a two-head dict's first head, a detector's boxes
    with probe.record(head(kind).eval(), "output") as acts:
        head(kind).eval()(torch.rand(1, 3, 16, 16))
    assert "output" not in acts
    for objective in (O.class_logit(0), O.neuron("output", 0)):
        with pytest.raises(ProbeUsageError, match="holds no tensor known to be its prediction") as raised:
            probe.maximize(head(kind), objective, steps=1, image_size=16)
        assert raised.value.param == "objective"
    with pytest.raises(ProbeUsageError, match="cannot be dreamed on") as raised:
        probe.dream(head(kind).eval(), IMAGE, layers=["output"], octaves=1, steps=1)
    assert raised.value.param == "layer"


def test_a_dict_output_records_its_logits_and_a_score_is_dreamed_on_and_has_no_probability():
    net = head("two-heads").eval()
    with probe.record(net, "output") as acts:
        logits = net(IMAGE[None])[0]
    assert torch.equal(acts["output"], logits)
    dreamed = probe.dream(head("score").eval(), IMAGE, layers=["output"], octaves=1, steps=2, jitter=0)
    assert not torch.equal(dreamed.image, IMAGE)  # (N,) raised "not enough values to unpack"
    assert probe.maximize(head("score"), O.class_logit(0), steps=1, image_size=16).probabilities is None


def test_a_class_objective_refuses_detections_and_the_probability_of_one_score():
    x = torch.rand(2, 3, 8, 8)
    boxes = O.Context({"output": torch.zeros(5, 4)}, x)
    with pytest.raises(ProbeUsageError, match=r"gives \(5, 4\): detections, not a row of class scores per image") as raised:
        O.class_logit(0)(boxes)
    assert raised.value.param == "objective"
    with pytest.raises(ProbeUsageError, match="no softmax probability") as raised:
        O.class_logit(0, probability=True)(O.Context({"output": torch.zeros(2)}, x))
    assert raised.value.param == "objective"


def test_prediction_of_reads_a_segmentation_map_at_a_quarter_of_the_resolution():
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 2] = 5.0
    prediction = prediction_of(probe.load_model(head()), {"logits": logits})  # Segformer's SemanticSegmenterOutput
    assert prediction is not None and prediction.kind == "dense" and prediction.index == 2
    assert str(prediction).startswith("class 2 (98.7% of the image)")


def _run(args: list[str], tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "run")])
    return result.exit_code, result.output


def test_the_cli_says_a_regression_score_and_refuses_to_explain_a_dict_of_maps(tmp_path):
    code, output = _run(["activations", "digits:0", "--model", "outputnets:head", "--size", "16"], tmp_path)
    assert code == 0 and "prediction class 0: score " in output and "%" not in output, output
    code, output = _run(["activations", "digits:0", "--model", "outputnets:head", "--model-arg", "kind=maps",
                         "--size", "16", "--force"], tmp_path)
    assert code == 0 and "output several outputs, an OrderedDict of 2 tensor(s) ('0' (1, 4, 16, 16)" in output, output
    code, output = _run(["attribute", "digits:0", "--model", "outputnets:head", "--model-arg", "kind=maps",
                         "--size", "16"], tmp_path / "b")
    assert code == 2 and "Invalid value for '--model'" in output and "Traceback" not in output, output


def test_small_probabilities_keep_a_digit_that_is_not_zero():
    """1,000 equal classes each read 0.1%, and one of 1e-5 reads 0.001%, not all '0.0%'."""
    from probe.outputs import Prediction

    probabilities = torch.full((1000,), 1e-3)
    probabilities[1] = 1e-5
    shown = Prediction(logits=probabilities.log(), probabilities=probabilities,
                       labels=tuple(f"class {i}" for i in range(1000)))
    assert shown.describe(0) == "0.1%"
    assert shown.describe(1) == "0.001%"
