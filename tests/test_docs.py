"""The docs: every picture and link the Markdown names exists, every picture says how it was made, and every
command and the Python tour of README.md run."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md")), ROOT / "benchmarks" / "README.md"]
GALLERY = ROOT / "docs" / "gallery"


def _links(page: Path) -> list[str]:
    """The relative targets of a Markdown page's links and images (addresses and anchors left out)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [unquote(t.split("#")[0]) for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_every_link_and_picture_of_the_docs_exists():
    missing = [f"{page.relative_to(ROOT)}: {target}" for page in PAGES for target in _links(page)
               if not (page.parent / target).exists()]
    assert not missing, missing


def test_every_picture_in_docs_gallery_names_its_command():
    """docs/gallery/README.md names each picture (a maximize folder's sheet and manifest by the folder's pattern)."""
    table = (GALLERY / "README.md").read_text(encoding="utf-8")
    pictures = [p for p in GALLERY.rglob("*") if p.suffix in (".png", ".gif")]
    assert pictures
    undocumented = [p.relative_to(GALLERY).as_posix() for p in pictures
                    if f"`{p.relative_to(GALLERY).as_posix()}`" not in table
                    and not (p.parent.parent.name == "maximize" and "`maximize/*/contact-sheet.png`" in table)]
    assert not undocumented, undocumented
    for line in table.splitlines():
        copied = re.findall(r"cp (\S+) (docs/gallery/\S+?)`", line)
        for source, target in copied:  # the command copies the picture the row names
            assert f"`{Path(target).relative_to('docs/gallery').as_posix()}`" in line, line


# --- Every command and the Python tour of README.md run, at a few steps and a few pixels --------------------

PLACEHOLDERS = {"photo.jpg": (48, 40), "painting.jpg": (40, 40), "a.jpg": (32, 40), "b.jpg": (40, 32),
                "big.jpg": (72, 56)}
"""The files the README's commands stand for (yours), made as small photos in the command's folder."""

FOLDERS = ("photos", "imagenet/val/cat", "imagenet/val/dog")
"""The folders under ``~`` they name (``--spectrum ~/photos``, ``--dataset ~/imagenet/val``), each given two images."""

FAST = {
    "maximize": ["--steps", "1"],
    "dream": ["--steps", "1", "--octaves", "1"],
    "style": ["--steps", "1"],
    "atlas": ["--steps", "1", "--limit", "8", "--max-units", "1", "--examples", "2"],
}
"""Options appended to each command (the last value of an option wins): the same request, a step or two long."""

SHRINK = {"--size": "48", "--frames": "2"}
"""Values that would take seconds as the README writes them (ten zoom frames at 128 px)."""

PRETRAINED = "pretrained weights, which the suite cannot download (random ones would show nothing the README promises)"
ONLY_PARSED = {
    "probe atlas --nproc 2 --layers conv1,conv2": "starts torchrun's launcher and two processes "
                                                   "(tests/test_atlas_distributed.py runs them)",
    "probe atlas --model resnet50 --dataset ~/imagenet/val --out /shared/atlas": "every layer of a ResNet-50",
    "probe maximize --model googlenet --layer inception4a --units 0-15 --size 128": PRETRAINED,
    "probe dream photo.jpg": PRETRAINED,
    "probe dream big.jpg --size full --tile 512": PRETRAINED,
    "probe style photo.jpg painting.jpg --model vgg19 --weights DEFAULT --size 512 --device cuda": PRETRAINED,
    "probe style photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 --original-colors": PRETRAINED,
    "probe style photo.jpg painting.jpg --scales 256,512 --pooling avg --content-layer conv4_2": PRETRAINED,
}
"""Commands the suite parses (every option and value checked) but does not run, and why."""


def readme_commands() -> list[str]:
    """Every ``probe`` command line of the bash blocks of README.md and docs/, comments dropped, each once
    (``torchrun ... -m probe X`` and ``pip install -e . && probe X`` give ``probe X``)."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in [README, *sorted((ROOT / "docs").rglob("*.md"))])
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for line in block.splitlines()]
    commands = []
    for line in lines:
        line = line.split("  #")[0].strip()
        found = re.search(r"(?:^|&& |-m )(probe \S.*)$", line)
        if found and found.group(1) not in commands:
            commands.append(found.group(1))
    return commands


COMMANDS = readme_commands()


def _fast(words: list[str]) -> list[str]:
    """``words`` a step or two long: :data:`FAST` appended, :data:`SHRINK`'s values replaced, and attribute's
    sampling methods given few samples (only the options of the methods asked for: others are refused)."""
    words = [SHRINK.get(words[i - 1], w) if w != "full" else w for i, w in enumerate(words)]
    extra = list(FAST.get(words[1], []))
    if words[1] == "attribute":
        methods = ",".join(w for i, w in enumerate(words) if words[i - 1] == "--method").split(",")
        extra += ["--steps", "2"] if {"all", "integrated-gradients"} & set(methods) else []
        extra += ["--samples", "2"] if {"all", "smoothgrad"} & set(methods) else []
    return [*words, *extra]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding the README's placeholder files, which is also ``~`` and the spectrum cache."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CNN_PROBE_CACHE", str(tmp_path / "cache"))
    for index, (name, size) in enumerate(PLACEHOLDERS.items()):
        Image.effect_noise(size, 40 + 10 * index).convert("RGB").save(tmp_path / name)
    for folder in FOLDERS:
        (tmp_path / folder).mkdir(parents=True)
        for index in range(2):
            Image.effect_noise((40, 40), 30 + 20 * index).convert("RGB").save(tmp_path / folder / f"{index}.png")
    return tmp_path


def test_the_readme_shows_the_commands_of_every_section():
    assert len(COMMANDS) >= 30 and {c.split()[1] for c in COMMANDS} >= {
        "maximize", "dream", "style", "activations", "filters", "attribute", "atlas"}
    assert set(ONLY_PARSED) <= set(COMMANDS), set(ONLY_PARSED) - set(COMMANDS)  # none is stale


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses_as_written(command, home):
    """Each option and value the README shows exists and converts (a renamed option, a stale value fail here)."""
    from probe.cli.main import cli

    words = [os.path.expanduser(w) for w in shlex.split(command)]
    cli.commands[words[1]].make_context(words[1], words[2:])


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in ONLY_PARSED])
def test_every_readme_command_runs(command, home):
    """As written but for a few steps and pixels (:data:`FAST`, :data:`SHRINK`): it exits 0 and writes its
    gallery under ``runs/``. A new command that needs a download fails here (the suite blocks them): run it on
    the zoo, or list it in :data:`ONLY_PARSED` saying why."""
    from probe.cli.main import cli

    words = _fast([os.path.expanduser(w) for w in shlex.split(command)])
    result = CliRunner().invoke(cli, words[1:])
    assert result.exit_code == 0, f"{' '.join(words)}\n{result.output}"
    assert list((home / "runs").glob("*/index.html")), result.output


def test_the_readme_python_tour_runs_and_its_shapes_are_right(home, monkeypatch):
    """The block of "Python API tour", executed as written (each optimization a step or two long)."""
    import functools

    import probe

    for name, fast in (("maximize", {"steps": 2}), ("dream", {"steps": 1, "octaves": 1}),
                       ("style_transfer", {"steps": 1, "size": 32})):
        monkeypatch.setattr(probe, name, functools.partial(getattr(probe, name), **fast))
    block = re.search(r"## Python API tour\n+```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block is not None
    names: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), names)  # noqa: S102 - the README's own code
    assert tuple(names["x"].shape) == (1, 28, 28)
    assert tuple(names["acts"]["conv2"].shape) == (1, 50, 11, 11)
    digits = names["digits"]
    assert (tuple(digits.images.shape), tuple(digits.scores.shape), tuple(digits.probabilities.shape)) == (
        (10, 1, 28, 28), (10,), (10,))
    assert (home / "runs" / "conv2" / "index.html").exists()
