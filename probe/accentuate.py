"""Feature accentuation (Hamblin et al. 2024): what in this photo would this unit want more of?

Start the optimization from a real image instead of noise, push a unit, and
subtract ``weight`` times the L2 distance to the seed image
(:func:`probe.objectives.l2_distance`) so the result stays near it::

    import probe
    m = probe.load_model("shapes")
    photo = probe.load_image("shapes:circle", channels=3, size=(64, 64))
    result = probe.accentuate(m, photo, "conv3_1:5", weight=2.0, steps=64)

The parametrization starts exactly at the image (``init`` of
:func:`probe.param.fft_image` / :func:`probe.param.pixel_image`); MACO's fixed
magnitude cannot reproduce an arbitrary image, so it is refused here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from probe import objectives as O
from probe import param as P
from probe.errors import ProbeUsageError
from probe.images import load_image

__all__ = ["accentuate", "accentuation", "ACCENTUABLE"]

ACCENTUABLE = ("fft", "pixel")
"""Parametrizations that can start exactly from an image."""


def accentuation(
    objective: O.Objective,
    image: torch.Tensor,
    weight: float,
    *,
    param: str = "fft",
    param_options: dict[str, Any] | None = None,
) -> tuple[O.Objective, Callable[..., P.ImageParam]]:
    """The objective and parametrization of a feature accentuation (what :func:`accentuate` and the CLI run).

    Args:
        objective: the unit(s) to push.
        image: ``(C, H, W)`` in ``[0, 1]``, already at the render size and the model's channels.
        weight: the L2 term's weight (>= 0; 0 only starts from the image).
        param: ``"fft"`` (default) or ``"pixel"``.
        param_options: more options of that parametrization (e.g. ``{"squash": "clip"}``).

    Returns:
        ``(objective - weight * l2_distance(image), factory)`` for :func:`probe.maximize`.

    Raises:
        ProbeUsageError: a negative weight, or a parametrization that cannot start from an image.
    """
    if weight < 0:
        raise ProbeUsageError(f"the accentuation weight must be >= 0; got {weight}", param="accentuate")
    if param not in ACCENTUABLE:
        raise ProbeUsageError(f"feature accentuation starts from the image, which the {param!r} parametrization "
                              f"cannot reproduce; use one of: {', '.join(ACCENTUABLE)}", param="param")
    seed = image.detach().float()
    factory = P.parametrization(param, init=seed, **(param_options or {}))
    factory.__name__ = f"{param} from image"
    target = objective - weight * O.l2_distance(seed) if weight > 0 else objective
    return target, factory


def accentuate(
    model: Any,
    image: Any,
    objective: O.Objective | str,
    *,
    weight: float = 1.0,
    param: str = "fft",
    image_size: int | tuple[int, int] | None = None,
    **options: Any,
) -> Any:
    """Accentuate in ``image`` what ``objective`` responds to, staying near the image.

    Args:
        model: a :class:`~probe.models.LoadedModel` or ``nn.Module``.
        image: anything :func:`probe.load_image` reads (a path, ``skimage:NAME``,
            ``shapes:circle``, a ``(C, H, W)`` tensor in ``[0, 1]``); converted to
            the model's channels and resized to ``image_size`` (default: the model's input size).
        objective: an :class:`~probe.objectives.Objective` or ``"LAYER:UNITS"``.
        weight: the weight of the L2 distance to the image (default 1.0).
        param: ``"fft"`` (default) or ``"pixel"``.
        image_size: ``H`` or ``(H, W)``.
        **options: passed to :func:`probe.maximize` (``steps``, ``lr``, ``seed``, ``transforms``, ...).

    Returns:
        A :class:`~probe.optimize.MaximizeResult` (its ``terms`` hold the objective and ``l2_distance``).
    """
    from probe.models import as_loaded
    from probe.optimize import _image_size, maximize

    loaded = as_loaded(model, None)
    height, width = _image_size(image_size, loaded)
    seed = load_image(image, channels=loaded.preprocess.channels, size=(height, width))
    if isinstance(objective, str):
        objective = O.parse_objective(objective, loaded, image_size=(height, width))
    target, factory = accentuation(objective, seed, weight, param=param)
    return maximize(loaded, target, param=factory, image_size=(height, width), **options)
