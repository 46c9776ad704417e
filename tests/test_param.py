"""Parametrizations: output range, shapes, seeding, colour decorrelation, init round trips, 1/f scaling."""

from __future__ import annotations

import pytest
import torch

from probe import param as P
from probe.errors import ProbeUsageError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", ["pixel", "fft"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_images_stay_in_range_whatever_the_parameters(kind, channels):
    image = P.image_param(kind, (2, channels, 9, 12), generator=gen())
    assert image().shape == (2, channels, 9, 12)
    with torch.no_grad():
        for tensor in image.params:
            tensor.copy_(torch.randn(tensor.shape, generator=gen(1)) * 1e3)
    out = image()
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert out.min() < 0.01 and out.max() > 0.99  # the whole range is reachable


@pytest.mark.parametrize("kind", ["pixel", "fft"])
def test_start_is_mid_gray_and_seeded(kind):
    a = P.image_param(kind, (2, 3, 8, 8), generator=gen(3))()
    b = P.image_param(kind, (2, 3, 8, 8), generator=gen(3))()
    c = P.image_param(kind, (2, 3, 8, 8), generator=gen(4))()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - 0.5).abs().max() < 0.1


def test_params_are_leaves_that_require_grad_and_images_are_differentiable():
    image = P.fft_image((1, 3, 8, 8), generator=gen())
    (param,) = image.params
    assert param.is_leaf and param.requires_grad
    (grad,) = torch.autograd.grad(image().sum(), image.params)
    assert grad.shape == param.shape and grad.abs().sum() > 0


def test_clip_squash_projects_onto_the_unit_interval():
    image = P.pixel_image((1, 1, 4, 4), squash="clip", generator=gen())
    assert image.constrain_fn is not None and image.options["squash"] == "clip"
    (raw,) = image.params
    assert image() is raw  # the image is the parameter itself
    with torch.no_grad():
        raw.fill_(3.0)
        raw[0, 0, 0, 0] = -2.0
    image.constrain()
    assert raw.max() == 1.0 and raw.min() == 0.0


def test_decorrelation_defaults_and_checks():
    assert P.pixel_image((1, 3, 4, 4)).options["decorrelate"] is True
    assert P.pixel_image((1, 1, 4, 4)).options["decorrelate"] is False
    assert P.fft_image((1, 3, 4, 4), decorrelate=False).options["decorrelate"] is False
    with pytest.raises(ProbeUsageError, match="3 \\(RGB\\) channels"):
        P.fft_image((1, 1, 4, 4), decorrelate=True)
    with pytest.raises(ProbeUsageError, match="decorrelate=False"):
        P.pixel_image((1, 3, 4, 4), squash="clip", decorrelate=True)


def test_color_decorrelation_is_the_normalized_lucid_matrix_and_invertible():
    t = torch.zeros(1, 3, 1, 1)
    t[0, 0] = 1.0
    first_column = P.COLOR_CORRELATION_SVD_SQRT[:, 0]
    expected = first_column / P.COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
    assert torch.allclose(P.decorrelate_colors(t)[0, :, 0, 0], expected.float())
    x = torch.randn(2, 3, 5, 5, generator=gen())
    assert torch.allclose(P.correlate_colors(P.decorrelate_colors(x)), x, atol=1e-5)


@pytest.mark.parametrize("kind", ["pixel", "fft"])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 1, 7, 9)])
def test_init_image_round_trips(kind, shape):
    target = torch.rand(shape, generator=gen(5)) * 0.9 + 0.05
    image = P.image_param(kind, shape, init=target)
    assert torch.allclose(image(), target, atol=1e-4)


def test_rfft2d_frequencies():
    f = P.rfft2d_frequencies(4, 6)
    assert f.shape == (4, 4) and f[0, 0] == 0
    assert f[0, 1] == pytest.approx(1 / 6) and f[1, 0] == pytest.approx(1 / 4) and f[2, 3] == pytest.approx(0.5 * 2**0.5)


def test_one_over_f_scaling_puts_the_initial_energy_in_low_frequencies():
    def low_to_high(decay: float) -> float:
        image = P.fft_image((64, 1, 32, 32), decay_power=decay, generator=gen())
        logits = torch.logit(image().detach())
        power = torch.fft.rfft2(logits).abs().pow(2).mean(dim=(0, 1))
        f = P.rfft2d_frequencies(32, 32)
        return float(power[(f > 0) & (f < 0.1)].mean() / power[f > 0.4].mean())

    assert low_to_high(1.0) > 50 * low_to_high(0.0)
    assert 0.5 < low_to_high(0.0) < 2


def test_bad_requests():
    with pytest.raises(ProbeUsageError, match="parametrizations are: pixel, fft"):
        P.image_param("wavelet", (1, 1, 4, 4))
    with pytest.raises(ProbeUsageError, match="\\(N, C, H, W\\)"):
        P.pixel_image((1, 4, 4))
    with pytest.raises(ProbeUsageError, match="squashes are"):
        P.pixel_image((1, 1, 4, 4), squash="tanh")
    with pytest.raises(ProbeUsageError, match="bad option"):
        P.image_param("fft", (1, 1, 4, 4), squash="clip")
    with pytest.raises(ProbeUsageError, match="do not fit"):
        P.pixel_image((2, 1, 4, 4), init=torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize("kind", ["pixel", "fft", "maco", "laplacian"])
def test_no_step_copies_the_colour_matrix_again(kind, monkeypatch):
    """Every RGB parametrization mixes its colours with the matrix it copied to its device once: maco and
    laplacian copied it at every call of the image (on a GPU, a copy that waits for the device)."""
    copied = []
    mix = P.decorrelate_colors
    monkeypatch.setattr(P, "decorrelate_colors", lambda t, matrix=None: copied.append(matrix is None) or mix(t, matrix))
    options = {"spectrum": torch.ones(3, 16, 9)} if kind == "maco" else {}
    image = P.image_param(kind, (2, 3, 16, 16), generator=gen(), **options)
    first = image()
    assert torch.equal(image(), first) and copied == [False, False]
