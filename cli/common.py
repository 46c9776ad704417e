"""What every ``probe`` command shares: error translation, common options, progress bars, running the work.

Light on purpose: it imports click, the standard library and cnn-probe's torch-free modules only, because the
commands' declarations (:mod:`probe.cli.commands`) import it and ``probe COMMAND --help`` must answer at once.
What needs torch, Pillow or the gallery writer is imported where it is used, once the command runs.
"""

from __future__ import annotations

import errno
import functools
import importlib
import json
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from probe.checks import parse_size
from probe.choices import OUTPUT_READINGS, PRECISIONS
from probe.cli.entry import check_started
from probe.cli.interrupt import INTERRUPTED, INTERRUPTED_HEAD, Interrupted
from probe.cli.types import SEED, OutFolder, count, refuse_blank
from probe.errors import ProbeRuntimeError, ProbeUsageError

if TYPE_CHECKING:
    from probe.models import LoadedModel

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "ProbeCommand",
    "model_options",
    "load_model_from_options",
    "device_option",
    "seed_option",
    "speed_options",
    "out_options",
    "progress_bar",
    "echo_done",
    "fail_if_diverged",
    "note",
    "note_tiny_size",
    "list_option",
    "split_list",
    "snapshots_option",
    "gallery_command",
    "invocation",
    "complete_model",
    "complete_layer",
    "option_given",
    "work",
]

WORK_OPTIONS = ("tile", "size", "batch", "chunk", "steps", "per_unit", "examples", "samples", "scales")
"""The options that set the work per pass, most effective first: what the CPU's out-of-memory advice names."""
HUGE_COUNT = 2**16
"""A count given at least this large is named first in the out-of-memory advice (``--in-channels 2147483647``)."""
SHAPE_WORDS = (
    "kernel size can't be greater than actual input size",
    "output size is too small",
    "input image is smaller than kernel",
    "padding size should be less than",
    "expected more than 1 value per channel",
    "mat1 and mat2 shapes cannot be multiplied",
    "doesn't match model",  # a fixed-size ViT: timm's AssertionError, transformers' ValueError
)
"""Substrings of torch's errors for an input size the model cannot take (too small, or not its fixed size)."""
DISK_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})
"""``OSError`` codes that say the disk is full, read-only or failing, or a file outgrew ``ulimit -f``: exit 1, whatever
file they concern."""


def _torch_side(module: str) -> ModuleType | None:
    """cnn-probe's ``module``, which imports torch, where this process has imported torch already; else None.

    For recognising torch's errors after a command failed: an error torch raised (an allocation failure, a
    dtype mismatch, a model's refusal of its input) cannot have happened without it, so a command that never
    needed torch (``probe gallery``) does not import it (seconds) to learn that its error is none of those.
    """
    return importlib.import_module(module) if "torch" in sys.modules else None


def work(module: str, /, *args: Any, **options: Any) -> Any:
    """Run a command's work, ``probe.cli.<module>.run(*args, **options)``, with the options click parsed (any
    names: ``probe train`` has a ``name``).

    A command's declaration (:mod:`probe.cli.commands`) imports no torch, so that ``--help`` and click's own
    usage errors answer at once; its work module, which imports torch and the rest of cnn-probe (seconds), is
    imported here, once the command line was read. A Ctrl-C during that import exits 130 with the one line, as
    one while the group was starting, also when a library's import swallowed the ``KeyboardInterrupt``
    (:func:`~probe.cli.entry.check_started`).
    """
    try:
        imported = importlib.import_module(f"probe.cli.{module}")
        check_started()
    except KeyboardInterrupt:
        raise Interrupted(INTERRUPTED) from None
    return imported.run(*args, **options)


def out_of_memory_advice(error: BaseException, command: click.Command | None = None,
                         ctx: click.Context | None = None) -> str | None:
    """The one-line advice for an allocation failure (CUDA or CPU), or None if ``error`` is not one.

    On the CPU it names what to lower: the counts given huge first (``--in-channels 2147483647``), then
    ``command``'s own :data:`WORK_OPTIONS` (a command without ``--tile`` is not told to use it).
    """
    memory = _torch_side("probe.memory")
    if not (isinstance(error, MemoryError) or memory is not None and memory.is_out_of_memory(error)):
        return None
    text = str(error).lower()
    if "cuda" in text or "gpu" in text or "hip" in text:
        from probe.runtime import OUT_OF_MEMORY

        return f"the GPU ran out of memory; {OUT_OF_MEMORY}"
    params = list(command.params) if command is not None else []
    values = ctx.params if ctx is not None else {}
    huge = [p for p in params if isinstance(p, click.Option) and ctx is not None and isinstance(p.type, click.IntRange)
            and _given(ctx, p) and isinstance(values.get(p.name), int) and values[p.name] >= HUGE_COUNT
            and p.name != "seed"]
    levers = [p.opts[0] for name in WORK_OPTIONS for p in params
              if p.name == name and isinstance(p, click.Option) and p not in huge]
    advice = [f"lower {', '.join(f'{p.opts[0]} {values[p.name]}' for p in huge)}"] if huge else []
    if levers:
        advice.append(f"reduce the work per pass ({', '.join(levers)})")
    return f"the computer ran out of memory; {', or '.join([*advice, 'close other programs'])}"


class _RecordsInvocation(click.Command):
    """Remembers the command line that made the context (see :func:`invocation`)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        words = list(args)  # parsing consumes the list: copy it first
        ctx = super().make_context(info_name, args, parent=parent, **extra)
        path = ctx.command_path.split()[1:] if parent is not None else [info_name or self.name or ""]
        ctx.meta[INVOCATION_KEY] = shlex.join(["probe", *path, *words])
        return ctx


INVOCATION_KEY = "probe.invocation"


class ProbeCommand(_RecordsInvocation):
    """A click command that turns cnn-probe errors into proper CLI errors.

    - Ctrl-C (``KeyboardInterrupt``) -> exit code 130 with one line, ``interrupted`` (the command's own
      words, default :data:`INTERRUPTED`); the gallery being made was already removed on the way out;

    - :class:`~probe.errors.ProbeUsageError` -> exit code 2, naming the option at
      fault (``Invalid value for '--layer': unknown layer 'conv3'; ...``);
    - :class:`~probe.errors.ProbeRuntimeError` and out-of-memory (CUDA's, the
      CPU allocator's, ``MemoryError``) -> exit code 1 with the message and what to change;
    - the model's refusal of its input (:class:`~probe.forward.ModelInputError`, whatever it raised) -> exit
      code 2 naming ``--size`` (``--input-size`` where the command has no ``--size``); torch's "input too small
      for the kernel" / wrong fixed size errors raised elsewhere -> the same;
    - weights and inputs of different dtypes (a float16 module on the CPU) -> exit code 1, one line;
    - autograd's errors for a graph the image does not reach (a ``torch.no_grad()`` or ``.detach()`` in the
      model's forward, met by a command that differentiates without checking first) -> exit code 1, one line;
    - torch's state_dict size mismatch -> exit code 2 naming ``--weights``;
    - file-system errors (``OSError``) -> one line: a full, read-only or failing disk exit code 1; others exit
      code 2 naming ``--out`` when they concern it, else 1;
    - Pillow's ``DecompressionBombError`` -> exit code 1, one line.
    """

    def __init__(self, *args: Any, interrupted: str = INTERRUPTED, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interrupted = interrupted

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Refuse an empty value of any option or argument (:func:`~probe.cli.types.refuse_blank`), then parse.

        Checked on the words as typed, before click converts them: a path type has already made ``""`` the
        current folder.
        """
        if not ctx.resilient_parsing:  # shell completion parses half-typed lines
            try:
                typed, _, _ = self.make_parser(ctx).parse_args(args=list(args))
            except click.UsageError:
                typed = {}  # click's own parse below reports it
            for param in self.get_params(ctx):
                value = typed.get(param.name)
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    refuse_blank(item, param, ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            written = ctx.meta.get(WRITTEN_KEY)
            if written:  # Ctrl-C after the save (the final lines, --json): the gallery is there
                raise Interrupted(f"{INTERRUPTED_HEAD}; the finished gallery is kept: {written[-1]}") from None
            raise Interrupted(self.interrupted) from None
        except ProbeUsageError as error:
            param = self._named(ctx, error.param.replace("-", "_")) if error.param else None
            forward = _torch_side("probe.forward")
            if forward is not None and isinstance(error, forward.ModelInputError) and error.param == "size":
                param = self._size_param(ctx)
            if param is not None:
                raise click.BadParameter(str(error), ctx=ctx, param=param) from None
            raise click.UsageError(str(error), ctx=ctx) from None
        except ProbeRuntimeError as error:
            raise click.ClickException(str(error)) from None
        except (RuntimeError, MemoryError, AssertionError, ValueError) as error:  # the last two: a model's own checks
            advice = out_of_memory_advice(error, self, ctx)
            if advice is not None:
                raise click.ClickException(advice) from None
            self._wrong_size(ctx, error)
            self._wrong_weights(ctx, error)
            forward = _torch_side("probe.forward")
            if forward is None or not isinstance(error, RuntimeError):
                raise
            if any(words in str(error).lower() for words in forward.DTYPE_WORDS):
                raise click.ClickException(
                    f"the model's weights and the float32 images differ in dtype or device ({_first_line(error)}); "
                    "give a float32 model whose weights all live on one device (module.float(): a float16 module "
                    "cannot run on the CPU); for mixed precision use --precision bf16 where the command has it"
                ) from None
            if any(words in str(error) for words in forward.GRADIENT_WORDS):
                raise click.ClickException(
                    f"no gradient reaches the image through the model ({_first_line(error)}): its forward cuts the "
                    "graph (torch.no_grad(), .detach(), NumPy) before what this command differentiates; remove that "
                    "from the model's forward, or choose a layer before it"
                ) from None
            raise
        except OSError as error:
            self._os_error(ctx, error)
        except Exception as error:
            pillow = sys.modules.get("PIL.Image")  # Pillow's error: only where Pillow was imported
            if pillow is not None and isinstance(error, pillow.DecompressionBombError):
                raise click.ClickException(f"refusing an image that decodes to too many pixels: {error}") from None
            raise

    def _named(self, ctx: click.Context, name: str) -> click.Parameter | None:
        """The option a usage error about ``name`` should name: ``name``'s own, unless the user left it out and
        named the layer another way (:data:`NAMED_BY`: ``--target output:0``, or ``--objective class``, whose
        layer is the output): then the option they did give."""
        param = self._param(name)
        if param is not None and not _given(ctx, param):
            for other_name, value in NAMED_BY.get(name, ()):
                other = self._param(other_name)
                if other is not None and _given(ctx, other) and value in (None, ctx.params.get(other_name)):
                    return other
        return param

    def _param(self, name: str) -> click.Parameter | None:
        """The command's option ``name``, or its plural (a layer's error names ``layer``; atlas has ``--layers``)."""
        return next((p for p in self.params if p.name == name), None) or next(
            (p for p in self.params if p.name == f"{name}s"), None)

    def _size_param(self, ctx: click.Context) -> click.Parameter | None:
        """The option that set the input size the model refused: ``--size`` when given (or the only one), else
        ``--input-size`` (the model's own size, and the default of ``--size``; atlas has only it)."""
        size, input_size = self._param("size"), self._param("input_size")
        if size is not None and (input_size is None or _given(ctx, size) or not _given(ctx, input_size)):
            return size
        return input_size

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
        if isinstance(error, BrokenPipeError):  # `probe layers vgg16 | head`: the reader left; click exits quietly
            raise error
        if error.errno in DISK_FAILURES:  # the disk's state, not the option's value: a runtime failure
            from probe.gallery.outdir import disk_advice

            advice = disk_advice(error.errno, "choose another --out" if param is not None else "give another folder")
            raise click.ClickException(f"cannot write {where or 'the output'!r}: {reason}; what was finished before is "
                                       f"kept; {advice}") from None
        if out is not None and param is not None and where:
            target, failed = Path(out).absolute(), Path(where).absolute()
            if failed == target or target in failed.parents or failed in target.parents:
                raise click.BadParameter(f"cannot write {where!r}: {reason}", ctx=ctx, param=param) from None
        raise click.ClickException(f"{reason}: {where!r}" if where else f"{reason} ({error})") from None

    def _wrong_size(self, ctx: click.Context, error: BaseException) -> None:
        """Word torch's "input too small / wrong size" errors as a ``--size`` error (one line without --size)."""
        if not any(words in str(error).lower() for words in SHAPE_WORDS):
            return
        param = self._size_param(ctx)
        size = ctx.params.get(param.name or "") if param is not None else None
        if param is not None and size not in (None, "auto", "full"):
            own = "leave --size out for the model's own" if param.name == "size" else "give the size it was trained at"
            raise click.BadParameter(
                f"the model cannot run on a {_size_text(size)} input ({_first_line(error)}): too small for its "
                f"convolutions and pools, or not the size its linear layers were built for; {own}",
                ctx=ctx,
                param=param,
            ) from None
        hint = "give the input size it was built for with --size" if self._param("size") else "use another image size"
        raise click.ClickException(f"the model cannot run on this input size ({_first_line(error)}); {hint}") from None


NAMED_BY: dict[str, tuple[tuple[str, Any], ...]] = {"layer": (("target", None), ("objective", "class"))}
"""The other options that name what an error's ``param`` names, most specific first, each with the value that
makes it name it (None: any): maximize's layer comes from ``--layer``, from ``--target LAYER:UNITS``, or is the
output for ``--objective class``."""


def _given(ctx: click.Context, param: click.Parameter) -> bool:
    """Whether ``param`` was set by the user (command line or environment), not left at its default."""
    return option_given(param.name or "", ctx)


def option_given(name: str, ctx: click.Context | None = None) -> bool:
    """Whether the option called ``name`` (``"units"``) was given by the user, not left at its default; False
    outside a command. For refusing an option that another one makes meaningless, rather than ignoring it."""
    ctx = ctx or click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source is not None and source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def _size_text(size: Any) -> str:
    """A size option's value as the user wrote it: ``32``, ``32x48`` (a parsed ``(32, 48)`` too)."""
    return "x".join(map(str, size)) if isinstance(size, (tuple, list)) else str(size)


def _first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


MODEL_HELP = (
    "Zoo model (digits, lenet5, xo, shapes), torchvision name (vgg16, resnet50, ...), timm:NAME, hf:NAME_OR_DIR, "
    "an .onnx or TorchScript file, path/to/file.py:factory or package.module:factory (from the current folder); "
    "arguments allowed: 'factory(num_classes=10)'."
)
_PREPROCESS_KEYS = ("mean", "std", "input_size", "in_channels", "model_arg")
_META_KEY = "probe.model_options"


def _floats(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(part) for part in value.replace(" ", "").split(",") if part)
    except ValueError:
        raise click.BadParameter(f"give numbers separated by commas (0.5 or 0.485,0.456,0.406); got {value!r}") from None


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | tuple[int, int] | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ProbeUsageError as error:
        raise click.BadParameter(str(error)) from None


def model_options(
    default: str | None = "digits", help_extra: str = "", *, weights_default: str = "default", required: bool | None = None
) -> Callable[[F], F]:
    """``--model``, ``--weights``, ``--model-arg``, ``--mean``, ``--std``, ``--input-size`` and ``--in-channels``.

    The command receives ``model`` and ``weights`` as arguments; the others are
    kept on the click context for :func:`load_model_from_options`, so a command
    loads its model with one call and its signature does not change.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            click.get_current_context().meta[_META_KEY] = {key: kwargs.pop(key) for key in _PREPROCESS_KEYS}
            return function(*args, **kwargs)

        decorated: Any = wrapper
        for option in (
            click.option("--in-channels", type=count(1), default=None,
                         help="Input channels the model expects (default: from its first convolution)."),
            click.option("--input-size", callback=_size, default=None, metavar="N|HxW",
                         help="Input size the model was trained at, in pixels (N or HxW); the default size of made images "
                              "(default: what the model's source states, else 224)."),
            click.option("--std", callback=_floats, default=None, metavar="S[,S,...]",
                         help="Per-channel std of the model's normalization (default: the model's own, else ImageNet's)."),
            click.option("--mean", callback=_floats, default=None, metavar="M[,M,...]",
                         help="Per-channel mean of the model's normalization (default: the model's own, else ImageNet's)."),
            click.option("--model-arg", multiple=True, metavar="KEY=VALUE",
                         help="Keyword argument for the model's builder (repeatable; default: none): "
                              "--model-arg num_classes=10."),
            click.option("--weights", cls=WeightsOption, default=weights_default, show_default=True,
                         metavar="default|none|PATH",
                         help="Weights: 'default' (zoo: shipped; torchvision/timm: pretrained, downloaded once), "
                              "'none' (random init from --seed), or a file: a state_dict or a training checkpoint "
                              "holding one (.pt/.pth/.bin/.ckpt, read with weights_only=True, or .safetensors; "
                              "'module.', '_orig_mod.', Lightning 'model.' prefixes fitted)."),
            click.option("--model", "model", default=default, show_default=default is not None,
                         required=default is None if required is None else required, metavar="SPEC",
                         shell_complete=complete_model,
                         help=MODEL_HELP + help_extra),
        ):
            decorated = option(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate


class WeightsOption(click.Option):
    """``--weights``, whose help says where ``none``'s random weights come from: ``--seed`` where the command has
    one, else seed 0 (``probe filters``, ``activations`` and ``layers`` draw nothing else, and have none)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        if not any(param.name == "seed" for param in ctx.command.params):
            self.help = (self.help or "").replace("(random init from --seed)", "(random init, seed 0)")
        return super().get_help_record(ctx)


def model_load_options() -> dict[str, Any]:
    """The keyword arguments of :func:`probe.load_model` that :func:`model_options` collected on this command.

    ``{"model_args": ..., "channels": ..., "mean": ..., "std": ..., "input_size": ...}`` (each None when
    not given); empty outside a command (no click context).
    """
    context = click.get_current_context(silent=True)
    options = dict(context.meta.get(_META_KEY, {})) if context is not None else {}
    if not options:
        return {}
    model_args = options.pop("model_arg", None) or None
    channels = options.pop("in_channels", None)
    return {"model_args": model_args, "channels": channels, **options}


def load_model_from_options(model: str, weights: str, device: str, seed: int | None = 0) -> LoadedModel:
    """Load ``model`` with the options :func:`model_options` added (model arguments, preprocessing), seeded.

    Outside a command (no click context) only the arguments given are used.
    """
    from probe.models import load_model

    return load_model(model, weights=parse_weights(weights), device=device, seed=seed, **model_load_options())


def load_pretrained_or_say(command: str, offline: str, model: str, weights: str, device: str,
                           seed: int | None = 0) -> LoadedModel:
    """:func:`load_model_from_options`, and when the default model's pretrained weights cannot be downloaded (no
    internet), one line that says what ``command`` needs and what runs offline instead (``offline``: "dream with
    the embedded RGB model, --model shapes"). Any other error (a local file, a typo) is raised as it is.

    Raises:
        ProbeUsageError: (``weights``) the pretrained weights cannot be had here.
    """
    try:
        return load_model_from_options(model, weights, device, seed)
    except ProbeUsageError as error:
        reason = re.match(r"cannot get the pretrained weights of .*?\((.*?)\)[.;] ", str(error))
        if error.param != "weights" or reason is None:
            raise
        raise ProbeUsageError(
            f"probe {command} needs trained weights, and {model}'s pretrained ones (--weights default) "
            f"cannot be downloaded here ({reason.group(1)}). Offline, {offline}; or give a state_dict file: --model "
            f"{model} --weights PATH",
            param="weights",
        ) from None


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
            "CPU: 1.3x faster googlenet galleries and dreams, 5% slower VGG19 style. "
            "Costs one copy of the conv weights.",
        )(function)
        return click.option(
            "--precision",
            type=click.Choice(list(dict.fromkeys([*precisions, "auto"]))),
            default="auto",
            show_default=True,
            help="Autocast the forward passes to 16 bits: worth it on recent GPUs, slow on most CPUs; "
            "fp16 needs a CUDA device (bf16 runs anywhere); losses and reported scores stay fp32. auto: bf16 with "
            "channels-last on CUDA, fp32 on the CPU.",
        )(function)

    return decorate


def output_option(function: F) -> F:
    """``--output auto|classes|image``: what the model's output is, where its shape cannot tell (the API's
    ``output=``, :data:`probe.choices.OUTPUT_READINGS`)."""
    return click.option(
        "--output", "output", type=click.Choice(OUTPUT_READINGS), default="auto", show_default=True,
        help="What the model's output is: auto reads it from its shape and last operation; classes, scores "
        "per class (or per pixel); image, a picture (an autoencoder's). Not the folder: that is --out.",
    )(function)


def out_options(function: F) -> F:
    """``--out DIR`` and ``--force``."""
    function = click.option(
        "--force",
        is_flag=True,
        help="Replace the cnn-probe gallery in --out once the new one is complete; a folder holding any file "
        "cnn-probe did not write is never touched.",
    )(function)
    return click.option(
        "--out",
        type=OutFolder(),
        default=None,
        help="Output folder. Default: runs/<command>-<what>, with -2, -3... appended rather than overwriting.",
    )(function)


def _flag(name: str) -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(name))


def progress_bar(total: int, description: str, **kwargs: Any) -> Any:
    """A tqdm progress bar on stderr (hidden when stderr is not a terminal, and under ``--quiet``)."""
    from tqdm.auto import tqdm

    # tqdm: None hides the bar when stderr is not a terminal (logs, pipes)
    kwargs.setdefault("disable", True if _flag(QUIET_KEY) else None)
    return tqdm(total=total, desc=description, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


def note(text: str) -> None:
    """An informational line on stderr (what is about to run, what was skipped); silent under ``--quiet``."""
    if not _flag(QUIET_KEY):
        click.echo(text, err=True)


TINY_SIDE = 16
"""Images with a side under this many pixels get a note: a CNN's maps are a pixel or two across there."""


def note_tiny_size(size: int | tuple[int, int] | None, loaded: LoadedModel) -> None:
    """Note (stderr) a ``--size`` under :data:`TINY_SIDE` pixels on a side: ``--size 3`` made 3x3 images without
    a word. ``size`` is what :func:`probe.images.parse_size` returned (None: the model's own size)."""
    if size is None:
        return
    sides = (size, size) if isinstance(size, int) else tuple(size)
    if min(sides) < TINY_SIDE:
        own = "x".join(map(str, loaded.preprocess.input_size))
        note(f"note: --size {'x'.join(map(str, sides))} is under {TINY_SIDE} px on a side: the images will be that "
             f"small and the model's maps a pixel or two across; {loaded.name}'s own input size is {own}")


def echo_done(folder: Path, summary: str) -> None:
    """Tell the user where the gallery is: the summary and the page; the page only under ``--quiet``;
    the manifest's summary as JSON under ``--json`` (see :func:`manifest_summary`)."""
    if _flag(JSON_KEY):
        click.echo(json.dumps(manifest_summary(folder, summary), indent=2))
        return
    if not _flag(QUIET_KEY):
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
def manifest_summary(folder: Path, summary: str) -> dict[str, Any]:
    """The run's manifest without its per-image list (replaced by a count), plus where everything is.

    Keys: every run-level manifest field (command, version, created, cli,
    model, weights, ...), ``items`` (the number of images), ``summary`` (the
    line the command prints), ``folder``, ``page`` and ``manifest`` (paths).
    """
    from probe.gallery import MANIFEST

    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = {}
    manifest["items"] = len(manifest.get("items") or [])
    return {**manifest, "summary": summary, "folder": str(folder), "page": str(folder / "index.html"),
            "manifest": str(folder / MANIFEST)}


QUIET_KEY = "probe.quiet"
JSON_KEY = "probe.json"
WRITTEN_KEY = "probe.written"
"""ctx.meta: the galleries this invocation saved, where they landed (see gallery.stamp.recording_invocation)."""


def invocation(ctx: click.Context | None = None) -> str:
    """The command line that started this command, as typed (``probe maximize --layer conv2``), shell-quoted."""
    ctx = ctx or click.get_current_context()
    text = ctx.meta.get(INVOCATION_KEY)
    return text if text else shlex.join(["probe", *ctx.command_path.split()[1:]])


def gallery_command(function: F) -> F:
    """``--quiet`` and ``--json`` for a command that writes a gallery; its manifest records the command line.

    ``--quiet`` hides progress bars and notes: only errors and the final line
    (``gallery: OUT/index.html``) are printed. ``--json`` prints the manifest's
    summary as JSON on stdout instead (:func:`manifest_summary`).
    """

    @functools.wraps(function)
    def wrapper(*args: Any, quiet: bool, json_summary: bool, **kwargs: Any) -> Any:
        from probe.gallery import recording_invocation

        ctx = click.get_current_context()
        ctx.meta[QUIET_KEY] = quiet
        ctx.meta[JSON_KEY] = json_summary
        with recording_invocation(invocation(ctx), ctx.meta.setdefault(WRITTEN_KEY, [])):
            return function(*args, **kwargs)

    wrapper = click.option("--json", "json_summary", is_flag=True,
                           help="Print the manifest's summary as JSON on stdout (paths, options, scores).")(wrapper)
    wrapper = click.option("--quiet", "-q", is_flag=True,
                           help="No progress bars or notes: only errors and the final line.")(wrapper)
    return wrapper  # type: ignore[return-value]


def split_list(values: Iterable[str]) -> list[str]:
    """Repeated and comma-separated option values -> one flat list: ``("a,b", " c")`` -> ``["a", "b", "c"]``."""
    return [item.strip() for value in values for item in str(value).split(",") if item.strip()]


LIST_HELP = " Several: repeat the option or separate with commas."

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def list_option(*declarations: str, item: Any = str, default: Sequence[Any] | None = None,
                shell_complete: Completer | None = None, help: str = "", **kwargs: Any) -> Callable[[F], F]:
    """An option that takes a list, the one way every list option of ``probe`` works.

    ``--layer a --layer b``, ``--layer a,b`` and ``--layer a,b --layer c`` all
    work; the command receives a list of ``item`` values (converted and
    checked by click, so a bad value exits 2 naming the option), ``default``
    when the option is not given (None unless set).

    Args:
        declarations: the option's names, as for :func:`click.option`.
        item: the type of each value: ``str``, ``int``, ``float`` or a click type
            such as :class:`click.Choice`.
        default: the list when the option is absent (default None).
        shell_complete: completes one value; the list form (``a,b,c``) is
            handled here.
        help: the option's help; a sentence on the list form is appended.
        **kwargs: more :func:`click.option` arguments (``metavar``, ``show_default``).
    """
    item_type = click.types.convert_type(item)

    def convert(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[Any] | None:
        items = split_list(values)
        if values and not items and ctx.get_parameter_source(param.name or "") is not ParameterSource.DEFAULT:
            raise click.BadParameter(f"give at least one value; got {', '.join(map(repr, values))}", ctx, param)
        return [item_type.convert(value, param, ctx) for value in items] if items else None

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        head, comma, last = incomplete.rpartition(",")
        choices = shell_complete(ctx, param, last) if shell_complete else item_type.shell_complete(ctx, param, last)
        return [CompletionItem(head + comma + choice.value, help=choice.help) for choice in choices]

    if default is not None:
        kwargs.update(default=tuple(map(str, default)), show_default=True)
    return click.option(*declarations, multiple=True, callback=convert, shell_complete=complete,
                        help=help + LIST_HELP, **kwargs)


def snapshots_option(default: int) -> Callable[[F], F]:
    """``--snapshots N``: keep N intermediate images, evenly spread over the run (maximize and style)."""
    return click.option("--snapshots", type=count(0), default=default, show_default=True, metavar="N",
                        help="Also keep N intermediate images, evenly spread over the steps.")


def complete_model(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion for ``--model``: zoo names, then torchvision names."""
    from probe import zoo

    names = list(zoo.zoo_names())
    try:
        from probe.models import torchvision_names

        names += torchvision_names()
    except Exception:  # noqa: BLE001 - completion must never fail; zoo names are enough
        pass
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def complete_layer(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion for layer names: the ``named_modules()`` of the model given so far.

    Only for zoo models (built in a fraction of a second, no download); any
    other model completes nothing rather than loading it.
    """
    from probe import zoo

    model = ctx.params.get("model")
    if model is None:  # not typed yet: the command's default model
        model = next((p.default for p in ctx.command.params if p.name == "model"), None)
    if model not in zoo.zoo_names():
        return []
    module = zoo.build_zoo_model(model, weights=None)
    return [CompletionItem(name) for name, _ in module.named_modules() if name and name.startswith(incomplete)]


def parse_weights(value: str) -> str | None:
    """CLI ``--weights`` text -> :func:`probe.load_model`'s argument."""
    return None if value.lower() in ("none", "random") else value


def shared(function: F) -> F:
    """Decorate with ``--device`` and ``--seed``: the options every command has."""
    return functools.reduce(lambda f, d: d(f), (seed_option, device_option), function)
