"""Record what the layers of a model compute, with hooks that clean up after themselves.

Layers are addressed by the dotted names of ``model.named_modules()``
(``"conv2"``, ``"layer3.1.conv2"``, ``"features.28"``). Two reserved names
address the model itself: ``"input"`` (what the model was called with) and
``"output"`` (what it returned).

Typical use from a notebook::

    with probe.record(model, ["conv1", "conv2"]) as acts:
        model(x)
    acts["conv2"].shape        # (N, 50, 11, 11); hooks are gone here

Every hook is registered when the ``with`` block starts and removed when it
ends, also when the forward pass raises, so a model can be recorded any number
of times and never keeps a hook.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from probe.errors import ProbeUsageError, unknown_name

__all__ = [
    "INPUT",
    "OUTPUT",
    "Recording",
    "LayerInfo",
    "record",
    "capture",
    "layers",
    "layer_names",
    "resolve_layers",
    "evaluating",
    "first_tensor",
]

INPUT = "input"
"""Reserved layer name: the tensor the model was called with."""
OUTPUT = "output"
"""Reserved layer name: the tensor the model returned."""

Reduction = Literal["mean", "max", "sum"]


def first_tensor(value: Any) -> torch.Tensor | None:
    """Return ``value`` if it is a tensor, else the first tensor inside a tuple/list/namedtuple."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def layer_names(model: nn.Module) -> list[str]:
    """All addressable names of ``model``: ``"input"``, its dotted submodule names, ``"output"``."""
    return [INPUT] + [name for name, _ in model.named_modules() if name] + [OUTPUT]


def resolve_layers(model: nn.Module, names: str | Iterable[str]) -> dict[str, nn.Module]:
    """Map layer names to modules, checking every name.

    Args:
        model: the network.
        names: one dotted name or several. ``"input"`` and ``"output"`` map to
            ``model`` itself.

    Returns:
        ``{name: module}`` in the order given, duplicates dropped.

    Raises:
        ProbeUsageError: for an unknown name; the message lists the valid names
            and suggests the closest.
    """
    if isinstance(names, str):
        names = [names]
    modules = dict(model.named_modules())
    resolved: dict[str, nn.Module] = {}
    for name in names:
        if name in (INPUT, OUTPUT):
            resolved[name] = model
        elif name and name in modules:
            resolved[name] = modules[name]
        else:
            raise unknown_name("layer", name, layer_names(model), param="layer")
    if not resolved:
        raise ProbeUsageError("no layer given; name at least one layer to record", param="layer")
    return resolved


def _reduce(tensor: torch.Tensor, reduction: Reduction | None) -> torch.Tensor:
    """Reduce every dimension after the channel dimension (dim 1); 2-D tensors pass through."""
    if reduction is None or tensor.dim() <= 2:
        return tensor
    flat = tensor.flatten(2)
    if reduction == "mean":
        return flat.mean(dim=2)
    if reduction == "sum":
        return flat.sum(dim=2)
    if reduction == "max":
        return flat.amax(dim=2)
    raise ProbeUsageError(f"unknown reduction {reduction!r}; reductions are: mean, max, sum", param="reduce")


class Recording(Mapping[str, torch.Tensor]):
    """What :func:`record` yields: a read-only mapping ``layer name -> activation``.

    Activations have shape ``(N, C, H, W)`` for convolutional layers and
    ``(N, F)`` for linear ones (``(N, C)`` after a spatial reduction). A layer
    that did not run (yet) is absent. ``grads`` maps the same names to
    ``d(loss)/d(activation)`` after ``loss.backward()``, when recording with
    ``grads=True``.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._acts: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._acts[name]
        except KeyError:
            if name in self.names:
                raise KeyError(f"layer {name!r} has not run yet: call the model inside the 'with' block") from None
            raise unknown_name("recorded layer", name, self.names, param="layer") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._acts)

    def __len__(self) -> int:
        return len(self._acts)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self._acts.items())
        return f"Recording({{{shapes}}})"

    def _repr_png_(self) -> bytes | None:
        """Notebooks show the first image's feature maps (up to 32 per layer) instead of tensors."""
        from probe.reports.recording import preview

        return preview(self)


@contextlib.contextmanager
def record(
    model: nn.Module,
    layers: str | Iterable[str],
    *,
    detach: bool = True,
    to_cpu: bool = False,
    reduce: Reduction | None = None,
    grads: bool = False,
    accumulate: bool = False,
) -> Iterator[Recording]:
    """Record the activations of named layers while the ``with`` block runs.

    Args:
        model: any ``nn.Module``; it is not changed (no mode, weight or
            ``requires_grad`` change) and keeps no hook after the block.
        layers: one dotted ``named_modules()`` name or several; ``"input"`` and
            ``"output"`` are the model's input and output.
        detach: store activations detached from the graph (default True). Set
            False to keep the graph and differentiate through the stored tensors.
        to_cpu: move stored activations to the CPU (default False).
        reduce: keep only ``"mean"``, ``"max"`` or ``"sum"`` over the spatial
            dimensions, shape ``(N, C)``, to save memory (default None: full maps).
        grads: also record ``d(loss)/d(activation)`` on ``backward()`` into
            ``recording.grads`` (same reduction and device as the activations).
            Needs an input or parameters that require grad.
        accumulate: concatenate along the batch dimension over several forward
            passes instead of keeping only the last one (default False).

    Yields:
        A :class:`Recording`, filled as the model runs.

    Raises:
        ProbeUsageError: for an unknown layer name or reduction.
    """
    modules = resolve_layers(model, layers)
    if reduce is not None:
        _reduce(torch.zeros(1, 1, 1), reduce)  # validate the name before any forward pass
    recording = Recording(list(modules))

    def store(target: dict[str, torch.Tensor], name: str, tensor: torch.Tensor) -> None:
        value = _reduce(tensor.detach() if detach else tensor, reduce)
        if to_cpu:
            value = value.cpu()
        if accumulate and name in target:
            value = torch.cat([target[name], value], dim=0)
        target[name] = value

    def keep(name: str, value: Any) -> None:
        tensor = first_tensor(value)
        if tensor is None:
            return
        store(recording._acts, name, tensor)
        if grads and tensor.requires_grad:
            tensor.register_hook(lambda grad, name=name: store(recording.grads, name, grad))

    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for name, module in modules.items():
            if name == INPUT:
                handles.append(module.register_forward_pre_hook(lambda m, args, n=name: keep(n, args)))
            else:
                handles.append(module.register_forward_hook(lambda m, args, out, n=name: keep(n, out)))
        yield recording
    finally:
        for handle in handles:
            handle.remove()


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass once every needed layer has run."""


def capture(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: str | Iterable[str],
    *,
    stop_early: bool = True,
) -> dict[str, torch.Tensor]:
    """Run ``model(inputs)`` and return the named layers' outputs, graph kept.

    This is the primitive the render loops use: activations stay attached to
    the graph so that objectives can be differentiated w.r.t. the input.

    Args:
        model: the network (not changed).
        inputs: the model's input batch, e.g. ``(N, C, H, W)``.
        layers: layer names as for :func:`record`.
        stop_early: end the forward pass as soon as every requested layer has
            run, skipping the rest of the network (default True). Ignored when
            ``"output"`` is requested.

    Returns:
        ``{name: activation}``; layers that never ran are absent.
    """
    modules = resolve_layers(model, layers)
    needed = set(modules) - {INPUT, OUTPUT}
    outputs: dict[str, torch.Tensor] = {}
    stop = stop_early and OUTPUT not in modules and bool(needed)

    def keep(name: str, value: Any) -> None:
        tensor = first_tensor(value)
        if tensor is not None:
            outputs[name] = tensor
        if stop and needed.issubset(outputs):
            raise _StopForward

    handles = [
        module.register_forward_hook(lambda m, args, out, n=name: keep(n, out))
        for name, module in modules.items()
        if name not in (INPUT, OUTPUT)
    ]
    try:
        result = model(inputs)
    except _StopForward:
        result = None
    finally:
        for handle in handles:
            handle.remove()
    if INPUT in modules:
        outputs[INPUT] = inputs
    if OUTPUT in modules and result is not None:
        tensor = first_tensor(result)
        if tensor is not None:
            outputs[OUTPUT] = tensor
    return outputs


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then restore every module's own flag.

    Used by every function that runs a user's model, so that dropout and
    batch-norm behave as at inference without leaving the model changed.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


@dataclass(frozen=True)
class LayerInfo:
    """One row of :func:`layers`.

    Attributes:
        name: dotted ``named_modules()`` name.
        type: the module's class name (``"Conv2d"``).
        output_shape: output shape without the batch dimension, e.g.
            ``(50, 11, 11)``; None if the layer did not run in the dummy pass.
        channels: ``output_shape[0]`` (channels or features), or None.
        parameters: number of parameters owned directly by this module.
    """

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    channels: int | None
    parameters: int


def layers(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    leaves_only: bool = False,
) -> list[LayerInfo]:
    """List the layers of ``model`` with their output shapes (one dummy forward pass).

    Args:
        model: the network (not changed: it runs in eval mode under
            ``torch.no_grad`` and keeps no hook).
        input_shape: ``(C, H, W)`` of one input; a batch of one zero-image of
            this shape is run on the model's device and dtype.
        leaves_only: list only modules without children (default False: all).

    Returns:
        One :class:`LayerInfo` per module, in ``named_modules()`` order,
        the root excluded.
    """
    named = [(name, module) for name, module in model.named_modules() if name]
    if leaves_only:
        named = [(name, module) for name, module in named if not any(True for _ in module.children())]
    try:
        reference = next(model.parameters())
        device, dtype = reference.device, reference.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    dummy = torch.zeros(1, *input_shape, device=device, dtype=dtype)
    with evaluating(model), torch.no_grad(), record(model, [name for name, _ in named]) as acts:
        model(dummy)
    rows = []
    for name, module in named:
        shape = tuple(acts[name].shape[1:]) if name in acts else None
        rows.append(
            LayerInfo(
                name=name,
                type=type(module).__name__,
                output_shape=shape,
                channels=shape[0] if shape else None,
                parameters=sum(p.numel() for p in module.parameters(recurse=False)),
            )
        )
    return rows
