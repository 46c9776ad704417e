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

**Values as the module produced them.** A later operation of the same forward
pass can rewrite a module's output in place: ``ReLU(inplace=True)`` after each
convolution of torchvision's VGG and AlexNet, ``out += identity`` after a
ResNet block's last batch norm, ``F.relu(x, inplace=True)`` in GoogLeNet's
``BasicConv2d``, a write into a slice or through ``.data``, or the caller of a
recorded submodule (DenseNet's ``F.relu(self.features(x), inplace=True)``).
:func:`record` and :func:`capture` keep what each module returned at the
moment it returned it, and copy only the outputs that need it:

- :func:`record` keeps each output uncopied and watches its storage while
  the pass runs (:class:`probe.rewrites.WriteWatch`: every ATen operation
  that writes into it, by any in-place spelling, through a view or ``.data``,
  also under ``torch.inference_mode`` where tensors have no version counter).
  The first write into it copies it just before it happens, so every pass
  copies exactly the outputs it rewrites, whatever the data, and the model runs
  once per call: its own hooks, global module hooks, batch-norm statistics and
  random draws are what a plain forward pass gives. When the pass ends, an
  output that shares storage with what the pass was given or returned, or with
  the model's parameters and buffers, is copied (the caller, the user or a later
  pass may write into those: an ``nn.Identity``'s output is the input). With
  ``detach=False`` an output in a graph is copied in the hook (a copy taken at
  the write could not keep the graph) and swapped back for the original when
  nothing wrote into it. A write from outside torch's operators (through
  ``.numpy()``) is not seen.
- :func:`capture` without gradients (``torch.no_grad``, ``torch.inference_mode``:
  the atlas's dataset pass) does the same. With gradients (the render loops:
  the graph kept) it learns per model and kind of
  pass (layers, where it stops, grad and autocast modes, the input's device,
  dtype and grad) which outputs a pass rewrites: the first pass copies every
  output in its hook and watches the writes; later passes copy only the ones
  it saw rewritten, and should one rewrite an output it did not copy (a
  rewrite that depends on the data; its version counter tells), capture
  forgets what it learned and runs the pass again. It does not copy the output
  of the layer whose hook ends the forward pass: nothing runs after it.
- A reduction (``reduce=``), a move to the CPU and ``accumulate=True`` copy in
  the hook anyway.

**Which value is the activation.** The output as record's hook receives it:
after the forward hooks that run before it (global module hooks, the user's
hooks registered before the ``with`` block, ``prepend=True`` ones), in place or
replaced, which is what the model's next layers read; a hook the user adds
inside the block runs after record's, and what it changes comes after the
recorded value. A module that ``torch.utils.checkpoint`` runs again in
``backward()`` is recorded from the forward pass (its gradient from the
recomputation when the forward pass kept no graph, a reentrant checkpoint; not
for a module called several times in the pass).

**Modules called several times.** A module can run more than once in one
forward pass (each block of torchvision's ResNets uses its ``relu`` two or
three times). Its calls are named ``NAME#K``, counting from 0 in the order they
run: ``"layer1.0.relu#0"`` is the ReLU after ``bn1``, ``"layer1.0.relu#1"`` the
one after the addition. (Not ``NAME:K``: ``"conv2:7"`` means unit 7 of conv2.)

- :func:`record` given the plain name records every call: under ``NAME`` when
  the module ran once in the pass, else under ``NAME#0``, ``NAME#1``, ...;
  reading ``NAME`` then raises :class:`~probe.errors.ProbeUsageError` listing
  the per-call names, and :attr:`Recording.calls` says how many there are.
  ``accumulate=True`` concatenates each call name over passes. A forward pass
  is one call of the model given to :func:`record`.
- :func:`capture`, and with it every objective (:mod:`probe.objectives`), Deep
  Dream and style transfer, refuses the plain name of such a module with the
  same error; name one call instead (``channel("layer1.0.relu#1", 3)``, ``probe
  dream --layer layer1.0.relu#1``; style transfer's layer options take
  ``NAME#K`` as well). To know that a module does not run
  again later in the pass, the first :func:`capture` of a module by its plain
  name on a model runs the whole forward pass (not stopping early) and counts
  the calls; the count is remembered for that model object, so later captures
  stop at the deepest layer. (A module reached only through plain
  ``nn.Sequential`` containers runs once by construction: no full pass.)
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import Counter
from collections.abc import Container, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from probe.checks import MAX_SIDE, check_count, check_names
from probe.errors import ProbeUsageError, unknown_name
from probe.forward import model_input
from probe.layout import channels_last_layers
from probe.memory import check_scaled, held_bytes
from probe.models import LoadedModel, taking_images
from probe.models.forms import check_exported, check_lazy, eager_view
from probe.modes import evaluating
from probe.outputs import output_tensor
from probe.leaves import helper_names, is_leaf
from probe.rewrites import Rewrites, WriteWatch, storage_key, storages, tensors_in

__all__ = [
    "INPUT",
    "OUTPUT",
    "CALL_SEPARATOR",
    "Recording",
    "LayerInfo",
    "record",
    "capture",
    "layers",
    "layer_names",
    "resolve_layers",
    "call_names",
    "split_call",
    "evaluating",
    "first_tensor",
]

INPUT = "input"
"""Reserved layer name: the tensor the model was called with."""
OUTPUT = "output"
"""Reserved layer name: the tensor the model returned."""
CALL_SEPARATOR = "#"
"""Separates a module name from a call index: ``"layer1.0.relu#1"`` is the second call of ``layer1.0.relu``."""

Reduction = Literal["mean", "max", "sum"]


def output_of(value: Any) -> torch.Tensor | None:
    """The tensor the layer ``"output"`` stands for in what a model returned: a tensor itself; else the tensor
    :func:`probe.outputs.output_tensor` reads as the prediction (a dict's ``logits`` or ``out``, a tuple's first
    tensor); None for a dict of several maps (an FPN backbone's), detections or a base model's features, where
    no tensor is known to be the output."""
    return value if isinstance(value, torch.Tensor) else output_tensor(value)


def first_tensor(value: Any) -> torch.Tensor | None:
    """Return ``value`` if it is a tensor, else the first tensor inside a tuple/list/namedtuple or the values of a
    dict (in order: a Hugging Face ``ModelOutput``'s ``logits`` or ``last_hidden_state``), searched depth first.
    A dict's ``"logits"`` comes first wherever it stands: a user's ``{"features": ..., "logits": ...}`` is read by
    its class scores."""
    if isinstance(value, Mapping) and isinstance(value.get("logits"), torch.Tensor):
        return value["logits"]
    return next(tensors_in(value), None)


def layer_names(model: nn.Module) -> list[str]:
    """All addressable names of ``model``: ``"input"``, its dotted submodule names, ``"output"``."""
    return [INPUT] + [name for name, _ in model.named_modules() if name] + [OUTPUT]


def call_names(name: str, calls: int) -> list[str]:
    """The per-call names of a module that runs ``calls`` times: ``["NAME#0", "NAME#1", ...]``."""
    return [f"{name}{CALL_SEPARATOR}{call}" for call in range(calls)]


def split_call(name: str, modules: Container[str]) -> tuple[str, int] | None:
    """``("layer1.0.relu", 1)`` for ``"layer1.0.relu#1"`` when ``layer1.0.relu`` is in ``modules``, else None."""
    base, separator, index = name.rpartition(CALL_SEPARATOR)
    if separator and base and base in modules and index.isascii() and index.isdigit():
        return base, int(index)
    return None


def _repeated(name: str, calls: int) -> ProbeUsageError:
    """The error for the plain name of a module that runs ``calls`` (> 1) times in one forward pass."""
    names = ", ".join(repr(n) for n in call_names(name, calls))
    return ProbeUsageError(
        f"layer {name!r} runs {calls} times in one forward pass, so its name alone does not say which output; "
        f"name one call: {names}",
        param="layer",
    )


@dataclass(frozen=True)
class _Target:
    """One resolved layer name: the module, its dotted name, and the call asked for (None: the plain name)."""

    module: nn.Module
    base: str
    call: int | None


_Remembered = dict[str, tuple["weakref.ref[nn.Module] | None", str, "int | None"]]
_RESOLVED: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, ...], _Remembered]] = weakref.WeakKeyDictionary()
"""Per model: what :func:`_resolve` found for each tuple of names, each module weakly (the model as None: an
entry holding its key would keep the model alive), reused while each module is still registered where it was."""


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    """The module registered under dotted ``name`` in ``model``, or None; a walk down the path only."""
    module: nn.Module | None = model
    for part in name.split("."):
        module = module._modules.get(part) if module is not None else None
    return module


def _recalled(model: nn.Module, remembered: _Remembered) -> dict[str, _Target] | None:
    """An earlier resolution, or None when one of its modules is no longer registered under its name."""
    resolved = {}
    for name, (ref, base, call) in remembered.items():
        module = model if ref is None else ref()
        if module is None or (ref is not None and _submodule(model, base) is not module):
            return None
        resolved[name] = _Target(module, base, call)
    return resolved


def _resolve(model: nn.Module, names: str | Iterable[str]) -> dict[str, _Target]:
    """:func:`resolve_layers` with each name's module name and call index.

    Remembered per model and names: a render loop resolves the same names at every step, and listing a
    googlenet's modules each time was a third of the Python calls of a step. Names whose module was replaced
    or removed since are resolved again.
    """
    names = check_names(names, "layer")
    if isinstance(model, torch.jit.ScriptModule):
        raise ProbeUsageError(
            f"{type(model).__name__} is TorchScript, which takes no hooks; probe.load_model(module) converts it "
            "(through ONNX) to modules of the same names: record that model's .module", param="model")
    try:
        known = _RESOLVED.setdefault(model, {})
    except TypeError:  # a model that cannot be weakly referenced: resolved every time
        known = {}
    remembered = known.get(tuple(names))
    resolved = None if remembered is None else _recalled(model, remembered)
    if resolved is None:
        resolved = _resolved(model, names)
        known[tuple(names)] = {name: (None if name in (INPUT, OUTPUT) else weakref.ref(target.module),
                                      target.base, target.call) for name, target in resolved.items()}
    return resolved


def _resolved(model: nn.Module, names: list[str]) -> dict[str, _Target]:
    """Resolve ``names`` against every module of ``model`` (see :func:`resolve_layers`)."""
    modules = dict(model.named_modules())
    resolved: dict[str, _Target] = {}
    for name in names:
        if name in (INPUT, OUTPUT):
            resolved[name] = _Target(model, name, None)
            continue
        if name and name in modules:
            resolved[name] = _Target(modules[name], name, None)
            continue
        call = split_call(name, modules)
        if call is not None:
            resolved[name] = _Target(modules[call[0]], *call)
            continue
        raise unknown_name("layer", name, layer_names(model), param="layer")
    if not resolved:
        raise ProbeUsageError("no layer given; name at least one layer to record", param="layer")
    return resolved


def resolve_layers(model: nn.Module, names: str | Iterable[str]) -> dict[str, nn.Module]:
    """Map layer names to modules, checking every name.

    Args:
        model: the network.
        names: one dotted name or several. ``"input"`` and ``"output"`` map to
            ``model`` itself; ``"NAME#K"`` (call ``K`` of a module that runs
            several times, see the module docstring) maps to module ``NAME``.

    Returns:
        ``{name: module}`` in the order given, duplicates dropped.

    Raises:
        ProbeUsageError: for an unknown name; the message lists the valid names
            and suggests the closest.
    """
    return {name: target.module for name, target in _resolve(model, names).items()}


@dataclass
class _Taps:
    """What a request wants of one module: every call (its plain name was given) and/or some calls by index."""

    module: nn.Module
    every: bool = False
    calls: set[int] = field(default_factory=set)


def _taps(resolved: Mapping[str, _Target]) -> dict[str, _Taps]:
    """Group resolved names by module name; ``"input"`` and ``"output"`` left out."""
    taps: dict[str, _Taps] = {}
    for name, target in resolved.items():
        if name in (INPUT, OUTPUT):
            continue
        tap = taps.setdefault(target.base, _Taps(target.module))
        if target.call is None:
            tap.every = True
        else:
            tap.calls.add(target.call)
    return taps


def _version(tensor: torch.Tensor) -> int | None:
    """The tensor's in-place version counter, or None where it has none (inference tensors)."""
    if tensor.is_inference():
        return None
    try:
        return tensor._version
    except RuntimeError:
        return None


class _Copies:
    """Copies of module outputs taken in the hook, swapped back for the originals that were not rewritten.

    :meth:`copy` clones a tensor as it is now; :meth:`restore`, called when the
    forward pass has ended, puts each original whose version counter did not
    move back in place of its copy (same values, the model's own storage and
    graph) and drops the copies.
    """

    def __init__(self) -> None:
        self._pending: dict[int, tuple[torch.Tensor, torch.Tensor, int, Hashable]] = {}

    def copy(self, tensor: torch.Tensor, label: Hashable = None) -> torch.Tensor:
        """A clone of ``tensor`` (differentiable when ``tensor`` is in a graph); ``label`` names it for :meth:`restore`."""
        copied = tensor.clone()
        version = _version(tensor)
        if version is not None:
            self._pending[id(copied)] = (copied, tensor, version, label)
        return copied

    def restore(self, target: dict[str, torch.Tensor], keep: Container[Hashable] = ()) -> dict[Hashable, bool]:
        """In ``target``, replace each pending copy whose original was not rewritten by that original.

        Args:
            target: ``{key: kept tensor}``, changed in place.
            keep: labels whose copies stay even when their originals' version counters did not move.

        Returns:
            ``{label: rewritten}`` for every copy whose original has a version counter.
        """
        moved = {ident: _version(original) != version for ident, (_, original, version, _) in self._pending.items()}
        for key, value in target.items():
            entry = self._pending.get(id(value))
            if entry is not None and entry[0] is value and not moved[id(value)] and entry[3] not in keep:
                target[key] = entry[1]
        rewritten = {entry[3]: moved[ident] for ident, entry in self._pending.items()}
        self._pending.clear()
        return rewritten


_REDUCTIONS = ("mean", "max", "sum")


def _check_reduction(reduction: Reduction | None) -> None:
    """Refuse a reduction other than None, ``"mean"``, ``"max"`` and ``"sum"`` (naming them)."""
    if reduction is not None and reduction not in _REDUCTIONS:
        raise ProbeUsageError(f"unknown reduction {reduction!r}; reductions are: {', '.join(_REDUCTIONS)}",
                              param="reduce")


def _reduce(tensor: torch.Tensor, reduction: Reduction | None) -> torch.Tensor:
    """Reduce every dimension after the channel dimension (dim 1); 2-D tensors pass through."""
    _check_reduction(reduction)
    if reduction is None or tensor.dim() <= 2:
        return tensor
    flat = tensor.flatten(2)
    if reduction == "mean":
        return flat.mean(dim=2)
    if reduction == "sum":
        return flat.sum(dim=2)
    return flat.amax(dim=2)


def _new_tensor(value: torch.Tensor, reduction: Reduction | None, to_cpu: bool) -> torch.Tensor | None:
    """``value`` reduced and/or moved to the CPU when that makes a new tensor, else None (a copy is needed)."""
    if reduction is not None and value.dim() > 2:
        reduced = _reduce(value, reduction)
        return reduced.cpu() if to_cpu else reduced
    if to_cpu and value.device.type != "cpu":
        return value.cpu()
    return None


class Recording(Mapping[str, torch.Tensor]):
    """What :func:`record` yields: a read-only mapping ``layer name -> activation``.

    Activations have shape ``(N, C, H, W)`` for convolutional layers and
    ``(N, F)`` for linear ones (``(N, C)`` after a spatial reduction), with the
    values each module returned when it ran (see the module docstring). A layer
    that did not run (yet) is absent. ``grads`` maps the same names to
    ``d(loss)/d(activation)`` after ``loss.backward()``, when recording with
    ``grads=True``.

    A module that ran several times in one forward pass is recorded per call as
    ``NAME#0``, ``NAME#1``, ...; ``calls`` maps each module recorded by its plain
    name to the most calls seen in one pass, and reading the plain name of a
    module with ``calls > 1`` raises :class:`~probe.errors.ProbeUsageError`
    naming the per-call names.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._acts: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._acts[name]
        except KeyError:
            if self.calls.get(name, 0) > 1:
                raise _repeated(name, self.calls[name]) from None
            if name in self.names:
                raise KeyError(f"layer {name!r} has not run yet: call the model inside the 'with' block") from None
            raise unknown_name("recorded layer", name, dict.fromkeys([*self.names, *self._acts]), param="layer") from None

    def __contains__(self, name: object) -> bool:
        return name in self._acts

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

    def recorded_as(self, name: str) -> list[str]:
        """The names a layer requested by ``name`` is kept under: ``[name]``, or its per-call names.

        E.g. ``["layer1.0.relu#0", "layer1.0.relu#1"]`` for a module that ran
        twice per forward pass; ``[name]`` also for a layer that did not run.
        """
        calls = self.calls.get(name, 0)
        return call_names(name, calls) if calls > 1 else [name]

    def _split(self, name: str) -> None:
        """``name`` turned out to run several times per pass: what its plain name holds becomes ``name#0``."""
        first = f"{name}{CALL_SEPARATOR}0"
        for target in (self._acts, self.grads):
            if name in target:
                target[first] = target.pop(name)

    def _key(self, name: str, call: int, taps: _Taps) -> list[str]:
        """The names call ``call`` of module ``name`` is kept under (none when the request skips it)."""
        keys = []
        if taps.every:
            runs = max(self.calls.get(name, 0), call + 1)
            if runs > 1 and self.calls.get(name, 0) == 1:
                self._split(name)
            self.calls[name] = runs
            keys.append(name if runs == 1 else f"{name}{CALL_SEPARATOR}{call}")
        if call in taps.calls and f"{name}{CALL_SEPARATOR}{call}" not in keys:
            keys.append(f"{name}{CALL_SEPARATOR}{call}")
        return keys

    def _live(self, key: str) -> str:
        """Where a value first kept under ``key`` lives now (a plain name may have become ``NAME#0``)."""
        return f"{key}{CALL_SEPARATOR}0" if self.calls.get(key, 0) > 1 else key


def _modules_of(model: nn.Module) -> list[nn.Module]:
    """``model`` and every submodule, each once, walked in one loop (``model.modules()`` resumes a generator per
    module and level: a third of a recorded pass's Python calls when every pass listed the weights)."""
    found: list[nn.Module] = []
    seen: set[int] = set()
    stack = [model]
    while stack:
        module = stack.pop()
        if module is not None and id(module) not in seen:  # a child slot may hold None
            seen.add(id(module))
            found.append(module)
            stack.extend(module._modules.values())
    return found


def _state_storages(modules: list[nn.Module]) -> set[int]:
    """The storages of the parameters and buffers ``modules`` (a model's :func:`_modules_of`) hold now (a module
    may return one; a later pass rewrites it)."""
    tensors = [tensor for module in modules for table in (module._parameters, module._buffers)
               for tensor in table.values() if tensor is not None]
    try:
        keys = {tensor.untyped_storage().data_ptr() for tensor in tensors}
    except (RuntimeError, NotImplementedError):  # sparse, nested or meta tensors: one by one
        keys = {storage_key(tensor) for tensor in tensors}
    keys.discard(0)
    keys.discard(None)  # type: ignore[arg-type]
    return keys  # type: ignore[return-value]


def _check_hookable(model: nn.Module, modules: list[nn.Module]) -> None:
    """:func:`~probe.models.forms.check_exported`, asked only of a model with a ``torch.fx.GraphModule`` among
    its ``modules`` (the only kind an exported program's module is)."""
    for module in modules:  # a loop, not any(): no generator resumed per module
        if isinstance(module, torch.fx.GraphModule):
            check_exported(model)  # its submodules never run: nothing would be recorded
            return


def _place(tensor: torch.Tensor) -> Hashable:
    """Where ``tensor``'s values lie: storage, offset, shape, strides and dtype. Its detached aliases (one per
    ``detach()``) share it; two tensors with one place hold the same values."""
    return ("place", storage_key(tensor), tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()),
            tensor.dtype)


class _Held:
    """The outputs :func:`record` keeps uncopied, each copied just before anything writes into its storage.

    While a forward pass of the model runs, a :class:`~probe.rewrites.WriteWatch` watches every held tensor's
    storage: the first operation about to write into it (an in-place ReLU, ``out += identity``, a write into a
    slice, a view or through ``.data``, ``out=``; also under ``torch.inference_mode``, where tensors have no
    version counter) first swaps the tensor, wherever the recording holds it, for a clone of what it holds then,
    which is what the module returned. Nothing else is copied, and nothing needs to be learned or run again.
    """

    def __init__(self, kept: dict[str, torch.Tensor], lazy: bool = False) -> None:
        self.kept = kept
        self.tensors: dict[Hashable, torch.Tensor] = {}  # by :func:`_place`
        self.watch = WriteWatch(before_write=self.copy)
        self.watching = False
        self.lazy = lazy  # the watch starts at the first tensor held (see :meth:`arm`)
        self.thread = threading.get_ident()

    def arm(self) -> None:
        """A forward pass begins in this thread; the watch starts at the first tensor held. Before it nothing is
        held that a write could change, and a pass that holds nothing (only reductions, ``reduce="mean"``)
        never pays the dispatch mode's cost per operation."""
        self.thread = threading.get_ident()

    def hold(self, key: str, tensor: torch.Tensor) -> bool:
        """Keep ``tensor`` under ``key`` uncopied; False (nothing kept) for a tensor whose storage cannot be watched,
        or one made in another thread than the one that started the watch (a ``DataParallel`` replica's: torch's
        modes are per thread, so the watch would not see its writes)."""
        if threading.get_ident() != self.thread:
            return False
        if self.lazy:
            self.start()
        place = _place(tensor)
        if place not in self.tensors:
            if not self.watch.track(tensor, place):
                return False
            self.tensors[place] = tensor
        self.kept[key] = self.tensors[place]  # one tensor for one place: fc's output and the model's stay one
        return True

    def copy(self, labels: Iterable[Hashable]) -> None:
        """Replace the held tensors ``labels`` (places; other labels are ignored) by clones of what they hold now."""
        for label in labels:
            tensor = self.tensors.pop(label, None)  # type: ignore[arg-type]
            if tensor is None:
                continue
            self.watch.untrack(tensor, label)
            copied = tensor.clone()
            for key, value in self.kept.items():
                if value is tensor:
                    self.kept[key] = copied

    def copy_sharing(self, storage_keys: Container[int | None]) -> None:
        """Copy now every held tensor whose storage is in ``storage_keys`` (another party may write it later)."""
        self.copy([label for label, tensor in self.tensors.items() if storage_key(tensor) in storage_keys])

    def release(self) -> None:
        """Stop watching the tensors the recording no longer holds (a later pass replaced them)."""
        alive = {id(value) for value in self.kept.values()}
        for label in [label for label, tensor in self.tensors.items() if id(tensor) not in alive]:
            self.watch.untrack(self.tensors.pop(label), label)

    def start(self) -> None:
        """Watch from now on, in this thread (idempotent)."""
        if not self.watching:
            self.watch.__enter__()
            self.watching = True
            self.thread = threading.get_ident()

    def stop(self) -> None:
        """End the watch (idempotent)."""
        if self.watching:
            self.watching = False
            self.watch.__exit__(None, None, None)


@dataclass
class _RecordPass:
    """One forward pass of the model under :func:`record`.

    Attributes:
        graphs: ``(label, original)`` of the outputs copied differentiably in their hooks (``detach=False`` on a
            tensor in a graph: a clone taken at a write would have no graph), swapped back for the originals
            when the pass ends if nothing wrote into them.
    """

    graphs: list[tuple[Hashable, torch.Tensor]] = field(default_factory=list)


def _recomputing() -> bool:
    """True while autograd runs a backward pass: a module called then is recomputed by
    ``torch.utils.checkpoint``, not run by a forward pass of its own."""
    return torch._C._current_graph_task_id() != -1


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

    Each value is the module's output at the moment it ran, even when a later
    in-place operation rewrites that tensor (``ReLU(inplace=True)``,
    ``out += identity``); a module called several times per forward pass is
    recorded per call as ``NAME#K`` (see the module docstring). The model runs
    once per call, as it does alone: record never runs a pass again, so the
    model's own hooks, batch-norm statistics and random draws are what they
    would be without it.

    Args:
        model: any ``nn.Module``; it is not changed (no mode, weight, buffer or
            ``requires_grad`` change) and keeps no hook after the block.
        layers: one dotted ``named_modules()`` name or several; ``"input"`` and
            ``"output"`` are the model's input and output; ``"NAME#K"`` records
            only call ``K`` of module ``NAME``.
        detach: store activations detached from the graph (default True). Set
            False to keep the graph and differentiate through the stored
            tensors. A stored tensor is the model's own unless a later in-place
            operation rewrote it; then it is a copy taken in the hook (its graph
            reaches the input, but the model's later layers read the rewritten
            tensor, not the copy: use ``grads=True`` for ``d(loss)/d(activation)``).
        to_cpu: move stored activations to the CPU (default False).
        reduce: keep only ``"mean"``, ``"max"`` or ``"sum"`` over the spatial
            dimensions, shape ``(N, C)``, to save memory (default None: full maps).
        grads: also record ``d(loss)/d(activation)`` on ``backward()`` into
            ``recording.grads`` (same names, reduction and device as the
            activations), the gradient w.r.t. the output as the module returned
            it. Needs an input or parameters that require grad.
        accumulate: concatenate along the batch dimension over several forward
            passes instead of keeping only the last one (default False); per
            call for modules that run several times.

    Yields:
        A :class:`Recording`, filled as the model runs.

    Raises:
        ProbeUsageError: for an unknown layer name or reduction.
    """
    modules = _modules_of(model)  # listed once per block; their weights are read at each pass
    _check_hookable(model, modules)
    resolved = _resolve(model, layers)
    _check_reduction(reduce)  # before any forward pass
    taps = _taps(resolved)
    recording = Recording(list(resolved))
    copies = _Copies()
    held = _Held(recording._acts, lazy=True)
    seen: Counter[str] = Counter()  # calls per module in the current forward pass
    current: list[_RecordPass | None] = [None]  # the forward pass of ``model`` under way
    hooked: set[str] = set()  # the names whose gradient hook the last forward pass registered

    def store_grad(key: str, grad: torch.Tensor) -> None:
        key, kept = recording._live(key), recording.grads
        value = grad.detach() if detach else grad
        fresh = _new_tensor(value, reduce, to_cpu)
        value = value.clone() if fresh is None else fresh
        kept[key] = torch.cat([kept[key], value], dim=0) if accumulate and key in kept else value

    def keep(key: str, tensor: torch.Tensor) -> None:
        value = tensor.detach() if detach else tensor
        fresh = _new_tensor(value, reduce, to_cpu)  # a reduction or a move is a copy taken now
        acts, state = recording._acts, current[0]
        if accumulate and key in acts:
            acts[key] = torch.cat([acts[key], value if fresh is None else fresh], dim=0)  # a copy taken now
        elif fresh is not None:
            acts[key] = fresh
        elif state is not None and value.requires_grad:  # a clone at a write would lose the graph: copy now
            label = ("graph", key)  # one per key and pass (a ReLU(inplace)'s output is its input's tensor)
            acts[key] = copies.copy(value, label)
            state.graphs.append((label, tensor))
            held.start()
            held.watch.track(tensor, label)
        elif state is None or not held.hold(key, value):  # a module called outside a pass of the model
            acts[key] = value.clone()
        if grads and tensor.requires_grad:  # on the tensor as returned: autograd gives d/d(this version)
            tensor.register_hook(lambda grad, key=key: store_grad(key, grad))
            hooked.add(key)

    def recomputed(name: str, tensor: torch.Tensor) -> None:
        """A checkpointed module run again by backward(): its value was kept in the forward pass; its gradient
        flows through this tensor when the forward pass ran without a graph (a reentrant checkpoint)."""
        if not grads or not tensor.requires_grad or seen[name] != 1:
            return  # a module called several times in the last pass: which call this is cannot be told
        key = recording._live(name) if taps[name].every else f"{name}{CALL_SEPARATOR}0"
        if key in recording.names or key in recording._acts:
            if key not in hooked:
                tensor.register_hook(lambda grad, key=key: store_grad(key, grad))

    def on_module(name: str, value: Any) -> None:
        if current[0] is None and _recomputing():
            tensor = first_tensor(value)
            if tensor is not None:
                recomputed(name, tensor)
            return
        if current[0] is None:
            seen.clear()  # a submodule called on its own: each call is a pass of its own
        call = seen[name]
        seen[name] += 1
        tensor = first_tensor(value)
        if tensor is None:
            return
        for key in recording._key(name, call, taps[name]):
            keep(key, tensor)

    def on_root(name: str, tensor: torch.Tensor | None) -> None:
        if tensor is not None and current[0] is not None:
            keep(name, tensor)

    def begin(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if _recomputing():  # the whole model checkpointed and run again by backward(): not a pass of its own
            return
        seen.clear()
        hooked.clear()
        held.stop()  # an earlier pass that never reached end() (interrupted)
        held.release()
        held.watch.written.clear()
        current[0] = _RecordPass()
        held.arm()

    def end(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        state, current[0] = current[0], None
        if state is None:
            return
        held.stop()
        written: set[Hashable] = set()
        if held.tensors or state.graphs:  # a pass that holds nothing uncopied (reduce=...) has nothing to compare
            # what the caller, the user or a later pass may write into after this pass: copy those now
            shared = storages((args, kwargs)) | storages(output) | _state_storages(modules)
            held.copy_sharing(shared)
            written = {label for label, original in state.graphs if storage_key(original) in shared}
        copies.restore(recording._acts, keep=held.watch.written | written)
        for label, original in state.graphs:
            held.watch.untrack(original, label)

    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        handles.append(model.register_forward_pre_hook(begin, prepend=True, with_kwargs=True))
        if INPUT in resolved:
            handles.append(model.register_forward_pre_hook(lambda m, args: on_root(INPUT, first_tensor(args))))
        for name, tap in taps.items():
            handles.append(tap.module.register_forward_hook(lambda m, args, out, n=name: on_module(n, out)))
        if OUTPUT in resolved:
            handles.append(model.register_forward_hook(lambda m, args, out: on_root(OUTPUT, output_of(out))))
        # last: after every other hook of the pass; also when the pass raises (the watch must not stay on)
        handles.append(model.register_forward_hook(end, with_kwargs=True, always_call=True))
        yield recording
    finally:
        for handle in handles:
            handle.remove()
        held.stop()  # a pass interrupted past every hook (KeyboardInterrupt)
        copies.restore({})  # drop what an unfinished pass left pending


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass once every needed layer has run."""


_CALLS: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[weakref.ref[nn.Module], int]]] = weakref.WeakKeyDictionary()
"""Per model: how many times each module (by name) runs in one forward pass, as counted before."""


def _remembered(model: nn.Module, taps: Mapping[str, _Taps]) -> dict[str, int]:
    """The call counts known for ``taps``' modules on ``model`` (only while the name still holds the same module)."""
    try:
        known = _CALLS.get(model, {})
    except TypeError:  # a model that cannot be weakly referenced: nothing remembered
        return {}
    return {name: calls for name, (module, calls) in known.items() if name in taps and module() is taps[name].module}


def _remember(model: nn.Module, taps: Mapping[str, _Taps], counts: Mapping[str, int]) -> None:
    try:
        known = _CALLS.setdefault(model, {})
    except TypeError:
        return
    for name, calls in counts.items():
        known[name] = (weakref.ref(taps[name].module), calls)


_Pass = tuple[Hashable, ...]
_CAPTURE_REWRITES = Rewrites()
"""What :func:`capture` learned: per model and kind of pass (:func:`_pass_key`), which outputs were rewritten."""


def _pass_key(resolved: Sequence[str], stop: bool, inputs: torch.Tensor) -> _Pass:
    """What decides which outputs a forward pass rewrites: the layers asked for and where it stops, the modes
    (grad, autocast; capture always runs the model in eval mode, where ``Dropout(inplace=True)`` rewrites
    nothing), the input's device, dtype and grad."""
    return (tuple(resolved), stop, torch.is_grad_enabled(),
            torch.is_autocast_enabled(inputs.device.type), inputs.device.type, inputs.dtype, inputs.requires_grad)


def _runs_once(model: nn.Module, name: str) -> bool:
    """True when module ``name`` provably runs once per call of ``model``: every container above it is a plain
    ``nn.Sequential`` (which calls each child once) and none of them, nor the module, is registered twice."""
    parts = name.split(".")
    chain = [model]
    for part in parts:
        child = dict(chain[-1].named_children()).get(part)
        if child is None:
            return False
        chain.append(child)
    if any(type(container) is not nn.Sequential for container in chain[:-1]):
        return False
    uses = Counter(id(module) for _, module in model.named_modules(remove_duplicate=False))
    return all(uses[id(module)] == 1 for module in chain)


def capture(
    model: nn.Module,
    inputs: torch.Tensor,
    layers: str | Iterable[str],
    *,
    stop_early: bool = True,
) -> dict[str, torch.Tensor]:
    """Run ``model(inputs)`` and return the named layers' outputs, graph kept.

    This is the primitive the render loops use: activations stay attached to
    the graph so that objectives can be differentiated w.r.t. the input. Each
    value is the module's output at the moment it ran, also when a later
    in-place operation rewrites that tensor (the hook takes a differentiable
    copy; see the module docstring).

    Args:
        model: the network (not changed: it runs in eval mode, as every cnn-probe function runs a model, so
            a model left in training mode keeps its batch-norm statistics and draws no dropout; its own
            flags are restored after).
        inputs: the model's input batch, e.g. ``(N, C, H, W)``.
        layers: layer names as for :func:`record`; a module that runs several
            times per forward pass must be named per call, ``"NAME#K"``.
        stop_early: end the forward pass as soon as every requested layer has
            run, skipping the rest of the network (default True). Ignored when
            ``"output"`` is requested.

    Returns:
        ``{name: activation}``; layers that never ran are absent. A channels-last layer (ViT's ``(N, L, C)``
        tokens, Swin's ``(N, H, W, C)``; the rule is :mod:`probe.layout`'s) comes channels first,
        ``(N, C, L)`` / ``(N, C, H, W)``, so that channel ``k`` is the same for every objective.

    Raises:
        ProbeUsageError: an unknown name, or the plain name of a module that runs
            several times per forward pass (the message lists ``NAME#0``, ...).
    """
    resolved = _resolve(model, layers)
    taps = _taps(resolved)
    needed = set(resolved) - {INPUT, OUTPUT}
    counts = _remembered(model, taps)
    once = {name: 1 for name, tap in taps.items() if tap.every and name not in counts and _runs_once(model, name)}
    _remember(model, taps, once)
    counts.update(once)
    for name, tap in taps.items():
        if tap.every and counts.get(name, 0) > 1:
            raise _repeated(name, counts[name])
    wanted = stop_early and OUTPUT not in resolved and bool(needed)
    # Stopping early would hide a second call: the first capture of a plain name runs the whole pass and counts.
    learning = wanted and any(tap.every and name not in counts for name, tap in taps.items())
    stop = wanted and not learning
    outputs: dict[str, torch.Tensor] = {}
    copies = _Copies()
    seen: Counter[str] = Counter()
    channels_last = channels_last_layers(model, inputs) & set(taps)
    pass_key = _pass_key(resolved, stop, inputs)
    modules = {name: tap.module for name, tap in taps.items()}
    # no graph to keep: outputs stay uncopied until a write (record's way); else learned, as the module docstring says
    graph = torch.is_grad_enabled() and not torch.is_inference_mode_enabled()  # inference tensors keep none
    held = None if graph else _Held(outputs)
    known = None if held is not None else _CAPTURE_REWRITES.get(model, pass_key, modules)  # copy only the others
    untouched = None if known is None else frozenset(label for label, rewritten in known.items() if not rewritten)
    watch = WriteWatch() if untouched is None and held is None else None  # a learning pass: which copies were needed
    copied: list[Hashable] = []
    trusted: list[tuple[torch.Tensor, int | None]] = []  # outputs kept uncopied, with their version then

    def on_module(name: str, value: Any) -> None:
        call = seen[name]
        seen[name] += 1
        tap = taps[name]
        keys = [name] if tap.every and call == 0 else []
        if call in tap.calls:
            keys.append(f"{name}{CALL_SEPARATOR}{call}")
        tensor = first_tensor(value)
        if tensor is None or not keys:
            return
        last = stop and needed.issubset({*outputs, *keys})
        if held is not None and not last:
            for key in keys:
                if not held.hold(key, tensor):
                    outputs[key] = tensor.clone()
            return
        if last:  # nothing runs after the last one to rewrite it
            kept = tensor
        elif untouched is not None and (name, call) in untouched:  # nothing rewrote it in such a pass
            kept = tensor
            trusted.append((tensor, _version(tensor)))
        else:
            kept = copies.copy(tensor, (name, call))
            copied.append((name, call))
            if watch is not None:
                watch.track(tensor, (name, call))
        for key in keys:
            outputs[key] = kept
        if last:
            raise _StopForward

    handles = [tap.module.register_forward_hook(lambda m, args, out, n=name: on_module(n, out)) for name, tap in taps.items()]
    given = copies.copy(inputs) if INPUT in resolved else None
    result = None
    counted = ended = False
    try:
        with evaluating(model), model_input(inputs, passes=(_StopForward,)), \
                (held.watch if held is not None else watch) or contextlib.nullcontext():
            result = model(inputs)
        counted = ended = True
    except _StopForward:
        ended = True
    except Exception:
        if not (learning and needed.issubset(outputs)):
            raise
        counted = True  # the network failed after every layer asked for (a head too small for this input)
    finally:
        for handle in handles:
            handle.remove()
    every = {name: tap for name, tap in taps.items() if tap.every}
    if counted:
        _remember(model, every, {name: seen[name] for name in every})
    for name in every:
        if seen[name] > 1:
            raise _repeated(name, seen[name])
    if held is not None:  # the caller may write into what it gave or got back, or into the weights, later
        held.copy_sharing(storages(inputs) | storages(result) | _state_storages(_modules_of(model)))
    if given is not None:
        outputs[INPUT] = given
    written = watch.written if watch is not None else set(copied)  # after learning: copied as rewritten
    rewritten = copies.restore(outputs, keep=written)  # a write past the version counter (.data) keeps its copy
    if any(_version(tensor) != version for tensor, version in trusted):  # this pass rewrote one after all
        _CAPTURE_REWRITES.forget(model, pass_key)
        return capture(model, inputs, layers, stop_early=stop_early)  # again, copying everything (and relearning)
    if ended and watch is not None:
        _CAPTURE_REWRITES.learn(model, pass_key, modules,
                                {label: rewritten.get(label, False) or label in written for label in copied})
    for key, value in outputs.items():
        if key.split(CALL_SEPARATOR)[0] in channels_last and value.dim() > 2:
            outputs[key] = value.movedim(-1, 1)  # channels-last blocks read as (N, C, ...), see probe.layout
    if OUTPUT in resolved and result is not None:
        tensor = output_of(result)
        if tensor is not None:
            outputs[OUTPUT] = tensor
    return outputs


@dataclass(frozen=True)
class LayerInfo:
    """One row of :func:`layers`.

    Attributes:
        name: dotted ``named_modules()`` name.
        type: the module's class name (``"Conv2d"``).
        output_shape: output shape without the batch dimension, e.g.
            ``(50, 11, 11)``; None if the layer did not run in the dummy pass.
        channels: ``output_shape[0]`` (channels or features), ``output_shape[-1]`` for a channels-last
            layer (see :mod:`probe.layout`), or None.
        parameters: number of parameters owned directly by this module.
        calls: how many times the module runs in the dummy pass (0: not
            run); a module that runs several times is addressed per call as
            ``NAME#0``, ``NAME#1``, ... and ``output_shape`` is its first call's.
        batched: False for an output with no batch dimension (a table computed from the weights alone,
            like Swin's relative position bias): ``output_shape`` is then its whole shape, ``channels`` None.
    """

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    channels: int | None
    parameters: int
    calls: int = 1
    batched: bool = True


PROBE_SIZE = (224, 224)
"""The input size :func:`layers` scales its memory probe by for a bare module (a LoadedModel's own size else)."""


def _dummy_pass(model: nn.Module, names: list[str], shape: Sequence[int], device: torch.device,
                dtype: torch.dtype) -> tuple[Recording, torch.Tensor]:
    """Two zero images of ``shape`` through ``model`` in eval mode, ``names`` recorded: the recording, the images."""
    dummy = torch.zeros(2, *shape, device=device, dtype=dtype)  # two images: outputs without a batch show
    with evaluating(model), torch.no_grad(), record(model, names) as acts, model_input(dummy):
        eager_view(model)(dummy)  # a compiled model's dynamo would compile the pass (seconds), its hooks and all
    return acts, dummy


def layers(
    model: nn.Module | Any,
    input_shape: Sequence[int],
    *,
    leaves_only: bool = False,
) -> list[LayerInfo]:
    """List the layers of ``model`` with their output shapes (one dummy forward pass).

    Args:
        model: the network, or what :func:`probe.load_model` returns (not changed: it
            runs in eval mode under ``torch.no_grad`` and keeps no hook).
        input_shape: ``(C, H, W)`` of one input; a batch of two zero-images of
            this shape is run on the model's device and dtype.
        leaves_only: list only layers without sub-layers (default False: all);
            a weight-normed or QAT conv is one (:func:`probe.leaves.is_leaf`).

    Returns:
        One :class:`LayerInfo` per module, in ``named_modules()`` order,
        the root excluded (empty for a model without submodules).

    Raises:
        ProbeUsageError: (naming ``model``) its first layer takes no image (a generator's transposed convolution, a
            text CNN's embedding, a Conv3d; :func:`probe.models.takes.check_takes_images`, as :func:`probe.load_model`).
        ProbeRuntimeError: the pass cannot fit in the free memory, estimated before it runs from the same
            pass at a small size (:func:`~probe.memory.check_scaled`), for an image larger than four times
            the model's input area (224x224 for a bare module).
    """
    given = model if isinstance(model, (nn.Module, LoadedModel)) else getattr(model, "module", model)
    preprocess = getattr(model, "preprocess", None)  # a LoadedModel: its input size is the memory probe's scale
    model_size = tuple(getattr(preprocess, "input_size", None) or PROBE_SIZE)
    if not isinstance(model, nn.Module):  # a LoadedModel: its network (a DataParallel keeps its own .module)
        model = getattr(model, "module", model)
    if not isinstance(model, nn.Module):
        raise ProbeUsageError(f"model must be an nn.Module or a loaded model; got {type(model).__name__}",
                              param="model")
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise ProbeUsageError(f"input_shape must be (C, H, W), e.g. (3, 224, 224); got {input_shape!r}",
                              param="input_shape")
    input_shape = [check_count(side, "input_shape", 1, MAX_SIDE) for side in input_shape]
    check_lazy(model)  # the dummy pass would give them parameters
    check_exported(model)
    taking_images(given, tuple(input_shape[-2:]) if len(input_shape) >= 2 else (1, 1))  # refused as load_model does
    if isinstance(model, torch.jit.ScriptModule):  # no hooks: its conversion, named as it is
        from probe.models.sources.files import hookable

        model = hookable(model, f"your TorchScript module ({type(model).__name__})", input_shape[0],
                         (input_shape[-2], input_shape[-1]))
    named = [(name, module) for name, module in model.named_modules() if name]
    if leaves_only:
        helpers = helper_names(model)
        named = [(name, module) for name, module in named if name not in helpers and is_leaf(module)]
    if not named:  # a model written with functional calls only: nothing to hook
        return []
    try:
        reference = next(model.parameters())
        device, dtype = reference.device, reference.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    names = [name for name, _ in named]
    if len(input_shape) == 3:  # an image: refused before the pass when its outputs cannot fit
        check_scaled(lambda small: held_bytes(*_dummy_pass(model, names, (input_shape[0], *small), device, dtype)),
                     (input_shape[1], input_shape[2]), model_size, device,  # type: ignore[arg-type]
                     f"a {input_shape[1]}x{input_shape[2]} pass that lists every layer's output",
                     "give a smaller --size (input_shape=)")
    acts, dummy = _dummy_pass(model, names, input_shape, device, dtype)
    last = channels_last_layers(model, dummy)
    rows = []
    for name, module in named:
        first = acts.recorded_as(name)[0]
        value = acts.get(first)
        batched = value is None or (value.dim() > 0 and value.shape[0] == len(dummy))
        shape = None if value is None else tuple(value.shape[1:]) if batched else tuple(value.shape)
        channels = (shape[-1] if name in last else shape[0]) if shape and batched else None
        rows.append(
            LayerInfo(
                name=name,
                type=type(module).__name__,
                output_shape=shape,
                channels=channels,
                parameters=sum(p.numel() for p in module.parameters(recurse=False)),
                calls=acts.calls.get(name, 0),
                batched=batched,
            )
        )
    return rows
