"""Natural-image amplitude spectra: the fixed magnitude of the MACO parametrization.

MACO (Fel et al., NeurIPS 2023) optimizes only the Fourier *phase* of an image
and keeps its *magnitude* fixed to the mean amplitude spectrum of natural
images. Horama downloads an ImageNet spectrum; here the spectrum comes from
images the user has:

- :func:`folder_spectrum` reads every image of a folder (``--spectrum DIR``),
  and caches the result under :func:`cache_dir` keyed by the files' names,
  sizes and modification times and by the requested shape, so a second run
  reads one small file;
- :func:`default_spectrum` uses the photographs bundled with scikit-image
  (:data:`DEFAULT_PHOTOS`, offline), and says so in :attr:`Spectrum.source`.

Every image is centre-cropped to the target aspect ratio, resized to ``(H, W)``
with antialiasing, converted to the requested channels (1: luminance; 3: RGB,
then mapped to decorrelated colour coordinates as the parametrization mixes
them back), its mean removed, and the magnitudes ``|rfft2(x)|`` (orthonormal)
are averaged over images. Only the shape of the spectrum matters: MACO
standardizes the image after the inverse transform.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from probe.errors import ProbeUsageError
from probe.images import IMAGE_SUFFIXES, image_files  # the suffixes folder_spectrum reads

__all__ = ["Spectrum", "DEFAULT_PHOTOS", "IMAGE_SUFFIXES", "natural_spectrum", "default_spectrum",
           "folder_spectrum", "images_spectrum", "cache_dir"]

DEFAULT_PHOTOS = (
    "astronaut", "camera", "cat", "coffee", "coins", "grass", "gravel", "brick", "moon", "rocket",
    "hubble_deep_field", "immunohistochemistry",
)  # fmt: skip
"""The scikit-image photographs the default spectrum averages (all bundled, no download)."""

_CACHE_VERSION = 1


@dataclass(frozen=True)
class Spectrum:
    """A mean amplitude spectrum.

    Attributes:
        magnitude: ``(C, H, W // 2 + 1)`` float32, the mean ``|rfft2|`` of the
            images (decorrelated colour coordinates for C = 3).
        source: where it comes from, for the manifest
            (``"scikit-image photos (skimage.data: astronaut, ...)"`` or the folder).
        images: how many images were averaged.
    """

    magnitude: torch.Tensor
    source: str
    images: int

    def resized(self, height: int, width: int) -> torch.Tensor:
        """The magnitude interpolated to ``(C, height, width // 2 + 1)`` (bilinear, as Horama resizes its spectrum)."""
        target = (height, width // 2 + 1)
        if tuple(self.magnitude.shape[1:]) == target:
            return self.magnitude
        return torch.nn.functional.interpolate(self.magnitude[None], size=target, mode="bilinear",
                                               align_corners=False)[0]


def cache_dir() -> Path:
    """Where spectra of folders are cached: ``$CNN_PROBE_CACHE/spectra`` or ``~/.cache/cnn-probe/spectra``."""
    root = os.environ.get("CNN_PROBE_CACHE")
    base = Path(root).expanduser() if root else Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "cnn-probe"
    return base / "spectra"


def images_spectrum(images: list[torch.Tensor], height: int, width: int, channels: int) -> torch.Tensor:
    """The mean amplitude spectrum of ``(C, h, w)`` images in ``[0, 1]``: ``(channels, height, width // 2 + 1)``.

    Raises:
        ProbeUsageError: no image, or a channel count other than 1 or 3.
    """
    from probe.images import resize, to_channels
    from probe.inputs import center_crop
    from probe.param import correlate_colors

    if channels not in (1, 3):
        raise ProbeUsageError(f"a natural-image spectrum is made for 1 or 3 channels; got {channels}", param="spectrum")
    if not images:
        raise ProbeUsageError("no image to compute a spectrum from", param="spectrum")
    total = torch.zeros(channels, height, width // 2 + 1, dtype=torch.float64)
    for image in images:
        x = resize(center_crop(to_channels(image.float(), channels), width / height), (height, width))[None]
        if channels == 3:
            x = correlate_colors(x)
        x = x - x.mean(dim=(-2, -1), keepdim=True)
        total += torch.fft.rfft2(x[0].double(), norm="ortho").abs()
    return (total / len(images)).float()


@functools.lru_cache(maxsize=16)
def default_spectrum(height: int, width: int, channels: int) -> Spectrum:
    """The mean spectrum of scikit-image's bundled photographs (:data:`DEFAULT_PHOTOS`), computed once per shape."""
    from probe.images import load_image

    photos = [load_image(f"skimage:{name}") for name in DEFAULT_PHOTOS]
    magnitude = images_spectrum(photos, height, width, channels)
    return Spectrum(magnitude, f"scikit-image photos (skimage.data: {', '.join(DEFAULT_PHOTOS)})", len(photos))


def _folder_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ProbeUsageError(f"--spectrum needs a folder of images; {str(folder)!r} is not a folder", param="spectrum")
    files = image_files(folder, recursive=True)  # hidden files (macOS's ._photo.jpg) are not images
    if not files:
        raise ProbeUsageError(f"no image ({', '.join(IMAGE_SUFFIXES)}) in {str(folder)!r} to compute a spectrum from",
                              param="spectrum")
    return files


def _cache_key(folder: Path, files: list[Path], height: int, width: int, channels: int) -> str:
    listing = [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    text = json.dumps([_CACHE_VERSION, str(folder.resolve()), height, width, channels, listing])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def folder_spectrum(folder: str | Path, height: int, width: int, channels: int, *, cache: bool = True) -> Spectrum:
    """The mean spectrum of every image in ``folder`` (recursively), cached under :func:`cache_dir`.

    Args:
        folder: a folder of images (:data:`IMAGE_SUFFIXES`).
        height, width: the image size the spectrum is for.
        channels: 1 (luminance) or 3 (RGB).
        cache: read and write the cache (default True). The cache file is
            named by a hash of the folder, its files' names, sizes and
            modification times, and the shape: changing any file recomputes it.
            A cache that cannot be written (a file in its place, a read-only
            or full disk) is skipped.

    Raises:
        ProbeUsageError: not a folder, no image in it, or an image Pillow cannot read.
    """
    from probe.images import load_image

    folder = Path(folder).expanduser()
    files = _folder_files(folder)
    source = f"{folder} ({len(files)} images)"
    path = cache_dir() / f"{_cache_key(folder, files, height, width, channels)}.pt"
    if cache and path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            return Spectrum(stored["magnitude"], source, int(stored["images"]))
        except Exception:  # a damaged cache file is recomputed (and rewritten: cnn-probe wrote it)
            pass
    try:
        photos = [load_image(p) for p in files]
    except ProbeUsageError as error:
        raise ProbeUsageError(f"--spectrum {str(folder)!r}: {error}", param="spectrum") from None
    magnitude = images_spectrum(photos, height, width, channels)
    if cache:
        _store(path, {"magnitude": magnitude, "images": len(files)})
    return Spectrum(magnitude, source, len(files))


def _store(path: Path, value: dict[str, object]) -> None:
    """Write a cache file whole, or not at all: a cache folder that is a file, read-only or full is skipped
    (the spectrum is computed again next time), never the run's failure."""
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(value, partial)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):  # not even the folder: nothing was left
            partial.unlink(missing_ok=True)


def natural_spectrum(source: str | Path | Spectrum | torch.Tensor | None, height: int, width: int,
                     channels: int) -> Spectrum:
    """Resolve what the user gave as a spectrum: None (the default photos), a folder, a Spectrum or a tensor.

    A tensor is ``(C, h, w // 2 + 1)`` magnitudes (resized to the target shape).

    Raises:
        ProbeUsageError: a tensor with the wrong channel count or rank, or a bad folder.
    """
    if source is None:
        return default_spectrum(height, width, channels)
    if isinstance(source, Spectrum):
        spectrum = source
    elif isinstance(source, torch.Tensor):
        spectrum = Spectrum(source.detach().float().cpu(), "a magnitude tensor given by the caller", 0)
    else:
        spectrum = folder_spectrum(source, height, width, channels)
    if spectrum.magnitude.dim() != 3 or spectrum.magnitude.shape[0] != channels:
        raise ProbeUsageError(f"a spectrum of shape {tuple(spectrum.magnitude.shape)} does not fit images with "
                              f"{channels} channel(s); expected ({channels}, H, W // 2 + 1)", param="spectrum")
    return spectrum
