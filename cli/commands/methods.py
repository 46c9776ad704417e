"""The newer methods' options of ``probe maximize``: MACO, Lucent strings, caricature, accentuation, redirected ReLU.

Free of torch, like every command's declaration; kept apart from :mod:`probe.cli.commands.maximize` so that
command stays a list of its own options. What they do is :mod:`probe.cli.methods`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from probe.choices import PARAMETRIZATIONS
from probe.cli.types import count, finite

__all__ = ["method_options"]

F = TypeVar("F", bound=Callable[..., Any])


def method_options(function: F) -> F:
    """Decorate ``probe maximize`` with ``--target``, ``--param``, ``--spectrum``, ``--from``, ``--accentuate``,
    ``--caricature`` and ``--redirect-relu``."""
    options = [
        click.option("--target", default=None, metavar="LAYER:UNITS",
                     help="Lucent-style shorthand for --layer/--units/--objective: conv2:7 is channel 7 of conv2, "
                          "fc1:3 neuron 3 of a linear layer, conv2:0-9 ten channels (default: none; --layer and "
                          "--units say it)."),
        click.option("--param", "param", type=click.Choice(PARAMETRIZATIONS), default=None,
                     help="Parametrization (default: the preset's). maco: Fourier phase only, the magnitude a "
                          "natural-image spectrum (Fel et al. 2023); writes transparency maps too."),
        click.option("--spectrum", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                     metavar="DIR", help="With --param maco: compute (and cache) the spectrum from this folder "
                                         "of images (default: scikit-image's bundled photos)."),
        click.option("--from", "seed_image", default=None, metavar="IMAGE",
                     help="Start from this image (a file, skimage:NAME, shapes:circle) instead of noise (the "
                          "default): --from shapes:circle."),
        click.option("--accentuate", type=finite(min=0), default=None, metavar="W",
                     help="Feature accentuation (Hamblin et al. 2024), with --from: subtract W x the L2 distance "
                          "to the image, so the result stays near it (default: none): "
                          "--from shapes:circle --accentuate 2."),
        click.option("--caricature", default=None, metavar="IMAGE",
                     help="Lucid's caricature: amplify what --layer sees in IMAGE (replaces --objective/--units; "
                          "default: none): --layer conv2 --caricature digits:3."),
        click.option("--redirect-relu", type=count(0), default=0, show_default=True, metavar="N",
                     help="Redirected ReLU gradient for the first N steps: units dead on the start image move."),
    ]
    for option in reversed(options):
        function = option(function)
    return function
