"""Weights: read state_dict files safely, fit them into a module, and seed random initialization.

A weights file is read by its content, not its name (``.pt``, ``.pth``, ``.bin``, ``.ckpt`` and
``.safetensors`` alike): a ``torch.save`` archive (zip or legacy pickle) is loaded with
``weights_only=True``, which never runs code from the file; a safetensors file with
``safetensors``. Training checkpoints hold the state_dict under a key (``state_dict``, ``model``,
``model_state_dict``, ``ema``, ``net``, ...) and name its tensors with the prefixes their wrappers
add (``module.`` from ``DataParallel``, ``_orig_mod.`` from ``torch.compile``, ``model.`` from a
Lightning module): :func:`load_weights_into` looks at every state_dict in the file and takes the
one, and the prefix, that names the module's tensors. The checkpoint of a pruned, weight-normed or
spectral-normed model also loads into the plain architecture: each reparametrized tensor becomes the weight
it computes (:func:`_folded`). A torch.export archive or a zip of anything else (an ``.npz``) is refused
saying what it is.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import struct
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.errors import ProbeUsageError

__all__ = ["load_state_dict_file", "load_weights_into", "archive_kind", "is_default", "is_none", "seeded", "require"]

CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "ema", "model_ema",
                   "state_dict_ema", "ema_state_dict", "params", "weights")
"""Keys under which checkpoints hold a state_dict, in the order one is preferred when several fit."""

WRAPPERS = ("module", "_orig_mod")
"""Name segments wrappers insert into every key (``DataParallel``/DDP, ``torch.compile``), wherever they stand."""

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
"""What a folder's weights files are usually called (named when a folder is given instead of a file)."""

_DEPTH = 4  # how deep in nested checkpoint dictionaries a state_dict is looked for
_PREFIX_SEGMENTS = 3  # the longest prefix (in name segments) stripped from a checkpoint's keys


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


def _refuse(path: Path, why: str) -> ProbeUsageError:
    return ProbeUsageError(f"weights file {str(path)!r} {why}", param="weights")


def _unreadable(path: Path, why: str) -> ProbeUsageError:
    return ProbeUsageError(f"cannot read weights file {str(path)!r}: {why}", param="weights")


_RESAVE = ("save the state_dict alone: torch.save(model.state_dict(), 'weights.pt') or "
           "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')")


def archive_kind(path: Path) -> str:
    """What a zip file at ``path`` holds: ``"torch"`` (``torch.save``, ``torch.jit.save``), ``"export"``
    (``torch.export.save``: ``archive_format``, ``models/``), or ``"other: NAME, ..."`` (an ``.npz``, a zip of
    anything else) with its first entries; ``"other: unreadable"`` for a damaged zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "torch"  # a damaged archive: torch.load says how
    if any(name.rsplit("/", 1)[-1] == "archive_format" for name in names):
        return "export"
    if any(name.rsplit("/", 1)[-1] in ("data.pkl", "constants.pkl") for name in names):
        return "torch"
    return "other: " + (", ".join(names[:3]) + (", ..." if len(names) > 3 else "") if names else "nothing")


def _format(path: Path) -> str:
    """``"zip"``, ``"pickle"`` or ``"safetensors"``, from the file's first bytes.

    Raises:
        ProbeUsageError: a missing file, a folder, an empty file, or one in none of these formats.
    """
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file())
        found = f" (it holds {', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''})" if inside else ""
        raise ProbeUsageError(f"weights {str(path)!r} is a folder{found}; give the path of the weights file itself",
                              param="weights")
    if not path.exists():
        raise _refuse(path, "does not exist")
    try:
        with path.open("rb") as stream:
            head = stream.read(16)
    except OSError as error:
        raise _unreadable(path, f"{error.strerror or error}") from None
    if not head:
        raise _unreadable(path, f"it is empty (0 bytes); copy it again, or {_RESAVE}")
    if head.startswith(b"PK\x03\x04"):
        kind = archive_kind(path)
        if kind == "export":
            raise _unreadable(path, "it is a torch.export program (torch.export.save), not a state_dict; re-save its "
                              f"weights: torch.save(torch.export.load({str(path)!r}).module().state_dict(), "
                              "'weights.pt')")
        if kind.startswith("other"):
            raise _unreadable(path, f"it is a zip archive of {kind[7:]} (NumPy's .npz?), not a torch.save file; "
                              + _RESAVE)
        return "zip"
    if head[0] == 0x80:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 1 << 30:
        return "safetensors"  # an 8-byte header length, then its JSON; a truncated one fails to load below
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        raise _unreadable(path, "it is an HDF5 file (Keras?), not PyTorch weights; " + _RESAVE)
    raise _unreadable(path, "it is neither a torch.save file nor a safetensors file; " + _RESAVE)


def _unpickle_refusal(path: Path, error: Exception) -> ProbeUsageError:
    """The one line for a file ``weights_only=True`` refused: what it holds and how to re-save it."""
    text = str(error)
    if "TorchScript" in text:
        return _unreadable(path, "it is a TorchScript archive (torch.jit.save), not a state_dict: pass it as --model "
                       f"{str(path)!r}, or {_RESAVE}")
    found = re.search(r"GLOBAL ([\w.]+)", text)
    held = f"a pickled {found.group(1)}" if found else "pickled Python objects"
    return _unreadable(path, f"it holds {held} (a whole module, or objects beside the tensors), which cnn-probe never "
                   "unpickles (weights_only=True); if you trust the file, re-save its tensors: "
                   f"torch.save(torch.load({str(path)!r}, weights_only=False).state_dict(), 'weights.pt') for a "
                   "whole module, torch.save(checkpoint['state_dict'], 'weights.pt') for a checkpoint")


def _read(path: Path) -> Any:
    """What the file holds, read without running any code from it.

    Raises:
        ProbeUsageError: (``param="weights"``) see :func:`_format`; a damaged file; pickled objects.
    """
    kind = _format(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on TorchScript archives and legacy formats
            if kind == "safetensors":
                safetensors = require("safetensors.torch", "safetensors", "a safetensors weights file")
                return safetensors.load_file(str(path), device="cpu")
            with path.open("rb") as stream:  # a stream: torch.load would take a .safetensors name for safetensors
                return torch.load(stream, map_location="cpu", weights_only=True)
    except ProbeUsageError:
        raise
    except Exception as error:  # pickle refusals, zip errors, truncated files, bad safetensors headers
        if type(error).__name__ == "UnpicklingError" or "TorchScript" in str(error):
            if "GLOBAL" in str(error) or "TorchScript" in str(error):
                raise _unpickle_refusal(path, error) from None
        first = (str(error).splitlines() or [""])[0].split(". ")[0][:160]
        raise _unreadable(path, f"it is truncated or damaged ({first or type(error).__name__}); "
                      "copy it again, or re-save it") from None


def _is_state_dict(value: Any) -> bool:
    return (isinstance(value, Mapping) and bool(value) and all(isinstance(k, str) for k in value)
            and all(isinstance(v, torch.Tensor) for v in value.values()))


def _state_dicts(loaded: Any, where: str = "", depth: int = _DEPTH) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """Every state_dict in ``loaded`` with where it is (``"['state_dict']"``), the preferred first.

    A mapping of tensors is one; in any other mapping the values under
    :data:`CHECKPOINT_KEYS` are searched first, in that order, then the others.
    """
    if _is_state_dict(loaded):
        return [(where, dict(loaded))]
    if not isinstance(loaded, Mapping) or depth == 0:
        return []
    known = [key for key in CHECKPOINT_KEYS if key in loaded]
    others = [key for key in loaded if key not in CHECKPOINT_KEYS]
    found = []
    for key in known + others:
        found += _state_dicts(loaded[key], f"{where}[{key!r}]", depth - 1)
    return found


def _unwrapped(key: str) -> str:
    """``key`` without the segments :data:`WRAPPERS` insert (``module.features.0.weight`` -> ``features.0.weight``)."""
    return ".".join(part for part in key.split(".") if part not in WRAPPERS)


@dataclass(frozen=True)
class _Fit:
    """How one state_dict of a file names a module's tensors."""

    where: str  # where the state_dict is in the file ("" for the file itself)
    prefix: str  # the prefix taken off its keys ("model." for a Lightning checkpoint), "" for none
    tensors: dict[str, tuple[str, torch.Tensor]]  # the module's key -> (the file's key, its tensor)
    unexpected: list[str]  # the file's keys under ``prefix`` that name none of the module's tensors

    def missing(self, own: Mapping[str, torch.Tensor]) -> list[str]:
        """The module's keys the file lacks (a BatchNorm's ``num_batches_tracked``, which torch fills, excepted)."""
        return [key for key in own if key not in self.tensors and not key.endswith("num_batches_tracked")]

    def described(self) -> str:
        parts = [f"under {self.where}" if self.where else "", f"with the prefix {self.prefix!r} removed" if self.prefix else ""]
        return " ".join(part for part in parts if part)


def _fit(where: str, state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> _Fit:
    """The prefix of ``state``'s keys (none, or up to :data:`_PREFIX_SEGMENTS` segments) that names most of ``own``."""
    by_name: dict[str, str | None] = {}
    for key in own:
        plain = _unwrapped(key)
        by_name[plain] = key if plain not in by_name else None  # two keys alike once unwrapped: exact names only

    def target(key: str, prefix: str) -> str | None:
        if not prefix and key in own:
            return key
        plain = _unwrapped(key)
        return by_name.get(plain[len(prefix):]) if plain.startswith(prefix) else None

    votes: Counter[str] = Counter()
    shaped: Counter[str] = Counter()  # votes of tensors whose shape is the module's too
    for key, value in state.items():
        parts = _unwrapped(key).split(".")
        for length in range(0, min(_PREFIX_SEGMENTS, len(parts) - 1) + 1):
            prefix = "".join(part + "." for part in parts[:length])
            name = target(key, prefix)
            if name is not None:
                votes[prefix] += 1
                shaped[prefix] += value.dim() > 0 and own[name].shape == value.shape  # a scalar tells nothing
    # names that fit by shape first: another architecture's 'layer1.0.conv1' names a small net's 'conv1' by name only
    prefix = max(votes, key=lambda p: (shaped[p], votes[p], -len(p))) if votes else ""
    tensors: dict[str, tuple[str, torch.Tensor]] = {}
    unexpected = []
    for key, value in state.items():
        if not _unwrapped(key).startswith(prefix):
            continue  # another part of the checkpoint (a Lightning module's loss, a teacher)
        name = target(key, prefix)
        if name is None or name in tensors:
            unexpected.append(key)
        else:
            tensors[name] = (key, value)
    return _Fit(where, prefix, tensors, unexpected)


def _weight_norm(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g * v / ||v||``, the norm over every dimension but the one ``g`` keeps (all of them for a scalar ``g``)."""
    kept = [d for d in range(g.dim()) if g.shape[d] != 1]
    dims = [d for d in range(v.dim()) if d not in kept]
    return v * (g / torch.linalg.vector_norm(v, dim=dims, keepdim=True))


def _spectral(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``weight / sigma``, sigma its largest singular value as the stored power iteration ``(u, v)`` estimates it
    (rows: the first dimension, as spectral_norm's default ``dim=0``)."""
    return weight / torch.dot(u, weight.reshape(weight.shape[0], -1) @ v)


def _folded(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """``state`` with each reparametrized tensor made the plain one it computes, or None when it has none.

    A checkpoint of a pruned model (``torch.nn.utils.prune``: ``P_orig`` and ``P_mask``), a weight-normed one
    (``P_g``/``P_v``, or ``parametrizations.P.original0``/``original1``) or a spectral-normed one (``P_orig`` with
    ``P_u``/``P_v``, or ``parametrizations.P.original`` with ``parametrizations.P.0._u``/``_v``) names tensors a
    plain module of the same architecture lacks; it gets the weight the trained model computed.
    """
    out = dict(state)

    def fold(plain: str, compute: Callable[[], torch.Tensor], *used: str) -> None:
        try:
            value = compute().detach()
        except (RuntimeError, IndexError):  # tensors of other shapes than these forms': left as they are
            return
        for key in used:
            out.pop(key, None)
        out[plain] = value

    for key in state:
        stem = key.removesuffix("_orig")
        if stem != key and f"{stem}_mask" in state:
            fold(stem, lambda: state[key] * state[f"{stem}_mask"], key, f"{stem}_mask")
        elif stem != key and f"{stem}_u" in state and f"{stem}_v" in state:
            fold(stem, lambda: _spectral(state[key], state[f"{stem}_u"], state[f"{stem}_v"]), key, f"{stem}_u",
                 f"{stem}_v")
        elif key.endswith("_g") and f"{key[:-2]}_v" in state:
            fold(key[:-2], lambda: _weight_norm(state[f"{key[:-2]}_v"], state[key]), key, f"{key[:-2]}_v")
        head, found, name = key.rpartition(".parametrizations.")
        if not found:
            continue
        if name.endswith(".original0") and f"{key[:-1]}1" in state:
            fold(f"{head}.{name[:-10]}", lambda: _weight_norm(state[f"{key[:-1]}1"], state[key]), key,
                 f"{key[:-1]}1")
        elif name.endswith(".original") and f"{key[:-9]}.0._u" in state and f"{key[:-9]}.0._v" in state:
            fold(f"{head}.{name[:-9]}", lambda: _spectral(state[key], state[f"{key[:-9]}.0._u"],
                                                          state[f"{key[:-9]}.0._v"]),
                 key, f"{key[:-9]}.0._u", f"{key[:-9]}.0._v")
    return out if out.keys() != state.keys() else None


def _file_state_dicts(path: Path) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The state_dicts in the file at ``path`` (:func:`_state_dicts`), at least one, or ProbeUsageError."""
    found = _state_dicts(_read(path))
    if not found:
        raise _refuse(path, f"holds no state_dict (no mapping of names to tensors); {_RESAVE}")
    return found


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict safely onto the CPU: ``torch.load(..., weights_only=True)`` or a safetensors file.

    Accepts a plain state_dict or a checkpoint that holds one under one of
    :data:`CHECKPOINT_KEYS` (nested too: ``{"ema": {"module": ...}}``); strips the
    :data:`WRAPPERS` segments (``module.``, ``_orig_mod.``) when every key has
    them. To fit a file to a module (other prefixes, several state_dicts in one
    checkpoint), use :func:`load_weights_into`.

    Raises:
        ProbeUsageError: (``param="weights"``) the file is missing, a folder, empty,
            damaged, holds pickled objects, or holds no state_dict.
    """
    path = Path(path).expanduser()
    found = _file_state_dicts(path)
    state = found[0][1]
    if all(_unwrapped(key) != key for key in state):
        state = {_unwrapped(key): value for key, value in state.items()}
    return state


def _few(items: list[str]) -> str:
    return ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")


def _dtype_refusal(path: Path, fit: _Fit, own: Mapping[str, torch.Tensor]) -> ProbeUsageError | None:
    """A tensor whose kind of number the module's cannot take (integers or complex for floats, quantized)."""
    for name, (key, value) in fit.tensors.items():
        mine = own[name]
        if (value.is_quantized != mine.is_quantized or value.is_floating_point() != mine.is_floating_point()
                or value.is_complex() != mine.is_complex()):
            return _refuse(path, f"does not fit this architecture: {key} is {str(value.dtype).replace('torch.', '')} "
                           f"in the file, {str(mine.dtype).replace('torch.', '')} in the model (a quantized or "
                           "converted checkpoint?); give the float weights of this architecture")
    return None


def _shape_refusal(fit: _Fit, own: Mapping[str, torch.Tensor], wrong: list[str], where: str) -> str:
    """Why tensors of the right names have the wrong shapes: another architecture (fewer than half of the
    module's tensors fit), another number of outputs (only the first dimension of one module's tensors differs),
    or the shapes themselves."""
    shapes = [f"{fit.tensors[name][0]} {tuple(fit.tensors[name][1].shape)} vs {tuple(own[name].shape)}"
              for name in wrong]  # fmt: skip
    sized = [name for name, tensor in own.items() if tensor.dim() > 0]  # a BatchNorm's step count fits anything
    fitting = sum(name in fit.tensors and name not in wrong for name in sized)
    if fitting < len(sized) / 2:  # where it found names is a guess then: not said
        return (f"does not fit this architecture: {fitting} of the model's {len(sized)} tensors are in the file "
                f"with their shape ({_few(shapes)}): the weights of another model?")
    owners = {name.rpartition(".")[0] for name in wrong}
    heads = [fit.tensors[name][1].shape for name in wrong]
    if len(owners) == 1 and all(h[1:] == own[n].shape[1:] and h[0] != own[n].shape[0] for h, n in zip(heads, wrong)):
        return (f"does not fit this architecture{where}: {owners.pop()} has {heads[0][0]} outputs in the file, "
                f"{own[wrong[0]].shape[0]} in the model ({_few(shapes)}); build the model with {heads[0][0]} "
                "(--model-arg num_classes=N where its builder takes it)")
    return f"does not fit this architecture{where}: wrong shapes (file vs model): {_few(shapes)}"


def load_weights_into(module: nn.Module, path: str | Path) -> None:
    """Load the state_dict file at ``path`` into ``module`` in place, or explain in one line why it does not fit.

    Of the state_dicts in the file (see :func:`load_state_dict_file`) and the
    prefixes of their keys, the one naming most of the module's tensors is taken;
    it must then name every tensor, with the module's shapes. Half-precision
    tensors (fp16, bf16) are converted to the module's dtype; the module keeps its
    dtype and device. Nothing is loaded unless everything fits.

    Raises:
        ProbeUsageError: (``param="weights"``) unreadable file, missing or
            unexpected keys, tensors whose shapes or kinds differ from the module's.
    """
    path = Path(path).expanduser()
    found = _file_state_dicts(path)
    own = module.state_dict()
    fits = [_fit(where, state, own) for where, state in found]
    folded = [(where, _folded(state)) for where, state in found]  # a pruned or normed model's, for a plain one
    fits += [_fit(where, state, own) for where, state in folded if state is not None]
    fit = max(fits, key=lambda f: len(f.tensors))  # the first of equals: CHECKPOINT_KEYS' order, then as saved
    where = f" ({fit.described()})" if fit.described() else ""
    wrong = [name for name, (_, value) in fit.tensors.items() if own[name].shape != value.shape]
    if wrong:
        raise _refuse(path, _shape_refusal(fit, own, wrong, where))
    missing = fit.missing(own)
    if missing or fit.unexpected:
        raise _refuse(path, f"does not fit this architecture{where}: missing keys: {_few(missing) or 'none'}; "
                      f"unexpected keys: {_few(fit.unexpected) or 'none'}")
    refusal = _dtype_refusal(path, fit, own)
    if refusal is not None:
        raise refusal
    try:
        module.load_state_dict({name: value for name, (_, value) in fit.tensors.items()}, strict=False)
    except RuntimeError as error:  # a module's own loading hook refused a tensor
        first = (str(error).splitlines() or [""])[-1].strip()[:200]
        raise _refuse(path, f"does not fit this architecture{where}: {first}") from None
