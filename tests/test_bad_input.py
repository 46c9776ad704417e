"""Every bad input answers in one line (issue 14, section 3): a table of CLI cases, each checked the same way.

Each case runs ``probe ...`` through click's CliRunner in an empty folder holding one file of the user's,
and checks: the exit code (2 for a usage error, naming the option; 1 for a runtime failure, saying what
to do), exactly one ``Error:`` line and no traceback (``result.exception`` is ``SystemExit``), and that
nothing was lost or written (the user's file is as it was; no new file unless the case says so).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import probe
from probe.cli.main import cli
from probe.dream import objective as dream_objective
from probe.images import divergence, load_image
from tinynets import tiny

USER_FILE = "notes.txt"
USER_TEXT = "the user's own notes\n"


def half_tiny() -> torch.nn.Module:
    """A float16 module (the factory ``test_bad_input:half_tiny``): it cannot run on the CPU."""
    return tiny().half()


# --- set-ups: each gets the case's folder and monkeypatch, and writes what its case reads -----------------


def nan_tiff(folder: Path, _: pytest.MonkeyPatch) -> None:
    pixels = np.full((28, 28), 0.5, dtype=np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels, mode="F").save(folder / "nan.tiff")


def bomb_png(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG over Pillow's pixel limit: the limit lowered, so that the test stays small and fast."""
    Image.new("L", (64, 64)).save(folder / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels > 2 x 1000: DecompressionBombError


def nan_weights(folder: Path, _: pytest.MonkeyPatch) -> None:
    state = {key: value.clone() for key, value in probe.load_model("digits").module.state_dict().items()}
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, folder / "nan.pt")


def wrong_shapes(folder: Path, _: pytest.MonkeyPatch) -> None:
    state = probe.load_model("digits").module.state_dict()
    torch.save({key: torch.zeros(*(s + 1 for s in value.shape)) for key, value in state.items()}, folder / "bad.pt")


def half_factory(_: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "test_bad_input", sys.modules[__name__])


def little_memory(_: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine has 48 MiB free: the 1024 px picture fits (36 MiB with its resize), the untiled dream's
    activations (about 100 MiB with shapes) cannot."""
    monkeypatch.setattr("probe.memory.available_bytes", lambda device: 48 * 2**20)


def cpu_oom(_: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU allocator fails in the dream's forward pass, with torch's own wording."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 10737418240 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(dream_objective, "capture", fail)  # "probe.dream" on probe is the function


def memory_error(_: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr("probe.cli.maximize.maximize", fail)


def out_under_file(folder: Path, _: pytest.MonkeyPatch) -> None:
    (folder / "afile").write_text("not a folder\n")


def out_on_symlink(folder: Path, _: pytest.MonkeyPatch) -> None:
    (folder / "elsewhere").mkdir()
    (folder / "elsewhere" / "keep.txt").write_text("keep\n")
    (folder / "link").symlink_to(folder / "elsewhere", target_is_directory=True)


@dataclass(frozen=True)
class Case:
    """One bad input: the command line, the exit code, and what its one error line must say.

    Attributes:
        args: the arguments after ``probe``.
        code: 2 (usage error: ``option`` is named) or 1 (runtime failure).
        option: the option or argument the error names (``--lr``, ``IMAGE``), for code 2.
        says: words the error line must hold (lower case), e.g. what to do.
        never: words it must not hold (``--layer`` for an out-of-memory dream).
        setup: prepares the folder (files the case reads) or the failure it provokes.
        writes: the files the case may leave (a diverged gallery is kept for inspection).
    """

    args: tuple[str, ...]
    code: int
    option: str | None = None
    says: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    setup: Callable[[Path, pytest.MonkeyPatch], None] | None = None
    writes: tuple[str, ...] = ()
    marks: tuple[Any, ...] = field(default=())


MAX = ("maximize", "--layer", "conv2", "--units", "0", "--steps", "2", "--out", "out")
DREAM = ("dream", "skimage:astronaut", "--model", "shapes", "--steps", "1", "--octaves", "1", "--size", "64",
         "--out", "out")  # fmt: skip
STYLE = ("style", "skimage:astronaut", "skimage:coffee", "--model", "shapes", "--steps", "2", "--out", "out")
ATTR = ("attribute", "digits:0", "--out", "out")

CASES: dict[str, Case] = {
    # non-finite numbers: refused at parse time by the shared finite-float type
    "maximize --lr nan": Case((*MAX, "--lr", "nan"), 2, "--lr", ("finite",)),
    "maximize --lr inf": Case((*MAX, "--lr", "inf"), 2, "--lr", ("finite",)),
    "maximize --l1 nan": Case((*MAX, "--l1", "nan"), 2, "--l1", ("finite",)),
    "maximize --tv -inf": Case((*MAX, "--tv", "-inf"), 2, "--tv", ("finite",)),
    "maximize --diversity nan": Case((*MAX, "--diversity", "nan"), 2, "--diversity", ("finite",)),
    "dream --zoom nan": Case((*DREAM, "--zoom", "nan"), 2, "--zoom", ("finite",)),
    "dream --lr nan": Case((*DREAM, "--lr", "nan"), 2, "--lr", ("finite",)),
    "dream --lr 1e30": Case((*DREAM, "--lr", "1e30"), 2, "--lr", ("range",)),
    "dream --octave-scale inf": Case((*DREAM, "--octave-scale", "inf"), 2, "--octave-scale", ("finite",)),
    "dream --layer-weight nan": Case((*DREAM, "--layer-weight", "nan"), 2, "--layer-weight", ("finite",)),
    "attribute --noise nan": Case((*ATTR, "--method", "smoothgrad", "--noise", "nan"), 2, "--noise", ("finite",)),
    "attribute --noise inf": Case((*ATTR, "--method", "smoothgrad", "--noise", "inf"), 2, "--noise", ("finite",)),
    "style --style-weight nan": Case((*STYLE, "--style-weight", "nan"), 2, "--style-weight", ("finite",)),
    "style --content-weight inf": Case((*STYLE, "--content-weight", "inf"), 2, "--content-weight", ("finite",)),
    "style --style-scale nan": Case((*STYLE, "--style-scale", "nan"), 2, "--style-scale", ("finite",)),
    "style --style-blend nan": Case((*STYLE, "skimage:chelsea", "--style-blend", "nan,1"), 2, "--style-blend",
                                    ("finite",)),
    "style --style-layer-weight inf": Case((*STYLE, "--style-layer-weight", "inf"), 2, "--style-layer-weight",
                                           ("finite",)),
    # integers out of what torch takes, and ranges checked before they are built
    "--seed 1e20": Case((*MAX, "--seed", "99999999999999999999"), 2, "--seed"),
    "--seed -1": Case((*MAX, "--seed", "-1"), 2, "--seed"),
    "--units 0-99999999999": Case(("maximize", "--layer", "conv2", "--units", "0-99999999999", "--out", "out"), 2,
                                  "--units", ("out of range", "0 to 49")),
    "--units 5-2": Case(("maximize", "--layer", "conv2", "--units", "5-2", "--out", "out"), 2, "--units"),
    "dream --channels 0-99999999999": Case((*DREAM, "--channels", "0-99999999999"), 2, "--channels"),
    "attribute --steps 100000": Case((*ATTR, "--method", "integrated-gradients", "--steps", "100000"), 2,
                                     "--steps"),
    # sizes the model cannot take
    "layers --size 1": Case(("layers", "digits", "--size", "1"), 2, "--size", ("cannot run",)),
    "activations --size 1": Case(("activations", "digits:0", "--size", "1", "--out", "out"), 2, "--size"),
    "attribute --size 1": Case((*ATTR, "--size", "1"), 2, "--size"),
    "activations --size 64 (fixed-size fc)": Case(("activations", "digits:0", "--size", "64", "--out", "out"), 2,
                                                  "--size"),
    "layers --size 0x5": Case(("layers", "digits", "--size", "0x5"), 2, "--size"),
    # images
    "NaN pixels": Case(("activations", "nan.tiff", "--out", "out"), 2, "IMAGE", ("nan",), setup=nan_tiff),
    "decompression bomb": Case(("attribute", "bomb.png", "--out", "out"), 2, "IMAGE", ("decompression",),
                               setup=bomb_png),
    "a directory as image": Case(("activations", ".", "--out", "out"), 2, "IMAGE", ("directory",)),
    "an empty file as image": Case(("activations", "empty.png", "--out", "out"), 2, "IMAGE", ("decode",),
                                   setup=lambda folder, _: (folder / "empty.png").write_bytes(b"")),
    "maximize --snapshots -1": Case((*MAX, "--snapshots", "-1"), 2, "--snapshots"),
    "layers --size -3": Case(("layers", "digits", "--size", "-3"), 2, "--size"),
    # models and weights
    "NaN weights, attribute": Case((*ATTR, "--weights", "nan.pt"), 1, None, ("nan", "--weights"),
                                   setup=nan_weights),
    "NaN weights, activations": Case(("activations", "digits:0", "--weights", "nan.pt", "--out", "out"), 1, None,
                                     ("nan", "--weights"), setup=nan_weights),
    "state_dict of wrong shapes": Case(("layers", "digits", "--weights", "bad.pt"), 2, "--weights",
                                       setup=wrong_shapes),
    "fp16 module on the CPU": Case(("activations", "skimage:astronaut", "--model", "test_bad_input:half_tiny",
                                    "--size", "16", "--out", "out"), 1, None, ("float32",), setup=half_factory),
    # memory: estimated before allocating; CPU failures get advice, never --layer
    "untiled dream beyond free memory": Case((*DREAM[:-4], "--size", "1024", "--out", "out"), 1, None,
                                             ("--tile", "--size", "free"), ("--layer", "larger"),
                                             setup=little_memory),
    "style --style-scale 1000": Case((*STYLE, "--style-scale", "1000"), 1, None, ("--style-scale", "memory")),
    "CPU out of memory in a dream": Case(DREAM, 1, None, ("out of memory", "--tile"), ("--layer", "larger"),
                                         setup=cpu_oom),
    "MemoryError": Case(MAX, 1, None, ("out of memory",), setup=memory_error),
    # divergence: reported, gallery kept and marked
    "maximize --lr 1e30 diverges": Case((*MAX[:-2], "--units", "0-3", "--lr", "1e30", "--out", "out"), 1, None,
                                        ("diverged", "--lr"), writes=("out",)),
    # counts beyond what torch's sizes hold: refused at parse time, not overflowing inside torch
    "--in-channels 1e20": Case(("layers", "digits", "--in-channels", "99999999999999999999"), 2, "--in-channels"),
    "--input-size 1e20": Case(("layers", "digits", "--input-size", "99999999999999999999"), 2, "--input-size"),
    "maximize --size 1e20": Case((*MAX, "--size", "99999999999999999999"), 2, "--size", ("65536",)),
    "maximize --steps 1e20": Case((*MAX, "--steps", "99999999999999999999"), 2, "--steps"),
    "maximize --snapshots 1e20": Case((*MAX, "--snapshots", "99999999999999999999"), 2, "--snapshots"),
    "dream --octaves 1e20": Case((*DREAM, "--octaves", "99999999999999999999"), 2, "--octaves"),
    "attribute --samples 1e20": Case((*ATTR, "--method", "smoothgrad", "--samples", "99999999999999999999"), 2,
                                     "--samples"),
    "atlas --nproc 999": Case(("atlas", "--nproc", "999", "--out", "out"), 2, "--nproc", ("at most",)),
    # empty lists given explicitly
    "--units ''": Case((*MAX[:3], "--units", "", *MAX[5:]), 2, "--units", ("is empty",)),
    "--method ,": Case((*ATTR, "--method", ","), 2, "--method", ("at least one",)),
    "dream --layer ''": Case((*DREAM, "--layer", ""), 2, "--layer", ("is empty",)),
    # devices torch parses but cannot run on
    "--device xpu": Case(("layers", "digits", "--device", "xpu"), 2, "--device", ("not available",)),
    "--device meta": Case((*ATTR, "--device", "meta"), 2, "--device", ("meta",)),
    # non-finite numbers in the model's statistics and the options click's FloatRange let through
    "--mean nan": Case(("activations", "digits:0", "--mean", "nan", "--out", "out"), 2, "--mean", ("finite",)),
    "--std inf": Case((*MAX, "--std", "inf"), 2, "--std", ("finite",)),
    "maximize --accentuate nan": Case((*MAX, "--from", "digits:3", "--accentuate", "nan"), 2, "--accentuate",
                                      ("finite",)),
    "atlas --lr nan": Case(("atlas", "--lr", "nan", "--out", "out"), 2, "--lr", ("finite",)),
    "atlas --diversity inf": Case(("atlas", "--diversity", "inf", "--out", "out"), 2, "--diversity", ("finite",)),
    # output folders
    "--out under a file": Case((*MAX[:-2], "--out", "afile/sub"), 2, "--out", setup=out_under_file),
    "--out on a symlink": Case((*MAX[:-2], "--out", "link"), 2, "--out", setup=out_on_symlink),
}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=name, marks=case.marks) for name, case in CASES.items()]
)  # fmt: skip
def test_bad_input_answers_in_one_line(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / USER_FILE).write_text(USER_TEXT)
    if case.setup is not None:
        case.setup(tmp_path, monkeypatch)
    before = _files(tmp_path)
    result = CliRunner().invoke(cli, list(case.args))
    assert isinstance(result.exception, SystemExit), f"traceback: {result.exception!r}\n{result.output}"
    assert "Traceback" not in result.output
    assert result.exit_code == case.code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    line = errors[0].lower()
    if case.option is not None:
        assert f"'{case.option.lower()}'" in line, line
    for words in case.says:
        assert words.lower() in line, line
    for words in case.never:
        assert words.lower() not in line, line
    after = _files(tmp_path)
    assert {name: data for name, data in after.items() if name in before} == before, "a file was changed or lost"
    new = [name for name in after if name not in before and not name.startswith(case.writes or ("\0",))]
    assert not new, f"files written by a failed run: {new}"


def test_diverged_maximize_is_marked_in_the_manifest(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*MAX[:-2], "--units", "0-3", "--lr", "1e30", "--out", str(tmp_path / "g")])
    assert result.exit_code == 1 and "DIVERGED" in result.output
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert "binary noise" in manifest["diverged"]


def test_sound_maximize_is_not_marked(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*MAX[:-2], "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["diverged"] is None


def test_dream_with_a_huge_lr_is_marked_diverged() -> None:
    shapes = probe.load_model("shapes")
    image = load_image("skimage:astronaut", size=48)
    wild = probe.dream(shapes, image, steps=2, octaves=1, lr=1e30, jitter=0)
    calm = probe.dream(shapes, image, steps=2, octaves=1, lr=0.01, jitter=0)
    assert "binary noise" in wild.options["diverged"] and calm.options["diverged"] is None


def test_divergence_spares_images_that_started_binary() -> None:
    binary = (torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    assert divergence(binary) is not None
    assert divergence(binary, start=binary) is None
    assert divergence(torch.full((1, 3, 8, 8), float("nan"))) is not None


def test_divergence_spares_saturated_smooth_shapes() -> None:
    """A CPPN drawing in pure colours is saturated but smooth: not the binary noise of a far too large step."""
    disc = ((torch.arange(16.0) - 7.5).view(1, -1) ** 2 + (torch.arange(16.0) - 7.5).view(-1, 1) ** 2 < 30).float()
    stripes = (torch.arange(16) // 4 % 2).float().expand(16, 16)
    assert divergence(torch.stack([disc, stripes]).unsqueeze(1).expand(2, 3, 16, 16)) is None
    noise = (torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    assert divergence(noise) == "2 of 2 image(s) are binary noise (every value at 0 or 1)"


def test_16_bit_png_is_scaled_by_65535(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16)).save(tmp_path / "dark.png")
    assert torch.allclose(load_image(tmp_path / "dark.png"), torch.tensor(1000 / 65535), atol=1e-6)


def test_integrated_gradients_steps_run_in_bounded_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many steps use the trapezoid rule in batches of 32 (Gauss-Legendre's n x n matrix would not fit)."""
    from captum.attr import IntegratedGradients

    seen: dict[str, Any] = {}
    original = IntegratedGradients.attribute

    def spy(self: Any, inputs: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen.update(kwargs)
        return original(self, inputs, *args, **{**kwargs, "n_steps": 4, "method": "gausslegendre"})

    monkeypatch.setattr(IntegratedGradients, "attribute", spy)
    result = probe.attribute(tiny(), torch.rand(3, 16, 16), "integrated-gradients", steps=5000, size=16)
    assert seen["method"] == "riemann_trapezoid" and seen["internal_batch_size"] == 32
    assert result.options["ig_method"] == "riemann_trapezoid"
    assert torch.isfinite(result.heatmaps["integrated-gradients"]).all()


def test_huge_counts_stay_cheap() -> None:
    """Counts far beyond the work are clipped to what exists, without looping over the count."""
    from probe.snapshots import snapshot_steps
    from probe.dream.geometry import octave_sizes

    assert snapshot_steps(3, 2**31 - 1) == [1, 2] and snapshot_steps(30, 2) == [10, 20]
    assert octave_sizes((64, 64), 2**31 - 1, 1.4) == octave_sizes((64, 64), 5, 1.4)
    assert octave_sizes((100, 200), 3, 2.0) == [(25, 50), (50, 100), (100, 200)]


@pytest.mark.parametrize("channels", [1, 3])
def test_alpha_channels_are_composited_on_white(channels: int) -> None:
    """RGBA and grey+alpha arrays (skimage samples, user arrays) convert like files do: alpha on white."""
    from probe.images import to_channels

    rgba = torch.tensor([0.2, 0.4, 0.6, 0.0]).view(4, 1, 1).expand(4, 2, 2)
    assert torch.allclose(to_channels(rgba, channels), torch.ones(channels, 2, 2))
    grey = torch.tensor([0.5, 1.0]).view(2, 1, 1).expand(2, 2, 2)
    assert torch.allclose(to_channels(grey, channels), torch.full((channels, 2, 2), 0.5))


def test_maximize_from_a_black_and_white_image_is_not_called_diverged(tmp_path: Path) -> None:
    """A start image that is already all 0/1 (a black photo, a scanned line drawing) is not divergence."""
    Image.new("L", (28, 28), 0).save(tmp_path / "black.png")
    result = CliRunner().invoke(cli, [*MAX[:-2], "--from", str(tmp_path / "black.png"), "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["diverged"] is None


@pytest.mark.parametrize("command", [MAX, DREAM], ids=["maximize", "dream"])
def test_ctrl_c_mid_run_exits_130_in_one_line_leaving_nothing(
    command: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the optimization (the third convolution call): exit 130, one line, no folder left."""
    monkeypatch.chdir(tmp_path)
    forward = torch.nn.Conv2d.forward
    calls = []

    def interrupted(self: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return forward(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", interrupted)
    result = CliRunner().invoke(cli, list(command))
    assert isinstance(result.exception, SystemExit) and result.exit_code == 130, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [
        "Error: interrupted (Ctrl-C); nothing was written"
    ]
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []


class _Table(torch.nn.Module):
    """Returns its parameter whatever the input: a position bias (shaped like one image's output)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.ones(1, 4, 1, 1))

    def forward(self) -> torch.Tensor:
        return self.table


class _Biased(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bias = torch.nn.Conv2d(3, 4, 3), _Table()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.bias()


def test_a_layer_the_image_does_not_reach_is_named_not_torchs_autograd_error() -> None:
    """maximize and dream on a layer computed from the weights alone (Swin's relative_position_bias)."""
    from probe import objectives as O

    loaded = probe.load_model(_Biased().eval(), input_size=16)
    with pytest.raises(probe.ProbeUsageError, match="output of bias does not depend on the input image") as info:
        probe.maximize(loaded, O.channel("bias", [0]), steps=1, preset="plain")
    assert info.value.param == "layer"
    with pytest.raises(probe.ProbeUsageError, match="output of bias does not depend on the input image"):
        probe.dream(loaded, torch.rand(3, 16, 16), layers=["bias"], steps=1, octaves=1)
    assert probe.maximize(loaded, O.channel("conv", [0]), steps=1, preset="plain").images.shape == (1, 3, 16, 16)


# --- the same through the Python API: a ProbeUsageError naming the argument, the user's module untouched ----

NAN, INF, HUGE = float("nan"), float("inf"), 10**20
IMAGE = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))


def _maximize(model: Any, **kwargs: Any) -> Any:
    return probe.maximize(model, "conv2:0", **{"steps": 1, **kwargs})


def _dream(model: Any, **kwargs: Any) -> Any:
    return probe.dream(model, IMAGE, "relu2", **{"steps": 1, "octaves": 1, **kwargs})


def _style(model: Any, **kwargs: Any) -> Any:
    return probe.style_transfer(model, IMAGE, IMAGE, **{"content_layers": "relu2", "style_layers": "relu1",
                                                        "steps": 1, "snapshots": 0, **kwargs})


def _attribute(model: Any, **kwargs: Any) -> Any:
    return probe.attribute(model, kwargs.pop("image", IMAGE), **kwargs)


API_CASES: dict[str, tuple[Callable[..., Any], dict[str, Any], str]] = {
    "maximize steps=1e20": (_maximize, {"steps": HUGE}, "steps"),
    "maximize steps=nan": (_maximize, {"steps": NAN}, "steps"),
    "maximize steps='3'": (_maximize, {"steps": "3"}, "steps"),
    "maximize lr=nan": (_maximize, {"lr": NAN}, "lr"),
    "maximize image_size=1e20": (_maximize, {"image_size": HUGE}, "size"),
    "maximize image_size=(16,)": (_maximize, {"image_size": (16,)}, "size"),
    "maximize image_size='a'": (_maximize, {"image_size": "a"}, "size"),
    "maximize images=0": (_maximize, {"images": 0}, "images"),
    "maximize images=-1": (_maximize, {"images": -1}, "images"),
    "maximize snapshots=[nan]": (_maximize, {"snapshots": [NAN]}, "snapshots"),
    "maximize snapshots='ab'": (_maximize, {"snapshots": "ab"}, "snapshots"),
    "maximize seed=nan": (_maximize, {"seed": NAN}, "seed"),
    "maximize seed=2**64": (_maximize, {"seed": 2**64}, "seed"),
    "maximize batch=0": (_maximize, {"batch": 0}, "batch"),
    "maximize redirect_relu=-1": (_maximize, {"redirect_relu": -1}, "redirect_relu"),
    "dream octaves=1e20": (_dream, {"octaves": HUGE}, "octaves"),
    "dream jitter=1e20": (_dream, {"jitter": HUGE}, "jitter"),
    "dream lr=inf": (_dream, {"lr": INF}, "lr"),
    "dream octave_scale=nan": (_dream, {"octave_scale": NAN}, "octave_scale"),
    "dream seed=2**64": (_dream, {"seed": 2**64}, "seed"),
    "maximize param=5": (_maximize, {"param": 5}, "param"),
    "maximize param='bogus'": (_maximize, {"param": "bogus"}, "param"),
    "maximize transforms=5": (_maximize, {"transforms": 5}, "transforms"),
    "maximize transforms=[5]": (_maximize, {"transforms": [5]}, "transforms"),
    "dream channels='a'": (_dream, {"channels": "a"}, "channels"),
    "dream channels=[0.5]": (_dream, {"channels": [0.5]}, "channels"),
    "dream channels={'relu2': ['a']}": (_dream, {"channels": {"relu2": ["a"]}}, "channels"),
    "dream channels=-1": (_dream, {"channels": -1}, "channels"),
    "dream layer_weights=['a']": (_dream, {"layer_weights": ["a"]}, "layer_weight"),
    "dream layer_weights={'relu2': 'a'}": (_dream, {"layer_weights": {"relu2": "a"}}, "layer_weight"),
    "maximize snapshots=5.5": (_maximize, {"snapshots": 5.5}, "snapshots"),
    "maximize generator=5": (_maximize, {"generator": 5}, "generator"),
    "dream layers=5": (lambda m, **k: probe.dream(m, IMAGE, 5), {}, "layer"),
    "dream generator=5": (_dream, {"generator": 5}, "generator"),
    "style content_layers=5": (_style, {"content_layers": 5}, "content_layer"),
    "style style_weight='a'": (_style, {"style_weight": "a"}, "style_weight"),
    "style style_scale='a'": (_style, {"style_scale": "a"}, "style_scale"),
    "style generator=5": (_style, {"generator": 5}, "generator"),
    "attribute method=5": (_attribute, {"method": 5}, "method"),
    "feature_maps layers=5": (lambda m: probe.feature_maps(m, IMAGE, layers=5), {}, "layer"),
    "filters layer=5": (lambda m: probe.filters(m, 5), {}, "layer"),
    "record layers=[5]": (lambda m: probe.record(m.module, [5]).__enter__(), {}, "layer"),
    "layers input_shape='a'": (lambda m: probe.layers(m.module, "a"), {}, "input_shape"),
    "layers input_shape=(3, 'a', 16)": (lambda m: probe.layers(m.module, (3, "a", 16)), {}, "input_shape"),
    "save(None)": (lambda m: _maximize(m).save(None), {}, "folder"),
    "save(5)": (lambda m: _maximize(m).save(5), {}, "folder"),
    "save('')": (lambda m: _maximize(m).save(""), {}, "folder"),
    "dream an empty image": (lambda m, **k: probe.dream(m, torch.rand(3, 0, 0), "relu2"), {}, "image"),
    "style lr=nan": (_style, {"lr": NAN}, "lr"),
    "style lr=-1": (_style, {"lr": -1}, "lr"),
    "style size=1e20": (_style, {"size": HUGE}, "size"),
    "style an empty content image": (lambda m, **k: probe.style_transfer(m, torch.rand(3, 0, 0), IMAGE), {}, "content"),
    "attribute target=nan": (_attribute, {"target": NAN}, "target"),
    "attribute size=0": (_attribute, {"size": 0}, "size"),
    "attribute size=1e20": (_attribute, {"size": HUGE}, "size"),
    "attribute baseline='bogus'": (_attribute, {"baseline": "bogus"}, "baseline"),
    "attribute an empty image": (_attribute, {"image": torch.rand(3, 0, 0)}, "image"),
    "record layers=None": (lambda m: probe.record(m.module, None).__enter__(), {}, "layer"),
    "load_model channels=1e20": (lambda m: probe.load_model(m.module, channels=HUGE), {}, "in_channels"),
}


def _state(module: torch.nn.Module) -> dict[str, Any]:
    """Everything a call must leave as it was: modes, requires_grad, weights, devices, every kind of hook."""
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return {
        "modes": {name: m.training for name, m in module.named_modules()},
        "grad": {name: (p.requires_grad, p.device, p.grad is None) for name, p in module.named_parameters()},
        "weights": {name: value.clone() for name, value in module.state_dict().items()},
        "hooks": {name: [len(getattr(m, kind)) for kind in hooks] for name, m in module.named_modules()},
    }


@pytest.mark.parametrize("call,kwargs,param", list(API_CASES.values()), ids=list(API_CASES))
def test_the_api_names_the_bad_argument_and_leaves_the_model_as_it_was(
    call: Callable[..., Any], kwargs: dict[str, Any], param: str
) -> None:
    module = tiny().train()
    loaded = probe.load_model(module, input_size=16, seed=None)
    before = _state(module)
    with pytest.raises(probe.ProbeUsageError) as raised:
        call(loaded, **kwargs)
    assert raised.value.param == param, raised.value
    after = _state(module)
    assert {k: v for k, v in after.items() if k != "weights"} == {k: v for k, v in before.items() if k != "weights"}
    assert all(torch.equal(before["weights"][name], value) for name, value in after["weights"].items())


def test_a_layer_without_a_batch_dimension_is_listed_as_such_and_refused_as_units(tmp_path: Path) -> None:
    """Its (1, 4, 1, 1) output looks like one image's: a dummy batch of two shows it has no batch dimension."""
    from probe.atlas.runner import atlas_layers
    from probe.optimize import inspect_layer

    loaded = probe.load_model(_Biased().eval(), input_size=16)
    rows = {row.name: row for row in probe.layers(loaded.module, loaded.input_shape)}
    assert (rows["bias"].batched, rows["bias"].output_shape, rows["bias"].channels) == (False, (1, 4, 1, 1), None)
    assert (rows["conv"].batched, rows["conv"].channels) == (True, 4)
    with pytest.raises(probe.ProbeUsageError, match="needs a layer whose dim 0 is the image batch") as info:
        inspect_layer(loaded, "bias")
    assert info.value.param == "layer" and inspect_layer(loaded, "conv").units == 4
    with pytest.raises(probe.ProbeUsageError, match="has no \\(C, H, W\\) map") as info:
        atlas_layers(loaded, ["bias"])
    assert info.value.param == "layers" and atlas_layers(loaded, "all") == [("conv", 4)]


def test_a_reader_that_leaves_the_pipe_early_gets_no_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`probe layers vgg16 | head -3` printed 'Error: Broken pipe'; click's own quiet exit applies instead."""
    import probe.cli.layers as layers_command

    def closed(*args: Any, **kwargs: Any) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(layers_command.click, "echo", closed)
    result = CliRunner().invoke(cli, ["layers", "digits"])
    assert result.exit_code == 1 and "Error" not in result.output and not isinstance(result.exception, BrokenPipeError)
