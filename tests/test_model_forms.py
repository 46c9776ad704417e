"""Forms of a user's model that the sweep of every command over user modules found broken: TorchScript modules
not read from a file, torch.export programs, factories that return something else than a plain module, dotted
class names, and the wording of statistics for one channel. Each either works or is refused in one line that says
what to do, and the user's module is left as it was."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import probe
from probe.cli.main import cli
from tinynets import tiny

FACTORIES = """
import torch, probe
from tinynets import tiny

def scripted():
    return torch.jit.script(tiny())

def traced():
    return torch.jit.trace(tiny().eval(), torch.rand(1, 3, 16, 16))

def exported_module():
    return torch.export.export(tiny().eval(), (torch.rand(1, 3, 16, 16),)).module()

def exported():
    return torch.export.export(tiny().eval(), (torch.rand(1, 3, 16, 16),))

def loaded():
    return probe.load_model(tiny(), input_size=16, mean=[0.5], std=[0.25], labels=list("abcd"))

def a_class():
    return torch.nn.Sequential

def with_config():
    return tiny(), {"classes": 4}

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = tiny()

    def forward(self, x):
        return self.body(x)
"""


@pytest.fixture
def nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``nets.py`` and the package ``pkg.zoo`` (the same code) in the current folder."""
    (tmp_path / "nets.py").write_text(FACTORIES)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "zoo.py").write_text(FACTORIES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_torchscript_from_a_factory_or_in_python_is_converted_and_left_as_it_was(nets: Path) -> None:
    """A factory returning a scripted or traced module, or one passed to the API, failed with torch's
    'register_forward_pre_hook is not supported on ScriptModules' traceback (a traced one listed every layer
    '(not run)'); only a TorchScript *file* was converted. Every ScriptModule is converted now, as a file is (saved
    and loaded: converted in memory, it named a TorchScript file loaded after it 'Conv', 'Relu'), named as it is."""
    result = probe.maximize(probe.load_model("nets.py:scripted", input_size=16), "conv2:0", steps=1)
    assert torch.isfinite(result.images).all()
    torch.jit.script(tiny().eval()).save("tiny.ts")  # converting a module in memory left later files' nodes unnamed
    assert "conv2" in dict(probe.load_model("tiny.ts", input_size=16).module.named_modules())
    script = torch.jit.trace(tiny().eval(), torch.rand(1, 3, 16, 16)).train()  # traced as it runs: in eval mode
    assert [info.name for info in probe.layers(script, (3, 16, 16))][:2] == ["conv1", "relu1"]
    assert script.training and script.conv1.training
    with pytest.raises(probe.ProbeUsageError, match="TorchScript, which takes no hooks; probe.load_model") as info:
        with probe.record(script, "conv1"):
            pass
    assert info.value.param == "model"


def test_exported_programs_are_refused_saying_what_to_give(nets: Path) -> None:
    """torch.export's module (ATen operations: its submodules never run, no hook fires) died in a traceback
    ('Calling eval() is not supported yet'); a .pt2 file was 'not a TorchScript or ONNX model' as --model and
    'truncated or damaged' as --weights, and an .npz 'truncated or damaged'; probe.layers listed its layers
    '(not run)' and probe.record recorded nothing. Each is one line now."""
    with pytest.raises(probe.ProbeUsageError, match="exported program's module .*give the nn.Module you exported"):
        probe.load_model("nets.py:exported_module")
    with pytest.raises(probe.ProbeUsageError, match="returned an ExportedProgram .*return the nn.Module you exported"):
        probe.load_model("nets.py:exported")
    module = torch.export.export(tiny().eval(), (torch.rand(1, 3, 16, 16),)).module()
    for call in (lambda: probe.layers(module, (3, 16, 16)), lambda: probe.record(module, "conv1").__enter__()):
        with pytest.raises(probe.ProbeUsageError, match="exported program's module"):  # no hook would fire
            call()
    torch.export.save(torch.export.export(tiny().eval(), (torch.rand(1, 3, 16, 16),)), "net.pt2")
    np.savez("arrays.npz", weight=np.zeros(3))
    runner = CliRunner()
    for args, words in ((["--model", "net.pt2"], "is a torch.export program (torch.export.save): a torch.export"),
                        (["--model", "tinynets:tiny", "--weights", "net.pt2"], "torch.export.load('net.pt2').module()"),
                        (["--model", "tinynets:tiny", "--weights", "arrays.npz"], "zip archive of weight.npy")):
        result = runner.invoke(cli, ["layers", *args, "--input-size", "16"])
        assert result.exit_code == 2 and words in result.output, result.output
        assert "Traceback" not in result.output and f"'{args[-2]}'" in result.output
    assert zipfile.is_zipfile("arrays.npz")


def test_factories_may_return_a_loaded_model_and_other_returns_say_what_to_return(nets: Path) -> None:
    """A factory returning probe.load_model(...) was refused ('returned LoadedModel, not a torch.nn.Module'): it
    is used with its preprocessing and labels. A class, a tuple or an ExportedProgram say what to return."""
    loaded = probe.load_model("nets.py:loaded")
    assert loaded.preprocess.input_size == (16, 16) and loaded.preprocess.mean == (0.5,) * 3
    assert loaded.labels == tuple("abcd") and loaded.source == "factory"
    for spec, words in (("nets.py:a_class", "returned the class Sequential, not a module: return Sequential(...)"),
                        ("nets.py:with_config", "returned a tuple holding a module: return the module alone")):
        with pytest.raises(probe.ProbeUsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
            probe.load_model(spec)


def test_dotted_classes_and_python_files_named_without_their_function(nets: Path) -> None:
    """'pkg.zoo.Net' (no colon) was an unknown model name; it loads as 'pkg.zoo:Net' does. 'nets.py' alone, or
    a function it lacks, listed the zoo (or named an internal module, 'probe_user_model_nets'); both list the
    file's functions and classes."""
    for spec in ("pkg.zoo.Net", "pkg.zoo.scripted"):
        assert "body.conv2" in dict(probe.load_model(spec, input_size=16).module.named_modules()) or spec.endswith(
            "scripted")
    result = CliRunner().invoke(cli, ["layers", "--model", "pkg.zoo.Net", "--input-size", "16"])
    assert result.exit_code == 0 and "body.conv2" in result.output, result.output
    for spec, words in (("nets.py", "'nets.py' is a Python file: name the function or class that builds the model, "
                                    "'nets.py:NAME' (it defines scripted, traced,"),
                        ("nets.py:nothing", "'nets.py' has no 'nothing' (it defines scripted, traced,")):
        with pytest.raises(probe.ProbeUsageError, match=words.replace("(", r"\(")) as info:
            probe.load_model(spec)
        assert info.value.param == "model"
    with pytest.raises(probe.ProbeUsageError, match="unknown model 'nopkg_here.Net'"):
        probe.load_model("nopkg_here.Net")


def test_statistics_of_the_wrong_length_for_one_channel_ask_for_one_value() -> None:
    """'give 1 or 1' for a one-channel model: it asks for one value there, for 1 or C values elsewhere."""
    with pytest.raises(probe.ProbeUsageError, match=r"2 values for a model with 1 input channel; give one value$"):
        probe.load_model(tiny(channels=1), mean=[0.1, 0.2])
    with pytest.raises(probe.ProbeUsageError, match=r"3 input channels; give one value, which serves every channel, "
                                                    r"or 3$"):
        probe.load_model(tiny(), std=[0.1, 0.2])


def test_a_model_built_for_one_input_size_is_run_at_it_without_being_told() -> None:
    """timm.create_model(..., img_size=32) keeps 224 in its pretrained_cfg, and torchvision's
    VisionTransformer(image_size=32) states nothing cnn-probe read: every command failed at 224 px until --size
    was given ('Input height (224) doesn't match model (32)'). The size the model checks is its default now."""
    import timm
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    vit = timm.create_model("test_vit", pretrained=False, img_size=32, dynamic_img_size=False, num_classes=3)
    tv = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=8)
    for net in (vit, tv):
        assert probe.load_model(net).preprocess.input_size == (32, 32)
        result = probe.maximize(net, probe.objectives.class_logit(0), steps=1)
        assert result.images.shape[-2:] == (32, 32) and torch.isfinite(result.images).all()
    assert probe.load_model(tiny()).preprocess.input_size == (224, 224)  # a model that states no size
    spec = "timm:test_vit(img_size=32, dynamic_img_size=False, num_classes=3)"  # the timm source's own build too
    assert probe.load_model(spec, weights="none").preprocess.input_size == (32, 32)


def test_a_pruned_model_has_a_frozen_view_that_shares_its_weights() -> None:
    """torch.nn.utils.prune keeps ``weight`` as a plain tensor computed from ``weight_orig``, which deepcopy
    refuses ('Only Tensors created explicitly by the user (graph leaves)...'): the frozen view fell back to the
    model itself, every weight gradient computed. The view shares ``weight_orig`` and computes ``weight`` again."""
    import torch.nn.utils.prune as prune

    net = tiny().eval()
    prune.l1_unstructured(net.conv1, "weight", amount=0.5)
    view = probe.load_model(net, input_size=16).frozen().module
    assert view is not net and not any(p.requires_grad for p in view.parameters())
    assert view.conv1.weight_orig.data_ptr() == net.conv1.weight_orig.data_ptr()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(view(x), net(x)) and net.conv1.weight.requires_grad
    assert all(p.requires_grad for p in net.parameters()) and net.conv1._forward_pre_hooks


@pytest.mark.parametrize("method", ["deeplift", "lrp"])
def test_hook_based_attributions_copy_a_pruned_model(method: str) -> None:
    """deeplift and lrp run on a copy that shares the model's weights; its memo mapped parameters and buffers
    alone, so the pruned ``weight`` (a plain tensor deepcopy refuses) made the copy fail: 'this model cannot be
    copied', use another --method. The copy shares ``weight_orig`` and its own pre-hook computes ``weight``."""
    import torch.nn.utils.prune as prune

    net = tiny().eval()
    prune.l1_unstructured(net.conv1, "weight", amount=0.5)
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    heat = probe.attribute(net, image, method, size=16).attributions[method]
    assert torch.isfinite(heat).all() and heat.abs().sum() > 0
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in weights.items())
    assert net.conv1._forward_pre_hooks and not net.training


def test_lrp_follows_compiled_and_data_parallel_models() -> None:
    """The views of a compiled and a DataParallel model took ``*args`` as the wrappers do, which torch.fx cannot
    trace ('Proxy object cannot be iterated'): LRP refused both. Their views take the images, under the same
    names (a compiled DataParallel model's layers are ``_orig_mod.module.NAME``)."""
    net = tiny().eval()
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    plain = probe.attribute(net, image, "lrp", size=16).attributions["lrp"]
    for wrapped, layer in ((torch.nn.DataParallel(net), "module.conv2"),
                           (torch.compile(torch.nn.DataParallel(net)), "_orig_mod.module.conv2")):
        heat = probe.attribute(wrapped, image, "lrp", size=16).attributions["lrp"]
        assert torch.allclose(heat, plain, atol=1e-6), layer
        assert layer in dict(probe.load_model(wrapped).module.named_modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules()) and not net.training


def test_what_a_factory_prints_keeps_out_of_the_json_on_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module-level print in the user's file (or in the function) went to stdout before the --json summary,
    which scripts then could not parse. The user's code prints to stderr while it is imported and called."""
    (tmp_path / "loud.py").write_text("print('importing loud')\nfrom tinynets import tiny\n\n\ndef build():\n"
                                      "    print('building')\n    return tiny()\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["filters", "--model", "loud.py:build", "--json", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["command"] == "filters"
    assert "importing loud" in result.stderr and "building" in result.stderr


def test_layers_of_a_module_with_uninitialized_lazy_modules_is_refused_and_changes_nothing() -> None:
    """probe.layers ran its dummy pass on a module of the caller's with nn.LazyConv2d/LazyLinear, which gave them
    parameters drawn from the caller's global generator (every other entry point refused such a module). It is
    refused the same way, the module still lazy and the generator untouched."""
    from collections import OrderedDict

    net = torch.nn.Sequential(OrderedDict(conv=torch.nn.LazyConv2d(4, 3), flat=torch.nn.Flatten(),
                                          fc=torch.nn.LazyLinear(2)))  # fmt: skip
    state = torch.get_rng_state()
    with pytest.raises(probe.ProbeUsageError, match=r"lazy modules are not initialized yet \(conv, fc\)") as info:
        probe.layers(net, (3, 16, 16))
    assert info.value.param == "model" and torch.equal(state, torch.get_rng_state())
    assert isinstance(net.conv.weight, torch.nn.parameter.UninitializedParameter)
