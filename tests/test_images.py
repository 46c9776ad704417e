"""probe.images: sources, conversions, sizes, and clear errors for bad files."""

from __future__ import annotations

import warnings

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
    with pytest.raises(ProbeUsageError, match="truncated or damaged"):
        load_image(corrupt)


def test_unknown_source_prefix():
    with pytest.raises(ProbeUsageError, match="unknown image source 'skimge'"):
        load_image("skimge:coffee")
    with pytest.raises(ProbeUsageError, match="downloads nothing"):
        load_image("https://example.com/cat.jpg")


def test_channel_conversions_on_hand_made_pixels():
    rgb = torch.tensor([[[1.0]], [[0.0]], [[0.0]]])
    assert to_channels(rgb, 1).item() == pytest.approx(0.299)
    gray = torch.tensor([[[0.5]]])
    assert to_channels(gray, 3).flatten().tolist() == [0.5, 0.5, 0.5]
    assert to_channels(torch.rand(2, 3, 4, 4), 1).shape == (2, 1, 4, 4)
    with pytest.raises(ProbeUsageError, match="cannot convert"):
        to_channels(rgb, 4)
    grey_alpha = torch.tensor([[[0.5]], [[0.25]]])
    assert to_channels(grey_alpha, 4).flatten().tolist() == [0.5, 0.5, 0.5, 0.25]  # the alpha kept, the grey repeated
    assert to_channels(torch.tensor([[[1.0]], [[0.0]], [[0.0]], [[0.5]]]), 2).flatten().tolist() == pytest.approx(
        [0.299, 0.5])
    for channels in (2, 4):  # a grey image has no alpha to give: never its grey as the alpha
        with pytest.raises(ProbeUsageError, match="1 channel to"):
            to_channels(gray, channels)


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


# Files as users bring them: every common mode and format, loaded as it looks, or refused in one line.


def _smooth(height: int = 24, width: int = 32) -> np.ndarray:
    """(H, W, 3) uint8 gradients, which JPEG keeps within a few levels."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 255 // (width - 1), y * 255 // (height - 1), 255 - x * 255 // (width - 1)]).astype(np.uint8)


def _as_loaded(path) -> np.ndarray:
    return (load_image(path).permute(1, 2, 0).numpy() * 255).round()


@pytest.mark.parametrize("orientation, turn", [(1, lambda a: a), (3, lambda a: np.rot90(a, 2)),
                                               (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1)),
                                               (2, lambda a: a[:, ::-1])])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    """A photo is loaded as viewers show it: a phone's portrait shot (stored landscape, orientation 6) is portrait."""
    pixels = _smooth()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "photo.png", exif=exif.tobytes())
    assert np.array_equal(_as_loaded(tmp_path / "photo.png"), turn(pixels).astype(float))


@pytest.mark.parametrize("name, save, channels, check", [
    ("cmyk.jpg", lambda image, path: image.convert("CMYK").save(path, quality=95), 3, "close"),
    ("progressive.jpg", lambda image, path: image.save(path, quality=95, progressive=True), 3, "close"),
    ("photo.webp", lambda image, path: image.save(path, lossless=True), 3, "equal"),
    ("photo.tiff", lambda image, path: image.save(path), 3, "equal"),
    ("ycbcr.jpg", lambda image, path: image.convert("YCbCr").save(path, quality=95), 3, "close"),
    ("grey.png", lambda image, path: image.convert("L").save(path), 1, "grey"),
    ("bilevel.png", lambda image, path: image.convert("1").save(path), 1, "shape"),
    ("palette.gif", lambda image, path: image.convert("P").save(path), 3, "shape"),
])
def test_image_formats_and_modes(tmp_path, name, save, channels, check):
    pixels = _smooth()
    save(Image.fromarray(pixels), tmp_path / name)
    loaded = load_image(tmp_path / name)
    assert loaded.shape == (channels, 24, 32) and loaded.dtype == torch.float32
    got = loaded.permute(1, 2, 0).numpy() * 255
    if check == "equal":
        assert np.array_equal(got.round(), pixels)
    elif check == "close":
        assert np.abs(got - pixels).mean() < 3, np.abs(got - pixels).mean()
    elif check == "grey":
        assert np.abs(got[..., 0] - np.asarray(Image.fromarray(pixels).convert("L"))).max() < 0.5


def test_16_bit_grey_keeps_its_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (4, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    loaded = load_image(tmp_path / "deep.png")
    assert loaded.shape == (1, 4, 16) and torch.allclose(loaded[0], torch.from_numpy(ramp / 65535).float())


def test_transparency_is_white_and_kept_for_a_model_taking_alpha(tmp_path):
    palette = Image.new("P", (4, 2))
    palette.putpalette([0, 0, 0, 200, 10, 10])
    palette.putpixel((0, 0), 1)
    palette.save(tmp_path / "palette.png", transparency=0)  # index 0 (black) transparent
    composited = load_image(tmp_path / "palette.png")
    assert composited[:, 0, 0].tolist() == pytest.approx([200 / 255, 10 / 255, 10 / 255])
    assert composited[:, 1, 1].tolist() == [1.0, 1.0, 1.0]
    assert load_image(tmp_path / "palette.png", channels=4)[3].tolist() == [[1, 0, 0, 0], [0, 0, 0, 0]]
    grey_alpha = np.dstack([np.full((2, 3), 100), np.full((2, 3), 0)]).astype(np.uint8)
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").shape == (1, 2, 3)  # grey stays grey, on white
    assert torch.equal(load_image(tmp_path / "la.png"), torch.ones(1, 2, 3))
    assert load_image(tmp_path / "la.png", channels=4).shape == (4, 2, 3)
    Image.fromarray(grey_alpha[..., 0]).save(tmp_path / "grey.png")
    with pytest.raises(ProbeUsageError, match="1 channel to 4 channels"):
        load_image(tmp_path / "grey.png", channels=4)


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 4), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert load_image(tmp_path / "anim.gif")[:, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_odd_sizes_and_names(tmp_path):
    Image.new("RGB", (1, 1), (255, 0, 0)).save(tmp_path / "one.png")
    assert load_image(tmp_path / "one.png", size=(8, 8)).shape == (3, 8, 8)
    Image.new("L", (2000, 20), 7).save(tmp_path / "wide.png")
    assert load_image(tmp_path / "wide.png", size=200).shape == (1, 2, 200)
    named = tmp_path / "a photo \u00e9 <b>&'\".png"
    Image.new("RGB", (3, 2)).save(named)
    assert load_image(named).shape == (3, 2, 3) and load_image(str(named)).shape == (3, 2, 3)


def test_no_warning_while_loading(tmp_path):
    """A float TIFF's pixels come from a read-only buffer: copied, not handed to torch with a UserWarning."""
    Image.fromarray(np.full((3, 4), 0.25, dtype=np.float32)).save(tmp_path / "float.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = load_image(tmp_path / "float.tif")
    image += 0  # writable
    assert image.shape == (1, 3, 4)


@pytest.mark.parametrize("content, wanted", [
    (b"", r"empty \(0 bytes\)"),
    (b"plain text, not pixels", "not an image file"),
    (None, "truncated or damaged"),
])
def test_broken_files_are_one_line(tmp_path, content, wanted):
    path = tmp_path / "photo.jpg"
    if content is None:
        Image.fromarray(_smooth()).save(path, quality=90)
        path.write_bytes(path.read_bytes()[:400])
    else:
        path.write_bytes(content)
    with pytest.raises(ProbeUsageError, match=wanted) as info:
        load_image(path)
    assert info.value.param == "image" and "\n" not in str(info.value) and "photo.jpg" in str(info.value)


def test_a_folder_of_images_skips_hidden_and_other_files(tmp_path):
    """What a folder given for images (``--spectrum DIR``) is read for: images by suffix, any case, not
    macOS's ``._photo.jpg`` resource forks, notes or hidden folders; a broken image names the option."""
    from probe.images import image_files
    from probe.spectrum import folder_spectrum

    (tmp_path / "sub").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    for name in ("a.png", "B.JPG", "c.jfif", "sub/d.webp", ".ipynb_checkpoints/e.png"):
        Image.fromarray(_smooth()).save(tmp_path / name, format="WEBP" if name.endswith("webp") else
                                        "PNG" if name.endswith("png") else "JPEG")
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    (tmp_path / "notes.txt").write_text("mine")
    assert [p.name for p in image_files(tmp_path)] == ["B.JPG", "a.png", "c.jfif"]
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path, recursive=True)] == [
        "B.JPG", "a.png", "c.jfif", "sub/d.webp"]
    assert folder_spectrum(tmp_path, 16, 16, 3, cache=False).images == 4
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ProbeUsageError, match="broken.png") as info:
        folder_spectrum(tmp_path, 16, 16, 3, cache=False)
    assert info.value.param == "spectrum"


def test_a_spectrum_cache_that_cannot_be_written_is_skipped(tmp_path, monkeypatch):
    """The cache is an optimization: a file where its folder should be (or a read-only or full disk) does not
    fail the run, and leaves no temporary file."""
    from probe.spectrum import folder_spectrum

    (tmp_path / "photos").mkdir()
    Image.fromarray(_smooth()).save(tmp_path / "photos" / "a.png")
    (tmp_path / "cache").write_text("a file, not a folder")
    monkeypatch.setenv("CNN_PROBE_CACHE", str(tmp_path / "cache"))
    assert folder_spectrum(tmp_path / "photos", 16, 16, 1).images == 1
    assert (tmp_path / "cache").read_text() == "a file, not a folder"


def test_a_pipe_is_read_whole_and_an_endless_device_refused(tmp_path, monkeypatch):
    """``probe dream <(curl -s URL)`` gives /dev/fd/63, a pipe: stat says 0 bytes and Pillow cannot seek in it,
    so it was refused as an empty file; /dev/zero was too, and a device that never ends must not be read for ever."""
    import io
    import os
    import threading

    import probe.images as images

    data = io.BytesIO()
    Image.new("RGB", (5, 3), (255, 0, 0)).save(data, format="PNG")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(data.getvalue(),))
    writer.start()
    image = load_image(str(fifo))
    writer.join()
    assert image.shape == (3, 3, 5) and image[0].min() == 1.0 and image[1].max() == 0.0
    monkeypatch.setattr(images, "MAX_STREAM_BYTES", 1024)
    with pytest.raises(ProbeUsageError, match="not a regular file, and more than"):
        load_image("/dev/zero")
    empty = tmp_path / "empty-pipe"
    os.mkfifo(empty)
    writer = threading.Thread(target=empty.write_bytes, args=(b"",))
    writer.start()
    with pytest.raises(ProbeUsageError, match="nothing came from it"):
        load_image(str(empty))
    writer.join()
