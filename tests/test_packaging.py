"""The wheel holds what users need (the three packages under ``probe``, the zoo's weights, the license) and
nothing else; its metadata says MIT as an SPDX expression. Built from a copy of the sources, offline."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setuptools_is_new_enough() -> bool:
    """Whether this environment can build the wheel offline; read from metadata, since importing setuptools
    here (after torch and friends imported distutils) trips setuptools' own distutils check."""
    if importlib.util.find_spec("pip") is None:
        return False
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    return int(version.split(".")[0]) >= 77


@pytest.mark.skipif(not _setuptools_is_new_enough(), reason="needs pip and setuptools>=77 (no build isolation offline)")
def test_the_wheel_holds_the_packages_weights_and_license(tmp_path):
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in ("probe", "cli", "gallery"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for file in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / file, source / file)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("cnn_probe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"probe", info}  # cli/ and gallery/ live under probe/, no tests or benchmarks
    for needed in ("probe/__init__.py", "probe/cli/main.py", "probe/cli/common.py", "probe/gallery/html.py",
                   "probe/gallery/collection.py", "probe/gallery/stamp.py", "probe/style/transfer.py", "probe/dream/run.py",
                   "probe/reports/maximize.py", f"{info}/licenses/LICENSE"):
        assert needed in names, needed
    assert len([name for name in names if name.startswith("probe/zoo/weights/") and name.endswith(".pt")]) == 4
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert "Classifier: Topic :: Scientific/Engineering :: Visualization" in metadata
    assert "probe = probe.cli.entry:main" in entry_points
    # the README is the long description, and every Project-URL is one PyPI accepts (absolute http or https)
    assert "Description-Content-Type: text/markdown" in metadata and "# cnn-probe" in metadata
    for line in metadata.splitlines():
        if line.startswith("Project-URL:"):
            label, _, url = line.removeprefix("Project-URL:").partition(",")
            assert re.fullmatch(r"https?://[^/\s]+\.[^/\s]+(/\S*)?", url.strip()), line


def test_the_sources_import_the_installed_names():
    """``cli/`` and ``gallery/`` install as ``probe.cli`` and ``probe.gallery``: a plain ``from gallery...`` runs
    in this checkout (its root is on the path) and fails for every user of the installed package."""
    bare = re.compile(r"^\s*(?:from|import)\s+(?:cli|gallery)(?:\.|\s|$)", re.MULTILINE)
    found = [f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
             for folder in ("probe", "cli", "gallery") for path in sorted((ROOT / folder).rglob("*.py"))
             for match in bare.finditer(path.read_text(encoding="utf-8"))]
    assert found == []
