"""LRP's forward, rewritten with torch.fx so that every operation between two layers conserves relevance.

captum's LRP puts two tensor hooks on each layer it has a rule for: the layer's output divides the
incoming gradient by the output (``R / z``) and each input multiplies it by the input (``a * grad``). Between
the input hook of one layer and the output hook of the layer before it, what autograd carries is relevance,
and every operation on that stretch acts on relevance through its plain gradient. That is conservative for a
reshape, a concatenation, a slice or the mask of a ReLU, and wrong for the rest:

- an addition of two activations (ResNet's ``out += identity``, ``x + self.block(x)``, ``torch.add``) hands
  the whole relevance to each summand, doubling it at every residual connection;
- a product with a gate (squeeze-and-excitation's ``x * sigmoid(...)``) scales the signal's relevance by the
  gate and sends more down the gate's branch;
- a non-ReLU activation (ReLU6's zero slope above 6, SiLU's slopes above 1) and a scaling by a constant
  multiply relevance by their slope;
- a tensor that feeds a layer directly and, through such operations, another layer (timm's DLA: a child
  concatenated into ``root.conv`` and added to its output) has its input hook multiply the relevance that
  came through the operations by the activation a second time.

:func:`lrp_graph` traces the weight-sharing copy (:mod:`probe.attribution.unshared`) and gives each of them
a rule: an addition of two activations becomes captum's ``Addition_Module`` (epsilon rule: each summand
gets relevance in proportion to its value), a product with a sigmoid gate a :class:`Gate` (the gate held
constant, all relevance to the signal), an activation a :class:`Pass` (relevance passes unchanged, as
captum does for ``nn.ReLU``), a functional pool its module, and each input of a layer gets its own alias so
its hook sees that layer's gradient only. Any other operation on activations (``matmul``, ``softmax``,
``exp``, a subtraction of two activations) is refused in one line. Parameters and buffers stay the user's;
only module objects are new.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from probe.errors import ProbeUsageError
from probe.leaves import is_leaf

__all__ = ["Gate", "Pass", "Affine", "lrp_graph", "ACTIVATION_MODULES"]


class Gate(nn.Module):
    """``signal * gate`` with ``gate`` held constant in the backward pass.

    LRP's rule for a multiplicative gate (squeeze-and-excitation, Arras et al. 2017): a product with a constant
    is linear in the signal, so the epsilon rule sends all of the product's relevance to the signal and none
    to the gate's branch. Broadcasts as ``*`` does: ``(N, C, H, W) * (N, C, 1, 1) -> (N, C, H, W)``.
    """

    def forward(self, signal: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return signal * gate.detach()


class _Straight(torch.autograd.Function):
    """``function(x)`` forward, the identity's gradient backward (``x`` and the result have one shape)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return function(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class Pass(nn.Module):
    """An elementwise operation whose relevance passes unchanged: ``function(x, *args, **options)`` forward,
    the identity backward (captum's rule for ``nn.ReLU``, zennit's ``Pass``): an activation, or a scaling by a
    constant (a product with a constant is linear, and the epsilon rule passes its relevance whole).

    Args:
        function: the operation (a function, or an activation module, kept unregistered so LRP sees no layer).
        options: its keyword arguments (default none).
    """

    def __init__(self, function: Callable[..., torch.Tensor], options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.__dict__["function"] = function
        self.options = dict(options or {})

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        return _Straight.apply(x, lambda t: self.function(t, *args, **self.options))


class Affine(nn.Module):
    """An affine map of one activation, ``function(x, *args, **options)`` with constant ``args``: a mean or a sum
    (``x.mean((2, 3))``), a functional batch norm in eval mode (timm's ``BatchNormAct2d``). :func:`lrp_graph`
    gives it captum's epsilon rule, as captum does a pool or ``nn.BatchNorm2d``: each input its share of the
    output's relevance in proportion to its contribution (a mean's plain gradient spreads relevance evenly, also
    onto units a ReLU zeroed; a sum's copies it whole to every input).

    Args:
        function: the map.
        args: its arguments after the tensor: dimensions, or the batch norm's statistics and parameters (the
            model's own tensors, not copies), kept off the call so captum's hooks see one input.
        options: its keyword arguments (default none).
    """

    def __init__(self, function: Callable[..., torch.Tensor], args: tuple[Any, ...] = (),
                 options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.__dict__["function"] = function
        self.__dict__["extra"] = args
        self.options = dict(options or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x, *self.extra, **self.options)


ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Softplus, nn.Sigmoid, nn.Hardsigmoid, nn.PReLU, nn.LogSigmoid)
"""Elementwise activation modules captum has no rule for; on the copy each becomes a :class:`Pass`."""

_ACTIVATION_NAMES = frozenset({
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu",
    "celu", "gelu", "silu", "mish", "hardswish", "softplus", "sigmoid", "sigmoid_", "hardsigmoid", "tanh",
    "tanh_", "logsigmoid"})
"""Elementwise activations called as functions or methods (``F.relu``, ``torch.sigmoid``, ``x.relu_()``)."""

_GATE_NAMES = frozenset({"sigmoid", "sigmoid_", "hardsigmoid"})
_GATE_MODULES = (nn.Sigmoid, nn.Hardsigmoid)

_LAYOUT_NAMES = frozenset({
    "flatten", "view", "view_as", "reshape", "permute", "transpose", "t", "contiguous", "squeeze", "unsqueeze",
    "expand", "expand_as", "cat", "concat", "concatenate", "stack", "chunk", "split", "getitem", "narrow",
    "clone", "to", "float", "double", "half", "type_as", "repeat", "pad", "stochastic_depth", "flip", "roll"})
"""Operations whose plain gradient conserves relevance: rearrangements, concatenations, slices, zero padding,
torchvision's ``stochastic_depth`` (the identity in eval mode)."""

_DROPOUT_NAMES = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"})
_AFFINE_NAMES = frozenset({"mean", "sum", "adaptive_avg_pool1d", "avg_pool1d", "batch_norm"})
_ADD_NAMES = frozenset({"add", "add_", "iadd", "__add__", "__iadd__", "__radd__"})
_MUL_NAMES = frozenset({"mul", "mul_", "imul", "__mul__", "__rmul__", "truediv", "div", "div_", "__truediv__",
                        "itruediv"})
_DIV_NAMES = frozenset({"truediv", "div", "div_", "__truediv__", "itruediv"})
_SHIFT_NAMES = frozenset({"sub", "sub_", "isub", "__sub__"})

_POOLS: dict[Callable[..., Any], type[nn.Module]] = {
    F.adaptive_avg_pool2d: nn.AdaptiveAvgPool2d, F.avg_pool2d: nn.AvgPool2d, F.max_pool2d: nn.MaxPool2d}
"""Functional pools captum has a rule for as modules: on the copy each call becomes its module."""


class _Tracer(fx.Tracer):
    """fx's tracer with cnn-probe's leaves (:func:`probe.leaves.is_leaf`) as its leaf modules: a user's
    ``class MyConv(nn.Conv2d)`` or timm's ``Conv2dSame`` stays one module, which LRP gives its base's rule."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf(m)

    def path_of_module(self, mod: nn.Module) -> str:
        """The wrapped model of a wrapper that shares its submodules without holding it as a child (cnn-probe's
        transformers wrapper) is the root itself: fx then follows its forward and says why it cannot, where
        it said "module is not installed as a submodule"."""
        if getattr(self, "root", None) is not None and self.root.__dict__.get("wrapped") is mod:
            return ""
        return super().path_of_module(mod)


def _name(node: fx.Node) -> str:
    """The operation's name: ``add``, ``sigmoid``, ``Conv2d``."""
    target = node.target
    if node.op == "call_method":
        return str(target)
    return str(getattr(target, "__name__", target))


def _where(node: fx.Node) -> str:
    """The dotted name of the module whose forward runs ``node``, for messages."""
    stack = node.meta.get("nn_module_stack") or {}
    names = [value[0] for value in stack.values() if isinstance(value, tuple) and value and value[0]]
    name = names[-1] if names else ""
    return name or "the model's forward"


def _trace(net: nn.Module) -> fx.GraphModule:
    try:
        graph = _Tracer().trace(net)
    except Exception as error:  # noqa: BLE001 (fx raises many types on code it cannot follow)
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ProbeUsageError(
            "LRP follows the model's forward with torch.fx to give each residual addition its rule, and fx cannot "
            f"trace this model ({type(error).__name__}: {first[:160]}); use another --method (deeplift is the "
            "closest)", param="method") from None
    return fx.GraphModule(net, graph)


def _is_tensor(node: Any) -> bool:
    return isinstance(node, fx.Node) and "tensor_meta" in node.meta


def _dependent(graph: fx.Graph) -> set[fx.Node]:
    """The tensor-valued nodes whose value depends on the input (the activations)."""
    found: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            found.add(node)
        elif node.op != "get_attr" and any(arg in found for arg in node.all_input_nodes):
            found.add(node)
    return {node for node in found if _is_tensor(node)}


def _activations(node: fx.Node, dependent: set[fx.Node]) -> list[fx.Node]:
    return [arg for arg in node.args[:2] if isinstance(arg, fx.Node) and arg in dependent]


def _computes_gate(module: nn.Module) -> bool:
    """Whether ``module`` is a sigmoid or hard sigmoid: torch's, or a parameter-free leaf of another library that
    computes one (timm's own ``Sigmoid`` and ``HardSigmoid`` in its squeeze-excitation gates), told by its values
    on 17 points of [-4, 4]."""
    if type(module) in _GATE_MODULES:
        return True
    if next(module.parameters(), None) is not None or next(module.children(), None) is not None:
        return False
    points = torch.linspace(-4, 4, 17)
    try:
        with torch.no_grad():
            values = module(points.clone())
    except Exception:  # noqa: BLE001 (a module that takes no plain tensor is no gate)
        return False
    return isinstance(values, torch.Tensor) and values.shape == points.shape and any(
        torch.allclose(values, gate(points), atol=1e-6) for gate in (torch.sigmoid, F.hardsigmoid))


def _gate_source(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node`` is a gate: a sigmoid or hard sigmoid's output, maybe reshaped or expanded."""
    while True:
        if node.op == "call_module" and _computes_gate(modules[str(node.target)]):
            return True
        if node.op in ("call_function", "call_method") and _name(node) in _GATE_NAMES:
            return True
        if node.op in ("call_function", "call_method") and _name(node) in _LAYOUT_NAMES and node.args \
                and isinstance(node.args[0], fx.Node):
            node = node.args[0]
            continue
        return False


def _inplace_index(node: fx.Node) -> int | None:
    """The position of a functional activation's ``inplace`` argument (``F.relu(x, True)``: 1), if it has one."""
    if node.op != "call_function":
        return None
    try:
        parameters = list(inspect.signature(node.target).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a builtin (torch.relu): no inplace argument
        return None
    return parameters.index("inplace") if "inplace" in parameters else None


def _in_place(node: fx.Node) -> bool:
    """``x.add_(y)``, ``x.relu_()``, ``operator.iadd``, ``F.relu(x, inplace=True)``: the operation changes its
    first argument."""
    name = _name(node)
    index = _inplace_index(node)
    return (name.endswith("_") and not name.endswith("__")) or name in ("iadd", "imul", "isub", "itruediv") \
        or (name.startswith("__i") and name.endswith("__")) or node.kwargs.get("inplace") is True \
        or (index is not None and len(node.args) > index and node.args[index] is True)


def _functionalize(gm: fx.GraphModule, dependent: set[fx.Node]) -> None:
    """Each in-place operation on an activation becomes its out-of-place form, and the later users of the tensor
    it changed take its result: the graph's edges then carry every value (``y.add_(x); f(y)`` -> ``f(y + x)``)."""
    nodes = list(gm.graph.nodes)
    order = {node: i for i, node in enumerate(nodes)}
    for node in nodes:
        changed = node.args[0] if node.args else None
        if node not in dependent or node.op not in ("call_function", "call_method") or not _in_place(node) \
                or not isinstance(changed, fx.Node):
            continue
        rest, options = _rest(node)
        with gm.graph.inserting_after(node):
            new = gm.graph.call_function(_out_of_place(node), (changed, *rest), options)
        new.meta = dict(node.meta)
        order[new] = order[node]
        node.replace_all_uses_with(new)
        for user in list(changed.users):
            if user is not new and order.get(user, -1) > order[node]:
                user.replace_input_with(changed, new)
        gm.graph.erase_node(node)
        dependent.discard(node)
        dependent.add(new)


def _replace(graph: fx.GraphModule, node: fx.Node, module: nn.Module, args: tuple[Any, ...]) -> fx.Node:
    """Put a call of ``module`` (registered on ``graph`` under a fresh name) in place of ``node``."""
    name = f"lrp_{node.name}"
    graph.add_submodule(name, module)
    with graph.graph.inserting_after(node):
        new = graph.graph.call_module(name, args)
    new.meta = dict(node.meta)
    node.replace_all_uses_with(new)
    graph.graph.erase_node(node)
    return new


_POOL_PARAMETERS: dict[str, tuple[str, ...]] = {
    "adaptive_avg_pool2d": ("output_size",),
    "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")}
"""The functional pools' parameters after the input, in order (``F.avg_pool2d`` is a builtin: no signature)."""


def _pool_module(node: fx.Node) -> nn.Module | None:
    """The module of a functional pool call, with its arguments (``F.max_pool2d(x, 2, 2)`` -> ``MaxPool2d(2, 2)``),
    or None when the arguments do not fit it."""
    names = _POOL_PARAMETERS[_name(node)]
    options = {**dict(zip(names, node.args[1:])), **node.kwargs}
    if len(node.args) - 1 > len(names) or any(isinstance(value, fx.Node) for value in options.values()):
        return None
    try:
        return _POOLS[node.target](**options)  # type: ignore[index]
    except TypeError:
        return None


def _live(graph: fx.Graph, modules: dict[str, nn.Module]) -> set[fx.Node]:
    """The nodes relevance reaches from the output (a :class:`Gate`'s gate gets none)."""
    output = next(node for node in reversed(graph.nodes) if node.op == "output")
    live: set[fx.Node] = set()
    todo = [output]
    while todo:
        node = todo.pop()
        if node in live:
            continue
        live.add(node)
        inputs = node.all_input_nodes
        if node.op == "call_module" and isinstance(modules.get(str(node.target)), Gate):
            inputs = [node.args[0]] if isinstance(node.args[0], fx.Node) else []
        todo.extend(inputs)
    return live


def _out_of_place(node: fx.Node) -> Callable[..., Any]:
    """The function ``node`` computes, out of place (``x.relu_()`` -> ``Tensor.relu``, ``iadd`` -> ``add``)."""
    name = _name(node)
    if node.op == "call_method":
        return getattr(torch.Tensor, name[:-1] if name.endswith("_") and not name.endswith("__") else name)
    if node.target in vars(operator).values() and name.startswith("i") and hasattr(operator, name[1:]):
        return getattr(operator, name[1:])
    if name.endswith("_"):
        base = name[:-1]
        return getattr(torch, base, None) or getattr(F, base)
    return node.target  # type: ignore[return-value]


def _rest(node: fx.Node) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments after the tensor and the keyword arguments, without ``inplace`` (the copy runs out of place)."""
    index = _inplace_index(node)
    args = node.args if index is None else node.args[:index] + node.args[index + 1:]
    return tuple(args[1:]), {key: value for key, value in node.kwargs.items() if key != "inplace"}


def _scaling(node: fx.Node, acts: list[fx.Node]) -> bool:
    """A product with (or division by) a constant that keeps the activation's shape: ``x * 0.5``, ``x * gamma``."""
    return _name(node) in _MUL_NAMES and len(acts) == 1 and not node.kwargs and len(node.args) == 2 \
        and acts[0].meta["tensor_meta"].shape == node.meta["tensor_meta"].shape \
        and (node.args[0] is acts[0] or _name(node) not in _DIV_NAMES)


def _constant(value: Any, gm: fx.GraphModule) -> Any:
    """``value`` with each ``get_attr`` node made the model's tensor it names (a parameter or a buffer, shared)."""
    def resolve(node: fx.Node) -> Any:
        if node.op != "get_attr":
            raise LookupError(node.name)
        owner, _, field = str(node.target).rpartition(".")
        return getattr(gm.get_submodule(owner) if owner else gm, field)

    return fx.node.map_arg(value, resolve)


def _affine(node: fx.Node, gm: fx.GraphModule) -> tuple[nn.Module, tuple[Any, ...]] | bool:
    """:class:`Affine` for a mean, a sum, or an eval-mode functional batch norm of one activation, with its
    other arguments; False when one of them is computed in forward or the batch norm uses batch statistics."""
    try:
        args, options = _constant(tuple(node.args[1:]), gm), _constant(dict(node.kwargs), gm)
    except LookupError:
        return False
    if _name(node) == "batch_norm" and (options.get("training", args[4] if len(args) > 4 else False) is not False):
        return False
    return _ruled(Affine(_out_of_place(node), args, options)), (node.args[0],)


def _evaluating(node: fx.Node) -> bool:
    """Whether a functional dropout runs in eval mode (``F.dropout(x, p, training=False)``: the identity); its
    ``training`` defaults to True, where it zeroes and rescales at random."""
    try:
        bound = inspect.signature(node.target).bind(*node.args, **node.kwargs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return bound.arguments.get("training", True) is False


def _rule(node: fx.Node, acts: list[fx.Node], gm: fx.GraphModule) -> tuple[nn.Module, tuple[Any, ...]] | bool:
    """The module that gives ``node`` (an operation on activations ``acts``) its LRP rule, with its arguments;
    True when its plain gradient already conserves relevance, False when it has no rule."""
    name = _name(node)
    first = node.args[0] if node.args else None
    if isinstance(node.target, type) and issubclass(node.target, tuple):  # a namedtuple of outputs: a container
        return True
    if name in _ADD_NAMES and len(acts) == 2 and not node.kwargs:
        from captum.attr._utils.custom_modules import Addition_Module

        return Addition_Module(), (acts[0], acts[1])
    if name in _ACTIVATION_NAMES and acts and first is acts[0]:
        rest, options = _rest(node)
        return Pass(_out_of_place(node), options), (first, *rest)
    if node.target in _POOLS and acts and first is acts[0]:
        pool = _pool_module(node)
        return (pool, (first,)) if pool is not None else False
    if name in _AFFINE_NAMES and acts == [first]:
        return _affine(node, gm)
    if name in _DROPOUT_NAMES and acts == [first]:
        return node.op == "call_function" and _evaluating(node)
    if _scaling(node, acts):
        other = node.args[1] if node.args[0] is acts[0] else node.args[0]
        return Pass(_out_of_place(node)), (acts[0], other)
    shift = name in _ADD_NAMES or (name in _SHIFT_NAMES and first is acts[0])  # c - x would flip relevance's sign
    return name in _LAYOUT_NAMES or (shift and len(acts) == 1)


def _ruled(module: nn.Module) -> nn.Module:
    """``module`` with captum's epsilon rule set on it (captum gives its own types their rules by exact type)."""
    from captum.attr._utils.lrp_rules import EpsilonRule

    module.rule = EpsilonRule()
    return module


def _gates(gm: fx.GraphModule, dependent: set[fx.Node]) -> None:
    """Each product of an activation and a sigmoid gate becomes a :class:`Gate`, in place."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        acts = _activations(node, dependent) if node in dependent else []
        if node.op in ("call_function", "call_method") and _name(node) in _MUL_NAMES - _DIV_NAMES \
                and len(acts) == 2 and not node.kwargs:
            gates = [arg for arg in acts if _gate_source(arg, modules)]
            if len(gates) == 1:
                signal = acts[0] if gates[0] is acts[1] else acts[1]
                dependent.add(_replace(gm, node, _ruled(Gate()), (signal, gates[0])))


def _rewrite(gm: fx.GraphModule, dependent: set[fx.Node]) -> list[str]:
    """Give each operation on activations that relevance reaches its rule, in place; return those that have
    none, with where they run."""
    _functionalize(gm, dependent)
    _gates(gm, dependent)
    modules = dict(gm.named_modules())
    live = _live(gm.graph, modules)
    refused: dict[str, set[str]] = {}
    for node in list(gm.graph.nodes):
        if node not in dependent or node not in live:
            continue
        if node.op == "call_module" and type(modules[str(node.target)]) in ACTIVATION_MODULES:
            dependent.add(_replace(gm, node, Pass(modules[str(node.target)]), tuple(node.args)))
        elif node.op in ("call_function", "call_method"):
            rule = _rule(node, _activations(node, dependent), gm)
            if isinstance(rule, tuple):
                dependent.add(_replace(gm, node, *rule))
            elif not rule:
                refused.setdefault(_name(node), set()).add(_where(node))
    return [f"{name} (in {', '.join(sorted(where)[:3])})" for name, where in sorted(refused.items())]


def _alias_inputs(gm: fx.GraphModule, dependent: set[fx.Node]) -> None:
    """Give each layer's input its own alias (``x.view_as(x)``): captum hooks a layer's input tensor, and a tensor
    that also reaches another layer through other operations would have that relevance multiplied by it too."""
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or isinstance(gm.get_submodule(str(node.target)), Pass):
            continue
        for arg in dict.fromkeys(a for a in node.args if isinstance(a, fx.Node) and a in dependent):
            with gm.graph.inserting_before(node):
                alias = gm.graph.call_method("view_as", (arg, arg))
            node.replace_input_with(arg, alias)


def lrp_graph(net: nn.Module, inputs: torch.Tensor) -> tuple[fx.GraphModule, set[int]]:
    """``net`` traced by torch.fx, every operation on its activations given an LRP rule.

    Args:
        net: the model's weight-sharing copy (never the user's module: its modules are reused in the graph).
        inputs: ``(N, C, H, W)`` the input it runs on (one pass, no gradient, records the shapes).

    Returns:
        A GraphModule computing ``net``'s function on the same parameters and buffers, with captum's
        ``Addition_Module`` for each addition of two activations, :class:`Gate` for each product with a sigmoid
        gate, :class:`Pass` for each activation captum has no rule for, pool modules for functional pools; and
        the ``id`` of its modules relevance never reaches (a gate's branch), which need no rule.

    Raises:
        ProbeUsageError: fx cannot trace ``net``, or its forward applies an operation to activations that has
            no LRP rule (naming ``method``).
    """
    gm = _trace(net)
    with torch.no_grad():
        ShapeProp(gm).propagate(inputs)
    dependent = _dependent(gm.graph)
    refused = _rewrite(gm, dependent)
    if refused:
        raise ProbeUsageError(
            f"captum's LRP has no rule for {'; '.join(refused)} on this model's activations, and its plain "
            "gradient does not conserve relevance; use another --method (deeplift is the closest)", param="method")
    modules = dict(gm.named_modules())
    live = _live(gm.graph, modules)
    unreached = {id(modules[str(node.target)]) for node in gm.graph.nodes
                 if node.op == "call_module" and node not in live}
    _alias_inputs(gm, dependent)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()  # an activation inside a Pass is no layer of the graph
    return gm, unreached
