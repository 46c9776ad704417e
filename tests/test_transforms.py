"""Each transform on hand-made tensors: exact outputs, shapes, seeded randomness, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from probe import transforms as T
from probe.errors import ProbeUsageError


def grid(n: int = 4) -> torch.Tensor:
    """(1, 1, n, n) holding 0 .. n*n-1 row by row."""
    return torch.arange(n * n, dtype=torch.float32).view(1, 1, n, n)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pad_constant_is_exact():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = T.pad(1)(x, gen())
    expected = torch.full((1, 1, 4, 4), 0.5)
    expected[..., 1:3, 1:3] = x
    assert torch.equal(out, expected)


def test_pad_reflect_and_zero_width():
    x = grid(3)
    out = T.pad(1, mode="reflect")(x)
    assert out.shape == (1, 1, 5, 5)
    assert torch.equal(out[0, 0, 0, 1:4], x[0, 0, 1])  # the row above mirrors row 1
    assert T.pad(0)(x) is x


def test_pad_rejects_bad_arguments():
    with pytest.raises(ProbeUsageError, match="pad width"):
        T.pad(-1)
    with pytest.raises(ProbeUsageError, match="modes are: constant, reflect"):
        T.pad(2, mode="mirror")


def test_jitter_crops_one_of_the_possible_windows():
    x = grid(4)
    windows = {(oy, ox): x[..., oy : oy + 3, ox : ox + 3] for oy in range(2) for ox in range(2)}
    seen = set()
    generator = gen()
    for _ in range(40):
        out = T.jitter(1)(x, generator)
        assert out.shape == (1, 1, 3, 3)
        matches = [key for key, window in windows.items() if torch.equal(out, window)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(windows)  # every offset occurs


def test_jitter_is_reproducible_and_checks_size():
    x = torch.rand(2, 3, 8, 8, generator=gen(1))
    assert torch.equal(T.jitter(3)(x, gen(5)), T.jitter(3)(x, gen(5)))
    assert T.jitter(0)(x) is x
    with pytest.raises(ProbeUsageError, match="too large"):
        T.jitter(8)(x, gen())


def test_random_scale_matches_bilinear_interpolation():
    x = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    out = T.random_scale([2.0])(x, gen())
    assert torch.equal(out, F.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False))
    assert T.random_scale([1.0])(x, gen()) is x
    sizes = {T.random_scale([0.5, 1.0, 1.5])(grid(4), g).shape[-1] for g in [gen(s) for s in range(20)]}
    assert sizes == {2, 4, 6}


def test_random_rotate_by_right_angles_is_exact():
    x = grid(4)
    assert torch.allclose(T.random_rotate([90])(x, gen()), torch.rot90(x, k=1, dims=(2, 3)), atol=1e-5)
    assert torch.allclose(T.random_rotate([180])(x, gen()), torch.flip(x, dims=(2, 3)), atol=1e-5)
    assert T.random_rotate([0])(x, gen()) is x


def test_random_rotate_keeps_size_and_fills_corners():
    x = torch.ones(1, 1, 6, 10)
    out = T.random_rotate([30], fill=0.0)(x, gen())
    assert out.shape == x.shape
    assert out[0, 0, 0, 0] < 0.5 and out[0, 0, 3, 5] == pytest.approx(1.0)  # corner filled, centre kept
    border = T.random_rotate([30])(x, gen())
    assert torch.allclose(border, x)  # border replication of a constant image changes nothing


def test_center_fit_crops_and_pads_about_the_centre():
    x = grid(4)
    assert torch.equal(T.center_fit(2)(x), x[..., 1:3, 1:3])
    padded = T.center_fit((6, 5), value=-1.0)(x)
    assert padded.shape == (1, 1, 6, 5)
    assert torch.equal(padded[..., 1:5, 0:4], x) and padded[0, 0, 0, 0] == -1 and padded[0, 0, 1, 4] == -1


def test_compose_applies_in_order_and_flattens():
    x = torch.tensor([[[[1.0]]]])
    chain = T.compose(T.pad(1, value=0.0), [T.pad(1, value=2.0)])
    assert len(chain) == 2
    out = chain(x, gen())
    assert out.shape == (1, 1, 5, 5) and out[0, 0, 0, 0] == 2.0 and out[0, 0, 1, 1] == 0.0 and out[0, 0, 2, 2] == 1.0
    assert len(T.compose(chain, T.jitter(1))) == 3


def test_transforms_for_size_keep_the_size_and_are_seeded():
    x = torch.rand(3, 1, 28, 28, generator=gen(2))
    chain = T.compose(*T.transforms_for_size(28))
    outs = [chain(x, g) for g in (gen(7), gen(7), gen(8))]
    assert all(out.shape == x.shape for out in outs)
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    wide = T.compose(*T.transforms_for_size((32, 48)))
    assert wide(torch.rand(2, 3, 32, 48, generator=gen()), gen(3)).shape == (2, 3, 32, 48)
    still = T.compose(*T.transforms_for_size(28, strength=0))
    assert torch.equal(still(x, gen()), x)


def test_transforms_for_size_scale_shifts_with_size():
    small = T.transforms_for_size(28)
    large = T.transforms_for_size(224)
    assert (small[0].width, small[1].distance, small[4].distance) == (2, 1, 1)
    assert (large[0].width, large[1].distance, large[4].distance) == (12, 8, 4)
    assert [type(t) for t in T.standard_transforms()] == [T.Pad, T.Jitter, T.RandomScale, T.RandomRotate, T.Jitter]


def test_gradients_flow_through_every_transform():
    x = torch.rand(2, 3, 16, 16, generator=gen(4), requires_grad=True)
    chain = T.compose(T.pad(2, mode="reflect"), T.jitter(2), T.random_scale([1.1]), T.random_rotate([7]),
                      T.center_fit(16))
    (grad,) = torch.autograd.grad(chain(x, gen()).sum(), x)
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_transforms_need_a_batch():
    with pytest.raises(ProbeUsageError, match=r"\(N, C, H, W\)"):
        T.jitter(1)(torch.zeros(3, 8, 8))


def test_a_step_of_random_transforms_hashes_its_numbers_once_and_draws_the_same(monkeypatch):
    from probe.streams import ImageStreams

    keys = [11, 12, 13]
    sequential, ahead = ImageStreams(keys), ImageStreams(keys)
    expected = [sequential.uniform(2), sequential.uniform(1), sequential.uniform(3)]
    ahead.prefetch(4)  # fewer than asked for: the last draw is made when asked
    assert all(torch.equal(ahead.uniform(k), want) for k, want in zip((2, 1, 3), expected))
    assert ahead.counter == sequential.counter == 6
    ahead.prefetch(5)
    ahead.counter += 1  # moved under the prefetch: it is not used
    assert torch.equal(ahead.uniform(2), ImageStreams(keys).uniform(9)[:, 7:])

    draws = []
    original = ImageStreams._draw
    monkeypatch.setattr(ImageStreams, "_draw", lambda self, *args: draws.append(args) or original(self, *args))
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    T.Compose(tuple(T.standard_transforms()))(images, ImageStreams(keys))
    assert len(draws) == 1  # two jitters' two numbers, the scale's and the angle's: one hash of the keys, not four


FUSED = [T.pad(2), T.pad(0), T.jitter(3), T.jitter(0), T.random_scale([0.9, 1.0, 1.1]), T.random_rotate([-5, 0, 5]),
         T.random_rotate([0, 90], fill=0.2), T.center_fit(12), T.center_fit((20, 18))]


@pytest.mark.parametrize("transform", FUSED, ids=repr)
def test_a_fused_transform_draws_the_numbers_it_declares_all_hashed_ahead(transform, monkeypatch):
    """``draws`` is what :func:`T.resample` hashes ahead for a transform: the numbers it then takes, no more, no
    fewer (fewer would hash again at the step, more would be thrown away)."""
    from probe.streams import ImageStreams

    hashed = []
    original = ImageStreams._draw
    monkeypatch.setattr(ImageStreams, "_draw", lambda self, start, count: hashed.append(count) or original(
        self, start, count))
    streams = ImageStreams([5, 6])
    T.resample(torch.rand(2, 1, 16, 16, generator=gen()), [transform], streams)
    assert streams.counter == sum(hashed) == transform.draws and len(hashed) == (1 if transform.draws else 0)


def test_resample_refuses_what_it_cannot_fuse_instead_of_padding_a_reflection_with_grey():
    from probe.streams import ImageStreams

    images = torch.rand(1, 1, 8, 8, generator=gen())
    for unfit in (T.pad(2, mode="reflect"), lambda x, g: x):
        with pytest.raises(ProbeUsageError, match="resample fuses constant pads.*apply it on its own"):
            T.resample(images, [T.jitter(1), unfit], ImageStreams([1]))


TRANSFORM_SETS = {
    "the preset's (standard)": None, "lucent's list": T.standard_transforms(),
    "runs split by a reflecting pad and a callable": [
        T.pad(2, mode="reflect"), T.jitter(2), lambda images, generator: images.flip(-1), T.pad(1),
        T.random_scale([0.95, 1.05]), T.random_rotate([-10, 0, 10], fill=0.1), T.jitter(0), T.center_fit(28)],
}


@pytest.fixture(scope="module")
def digits():
    import probe

    return probe.load_model("digits")


@pytest.mark.parametrize("transforms", list(TRANSFORM_SETS))
def test_maximize_is_the_same_bit_for_bit_when_a_steps_numbers_are_hashed_ahead_or_one_by_one(transforms, digits,
                                                                                             monkeypatch):
    import probe
    from probe import objectives as O
    from probe.streams import ImageStreams

    def render() -> probe.MaximizeResult:
        return probe.maximize(digits, O.channel("conv2", [0, 3]), steps=2, transforms=TRANSFORM_SETS[transforms], seed=4)

    ahead = render()
    monkeypatch.setattr(ImageStreams, "prefetch", lambda self, count: None)
    alone = render()
    assert torch.equal(ahead.images, alone.images) and torch.equal(ahead.history, alone.history)
