"""Weights files as users bring them: checkpoints, wrappers' prefixes, other formats and broken files.

Each case is a file written here from a tiny network (``tinynets.tiny``, with a BatchNorm) and loaded
into a fresh copy with other random weights: it loads exactly the saved tensors, or is refused in one
line (``ProbeUsageError`` naming ``weights``) that says what is wrong; a refused file changes nothing.
"""

from __future__ import annotations

import argparse
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from probe.cli.main import cli
from probe.errors import ProbeUsageError
from probe.models.weights import load_state_dict_file, load_weights_into
from tinynets import tiny


def source() -> dict[str, torch.Tensor]:
    """The weights every file holds: tiny's, each tensor moved off its initial value."""
    return {key: value + 0.5 if value.is_floating_point() else value + 3 for key, value in tiny().state_dict().items()}


def prefixed(prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + key: value for key, value in source().items()}


SAVED: dict[str, Callable[[], object]] = {
    "plain": source,
    "state_dict": lambda: {"state_dict": source(), "epoch": 3, "best": 0.9},
    "model": lambda: {"model": source(), "optimizer": {"lr": 0.1}},
    "model_state_dict": lambda: {"model_state_dict": source(), "epoch": 1},
    "ema": lambda: {"ema": source()},
    "net": lambda: {"net": source()},
    "nested ema of a DataParallel": lambda: {"ema": {"module": prefixed("module.")}},
    "DataParallel": lambda: prefixed("module."),
    "torch.compile": lambda: prefixed("_orig_mod."),
    "compiled DataParallel": lambda: prefixed("module._orig_mod."),
    "Lightning": lambda: {"state_dict": prefixed("model."), "global_step": 7},
    "Lightning with a loss module": lambda: {"state_dict": {**prefixed("net."), "criterion.weight": torch.ones(4)}},
    "timm: the model before its EMA": lambda: {"state_dict": source(), "state_dict_ema": prefixed("")},
    "no num_batches_tracked (old BatchNorm)": lambda: {k: v for k, v in source().items() if "num_batches" not in k},
}


@pytest.mark.parametrize("name", SAVED)
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt"])
def test_checkpoints_load_their_tensors_exactly(tmp_path: Path, name: str, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    torch.save(SAVED[name](), path)
    module = tiny()
    torch.manual_seed(1)
    nn.init.normal_(module.conv1.weight)
    load_weights_into(module, path)
    for key, value in source().items():
        if name.startswith("no num_batches") and "num_batches" in key:
            continue
        assert torch.equal(module.state_dict()[key], value), key


def test_safetensors_are_read_by_content_whatever_the_name(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    for name in ("weights.safetensors", "pytorch_model.bin"):
        safetensors.save_file(prefixed("module."), str(tmp_path / name))
        module = tiny()
        load_weights_into(module, tmp_path / name)
        assert torch.equal(module.conv2.weight, source()["conv2.weight"])
    torch.save(source(), tmp_path / "torch.safetensors")  # a torch.save file under a safetensors name
    load_weights_into(tiny(), tmp_path / "torch.safetensors")


def test_the_model_wrapped_and_the_file_plain(tmp_path: Path) -> None:
    torch.save(source(), tmp_path / "plain.pt")
    wrapped = nn.DataParallel(tiny())
    load_weights_into(wrapped, tmp_path / "plain.pt")
    assert torch.equal(wrapped.module.fc.bias, source()["fc.bias"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_tensors_are_converted_and_the_model_keeps_its_dtype(tmp_path: Path, dtype: torch.dtype) -> None:
    torch.save({k: v.to(dtype) if v.is_floating_point() else v for k, v in source().items()}, tmp_path / "half.pt")
    module = tiny()
    load_weights_into(module, tmp_path / "half.pt")
    assert module.conv1.weight.dtype == torch.float32
    assert torch.equal(module.conv1.weight, source()["conv1.weight"].to(dtype).float())


def _quantized() -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates creating quantized tensors; checkpoints still hold them
        return {k: torch.quantize_per_tensor(v, 0.1, 0, torch.qint8) if v.is_floating_point() else v
                for k, v in source().items()}


def _wrong_shape() -> dict[str, torch.Tensor]:
    state = source()
    state["conv2.weight"] = torch.zeros(6, 4, 5, 5)
    return state


def _write(obj: object) -> Callable[[Path], None]:
    return lambda path: torch.save(obj() if callable(obj) else obj, path)


def _torchscript(path: Path) -> None:
    torch.jit.script(tiny().eval()).save(str(path))


def _truncated(path: Path) -> None:
    torch.save(source(), path)
    path.write_bytes(path.read_bytes()[:300])


def _another_architecture() -> dict[str, torch.Tensor]:
    """A small ResNet's names and shapes: its blocks' 'layer1.0.conv1', 'layer1.0.bn2' name tiny's layers."""
    norm = {"weight": torch.ones(8), "bias": torch.zeros(8), "running_mean": torch.zeros(8),
            "running_var": torch.ones(8), "num_batches_tracked": torch.tensor(0)}  # fmt: skip
    state = {"conv1.weight": torch.zeros(8, 3, 7, 7), **{f"bn1.{k}": v for k, v in norm.items()},
             "fc.weight": torch.zeros(10, 8), "fc.bias": torch.zeros(10)}  # fmt: skip
    for block in ("layer1.0.", "layer1.1."):
        state |= {f"{block}conv1.weight": torch.zeros(8, 8, 3, 3), f"{block}conv2.weight": torch.zeros(8, 8, 3, 3),
                  **{f"{block}bn{i}.{k}": v for i in (1, 2) for k, v in norm.items()}}  # fmt: skip
    return state


def _exported(path: Path) -> None:
    """The layout of torch.export.save's archive (its real one is in test_model_forms: exporting costs seconds)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in (("archive_format", "pt2"), ("models/model.json", "{}"), ("data/weights/weight_0", "")):
            archive.writestr(f"weights/{name}", text)


def _npz(path: Path) -> None:
    with path.open("wb") as stream:
        np.savez(stream, weight=np.zeros(3))


REFUSED: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "a whole pickled module": (_write(tiny), ("pickled torch.nn.modules", "weights_only=True",
                                              "torch.save(torch.load(", ".state_dict()")),
    "a checkpoint holding other objects": (_write(lambda: {"state_dict": source(), "args": argparse.Namespace(lr=1)}),
                                           ("pickled argparse.Namespace", "checkpoint['state_dict']")),
    "missing keys": (_write(lambda: {k: v for k, v in source().items() if not k.startswith("fc.")}),
                     ("missing keys: fc.weight, fc.bias",)),
    "unexpected keys": (_write(lambda: {**source(), "head.weight": torch.zeros(2)}), ("unexpected keys: head.weight",)),
    "a wrong shape": (_write(_wrong_shape), ("conv2.weight (6, 4, 5, 5) vs (6, 4, 3, 3)",)),
    "another architecture": (_write(_another_architecture), ("does not fit this architecture: 0 of the model's 10 "
                                                             "tensors are in the file with their shape",
                                                             "the weights of another model?")),
    "another number of classes": (_write(lambda: {**source(), "fc.weight": torch.zeros(7, 384),
                                                  "fc.bias": torch.zeros(7)}),
                                  ("fc has 7 outputs in the file, 4 in the model", "--model-arg num_classes=N")),
    "a torch.export program": (_exported, ("torch.export program", ".module().state_dict(), 'weights.pt')")),
    "a NumPy archive": (_npz, ("zip archive of weight.npy (NumPy's .npz?)",)),
    "integer tensors": (_write(lambda: {k: v.long() for k, v in source().items()}), ("conv1.weight is int64 in the file",)),
    "quantized tensors": (_write(_quantized), ("conv1.weight is qint8 in the file",)),
    "a TorchScript archive": (_torchscript, ("TorchScript", "--model")),
    "an empty file": (lambda path: path.write_bytes(b""), ("empty (0 bytes)",)),
    "a truncated file": (_truncated, ("truncated or damaged",)),
    "a text file": (lambda path: path.write_text("hello"), ("neither a torch.save file nor a safetensors file",)),
    "a list of tensors": (_write(lambda: [torch.zeros(1)]), ("holds no state_dict",)),
    "a folder": (lambda path: path.mkdir(), ("is a folder",)),
    "a missing path": (lambda path: None, ("does not exist",)),
}


@pytest.mark.parametrize("name", REFUSED)
def test_bad_files_are_refused_in_one_line_and_change_nothing(tmp_path: Path, name: str) -> None:
    write, wanted = REFUSED[name]
    path = tmp_path / "weights.pt"
    write(path)
    module = tiny()
    before = {key: value.clone() for key, value in module.state_dict().items()}
    with pytest.raises(ProbeUsageError) as info:
        load_weights_into(module, path)
    message = str(info.value)
    assert info.value.param == "weights" and "\n" not in message and "\x1b" not in message, message
    for text in wanted:
        assert text in message, message
    assert all(torch.equal(before[key], value) for key, value in module.state_dict().items())


def test_load_state_dict_file_unwraps_checkpoints_and_wrappers(tmp_path: Path) -> None:
    torch.save({"ema": {"module": prefixed("module._orig_mod.")}, "step": 3}, tmp_path / "ckpt.pt")
    state = load_state_dict_file(tmp_path / "ckpt.pt")
    assert set(state) == set(source())


def test_the_command_line_gives_one_line_and_exit_code_2(tmp_path: Path) -> None:
    torch.save(tiny(), tmp_path / "module.pt")
    result = CliRunner().invoke(cli, ["layers", "digits", "--weights", str(tmp_path / "module.pt")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--weights" in errors[0] and "weights_only=True" in errors[0], result.output


def _pruned(net: nn.Module) -> None:
    import torch.nn.utils.prune as prune

    prune.l1_unstructured(net.conv1, "weight", amount=0.5)


REPARAMETRIZED: dict[str, Callable[[nn.Module], object]] = {
    "pruned": _pruned,
    "weight_norm": lambda net: nn.utils.parametrizations.weight_norm(net.conv2),
    "spectral_norm": lambda net: nn.utils.parametrizations.spectral_norm(net.fc),
    "the old hook-based weight_norm": lambda net: nn.utils.weight_norm(net.conv1),
    "the old hook-based spectral_norm": lambda net: nn.utils.spectral_norm(net.conv2),
}


@pytest.mark.parametrize("form", REPARAMETRIZED)
def test_a_pruned_or_normed_models_checkpoint_loads_into_the_plain_architecture(tmp_path: Path, form: str) -> None:
    """The checkpoint of a pruned (weight_orig, weight_mask), weight-normed (weight_g/v, parametrizations'
    original0/1) or spectral-normed model was refused by the plain architecture ('missing keys: conv1.weight;
    unexpected keys: conv1.weight_orig, conv1.weight_mask'): it loads the weights the trained model computed."""
    trained = tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the old weight_norm's deprecation
        REPARAMETRIZED[form](trained)
    trained.eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.1)
        expected = trained(x)
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    plain = tiny().eval()
    load_weights_into(plain, tmp_path / "trained.pt")
    assert torch.allclose(plain(x), expected, atol=1e-5), form
