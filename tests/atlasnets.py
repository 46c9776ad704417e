"""Tiny networks whose receptive fields one box and stride cannot describe (atlas tests; factory spec ``atlasnets:NAME``).

- :func:`clipped`: two 7x7 stride-2 convolutions; at 16 px the second one's
  field (19 px) is wider than the image, so the image clips every position's field.
- :func:`tokens`: a ViT in small: 4x4 patches as tokens ``(N, L, C)``, a
  per-token ``mix`` (each token sees its patch), a ``block`` that mixes all tokens.
- :func:`excite`: a convolution, then a squeeze-excitation gate: every position sees the whole image.
- :func:`squeeze`: a convolution, then squeeze-excitation as timm's and torchvision's (mean, 1x1 reduce, ReLU,
  1x1 expand, sigmoid): its gradient reaches the whole image, almost all of it the convolution's 3x3 field.
- :func:`dead`: a convolution whose unit 1 is dead (zero weights, negative bias) after its ReLU: no
  gradient ever reaches its synthetic image.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def clipped() -> nn.Sequential:
    """conv1(4, 7x7, stride 2) relu conv2(3, 7x7, stride 2) pool flatten fc: any input size."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 7, stride=2, padding=3), relu=nn.ReLU(), conv2=nn.Conv2d(4, 3, 7, stride=2, padding=3),
        pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(3, 2)))


class _Mixer(nn.Module):
    """Adds every token's mean to each token, then a LayerNorm: ``(N, L, C) -> (N, L, C)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + x.mean(dim=1, keepdim=True))


class Tokens(nn.Module):
    """embed (Conv 4x4 stride 4, 8 channels) -> tokens ``(N, L, 8)`` by functional code -> drop (Dropout, as
    ViT's ``encoder.dropout``) -> mix (Linear 8->6) -> block -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.drop = nn.Dropout(0.0)
        self.mix = nn.Linear(8, 6)
        self.block = _Mixer(6)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.drop(self.embed(x).flatten(2).transpose(1, 2))
        return self.head(self.block(self.mix(tokens)).mean(dim=1))


def tokens() -> Tokens:
    """A seeded :class:`Tokens` (any input size that is a multiple of 4)."""
    torch.manual_seed(0)
    return Tokens()


class _Gate(nn.Module):
    """``x * sigmoid(mean over the map of x)``: squeeze-excitation without its MLP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x.mean(dim=(2, 3), keepdim=True))


def excite() -> nn.Sequential:
    """conv(4, 3x3) gate(squeeze-excitation) pool flatten fc."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3, padding=1), gate=_Gate(), pool=nn.AdaptiveAvgPool2d(1),
                                     flatten=nn.Flatten(), fc=nn.Linear(4, 2)))


class _LinearNorm(nn.Module):
    """LeViT's LinearNorm: a Linear, then a BatchNorm1d over the tokens flattened to ``(N * L, C)``."""

    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width_in, width_out)
        self.bn = nn.BatchNorm1d(width_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class Levit(nn.Module):
    """embed (Conv 4x4 stride 4, 8) -> tokens ``(N, L, 8)`` -> mix (LinearNorm 8->6) -> head: LeViT in small,
    no LayerNorm, attention or Permute."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.mix = _LinearNorm(8, 6)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(self.embed(x).flatten(2).transpose(1, 2)).mean(dim=1))


def levit() -> Levit:
    """A seeded :class:`Levit` (any input size that is a multiple of 4)."""
    torch.manual_seed(0)
    return Levit()


class ClassToken(Tokens):
    """:class:`Tokens` with a learned class token in front (position 0), as ViT's: no pixel reaches it before
    ``block`` mixes the tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.randn(1, 1, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = self.drop(torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1))
        return self.head(self.block(self.mix(tokens)).mean(dim=1))


def class_token() -> ClassToken:
    """A seeded :class:`ClassToken`."""
    torch.manual_seed(0)
    return ClassToken()


def dead() -> nn.Sequential:
    """conv(2, 3x3) relu pool flatten fc; ``relu``'s unit 1 is 0 on every image (its filter is zero, its bias -1)."""
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 2, 3, padding=1), relu=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(1),
                                    flatten=nn.Flatten(), fc=nn.Linear(2, 2)))
    with torch.no_grad():
        net.conv.weight[1].zero_()
        net.conv.bias[1] = -1.0
    return net


class _SqueezeExcite(nn.Module):
    """``x * sigmoid(expand(relu(reduce(mean over the map of x))))``, 1x1 convolutions as timm's SqueezeExcite."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True)))))


def squeeze() -> nn.Sequential:
    """conv(8, 3x3) se(squeeze-excitation, 8 -> 2 -> 8) pool flatten fc."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 8, 3, padding=1), se=_SqueezeExcite(8, 2),
                                     pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(8, 2)))
