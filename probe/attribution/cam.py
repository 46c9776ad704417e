"""Grad-CAM on any layer with spatial positions, and the layer it takes by default.

A layer has spatial positions when its output, batch first, is one of:

- a channels-first map ``(N, C, H, W)`` (a convolution network's layers);
- a channels-last map ``(N, H, W, C)`` (Swin's stages, ConvNeXt's block internals; see :mod:`probe.layout`)
  whose ``H x W`` has the input's aspect ratio (MaxViT's window partitions ``(N, P, L, C)`` do not);
- tokens ``(N, L, C)`` (ViT, DeiT, transformers' ViT) whose last ``L - E`` tokens form a grid of the input's
  aspect ratio, ``E`` (at most :data:`MAX_EXTRA_TOKENS`) leading tokens dropped: ViT's class token,
  DeiT's class and distillation tokens, register tokens (as pytorch-grad-cam's ``reshape_transform``).

Tokens of several patches or windows folded into dim 0 (TNT's pixel tokens ``(N * L, P, C)``) are not the
image's positions. Tokens that run after the model reordered its tokens (a module or functional code that
returns rows of an earlier token map in another order: Hiera's unroll into mask units) are used only where
blanking a cell of the image is measured to change that cell's token most: Hiera's last stage, back in
raster order, not its earlier ones. Each is viewed as ``(N, C, h, w)``; Grad-CAM weighs its channels by their
gradient's mean over the positions, sums, keeps the positive part and upsamples bilinearly to the input
(Selvaraju et al. 2017; the same numbers as captum's ``LayerGradCam`` on a channels-first layer).

The default layer (:func:`default_cam_layer`) is what the field picks by hand: the last layer, in the order layers
finish in one forward pass, whose output has more than one position and whose positions the explained score depends
on (a non-zero gradient at some position). That is ResNet's ``layer4.2``, VGG's last ReLU, Swin's final map, and
for ViT and DeiT the last block's first norm (``encoder_layer_11.ln_1``, ``blocks.11.norm1``): after the last
attention only the class token reaches the head, so later token maps get no gradient at their positions. A module
that runs several times in the pass (a shared or recurrent block) takes part by its calls, ``block#1``, where each
call is given what the one before returned (read from the autograd graph): then its last call runs last, as a layer
run once does; calls on several images (a test-time flip's image and mirror) are never taken by default, as a
call's map may be of the mirror. The internals of an attention module (its queries, keys and values) are passed
over: they are not feature maps, though the class token reads the keys and values of every position. An attention
module is an ``nn.MultiheadAttention``, a module whose class name ends in ``Attention``, or any module that
computes a softmax or ``scaled_dot_product_attention`` itself in the pass (not in a sub-module), whatever its name:
CaiT's and XCiT's ``ClassAttn``, XCiT's ``XCA``, LeViT's ``AttentionDownsample``, EfficientFormer's
``Attention4D``, transformers' ``LevitAttentionSubsample``. A score that does not change with the image at all
(torchvision's ViT with random weights has a zero head) gives no gradient anywhere; the layers are then judged by a
seeded random direction at the input of the last leaf with weights that runs (the head's input; the last leaf's in
a model without weights), which only the layers before the last attention reach. Pooling layers are passed over: an
adaptive pool is the head's pooling, and a max or average pool only coarsens the map before it (Selvaraju et al.
took the last convolutional layer: VGG's ``relu5_3`` at 14x14, not ``pool5`` at 7x7). For a dense output
``(N, K, H, W)`` (segmentation) the maps with one channel per class are the output itself and are passed over too,
so Grad-CAM explains the features the classifier reads.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from probe.errors import ProbeUsageError, not_per_image
from probe.forward import image_grad
from probe.hooks import CALL_SEPARATOR, first_tensor, record
from probe.layout import channels_last_layers
from probe.outputs import descends

__all__ = ["MAX_EXTRA_TOKENS", "MapLayout", "CamLayer", "map_layout", "token_grid", "survey_cam_layers",
           "default_cam_layer", "choose_cam_layer", "grad_cam"]

MAX_EXTRA_TOKENS = 8
"""The most leading non-grid tokens (class, distillation, registers) a token map may carry."""


def _fits(h: int, w: int, height: int, width: int) -> bool:
    """Whether an ``h x w`` grid has the aspect ratio of a ``height x width`` image, up to rounding."""
    return math.floor(h * width / height + 0.5) == w or math.floor(w * height / width + 0.5) == h


def token_grid(length: int, image: tuple[int, int]) -> tuple[int, int, int] | None:
    """``(extra, h, w)``: the fewest leading tokens to drop from ``length`` so that the rest form an ``h x w``
    grid of the ``image`` ``(H, W)``'s aspect ratio, or None.

    >>> token_grid(197, (224, 224)), token_grid(198, (224, 224)), token_grid(281, (224, 320))
    ((1, 14, 14), (2, 14, 14), (1, 14, 20))
    """
    height, width = image
    for extra in range(min(MAX_EXTRA_TOKENS, length - 1) + 1):
        count = length - extra
        pairs = [(h, count // h) for h in range(1, count + 1) if count % h == 0 and _fits(h, count // h, height, width)]
        if pairs:
            h, w = min(pairs, key=lambda p: abs(math.log(p[0] / p[1]) - math.log(height / width)))
            return extra, h, w
    return None


@dataclass(frozen=True)
class MapLayout:
    """Where a layer's channels and positions are.

    Attributes:
        kind: ``"channels-first"`` ``(N, C, H, W)``, ``"channels-last"`` ``(N, H, W, C)`` or ``"tokens"``
            ``(N, L, C)``.
        grid: ``(h, w)`` positions.
        extra: leading tokens dropped before the grid (tokens only; 0 otherwise).
    """

    kind: str
    grid: tuple[int, int]
    extra: int = 0

    @property
    def positions(self) -> int:
        """``h * w``."""
        return self.grid[0] * self.grid[1]

    def to_map(self, tensor: torch.Tensor) -> torch.Tensor:
        """The layer's output as ``(N, C, h, w)``."""
        if self.kind == "channels-first":
            return tensor
        if self.kind == "channels-last":
            return tensor.permute(0, 3, 1, 2)
        tokens = tensor[:, self.extra:]
        return tokens.transpose(1, 2).reshape(tensor.shape[0], tensor.shape[-1], *self.grid)

    def describe(self) -> str:
        """One phrase for people: ``"tokens (N, L, C) as a 14x14 grid after 1 leading token"``."""
        grid = f"{self.grid[0]}x{self.grid[1]}"
        if self.kind == "channels-first":
            return f"(N, C, H, W) map, {grid}"
        if self.kind == "channels-last":
            return f"channels-last (N, H, W, C) map, {grid}"
        plural = "s" if self.extra != 1 else ""
        dropped = (f" after {self.extra} leading token{plural} (class, distillation or register tokens)"
                   if self.extra else "")
        return f"tokens (N, L, C) as a {grid} grid{dropped}"


def map_layout(shape: tuple[int, ...], channels_last: bool, image: tuple[int, int]) -> MapLayout | None:
    """The layout of an output of ``shape``, or None when it has no spatial positions.

    Args:
        shape: the output's shape.
        channels_last: whether :func:`probe.layout.channels_last_layers` lists the layer.
        image: the input's ``(H, W)``.
    """
    if len(shape) == 4 and not channels_last:
        return MapLayout("channels-first", (shape[2], shape[3]))
    if len(shape) == 4 and _fits(shape[1], shape[2], *image):
        return MapLayout("channels-last", (shape[1], shape[2]))
    if len(shape) == 3 and channels_last:
        found = token_grid(shape[1], image)
        if found is not None:
            return MapLayout("tokens", found[1:], extra=found[0])
    return None


@dataclass(frozen=True)
class CamLayer:
    """One layer as Grad-CAM sees it, from :func:`survey_cam_layers`.

    Attributes:
        name: its dotted name; for a module that runs several times, also each call as a layer of its own,
            ``block.0#1`` (its second call), after the module's own entry (which stands for its first call).
        shape: its output's shape (first call).
        layout: its :class:`MapLayout`, None without spatial positions.
        calls: how many times it (its module, for a call) ran in the pass.
        reaches: whether the score got a non-zero gradient at one of its positions.
        key: ``(id, version)`` of its output: layers that return the very same tensor share it.
        pooling: a pooling layer (see :data:`_POOLS`).
        channels: its channel count (None without spatial positions).
        in_attention: inside an attention module (its queries, keys, values).
        passes: it returned its input itself, unchanged (an ``nn.Identity``, a dropout or drop path in eval
            mode; not an in-place activation).
        batched: its output's dim 0 is the image batch; False for tokens of several patches or windows folded
            into dim 0 (TNT's pixel tokens ``(N * L, P, C)``, a window attention's ``(N * windows, T, C)``),
            whose positions are not the image's (``layout`` is then None).
        reordered: tokens that ran after the pass reordered its tokens (see :func:`_shuffled`): their
            order may not be the grid's, so :func:`choose_cam_layer` measures it before using them.
        chained: for a call of a module that runs several times, whether its calls form one chain: each call
            given what the one before returned, through the layers between (a shared or recurrent block run on
            one image's path; not the image and its mirror of a test-time flip). False for a module run once.
    """

    name: str
    shape: tuple[int, ...]
    layout: MapLayout | None
    calls: int
    reaches: bool
    key: tuple[int, int]
    pooling: bool
    channels: int | None = None
    in_attention: bool = False
    passes: bool = False
    batched: bool = True
    reordered: bool = False
    chained: bool = False


_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
          nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
          nn.AvgPool2d, nn.AvgPool3d, nn.LPPool1d, nn.LPPool2d)
"""Pooling layers: the head's pooling, or a coarser copy of the map before them (passed over by the default)."""


def survey_cam_layers(net: nn.Module, score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                      channels_last: frozenset[str]) -> list[CamLayer]:
    """Every layer of ``net`` that returned a tensor in one pass of ``score(x)``, in the order they finished.

    Args:
        net: the model whose ``named_modules()`` are surveyed (no hook stays, nothing else changes).
        score: ``(1, C, H, W)`` image -> the scalar to explain (runs ``net`` once).
        x: ``(1, C, H, W)`` the image.
        channels_last: the names :func:`probe.layout.channels_last_layers` gives.
    """
    image_hw = (int(x.shape[-2]), int(x.shape[-1]))
    layers = _survey(net, score, x, channels_last, image_hw)
    if not any(layer.reaches for layer in layers):  # a score constant in the image: judge by the head's input
        layers = _survey(net, score, x, channels_last, image_hw, surrogate=True)
    return layers


_ATTENDING = frozenset({torch.softmax, torch.Tensor.softmax, F.softmax, F.scaled_dot_product_attention})
"""The calls that make the module running them an attention module (see the module doc)."""


class _Attending(TorchFunctionMode):
    """Notes the innermost running module (the top of ``stack``, dotted names) of every softmax or
    ``scaled_dot_product_attention`` call in ``found``."""

    def __init__(self, stack: list[str], found: set[str]) -> None:
        super().__init__()
        self.stack, self.found = stack, found

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        if func in _ATTENDING and self.stack:
            self.found.add(self.stack[-1])
        return func(*args, **(kwargs or {}))


def _named_attention(net: nn.Module) -> set[str]:
    """The modules of ``net`` that are attention by their class: ``nn.MultiheadAttention``, ``*Attention``."""
    return {name for name, m in net.named_modules()
            if name and (isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("Attention"))}


def _survey(net: nn.Module, score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
            channels_last: frozenset[str], image_hw: tuple[int, int], surrogate: bool = False) -> list[CamLayer]:
    """:func:`survey_cam_layers`' pass: with ``surrogate``, reached means reached from a seeded random
    direction at the head's input instead of from the score: the input of the last leaf module with weights of
    its own that runs (the classifier, not a parameter-free leaf after it: timm's ``ClassifierHead`` flattens
    after its zero-initialized ``fc``), else of the last leaf that runs."""
    calls: Counter[str] = Counter()
    running: list[str] = []
    inputs: dict[str, tuple[int, int]] = {}  # each module's first input, as (id, version) when it started
    attention = _named_attention(net)
    head_input: dict[str, torch.Tensor] = {}
    found: dict[str, tuple[torch.Tensor, MapLayout | None, tuple[int, int], bool, bool, bool, bool]] = {}
    made: dict[str, torch.Tensor] = {}  # each module's first input
    outputs: set[int] = set()  # ids of the tensors modules returned
    tokens: dict[int, torch.Tensor] = {}  # channels -> the last (N, L, C) output (or map) with that many
    order = {"reordered": False}
    reached: set[str] = set()
    taking: dict[str, torch.Tensor | None] = {}  # each module's input in its running call
    returned: dict[str, torch.Tensor] = {}  # each module's output in its last call
    chained: dict[str, bool] = {}  # a module that ran several times -> whether each call took the last's output

    def entering(name: str, args: tuple) -> None:
        running.append(name)
        tensor = first_tensor(args)
        taking[name] = tensor
        if tensor is not None and name not in inputs:
            inputs[name] = (id(tensor), tensor._version)
            made[name] = tensor
            batched = tensor.dim() == 3 and tensor.shape[0] == x.shape[0]  # not windows folded into the batch
            earlier = tokens.get(tensor.shape[-1]) if batched else None
            if earlier is not None and id(tensor) not in outputs and _shuffled(earlier, tensor):
                order["reordered"] = True  # functional code between two modules reordered the tokens (HF Hiera)

    def seen(name: str, module: nn.Module, output: object) -> None:
        if running and running[-1] == name:
            running.pop()
        calls[name] += 1
        tensor = first_tensor(output)
        if tensor is None:
            return
        batched = tensor.dim() > 0 and tensor.shape[0] == x.shape[0]
        layout = map_layout(tuple(tensor.shape), name in channels_last, image_hw) if batched else None
        key = (id(tensor), tensor._version)
        if calls[name] > 1:  # is this call given, through the layers between, what the one before returned?
            taken, before = taking.get(name), returned[name].grad_fn
            chained[name] = chained.get(name, True) and taken is not None and before is not None and descends(
                taken, before)
        returned[name] = tensor
        call = f"{name}{CALL_SEPARATOR}{calls[name] - 1}"  # each call too, for a module that runs several times
        found[call] = (tensor, layout, key, isinstance(module, _POOLS), False, batched, False)
        if layout is not None and tensor.requires_grad:
            tensor.register_hook(lambda grad, n=call, lay=layout: _note_reach(grad, n, lay, reached))
        if calls[name] > 1:
            return
        given = made.get(name)
        if batched and tensor.dim() == 3 and given is not None and given is not tensor and _shuffled(given, tensor):
            order["reordered"] = True  # the module reordered its tokens (timm's Hiera Unroll)
        outputs.add(id(tensor))
        if batched and (tensor.dim() == 3 or layout is not None and tensor.dim() == 4):  # a map, as raster tokens
            flat = tensor.detach() if tensor.dim() == 3 else layout.to_map(tensor.detach()).flatten(2).transpose(1, 2)
            tokens[flat.shape[-1]] = flat
        found[name] = (tensor, layout, key, isinstance(module, _POOLS), key == inputs.get(name), batched,
                       order["reordered"] and layout is not None and layout.kind != "channels-first")
        if layout is not None and tensor.requires_grad:
            tensor.register_hook(lambda grad, n=name, lay=layout: _note_reach(grad, n, lay, reached))

    def entered(module: nn.Module, args: tuple) -> None:
        tensor = first_tensor(args)
        if tensor is not None and not any(True for _ in module.children()):
            head_input["leaf"] = tensor  # the last leaf to start, and the last with weights: the head
            if any(True for _ in module.parameters(recurse=False)):
                head_input["weighted"] = tensor

    named = [(name, m) for name, m in net.named_modules() if name]
    handles = [m.register_forward_pre_hook(lambda m, a, n=name: entering(n, a)) for name, m in named]
    handles += [m.register_forward_hook(lambda m, a, out, n=name: seen(n, m, out)) for name, m in named]
    if surrogate:
        handles += [m.register_forward_pre_hook(entered) for m in net.modules()]
    try:
        image = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            with _Attending(running, attention):
                value = score(image)
            if surrogate and head_input:
                head = head_input.get("weighted", head_input["leaf"])
                generator = torch.Generator(device="cpu").manual_seed(0)
                direction = torch.randn(head.shape, generator=generator).to(head)
                value = (head * direction).sum()
            if value.requires_grad:
                image_grad(value, image, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    return [CamLayer(name, tuple(tensor.shape), layout, calls[name.split(CALL_SEPARATOR)[0]], name in reached, key,
                     pooling, None if layout is None else int(tensor.shape[1 if layout.kind == "channels-first" else -1]),
                     any(name.startswith(f"{outer}.") for outer in attention), passes, batched, reordered,
                     CALL_SEPARATOR in name and chained.get(name.split(CALL_SEPARATOR)[0], False))
            for name, (tensor, layout, key, pooling, passes, batched, reordered) in found.items()
            if CALL_SEPARATOR not in name or calls[name.split(CALL_SEPARATOR)[0]] > 1]


def _note_reach(grad: torch.Tensor, name: str, layout: MapLayout, reached: set[str]) -> None:
    if bool(layout.to_map(grad).ne(0).any()):
        reached.add(name)


def _shuffled(before: torch.Tensor, after: torch.Tensor) -> bool:
    """Whether ``after`` ``(N, L', C)`` holds rows (tokens) of ``before`` ``(N, L, C)`` in another order or a
    subset of them: Hiera's unroll into mask units, ViTMAE's random masking. Judged on the first image by two
    row statistics, each sorted and matched within float rounding."""
    if after.dim() != 3 or before.dim() != 3 or after.shape[-1] != before.shape[-1]:
        return False
    if not 2 <= after.shape[1] <= before.shape[1]:
        return False
    a, b = before[0].detach().float().contiguous(), after[0].detach().float().contiguous()
    if after.shape == before.shape and torch.allclose(a, b):  # the same tokens in the same order
        return False
    for key in (lambda t: t.sum(dim=1), lambda t: t[:, 0].contiguous()):
        ka, kb = key(a).sort().values, key(b)
        place = torch.searchsorted(ka, kb).clamp(max=ka.numel() - 1)
        nearest = torch.minimum((ka[place] - kb).abs(), (ka[(place - 1).clamp(min=0)] - kb).abs())
        if not bool((nearest <= 1e-5 * (kb.abs() + 1)).all()):
            return False
    return True


def _in_grid_order(net: nn.Module, score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   layer: CamLayer, cells: int = 4) -> bool:
    """Whether ``layer``'s tokens are measured to be in its grid's raster order: ``cells`` grid cells (chosen
    by a seeded generator) are each blanked in a copy of the image (set to the image's mean), and the token
    that changes most must be that cell's. Hiera's tokens are in mask-unit order until its last stage."""
    if layer.layout is None:
        return False
    h, w = layer.layout.grid
    if h * w < 2:
        return True
    generator = torch.Generator().manual_seed(0)
    chosen = torch.randperm(h * w, generator=generator)[:cells].tolist()
    height, width = x.shape[-2:]
    with torch.no_grad(), record(net, [layer.name]) as acts:
        score(x)
        base = layer.layout.to_map(acts[layer.name]).float()
        for cell in chosen:
            row, col = divmod(cell, w)
            image = x.clone()
            image[..., row * height // h:(row + 1) * height // h, col * width // w:(col + 1) * width // w] = x.mean()
            score(image)
            change = (layer.layout.to_map(acts[layer.name]).float() - base).norm(dim=1).flatten()
            if int(change.argmax()) != cell:
                return False
    return True


def default_cam_layer(layers: list[CamLayer], dense_classes: int | None = None) -> CamLayer | None:
    """Grad-CAM's default among ``layers`` (from :func:`survey_cam_layers`): the last one that ran once, or is
    a call of a module whose calls form one chain (:attr:`CamLayer.chained`: a shared block's last call,
    ``block#1``, runs last), has more than one position the score depends on and is no pooling layer's output
    (nor, for a dense output of ``dense_classes`` classes, a map with one channel per class); of layers returning
    that very tensor (a block and its last child), the first to finish that computed it (not an ``nn.Identity``
    or dropout passing it on: timm's ``BatchNormAct2d`` finishes after its ``drop`` and ``act``), a module run
    once before a call (ResNet's ``layer4.1``, not its shared ``layer4.1.relu#1``); never inside an attention
    module. Calls that are not one chain (a test-time flip runs every layer on the image and on its mirror, so
    a call's map may be of the mirror) are never taken. None when no layer qualifies."""

    pooled = {layer.key for layer in layers if layer.pooling}  # a pool's output, also as its container's

    def usable(layer: CamLayer) -> bool:
        per_class = dense_classes is not None and layer.channels == dense_classes
        return (layer.layout is not None and (layer.calls == 1 or layer.chained) and layer.reaches
                and layer.layout.positions > 1 and layer.key not in pooled and not per_class and not layer.in_attention)

    chosen = [layer for layer in layers if usable(layer)]
    if not chosen:
        return None
    same = [layer for layer in chosen if layer.key == chosen[-1].key and not layer.passes] or [
        layer for layer in chosen if layer.key == chosen[-1].key]
    return next((layer for layer in same if CALL_SEPARATOR not in layer.name), same[0])


def grad_cam(net: nn.Module, score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, layer: str,
             layout: MapLayout) -> torch.Tensor:
    """Grad-CAM of ``score(x)`` at ``layer``: ``(1, H, W)`` on the CPU, >= 0, upsampled to ``x`` ``(1, C, H, W)``.

    The layer's output and its gradient are read by :func:`probe.hooks.record` (its value as the layer
    returned it, even when a later in-place operation rewrites it), viewed as ``(1, C, h, w)`` by ``layout``.
    """
    image = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), record(net, [layer], grads=True) as acts:
        value = score(image)
        image_grad(value, image, allow_unused=True)
    if layer not in acts.grads:
        grads = torch.zeros_like(acts[layer])
    else:
        grads = acts.grads[layer]
    maps, weights = layout.to_map(acts[layer]).float(), layout.to_map(grads).float().mean(dim=(2, 3), keepdim=True)
    cam = (weights * maps).sum(dim=1, keepdim=True).clamp_min(0)
    return F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear").clamp_min(0)[0].detach().cpu()


def _calls(layer: str, calls: int, limit: int = 4) -> str:
    """``'a#0', 'a#1'``: the names of a module's calls, for an error message."""
    return ", ".join(repr(f"{layer}{CALL_SEPARATOR}{i}") for i in range(min(calls, limit))) + (
        ", ..." if calls > limit else "")


def _spatial_names(layers: list[CamLayer], limit: int = 10) -> str:
    """The last ``limit`` layers with spatial positions that run once, for an error message."""
    names = [layer.name for layer in layers if layer.layout is not None and layer.calls == 1]
    return ("..., " if len(names) > limit else "") + ", ".join(names[-limit:]) if names else "none"


def choose_cam_layer(net: nn.Module, score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     layer: str | None, *, dense_classes: int | None = None) -> CamLayer:
    """Grad-CAM's layer: ``layer`` checked, or :func:`default_cam_layer` when it is None.

    Args:
        net: the model (its ``named_modules()`` names).
        score: ``(1, C, H, W)`` image -> the scalar explained.
        x: ``(1, C, H, W)`` the image.
        layer: a dotted name (already known to exist), or None for the default.
        dense_classes: the class count of a dense ``(N, K, H, W)`` output, else None.

    Raises:
        ProbeUsageError: (naming ``layer``) no default qualifies; the layer did not run, runs several times,
            has no spatial positions, or has positions the score does not depend on.
    """
    layers = survey_cam_layers(net, score, x, channels_last_layers(net, x))
    measured: dict[str, bool] = {}

    def in_grid_order(entry: CamLayer) -> bool:
        """:func:`_in_grid_order`, measured once per layer (it costs 1 + 4 forward passes)."""
        if entry.name not in measured:
            measured[entry.name] = _in_grid_order(net, score, x, entry)
        return measured[entry.name]

    def default_layer() -> CamLayer | None:
        """The default, found only when it is chosen or named in a refusal: a named layer needs no measuring of it."""
        default = default_cam_layer(layers, dense_classes)
        if default is not None and default.reordered and not in_grid_order(default):
            in_order = [replace(found, layout=None) if found.reordered else found for found in layers]
            default = default_cam_layer(in_order, dense_classes)  # none after the reordering: it is not measured
        return default

    if layer is None:
        default = default_layer()
        if default is None:
            repeated = [found for found in layers if found.layout is not None and CALL_SEPARATOR in found.name]
            hint = "" if not repeated else (
                f"; the layers with spatial output run several times, and not one call after another on one image "
                f"(a test-time flip runs them on the image and on its mirror), which the default never takes, as a "
                f"call's map may be of another image than yours: name one call, e.g. {repeated[-1].name!r}")
            raise ProbeUsageError(
                "Grad-CAM found no layer with spatial positions ((N, C, H, W), (N, H, W, C), or (N, L, C) tokens on "
                f"a grid in raster order) that the score depends on; name one with --layer (layers with spatial "
                f"output: {_spatial_names(layers)}){hint}", param="layer")
        return default
    entry = next((found for found in layers if found.name == layer), None)
    if entry is None:
        raise ProbeUsageError(f"Grad-CAM needs a layer with spatial output; {layer} gives nothing (it did not run "
                              f"or returned no tensor); layers with spatial output: {_spatial_names(layers)}",
                              param="layer")
    if entry.calls > 1 and CALL_SEPARATOR not in layer:
        raise ProbeUsageError(
            f"Grad-CAM's layer {layer} runs {entry.calls} times in one forward pass, so its name alone does not say "
            f"which map; name one call: {_calls(layer, entry.calls)} (each the map of what that call was given)",
            param="layer")
    if not entry.batched:
        raise not_per_image(layer, tuple(entry.shape), 1, "Grad-CAM",
                            then=f"; layers with spatial output: {_spatial_names(layers)}")
    if entry.reordered and entry.layout is not None and not in_grid_order(entry):
        default = default_layer()
        raise ProbeUsageError(
            f"Grad-CAM needs tokens in the grid's raster order; {layer}'s {entry.shape} tokens ran after the model "
            "reordered its tokens (as Hiera's mask units) and are measured not to be: a grid drawn from them would "
            f"put each position elsewhere; name a layer in raster order (the default is "
            f"{default.name if default is not None else 'none'})", param="layer")
    if entry.layout is None:
        raise ProbeUsageError(
            f"Grad-CAM needs a layer with spatial output ((N, C, H, W), (N, H, W, C), or (N, L, C) tokens on a "
            f"grid of the input); {layer} gives {entry.shape}; layers with spatial output: {_spatial_names(layers)}",
            param="layer")
    if not entry.reaches:
        default = default_layer()
        suggestion = f"; the default is {default.name}" if default is not None else ""
        raise ProbeUsageError(
            f"the score does not depend on any position of {layer} ({entry.layout.describe()}): its gradient is zero "
            "there (after a ViT's last attention only the class token reaches the head); name an earlier "
            f"layer{suggestion}", param="layer")
    return entry
