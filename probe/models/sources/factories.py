"""Source ``factory``: your own function returning an ``nn.Module``, named as ``path/to/file.py:build`` or ``pkg.mod:build``.

The file or module is imported, and the function called, only because you named
it: only name code you trust. A dotted module is looked up with the current
folder importable (as ``python -m`` does); a file is imported from its path with
its folder importable, so it may import its neighbours. Arguments come from the
spec (``build(num_classes=10)``, Python literals only) and ``model_args``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from probe.errors import ProbeError, ProbeRuntimeError, ProbeUsageError
from probe.models.preprocess import module_preprocess
from probe.models.forms import META_ADVICE, meta_tensor
from probe.models.registry import Built, ModelSource, Request, register_source
from probe.models.types import LoadedModel, Preprocess
from probe.models.weights import is_default, is_none, load_weights_into

__all__ = ["claims", "build", "SOURCE"]

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")  # a dotted module path, or a dotted attribute


def _split(spec: str) -> tuple[str, str]:
    target, _, attribute = spec.rpartition(":")
    return target, attribute


def _dotted_attribute(spec: str) -> bool:
    """``pkg.mod.build`` (no colon): a dotted name of two segments or more whose top package can be imported from
    the current folder or the environment (found, not imported: its code runs only when the model is built)."""
    if ":" in spec or not _DOTTED.match(spec) or "." not in spec:
        return False
    with _importable(os.getcwd()):
        try:
            return importlib.util.find_spec(spec.split(".")[0]) is not None
        except (ImportError, ValueError):
            return False


def _python_file(spec: str) -> bool:
    """A ``.py`` file named without the function to call (``net.py``)."""
    return spec.endswith(".py") and Path(spec).expanduser().is_file()


def claims(spec: str) -> bool:
    """``file.py:name``, ``dotted.module:name`` or ``dotted.module.name``; also ``file.py`` alone, to say which
    function to name."""
    target, attribute = _split(spec)
    if target and _DOTTED.match(attribute) and (target.endswith(".py") or _DOTTED.match(target)):
        return True
    return _python_file(spec.removesuffix(":")) or _dotted_attribute(spec)


@contextlib.contextmanager
def _importable(folder: str) -> Iterator[None]:
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _package_module(path: Path) -> Any | None:
    """``pkg/net.py`` inside a package (``__init__.py`` beside it) imported as ``pkg.net``, so that its relative
    imports (``from .blocks import block``) work; None outside a package, or when that dotted name is taken by
    another module already imported (then the file is imported alone)."""
    path = path.resolve()
    root = path.parent
    while (root / "__init__.py").is_file() and _DOTTED.match(root.name):
        root = root.parent
    if root == path.parent or not _DOTTED.match(path.stem):
        return None
    name = ".".join([*path.relative_to(root).parent.parts, path.stem])
    top = sys.modules.get(name.split(".")[0])
    if top is not None and Path(getattr(top, "__file__", "") or "").resolve().parent != root / name.split(".")[0]:
        return None
    with _importable(str(root)):
        module = importlib.import_module(name)
    return module if Path(module.__file__ or "").resolve() == path else None


def _import_file(path: Path) -> Any:
    packaged = _package_module(path)
    if packaged is not None:
        return packaged
    name = "probe_user_model_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    with _importable(str(path.parent.resolve())):
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return module


def _where(error: BaseException) -> str:
    """``"RuntimeError: broken (net.py, line 2)"``: the error and the last line of the user's code it came from."""
    text = str(error).strip().splitlines()
    what = f"{type(error).__name__}: {text[0]}" if text and not isinstance(error, SyntaxError) else type(error).__name__
    if isinstance(error, SyntaxError) and error.filename:
        return f"{what}: {error.msg} ({Path(error.filename).name}, line {error.lineno})"
    package = str(Path(__file__).resolve().parents[2])  # frames of cnn-probe itself say nothing to the user
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(package)]
    return f"{what} ({Path(frames[-1].filename).name}, line {frames[-1].lineno})" if frames else what


def _defined(path: Path) -> list[str]:
    """The public functions and classes a Python file defines at its top level (read, not run)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError, OSError):
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_")]  # fmt: skip


def _defines(path: Path) -> str:
    """`` (it defines build, Net, ...)`` for a file that defines public functions or classes, else ``""``."""
    names = _defined(path)
    return f" (it defines {', '.join(names[:6])}{', ...' if len(names) > 6 else ''})" if names else ""


def _import_dotted(spec: str) -> tuple[Any, str]:
    """``pkg.mod.Net`` -> (the module ``pkg.mod``, ``"Net"``): the longest prefix that is a module, the rest its
    attribute path. A module missing inside one that exists propagates (its ``ModuleNotFoundError``)."""
    parts = spec.split(".")
    with _importable(os.getcwd()):
        for end in range(len(parts) - 1, 0, -1):
            name = ".".join(parts[:end])
            try:
                return importlib.import_module(name), ".".join(parts[end:])
            except ModuleNotFoundError as error:
                if error.name != name:
                    raise
    raise ModuleNotFoundError(f"No module named {parts[0]!r}", name=parts[0])


@contextlib.contextmanager
def _prints_to_stderr() -> Iterator[None]:
    """What the user's code prints while it is imported or called goes to stderr: stdout is the command's own
    (``--json`` output, ``--quiet``'s one line), which a module-level ``print`` would break."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _owner(target: str, attribute: str, spec: str) -> tuple[Any, str]:
    """The imported module the factory lives in, and the attribute path to it there."""
    if not target:
        return _import_dotted(spec)
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ProbeUsageError(f"model file {target!r} does not exist", param="model")
        return _import_file(path), attribute
    with _importable(os.getcwd()):
        return importlib.import_module(target), attribute


def _factory(spec: str) -> Callable[..., Any]:
    if _python_file(spec.removesuffix(":")):
        file = spec.removesuffix(":")
        raise ProbeUsageError(f"{spec!r} is a Python file: name the function or class that builds the model, "
                              f"'{file}:NAME'{_defines(Path(file))}", param="model")
    target, attribute = _split(spec)
    cannot = ("give path/to/file.py:function or package.module:function importable from the current folder")
    try:
        with _prints_to_stderr():
            owner, attribute = _owner(target, attribute, spec)
        for part in attribute.split("."):
            owner = getattr(owner, part)
    except ProbeUsageError:
        raise
    except AttributeError as error:
        if target.endswith(".py"):
            raise ProbeUsageError(f"{target!r} has no {attribute!r}{_defines(Path(target).expanduser())}",
                                  param="model") from None
        raise ProbeUsageError(f"cannot import model factory {spec!r}: {error}; {cannot}", param="model") from None
    except ImportError as error:
        raise ProbeUsageError(f"cannot import model factory {spec!r}: {error}; {cannot}", param="model") from None
    except Exception as error:  # the user's code failed while it was imported: say where, in one line
        raise ProbeRuntimeError(f"importing {target!r} for model {spec!r} raised {_where(error)}; fix that code "
                                "or name another model") from None
    if not callable(owner):
        raise ProbeUsageError(f"{spec!r} is a {type(owner).__name__}, not a function returning a model", param="model")
    return owner


def build(spec: str, request: Request) -> Built:
    """Import and call the factory; load a state_dict file into what it returns."""
    factory = _factory(spec)
    try:
        with _prints_to_stderr():
            module = factory(*request.args, **request.kwargs)
    except ProbeError:
        raise
    except TypeError as error:
        if error.__traceback__ is not None and error.__traceback__.tb_next is None:  # the call itself: its arguments
            raise ProbeUsageError(f"calling {spec!r} failed: {error}", param="model_arg") from None
        raise ProbeRuntimeError(f"calling {spec!r} raised {_where(error)}; fix that code or its arguments") from None
    except Exception as error:  # the user's code failed while building: say where, in one line
        raise ProbeRuntimeError(f"calling {spec!r} raised {_where(error)}; fix that code or its arguments") from None
    module, preprocess, labels = _returned(spec, module)
    meta = meta_tensor(module)
    if meta is not None:
        raise ProbeUsageError(f"{spec!r} returned a module on the meta device ({meta} has no data); {META_ADVICE}",
                              param="model")
    described = "as built"
    if not (is_default(request.weights) or is_none(request.weights)):
        load_weights_into(module, request.weights)
        described = str(request.weights)
    return Built(module, preprocess or module_preprocess(module), labels=labels, weights=described)


def _returned(spec: str, value: Any) -> tuple[nn.Module, Preprocess | None, tuple[str, ...] | None]:
    """What the factory returned: an ``nn.Module``, or a :class:`LoadedModel` (its module, preprocessing and labels).

    Raises:
        ProbeUsageError: (``param="model"``) anything else, saying what to return instead.
    """
    if isinstance(value, LoadedModel):
        return value.module, value.preprocess, value.labels
    if isinstance(value, nn.Module):
        return value, None, None
    if isinstance(value, type) and issubclass(value, nn.Module):
        why = f"the class {value.__name__}, not a module: return {value.__name__}(...)"
    elif type(value).__name__ == "ExportedProgram":
        why = "an ExportedProgram (torch.export): return the nn.Module you exported"
    elif isinstance(value, (tuple, list)) and any(isinstance(item, nn.Module) for item in value):
        why = f"a {type(value).__name__} holding a module: return the module alone"
    else:
        why = f"{type(value).__name__}, not a torch.nn.Module"
    raise ProbeUsageError(f"{spec!r} returned {why}", param="model")


SOURCE = register_source(ModelSource("factory", claims, build,
                                    form="path/to/file.py:function, package.module:function or package.module.Class"))
