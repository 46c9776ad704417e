"""Objectives on hand-made activations: exact values, signs, one score per image, and the algebra."""

from __future__ import annotations

import pytest
import torch

from probe import objectives as O
from probe.errors import ProbeUsageError


@pytest.fixture
def ctx() -> O.Context:
    """Two images; conv: (2, 3, 3, 3) holding 0..53; fc: (2, 4); output logits (2, 3); images (2, 1, 2, 2)."""
    conv = torch.arange(54, dtype=torch.float32).view(2, 3, 3, 3)
    fc = torch.tensor([[1.0, -2.0, 3.0, 0.5], [4.0, 5.0, -6.0, 7.0]])
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
    images = torch.tensor([[[[0.0, 1.0], [0.5, 0.25]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    return O.Context({"conv": conv, "fc": fc, "output": logits}, images)


def test_channel_is_the_degree_of_activation_one_unit_per_image(ctx):
    conv = ctx("conv")
    assert torch.equal(O.channel("conv", [0, 2])(ctx), torch.stack([conv[0, 0].sum(), conv[1, 2].sum()]))
    assert torch.equal(O.channel("conv", 1)(ctx), conv[:, 1].sum(dim=(1, 2)))  # one unit: every image
    assert torch.allclose(O.channel("conv", [0, 2], reduce="mean")(ctx), torch.tensor([4.0, 49.0]))
    assert torch.equal(O.channel("fc", [2, 3])(ctx), torch.tensor([3.0, 7.0]))  # a linear layer's units


def test_neuron_takes_the_centre_or_a_position(ctx):
    assert torch.equal(O.neuron("conv", [0, 1])(ctx), torch.tensor([4.0, 40.0]))
    assert torch.equal(O.neuron("conv", 0, y=0, x=2)(ctx), torch.tensor([2.0, 29.0]))
    assert torch.equal(O.neuron("fc", 1)(ctx), torch.tensor([-2.0, 5.0]))
    with pytest.raises(ProbeUsageError, match="outside conv's 3x3 map"):
        O.neuron("conv", 0, y=3, x=0)(ctx)


def test_class_logit_and_probability(ctx):
    assert torch.equal(O.class_logit([0, 1])(ctx), torch.tensor([2.0, 3.0]))
    expected = torch.tensor([2.0, 0.0, -1.0]).softmax(0)[0]
    assert O.class_logit(0, probability=True)(ctx)[0] == pytest.approx(float(expected))
    assert O.class_logit(0).layers == {"output"} and O.class_logit(0, layer="fc2").layers == {"fc2"}
    conv = ctx("conv")  # a (N, classes, H, W) layer is a dense prediction: the class's logit over its positions
    assert torch.equal(O.class_logit([0, 2], layer="conv")(ctx), torch.stack([conv[0, 0].mean(), conv[1, 2].mean()]))
    tokens = O.Context({"tokens": torch.zeros(2, 3, 4)}, ctx.images)
    with pytest.raises(ProbeUsageError, match="\\(N, classes\\) logits") as info:
        O.class_logit(0, layer="tokens")(tokens)
    assert info.value.param == "layer"


def test_direction_dot_product_and_cosine(ctx):
    fc = ctx("fc")
    v = torch.tensor([1.0, 0.0, 0.0, 1.0])
    assert torch.equal(O.direction("fc", v)(ctx), fc[:, 0] + fc[:, 3])
    conv = ctx("conv")
    w = torch.tensor([0.0, 1.0, 0.0])
    assert torch.equal(O.direction("conv", w)(ctx), conv[:, 1].sum(dim=(1, 2)))
    per_image = O.direction("conv", torch.eye(3)[[0, 2]])
    assert per_image.units == (0, 1) and torch.equal(per_image(ctx), O.channel("conv", [0, 2])(ctx))
    cosine = O.direction("conv", torch.ones(3), cosine=True, reduce="mean")(ctx)
    assert ((cosine > 0.5) & (cosine <= 1.0 + 1e-6)).all()
    with pytest.raises(ProbeUsageError, match="3 channels"):
        O.direction("conv", torch.ones(4))(ctx)


def test_diversity_is_minus_the_gram_similarity():
    same = torch.ones(3, 2, 2, 2)
    context = O.Context({"l": same}, torch.zeros(3, 1, 2, 2))
    assert torch.allclose(O.diversity("l")(context), torch.full((3,), -1.0))
    orthogonal = torch.zeros(2, 2, 1, 1)
    orthogonal[0, 0] = 1.0
    orthogonal[1, 1] = 1.0
    context = O.Context({"l": orthogonal}, torch.zeros(2, 1, 2, 2))
    assert torch.allclose(O.diversity("l")(context), torch.zeros(2))
    groups = torch.cat([same[:2], orthogonal.expand(2, 2, 2, 2)])
    context = O.Context({"l": groups}, torch.zeros(4, 1, 2, 2))
    assert torch.allclose(O.diversity("l", group=2)(context), torch.tensor([-1.0, -1.0, 0.0, 0.0]))
    with pytest.raises(ProbeUsageError, match="groups of 3"):
        O.diversity("l", group=3)(context)


def test_penalties_on_the_image(ctx):
    assert torch.equal(O.l1()(ctx), torch.tensor([1.75, 4.0]))
    assert torch.allclose(O.l1(constant=0.5)(ctx), torch.tensor([1.25, 2.0]))
    assert torch.allclose(O.l2()(ctx), torch.tensor([(1 + 0.25 + 0.0625) ** 0.5, 2.0]))
    # image 0 = [[0, 1], [0.5, 0.25]]: vertical |0.5-0| + |0.25-1| = 1.25, horizontal |1-0| + |0.25-0.5| = 1.25
    assert torch.allclose(O.total_variation()(ctx), torch.tensor([2.5, 0.0]))
    assert O.l1().layers == frozenset() and O.l1().kind == "penalty"


def test_algebra_matches_arithmetic_on_scores(ctx):
    a, b = O.channel("conv", [0, 1]), O.neuron("fc", [1, 2])
    va, vb = a(ctx), b(ctx)
    cases = {
        "a + b": (a + b, va + vb),
        "a - b": (a - b, va - vb),
        "2 * a": (2 * a, 2 * va),
        "a * 2": (a * 2, 2 * va),
        "a / 4": (a / 4, va / 4),
        "-a": (-a, -va),
        "3 + a": (3 + a, va + 3),
        "a - 3": (a - 3, va - 3),
        "1 - a": (1 - a, 1 - va),
        "a * b": (a * b, va * vb),
        "a / b": (a / b, va / vb),
        "total": (O.total([a, b, a]), 2 * va + vb),
        "Objective.sum": (O.Objective.sum([a, b]), va + vb),
    }
    for name, (objective, expected) in cases.items():
        assert torch.allclose(objective(ctx), expected), name
    with pytest.raises(ZeroDivisionError):
        a / 0


def test_the_seeds_l1_constrained_class_image(ctx):
    objective = O.class_logit(3 - 3) - 0.02 * O.l1()
    assert torch.allclose(objective(ctx), ctx("output")[:, 0] - 0.02 * torch.tensor([1.75, 4.0]))
    assert objective.name == "class_logit(0) - 0.02 * l1"
    assert [(t.coefficient, t.objective.kind) for t in objective.terms] == [(1.0, "class"), (-0.02, "penalty")]
    assert objective.main.kind == "class" and objective.layers == {"output"}
    # more ink lowers the score: the penalty is subtracted
    darker = O.Context(ctx.activations, ctx.images * 0)
    assert (objective(darker) > objective(ctx)).all()


def test_combinations_know_layers_batch_and_units():
    objective = O.channel("conv2", range(5)) + 0.1 * O.neuron("conv1", 2) - O.total_variation()
    assert objective.layers == {"conv1", "conv2"}
    assert objective.batch == 5 and objective.image_units() == (0, 1, 2, 3, 4)
    assert O.channel("conv2", 7).image_units() == (7,) and O.l1().image_units() == (None,)
    with pytest.raises(ProbeUsageError, match="different numbers of units"):
        O.channel("conv2", range(5)) + O.channel("conv1", range(4))
    assert (O.channel("conv2", 1) + 0) is not None and (0 * O.l1() + O.channel("a", 1)).terms[-1].coefficient == 1


def test_context_index_picks_the_units_of_a_chunk(ctx):
    objective = O.channel("conv", [2, 1, 0, 2])
    chunk = O.Context(ctx.activations, ctx.images, slice(2, 4))
    conv = ctx("conv")
    assert torch.equal(objective(chunk), torch.stack([conv[0, 0].sum(), conv[1, 2].sum()]))


def test_unit_errors(ctx):
    with pytest.raises(ProbeUsageError, match=r"^unit 60 is out of range for conv \(0 to 2\)$"):
        O.channel("conv", 60)(ctx)
    with pytest.raises(ProbeUsageError, match="addresses 3 units but the batch holds 2 images"):
        O.channel("conv", [0, 1, 2])(ctx)
    with pytest.raises(ProbeUsageError, match="negative"):
        O.channel("conv", -1)
    with pytest.raises(ProbeUsageError, match="captured layer"):
        O.channel("conv9", 0)(ctx)


def test_parse_units():
    assert O.parse_units("all", 4, "conv2") == (0, 1, 2, 3)
    assert O.parse_units("0-3,7, 2", 10, "conv2") == (0, 1, 2, 3, 7)
    assert O.parse_units("5", 10, "conv2") == (5,)
    with pytest.raises(ProbeUsageError, match=r"unit 60 is out of range for conv2 \(0 to 49\)"):
        O.parse_units("3,60", 50, "conv2")
    for bad in ("3-", "a", "5-2", "1,,2"):
        with pytest.raises(ProbeUsageError, match="cannot read units"):
            O.parse_units(bad, 50, "conv2")


def test_cached_index_and_statistics_tensors_survive_inference_mode():
    """The per-device caches (unit indices, normalization statistics) made first under inference_mode still
    serve autograd afterwards: no 'inference tensors cannot be saved for backward'."""
    from probe import objectives as O
    from probe.models import Preprocess

    pre = Preprocess((0.123, 0.5), (0.456, 0.456), 2, (8, 8))
    images = torch.rand(2, 2, 8, 8)
    with torch.inference_mode():
        pre.normalize(images)
        O._index_tensor((1, 0), torch.device("cpu"))
    leaf = images.clone().requires_grad_(True)
    values = pre.normalize(leaf)[torch.arange(2), O._index_tensor((1, 0), torch.device("cpu"))]
    values.sum().backward()
    assert leaf.grad is not None and torch.allclose(leaf.grad.sum(), torch.tensor(128 / 0.456))


@pytest.mark.parametrize("objective", [O.neuron("blocks.0", 0), O.neuron_weight("blocks.0")])
def test_a_neuron_of_a_token_layer_is_refused_naming_the_objective(objective):
    tokens = O.Context({"blocks.0": torch.zeros(2, 8, 5)}, torch.zeros(2, 3, 4, 4))  # (N, C, L): tokens, channels first
    with pytest.raises(ProbeUsageError, match="gives 8 channels over 5 tokens") as raised:
        objective(tokens)
    assert raised.value.param == "objective"  # the message named no option
