"""Reproducibility: same seed, same bytes; a unit's result does not depend on its batch; the global RNGs are left alone.

One table of methods (:data:`CASES`), each run on the embedded zoo at a few
steps: twice with one seed (bitwise equal), once with another (different, for
the methods that draw random numbers), with the user's global torch, NumPy and
Python generators checked before and after. Then batch independence: a unit
alone, in a batch, and in a batch split into passes.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import probe
from probe import objectives as O
from probe import param as P
from probe import transforms as T
from probe.cli.main import cli

DIGITS = probe.load_model("digits")
SHAPES = probe.load_model("shapes")


def _maximize(objective: Callable[[], O.Objective], model=DIGITS, **options) -> Callable[[int], torch.Tensor]:
    return lambda seed: probe.maximize(model, objective(), steps=2, seed=seed, **options).images


def _caricature() -> O.Objective:
    return O.caricature("conv2", O.activations_of(DIGITS, probe.load_image("digits:3", channels=1), "conv2"))


def _astronaut(size: int = 40) -> torch.Tensor:
    return probe.load_image("skimage:astronaut", size=size)


def _dream(size: int = 40, **options) -> Callable[[int], torch.Tensor]:
    return lambda seed: probe.dream(SHAPES, _astronaut(size), layers=["relu3_1"], steps=2, octaves=2, seed=seed,
                                    **options).image


def _style(styles: list[torch.Tensor] | None = None, **options) -> Callable[[int], torch.Tensor]:
    styles = styles or [probe.load_image("skimage:coffee", size=24)]
    return lambda seed: probe.style_transfer(SHAPES, _astronaut(24), styles, steps=2, init="random", seed=seed,
                                             **options).image


def _attribute(method: str, **options) -> Callable[[int], torch.Tensor]:
    return lambda seed: probe.attribute(DIGITS, "digits:3", method=method, seed=seed, steps=4, samples=4,
                                        **options).attributions[method]


def _weights(spec: str) -> Callable[[int], torch.Tensor]:
    return lambda seed: next(iter(probe.load_model(spec, weights=None, seed=seed).module.state_dict().values()))


def _train(seed: int) -> torch.Tensor:
    from probe.zoo.train import train

    return next(iter(train("digits", seed=seed, epochs=1, limit=16).state_dict.values()))


#: name -> (run(seed) -> tensor, whether a different seed must give a different result)
CASES: dict[str, tuple[Callable[[int], torch.Tensor], bool]] = {
    "channel robust": (_maximize(lambda: O.channel("conv2", range(4))), True),
    "channel plain": (_maximize(lambda: O.channel("conv2", range(4)), preset="plain"), True),
    **{f"param {kind}": (_maximize(lambda: O.channel("conv2_1", range(2)), SHAPES, param=kind, image_size=24), True)
       for kind in P.PARAMETRIZATIONS},
    "neuron": (_maximize(lambda: O.neuron("conv2", range(3))), True),
    "class l1": (_maximize(lambda: O.class_logit(range(3)) - 0.3 * O.l1()), True),
    "direction": (_maximize(lambda: O.direction("conv2", torch.linspace(-1, 1, 50)), images=2), True),
    "diversity": (_maximize(lambda: O.channel("conv2", 3) - O.diversity("conv2"), images=3), True),
    "channel_interpolate + alignment": (
        _maximize(lambda: O.channel_interpolate("conv1", 0, "conv2", 3, 3) - O.alignment("conv2")), True),
    "caricature": (_maximize(_caricature, images=2), True),
    "channel_weight": (_maximize(lambda: O.channel_weight("conv2", torch.linspace(-1, 1, 50))), True),
    "redirected relu": (_maximize(lambda: O.channel("conv2", range(2)), redirect_relu=1), True),
    "accentuate": (lambda seed: probe.accentuate(SHAPES, "shapes:circle", "conv3_1:5", weight=2, steps=2,
                                                 seed=seed).images, True),
    "dream": (_dream(), True),
    "dream tiles": (_dream(size=48, tile_size=24), True),
    "dream zoom": (lambda seed: torch.stack(probe.dream(SHAPES, _astronaut(), layers=["relu3_1"], steps=2, octaves=1,
                                                        frames=2, zoom=1.1, seed=seed).frames), True),
    "dream guide": (_dream(guide="shapes:stripes"), True),
    "style gram": (_style(), True),
    "style w2 + match colours": (_style(style_loss="w2", match_colors=True), True),
    "style two styles, original colours": (
        _style(styles=[probe.load_image("skimage:coffee", size=24), probe.load_image("skimage:chelsea", size=24)],
               style_blend=[0.7, 0.3], original_colors=True), True),
    **{f"attribute {m}": (_attribute(m), False) for m in ("saliency", "integrated-gradients", "guided-backprop",
                                                          "gradcam", "deeplift", "occlusion", "lrp")},
    "attribute smoothgrad": (_attribute("smoothgrad"), True),
    "attribute gradient-shap": (_attribute("gradient-shap", baseline=probe.load_image("digits:5", channels=1)), True),
    "weights none (zoo)": (_weights("lenet5"), True),
    "weights none (torchvision)": (_weights("resnet18"), True),
    "train": (_train, True),
}


def _global_state() -> tuple[torch.Tensor, np.ndarray, object]:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


@pytest.mark.parametrize("name", list(CASES))
def test_same_seed_same_bytes_and_the_global_generators_untouched(name):
    run, random_method = CASES[name]
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    before = _global_state()
    first = run(0)
    after = _global_state()
    assert torch.equal(before[0], after[0]), "torch's global generator was used"
    assert np.array_equal(before[1], after[1]), "NumPy's global generator was used"
    assert before[2] == after[2], "Python's global random was used"
    assert torch.equal(first, run(0))
    if random_method:
        assert not torch.equal(first, run(1))


BATCHED: dict[str, tuple[Callable[[list[int]], O.Objective], dict]] = {
    "channel": (lambda units: O.channel("conv2", units), {}),
    "neuron": (lambda units: O.neuron("conv2", units), {}),
    "class": (lambda units: O.class_logit(units) - 0.3 * O.l1(), {}),
    "maco": (lambda units: O.channel("conv2", units), {"param": "maco"}),
    "cppn": (lambda units: O.channel("conv2", units), {"param": "cppn"}),
    "laplacian": (lambda units: O.channel("conv2", units), {"param": "laplacian"}),
    "pixel, two layers": (lambda units: O.channel("conv1", units) + O.channel("conv2", units), {"preset": "plain"}),
}


@pytest.mark.parametrize("name", list(BATCHED))
def test_a_unit_alone_equals_it_in_a_batch_and_in_split_passes(name):
    objective, options = BATCHED[name]
    alone = probe.maximize(DIGITS, objective([3]), steps=2, **options)
    together = probe.maximize(DIGITS, objective(list(range(4))), steps=2, **options)
    split = probe.maximize(DIGITS, objective(list(range(4))), steps=2, batch=3, **options)  # unit 3 alone in pass 2
    assert torch.equal(alone.images[0], together.images[3])  # 8-bit images: bitwise on the CPU
    assert torch.equal(together.images, split.images)
    torch.testing.assert_close(alone.scores[0], together.scores[3])  # batched kernels round differently
    torch.testing.assert_close(alone.history[:, 0], together.history[:, 3])


@pytest.mark.parametrize("objective", [
    lambda: O.channel("conv2", 3) - O.diversity("conv2"),  # the whole request is one group
    lambda: O.channel_interpolate("conv1", 0, "conv2", 3, 4) - O.alignment("conv2"),  # neighbours read each other
], ids=["diversity", "alignment"])
def test_images_that_read_each_other_stay_in_one_pass_whatever_the_batch(objective):
    whole = probe.maximize(DIGITS, objective(), images=4, steps=2)
    for batch in (1, 2, "auto"):
        assert torch.equal(probe.maximize(DIGITS, objective(), images=4, steps=2, batch=batch).images, whole.images)


def test_diversity_groups_combine_to_whole_groups():
    assert O.joint_group([2, 3]) == 6 and O.joint_group([1, None]) is None and O.joint_group([]) == 1
    grouped = O.channel("conv2", 3) - O.diversity("conv2", group=2) - O.diversity("conv1", group=3)
    assert grouped.group == 6


@pytest.mark.parametrize("rows", [
    lambda: O.caricature("conv2", O.activations_of(DIGITS, probe.load_image("digits:3", channels=1), "conv2")),
    lambda: O.direction("conv2", torch.linspace(-1, 1, 50)[None]),
], ids=["caricature of one image", "direction of one row"])
def test_a_one_row_target_is_shared_by_every_image_in_any_pass(rows):
    whole = probe.maximize(DIGITS, rows(), images=3, steps=2)
    assert torch.equal(probe.maximize(DIGITS, rows(), images=3, steps=2, batch=1).images, whole.images)
    assert not torch.equal(whole.images[0], whole.images[1])  # copies 0, 1, 2 of the unit: their own streams


def test_atlas_images_do_not_depend_on_the_chunk_and_equal_maximize(tmp_path):
    from probe.atlas import build_atlas

    pngs = {}
    for chunk in (2, 5):
        out = tmp_path / f"c{chunk}"
        build_atlas("digits", out=out, layers=["conv1"], dataset="zoo", limit=8, examples=1, steps=2, chunk=chunk)
        pngs[chunk] = {p.name: p.read_bytes() for p in (out / "images").glob("conv1-*-s0.png")}
    assert len(pngs[2]) == 25 and pngs[2] == pngs[5]
    alone = probe.maximize(DIGITS, O.channel("conv1", [7]), steps=2).images[0]
    atlas = torch.from_numpy(np.array(Image.open(tmp_path / "c2" / "images" / "conv1-0007-s0.png"))).float() / 255
    assert torch.equal(alone[0], atlas)


class _Noisy(torch.nn.Module):
    """A model that draws random numbers itself in eval mode (a noise layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * torch.randn_like(x)


def test_a_model_that_draws_itself_follows_the_seed_and_leaves_the_global_generator_alone(tmp_path):
    torch.manual_seed(0)
    noisy = probe.load_model(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), _Noisy(), torch.nn.Conv2d(4, 4, 3)),
                             input_size=(16, 16))
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first = probe.maximize(noisy, O.channel("2", range(4)), steps=2, batch=2)
    assert torch.equal(before, torch.get_rng_state())
    assert torch.equal(first.images, probe.maximize(noisy, O.channel("2", range(4)), steps=2, batch=2).images)
    assert not torch.equal(first.images, probe.maximize(noisy, O.channel("2", range(4)), steps=2, batch=2,
                                                        seed=1).images)
    probe.maximize(noisy, O.channel("2", range(4)), steps=2, batch=2, resume=tmp_path / "chunks")
    sorted((tmp_path / "chunks").glob("*.pt"))[0].unlink()  # the first chunk is rendered again, the second read
    resumed = probe.maximize(noisy, O.channel("2", range(4)), steps=2, batch=2, resume=tmp_path / "chunks")
    assert resumed.settings["resume"]["reused"] == 1
    assert torch.equal(resumed.images, first.images)  # each chunk's draws are its own: a resume equals a whole run


def test_param_and_transforms_never_draw_from_the_global_generator():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    for kind in P.PARAMETRIZATIONS:  # no generator: seed 0
        assert torch.equal(P.image_param(kind, (1, 3, 8, 8))(), P.image_param(kind, (1, 3, 8, 8))())
    assert torch.equal(before, torch.get_rng_state())
    images = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for transform in (T.jitter(2), T.random_scale([0.9, 1.1]), T.random_rotate([-5, 5])):
        with pytest.raises(probe.ProbeUsageError, match="torch.Generator"):
            transform(images)
        assert transform(images, torch.Generator().manual_seed(1)).dim() == 4
    assert torch.equal(T.center_fit(6)(images), images[..., 1:7, 1:7])  # deterministic ones need none


def test_stochastic_attribution_takes_every_seed_the_cli_takes():
    result = probe.attribute(DIGITS, "digits:3", method=["gradient-shap", "smoothgrad"], seed=2**63 - 1, samples=2)
    assert set(result.attributions) == {"gradient-shap", "smoothgrad"}


FRESH = """
import random, numpy as np, torch, probe
from probe import objectives as O
torch.manual_seed(1); np.random.seed(2); random.seed(3)
states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
images = probe.maximize(probe.load_model("digits"), O.channel("conv2", [1, 3]), steps=2).images  # digits: sklearn
heat = probe.attribute(probe.load_model("digits"), "digits:3", method="smoothgrad", samples=2).attributions
assert torch.equal(states[0], torch.get_rng_state()) and np.array_equal(states[1], np.random.get_state()[1])
assert states[2] == random.getstate(), "Python's random moved (importing scikit-learn imports rich, which draws)"
print(images.mul(255).round().int().flatten().tolist(), heat["smoothgrad"].flatten().tolist())
"""


def test_a_fresh_process_gives_the_same_numbers_and_leaves_its_global_generators_alone():
    done = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    images = probe.maximize(DIGITS, O.channel("conv2", [1, 3]), steps=2).images
    heat = probe.attribute(DIGITS, "digits:3", method="smoothgrad", samples=2).attributions["smoothgrad"]
    assert done.stdout.strip() == f"{images.mul(255).round().int().flatten().tolist()} {heat.flatten().tolist()}"


def _cli(tmp_path, name: str, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["maximize", "--steps", "2", "--out", str(tmp_path / name), "--quiet", *args])
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / name / "manifest.json").read_text())


def test_cli_a_unit_alone_in_a_batch_and_twice_gives_the_same_png_and_numbers(tmp_path):
    first = _cli(tmp_path, "a", "--layer", "conv2", "--units", "0-5", "--per-unit", "2")
    second = _cli(tmp_path, "b", "--layer", "conv2", "--units", "0-5", "--per-unit", "2")
    split = _cli(tmp_path, "c", "--layer", "conv2", "--units", "0-5", "--per-unit", "2", "--batch", "2")
    alone = _cli(tmp_path, "d", "--layer", "conv2", "--units", "3", "--per-unit", "2")
    assert first["items"] == second["items"]
    for item in first["items"]:
        png = (tmp_path / "a" / item["file"]).read_bytes()
        assert png == (tmp_path / "b" / item["file"]).read_bytes() == (tmp_path / "c" / item["file"]).read_bytes()
    for item in alone["items"]:
        assert (tmp_path / "d" / item["file"]).read_bytes() == (tmp_path / "a" / item["file"]).read_bytes()
    other = _cli(tmp_path, "e", "--layer", "conv2", "--units", "3", "--per-unit", "2", "--seed", "1")
    reseeded = (tmp_path / "e" / other["items"][0]["file"]).read_bytes()
    assert reseeded != (tmp_path / "d" / alone["items"][0]["file"]).read_bytes()
