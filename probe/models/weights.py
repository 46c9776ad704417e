"""Weights: read state_dict files safely, fit them into a module, and seed random initialization."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeUsageError

__all__ = ["load_state_dict_file", "load_weights_into", "fit_wrapper_prefixes", "is_default", "is_none", "seeded", "require"]

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")


def is_default(weights: Any) -> bool:
    """True for ``"default"``/``"shipped"``/``"pretrained"``: the weights the source knows."""
    return isinstance(weights, str) and weights.lower() in ("default", "shipped", "pretrained")


def is_none(weights: Any) -> bool:
    """True for None, ``"none"`` and ``"random"``: a seeded random initialization."""
    return weights is None or (isinstance(weights, str) and weights.lower() in ("none", "random"))


def require(package: str, extra: str, what: str) -> Any:
    """Import optional ``package`` or raise one line naming the extra that installs it.

    Raises:
        ProbeUsageError: (``param="model"``) ``package`` is not installed.
    """
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ProbeUsageError(
            f"{what} needs the {package!r} package: pip install 'cnn-probe[{extra}]'", param="model"
        ) from None


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with the CPU random generator seeded by ``seed``, restoring the caller's state after.

    Modules are built on the CPU, so seeding the CPU generator makes their
    random initialization a function of ``seed`` alone; the caller's global
    random state is neither consumed nor changed. ``seed=None`` only isolates.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict safely onto the CPU: ``torch.load(..., weights_only=True)`` or a ``.safetensors`` file.

    Accepts a plain state_dict or a checkpoint dict that holds one under
    ``state_dict``/``model_state_dict``/``model``/``net``; strips the ``module.``
    prefix that ``DataParallel`` adds.

    Raises:
        ProbeUsageError: the file is missing, unreadable, or holds no state_dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ProbeUsageError(f"weights file {str(path)!r} does not exist", param="weights")
    try:
        if path.suffix == ".safetensors":
            safetensors = require("safetensors.torch", "safetensors", "a .safetensors weights file")
            loaded: Any = safetensors.load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except ProbeUsageError:
        raise
    except Exception as error:  # pickle errors, zip errors, truncated files, bad safetensors headers
        first = str(error).splitlines()[0] if str(error) else ""
        raise ProbeUsageError(
            f"cannot read weights file {str(path)!r}: {type(error).__name__}: {first}"
            " (weights are loaded with weights_only=True; save them with torch.save(model.state_dict(), path)"
            " or safetensors.torch.save_file)",
            param="weights",
        ) from None
    if isinstance(loaded, dict):
        for key in _STATE_DICT_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ProbeUsageError(f"weights file {str(path)!r} holds no state_dict of tensors", param="weights")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key[len("module.") :]: value for key, value in loaded.items()}
    return loaded


WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""What wrappers put before every key of a state_dict: ``DataParallel``/``DistributedDataParallel`` (``module.``)
and ``torch.compile`` (``_orig_mod.``)."""


def _bare(key: str) -> str:
    """``key`` without the wrappers' prefixes (``module._orig_mod.conv1.weight`` -> ``conv1.weight``)."""
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def fit_wrapper_prefixes(state: dict[str, torch.Tensor], keys: list[str]) -> dict[str, torch.Tensor]:
    """``state`` with its keys renamed to the module's ``keys`` where they differ only by wrappers' prefixes: a
    file saved from a compiled or DataParallel model loads into the plain one, and the other way round. Keys of
    no such match are kept as they are (reported as unexpected by the load)."""
    own = {_bare(key): key for key in keys}
    if len(own) != len(keys):  # the module's own keys collide without their prefixes: take the file as it is
        return state
    return {own.get(_bare(key), key): value for key, value in state.items()}


def _few(items: list[str]) -> str:
    return ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")


def load_weights_into(module: nn.Module, path: str | Path) -> None:
    """Load the state_dict file at ``path`` into ``module`` in place, or explain in one line why it does not fit.

    Raises:
        ProbeUsageError: (``param="weights"``) unreadable file, missing or
            unexpected keys, or tensors whose shapes differ from the module's.
    """
    own = module.state_dict()
    state = fit_wrapper_prefixes(load_state_dict_file(path), list(own))
    wrong = [f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}" for key, value in state.items()
             if key in own and own[key].shape != value.shape]  # fmt: skip
    if wrong:
        raise ProbeUsageError(
            f"weights file {str(path)!r} does not fit this architecture: wrong shapes (file vs model): {_few(wrong)}",
            param="weights",
        )
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ProbeUsageError(
            f"weights file {str(path)!r} does not fit this architecture: "
            f"missing keys: {_few(result.missing_keys) or 'none'}; unexpected keys: {_few(result.unexpected_keys) or 'none'}",
            param="weights",
        )
