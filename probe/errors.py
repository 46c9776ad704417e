"""The errors cnn-probe raises, and the one helper that words "unknown name" errors.

Two families, so that callers (the CLI above all) can tell a mistake in the
request from a failure while doing the work:

- :class:`ProbeUsageError` (a ``ValueError``): the request names something that
  does not exist or is out of range: a layer, a unit, a model, a file. The CLI
  turns it into exit code 2 with the message, like any usage error.
- :class:`ProbeRuntimeError` (a ``RuntimeError``): the request was valid but the
  work failed: the optimization produced NaN, the GPU ran out of memory. The
  message says what to change.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["ProbeError", "ProbeUsageError", "ProbeRuntimeError", "unknown_name", "closest", "check_depends_on_image",
           "output_not_a_tensor", "OUTPUT_USES", "not_per_image"]


class ProbeError(Exception):
    """Base class of every error cnn-probe raises on purpose."""


class ProbeUsageError(ProbeError, ValueError):
    """The request names something invalid (layer, unit, model, file, option value).

    Args:
        message: what is wrong and what would have been valid.
        param: the name of the argument at fault (``"layer"``, ``"units"``, ...),
            so that the CLI can name its option (``--layer``). Optional.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ProbeRuntimeError(ProbeError, RuntimeError):
    """A valid request failed while running (NaN/inf, out of memory, ...)."""


def closest(name: str, valid: Iterable[str]) -> str | None:
    """Return the valid name most similar to ``name``, or None if none is close."""
    matches = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name(
    kind: str, name: str, valid: Iterable[str], *, param: str | None = None, limit: int = 40
) -> ProbeUsageError:
    """Build the error for an unknown ``kind`` (``"layer"``, ``"model"``, ...).

    The message lists the valid names (the first ``limit`` of them) and suggests
    the closest one; ``param`` names the argument at fault (see
    :class:`ProbeUsageError`). E.g.::

        unknown layer 'conv3'; layers are: conv1, pool1, conv2, pool2, fc1, fc2
        (did you mean 'conv2'?)
    """
    valid = list(valid)
    shown = ", ".join(valid[:limit])
    if len(valid) > limit:
        shown += f", ... ({len(valid) - limit} more)"
    message = f"unknown {kind} {name!r}; {kind}s are: {shown or '(none)'}"
    suggestion = closest(name, valid)
    if suggestion is not None:
        message += f" (did you mean {suggestion!r}?)"
    return ProbeUsageError(message, param=param)


def check_depends_on_image(score: Any, layers: Iterable[str], *, param: str = "layer") -> None:
    """Raise one line when ``score`` (a tensor about to be differentiated) does not depend on the image.

    No gradient reaches a layer from the image when its output is computed
    from the weights alone (Swin's ``relative_position_bias``, a position
    embedding, a buffer), or when the model's own forward cuts the graph
    before it (a ``torch.no_grad()`` block, a ``.detach()``, a round trip
    through NumPy); torch's own error ("element 0 of tensors does not require
    grad") names neither the layer nor the cause.

    Raises:
        ProbeUsageError: (naming ``param``, default ``"layer"``) ``score`` does not require grad.
    """
    if not getattr(score, "requires_grad", True):
        names = [name for name in layers if name != "output"]
        what = f"the output of {', '.join(names)}" if names else "the model's output"
        raise ProbeUsageError(
            f"{what} does not depend on the input image through autograd, so no image can change it: the model's "
            "forward cuts the gradient before it (torch.no_grad(), .detach(), NumPy, or a reentrant "
            "torch.utils.checkpoint, which runs its layers without a graph) or computes it from the weights "
            "alone (a position bias or embedding); choose a layer the image's gradient flows through, or remove "
            "the no_grad/detach from the model's forward",
            param=param,
        )


OUTPUT_USES = {
    "objective": ("no class score or output unit can be read from it", "maximize a layer instead (--layer, a channel "
                  "objective)"),
    "layer": ("it cannot be dreamed on, nor maximized as a layer", "name one of its layers instead (--layer; 'probe layers MODEL' "
              "lists them)"),
}
"""What each option that can name the output (``param``) cannot do with it, and what to ask for instead."""


def not_per_image(layer: str, shape: tuple[int, ...], images: int, needs: str, *, then: str = "") -> ProbeUsageError:
    """The one error for a layer whose dim 0 is not the image batch, so that none of its values belongs to one image.

    Args:
        layer: the layer, as named.
        shape: its output's shape for ``images`` images.
        images: the images of the pass that measured it.
        needs: what asked for the layer (``"a unit"``, ``"Grad-CAM"``, ``"a dream"``).
        then: what to choose instead, appended (``"; layers with spatial output: ..."``); default: nothing.
    """
    if len(shape) >= 2 and shape[1] == images and shape[0] != images:
        why = ("a time-major sequence whose dim 1 is the batch ((T, N, C): an nn.LSTM or GRU without batch_first, an "
               "OCR CRNN's per-step scores)")
    else:
        why = ("tokens of several patches or windows folded into the batch (TNT's pixel tokens, a window attention's "
               "windows) or a table computed from the weights (a position bias)")
    return ProbeUsageError(f"{needs} needs a layer whose dim 0 is the image batch; {layer!r} gives {tuple(shape)} for "
                           f"{images} image(s): {why}; choose another layer{then}", param="layer")


def output_not_a_tensor(model: str, *, param: str = "objective") -> ProbeUsageError:
    """The one error for a request on the model's output when no tensor of it is known to be the prediction.

    The output is read as :func:`probe.hooks.output_of` reads it: a tensor, a dict's (or ``ModelOutput``'s)
    ``logits`` or ``out`` or only tensor, a tuple's first tensor. A dict of several maps (torchvision's FPN
    backbone), a detector's per-image dicts or a transformers base model's features give none.

    Args:
        model: the model's name, as the message starts with it (``"resnet50"``, ``"path/net.py:build"``).
        param: the argument that named the output, so the CLI names its option: ``"objective"`` (a class
            objective, a neuron of ``output``; the default) or ``"layer"`` (``--layer output``, a dream on the
            output). One wording for every caller; only what was refused and what to do instead follow
            ``param`` (:data:`OUTPUT_USES`).
    """
    refused, instead = OUTPUT_USES[param]
    return ProbeUsageError(
        f"{model}'s output holds no tensor known to be its prediction (a dict of several maps, detections, or a "
        f"base model's features), so {refused}: wrap the model so that its forward returns (N, classes) logits, a "
        f"dict with 'logits' or 'out', or a tuple that starts with them, or {instead}",
        param=param,
    )
