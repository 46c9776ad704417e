"""Each image's randomness is its own: per-image streams, per-image transforms and initial images, batch-free renders."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from probe import objectives as O
from probe import param as P
from probe import transforms as T
from probe.models import Preprocess, load_model
from probe.optimize import maximize
from probe.streams import ImageStreams, _mix32, image_key


def keys(units, seed=0):
    return [image_key(seed, "layer", unit, 0) for unit in units]


def lowbias32(x: int) -> int:
    """The reference hash in plain Python integers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_the_tensor_hash_equals_the_reference_without_overflow():
    values = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 1, 0xDEADBEEF]
    assert _mix32(torch.tensor(values)).tolist() == [lowbias32(v) for v in values]


def test_each_image_draws_the_same_numbers_alone_or_in_a_batch():
    batch = ImageStreams(keys(range(16)))
    alone = ImageStreams(keys([7]))
    for count in (2, 1, 5):
        together, single = batch.uniform(count), alone.uniform(count)
        assert together.shape == (16, count) and torch.equal(together[7:8], single)
    draws = ImageStreams(keys(range(256))).uniform(400)
    assert 0 <= float(draws.min()) and float(draws.max()) < 1
    assert abs(float(draws.mean()) - 0.5) < 0.01 and abs(float(draws.std()) - 12**-0.5) < 0.01
    integers = ImageStreams(keys(range(64))).integers(5, 200)
    assert set(integers.unique().tolist()) == {0, 1, 2, 3, 4}
    assert image_key(0, "conv2", 7, 0) != image_key(0, "conv2", 7, 1) != image_key(1, "conv2", 7, 0)


def test_standard_transforms_give_each_image_its_own_draws():
    chain = T.compose(*T.transforms_for_size((24, 30)))
    images = torch.rand(16, 3, 24, 30, generator=torch.Generator().manual_seed(0))
    together = chain(images, ImageStreams(keys(range(16))))
    assert together.shape == images.shape
    assert torch.equal(together[7:8], chain(images[7:8], ImageStreams(keys([7]))))
    same = chain(images[:1].expand(16, -1, -1, -1), ImageStreams(keys(range(16))))
    assert len({tuple(row.flatten().tolist()) for row in same}) > 8  # one image, 16 different transforms


def test_fused_resampling_matches_the_transforms_one_by_one():
    images = torch.rand(4, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    for chain in (T.random_rotate([30]), T.random_rotate([-20], fill=0.5),
                  T.compose(T.pad(3), T.random_rotate([15]), T.jitter(0), T.center_fit((16, 20)))):
        one_by_one = chain(images, torch.Generator().manual_seed(0))  # single options: no randomness left
        assert torch.allclose(chain(images, ImageStreams(keys(range(4)))), one_by_one, atol=1e-5)
    streams = ImageStreams(keys(range(4)))
    cropped = T.jitter(3)(images, streams)
    offsets = ImageStreams(keys(range(4))).integers(4, 2).tolist()
    expected = torch.stack([images[i, :, oy : oy + 13, ox : ox + 17] for i, (oy, ox) in enumerate(offsets)])
    assert torch.allclose(cropped, expected, atol=1e-5)
    ramp = torch.arange(20.0).expand(1, 1, 16, 20)  # pixel j holds j: bilinear sampling of it is exact inside
    zoom = T.random_scale([2.0])(ramp, ImageStreams(keys([0])))  # zoom about the centre on the same canvas
    expected = 10 + (torch.arange(20.0) + 0.5 - 10) / 2 - 0.5
    assert zoom.shape == ramp.shape and torch.allclose(zoom[0, 0, 8], expected, atol=1e-5)


def test_initial_images_come_from_one_generator_per_image():
    for kind in P.PARAMETRIZATIONS:
        batch = P.image_param(kind, (6, 3, 12, 12), generator=ImageStreams(keys(range(6))).generators())
        alone = P.image_param(kind, (1, 3, 12, 12), generator=ImageStreams(keys([3])).generators())
        assert torch.equal(batch()[3], alone()[0]), kind
        for together, single in zip(batch.params, alone.params):  # a CPPN starts mid-gray: compare its weights
            assert torch.equal(together[3], single[0]), kind
        assert any(not torch.equal(p[2], p[3]) for p in batch.params), kind


def test_every_parametrization_factory_takes_one_generator_per_image():
    assert getattr(P.parametrization("cppn", hidden=4, layers=3), "per_image", False)
    model = load_model(nn.Sequential(OrderedDict(mix=Mix(), pool=nn.AvgPool2d(2))),
                       preprocess=Preprocess((0.5,) * 3, (0.25,) * 3, 3, (12, 12)))
    for param in ("maco", "cppn", "laplacian", P.parametrization("cppn", hidden=4, layers=3),
                  P.parametrization("laplacian", levels=2), P.parametrization("maco", sd=0.5)):
        alone = maximize(model, O.channel("mix", [7]), steps=3, seed=5, param=param)
        batch = maximize(model, O.channel("mix", range(4, 10)), steps=3, seed=5, param=param)
        assert torch.equal(alone.images[0], batch.images[3]), param
        assert not torch.equal(batch.images[2], batch.images[3]), param


class Mix(nn.Module):
    """16 channels from RGB by per-image elementwise arithmetic: batch-size-invariant kernels on any backend."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 3, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh((self.weight[None, :, :, None, None] * x[:, None]).sum(2))


def test_a_unit_renders_the_same_alone_in_a_batch_and_in_chunks():
    model = load_model(nn.Sequential(OrderedDict(mix=Mix(), pool=nn.AvgPool2d(2))),
                       preprocess=Preprocess((0.5,) * 3, (0.25,) * 3, 3, (12, 12)))
    alone = maximize(model, O.channel("mix", [7]), steps=6, seed=5)
    batch = maximize(model, O.channel("mix", range(16)), steps=6, seed=5)
    chunks = maximize(model, O.channel("mix", range(16)), steps=6, seed=5, batch=5)
    assert torch.equal(alone.images[0], batch.images[7]) and torch.equal(alone.history[:, 0], batch.history[:, 7])
    assert torch.equal(chunks.images, batch.images)  # the history sums feature maps: equal up to rounding
    assert torch.allclose(chunks.history, batch.history, rtol=1e-5)
    assert not torch.equal(batch.images[6], batch.images[7])


def test_on_a_conv_net_a_unit_is_the_same_in_any_batch_of_the_same_size():
    # the CPU's convolution kernels round differently for other batch sizes (oneDNN picks other kernels for
    # batches under ~5), so across sizes images agree up to float rounding; for one size, bitwise, whoever shares it
    model = load_model("digits")
    first = maximize(model, O.channel("conv2", range(0, 8)), steps=4, seed=2)
    second = maximize(model, O.channel("conv2", range(4, 12)), steps=4, seed=2)
    assert torch.equal(first.images[7], second.images[3]) and torch.equal(first.history[:, 7], second.history[:, 3])
