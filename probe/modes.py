"""A user's model run in eval mode for a block, every module's own ``training`` flag restored after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["evaluating"]


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block, then restore every module's own flag.

    Used by every function that runs a user's model, so that dropout and
    batch-norm behave as at inference without leaving the model changed.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training
