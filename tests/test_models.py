"""probe.load_model on every kind of spec, offline; weights files made in the tests."""

from __future__ import annotations

import warnings

import pytest
import torch

import probe
from probe.errors import ProbeUsageError
from conftest import no_hooks_left
from tinynets import tiny


def test_torchvision_random_weights_are_frozen_eval_and_labelled():
    loaded = probe.load_model("resnet18", weights=None, device="cpu")
    assert loaded.source == "torchvision" and loaded.weights == "random"
    assert not loaded.module.training
    assert not any(p.requires_grad for p in loaded.module.parameters())
    assert loaded.input_shape == (3, 224, 224)
    assert loaded.preprocess.mean == pytest.approx((0.485, 0.456, 0.406))
    assert loaded.labels is not None and len(loaded.labels) == 1000


def test_inception_input_size_comes_from_its_weights_metadata():
    loaded = probe.load_model("inception_v3", weights="none", device="cpu")
    assert loaded.input_shape == (3, 299, 299)


def test_pretrained_offline_says_how_to_proceed():
    with pytest.raises(ProbeUsageError) as info:
        probe.load_model("squeezenet1_1", device="cpu")
    message = str(info.value)
    assert "weights=None" in message and "--weights PATH" in message and info.value.param == "weights"


def test_state_dict_file_round_trip(tmp_path):
    source = probe.load_model("squeezenet1_1", weights=None, device="cpu").module
    torch.nn.init.constant_(source.classifier[1].bias, 0.25)
    plain, wrapped = tmp_path / "plain.pt", tmp_path / "wrapped.pt"
    torch.save(source.state_dict(), plain)
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, wrapped)
    for path in (plain, wrapped):
        loaded = probe.load_model("squeezenet1_1", weights=str(path), device="cpu")
        assert torch.equal(loaded.module.classifier[1].bias, source.classifier[1].bias)
        assert loaded.weights == str(path)


def test_weights_that_do_not_fit_name_the_keys(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny().state_dict(), path)
    with pytest.raises(ProbeUsageError, match="does not fit this architecture: missing keys"):
        probe.load_model("squeezenet1_1", weights=str(path), device="cpu")


def test_corrupt_and_missing_weights_files(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ProbeUsageError, match="cannot read weights file"):
        probe.load_model("squeezenet1_1", weights=str(corrupt), device="cpu")
    with pytest.raises(ProbeUsageError, match="does not exist"):
        probe.load_model("squeezenet1_1", weights=str(tmp_path / "missing.pt"), device="cpu")


def test_weights_needing_arbitrary_code_are_refused(tmp_path):
    path = tmp_path / "pickled-module.pt"
    torch.save(tiny(), path)  # a whole pickled module, not a state_dict
    with pytest.raises(ProbeUsageError, match="weights_only=True"):
        probe.load_model("squeezenet1_1", weights=str(path), device="cpu")


def test_torchscript_file(tmp_path):
    path = tmp_path / "net.ts"
    torch.jit.script(tiny().eval()).save(str(path))
    with pytest.raises(ProbeUsageError, match="pass the model's --input-size .* mat1 and mat2|mat1 and mat2.*--input-size"):
        probe.load_model(str(path), device="cpu")  # exported at 224 px: the 16 px model's fc refuses
    loaded = probe.load_model(str(path), device="cpu", input_size=16)
    assert loaded.source == "torchscript" and loaded.input_shape == (3, 16, 16)
    scripted = torch.jit.load(str(path))
    images = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(loaded(images), scripted(loaded.preprocess.normalize(images)))
    assert "conv1" in dict(loaded.module.named_modules())  # hookable modules, named after the original ones


class _Residual(torch.nn.Module):
    """A block whose own forward adds (an operation of no submodule) and calls one ReLU twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.relu = torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(self.relu(x))) + x)


@pytest.mark.parametrize("export", ["script", "trace"])
def test_torchscript_layers_keep_the_original_module_names_where_they_are_exact(tmp_path, export):
    """A leaf module that became one ONNX node is named as in the original and records exactly its output;
    the rest is named by the module it ran in (``block.0/Add``, both calls of the shared ``relu``)."""
    torch.manual_seed(0)
    original = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Sequential(_Residual())).eval()
    torch.nn.init.uniform_(original[1][0].bn.running_mean)  # batch norm that is not the identity
    example = torch.rand(1, 1, 12, 12)
    path = tmp_path / "net.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (torch.jit.script(original) if export == "script" else torch.jit.trace(original, example)).save(str(path))
    loaded = probe.load_model(str(path), device="cpu", input_size=12)  # one input channel, read from the file
    assert loaded.input_shape == (1, 12, 12)
    names = [name for name, module in loaded.module.named_modules() if not list(module.children())]
    assert {"0", "1.0.conv", "1.0.bn", "1.0/Add"} <= set(names) and "1.0.relu" not in names, names  # it ran twice
    layers = ["0", "1.0.conv", "1.0.bn"]
    with probe.record(original, layers) as want:
        original(example)
    with probe.record(loaded.module, layers) as got:
        loaded.module(example)
    for name in layers:
        torch.testing.assert_close(got[name], want[name])


def test_state_dict_passed_as_model_is_explained(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(tiny().state_dict(), path)
    with pytest.raises(ProbeUsageError, match="--model resnet18 --weights FILE"):
        probe.load_model(str(path), device="cpu")


def test_factory_import_path_with_weights_file(tmp_path):
    source = tiny(channels=1)
    torch.nn.init.constant_(source.fc.bias, 0.5)
    path = tmp_path / "gray.pt"
    torch.save(source.state_dict(), path)
    loaded = probe.load_model("tinynets:tiny_gray", weights=str(path), device="cpu")
    assert loaded.source == "factory" and loaded.input_shape == (1, 224, 224)
    assert torch.equal(loaded.module.fc.bias, source.fc.bias)
    assert not loaded.module.training


def test_bad_factory_path():
    with pytest.raises(ProbeUsageError, match="cannot import model factory"):
        probe.load_model("tinynets:does_not_exist", device="cpu")


def test_user_module_is_wrapped_not_changed(model):
    model.train()
    loaded = probe.load_model(model)
    assert loaded.module is model and model.training
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_model_suggests_closest():
    with pytest.raises(ProbeUsageError, match="did you mean 'resnet50'"):
        probe.load_model("resnet05", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(ProbeUsageError, match="CUDA is not available"):
        probe.load_model("squeezenet1_1", weights=None, device="cuda")
    assert probe.resolve_device("auto").type == "cpu"


def test_call_normalizes_and_checks_channels():
    loaded = probe.load_model(tiny().eval())
    images = torch.rand(1, 3, 16, 16)
    expected = loaded.module(loaded.preprocess.normalize(images))
    assert torch.equal(loaded(images), expected)
    assert torch.allclose(loaded.preprocess.denormalize(loaded.preprocess.normalize(images)), images, atol=1e-6)
    with pytest.raises(ProbeUsageError, match=r"expects images of shape \(N, 3, H, W\)"):
        loaded(torch.rand(1, 1, 16, 16))


def test_runtime_helpers():
    from probe.errors import ProbeRuntimeError
    from probe.runtime import autocast, check_finite, make_generator

    a = torch.rand(3, generator=make_generator(5))
    assert torch.equal(a, torch.rand(3, generator=make_generator(5)))
    with pytest.raises(ProbeRuntimeError, match="NaN or infinite at step 7; lower the learning rate"):
        check_finite(torch.tensor([1.0, float("nan")]), "the image", step=7)
    with pytest.raises(ProbeUsageError, match="precisions are"):
        with autocast(torch.device("cpu"), "fp8"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ProbeUsageError, match="fp16 needs a CUDA device"):
        with autocast(torch.device("cpu"), "fp16"):
            pass


def test_frozen_view_shares_weights_and_leaves_the_users_module_alone() -> None:
    from tinynets import tiny

    from probe.models import frozen_view

    module = tiny().eval()  # eval: batch norm in training mode would update its statistics between the passes
    view = frozen_view(module)
    assert view is not module and not any(p.requires_grad for p in view.parameters())
    assert all(p.requires_grad for p in module.parameters())  # the user's flags are untouched
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(module.parameters(), view.parameters()))  # no copy
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(view(x).sum(), x)
    torch.testing.assert_close(grad, torch.autograd.grad(module(x).sum(), x)[0])
    assert all(p.grad is None for p in module.parameters())
    loaded = probe.load_model(module)
    assert loaded.frozen().module is not module and loaded.frozen().frozen().module is not None
    zoo_model = probe.load_model("digits")
    assert zoo_model.frozen() is zoo_model  # built frozen already: nothing to copy


def test_channels_last_view_copies_only_the_convolution_weights() -> None:
    from tinynets import tiny

    from probe.models import frozen_view

    module = tiny().eval()
    view = frozen_view(module, channels_last=True)
    pairs = list(zip(module.parameters(), view.parameters()))
    for original, viewed in pairs:
        assert original.is_contiguous() and original.requires_grad and not viewed.requires_grad  # user's untouched
        assert torch.equal(original, viewed)
        if original.dim() == 4:
            assert viewed.is_contiguous(memory_format=torch.channels_last) and viewed.data_ptr() != original.data_ptr()
        else:
            assert viewed.data_ptr() == original.data_ptr()
    assert any(original.dim() == 4 for original, _ in pairs)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(view(x), module(x))
    zoo_model = probe.load_model("digits")
    converted = zoo_model.frozen(channels_last=True)  # frozen already, but the format asks for a view
    assert converted is not zoo_model and converted.module.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert zoo_model.module.conv1.weight.is_contiguous()


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, current: int, count: int = 2) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_cuda_and_cuda_0_are_one_device_while_device_0_is_current(monkeypatch: pytest.MonkeyPatch) -> None:
    from probe.devices import normalize_device, same_device

    _fake_cuda(monkeypatch, current=0)
    assert same_device("cuda", "cuda:0") and same_device(torch.device("cuda:0"), "cuda")
    assert not same_device("cuda", "cuda:1") and not same_device("cuda", "cpu")
    assert normalize_device("cuda") == torch.device("cuda:0") and normalize_device("cpu") == torch.device("cpu")
    _fake_cuda(monkeypatch, current=1)
    assert same_device("cuda", "cuda:1") and not same_device("cuda", "cuda:0")
    with pytest.raises(ProbeUsageError, match="has 2 CUDA device"):
        probe.resolve_device("cuda:2")


def test_as_loaded_accepts_a_model_on_the_device_named_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    import probe.models as models

    _fake_cuda(monkeypatch, current=0)
    module = tiny().eval()
    monkeypatch.setattr(models, "_module_device", lambda m: torch.device("cuda:0"))  # as if module.cuda()
    for device in ("cuda", "cuda:0", torch.device("cuda"), "auto", None):
        loaded = models.as_loaded(module, device)
        assert loaded.module is module and loaded.device == torch.device("cuda:0")
        assert models.as_loaded(loaded, device) is loaded
    with pytest.raises(ProbeUsageError, match="lives on cuda:0, not cuda:1") as info:
        models.as_loaded(module, "cuda:1")
    assert info.value.param == "device"
    with pytest.raises(ProbeUsageError, match="lives on cuda:0, not cpu"):
        models.as_loaded(loaded, "cpu")


def test_every_entry_point_takes_the_same_module_and_device(model: torch.nn.Module) -> None:
    """maximize, dream, style transfer, attribution, feature maps and filters all go through as_loaded."""
    from probe import objectives as O

    model.eval()
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    probe.maximize(model, O.channel("conv1", [0]), steps=1, image_size=16, device="cpu")
    probe.dream(model, image, layers="conv2", steps=1, octaves=1, device="cpu")
    probe.style_transfer(model, image, image, content_layers=["conv2"], style_layers=["conv1"], steps=1, device="cpu")
    probe.attribute(model, image, "saliency", size=16)
    probe.feature_maps(model, image, layers=["conv1"], size=16)
    probe.filters(model, "conv1")
    with pytest.raises(ProbeUsageError, match="not cuda|CUDA is not available"):
        probe.maximize(model, O.channel("conv1", [0]), steps=1, image_size=16, device="cuda:0")
    assert all(p.requires_grad for p in model.parameters()) and no_hooks_left(model)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_users_gpu_module_is_accepted_by_every_entry_point() -> None:
    from probe import objectives as O

    module = tiny().eval().cuda()
    image = torch.rand(3, 16, 16)
    for device in ("cuda", "cuda:0", None):
        assert probe.maximize(module, O.channel("conv1", [0]), steps=1, image_size=16, device=device).images.shape[0] == 1
    probe.dream(module, image, layers="conv2", steps=1, octaves=1, device="cuda")
    probe.style_transfer(module, image, image, content_layers=["conv2"], style_layers=["conv1"], steps=1, device="cuda")
    probe.attribute(module, image, "saliency", size=16)
    probe.feature_maps(module, image, layers=["conv1"], size=16)
    probe.filters(module, "conv1")
    assert probe.load_model(module, device="cuda").device == torch.device("cuda:0")
    current = torch.device("cuda", torch.cuda.current_device())
    assert probe.load_model("digits", device="cuda").device == current  # a spec's device names its index
