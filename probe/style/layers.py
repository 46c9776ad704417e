"""Which layers style transfer reads: Gatys's defaults, fallbacks for smaller VGG-like models, checks.

Names are paper-style (``relu4_2``, ``conv4_2``: see :mod:`probe.vgg_names`)
or plain dotted module names, for any model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from probe.checks import check_names
from probe.errors import ProbeUsageError
from probe.vgg_names import PAPER_NAME, module_names, resolve_name, vgg_aliases

__all__ = ["DEFAULT_CONTENT_LAYERS", "DEFAULT_STYLE_LAYERS", "LayerPlan", "plan_layers"]

DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
"""Gatys et al.'s content layer."""
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
"""Gatys et al.'s style layers: the first ReLU of each of VGG's five blocks."""


@dataclass(frozen=True)
class LayerPlan:
    """Which layers style transfer reads, by the name the user knows and the module name.

    Attributes:
        content: ``{name: module name}`` of the content layers, e.g. ``{"relu4_2": "features.22"}``.
        style: ``{name: module name}`` of the style layers, in network order as given.
        note: which defaults replaced Gatys's layers missing from the model,
            e.g. ``"chose content layers relu3_2 (the model lacks relu4_2)"``;
            ``""`` when none did.
    """

    content: dict[str, str]
    style: dict[str, str]
    note: str = ""

    @property
    def modules(self) -> list[str]:
        """Every module name to capture, without duplicates."""
        return list(dict.fromkeys([*self.content.values(), *self.style.values()]))


def _paper_names(names: Iterable[str]) -> dict[tuple[str, int, int], str]:
    """``{(kind, block, position): name}`` for names like ``relu3_2`` (``pool`` names skipped)."""
    parsed = {}
    for name in names:
        match = PAPER_NAME.match(name)
        if match and match.group(1):
            parsed[(match.group(1), int(match.group(2)), int(match.group(3)))] = name
    return parsed


def _default_layers(available: Iterable[str]) -> tuple[list[str], list[str]]:
    """Choose content and style layers from the paper-style names a model has.

    Gatys's layers when they all exist; otherwise style reads the first ReLU of
    each block (up to five) and content the second ReLU of the deepest block
    up to 4 that has one (``relu4_2``, else ``relu3_2``, ...), else the deepest
    first ReLU.
    """
    available = list(available)
    if all(name in available for name in DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS):
        return list(DEFAULT_CONTENT_LAYERS), list(DEFAULT_STYLE_LAYERS)
    relus = {key[1:]: name for key, name in _paper_names(available).items() if key[0] == "relu"}
    style = [relus[(block, 1)] for block in range(1, 6) if (block, 1) in relus]
    seconds = [relus[(block, 2)] for block in range(4, 0, -1) if (block, 2) in relus]
    if not style:
        raise ProbeUsageError(
            "this model has no layers named like VGG's (relu1_1, relu2_1, ...), so there are no default "
            "style-transfer layers; name them with --content-layer and --style-layer "
            "(content_layers=/style_layers=), see `probe layers MODEL`",
            param="style_layer",
        )
    return seconds[:1] or style[-1:], style


def plan_layers(
    model: nn.Module,
    content_layers: str | Sequence[str] | None = None,
    style_layers: str | Sequence[str] | None = None,
) -> LayerPlan:
    """Resolve the content and style layers of ``model`` (see the module docstring for names).

    Args:
        model: the network.
        content_layers: names (paper-style or dotted); default None chooses
            ``relu4_2``, or a deep ReLU of the model when it has no ``relu4_2``.
        style_layers: names; default None chooses ``relu1_1 ... relu5_1``, or
            the first ReLU of each block the model has.

    Returns:
        A :class:`LayerPlan`; its ``note`` says which defaults replaced missing ones.

    Raises:
        ProbeUsageError: an explicitly requested name does not exist (with
            suggestions), an empty list, or no defaults can be chosen.
    """
    aliases = vgg_aliases(model)
    modules = module_names(model)
    available = list(aliases) + [name for name in modules if name not in aliases]
    notes = []
    if content_layers is None or style_layers is None:
        default_content, default_style = _default_layers(available)
        for kind, given, default, usual in (
            ("content", content_layers, default_content, DEFAULT_CONTENT_LAYERS),
            ("style", style_layers, default_style, DEFAULT_STYLE_LAYERS),
        ):
            if given is None and tuple(default) != usual:
                notes.append(f"{kind} layers {', '.join(default)} (the model lacks {', '.join(n for n in usual if n not in available)})")
        content_layers = default_content if content_layers is None else content_layers
        style_layers = default_style if style_layers is None else style_layers
    plan = {}
    for kind, names in (("content", content_layers), ("style", style_layers)):
        names = check_names(names, f"{kind}_layer", example="'relu2_1'")
        if not names:
            raise ProbeUsageError(f"no {kind} layer given; name at least one", param=f"{kind}_layer")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ProbeUsageError(f"{kind} layer {repeated[0]!r} is named twice", param=f"{kind}_layer")
        plan[kind] = {name: resolve_name(name, modules, aliases, param=f"{kind}_layer") for name in names}
    note = "chose " + "; ".join(notes) if notes else ""
    return LayerPlan(content=plan["content"], style=plan["style"], note=note)
