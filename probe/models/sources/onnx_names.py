"""Give a converted TorchScript model its original module names where the ONNX graph proves them.

torch's ONNX exporter names each node after the module scopes it ran in,
``/layer1/layer1.0/conv1/Conv``; onnx2torch turns those into flat module names
(``layer1/0/conv1/Conv``). A node is renamed to the module itself
(``layer1.0.conv1``) only when that module is a leaf of the TorchScript model
and the node is the one operation its forward produced, in its only call, so that recording the
renamed module records exactly what the original module returned. Every other
node keeps its operation under its module's name (``layer1.0/Add``: the
residual sum inside ``layer1.0``'s forward), and a graph whose nodes are not all
named that way keeps onnx2torch's names.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from torch import fx, nn

__all__ = ["scope_of", "module_names", "placeholders", "renamed"]

PLACEHOLDER = "probe_node_{}"
_AGAIN = re.compile(r"(.+)_\d+")  # the exporter's scope for a module's second, third... call: relu_1, relu_2


def scope_of(node_name: str) -> tuple[str, str] | None:
    """``"/layer1/layer1.0/conv1/Conv"`` -> ``("layer1.0.conv1", "Conv")``; None unless the exporter's scoped form.

    The exporter writes each scope relative to its parent, but a child whose
    own name is a number in full (``layer1.0``), so a part that extends the
    scope so far replaces it.
    """
    if not node_name.startswith("/"):
        return None
    *parts, operation = node_name[1:].split("/")
    scope = ""
    for part in parts:
        if not part:
            return None
        scope = part if not scope or part.startswith(scope + ".") else f"{scope}.{part}"
    return (scope, operation) if operation else None


def _kind(operation: str) -> str:
    """``"Relu_1"`` -> ``"Relu"``: the operation without the exporter's counter."""
    match = _AGAIN.fullmatch(operation)
    return match.group(1) if match else operation


def module_names(node_names: list[str], leaves: set[str]) -> list[str] | None:
    """A name for each node (in order): the leaf module it alone computed, else ``scope/Operation``; None if unsure.

    Args:
        node_names: the ONNX graph's node names, in graph order.
        leaves: dotted names of the original model's modules without children.
    """
    scopes = [scope_of(name) for name in node_names]
    if not scopes or any(scope is None for scope in scopes):
        return None
    direct = Counter(scope for scope, _ in scopes)  # type: ignore[misc]
    again = {match.group(1) for scope in direct if scope not in leaves and (match := _AGAIN.fullmatch(scope))}
    inline = {(scope, _kind(op)) for scope, op in scopes}  # type: ignore[misc]  # operations right in a scope

    def exact(scope: str, op: str) -> bool:  # a trace puts a module's second call in its parent's scope
        parent = scope.rpartition(".")[0]
        return scope in leaves and direct[scope] == 1 and scope not in again and (parent, _kind(op)) not in inline

    names = [scope if exact(scope, op) else (f"{scope}/{op}" if scope else op) for scope, op in scopes]  # type: ignore[misc]
    return names if len(set(names)) == len(names) else None


def placeholders(model: Any) -> list[str]:
    """Rename the nodes of ONNX ``model`` in place to ``probe_node_<i>`` (names onnx2torch keeps); the old names."""
    old = [node.name for node in model.graph.node]
    for index, node in enumerate(model.graph.node):
        node.name = PLACEHOLDER.format(index)
    return old


def _install(root: nn.Module, target: str, module: nn.Module) -> None:
    *path, last = target.split(".")
    for part in path:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.add_module(last, module)


def renamed(converted: fx.GraphModule, names: list[str]) -> fx.GraphModule:
    """``converted`` (its modules named ``probe_node_<i>``) with node ``i``'s module named ``names[i]``."""
    root = nn.Module()
    for name, child in converted.named_children():
        if not name.startswith(PLACEHOLDER.format("")):
            root.add_module(name, child)  # onnx2torch's initializers
    for node in converted.graph.nodes:
        if node.op == "call_module" and node.target.startswith(PLACEHOLDER.format("")):
            new = names[int(node.target[len(PLACEHOLDER.format("")):])]
            _install(root, new, converted.get_submodule(node.target))
            node.target = new
    return fx.GraphModule(root, converted.graph)
