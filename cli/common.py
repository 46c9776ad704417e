"""What every ``probe`` command shares: error translation, common options, progress bars."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from PIL import Image

from probe.cli.types import SEED
from probe.errors import ProbeRuntimeError, ProbeUsageError
from probe.memory import is_out_of_memory
from probe.runtime import PRECISIONS

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
    "fail_if_diverged",
]

OOM_ADVICE = (
    "the GPU ran out of memory; reduce the work per pass (--batch, --size, --tile where the command has them), "
    "try --precision bf16, or run on --device cpu"
)
CPU_OOM_ADVICE = (
    "the computer ran out of memory; reduce the work per pass (--tile, --size, --batch, --steps where the "
    "command has them), or close other programs"
)
SHAPE_WORDS = (
    "kernel size can't be greater than actual input size",
    "output size is too small",
    "input image is smaller than kernel",
    "padding size should be less than",
    "expected more than 1 value per channel",
    "mat1 and mat2 shapes cannot be multiplied",
)
"""Substrings of torch's errors for an input size the model cannot take (too small, or not its fixed size)."""
DTYPE_WORDS = ("should be the same", "expected scalar type", "must have the same dtype", "found dtype")
"""Substrings of torch's errors for weights and inputs of different dtypes (a float16 module on the CPU)."""


def out_of_memory_advice(error: BaseException) -> str | None:
    """The one-line advice for an allocation failure (CUDA or CPU), or None if ``error`` is not one."""
    if not is_out_of_memory(error):
        return None
    text = str(error).lower()
    return OOM_ADVICE if "cuda" in text or "gpu" in text or "hip" in text else CPU_OOM_ADVICE


class ProbeCommand(click.Command):
    """A click command that turns cnn-probe errors into proper CLI errors.

    - :class:`~probe.errors.ProbeUsageError` -> exit code 2, naming the option at
      fault (``Invalid value for '--layer': unknown layer 'conv3'; ...``);
    - :class:`~probe.errors.ProbeRuntimeError` and out-of-memory (CUDA's, the
      CPU allocator's, ``MemoryError``) -> exit code 1 with the message and what to change;
    - torch's "input too small for the kernel" / wrong fixed size errors -> exit code 2 naming ``--size``;
    - weights and inputs of different dtypes (a float16 module on the CPU) -> exit code 1, one line;
    - torch's state_dict size mismatch -> exit code 2 naming ``--weights``;
    - file-system errors (``OSError``) -> one line: exit code 2 naming ``--out`` when they concern it, else 1;
    - Pillow's ``DecompressionBombError`` -> exit code 1, one line.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProbeUsageError as error:
            param = self._param(error.param.replace("-", "_")) if error.param else None
            if param is not None:
                raise click.BadParameter(str(error), ctx=ctx, param=param) from None
            raise click.UsageError(str(error), ctx=ctx) from None
        except ProbeRuntimeError as error:
            raise click.ClickException(str(error)) from None
        except (RuntimeError, MemoryError) as error:
            advice = out_of_memory_advice(error)
            if advice is not None:
                raise click.ClickException(advice) from None
            self._wrong_size(ctx, error)
            self._wrong_weights(ctx, error)
            if isinstance(error, RuntimeError) and any(words in str(error) for words in DTYPE_WORDS):
                raise click.ClickException(
                    f"the model's weights and the float32 images differ in dtype or device ({_first_line(error)}); "
                    "give a float32 model whose weights all live on one device (module.float(): a float16 module "
                    "cannot run on the CPU); for mixed precision use --precision bf16 where the command has it"
                ) from None
            raise
        except OSError as error:
            self._os_error(ctx, error)
        except Image.DecompressionBombError as error:
            raise click.ClickException(f"refusing an image that decodes to too many pixels: {error}") from None

    def _param(self, name: str) -> click.Parameter | None:
        return next((p for p in self.params if p.name == name), None)

    def _wrong_weights(self, ctx: click.Context, error: BaseException) -> None:
        """torch's "Error(s) in loading state_dict" (keys that fit, shapes that do not) -> a ``--weights`` error."""
        text = str(error)
        if "error(s) in loading state_dict" not in text.lower() or self._param("weights") is None:
            return
        problems = [line.strip() for line in text.splitlines()[1:] if line.strip()]
        shown = problems[0] if problems else _first_line(error)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise click.BadParameter(
            f"the weights do not fit the model: {shown}{more}; give a state_dict saved from this architecture",
            ctx=ctx,
            param=self._param("weights"),
        ) from None

    def _os_error(self, ctx: click.Context, error: OSError) -> None:
        """A file-system failure in one line: naming ``--out`` when it is about the output folder."""
        where = str(error.filename) if error.filename is not None else ""
        reason = error.strerror or type(error).__name__
        out = ctx.params.get("out")
        param = self._param("out")
        if out is not None and param is not None and where:
            target, failed = Path(out).absolute(), Path(where).absolute()
            if failed == target or target in failed.parents or failed in target.parents:
                raise click.BadParameter(f"cannot write {where!r}: {reason}", ctx=ctx, param=param) from None
        raise click.ClickException(f"{reason}: {where!r}" if where else f"{reason} ({error})") from None

    def _wrong_size(self, ctx: click.Context, error: BaseException) -> None:
        """Word torch's "input too small / wrong size" errors as a ``--size`` error (one line without --size)."""
        if not any(words in str(error).lower() for words in SHAPE_WORDS):
            return
        size = ctx.params.get("size")
        param = self._param("size")
        if param is not None and size not in (None, "auto", "full"):
            raise click.BadParameter(
                f"the model cannot run on a {size} input ({_first_line(error)}): too small for its convolutions "
                "and pools, or not the size its linear layers were built for; leave --size out for the model's own",
                ctx=ctx,
                param=param,
            ) from None
        hint = "give the input size it was built for with --size" if param is not None else "use another image size"
        raise click.ClickException(f"the model cannot run on this input size ({_first_line(error)}); {hint}") from None


def _first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
        "--seed", default=0, show_default=True, type=SEED, help="Random seed: same seed, same result on the same device."
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
            type=click.Choice(list(precisions)),
            default="fp32",
            show_default=True,
            help="Autocast the forward passes to 16 bits: worth it on recent GPUs, slow on most CPUs; "
            "losses and reported scores stay fp32.",
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


def fail_if_diverged(folder: Path, reason: str | None, knob: str = "--lr") -> None:
    """Exit with code 1 when the run diverged (``reason``), after its gallery was written and announced.

    A diverged optimization is not a success: scripts see exit code 1, the user one line saying so;
    the gallery is kept for inspection and its manifest.json says ``"diverged": "<reason>"``.
    """
    if reason is not None:
        raise click.ClickException(
            f"the optimization diverged: {reason}; lower {knob}. The gallery in {folder} is kept for inspection, "
            'marked "diverged" in its manifest.json'
        )


def parse_weights(value: str) -> str | None:
    """CLI ``--weights`` text -> :func:`probe.load_model`'s argument."""
    return None if value.lower() in ("none", "random") else value


def shared(function: F) -> F:
    """Decorate with ``--device`` and ``--seed``: the options every command has."""
    return functools.reduce(lambda f, d: d(f), (seed_option, device_option), function)
