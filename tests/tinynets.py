"""Tiny networks for tests (also importable as the factory spec ``tinynets:tiny``)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class Counter(nn.Module):
    """Identity that counts its calls, to see which layers a forward pass reached."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def tiny(channels: int = 3, classes: int = 4) -> nn.Sequential:
    """conv1(4) relu1 pool1 conv2(6) bn2 relu2 drop flatten fc counter: 16x16 input -> (N, classes)."""
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(channels, 4, 3, padding=1),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(4, 6, 3, padding=1),
            bn2=nn.BatchNorm2d(6),
            relu2=nn.ReLU(),
            drop=nn.Dropout(0.5),
            flatten=nn.Flatten(),
            fc=nn.Linear(6 * 8 * 8, classes),
            counter=Counter(),
        )
    )


def tiny_gray() -> nn.Sequential:
    """:func:`tiny` for one-channel input."""
    return tiny(channels=1)


class FixedSize(nn.Module):
    """:func:`tiny` behind its own input check, as torchvision's ViT checks its input (``torch._assert``).

    Args:
        error: the exception type the check raises (default AssertionError, ViT's); any type a model's
            code may raise.
        side: the one input size it takes (default 16; the head needs 16, the convolutions any).
    """

    def __init__(self, error: type[Exception] = AssertionError, side: int = 16) -> None:
        super().__init__()
        self.error = error
        self.side = side
        self.body = tiny()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.side, self.side):
            raise self.error(f"Wrong image size! Expected {self.side}x{self.side} but got {x.shape[-2]}x{x.shape[-1]}!")
        return self.body(x)


def fixed_size() -> FixedSize:
    """A :class:`FixedSize` that takes 16x16 inputs only (the factory spec ``tinynets:fixed_size``)."""
    return FixedSize()


def channels_last() -> nn.Sequential:
    """conv(8) permute norm(LayerNorm) fc(Linear 8->6) back(Permute) pool flatten head: ConvNeXt's and Swin's
    channels-last block in small; norm and fc give ``(N, H, W, C)``. Any input size (adaptive pool)."""
    from torchvision.ops.misc import Permute

    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(3, 8, 3, padding=1), permute=Permute([0, 2, 3, 1]), norm=nn.LayerNorm(8),
        fc=nn.Linear(8, 6), act=nn.GELU(), back=Permute([0, 3, 1, 2]), pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(), head=nn.Linear(6, 4),
    ))


def weight_normed() -> nn.Sequential:
    """:func:`tiny` with torch's parametrizations on its convolutions: conv1 weight-normed, conv2 spectral-normed
    (each conv gets a ``parametrizations`` child that computes its weight)."""
    net = tiny()
    nn.utils.parametrizations.weight_norm(net.conv1)
    nn.utils.parametrizations.spectral_norm(net.conv2)
    return net


def quantization_aware() -> nn.Sequential:
    """:func:`tiny` prepared for quantization-aware training (``prepare_qat``, fbgemm): its convs and fc carry
    fake-quantizers, which observe ranges on every forward pass, in eval mode too. Returned in eval mode."""
    net = tiny().train()
    net.qconfig = torch.ao.quantization.get_default_qat_qconfig("fbgemm")
    return torch.ao.quantization.prepare_qat(net).eval()


class GradientCut(nn.Module):
    """:func:`tiny` whose forward cuts the gradient after conv2, as users' models do: ``"no_grad"`` runs the
    convolutions under ``torch.no_grad()``, ``"detach"`` detaches conv2's output. 16x16 input -> (N, 4)."""

    def __init__(self, how: str = "no_grad") -> None:
        super().__init__()
        self.how = how
        self.body = tiny()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convs, head = self.body[:4], self.body[4:]
        if self.how == "no_grad":
            with torch.no_grad():
                return head(convs(x))
        return head(convs(x).detach())


class DictOutput(nn.Module):
    """:func:`tiny` returning ``{"logits": (N, 4), "features": conv2's (N, 6, 8, 8)}``, as transformers' backbones
    and many users' models return a dict (or a dataclass) of outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = tiny()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.body[:4](x)
        return {"logits": self.body[4:](features), "features": features}


def dict_output() -> DictOutput:
    """A :class:`DictOutput` (the factory spec ``tinynets:dict_output``)."""
    return DictOutput()


class NeedsMask(nn.Module):
    """:func:`tiny` whose forward needs a second argument, ``forward(x, mask)``; with ``keyword_only=True`` its
    forward takes the input by keyword only, ``forward(*, pixel_values)``, as some wrappers do."""

    def __init__(self, keyword_only: bool = False) -> None:
        super().__init__()
        self.body = tiny()
        if keyword_only:
            self.forward = self._by_keyword  # type: ignore[method-assign]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.body(x * mask)

    def _by_keyword(self, *, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.body(pixel_values)


def conv_autoencoder(channels: int = 3) -> nn.Sequential:
    """A denoising autoencoder ending in a plain convolution: (N, C, H, W) -> (N, C, H, W), a C-class segmenter's
    shape too, so only the user can say its output is a picture (``--output image``)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, 2, 1), nn.ReLU(), nn.ConvTranspose2d(4, 4, 4, 2, 1), nn.ReLU(),
                         nn.Conv2d(4, channels, 3, padding=1))


class FeaturesThenLogits(nn.Module):
    """``forward`` returns ``(features (N, 8), logits (N, 3))``: the logits are computed from the features, so only
    the autograd graph tells which of the two is the prediction."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


def features_then_logits() -> FeaturesThenLogits:
    torch.manual_seed(0)
    return FeaturesThenLogits()


def sigmoid_autoencoder() -> nn.Sequential:
    """An autoencoder whose sigmoid gives a picture of the input's very shape: (N, 3, H, W) -> (N, 3, H, W)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.ConvTranspose2d(4, 3, 4, 2, 1), nn.Sigmoid())
