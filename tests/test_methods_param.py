"""CPPN and Laplacian-pyramid parametrizations: shapes, seeds, their definitions, and maximize with them."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import probe
from probe import param as P
from probe.cli.main import cli
from probe.errors import ProbeUsageError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_a_cppn_starts_mid_gray_is_seeded_and_renders_at_any_size():
    image = P.cppn_image((2, 3, 9, 7), hidden=6, layers=3, generator=_gen())
    assert image.kind == "cppn" and len(image.params) == 6
    assert torch.equal(image(), torch.full((2, 3, 9, 7), 0.5))  # the output layer starts at zero
    with torch.no_grad():
        image.params[2].normal_(generator=_gen(1))  # the output weights
    again = P.cppn_image((2, 3, 9, 7), hidden=6, layers=3, generator=_gen())
    with torch.no_grad():
        again.params[2].normal_(generator=_gen(1))
    assert torch.equal(image(), again()) and not torch.equal(image()[0], image()[1])
    with pytest.raises(ProbeUsageError, match="layers >= 2"):
        P.cppn_image((1, 1, 4, 4), layers=1)


def test_a_cppn_is_a_function_of_the_coordinates():
    image = P.cppn_image((1, 1, 5, 5), hidden=4, layers=2, generator=_gen())
    w0, w1, b0, b1 = image.params
    with torch.no_grad():
        w1.fill_(1.0)
    r = 3**0.5
    ys, xs = torch.meshgrid(torch.linspace(-r, r, 5), torch.linspace(-r, r, 5), indexing="ij")
    hidden = torch.atan(torch.einsum("kc,chw->khw", w0[0], torch.stack([ys, xs])))
    expected = torch.sigmoid(torch.cat([hidden / 0.67, hidden**2 / 0.6]).sum(0))
    assert torch.allclose(image()[0, 0], expected, atol=1e-5)


def test_the_laplacian_pyramid_is_the_sum_of_upsampled_levels():
    image = P.laplacian_image((1, 1, 10, 12), levels=3, sd=1.0, generator=_gen())
    shapes = [tuple(p.shape[-2:]) for p in image.params]
    assert shapes == [(10, 12), (5, 6), (3, 3)]
    total = image.params[0] + sum(F.interpolate(p, size=(10, 12), mode="bilinear", align_corners=False)
                                  for p in image.params[1:])
    assert torch.allclose(image(), torch.sigmoid(total))
    (grads) = torch.autograd.grad(image().sum(), image.params)
    assert all(g.abs().sum() > 0 for g in grads)
    assert torch.equal(image(), P.laplacian_image((1, 1, 10, 12), levels=3, sd=1.0, generator=_gen())())
    assert P.image_param("laplacian", (1, 3, 8, 8)).options["decorrelate"] is True


@pytest.mark.parametrize("kind", ["cppn", "laplacian"])
def test_maximize_climbs_with_each_new_parametrization(kind):
    m = probe.load_model("digits")
    result = probe.maximize(m, "fc2:3", param=kind, steps=16, transforms="none")
    assert result.settings["param"].startswith(kind)
    assert result.settings["lr"] == (0.005 if kind == "cppn" else 0.05)
    assert result.history[-1, 0] > result.history[0, 0] + 1


def test_cli_param_choice(tmp_path):
    out = tmp_path / "g"
    result = CliRunner().invoke(cli, ["maximize", "--target", "fc2:1", "--param", "laplacian", "--steps", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["options"]["param"].startswith("laplacian")
    bad = CliRunner().invoke(cli, ["maximize", "--target", "fc2:1", "--param", "wavelet"])
    assert bad.exit_code == 2 and "'--param'" in bad.output
