"""probe.images: sources, conversions, sizes, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from probe.errors import ProbeUsageError
from probe.images import fit_size, load_image, parse_size, resize, to_channels, to_pil


def test_skimage_sample_is_rgb_in_unit_range():
    image = load_image("skimage:astronaut")
    assert image.shape == (3, 512, 512) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_unknown_skimage_sample_suggests():
    with pytest.raises(ProbeUsageError, match="did you mean 'astronaut'"):
        load_image("skimage:astronot")


def test_png_round_trip_through_to_pil(tmp_path):
    original = torch.rand(3, 10, 12, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "x.png"
    to_pil(original).save(path)
    loaded = load_image(path)
    assert loaded.shape == (3, 10, 12)
    assert (loaded - original).abs().max() <= 0.5 / 255 + 1e-6


def test_rgba_is_composited_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert torch.allclose(load_image(path), torch.ones(3, 4, 4))


def test_missing_directory_and_corrupt_files(tmp_path):
    with pytest.raises(ProbeUsageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ProbeUsageError, match="is a directory"):
        load_image(tmp_path)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ProbeUsageError, match="not an image file"):
        load_image(corrupt)


def test_unknown_source_prefix():
    with pytest.raises(ProbeUsageError, match="unknown image source 'skimge'"):
        load_image("skimge:coffee")


def test_channel_conversions_on_hand_made_pixels():
    rgb = torch.tensor([[[1.0]], [[0.0]], [[0.0]]])
    assert to_channels(rgb, 1).item() == pytest.approx(0.299)
    gray = torch.tensor([[[0.5]]])
    assert to_channels(gray, 3).flatten().tolist() == [0.5, 0.5, 0.5]
    assert to_channels(torch.rand(2, 3, 4, 4), 1).shape == (2, 1, 4, 4)
    with pytest.raises(ProbeUsageError, match="cannot convert"):
        to_channels(rgb, 4)


def test_sizes():
    assert fit_size(400, 600, 300) == (200, 300)
    assert fit_size(400, 600, (32, 48)) == (32, 48)
    assert resize(torch.rand(3, 400, 600), 60).shape == (3, 40, 60)
    assert load_image("skimage:coffee", size=(30, 40), channels=1).shape == (1, 30, 40)
    assert parse_size("128") == 128 and parse_size("96x128") == (96, 128)
    for bad in ("0", "abc", "12x", "-3"):
        with pytest.raises(ProbeUsageError, match="size must be"):
            parse_size(bad)


def test_array_inputs():
    assert load_image(np.zeros((5, 6), dtype=np.uint8)).shape == (1, 5, 6)
    assert load_image(np.full((2, 2, 3), 65535, dtype=np.uint16)).max() == 1.0
    with pytest.raises(ProbeUsageError):
        load_image(np.zeros((2, 2, 2, 2)))


def test_to_pil_modes():
    assert to_pil(torch.rand(1, 5, 5)).mode == "L"
    assert to_pil(torch.rand(3, 5, 5)).mode == "RGB"
    assert to_pil(torch.rand(5, 5)).size == (5, 5)
