"""The images of an atlas's dataset pass: the zoo model's own data, scikit-image's photos, or a folder.

Every source gives images ``(C, H, W)`` in ``[0, 1]`` at the model's input size
(centre-cropped to its aspect ratio, then resized) and a short name for each,
in a fixed order: the dataset pass splits that order into fixed batches, so an
image's activations never depend on which rank saw it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from probe.errors import ProbeUsageError
from probe.images import IMAGE_SUFFIXES, SKIMAGE_SAMPLES, image_files, load_image, resize, to_channels
from probe.inputs import center_crop
from probe.models import LoadedModel

__all__ = ["AtlasData", "open_dataset", "SAMPLED"]

SAMPLED = 4
"""An in-memory dataset's identity reads this many images at each end (and the count): cheap at any size."""


@dataclass
class AtlasData:
    """A fixed, ordered list of images for the dataset pass.

    Attributes:
        source: what the user gave (``"zoo"``, ``"skimage"``, a folder).
        names: one short name per image (``"digits train 17 (7)"``, ``"cat/001.jpg"``).
        channels: channels of every image (the model's).
        size: ``(H, W)`` of every image (the model's input size).
        tensor: ``(N, C, H, W)`` all images in memory (zoo, skimage), else None.
        paths: the image files (folders), else empty.
    """

    source: str
    names: list[str]
    channels: int
    size: tuple[int, int]
    tensor: torch.Tensor | None = None
    paths: Sequence[Path] = ()

    def __len__(self) -> int:
        return len(self.names)

    def identity(self) -> str:
        """A 16-hex-digit digest of what the dataset is, without reading every image.

        A folder: every file's name (relative to the folder), size and modification time, in the pass's
        order: a folder of other images under the same name and of the same size is told apart, and a file
        that was replaced or touched is too. In memory (zoo, skimage): the names, and the bytes of the
        first and last :data:`SAMPLED` images.
        """
        digest = hashlib.sha256(json.dumps([self.channels, list(self.size), self.names]).encode())
        if self.paths:
            for path in self.paths:
                try:
                    stat = path.stat()
                except OSError as error:
                    raise ProbeUsageError(f"--dataset: cannot read {str(path)!r} ({error.strerror or error})",
                                          param="dataset") from None
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns};".encode())
        elif self.tensor is not None:
            count = self.tensor.shape[0]
            for index in sorted({*range(min(SAMPLED, count)), *range(max(0, count - SAMPLED), count)}):
                digest.update(self.tensor[index].contiguous().float().numpy().tobytes())
        return digest.hexdigest()[:16]

    def load(self, indices: Sequence[int]) -> torch.Tensor:
        """``(len(indices), C, H, W)`` images in ``[0, 1]`` on the CPU."""
        if self.tensor is not None:
            return self.tensor[list(indices)]
        return torch.stack([self._fit(self._read(self.paths[i])) for i in indices])

    def _read(self, path: Path) -> torch.Tensor:
        """One file with the model's channels (an RGBA file keeps its alpha for a 4-channel model)."""
        try:
            return load_image(path, channels=self.channels)
        except ProbeUsageError as error:
            raise ProbeUsageError(f"--dataset {path}: {error}", param="dataset") from None

    def _fit(self, image: torch.Tensor) -> torch.Tensor:
        try:
            image = to_channels(image, self.channels)
        except ProbeUsageError as error:
            raise ProbeUsageError(f"--dataset {self.source}: {error}", param="dataset") from None
        return resize(center_crop(image, self.size[1] / self.size[0]), self.size)


def _zoo(loaded: LoadedModel, limit: int | None) -> AtlasData:
    from probe import zoo

    if loaded.source != "zoo":
        raise ProbeUsageError(f"--dataset zoo is the data of an embedded zoo model ({', '.join(zoo.zoo_names())}); "
                              f"{loaded.name} is not one: give --dataset DIR or skimage", param="dataset")
    parts, names = [], []
    for split in ("train", "test"):
        images, labels = zoo.make_dataset(loaded.name, split).tensors
        parts.append(images)
        names += [f"{split} {i} ({loaded.label(int(label))})" for i, label in enumerate(labels)]
    tensor = torch.cat(parts)
    count = len(names) if limit is None else min(limit, len(names))
    return AtlasData("zoo", names[:count], tensor.shape[1], tuple(tensor.shape[2:]), tensor=tensor[:count])


def _skimage(loaded: LoadedModel, limit: int | None) -> AtlasData:
    size = loaded.preprocess.input_size
    names = list(SKIMAGE_SAMPLES[: limit or None])
    data = AtlasData("skimage", names, loaded.preprocess.channels, size)
    data.tensor = torch.stack([data._fit(load_image(f"skimage:{name}")) for name in names])
    return data


def _folder(folder: Path, loaded: LoadedModel, limit: int | None) -> AtlasData:
    if not folder.is_dir():
        raise ProbeUsageError(f"--dataset {str(folder)!r} is not a folder; give a folder of images "
                              "(flat, or one subfolder per class as torchvision's ImageFolder), zoo or skimage",
                              param="dataset")
    classes = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    if classes:  # one subfolder per class, in torchvision ImageFolder's order: by class, then by path
        paths = [path for child in classes for path in image_files(child, recursive=True)]
    else:
        paths = image_files(folder)
    if not paths:
        raise ProbeUsageError(f"--dataset {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                              param="dataset")
    paths = paths[: limit or None]
    names = [path.relative_to(folder).as_posix() for path in paths]
    return AtlasData(str(folder), names, loaded.preprocess.channels, loaded.preprocess.input_size, paths=paths)


def open_dataset(source: str | Path, loaded: LoadedModel, *, limit: int | None = None) -> AtlasData:
    """The dataset of an atlas.

    Args:
        source: ``"zoo"`` (the embedded model's train and test data, in that
            order), ``"skimage"`` (scikit-image's bundled photos), or a folder:
            one subfolder per class (torchvision ``ImageFolder`` order) or a flat
            folder of images (sorted by name); hidden files and folders (``._a.png``,
            ``.ipynb_checkpoints``) are skipped (see :func:`probe.images.image_files`).
        loaded: the model; its channels and input size apply.
        limit: keep only the first ``limit`` images (default all).

    Raises:
        ProbeUsageError: an unknown source, an empty folder, ``zoo`` for a model outside the zoo.
    """
    if limit is not None and limit < 1:
        raise ProbeUsageError(f"--limit must be >= 1; got {limit}", param="limit")
    text = str(source)
    if text == "zoo":
        return _zoo(loaded, limit)
    if text == "skimage":
        return _skimage(loaded, limit)
    return _folder(Path(text).expanduser(), loaded, limit)
