"""Gram-matrix style transfer as the PyTorch tutorial teaches it (Gatys et al.).

The structure the tutorial uses: copy VGG19's ``features`` into a new
``nn.Sequential`` whose convolutions are renamed ``conv_1, conv_2, ...``, put a
normalization module in front, insert a content-loss module after ``conv_4`` and
style-loss modules after ``conv_1`` .. ``conv_5`` (each stores its loss as an
attribute in its forward pass), trim everything after the last loss module,
and optimize the input image with L-BFGS, clamping it to [0, 1] in every
closure. Style weight 1e6, content weight 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONTENT_LAYERS = ("conv_4",)
STYLE_LAYERS = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of ``(N, C, H, W)`` features divided by ``N*C*H*W``, as the tutorial does."""
    n, c, h, w = features.shape
    flat = features.reshape(n * c, h * w)
    return flat @ flat.t() / (n * c * h * w)


class ContentLoss(nn.Module):
    """Identity that stores the MSE to a fixed target feature map in ``self.loss``."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(x, self.target)
        return x


class StyleLoss(nn.Module):
    """Identity that stores the MSE between Gram matrices in ``self.loss``."""

    def __init__(self, target_features: torch.Tensor) -> None:
        super().__init__()
        self.target = gram(target_features).detach()
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(gram(x), self.target)
        return x


class Normalization(nn.Module):
    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(-1, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(-1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build(features: nn.Sequential, content: torch.Tensor, style: torch.Tensor):
    """The tutorial's loss network and its loss modules."""
    device = content.device
    model = nn.Sequential(Normalization(device))
    content_losses, style_losses = [], []
    conv = 0
    for layer in features.children():
        if isinstance(layer, nn.Conv2d):
            conv += 1
            name = f"conv_{conv}"
        elif isinstance(layer, nn.ReLU):
            name, layer = f"relu_{conv}", nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{conv}"
        else:
            name = f"other_{conv}"
        model.add_module(name, layer)
        if name in CONTENT_LAYERS:
            loss = ContentLoss(model(content))
            model.add_module(f"content_loss_{conv}", loss)
            content_losses.append(loss)
        if name in STYLE_LAYERS:
            loss = StyleLoss(model(style))
            model.add_module(f"style_loss_{conv}", loss)
            style_losses.append(loss)
    last = max(i for i, m in enumerate(model) if isinstance(m, (ContentLoss, StyleLoss)))
    return model[: last + 1], style_losses, content_losses


def run(features: nn.Sequential, content: torch.Tensor, style: torch.Tensor, steps: int,
        style_weight: float = 1e6, content_weight: float = 1.0) -> tuple[torch.Tensor, int]:
    """Style ``content`` (``(1, 3, H, W)`` in [0, 1]) like ``style``.

    As the tutorial does: ``optimizer.step(closure)`` with torch's default
    L-BFGS (20 iterations a call) until ``steps`` closure evaluations have run.
    Returns the image and the number of evaluations (one forward and one
    backward pass each; the last call may run a few past ``steps``).
    """
    model, style_losses, content_losses = build(features, content, style)
    model.eval().requires_grad_(False)
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    evaluations = [0]

    def closure() -> torch.Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        model(image)
        loss = style_weight * sum(l.loss for l in style_losses) + content_weight * sum(l.loss for l in content_losses)
        loss.backward()
        evaluations[0] += 1
        return loss

    while evaluations[0] < steps:
        optimizer.step(closure)
    with torch.no_grad():
        image.clamp_(0, 1)
    return image.detach(), evaluations[0]
