"""Every refusal of :mod:`probe.gallery.outdir` names what its caller gave: the CLI's ``--out`` and ``--force``,
or the Python API's ``folder`` and ``force=True`` (``result.save(folder, force=True)``), never the other's."""

from __future__ import annotations

import ast
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.errors import ProbeError, ProbeRuntimeError, ProbeUsageError
from probe.gallery import outdir
from probe.results import GalleryResult
from probe.gallery.outdir import API_WORDS, CLI_WORDS, MARKER, Words, check_out_dir, write_marker


def _holding(folder: Path, files: dict[str, str]) -> Path:
    """``folder``, made, holding ``files`` (name: text)."""
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


_GALLERY = json.dumps({"command": "filters", "items": []})

Case = Callable[[Path, pytest.MonkeyPatch], Callable[[Words], object]]
"""Sets a refusal up in ``tmp_path``; returns the call that is refused, given the words to refuse in."""


def _check(out: object, *, force: bool = False) -> Callable[[Words], object]:
    return lambda words: check_out_dir(out, force=force, words=words)  # type: ignore[arg-type]


def _unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Words], object]:
    folder = _holding(tmp_path / "run", {"a.txt": "mine"})
    real = Path.iterdir

    def iterdir(self: Path):  # type: ignore[no-untyped-def]
        if self == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    return _check(folder)


def _unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Words], object]:
    monkeypatch.setattr(outdir.os, "access", lambda *args, **kwargs: False)
    return _check(tmp_path / "run")


def _disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Words], object]:
    def writer(staging: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(staging))

    return lambda words: check_out_dir(tmp_path / "run", words=words).write(writer)


CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    # name: (the refused call, what its message must name: "folder" (the advice), "force")
    "not a path": (lambda tmp, mp: _check(5), ()),
    "control character": (lambda tmp, mp: _check(tmp / "a\nb"), ()),
    "long folder name above": (lambda tmp, mp: _check(tmp / ("d" * 300) / "run"), ()),
    "long name": (lambda tmp, mp: _check(tmp / ("n" * 250)), ()),
    "symbolic link": (lambda tmp, mp: (tmp / "link").symlink_to(_holding(tmp / "real", {})) or _check(tmp / "link"), ()),
    "a file": (lambda tmp, mp: (tmp / "file").write_text("x") and _check(tmp / "file"), ()),
    "under a file": (lambda tmp, mp: (tmp / "file").write_text("x") and _check(tmp / "file" / "run"), ()),
    "cannot write above": (_unwritable, ("folder",)),
    "cannot read": (_unreadable, ("folder",)),
    "holds files": (lambda tmp, mp: _check(_holding(tmp / "run", {"a.txt": "mine"})), ("folder", "force")),
    "newer marker": (lambda tmp, mp: _check(_holding(tmp / "run", {
        MARKER: json.dumps({"format": 99, "tool": "cnn-probe", "files": []})}), force=True), ("folder", "force")),
    "unreadable marker": (lambda tmp, mp: _check(_holding(tmp / "run", {MARKER: "{", "manifest.json": _GALLERY}),
                                                 force=True), ("folder", "force")),
    "no marker": (lambda tmp, mp: _check(_holding(tmp / "run", {"manifest.json": _GALLERY}), force=True),
                  ("folder", "force")),
    "foreign, no marker": (lambda tmp, mp: _check(_holding(tmp / "run", {"a.txt": "mine"}), force=True),
                           ("folder", "force")),
    "foreign beside a marked gallery": (lambda tmp, mp: write_marker(_holding(tmp / "run", {
        "a.png": "", "notes.txt": "mine"}), ["a.png"]) and _check(tmp / "run", force=True), ("folder", "force")),
    "disk full at the write": (_disk_full, ("folder",)),
}


_FOREIGN = {id(CLI_WORDS): ("force=True", "another folder"), id(API_WORDS): ("--out", "--force")}
"""What a refusal in each words must never say: the other caller's."""


@pytest.mark.parametrize("words", [CLI_WORDS, API_WORDS], ids=["cli", "api"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_refusal_names_the_callers_own_words(case: str, words: Words, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    setup, names = CASES[case]
    refused = setup(tmp_path, monkeypatch)
    with pytest.raises(ProbeError) as error:
        refused(words)
    message = str(error.value)
    assert "\n" not in message and not [word for word in _FOREIGN[id(words)] if word in message], message
    assert all(getattr(words, name) in message for name in names), message
    if isinstance(error.value, ProbeUsageError):
        assert error.value.param == words.param, message
    assert not list(tmp_path.glob(".*partial*")), "a refusal left a staging folder"


def test_the_refusals_are_all_walked() -> None:
    """A new refusal in outdir joins :data:`CASES`: every message a ``raise`` words, and every one a ``*_refusal``
    function returns, is one case (and ``not a path``, which :func:`probe.checks.check_path` words)."""
    tree = ast.parse(Path(outdir.__file__).read_text(encoding="utf-8"))
    raised = [node for node in ast.walk(tree) if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
              and getattr(node.exc.func, "id", "") in ("ProbeUsageError", "ProbeRuntimeError")
              and isinstance(node.exc.args[0], (ast.JoinedStr, ast.Constant))]
    returned = [node for function in ast.walk(tree)
                if isinstance(function, ast.FunctionDef) and function.name.endswith("_refusal")
                for node in ast.walk(function) if isinstance(node, ast.Return) and isinstance(node.value, ast.JoinedStr)]
    assert len(raised) + len(returned) == len(CASES) - 1


def test_no_refusal_spells_an_option_itself() -> None:
    """The words live in :class:`Words`, :data:`CLI_WORDS` and :data:`API_WORDS` alone: no other string of outdir's
    code (docstrings aside) says ``--out``, ``--force`` or ``force=True``, so none can reach the wrong caller."""
    tree = ast.parse(Path(outdir.__file__).read_text(encoding="utf-8"))
    docs = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    words = [node for node in tree.body if (isinstance(node, ast.ClassDef) and node.name == "Words") or (
        isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "").endswith("_WORDS"))]
    kept = docs | {id(inner) for node in words for inner in ast.walk(node)}
    spelled = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
               and id(node) not in kept and any(option in node.value for option in ("--out", "--force", "force=True"))]
    assert len(words) == 3 and spelled == []


class _DiskFull(GalleryResult):
    """A result whose report (this module's :func:`save_gallery`) finds the disk full."""

    _report = __name__


def save_gallery(result: object, folder: Path, **fields: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "a.png"))


def test_result_save_words_every_failure_in_its_arguments_and_a_checked_outdir_in_the_clis(tmp_path: Path) -> None:
    with pytest.raises(ProbeUsageError, match=r"^folder must be a path") as error:
        _DiskFull().save(5)  # type: ignore[arg-type]
    assert error.value.param == "folder"
    with pytest.raises(ProbeRuntimeError, match=r"free some space or choose another folder$"):
        _DiskFull().save(tmp_path / "run")
    with pytest.raises(ProbeRuntimeError, match=r"free some space or choose another --out$"):
        _DiskFull().save(check_out_dir(tmp_path / "run"))
    assert list(tmp_path.iterdir()) == []
