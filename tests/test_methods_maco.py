"""MACO: phase-only Fourier parametrization with a natural-image magnitude, its transparency map, its spectra."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import probe
from probe import param as P
from probe import spectrum as S
from probe.cli.main import cli
from probe.errors import ProbeUsageError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_PROBE_CACHE", str(tmp_path / "cache"))


def _flat_magnitude(channels: int, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.linspace(0.5, 2.0, channels * h * (w // 2 + 1)).view(channels, h, w // 2 + 1)


@pytest.mark.parametrize("channels", [1, 3])
def test_only_the_phase_moves_and_the_magnitude_stays_the_spectrum(channels):
    magnitude = _flat_magnitude(channels)
    image = P.maco_image((2, channels, 8, 8), spectrum=magnitude, decorrelate=False,
                         generator=torch.Generator().manual_seed(0))
    assert len(image.params) == 1 and image.params[0].shape == (2, channels, 8, 5)
    optimizer = torch.optim.Adam(image.params, lr=0.3)
    target = torch.rand(2, channels, 8, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        loss = (image() - target).pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x = image().detach().double()
    assert x.shape == (2, channels, 8, 8) and 0 < x.min() and x.max() < 1
    spatial = torch.logit(x)  # standardized irfft2(M e^{i phase}): its spectrum is M times one number per image
    ratio = torch.fft.rfft2(spatial, norm="ortho").abs() / magnitude.double()
    # columns 0 and W/2 hold Hermitian pairs that irfft2 folds together; the others are M exactly, up to a scale
    ratio = ratio[..., 1:-1].flatten(1)
    assert torch.allclose(ratio, ratio.mean(1, keepdim=True), rtol=1e-3)


def test_the_transparency_map_accumulates_the_absolute_gradient():
    image = P.maco_image((1, 1, 6, 6), spectrum=_flat_magnitude(1, 6, 6))
    assert torch.equal(image.maps()["transparency"], torch.zeros(1, 1, 6, 6))
    weights = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        torch.autograd.grad((image() * weights).sum(), image.params)
    assert torch.allclose(image.maps()["transparency"], 2 * weights.abs())
    with torch.no_grad():
        image()  # passes without gradient add nothing
    assert torch.allclose(image.maps()["transparency"], 2 * weights.abs())


def test_the_spectrum_of_one_image_is_its_amplitude_spectrum():
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = torch.fft.rfft2((x - x.mean()).double(), norm="ortho").abs().float()
    assert torch.allclose(S.images_spectrum([x], 8, 8, 1), expected, atol=1e-5)
    assert S.images_spectrum([x, x.flip(-1)], 8, 8, 1).shape == (1, 8, 5)


def _write_images(folder, count=2):
    folder.mkdir()
    for i in range(count):
        pixels = (torch.rand(12, 16, 3, generator=torch.Generator().manual_seed(i)) * 255).byte().numpy()
        Image.fromarray(pixels).save(folder / f"photo{i}.png")


def test_a_folder_spectrum_is_cached_and_recomputed_when_a_file_changes(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    _write_images(folder)
    first = S.folder_spectrum(folder, 8, 8, 3)
    assert first.images == 2 and "photos" in first.source and first.magnitude.shape == (3, 8, 5)
    assert len(list(S.cache_dir().glob("*.pt"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of read from the cache")

    with monkeypatch.context() as patch:
        patch.setattr(S, "images_spectrum", fail)
        assert torch.equal(S.folder_spectrum(folder, 8, 8, 3).magnitude, first.magnitude)
    _write_images(tmp_path / "more", 3)
    (tmp_path / "more" / "photo2.png").rename(folder / "photo2.png")
    assert S.folder_spectrum(folder, 8, 8, 3).images == 3
    with pytest.raises(ProbeUsageError, match="no image") as error:
        S.folder_spectrum(tmp_path / "cache", 8, 8, 3)
    assert error.value.param == "spectrum"


def test_the_default_spectrum_is_the_skimage_photos_and_fits_grayscale():
    gray = S.default_spectrum(16, 16, 1)
    assert gray.magnitude.shape == (1, 16, 9) and gray.images == len(S.DEFAULT_PHOTOS)
    assert gray.source.startswith("scikit-image photos") and "astronaut" in gray.source
    low, high = gray.magnitude[0, 1, 0], gray.magnitude[0, 8, 8]
    assert low > 3 * high  # natural images: energy falls with frequency


def test_maximize_with_maco_on_a_grayscale_model_climbs_and_keeps_maps():
    m = probe.load_model("digits")
    result = probe.maximize(m, "conv2:0-1", param="maco", steps=12, transforms="none", lr=0.1)
    assert result.settings["param"] == "maco"
    assert result.settings["param_options"]["spectrum"].startswith("scikit-image photos")
    assert (result.history[-1] > result.history[0]).all()
    transparency = result.maps["transparency"]
    assert transparency.shape == (2, 1, 28, 28) and (transparency > 0).all()


def test_cli_maco_writes_transparency_maps_and_records_the_spectrum(tmp_path):
    runner = CliRunner()
    out = tmp_path / "g"
    result = runner.invoke(cli, ["maximize", "--target", "conv2:3", "--param", "maco", "--steps", "3",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["param"] == "maco"
    assert manifest["options"]["param_options"]["spectrum"].startswith("scikit-image photos (skimage.data:")
    maps = [item for item in manifest["items"] if item.get("map") == "transparency"]
    assert [item["file"] for item in maps] == ["conv2-003-transparency.png"]
    assert Image.open(out / "conv2-003-transparency.png").size == (28, 28)

    photos = tmp_path / "photos"
    _write_images(photos)
    out2 = tmp_path / "g2"
    result = runner.invoke(cli, ["maximize", "--target", "conv2:3", "--param", "maco", "--spectrum", str(photos),
                                 "--steps", "2", "--out", str(out2)])
    assert result.exit_code == 0, result.output
    assert "photos (2 images)" in json.loads((out2 / "manifest.json").read_text())["options"]["param_options"][
        "spectrum"]


def test_cli_spectrum_without_maco_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["maximize", "--target", "conv2:3", "--spectrum", str(tmp_path),
                                      "--steps", "2", "--out", str(tmp_path / "g")])
    assert result.exit_code == 2 and "--spectrum" in result.output and "--param maco" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "g").exists()
