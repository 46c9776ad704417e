"""Module forms that need a word before probing: compiled, lazy, int8 quantized.

- ``torch.compile(model)`` returns an ``OptimizedModule`` whose forward runs dynamo's graphs: hooks added after
  compilation are not called from them (captum's Grad-CAM found no output) and each new input shape or hook
  recompiles (30 s for a 2-step maximize on a tiny net). :func:`eager_view` runs the same submodules eagerly,
  under the compiled module's names (``_orig_mod.conv2``).
- Lazy modules (``nn.LazyConv2d``) have no shapes until a first forward pass: a model cnn-probe built is given
  one blank pass (:func:`materialize`); a module of the caller's is refused, since that pass would change it.
- An int8 model (``torch.ao.quantization.convert``) runs quantized kernels that no gradient flows through, and
  its outputs are quantized tensors: refused in one line (:func:`check_form`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from probe.errors import ProbeUsageError
from probe.forward import model_input, passes_through

__all__ = ["Eager", "eager_view", "is_exported", "EXPORT_ADVICE", "lazy_modules", "quantized_modules", "meta_tensor",
           "check_form", "check_exported", "check_lazy", "why_not_run",
           "materialize"]


class Eager(nn.Module):
    """A wrapper's inner module run as it is, under the wrapper's names: ``torch.compile``'s ``OptimizedModule``
    (``_orig_mod.NAME``) run eagerly, ``DataParallel``'s and ``DistributedDataParallel``'s (``module.NAME``) on
    its own device, without scattering the batch or talking to a process group.

    Its ``forward`` takes the images alone, so ``torch.fx`` follows it (LRP): the wrappers' ``*inputs`` cannot be
    traced ('Proxy object cannot be iterated'). Its ``training`` flag is the wrapper's (set directly: ``train()``
    would reach the caller's modules).

    Args:
        wrapper: the compiled or data-parallel module; attribute: where it holds the inner one (default
            ``"_orig_mod"``, torch.compile's).
    """

    def __init__(self, wrapper: nn.Module, attribute: str = "_orig_mod") -> None:
        super().__init__()
        setattr(self, attribute, eager_view(getattr(wrapper, attribute)))  # a compiled DataParallel model too
        self.inner = attribute
        self.training = wrapper.training

    @passes_through  # an error raised inside is the model's, not cnn-probe's
    def forward(self, images: torch.Tensor) -> object:
        """Call the inner module: ``(N, C, H, W)`` images in, its output out."""
        return getattr(self, self.inner)(images)


def is_compiled(module: nn.Module) -> bool:
    """Whether ``module`` is what ``torch.compile`` returns for a module (torch's ``OptimizedModule``)."""
    return type(module).__name__ == "OptimizedModule" and isinstance(getattr(module, "_orig_mod", None), nn.Module)


def is_data_parallel(module: nn.Module) -> bool:
    """Whether ``module`` is ``nn.DataParallel`` or ``DistributedDataParallel`` (its inner module at ``.module``)."""
    return isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel))


def eager_view(module: nn.Module) -> nn.Module:
    """``module`` itself, or an :class:`Eager` view of it when it is compiled or data-parallel (nested too: a
    compiled DataParallel model is ``_orig_mod.module.NAME``)."""
    if is_compiled(module):
        return Eager(module)
    if is_data_parallel(module):
        return Eager(module, "module")
    return module


def _graph_container(model: nn.Module, name: str) -> list[str] | None:
    """The leaves inside module ``name`` that a ``torch.fx`` GraphModule holding it calls, when ``name`` is a container
    the graph never calls itself (a traced model's ``layer1``; an ONNX or TorchScript conversion's); else None."""
    parts = name.split(".")
    for cut in range(len(parts)):  # the GraphModules above it, outermost first
        owner = model.get_submodule(".".join(parts[:cut])) if cut else model
        if not isinstance(owner, torch.fx.GraphModule):
            continue
        inner = ".".join(parts[cut:])
        called = [str(node.target) for node in owner.graph.nodes if node.op == "call_module"]
        if inner not in called:
            inside = [target for target in called if target.startswith(inner + ".")]
            prefix = ".".join(parts[:cut])
            return [f"{prefix}.{target}" if prefix else target for target in inside]
    return None


def why_not_run(model: nn.Module, name: str) -> str:
    """Why module ``name`` of ``model`` did not run in a forward pass, and what to name instead, in words that
    follow a refusal's ``"layer 'NAME' did not run"``.

    A ``torch.fx`` GraphModule (``symbolic_trace``, an ONNX model, a converted TorchScript module) keeps a traced
    model's containers (``layer1``) only to hold the leaves its graph calls itself, so a container never runs:
    its leaves are named. Any other module that did not run is a branch the forward skips (an auxiliary head in
    eval mode, a layer defined but unused).
    """
    try:
        inside = _graph_container(model, name)
    except AttributeError:  # not a submodule of model: nothing more to say than that it did not run
        inside = None
    if inside is None:
        return ("the forward skips it (an auxiliary head in eval mode, a layer defined but not used); choose another "
                "layer")
    if not inside:
        return "the model is a torch.fx graph whose operations do not call it; choose another layer"
    return (f"the model is a torch.fx graph (traced, or converted from ONNX or TorchScript), which calls the layers "
            f"inside this container itself and never the container: name one of them ({_listed(inside)}; the last, "
            f"{inside[-1]}, runs nearest its output)")


def lazy_modules(module: nn.Module) -> list[str]:
    """Names of the submodules whose parameters or buffers are not yet initialized (``""``: the module itself)."""
    return [name for name, sub in module.named_modules()
            if any(is_lazy(t) for t in [*sub.parameters(recurse=False), *sub.buffers(recurse=False)])]  # fmt: skip


def quantized_modules(module: nn.Module) -> list[str]:
    """Names of the submodules that run quantized kernels (``torch.ao.nn.quantized``, its intrinsic and dynamic
    forms, as ``torch.ao.quantization.convert`` and ``quantize_dynamic`` make them; not the ``_packed_params``
    holders inside them, which are no layers); quantization-aware (QAT) modules are float, and so
    is ``FloatFunctional`` (the float adds and concatenations of a model prepared for quantization, which
    ``convert`` turns into ``QFunctional``), though it lives in ``torch.ao.nn.quantized``."""
    from torch.ao.nn.quantized import FloatFunctional

    return [name or type(module).__name__ for name, sub in module.named_modules()
            if ".quantized" in type(sub).__module__ and not isinstance(sub, FloatFunctional)
            and not type(sub).__name__.endswith("PackedParams")]  # fmt: skip


def meta_tensor(module: nn.Module) -> str | None:
    """The name of the first parameter or buffer of ``module`` on the meta device (no data), or None."""
    return next((name for name, tensor in (*module.named_parameters(), *module.named_buffers()) if tensor.is_meta),
                None)  # fmt: skip


def is_exported(module: nn.Module) -> bool:
    """Whether ``module`` (or a submodule) is a graph of ATen operations, as ``torch.export.export(...).module()``
    (and ``torch.export.load``'s programs) give: its submodules hold the weights but never run."""
    return any(isinstance(sub, torch.fx.GraphModule) and any(
        node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload) for node in sub.graph.nodes)
        for sub in module.modules())  # fmt: skip


EXPORT_ADVICE = ("a torch.export program runs ATen operations, not its modules (no layer of it can be hooked), at "
                 "the input shapes it was exported with; give the nn.Module you exported (--model file.py:factory "
                 "returning it; its weights: torch.save(torch.export.load('model.pt2').module().state_dict(), "
                 "'weights.pt'), then --weights weights.pt)")


META_ADVICE = ("build it with real tensors (not under torch.device('meta')) or materialize it "
               "(module.to_empty(device='cpu') and load weights)")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f", ... ({len(names)} in all)" if len(names) > 4 else "")


def check_form(module: nn.Module, *, built: bool = False) -> None:
    """Refuse a module cnn-probe cannot probe as it is.

    Args:
        module: the model.
        built: whether cnn-probe built it (then its lazy modules are initialized by :func:`materialize`).

    Raises:
        ProbeUsageError: (``param="model"``) tensors on the meta device; an exported program's module; int8
            quantized modules; lazy modules not
            yet initialized in a module of the caller's.
    """
    meta = meta_tensor(module)
    if meta is not None:
        raise ProbeUsageError(f"the model is on the meta device ({meta} has no data): {META_ADVICE}", param="model")
    check_exported(module)
    quantized = quantized_modules(module)
    if quantized:
        raise ProbeUsageError(
            f"the model runs quantized modules ({_listed(quantized)}: torch.ao.quantization.convert or "
            "quantize_dynamic); no gradient flows through quantized kernels to the image (a dynamic one's is silently "
            "none): give the float model (before quantize_dynamic, prepare or convert), or the prepare_qat model, which "
            "cnn-probe takes", param="model")
    if not built:
        check_lazy(module)


def check_exported(module: nn.Module) -> None:
    """Refuse an exported program's module (:func:`is_exported`): no hook on its submodules would ever fire.

    Raises:
        ProbeUsageError: (``param="model"``) saying what to give instead.
    """
    if is_exported(module):
        raise ProbeUsageError(f"the model is an exported program's module ({type(module).__name__}): {EXPORT_ADVICE}",
                              param="model")


def check_lazy(module: nn.Module) -> None:
    """Refuse a module of the caller's whose lazy modules have no shapes yet: a pass of cnn-probe's would
    initialize them (new parameters, drawn from the caller's random generator).

    Raises:
        ProbeUsageError: (``param="model"``) naming them and the pass that initializes them.
    """
    lazy = lazy_modules(module)
    if lazy:
        raise ProbeUsageError(
            f"the model's lazy modules are not initialized yet ({_listed(lazy)}): run it once on an input of its "
            "size, model(torch.zeros(1, C, H, W)), so they get their shapes; cnn-probe does not change your module",
            param="model")


def materialize(module: nn.Module, channels: int, size: tuple[int, int]) -> None:
    """Give the lazy modules of a model cnn-probe built their shapes: one blank ``(1, channels, H, W)`` pass in
    eval mode (batch norms keep their statistics), without gradients; the mode is restored after.

    Raises:
        ModelInputError: the model refuses that input (naming the size, see :func:`probe.forward.model_input`).
    """
    if not lazy_modules(module):
        return
    modes = {sub: sub.training for sub in module.modules()}
    blank = torch.zeros(1, channels, *size)
    try:
        module.eval()
        with torch.no_grad(), model_input(blank):
            module(blank)
    finally:
        for sub, mode in modes.items():
            sub.training = mode
