"""Images in and out: files, bundled samples, tensors and PIL images.

Inside cnn-probe an image is a float tensor ``(C, H, W)`` with values in
``[0, 1]`` (a batch is ``(N, C, H, W)``); the model's normalization is applied
later, by :class:`probe.models.Preprocess`.

Image *sources* that :func:`load_image` understands:

- a file path (PNG, JPEG, WebP, TIFF, BMP, GIF, ... anything Pillow reads), turned upright as its
  EXIF orientation says (as every image viewer and browser shows it, and as transformers'
  ``load_image`` reads it: a phone's portrait photo is portrait); an animated GIF or WebP, or a
  multi-page TIFF, gives its first frame; 16-bit images keep their range (65535 is 1.0), CMYK
  and palette images become RGB, grey and bilevel ones one channel;
- ``skimage:NAME``: a sample bundled with scikit-image (``skimage:astronaut``,
  ``skimage:coffee``, ``skimage:chelsea``, ``skimage:camera``, ...), offline;
- ``ZOO:KEY``: a sample of an embedded model's data (``digits:0`` is the first
  bundled handwritten digit, ``xo:x`` / ``xo:o`` a generated X or O,
  ``shapes:circle`` a generated shape).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from probe.checks import check_size, parse_size  # parse_size: torch-free, for the commands' options
from probe.errors import ProbeUsageError, unknown_name

__all__ = [
    "SKIMAGE_SAMPLES",
    "IMAGE_SUFFIXES",
    "image_files",
    "load_image",
    "to_pil",
    "from_pil",
    "from_array",
    "resize",
    "fit_size",
    "to_channels",
    "parse_size",
    "SATURATED",
    "NOISY",
    "divergence",
]

SKIMAGE_SAMPLES = (
    "astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins", "colorwheel",
    "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo",
    "microaneurysms", "moon", "page", "retina", "rocket", "text", "checkerboard",
)  # fmt: skip
"""Names accepted after ``skimage:``; all ship inside scikit-image (no download)."""


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pbm", ".pnm")
"""The suffixes (any case) of the files a folder of images is read for: what Pillow decodes without extra tools."""


def image_files(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    """The image files (:data:`IMAGE_SUFFIXES`) in ``folder``, sorted by path.

    Hidden files and folders (names starting with ``.``: macOS's ``._photo.jpg`` resource forks, which are
    not images, ``.ipynb_checkpoints``, a ``.git``) are skipped, as file managers hide them; so are
    folders when ``recursive`` is False (default). Other files (notes, CSVs) are ignored.
    """
    found = []
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if recursive and not name.startswith("."))
        found += [Path(root) / name for name in names
                  if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(path for path in found if path.is_file())


def from_array(array: np.ndarray) -> torch.Tensor:
    """``(H, W)``, ``(H, W, C)`` array (uint8, uint16, bool or float in [0, 1]) -> ``(C, H, W)`` float tensor.

    Integer arrays are scaled by their type's range (a uint16 value of 65535 is 1.0), never by
    their own maximum, so a dark 16-bit image stays dark.

    Raises:
        ProbeUsageError: NaN or infinite values (a float image), or a shape that is not an image.
    """
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise _not_finite(int(np.size(array) - np.isfinite(array).sum()), int(np.size(array)))
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ProbeUsageError(f"an image array must be (H, W) or (H, W, C); got shape {array.shape}")
    return torch.from_numpy(np.array(array.transpose(2, 0, 1), order="C")).clamp(0.0, 1.0)  # a copy: PIL's are read-only


_GREY = ("1", "L", "LA", "La")
"""Pillow modes whose colour is one grey channel (with or without alpha)."""


def _has_alpha(image: Image.Image) -> bool:
    """True for modes with alpha, and for palette, grey or RGB images with a transparent colour (PNG ``tRNS``)."""
    return image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        image.mode in ("P", "L", "RGB", "1") and "transparency" in image.info)


def from_pil(image: Image.Image, keep_alpha: bool = False) -> torch.Tensor:
    """A PIL image -> ``(C, H, W)`` float tensor in [0, 1]: 1 channel for grey modes, 3 for the others.

    Alpha (an alpha channel, or a palette's transparent colour) is composited on white.

    Args:
        image: any mode Pillow opens (bilevel and grey -> 1 channel; 16- and 32-bit grey
            scaled by their type's range; CMYK, YCbCr, palette ... -> RGB).
        keep_alpha: keep an alpha channel as the last channel instead (RGBA -> 4 channels, grey +
            alpha -> 2), for a model that takes it; default False.
    """
    grey = image.mode in _GREY
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        if keep_alpha:
            array = np.asarray(rgba)
            return from_array(array[:, :, [0, 3]] if grey else array)
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba).convert("L" if grey else "RGB")
    elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)  # "I": 32-bit ints; a 16-bit PNG opens as I;16 or I
        full_scale = 65535.0 if image.mode != "I" or array.max(initial=0) <= 65535 else float(2**31 - 1)
        return from_array((array / full_scale).astype(np.float32))
    elif image.mode == "F":  # 32-bit float (TIFF): [0, 1] data as it is, else 0..255 as Pillow would convert it
        array = np.asarray(image, dtype=np.float32)
        if np.isfinite(array).all() and array.max(initial=0) > 1.0:
            array = array / 255.0
        return from_array(array)
    elif image.mode not in ("L", "RGB"):
        image = image.convert("L" if grey else "RGB")
    return from_array(np.asarray(image))


def to_pil(image: torch.Tensor) -> Image.Image:
    """``(C, H, W)`` or ``(H, W)`` tensor in [0, 1] -> PIL image (``L`` for 1 channel, ``RGB`` for 3).

    Values are clamped to [0, 1]. Images with another channel count show their
    first three channels (or the first one, for two).
    """
    image = image.detach().float().cpu()
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3:
        raise ProbeUsageError(f"to_pil expects (C, H, W) or (H, W); got shape {tuple(image.shape)}")
    channels = image.shape[0]
    if channels == 2:
        image = image[:1]
    elif channels > 3:
        image = image[:3]
    array = (image.clamp(0, 1).numpy().transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], mode="L")
    return Image.fromarray(array, mode="RGB")


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert ``(C, H, W)`` or ``(N, C, H, W)`` between grayscale and RGB, with or without alpha.

    RGB -> 1 channel uses ITU-R 601 luminance; 1 -> 3 repeats the channel. A last alpha channel
    (2: grey + alpha, 4: RGBA, from files, arrays and ``skimage:`` samples) is composited on white
    for a model taking 1 or 3 channels, and kept for one taking 2 or 4 (its colour converted:
    grey + alpha -> RGBA repeats the grey). 1 -> N channels (N other than 2, 3, 4) repeats the channel.

    Raises:
        ProbeUsageError: for a conversion with no sensible meaning: an image without alpha (1 or 3
            channels) for a model taking alpha (2 or 4), 3 channels to anything but 1, 2 or 4 ...
    """
    axis = image.dim() - 3
    have = image.shape[axis]
    if have == channels:
        return image
    if have in (2, 4) and channels in (1, 2, 3, 4):
        colour, alpha = image.split([have - 1, 1], dim=axis)
        if channels in (1, 3):  # composited on white, as from_pil does
            return to_channels(colour * alpha + (1 - alpha), channels)
        return torch.cat([to_channels(colour, channels - 1), alpha], dim=axis)
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device)
        shape = [1] * image.dim()
        shape[axis] = 3
        return (image * weights.view(shape)).sum(dim=axis, keepdim=True)
    if have == 1 and channels not in (2, 4):  # 2 and 4 end in alpha, which a grey image does not have
        return image.repeat_interleave(channels, dim=axis)
    raise ProbeUsageError(
        f"cannot convert an image with {have} channel{'s' if have != 1 else ''} to {channels} channels, the model's; "
        f"give an image with {channels} channels{' (an RGBA PNG, ' if channels == 4 else ' (a grey PNG with alpha, ' if channels == 2 else ' ('}"
        f"or, in Python, a ({channels}, H, W) tensor or an (H, W, {channels}) array)", param="image")


def fit_size(height: int, width: int, size: int | Sequence[int]) -> tuple[int, int]:
    """The ``(H, W)`` an image of ``height x width`` takes for ``size``.

    ``size`` is ``(H, W)`` exactly, or an int for the longer side, keeping the
    aspect ratio.
    """
    if isinstance(size, int):
        scale = size / max(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return int(size[0]), int(size[1])


def resize(image: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Resize ``(C, H, W)`` or ``(N, C, H, W)`` with antialiased bilinear filtering (see :func:`fit_size`)."""
    batched = image.dim() == 4
    batch = image if batched else image.unsqueeze(0)
    target = fit_size(batch.shape[-2], batch.shape[-1], size)
    if target != tuple(batch.shape[-2:]):
        batch = F.interpolate(batch, size=target, mode="bilinear", align_corners=False, antialias=True)
        batch = batch.clamp(0.0, 1.0)
    return batch if batched else batch[0]


SATURATED = 0.99
"""An image with at least this fraction of its values at exactly 0 or 1 is binary: see :func:`divergence`."""

NOISY = 0.15
"""A binary image whose neighbouring pixels differ by at least this much on average is noise, not a shape.

Random binary noise gives 0.5; the images a far too large learning rate leaves gave 0.21 to 0.42 (digits and
shapes, both presets); saturated smooth shapes (CPPN class images of ``digits``) 0.05 to 0.10.
"""


def divergence(
    images: torch.Tensor, scores: torch.Tensor | None = None, *, start: torch.Tensor | None = None
) -> str | None:
    """Why an optimization that produced ``images`` diverged, or None when it looks sound.

    Two signs, both cheap (one reduction on the device, one sync):

    - NaN or infinite values in ``images`` ``(N, C, H, W)`` (or ``(C, H, W)``) or in ``scores``;
    - an image that is binary noise: at least :data:`SATURATED` of its values pinned at exactly 0 or 1
      and neighbouring pixels differing by :data:`NOISY` or more on average, which happens when each step
      jumps past the whole [0, 1] range (a learning rate far too large). A saturated smooth shape (a CPPN
      drawing in pure colours) is not noise. Images that started that way (``start``, e.g. a dream of a black-and-white input) are not flagged.

    Returns:
        A short reason (``"2 of 4 images are binary noise (every value at 0 or 1)"``) or None.
    """
    batch = images.detach().reshape(-1, *images.shape[-3:]).float()
    values = [batch.isfinite().all()]
    if scores is not None:
        values.append(scores.detach().float().isfinite().all())
    saturated = ((batch <= 0) | (batch >= 1)).flatten(1).float().mean(dim=1)
    rough = ((batch[..., 1:, :] - batch[..., :-1, :]).abs().flatten(1).mean(dim=1)
             + (batch[..., :, 1:] - batch[..., :, :-1]).abs().flatten(1).mean(dim=1)) / 2
    binary = (saturated >= SATURATED) & (rough.nan_to_num(1.0) >= NOISY)  # one row or column: saturation alone
    if start is not None:
        first = start.detach().reshape(-1, *start.shape[-3:]).float().to(batch.device)
        binary &= ((first <= 0) | (first >= 1)).flatten(1).float().mean(dim=1).expand_as(binary) < SATURATED
    finite, flagged = torch.stack([torch.stack(values).all().float(), binary.sum().float()]).tolist()  # one sync
    if not finite:
        return "the images or scores became NaN or infinite"
    if flagged:
        return f"{int(flagged)} of {binary.numel()} image(s) are binary noise (every value at 0 or 1)"
    return None


_ORIENTATION = 0x0112
"""The EXIF tag of an image's orientation (1: as stored; 2-8: mirrored and/or turned)."""


def _not_finite(bad: int, total: int) -> ProbeUsageError:
    """The error for an image holding NaN or infinite values (``bad`` of ``total``)."""
    return ProbeUsageError(
        f"the image holds {bad:,} NaN or infinite value(s) of {total:,}; give an image with finite pixel values "
        "(e.g. re-export it as an 8- or 16-bit PNG)",
        param="image",
    )


def _load_skimage(name: str) -> torch.Tensor:
    if name not in SKIMAGE_SAMPLES:
        raise unknown_name("scikit-image sample", name, SKIMAGE_SAMPLES, param="image")
    import skimage.data

    return from_array(getattr(skimage.data, name)())


MAX_STREAM_BYTES = 256 * 2**20
"""The most bytes read from a file that is not a regular one (a pipe, ``/dev/stdin``, a device) before refusing it."""


def _read_stream(path: Path, where: str) -> io.BytesIO:
    """The bytes of a pipe or device (``probe dream <(curl -s URL)``: ``/dev/fd/63``), which Pillow cannot seek in
    and whose size ``stat`` gives as 0; at most :data:`MAX_STREAM_BYTES` (``/dev/zero`` never ends)."""
    with open(path, "rb") as stream:
        data = stream.read(MAX_STREAM_BYTES + 1)
    if len(data) > MAX_STREAM_BYTES:
        raise ProbeUsageError(f"{where}: it is not a regular file, and more than {MAX_STREAM_BYTES // 2**20} MiB came "
                              "from it (a device such as /dev/zero?); give an image file", param="image")
    if not data:
        raise ProbeUsageError(f"{where}: nothing came from it (an empty pipe or device); give an image file",
                              param="image")
    return io.BytesIO(data)


def _load_file(path: Path, keep_alpha: bool = False) -> torch.Tensor:
    """Decode the file at ``path`` (its first frame), turned as its EXIF orientation says; see :func:`from_pil`.

    A pipe or device (process substitution, ``/dev/stdin``) is read whole first (:func:`_read_stream`).
    """
    where = f"cannot read image {str(path)!r}"
    if not path.exists():
        raise ProbeUsageError(f"{where}: no such file", param="image")
    if path.is_dir():
        raise ProbeUsageError(f"{where}: it is a directory; give one image file", param="image")
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise ProbeUsageError(f"{where}: the file is empty (0 bytes), nothing to decode", param="image")
        with Image.open(path if path.is_file() else _read_stream(path, where)) as image:
            image.load()
            if image.getexif().get(_ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)  # as every viewer shows it
            return from_pil(image, keep_alpha)
    except Image.DecompressionBombError:
        raise ProbeUsageError(
            f"refusing image {str(path)!r}: it would decode to more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} "
            "pixels (Pillow's guard against decompression bombs); shrink it with an image editor first",
            param="image",
        ) from None
    except ProbeUsageError:
        raise
    except UnidentifiedImageError:
        raise ProbeUsageError(f"{where}: not an image file Pillow can decode (no image format it knows)",
                              param="image") from None
    except PermissionError as error:
        raise ProbeUsageError(f"{where}: {error.strerror or 'permission denied'}", param="image") from None
    except MemoryError:
        raise ProbeUsageError(f"{where}: too large to decode in this machine's memory; shrink it first",
                              param="image") from None
    except Exception as error:  # any failure of a decoder (OSError, SyntaxError, struct.error, EOFError, ...)
        detail = (str(error).splitlines() or [""])[0][:120] or type(error).__name__
        raise ProbeUsageError(f"{where}: the file is truncated or damaged ({detail}); copy or export it again",
                              param="image") from None


def load_image(
    source: str | Path | np.ndarray | Image.Image | torch.Tensor,
    *,
    channels: int | None = None,
    size: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """Load an image as a ``(C, H, W)`` float tensor in ``[0, 1]``.

    Args:
        source: a file path, ``skimage:NAME``, ``ZOO:KEY`` (``digits:3``,
            ``xo:x``, ``shapes:circle``), a numpy array, a PIL image, or a tensor
            (``(C, H, W)`` in [0, 1], returned as float).
        channels: convert to this many channels (1: luminance, 3: RGB; 4 or 2 keep a file's alpha
            channel, RGBA or grey + alpha); default None keeps the source's.
        size: resize; an int sets the longer side (aspect kept), ``(H, W)`` sets
            both. Default None keeps the source's size.

    Raises:
        ProbeUsageError: missing or undecodable file, a decompression bomb
            (more than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels), NaN or
            infinite pixel values, unknown sample name, impossible channel conversion.
    """
    if isinstance(source, torch.Tensor):
        image = source.detach().float()
        if image.dim() == 2:
            image = image.unsqueeze(0)
        finite = torch.isfinite(image)
        if not bool(finite.all()):
            raise _not_finite(int(finite.numel() - finite.sum()), finite.numel())
    elif isinstance(source, np.ndarray):
        image = from_array(source)
    elif isinstance(source, Image.Image):
        image = from_pil(source, keep_alpha=channels in (2, 4))
    else:
        text = str(source)
        prefix, sep, key = text.partition(":")
        if sep and prefix == "skimage":
            image = _load_skimage(key)
        elif sep and prefix.lower() in ("http", "https", "ftp", "s3", "gs") and not Path(text).exists():
            raise ProbeUsageError(f"cannot read image {text!r}: cnn-probe reads local files and downloads nothing; "
                                  "save the image first and give its path", param="image")
        elif sep and len(prefix) > 1 and not Path(text).exists():
            from probe import zoo

            if prefix not in zoo.zoo_names():
                raise unknown_name("image source", prefix, ["skimage", *zoo.zoo_names()], param="image")
            image = zoo.sample_input(prefix, key)
        else:
            image = _load_file(Path(text).expanduser(), keep_alpha=channels in (2, 4))  # a model taking alpha
    if image.dim() < 2 or 0 in image.shape[-2:]:
        raise ProbeUsageError(f"the image is empty or not 2-D: shape {tuple(image.shape)}; give an image of at "
                              "least 1x1 pixels", param="image")
    if channels is not None:
        image = to_channels(image, channels)
    if size is not None:
        image = resize(image, check_size(size))
    return image.contiguous()
