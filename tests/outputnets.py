"""Tiny models whose output is not one ``(N, K)`` tensor of logits (factory specs ``outputnets:head``, ...)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = {"regression": 1, "score": 1, "sigmoid": 3, "binary": 1, "embedding": 8, "two-heads": 3, "heads-dict": 3,
          "list": 3, "nan": 3, "inf": 3, "fp16": 3, "bf16": 3, "maps": 3, "detections": 3, "depth": 3, "tokens": 3,
          "softmax": 3}
"""Each kind of :class:`Head` -> the width of its last linear layer."""


class Head(nn.Module):
    """conv(4) relu pool(2x2) flatten fc: any input size; ``kind`` says what forward returns:

    ``regression`` ``(N, 1)``; ``score`` ``(N,)``; ``sigmoid`` ``(N, 3)`` and ``binary`` ``(N,)`` after a
    sigmoid, as fp16 too with ``half``; ``softmax`` ``(N, 3)``; ``embedding`` ``(N, 8)`` L2-normalized;
    ``two-heads`` a tuple ``((N, 3), (N, 2))``; ``heads-dict`` ``{"species": (N, 3), "age": (N, 2)}``; ``list``
    a list of both heads; ``nan`` / ``inf`` non-finite logits; ``fp16`` / ``bf16`` logits in that dtype;
    ``maps`` an OrderedDict of conv maps ``{"0": (N, 4, H, W), "1": (N, 4, H/2, W/2)}`` like torchvision's
    FPN; ``detections`` a list of per-image dicts of boxes like torchvision's detectors in eval mode;
    ``depth`` ``{"predicted_depth": (N, H, W)}``; ``tokens`` ``(N, H*W, 4)``.
    """

    def __init__(self, kind: str = "regression", half: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.kind, self.half = kind, half
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, WIDTHS[kind])
        self.fc2 = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> Any:
        maps = torch.relu(self.conv(x))
        features = self.pool(maps).flatten(1)
        y, kind = self.fc(features), self.kind
        if kind in ("sigmoid", "binary"):
            y = torch.sigmoid(y)
            y = y[:, 0] if kind == "binary" else y
            return y.half() if self.half else y
        outputs: dict[str, Any] = {
            "regression": lambda: y, "score": lambda: y[:, 0], "softmax": lambda: y.softmax(1),
            "embedding": lambda: F.normalize(y, dim=1), "two-heads": lambda: (y, self.fc2(features)),
            "heads-dict": lambda: {"species": y, "age": self.fc2(features)}, "list": lambda: [y, self.fc2(features)],
            "nan": lambda: y * float("nan"), "inf": lambda: y + float("inf"), "fp16": lambda: y.half(),
            "bf16": lambda: y.bfloat16(), "maps": lambda: OrderedDict([("0", maps), ("1", F.max_pool2d(maps, 2))]),
            "detections": lambda: [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                                    "scores": torch.zeros(0)} for _ in range(x.shape[0])],
            "depth": lambda: {"predicted_depth": maps.mean(1)}, "tokens": lambda: maps.flatten(2).transpose(1, 2),
        }
        return outputs[kind]()


def head(kind: str = "regression", half: bool = False) -> Head:
    """A :class:`Head` in eval mode (the factory spec ``outputnets:head``, ``--model-arg kind=sigmoid``)."""
    return Head(kind, half).eval()
