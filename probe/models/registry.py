"""Model sources: each says whether it claims a spec, and builds the module with its preprocessing and weights.

A source is a :class:`ModelSource` in :data:`SOURCES`, asked in order; the
first whose ``claims(spec)`` is true builds the model. Adding a source is one
module under ``probe/models/sources/`` and one :func:`register_source` call.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from probe.errors import ProbeUsageError
from probe.models.types import Preprocess

__all__ = ["ModelSource", "Request", "Built", "SOURCES", "register_source", "find_source", "split_call", "parse_model_args"]


@dataclass(frozen=True)
class Request:
    """What the caller asked a source for.

    Attributes:
        weights: ``"default"``, None (random), or a state_dict path (already
            resolved: never ``"offline"``).
        seed: seeds the random initialization (the source builds inside
            :func:`~probe.models.weights.seeded`); None leaves it unseeded.
        args: positional arguments for the builder, from ``spec(1, 2)``.
        kwargs: keyword arguments, from ``spec(k=v)`` and ``model_args``.
        input_size: ``(H, W)`` the caller stated, for sources that need an
            example input (TorchScript conversion); None when not stated.
        channels: input channels the caller stated; None when not stated.
    """

    weights: Any
    seed: int | None = 0
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None
    channels: int | None = None

    def no_arguments(self, spec: str, why: str) -> None:
        """Raise one line when arguments were given to a source that takes none."""
        if self.args or self.kwargs:
            raise ProbeUsageError(f"{spec!r} takes no model arguments ({why})", param="model_arg")


@dataclass
class Built:
    """What a source built: the module (on the CPU, any mode) and what it knows about it."""

    module: nn.Module
    preprocess: Preprocess
    labels: tuple[str, ...] | None = None
    weights: str = "as built"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSource:
    """One place models come from.

    Attributes:
        name: recorded as :attr:`LoadedModel.source` (``"timm"``, ``"onnx"``, ...).
        claims: ``claims(spec)``: whether this source loads ``spec`` (cheap: no import of heavy packages).
        build: ``build(spec, request) -> Built``; raise :class:`ProbeUsageError` for bad specs.
        downloads: ``downloads(spec)``: whether its default weights come over the
            network (then ``weights="offline"`` means random weights).
        names: the names it knows, for "did you mean" suggestions (None: no list).
        form: the spec's form, in words, for help and errors.
    """

    name: str
    claims: Callable[[str], bool]
    build: Callable[[str, Request], Built]
    downloads: Callable[[str], bool] = lambda spec: False
    names: Callable[[], list[str]] | None = None
    form: str = ""


SOURCES: list[ModelSource] = []


def register_source(source: ModelSource, *, first: bool = False) -> ModelSource:
    """Add ``source`` to :data:`SOURCES` (last, or ``first``), replacing one of the same name."""
    SOURCES[:] = [s for s in SOURCES if s.name != source.name]
    SOURCES.insert(0 if first else len(SOURCES), source)
    return source


def find_source(spec: str) -> ModelSource | None:
    """The first source that claims ``spec``, or None."""
    return next((source for source in SOURCES if source.claims(spec)), None)


def _literal(node: ast.expr, spec: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ProbeUsageError(
            f"model arguments in {spec!r} must be Python literals (numbers, strings, True/False/None, tuples, "
            f"lists, dicts); got {ast.unparse(node)!r}",
            param="model",
        ) from None


def split_call(text: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """``"pkg.mod:build(10, width=2)"`` -> ``("pkg.mod:build", (10,), {"width": 2})``; literals only, never evaluated.

    Text that does not end in ``(...)`` comes back with no arguments.

    Raises:
        ProbeUsageError: arguments that are not Python literals, or ``*``/``**`` unpacking.
    """
    if not text.endswith(")") or "(" not in text:
        return text, (), {}
    head = text[: text.index("(")]
    try:
        call = ast.parse("f" + text[len(head):], mode="eval").body
    except SyntaxError:
        raise ProbeUsageError(f"cannot parse the arguments of {text!r}; write name(k=v, ...)", param="model") from None
    if not isinstance(call, ast.Call) or any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        raise ProbeUsageError(f"cannot parse the arguments of {text!r}; write name(k=v, ...)", param="model")
    args = tuple(_literal(a, text) for a in call.args)
    kwargs = {k.arg: _literal(k.value, text) for k in call.keywords if k.arg is not None}
    return head, args, kwargs


def parse_model_args(items: Mapping[str, Any] | list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """``["num_classes=10", "name=x"]`` (CLI ``--model-arg``) or a dict -> keyword arguments.

    Values are Python literals where they parse as one (``10``, ``True``,
    ``(3, 4)``), else strings.

    Raises:
        ProbeUsageError: (``param="model_arg"``) an item without ``=``.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ProbeUsageError(f"--model-arg takes KEY=VALUE; got {item!r}", param="model_arg")
        try:
            parsed[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed[key.strip()] = value.strip()
    return parsed
