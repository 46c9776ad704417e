"""When a model's own code refuses an input: one clear error instead of the model's traceback.

A network checks its input in its own way, or fails deep inside it:
torchvision's ViT asserts ``Wrong image height! Expected 224 but got 64!``,
a head too small for a feature map raises ``mat1 and mat2 shapes cannot be
multiplied``, a pool raises ``output size is too small``, a float16 module on
the CPU raises a dtype mismatch, a user's model may raise anything. Whatever
the exception, when it comes from the model's forward pass (not from
cnn-probe's hooks, not a failed allocation, not cnn-probe's own errors) the
request gave the model an input it cannot take: :func:`model_input` turns it
into :class:`ModelInputError`, a :class:`~probe.errors.ProbeUsageError` about
the input ``size`` that names the input's shape and quotes the model's first
line, so the CLI prints one line naming ``--size``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any, TypeVar

import torch

from probe.errors import ProbeError, ProbeRuntimeError, ProbeUsageError
from probe.memory import is_out_of_memory

__all__ = ["DTYPE_WORDS", "GRADIENT_WORDS", "ModelInputError", "model_input", "first_line", "passes_through",
           "image_grad"]

_PACKAGE = Path(__file__).resolve().parent
_MODELS = _PACKAGE / "zoo"  # the embedded zoo's networks are models like any other
_MODULE_CALL = Path(torch.nn.modules.module.__file__).resolve()  # where torch calls a module's forward


class ModelInputError(ProbeUsageError):
    """The model's forward pass raised on this input (its size, shape or dtype).

    Attributes:
        shape: the input's shape, e.g. ``(1, 3, 64, 64)``.
        original: what the model raised.
        param: ``"size"``, or what no size can fix: ``"model"`` (it takes no (N, C, H, W) images),
            ``"in_channels"``.
    """

    def __init__(self, message: str, shape: tuple[int, ...], original: BaseException, param: str = "size") -> None:
        super().__init__(message, param=param)
        self.shape = shape
        self.original = original


def first_line(error: BaseException) -> str:
    """``"Type: first line of the message"`` (the type's name alone when the message is empty)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


_PASSING_THROUGH: set[CodeType] = set()
"""The code of cnn-probe's torch modes' handlers (:func:`passes_through`)."""

_Function = TypeVar("_Function", bound=Callable)


def passes_through(function: _Function) -> _Function:
    """Mark a torch mode's ``__torch_function__`` / ``__torch_dispatch__``: it runs the model's operations, so
    an error raised through it is the model's (a head too small for the image), not cnn-probe's."""
    _PASSING_THROUGH.add(function.__code__)
    return function


def _ours(trace: TracebackType) -> bool:
    if trace.tb_frame.f_code in _PASSING_THROUGH:
        return False
    path = Path(trace.tb_frame.f_code.co_filename).resolve()
    return _PACKAGE in path.parents and _MODELS not in path.parents


def _raised_by_probe(error: BaseException) -> bool:
    """Whether cnn-probe's own code (a hook, an objective; not a zoo network) ran inside the model's forward
    pass when ``error`` was raised: then it is a bug or a deliberate error of ours, not the model's refusal.

    The traceback runs from the caller (cnn-probe's frames that called the model) inward; a frame of ours
    after the first frame that is not ours (torch's module call, the model's code) is a hook of ours.
    """
    trace, inside = error.__traceback__, False
    while trace is not None:
        ours = _ours(trace)
        if ours and inside:
            return True
        inside = inside or not ours
        trace = trace.tb_next
    return False


_SIGNATURE = re.compile(r"missing \d+ required (positional|keyword-only) argument|takes \d+ positional argument")


def _not_callable_with_images(error: BaseException) -> bool:
    """Whether ``error`` is Python refusing the call ``module(images)`` itself: a forward that needs more arguments
    (``forward(x, mask)``) or takes its input by keyword only. Its innermost frame is torch's module call, which
    called forward, not code inside the model."""
    trace = error.__traceback__
    if not isinstance(error, TypeError) or trace is None or not _SIGNATURE.search(str(error)):
        return False
    while trace.tb_next is not None:
        trace = trace.tb_next
    return Path(trace.tb_frame.f_code.co_filename).resolve() == _MODULE_CALL


_DIMENSIONS = (  # torch's words for a layer given a tensor of other dimensions: (batched dimensions, the layer)
    re.compile(r"expected \dD \(unbatched\) or (?P<dims>\d)D \(batched\) input to (?P<layer>\w+)", re.IGNORECASE),
    re.compile(r"^(?P<layer>\w+): expected \dD or (?P<dims>\d)D \(batch mode\) tensor", re.IGNORECASE),  # pools
    re.compile(r"^expected (?:\dD or )?(?P<dims>\d)D input \(got \dD input\)"),  # batch and instance norms
)
_CHANNELS = re.compile(r"expected input\[([\d, ]+)\] to have (\d+) channels, but got (\d+) channels")
_INDICES = "Expected tensor for argument #1 'indices' to have one of the following scalar types"
"""torch's words for an ``nn.Embedding`` given floats (its message ends ``(while checking arguments for embedding)``)."""
_LAYOUTS = {3: "(N, C, L) signals", 4: "(N, C, H, W) images", 5: "(N, C, T, H, W) clips or volumes"}


def _layout_refusal(error: BaseException, shape: tuple[int, ...]) -> tuple[str, str] | None:
    """What no input size can fix in ``error``, the model's refusal of ``shape`` (``(N, C, H, W)``), as ``(advice,
    param)``: a layer that takes other than 2-D images (a Conv1d, a Conv3d), or a first layer that met another
    channel count than the image has (the forward permuted its input: it expects ``(N, H, W, C)``) or than the
    model takes (``--in-channels``), or an ``nn.Embedding`` that met the float image. None for anything else (a size
    the model's head does not take)."""
    text = str(error)
    if _INDICES in text and "embedding" in text:
        return ("an nn.Embedding of it takes integer indices (tokens, codes), and cnn-probe gives float images, "
                "which no gradient could reach through an index: no input size fixes this", "model")
    for pattern in _DIMENSIONS:
        found = pattern.search(text)
        if found is not None and int(found["dims"]) != len(shape):
            wanted = _LAYOUTS.get(int(found["dims"]), f"{found['dims']}-D input")
            where = f"its {found['layer']}" if "layer" in found.groupdict() else "a layer of it"
            return (f"{where} takes {wanted}, and cnn-probe probes models of (N, C, H, W) images (2-D "
                    "convolutions): no input size fixes this", "model")  # fmt: skip
    found = _CHANNELS.search(text)
    if found is None:
        return None
    met, wanted, got = len(found.group(1).split(",")), int(found.group(2)), int(found.group(3))
    if met != len(shape):  # a 4-D image read as an unbatched 3-D volume by a Conv3d
        return (f"its layers take {_LAYOUTS.get(met, f'{met}-D input')}, and cnn-probe probes models of (N, C, H, W) "
                "images (2-D convolutions): no input size fixes this", "model")  # fmt: skip
    if len(shape) == 4 and got != shape[1]:
        return (f"its first convolution met {got} channels in a {shape[1]}-channel image: the forward rearranges its "
                "input (it takes (N, H, W, C)?); cnn-probe gives (N, C, H, W) images: wrap the model in a module "
                "whose forward(x) permutes x as yours expects", "model")  # fmt: skip
    return f"its first convolution takes {wanted} channels: give --in-channels {wanted}", "in_channels"


_REENTRANT = "use_reentrant=True, torch.utils.checkpoint is incompatible with .grad()"


def image_grad(score: torch.Tensor, inputs: torch.Tensor | Sequence[torch.Tensor], **options: Any) -> tuple:
    """``torch.autograd.grad(score, inputs, **options)``, cnn-probe's way to the image's gradient (no weight ever
    gets a ``.grad``), with autograd's refusal of a model that checkpoints reentrantly as one line.

    Args:
        score: the scalar to differentiate.
        inputs: the image tensor(s) it is differentiated by, e.g. ``(N, C, H, W)``.
        options: passed on (``allow_unused=True``, ...).

    Raises:
        ProbeUsageError: (``param="model"``) the forward runs ``torch.utils.checkpoint(..., use_reentrant=True)``
            (timm's and transformers' gradient checkpointing in some versions), which only ``.backward()`` can
            differentiate.
    """
    try:
        return torch.autograd.grad(score, inputs, **options)
    except RuntimeError as error:
        if _REENTRANT not in str(error):
            raise
        raise ProbeUsageError(
            "the model's forward runs torch.utils.checkpoint with use_reentrant=True, which no gradient w.r.t. "
            "the image can go through (torch.autograd.grad): checkpoint with use_reentrant=False, or turn gradient "
            "checkpointing off (timm: model.set_grad_checkpointing(False); transformers: "
            "model.gradient_checkpointing_disable())", param="model") from None


DEVICE_FAILURE_WORDS = ("CUDA error", "CUDNN_STATUS", "cuDNN error", "CUBLAS_STATUS", "cuBLAS error", "HIP error",
                        "device-side assert", "illegal memory access", "NCCL error")
"""Substrings of the errors a GPU (its driver, kernels, libraries) raises when it fails: not the input's fault."""

DTYPE_WORDS = ("should be the same", "expected scalar type", "must have the same dtype", "found dtype",
                "not implemented for")
"""Substrings of torch's errors for weights and inputs of different dtypes (a float16 module on the CPU)."""

GRADIENT_WORDS = ("does not require grad", "not have been used in the graph")
"""Substrings of autograd's errors for a differentiated tensor the image's graph does not reach: a model whose forward
cuts it (``torch.no_grad()``, ``.detach()``) before what a command differentiates."""


@contextlib.contextmanager
def model_input(inputs: torch.Tensor, passes: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Run a forward pass of the model on ``inputs`` in the block; its refusal becomes :class:`ModelInputError`.

    Args:
        inputs: what the model is called with, e.g. ``(N, C, H, W)`` (only its shape and dtype are used).
        passes: exception types that pass through unchanged (e.g. a hook's signal to stop the pass).

    Raises:
        ModelInputError: the model's own code raised on ``inputs`` (``param="model"`` or ``"in_channels"`` where
            no input size can help: a Conv1d/Conv3d model, a forward taking (N, H, W, C), another channel count).
        ProbeUsageError: (``param="model"``) the module cannot be called with the images alone (its forward needs
            another argument, or takes its input by keyword only).
        ProbeRuntimeError: ... when the device failed (:data:`DEVICE_FAILURE_WORDS`); ... with a dtype
            mismatch (a float16 module on the CPU). cnn-probe's errors, out-of-memory errors, exceptions
            raised by cnn-probe's hooks and ``passes`` are re-raised as they are.
    """
    try:
        yield
    except Exception as error:
        if isinstance(error, (ProbeError, *passes)) or is_out_of_memory(error) or _raised_by_probe(error):
            raise
        shape = tuple(inputs.shape)
        one = shape[1:] if len(shape) > 1 else shape  # one image's shape: the batch is ours (layers() runs two)
        what = f"the model cannot run on a {'x'.join(map(str, one))} {str(inputs.dtype).removeprefix('torch.')} image"
        if _not_callable_with_images(error):
            raise ProbeUsageError(
                f"{what} by calling it with the images alone ({first_line(error)}): cnn-probe calls model(images); "
                "give a model whose forward's other arguments have defaults, or wrap it in a module whose forward(x) "
                "calls yours",
                param="model",
            ) from error
        layout = _layout_refusal(error, shape)
        if layout is not None:
            raise ModelInputError(f"{what} ({first_line(error)}): {layout[0]}", shape, error, layout[1]) from error
        if any(words in str(error) for words in DEVICE_FAILURE_WORDS):
            raise ProbeRuntimeError(
                f"the model failed on its device ({first_line(error)}), which no input size fixes; rerun with "
                "CUDA_LAUNCH_BLOCKING=1 to see which operation failed, or try --device cpu") from error
        if any(words in str(error).lower() for words in DTYPE_WORDS):
            raise ProbeRuntimeError(
                f"{what} ({first_line(error)}): its weights and the input differ in dtype or device; give a float32 "
                "model whose weights all live on one device (module.float(); cnn-probe feeds float32 images, and "
                "--precision bf16 / precision='bf16' then computes in bfloat16, on the CPU too)"
            ) from error
        raise ModelInputError(f"{what} ({first_line(error)}); give an input size it accepts (without one, the "
                              "model's own input size is used)", shape, error) from error
