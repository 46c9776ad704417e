"""Sources ``onnx`` and ``torchscript``: model files, converted to hookable ``torch.fx`` modules.

An ONNX file becomes a ``torch.fx.GraphModule`` through onnx2torch: real
modules with forward hooks, named after the ONNX nodes (``conv1/Conv``). A
TorchScript file (scripted or traced) cannot take forward hooks
(``register_forward_hook is not supported on ScriptModules``), so it is exported
to ONNX in a temporary folder and converted the same way, its modules named as
in the original where the graph proves them (:mod:`probe.models.sources.onnx_names`:
``layer1.0.conv1``; ``layer1.0/Add`` for an operation of a module's own forward).
The example input of that export is ``(1, channels, *input_size)`` (pass
``input_size``/``channels`` when the model is not 224 px RGB; the channels are
read from the file's first convolution, scripted or traced). Where the conversion fails, loading says so
in one line: no command would work on the ScriptModule as it is.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeUsageError
from probe.models.preprocess import DEFAULT_SIZE, first_conv_channels, generic_preprocess
from probe.models.sources import onnx_names
from probe.models.registry import Built, ModelSource, Request, register_source
from probe.models.forms import EXPORT_ADVICE
from probe.models.weights import archive_kind, is_default, require
from probe.runtime import global_rng_kept

__all__ = ["onnx_input_shape", "build_onnx", "build_torchscript", "hookable", "is_script"]

ONNX_OPSET = 17  # onnx2torch converts opsets up to 17 completely; torch's default (18+) emits ops it lacks


def _file(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ProbeUsageError(f"model file {spec!r} does not exist", param="model")
    return path


def _weights_in_file(spec: str, request: Request) -> None:
    request.no_arguments(spec, "a model file is built already")
    if not is_default(request.weights):
        raise ProbeUsageError(
            f"{spec!r} carries its own weights; drop --weights (random or other weights need the architecture: "
            "--model path/to/file.py:factory --weights FILE)",
            param="weights",
        )


def onnx_input_shape(path: Path) -> tuple[int | None, int | None, int | None]:
    """``(C, H, W)`` of the ONNX graph's image input, None where a dimension is dynamic."""
    onnx = require("onnx", "onnx", f"ONNX file {str(path)!r}")
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if not inputs:
        return None, None, None
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in inputs[0].type.tensor_type.shape.dim]  # fmt: skip
    if len(dims) != 4:
        return None, None, None
    return dims[1], dims[2], dims[3]


def _without_identities(model: Any) -> Any:
    """The ONNX ``model`` with its Identity nodes bypassed (torch's exporter adds one per shared weight)."""
    keep = {output.name for output in model.graph.output}
    renamed: dict[str, str] = {}
    nodes = []
    for node in model.graph.node:
        inputs = [renamed.get(name, name) for name in node.input]
        if node.op_type == "Identity" and node.output[0] not in keep:
            renamed[node.output[0]] = inputs[0]
            continue
        del node.input[:]
        node.input.extend(inputs)
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _convert(path: Path, what: str, leaves: set[str] | None = None) -> nn.Module:
    """onnx2torch's module for the ONNX file; with ``leaves`` (the original's leaf modules), named after them."""
    onnx = require("onnx", "onnx", what)
    onnx2torch = require("onnx2torch", "onnx", what)
    try:
        model = _without_identities(onnx.load(str(path)))
        names = onnx_names.module_names([node.name for node in model.graph.node], leaves) if leaves else None
        if names is None:
            return onnx2torch.convert(model)
        onnx_names.placeholders(model)
        return onnx_names.renamed(onnx2torch.convert(model), names)
    except Exception as error:  # an operator onnx2torch lacks, a malformed graph
        first = str(error).splitlines()[0] if str(error) else ""
        raise ProbeUsageError(
            f"cannot convert {what} to torch modules with onnx2torch ({type(error).__name__}: {first}); "
            f"export it with opset {ONNX_OPSET} or load the Python model (--model file.py:factory --weights FILE)",
            param="model",
        ) from None


def build_onnx(spec: str, request: Request) -> Built:
    """Convert the ONNX file ``spec`` with onnx2torch; size and channels from its input when static."""
    _weights_in_file(spec, request)
    path = _file(spec)
    require("onnx2torch", "onnx", f"ONNX file {spec!r}")
    channels, height, width = onnx_input_shape(path)
    module = _convert(path, f"ONNX file {spec!r}")
    size = request.input_size or ((height, width) if height and width else None)
    preprocess = generic_preprocess(module, size)
    if channels and channels != preprocess.channels:
        preprocess = generic_preprocess(nn.Conv2d(channels, 1, 1), preprocess.input_size)
    return Built(module, preprocess, weights="in file", details={"converted": "onnx2torch"})


def build_torchscript(spec: str, request: Request) -> Built:
    """Load the TorchScript file ``spec`` and make it hookable through an ONNX export and onnx2torch."""
    _weights_in_file(spec, request)
    path = _file(spec)
    if archive_kind(path) == "export":  # not a zip, or unreadable: "torch", and torch.jit.load says how
        raise ProbeUsageError(f"{spec!r} is a torch.export program (torch.export.save): {EXPORT_ADVICE}", param="model")
    try:
        with warnings.catch_warnings():  # the user asked for TorchScript: torch's deprecation notice is noise here
            warnings.simplefilter("ignore", FutureWarning)
            script = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        hint = "--model resnet18 --weights FILE" if path.suffix in (".pt", ".pth", ".bin", ".safetensors") else \
            "--model NAME --weights FILE"  # fmt: skip
        raise ProbeUsageError(
            f"{spec!r} is not a TorchScript or ONNX model ({type(error).__name__}). To load a state_dict, name the "
            f"architecture and pass the file as weights: {hint}",
            param="model",
        ) from None
    channels = request.channels or first_conv_channels(script)
    size = request.input_size or (DEFAULT_SIZE, DEFAULT_SIZE)
    module = _unscript(script, f"TorchScript file {spec!r}", channels, size)
    return Built(module, generic_preprocess(module, size), weights="in file",
                 details={"converted": "torchscript -> onnx -> onnx2torch"})  # fmt: skip


def is_script(module: nn.Module) -> bool:
    """Whether ``module`` is TorchScript (``torch.jit.script`` or ``torch.jit.trace``), which takes no hooks."""
    return isinstance(module, torch.jit.ScriptModule)


def hookable(module: nn.Module, what: str, channels: int, size: tuple[int, int]) -> nn.Module:
    """``module`` itself, or, for a TorchScript module, its hookable ``torch.fx`` conversion (see the module
    docstring), converted on the CPU and placed where ``module`` lives; ``module`` is left as it was, its device
    and ``training`` flags too.

    Args:
        module: any module; what: how errors name it (``"the module 'good.py:build' returned"``).
        channels, size: the example input ``(1, channels, *size)`` of the ONNX export.

    Raises:
        ProbeUsageError: (``param="model"``) the export or the conversion failed, or onnx is missing.
    """
    if not is_script(module):
        return module
    device = next((t.device for t in (*module.parameters(), *module.buffers())), torch.device("cpu"))
    buffer = io.BytesIO()  # converted as a file's: a copy on the CPU whose ONNX nodes carry its modules' names
    torch.jit.save(module, buffer)
    buffer.seek(0)
    with global_rng_kept():  # onnx2torch builds its modules with torch's initializers: the caller's draws stay theirs
        return _unscript(torch.jit.load(buffer, map_location="cpu"), what, channels, size).to(device)


def _example(channels: int, size: tuple[int, int]) -> torch.Tensor:
    """The ONNX export's example input: ``(1, channels, H, W)`` uniform noise from a seeded generator of its own,
    never from torch's global one, which is the caller's."""
    return torch.rand(1, channels, *size, generator=torch.Generator().manual_seed(0))


def _unscript(script: Any, what: str, channels: int, size: tuple[int, int]) -> nn.Module:
    require("onnx", "onnx", f"{what} (forward hooks need it converted)")
    modes = {sub: sub.training for sub in script.modules()}
    with tempfile.TemporaryDirectory(prefix="probe-onnx-") as folder:
        exported = Path(folder) / "model.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(script.eval(), (_example(channels, size),), str(exported), dynamo=False,
                                  opset_version=ONNX_OPSET, do_constant_folding=False, input_names=["input"],
                                  dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}})  # fmt: skip
        except Exception as error:  # the interpreter's last line says what failed
            last = next((line.strip() for line in reversed(str(error).splitlines()) if line.strip()), "")
            raise ProbeUsageError(
                f"{what} takes no forward hooks, and exporting it to ONNX to make it hookable "
                f"failed on a (1, {channels}, {size[0]}, {size[1]}) input ({type(error).__name__}: {last}); pass the "
                "model's --input-size and --in-channels (in Python: probe.load_model(model, input_size=..., "
                "channels=...)), or load its Python code: --model file.py:factory --weights FILE",
                param="model",
            ) from None
        finally:
            for sub, mode in modes.items():  # a ScriptModule of the caller's keeps its mode
                sub.training = mode
        leaves = {name for name, sub in script.named_modules() if name and not any(True for _ in sub.children())}
        return _convert(exported, what, leaves)


register_source(ModelSource("onnx", lambda spec: spec.lower().endswith(".onnx"), build_onnx, form="model.onnx"))
register_source(ModelSource(
    "torchscript", lambda spec: Path(spec).expanduser().is_file() and not spec.endswith(".py"), build_torchscript,
    form="TorchScript file (model.pt)",
))  # fmt: skip
