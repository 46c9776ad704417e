"""What every ``probe`` command shares: error translation, common options, progress bars."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.runtime import OUT_OF_MEMORY, PRECISIONS

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "ProbeCommand",
    "model_options",
    "device_option",
    "seed_option",
    "speed_options",
    "out_options",
    "progress_bar",
    "echo_done",
]

OOM_ADVICE = f"the GPU ran out of memory; {OUT_OF_MEMORY}"


class ProbeCommand(click.Command):
    """A click command that turns cnn-probe errors into proper CLI errors.

    - :class:`~probe.errors.ProbeUsageError` -> exit code 2, naming the option at
      fault (``Invalid value for '--layer': unknown layer 'conv3'; ...``);
    - :class:`~probe.errors.ProbeRuntimeError` and CUDA out-of-memory -> exit
      code 1 with the message and what to change.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProbeUsageError as error:
            param = next((p for p in self.params if error.param and p.name == error.param.replace("-", "_")), None)
            if param is not None:
                raise click.BadParameter(str(error), ctx=ctx, param=param) from None
            raise click.UsageError(str(error), ctx=ctx) from None
        except ProbeRuntimeError as error:
            raise click.ClickException(str(error)) from None
        except RuntimeError as error:
            if "out of memory" in str(error).lower():
                raise click.ClickException(OOM_ADVICE) from None
            raise


def model_options(default: str | None = "digits", help_extra: str = "") -> Callable[[F], F]:
    """``--model`` and ``--weights``."""

    def decorate(function: F) -> F:
        function = click.option(
            "--weights",
            default="default",
            show_default=True,
            metavar="default|none|PATH",
            help="Weights: 'default' (zoo: shipped; torchvision: pretrained, downloaded once), "
            "'none' (random init), or a state_dict file (loaded with weights_only=True).",
        )(function)
        return click.option(
            "--model",
            "model",
            default=default,
            show_default=default is not None,
            required=default is None,
            metavar="NAME",
            help="Zoo model (digits, lenet5, xo, shapes), torchvision name (vgg16, googlenet, resnet50, ...), "
            "TorchScript file, or package.module:factory." + help_extra,
        )(function)

    return decorate


def device_option(function: F) -> F:
    """``--device auto|cpu|cuda|cuda:N``."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        metavar="auto|cpu|cuda[:N]",
        help="Where to run; auto takes CUDA when there is one.",
    )(function)


def seed_option(function: F) -> F:
    """``--seed``: every random choice goes through it."""
    return click.option(
        "--seed", default=0, show_default=True, type=int, help="Random seed: same seed, same result on the same device."
    )(function)


def speed_options(precisions: Sequence[str] = PRECISIONS) -> Callable[[F], F]:
    """``--precision`` (one of ``precisions``) and ``--channels-last``: how the forward passes run."""

    def decorate(function: F) -> F:
        function = click.option(
            "--channels-last",
            is_flag=True,
            help="Run the convolutions channels-last, the format GPUs want with --precision bf16. On a 2-core "
            "CPU: 1.3x faster googlenet galleries and dreams, 5% slower VGG19 style (benchmarks/README.md). "
            "Costs one copy of the conv weights.",
        )(function)
        return click.option(
            "--precision",
            type=click.Choice(list(dict.fromkeys([*precisions, "auto"]))),
            default="auto",
            show_default=True,
            help="Autocast the forward passes to 16 bits: worth it on recent GPUs, slow on most CPUs; "
            "losses and reported scores stay fp32. auto: bf16 with channels-last on CUDA, fp32 on the CPU.",
        )(function)

    return decorate


def out_options(function: F) -> F:
    """``--out DIR`` and ``--force``."""
    function = click.option(
        "--force", is_flag=True, help="Replace the gallery already in --out (a folder without one is never deleted)."
    )(function)
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Output folder. Default: runs/<command>-<what>, with -2, -3... appended rather than overwriting.",
    )(function)


def progress_bar(total: int, description: str, **kwargs: Any) -> Any:
    """A tqdm progress bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", None)  # tqdm: None hides the bar when stderr is not a terminal (logs, pipes)
    return tqdm(total=total, desc=description, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


def echo_done(folder: Path, summary: str) -> None:
    """Tell the user where the gallery is."""
    click.echo(summary)
    click.echo(f"gallery: {folder / 'index.html'}")


def parse_weights(value: str) -> str | None:
    """CLI ``--weights`` text -> :func:`probe.load_model`'s argument."""
    return None if value.lower() in ("none", "random") else value


def shared(function: F) -> F:
    """Decorate with ``--device`` and ``--seed``: the options every command has."""
    return functools.reduce(lambda f, d: d(f), (seed_option, device_option), function)
