"""The four zoo architectures, as plain ``nn.Sequential`` modules with named layers.

Every layer is its own named module, activations included (``nn.ReLU()``, never
in place, never functional), so that ``named_modules()`` lists exactly the names
users type on the command line and forward hooks / guided backprop see every
ReLU. Every network takes *normalized* input ``(x - mean) / std`` (the caller
normalizes with the spec's statistics) and returns logits ``(N, num_classes)``.

Builders are pure: they construct a fresh, randomly initialised module from the
global torch RNG and touch nothing else.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["digits_net", "lenet5_net", "xo_net", "shapes_net", "shapes_net_bn", "fold_batch_norm"]


def digits_net() -> nn.Sequential:
    """A small Keras-style network (the classic Keras MNIST example) for 28x28 grayscale digits.

    Shapes for an input ``(N, 1, 28, 28)``::

        conv1   (N, 25, 26, 26)   25 filters 3x3, no padding
        relu1   (N, 25, 26, 26)
        pool1   (N, 25, 13, 13)   max 2x2
        conv2   (N, 50, 11, 11)   50 filters 3x3: the 11x11 maps whose sums are maximized
        relu2   (N, 50, 11, 11)
        pool2   (N, 50, 5, 5)
        flatten (N, 1250)
        fc1     (N, 100)
        relu3   (N, 100)
        fc2     (N, 10)           logits for the digits 0..9

    Returns:
        A fresh ``nn.Sequential`` in training mode.
    """
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 25, kernel_size=3)),
                ("relu1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(25, 50, kernel_size=3)),
                ("relu2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(50 * 5 * 5, 100)),
                ("relu3", nn.ReLU()),
                ("fc2", nn.Linear(100, 10)),
            ]
        )
    )


def lenet5_net() -> nn.Sequential:
    """LeNet-5 (LeCun et al. 1998) for 32x32 grayscale digits, modernised.

    The paper's layers map to module names as follows (input ``(N, 1, 32, 32)``)::

        C1  conv1  (N, 6, 28, 28)    6 filters 5x5      relu1
        S2  pool1  (N, 6, 14, 14)    max 2x2
        C3  conv2  (N, 16, 10, 10)   16 filters 5x5     relu2
        S4  pool2  (N, 16, 5, 5)     max 2x2
        C5  conv3  (N, 120, 1, 1)    120 filters 5x5    relu3
            flatten (N, 120)
        F6  fc1    (N, 84)                              relu4
        out fc2    (N, 10)           logits for the digits 0..9

    Modernised as most re-implementations do: ReLU instead of scaled tanh, max
    pooling instead of trainable sub-sampling, C3 fully connected to S2 (the
    paper's sparse connection table is dropped) and a linear output layer
    instead of the Euclidean RBF units. C5 stays a convolution, as in the paper.

    Returns:
        A fresh ``nn.Sequential`` in training mode.
    """
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 6, kernel_size=5)),
                ("relu1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(6, 16, kernel_size=5)),
                ("relu2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("conv3", nn.Conv2d(16, 120, kernel_size=5)),
                ("relu3", nn.ReLU()),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(120, 84)),
                ("relu4", nn.ReLU()),
                ("fc2", nn.Linear(84, 10)),
            ]
        )
    )


def xo_net() -> nn.Sequential:
    """A toy X-or-O ConvNet for 32x32 images of +1/-1 pixels.

    A few 3x3 first-layer filters (diagonal and cross detectors),
    two conv/ReLU/max-pool stages, a small hidden layer and two outputs.
    Input ``(N, 1, 32, 32)``::

        conv1   (N, 4, 30, 30)    4 filters 3x3, no padding
        relu1   (N, 4, 30, 30)
        pool1   (N, 4, 15, 15)    max 2x2
        conv2   (N, 8, 13, 13)    8 filters 3x3
        relu2   (N, 8, 13, 13)
        pool2   (N, 8, 6, 6)
        flatten (N, 288)
        fc1     (N, 32)
        relu3   (N, 32)
        fc2     (N, 2)            logits, labels ("X", "O")

    Returns:
        A fresh ``nn.Sequential`` in training mode.
    """
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 4, kernel_size=3)),
                ("relu1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(4, 8, kernel_size=3)),
                ("relu2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(8 * 6 * 6, 32)),
                ("relu3", nn.ReLU()),
                ("fc2", nn.Linear(32, 2)),
            ]
        )
    )


#: Channels of the VGG-style blocks of ``shapes_net`` and convolutions per block.
SHAPES_BLOCKS: tuple[tuple[int, int], ...] = ((16, 2), (32, 2), (64, 2), (64, 1))


def shapes_net(num_classes: int = 10, *, batch_norm: bool = False) -> nn.Sequential:
    """A small VGG-style RGB network for 64x64 images of shapes and textures.

    Named like torchvision's VGG layers are usually called in style-transfer
    code (``conv{block}_{index}``, ``relu{block}_{index}``, ``pool{block}``),
    3x3 convolutions with padding 1, ``nn.MaxPool2d`` between blocks (style
    transfer may swap them for average pooling), then a global-average-pool
    head. Input ``(N, 3, 64, 64)``::

        conv1_1 relu1_1 conv1_2 relu1_2   (N, 16, 64, 64)   pool1 (N, 16, 32, 32)
        conv2_1 relu2_1 conv2_2 relu2_2   (N, 32, 32, 32)   pool2 (N, 32, 16, 16)
        conv3_1 relu3_1 conv3_2 relu3_2   (N, 64, 16, 16)   pool3 (N, 64, 8, 8)
        conv4_1 relu4_1                   (N, 64, 8, 8)
        gap     (N, 64, 1, 1)             adaptive average pool
        flatten (N, 64)
        fc      (N, num_classes)          logits

    The shipped model is this plain network. It is *trained* with
    ``batch_norm=True`` (a ``bn{block}_{index}`` after each convolution, which
    makes the plain 7-convolution stack train several times faster), and the
    batch norms are then folded into the convolutions by
    :func:`fold_batch_norm`, which gives exactly the plain layout.

    Args:
        num_classes: Number of output units. Default 10.
        batch_norm: Insert ``nn.BatchNorm2d`` after each convolution (the
            convolutions then have no bias). Default False.

    Returns:
        A fresh ``nn.Sequential`` in training mode.
    """
    layers: list[tuple[str, nn.Module]] = []
    in_channels = 3
    for block, (channels, count) in enumerate(SHAPES_BLOCKS, start=1):
        for index in range(1, count + 1):
            conv = nn.Conv2d(in_channels, channels, 3, padding=1, bias=not batch_norm)
            layers.append((f"conv{block}_{index}", conv))
            if batch_norm:
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                layers.append((f"bn{block}_{index}", nn.BatchNorm2d(channels)))
            layers.append((f"relu{block}_{index}", nn.ReLU()))
            in_channels = channels
        if block < len(SHAPES_BLOCKS):
            layers.append((f"pool{block}", nn.MaxPool2d(2)))
    layers += [
        ("gap", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(in_channels, num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))


def shapes_net_bn() -> nn.Sequential:
    """``shapes_net(batch_norm=True)``: the network the ``shapes`` model trains."""
    return shapes_net(batch_norm=True)


@torch.no_grad()
def fold_batch_norm(model: nn.Sequential) -> nn.Sequential:
    """Fold every ``BatchNorm2d`` that directly follows a ``Conv2d`` into that convolution.

    Uses the batch norms' running statistics, so the result computes exactly
    what ``model.eval()`` computes (up to float rounding). Other children are
    kept as they are (shared, not copied), under the same names.

    Args:
        model: A ``nn.Sequential`` of named children.

    Returns:
        A new ``nn.Sequential`` in eval mode, without the folded batch norms.
    """
    children = list(model.named_children())
    kept: list[tuple[str, nn.Module]] = []
    skip = False
    for position, (name, module) in enumerate(children):
        if skip:
            skip = False
            continue
        following = children[position + 1][1] if position + 1 < len(children) else None
        if isinstance(module, nn.Conv2d) and isinstance(following, nn.BatchNorm2d):
            module = fuse_conv_bn_eval(module.eval(), following.eval())
            skip = True
        kept.append((name, module))
    return nn.Sequential(OrderedDict(kept)).eval()
