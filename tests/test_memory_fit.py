"""A run that cannot fit is refused before its first step, by one estimate (:mod:`probe.memory`) that the
Python API, the CLI, ``batch="auto"`` and the atlas share; measuring it never allocates what the run would."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from tinynets import tiny_gray

import probe
import probe.memory
from probe import objectives as O
from probe.atlas import build_atlas
from probe.cli.main import cli
from probe.errors import ProbeRuntimeError
from probe.hooks import evaluating
from probe.memory import STEP_HEADROOM, PassCost, check_run, fit_batch, saved_bytes
from probe.models import Preprocess, load_model
from probe.optimize import _image_keys, _pass, _prepare, _render_chunk, pass_cost, plan_memory

MB = 2**20


def gray() -> probe.LoadedModel:
    return load_model(tiny_gray(), preprocess=Preprocess((0.2,), (0.3,), 1, (16, 16)))


def free(monkeypatch: pytest.MonkeyPatch, cpu: float, cuda: float | None = None) -> None:
    """The machine has ``cpu`` bytes free (and ``cuda`` on a GPU)."""
    monkeypatch.setattr(probe.memory, "available_bytes",
                        lambda device: cpu if torch.device(device).type == "cpu" else cuda)


def sides_seen(model: probe.LoadedModel) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    seen: list[int] = []
    handle = model.module.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-1]))
    return seen, handle


def eight() -> O.Objective:
    """conv2's six units and two of them again: eight images."""
    return O.channel("conv2", [0, 1, 2, 3, 4, 5, 0, 1])


def request(model: probe.LoadedModel, units: int, size: int, steps: int = 1):
    return _prepare(model, eight() if units == 8 else O.channel("conv2", range(units)), steps=steps, lr=None, param=None, transforms=None,
                    preset="robust", image_size=size, images=None, snapshots=(), progress_every=None, seed=0,
                    generator=None, device="cpu", precision="fp32", channels_last=False, redirect_relu=0)


def test_a_size_that_cannot_fit_is_refused_before_any_step_measuring_only_a_small_pass(monkeypatch):
    model = gray()
    seen, handle = sides_seen(model)
    try:
        free(monkeypatch, 4 * MB)  # 2 images of 256 px keep 1 MiB of results; their pass needs far more
        with pytest.raises(ProbeRuntimeError, match=r"2 image\(s\) of 256x256 .* needs about .* MiB of memory "
                                                    r"\(1\.0 MiB of kept results, .* per pass\), but 4\.0 MiB is free "
                                                    r"on cpu; .*--size \(image_size=\)"):
            probe.maximize(model, O.channel("conv2", range(2)), image_size=256, steps=1)
        assert seen and max(seen) <= 32  # measured at 4x the model's input area, never at 256 px
        seen.clear()
        with pytest.raises(ProbeRuntimeError, match=r"16384x16384 over 1 steps needs about 4\.0 GiB of memory, but 4\.0 MiB"):  # results alone: nothing runs
            probe.maximize(model, O.channel("conv2", range(2)), image_size=16384, steps=1)
        assert seen == []
    finally:
        handle.remove()
    free(monkeypatch, 64 * MB)
    assert probe.maximize(model, O.channel("conv2", range(2)), image_size=16, steps=1).images.shape == (2, 1, 16, 16)


def test_the_estimate_scales_what_a_real_step_saves_and_adds_the_optimizer_state():
    model = gray()
    req = request(model, 2, 128)
    keys = _image_keys(req.objective, 2, 0)
    with evaluating(req.loaded.module):
        estimate = pass_cost(req, keys[:1])  # measured at 32 px and scaled by (128 / 32) ** 2
        held = frozenset(t.data_ptr() for t in (*req.loaded.module.parameters(), *req.loaded.module.buffers()))
        real = saved_bytes(lambda: _render_chunk(req.loaded, req.objective, slice(0, 2), req.shape, keys, req.factory,
                                                 req.transform, "adam", 0.05, 1, [], "fp32", None, 1), exclude=held)
    state = 4 * 4 * 128 * 128  # the image's parameters: value, gradient, Adam's two moments
    assert 0.8 * STEP_HEADROOM * real / 2 < estimate.per_image - state < 1.25 * STEP_HEADROOM * real / 2 + state


@pytest.mark.parametrize("redirect", [0, 2])
def test_the_measure_is_what_a_real_first_step_saves_to_the_byte(redirect):
    """At the run's own size nothing is scaled: the measure is :data:`STEP_HEADROOM` times what the render's
    first step saves, plus the parameters' four copies and the scores kept per step. A run that redirects its
    ReLUs saves more in that step (the redirected ReLU keeps its input), and the measure said less."""
    model = gray()
    req = _prepare(model, O.channel("relu2", range(3)), steps=2, lr=None, param=None, transforms=None,
                   preset="robust", image_size=24, images=None, snapshots=(), progress_every=None, seed=0,
                   generator=None, device="cpu", precision="fp32", channels_last=False, redirect_relu=redirect)
    keys = _image_keys(req.objective, 3, 0)
    held = frozenset(t.data_ptr() for t in (*req.loaded.module.parameters(), *req.loaded.module.buffers()))
    with evaluating(req.loaded.module):
        cost = pass_cost(req, keys)
        real = saved_bytes(lambda: _render_chunk(req.loaded, req.objective, slice(0, 3), req.shape, keys, req.factory,
                                                 req.transform, "adam", 0.05, 1, [], "fp32", None, 1, redirect),
                           exclude=held)
    image, _ = _pass(req.loaded, req.objective, req.factory, req.transform, "fp32", keys, req.shape, slice(0, 3))
    params = sum(t.numel() * t.element_size() for t in image.params)
    kept = 4 * 2 + 2 * 2  # per image on the device: a float32 score per step, a flag pair per step
    assert real > 0 and cost.per_image == pytest.approx((STEP_HEADROOM * real + 4 * params) / 3 + kept)


def test_a_batch_that_cannot_fit_is_refused_naming_it_and_auto_takes_what_fits(monkeypatch):
    model = gray()
    units = eight()
    free(monkeypatch, 1e12)
    assert plan_memory(model, units, steps=1, image_size=64, batch="auto") == 8  # the estimate maximize makes
    req = request(model, 8, 64)
    with evaluating(req.loaded.module):
        cost = pass_cost(req, _image_keys(req.objective, 8, 0)[:1])
    free(monkeypatch, req.kept() + cost.at(3))  # 3 images fit in a pass, 4 do not
    with pytest.raises(ProbeRuntimeError, match=r"passes of 8 needs about .* is free on cpu; give a smaller --batch "
                                                r"\(batch=\)"):
        probe.maximize(model, units, steps=1, image_size=64, batch=8)
    auto = probe.maximize(model, units, steps=1, image_size=64, batch="auto")
    assert auto.settings["batch"] == 1  # half of the memory holds one image's pass; a power of two
    assert plan_memory(model, units, steps=1, image_size=64, batch=3) == 3


def test_on_cuda_the_results_are_the_hosts_and_the_pass_the_devices(monkeypatch):
    cuda = torch.device("cuda")
    pass_ = PassCost(per_image=10 * MB)
    free(monkeypatch, cpu=50 * MB, cuda=100 * MB)
    check_run(40 * MB, pass_, 8, cuda, "the run", "change it")  # 40 on the host, 80 on the device: fits
    with pytest.raises(ProbeRuntimeError, match=r"the run keeps about 60\.0 MiB of results, but 50\.0 MiB is free on cpu"):
        check_run(60 * MB, pass_, 8, cuda, "the run", "change it")
    with pytest.raises(ProbeRuntimeError, match=r"needs about 110\.0 MiB of memory, but 100\.0 MiB is free on cuda"):
        check_run(40 * MB, pass_, 11, cuda, "the run", "change it")
    with pytest.raises(ProbeRuntimeError, match=r"needs about 120\.0 MiB .*40\.0 MiB of kept results.*50\.0 MiB is free on cpu"):
        check_run(40 * MB, pass_, 8, "cpu", "the run", "change it")  # on the CPU both share the memory
    assert fit_batch(40 * MB, pass_, cuda, 64, 1, 0.8) == 8  # 0.8 x 100 MiB, the results elsewhere
    assert fit_batch(10 * MB, pass_, "cpu", 64, 1, 0.8) == 3  # 0.8 x 50 MiB less the results
    assert fit_batch(10 * MB, pass_, "cpu", 64, 2, 0.8, powers_of_two=True) == 2
    assert fit_batch(10 * MB, pass_, "cpu", 64, 1, 0.8, powers_of_two=True) == 2


def test_the_atlas_refuses_a_chunk_that_cannot_fit_before_it_writes_anything(tmp_path, monkeypatch):
    free(monkeypatch, 1 * MB)
    with pytest.raises(ProbeRuntimeError, match=r"a chunk of 4 image\(s\) of 28x28 over 2 steps needs about .* "
                                                r"lower --per-unit, --chunk or --steps"):
        build_atlas("digits", out=tmp_path / "atlas", layers=["conv1", "conv2"], steps=2, chunk=4, max_units=4, limit=4)
    assert not (tmp_path / "atlas").exists()


def test_the_cli_says_so_in_one_line_naming_the_option(monkeypatch, tmp_path):
    free(monkeypatch, 8 * MB)
    result = CliRunner().invoke(cli, ["maximize", "--layer", "conv2", "--size", "512", "--steps", "1",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--size" in lines[0] and "is free on cpu" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_kept_results_are_refused_in_the_same_words_from_python_and_the_cli_each_naming_its_own_options(
        monkeypatch, tmp_path):
    # 2,000 images of 512 px keep 3.9 GiB: the results alone cannot fit, the CLI's pass that learns conv2's
    # shape at 512 px (302 MiB, estimated first) can
    free(monkeypatch, 1024 * MB)
    with pytest.raises(ProbeRuntimeError) as python:
        probe.maximize(probe.load_model("digits"), O.channel("conv2", [0] * 1000 + [1] * 1000), image_size=512,
                       steps=1)
    result = CliRunner().invoke(cli, ["maximize", "--layer", "conv2", "--units", "0-1", "--per-unit", "1000",
                                      "--size", "512", "--steps", "1", "--out", str(tmp_path / "run")])
    said, advice = str(python.value).split("; ", 1)
    assert said == ("maximizing 2,000 image(s) of 512x512 over 1 steps needs about 3.9 GiB of memory, but 1.0 GiB "
                    "is free on cpu")
    assert result.exit_code == 1 and said in result.output, result.output
    assert "--size (image_size=)" in advice and "image_size=" not in result.output and "--size" in result.output


def test_dream_and_style_refuse_kept_results_that_cannot_fit_before_their_first_step(monkeypatch):
    # from Python, dream's frames and style's steps x snapshots had no check: frames=2**31-1 dreamed on for
    # ever, and style listed 2**31 snapshot steps before its first one; a tiled dream checked nothing
    shapes = probe.load_model("shapes")
    with pytest.raises(ProbeRuntimeError, match=r"64x64 dream of 2,147,483,647 frames needs about .* --frames \(frames=\)"):
        probe.dream(shapes, torch.rand(3, 64, 64), frames=2**31 - 1, steps=1)
    with pytest.raises(ProbeRuntimeError, match=r"style transfer over 2,147,483,647 steps .* --snapshots"):
        probe.style_transfer(shapes, torch.rand(3, 32, 32), torch.rand(3, 32, 32), size=32, steps=2**31 - 1,
                             snapshots=2**31 - 1)
    free(monkeypatch, 1 * MB)  # a 512 px image alone is 3 MiB: tiles bound the activations, not the images
    with pytest.raises(ProbeRuntimeError, match=r"a 512x512 dream needs about .* 1\.0 MiB is free on cpu"):
        probe.dream(shapes, torch.rand(3, 512, 512), tile_size=64, steps=1, octaves=1)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_the_cpu_has_what_a_container_or_ulimit_leaves(tmp_path, monkeypatch, version):
    """MemAvailable is the host's: in a container limited to 1 GiB on a large host, or under ``ulimit -v``,
    every check passed and the kernel killed the run without a word (or refused its allocations)."""
    import resource

    limit, usage, stat = tmp_path / "limit", tmp_path / "usage", tmp_path / "stat"
    limit.write_text(f"{1024 * MB}\n")
    usage.write_text(f"{700 * MB}\n")
    key = "inactive_file" if version == "v2" else "total_inactive_file"
    stat.write_text(f"anon 1\n{key} {200 * MB}\n")  # page cache the kernel reclaims: not used up
    files = (str(limit), str(usage), key, str(stat))
    monkeypatch.setattr(probe.memory, "CGROUP_FILES", (files,) if version == "v2" else ((str(tmp_path / "no"),) * 4, files))
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert probe.memory.available_bytes("cpu") == 524 * MB  # 1024 - (700 - 200)
    limit.write_text("max\n" if version == "v2" else f"{2**63 - 4096}\n")  # no limit: the machine's memory
    assert probe.memory.available_bytes("cpu") == probe.memory._system_available()
    mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
    monkeypatch.setattr(resource, "getrlimit", lambda which: (mapped + 64 * MB, resource.RLIM_INFINITY))
    assert 0 < probe.memory.available_bytes("cpu") <= 64 * MB  # ulimit -v: the address space left


def test_a_dream_image_too_large_to_resize_is_refused_before_it_is_loaded(monkeypatch):
    """``probe dream IMAGE --size 30000`` resized the photo (10 GB) before any check: under a memory limit it
    ended in the late out-of-memory line."""
    import probe.cli.dream as dream_command

    free(monkeypatch, 100 * MB)
    monkeypatch.setattr(dream_command, "load_image", lambda *args, **kwargs: pytest.fail("loaded before the check"))
    result = CliRunner().invoke(cli, ["dream", "skimage:astronaut", "--model", "shapes", "--size", "30000", "--steps", "1"])
    assert result.exit_code == 1 and "IMAGE resized to --size 30000 needs about" in result.output, result.output
    assert "give a smaller --size" in result.output
