"""Contracts of the embedded model zoo: names, shapes, data, weights, training.

Offline and seeded; the whole file runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from probe.errors import ProbeUsageError
from probe.zoo import (
    ZOO,
    TrainReport,
    ZooSpec,
    build_zoo_model,
    get_spec,
    make_dataset,
    sample_input,
    shipped_weights,
    train,
    zoo_names,
)
from probe.zoo.digits_data import split_indices
from probe.zoo.nets import fold_batch_norm, shapes_net_bn

NAMES = ["digits", "lenet5", "xo", "shapes"]

LAYERS = {
    "digits": ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"],
    "lenet5": [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2",
        "conv3", "relu3", "flatten", "fc1", "relu4", "fc2",
    ],
    "xo": ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"],
    "shapes": [
        "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
        "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
        "conv3_1", "relu3_1", "conv3_2", "relu3_2", "pool3",
        "conv4_1", "relu4_1", "gap", "flatten", "fc",
    ],
}  # fmt: skip


def output_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Run ``model(x)`` and return each named submodule's output shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
        for name, module in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


@pytest.fixture(scope="module")
def test_splits() -> Iterator[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """The held-out split of every zoo model, generated once for the module."""
    yield {name: make_dataset(name, "test").tensors for name in NAMES}


def normalize(spec: ZooSpec, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(spec.mean).reshape(1, -1, 1, 1)
    std = torch.tensor(spec.std).reshape(1, -1, 1, 1)
    return (x - mean) / std


# --- registry ---------------------------------------------------------------------------


def test_zoo_names_and_specs() -> None:
    assert zoo_names() == NAMES
    assert list(ZOO) == NAMES
    for name in NAMES:
        spec = get_spec(name)
        assert spec.name == name
        assert len(spec.mean) == len(spec.std) == spec.input_shape[0]
        assert spec.weights_file == f"{name}.pt"
        assert spec.epochs >= 1 and spec.description
    assert get_spec("xo").labels == ("X", "O")
    assert get_spec("digits").labels == tuple("0123456789")
    assert get_spec("xo").mean == (0.5,) and get_spec("xo").std == (0.5,)
    with pytest.raises(TypeError):
        ZOO["extra"] = get_spec("xo")  # type: ignore[index]


def test_unknown_model_suggests_closest() -> None:
    with pytest.raises(ProbeUsageError, match=r"unknown zoo model 'digit'.*did you mean 'digits'"):
        get_spec("digit")
    with pytest.raises(ProbeUsageError, match="lenet5"):
        build_zoo_model("lenet")
    with pytest.raises(ProbeUsageError, match="did you mean 'shapes'"):
        make_dataset("shape")


# --- architectures ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_layer_names_and_modules(name: str) -> None:
    model = build_zoo_model(name, weights=None)
    assert [n for n, _ in model.named_modules() if n] == LAYERS[name]
    assert not model.training
    for layer, module in model.named_modules():
        if layer.startswith("relu"):
            assert isinstance(module, nn.ReLU) and not module.inplace
        if layer.startswith("pool"):
            assert type(module) is nn.MaxPool2d


@pytest.mark.parametrize("name", NAMES)
def test_output_shapes(name: str) -> None:
    spec = get_spec(name)
    model = build_zoo_model(name, weights=None)
    shapes = output_shapes(model, torch.zeros(2, *spec.input_shape))
    assert shapes[LAYERS[name][-1]] == (2, len(spec.labels))
    if name == "digits":
        assert shapes["conv1"] == (2, 25, 26, 26)
        assert shapes["conv2"] == (2, 50, 11, 11)
        assert shapes["pool2"] == (2, 50, 5, 5)
        assert shapes["fc1"] == (2, 100)
    if name == "lenet5":
        assert shapes["conv1"] == (2, 6, 28, 28)
        assert shapes["conv2"] == (2, 16, 10, 10)
        assert shapes["conv3"] == (2, 120, 1, 1)
        assert shapes["fc1"] == (2, 84)
    if name == "shapes":
        assert shapes["relu1_2"] == (2, 16, 64, 64)
        assert shapes["relu3_2"] == (2, 64, 16, 16)
        assert shapes["relu4_1"] == (2, 64, 8, 8)


def test_fold_batch_norm_matches_eval_network() -> None:
    torch.manual_seed(0)
    net = shapes_net_bn()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    folded = fold_batch_norm(net)
    assert [n for n, _ in folded.named_modules() if n] == LAYERS["shapes"]
    plain = build_zoo_model("shapes", weights=None)
    plain.load_state_dict(folded.state_dict())
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), net(x), rtol=1e-4, atol=1e-5)


# --- shipped weights --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shipped_weights_reach_target(name: str, test_splits: dict) -> None:
    spec = get_spec(name)
    state = shipped_weights(name)
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in state.values())
    model = build_zoo_model(name)
    images, labels = test_splits[name]
    with torch.no_grad():
        predictions = torch.cat([model(normalize(spec, x)).argmax(1) for x in images.split(200)])
    accuracy = (predictions == labels).float().mean().item()
    assert accuracy >= spec.target_accuracy, f"{name}: held-out accuracy {accuracy:.4f}"
    assert spec.target_accuracy == {"digits": 0.97, "lenet5": 0.97, "xo": 0.99, "shapes": 0.90}[name]


@pytest.mark.parametrize("name", NAMES)
def test_shipped_models_classify_their_samples(name: str) -> None:
    spec = get_spec(name)
    keys = {"digits": list("0123456789"), "lenet5": list("0123456789"), "xo": ["x", "o"]}.get(name, spec.labels)
    model = build_zoo_model(name)
    batch = torch.stack([sample_input(name, key) for key in keys])
    with torch.no_grad():
        predicted = model(normalize(spec, batch)).argmax(1).tolist()
    assert [spec.labels[k] for k in predicted] == [key.upper() if name == "xo" else key for key in keys]


def test_build_zoo_model_weights_options(tmp_path) -> None:
    shipped = build_zoo_model("xo")
    torch.manual_seed(0)
    random_a = build_zoo_model("xo", weights=None)
    torch.manual_seed(0)
    random_b = build_zoo_model("xo", weights=None)
    assert torch.equal(random_a.conv1.weight, random_b.conv1.weight)
    assert not torch.equal(random_a.conv1.weight, shipped.conv1.weight)
    assert all(p.requires_grad for p in shipped.parameters())  # freezing is the caller's job

    path = tmp_path / "xo.pt"
    torch.save(random_a.state_dict(), path)
    loaded = build_zoo_model("xo", weights=path)
    assert torch.equal(loaded.fc2.bias, random_a.fc2.bias) and not loaded.training
    assert torch.equal(build_zoo_model("xo", weights=str(path)).conv2.weight, random_a.conv2.weight)

    with pytest.raises(ProbeUsageError, match="does not exist"):
        build_zoo_model("xo", weights=tmp_path / "missing.pt")
    with pytest.raises(ProbeUsageError, match="does not fit zoo model 'lenet5'"):
        build_zoo_model("lenet5", weights=path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ProbeUsageError, match="state_dict"):
        build_zoo_model("xo", weights=garbage)
    module_file = tmp_path / "module.pt"
    torch.save(random_a, module_file)  # a pickled module is refused by weights_only
    with pytest.raises(ProbeUsageError):
        build_zoo_model("xo", weights=module_file)


# --- data -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_make_dataset_contract(name: str, test_splits: dict) -> None:
    spec = get_spec(name)
    images, labels = make_dataset(name, "train", limit=300).tensors
    test_images, test_labels = test_splits[name]
    for x, y in ((images, labels), (test_images, test_labels)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == spec.input_shape and x.shape[0] == y.shape[0]
        assert x.min() >= 0.0 and x.max() <= 1.0 and torch.isfinite(x).all()
        assert x.max() > 0.9 and x.min() < 0.1
        assert y.min() >= 0 and y.max() < len(spec.labels)
    assert images.shape[0] == 300
    assert set(test_labels.tolist()) == set(range(len(spec.labels)))
    counts = torch.bincount(test_labels, minlength=len(spec.labels))
    assert counts.min() >= 0.8 * counts.max()  # balanced


def test_generated_splits_deterministic_and_prefix_stable() -> None:
    a_images, a_labels = make_dataset("xo", "train", limit=300).tensors
    b_images, b_labels = make_dataset("xo", "train", limit=300).tensors
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    # A limit is a prefix of the full split, across the 256-image noise chunks too.
    c_images, c_labels = make_dataset("xo", "train", limit=280).tensors
    assert torch.equal(c_images, a_images[:280]) and torch.equal(c_labels, a_labels[:280])
    other_seed = make_dataset("xo", "train", seed=1, limit=300).tensors[0]
    assert not torch.equal(other_seed, a_images)
    s1 = make_dataset("shapes", "train", limit=20).tensors
    s2 = make_dataset("shapes", "train", limit=20).tensors
    assert torch.equal(s1[0], s2[0]) and torch.equal(s1[1], s2[1])
    assert not torch.equal(make_dataset("shapes", "train", seed=3, limit=20).tensors[0], s1[0])


def test_xo_images_are_binary() -> None:
    images = make_dataset("xo", "test", limit=100).tensors[0]
    assert set(images.unique().tolist()) == {0.0, 1.0}


def test_test_splits_disjoint_from_train(test_splits: dict) -> None:
    train_idx, test_idx = split_indices("train"), split_indices("test")
    assert set(train_idx.tolist()).isdisjoint(test_idx.tolist())
    assert len(train_idx) + len(test_idx) == 1797
    assert len(test_idx) == len(test_splits["digits"][0]) == 355
    for name, limit in (("xo", None), ("shapes", 500)):  # all of xo's 4,000, shapes' first 500
        seen = {x.numpy().tobytes() for x in make_dataset(name, "train", limit=limit).tensors[0]}
        assert not any(x.numpy().tobytes() in seen for x in test_splits[name][0])


def test_make_dataset_rejects_bad_arguments() -> None:
    with pytest.raises(ProbeUsageError, match="splits are: train, test"):
        make_dataset("xo", "validation")
    with pytest.raises(ProbeUsageError, match="limit"):
        make_dataset("xo", "train", limit=0)


# --- sample inputs ----------------------------------------------------------------------


def test_sample_inputs() -> None:
    seven = sample_input("digits", "7")
    assert seven.shape == (1, 28, 28) and seven.dtype == torch.float32
    assert 0.0 <= seven.min() and seven.max() <= 1.0
    assert sample_input("lenet5", "7").shape == (1, 32, 32)
    assert sample_input("digits", "1796").shape == (1, 28, 28)
    x, o = sample_input("xo", "x"), sample_input("xo", "O")
    assert x.shape == o.shape == (1, 32, 32) and set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x, sample_input("xo", "X"))
    for label in get_spec("shapes").labels:
        image = sample_input("shapes", label)
        assert image.shape == (3, 64, 64) and 0.0 <= image.min() and image.max() <= 1.0


def test_sample_input_errors_name_valid_keys() -> None:
    with pytest.raises(ProbeUsageError, match=r"unknown sample key 'z' for zoo model 'xo'; keys are: x, o"):
        sample_input("xo", "z")
    with pytest.raises(ProbeUsageError, match=r"circle, square.*did you mean 'circle'"):
        sample_input("shapes", "cirle")
    with pytest.raises(ProbeUsageError, match=r"'0' to '1796'"):
        sample_input("digits", "1797")
    with pytest.raises(ProbeUsageError, match=r"'0' to '1796'"):
        sample_input("lenet5", "seven")
    with pytest.raises(ProbeUsageError, match="did you mean 'digits'"):
        sample_input("digitz", "7")


# --- training ---------------------------------------------------------------------------


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["xo", "digits"])
def test_train_is_deterministic(name: str) -> None:
    calls: list[tuple[int, int, float]] = []
    rng_before = torch.get_rng_state()
    first = train(name, seed=0, epochs=2, limit=96, progress=lambda *a: calls.append(a))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is left alone
    second = train(name, seed=0, epochs=2, limit=96)
    other = train(name, seed=1, epochs=2, limit=96)
    assert same_state(first.state_dict, second.state_dict)
    assert not same_state(first.state_dict, other.state_dict)
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)] and all(c[2] > 0 for c in calls)
    assert isinstance(first, TrainReport) and first.epochs == 2 and first.seed == 0 and first.examples == 96
    assert 0.0 <= first.test_accuracy <= 1.0 and 0.0 <= first.train_accuracy <= 1.0 and first.seconds > 0


def test_train_folds_batch_norm_for_shapes() -> None:
    report = train("shapes", seed=0, epochs=1, limit=16)
    assert report.state_dict.keys() == build_zoo_model("shapes", weights=None).state_dict().keys()
    assert all(t.is_contiguous() and t.dtype == torch.float32 for t in report.state_dict.values())


def test_train_rejects_bad_arguments() -> None:
    with pytest.raises(ProbeUsageError, match="epochs"):
        train("xo", epochs=0)
    with pytest.raises(ProbeUsageError, match="limit"):
        train("xo", limit=-1)
    with pytest.raises(ProbeUsageError, match="did you mean 'xo'"):
        train("x0")


def test_import_has_no_side_effects() -> None:
    code = (
        "import sys, probe.zoo; "
        "assert 'sklearn.datasets' not in sys.modules, 'data loaded at import'; "
        "print('ok')"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
