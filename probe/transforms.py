"""Random image transformations that make synthesized images robust (Lucid's "transformation robustness").

An image optimized through a fixed network finds high-frequency patterns that
excite a unit only at one exact alignment. Optimizing it through small random
shifts, scalings and rotations instead asks for a pattern that excites the unit
wherever it sits, and the pictures become smoother and easier to read.

Every transform is a small callable ``t(images, generator) -> images`` on a batch
``(N, C, H, W)`` of images in ``[0, 1]`` (before the model's normalization). The
same random choice applies to the whole batch at one call; every random choice
is drawn from the ``torch.Generator`` passed in, so the same seed gives the same
sequence of transformations (a random transform called without one raises:
none ever draws from torch's global generator). Transforms keep the graph:
gradients flow through them to the image parameters.

**Per-image randomness.** Given a :class:`~probe.streams.ImageStreams` instead
of a generator (what :func:`probe.maximize` does), every image draws its own
offsets, scale and angle from its own stream, so an image is transformed the
same whether it is alone or in a batch of 512. Then a run of consecutive
geometric transforms (constant pad, jitter, scale, rotate, centre fit) is
fused into one affine resampling: one ``affine_grid`` + ``grid_sample`` per
step instead of a pass per transform. The distributions stay the same; two
differences in geometry: a random scale zooms about the centre on a canvas of
the same size (instead of resizing it), which the final centre fit would crop
or pad back anyway, and the image is interpolated once, not once per
transform. Pixels from outside the image take the run's first fill value (the
pad's 0.5 in the standard chain), or repeat the border when no transform of
the run has one.

Example::

    from probe import transforms as T
    chain = T.compose(T.pad(2), T.jitter(2), T.random_rotate(range(-10, 11)), T.center_fit(28))
    out = chain(images, generator)        # (N, C, 28, 28)

:func:`standard_transforms` gives Lucent's standard list (for 224-pixel images);
:func:`transforms_for_size` scales it to any image size and ends with
:func:`center_fit`, so the model always sees the size it was asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from probe.errors import ProbeUsageError
from probe.streams import ImageStreams

__all__ = [
    "Transform",
    "Pad",
    "Jitter",
    "RandomScale",
    "RandomRotate",
    "CenterFit",
    "Compose",
    "pad",
    "jitter",
    "random_scale",
    "random_rotate",
    "center_fit",
    "compose",
    "standard_transforms",
    "transforms_for_size",
    "PAD_MODES",
    "resample",
]

PAD_MODES = ("constant", "reflect", "replicate", "circular")


@runtime_checkable
class Transform(Protocol):
    """``transform(images, generator) -> images``: ``(N, C, H, W)`` in, ``(N, C, H', W')`` out."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...


def _choice(options: Sequence[float], generator: torch.Generator | None, what: str) -> float:
    """One element of ``options``, drawn uniformly with ``generator``."""
    source = _seeded(generator, what)
    index = int(torch.randint(len(options), (1,), generator=source, device=source.device).item())
    return float(options[index])


def _seeded(generator: torch.Generator | None, what: str) -> torch.Generator:
    """``generator``, or a clear error: a random transform never draws from torch's global generator."""
    if generator is None:
        raise ProbeUsageError(f"{what} draws random numbers: call it with a torch.Generator (or the ImageStreams "
                              "probe.maximize passes), so that the same seed gives the same images")
    return generator


def _check_batch(images: torch.Tensor, what: str) -> None:
    if images.dim() != 4:
        raise ProbeUsageError(f"{what} expects a batch of images (N, C, H, W); got shape {tuple(images.shape)}")


@dataclass(frozen=True)
class Pad:
    """Pad every side by ``width`` pixels: ``(N, C, H, W)`` -> ``(N, C, H + 2w, W + 2w)``.

    Attributes:
        width: pixels added on each side (>= 0).
        mode: ``"constant"`` (fill with ``value``), ``"reflect"``, ``"replicate"``
            or ``"circular"`` (see ``torch.nn.functional.pad``).
        value: the fill value for ``"constant"`` (0.5: mid-gray in ``[0, 1]``).
    """

    width: int
    mode: str = "constant"
    value: float = 0.5
    draws: ClassVar[int] = 0
    """Random numbers per image it draws from :class:`~probe.streams.ImageStreams` (see :func:`resample`): none."""

    def __post_init__(self) -> None:
        if self.width < 0:
            raise ProbeUsageError(f"pad width must be >= 0; got {self.width}")
        if self.mode not in PAD_MODES:
            raise ProbeUsageError(f"unknown pad mode {self.mode!r}; modes are: {', '.join(PAD_MODES)}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(images, "pad")
        if self.width == 0:
            return images
        if isinstance(generator, ImageStreams) and self.mode == "constant":
            return resample(images, [self], generator)
        widths = (self.width,) * 4
        if self.mode == "constant":
            return F.pad(images, widths, mode="constant", value=self.value)
        return F.pad(images, widths, mode=self.mode)


@dataclass(frozen=True)
class Jitter:
    """Crop at a random offset of 0..``distance`` pixels in each direction: ``H, W`` -> ``H - d, W - d``.

    Lucid's jitter: the picture moves by up to ``distance`` pixels against the
    crop window.
    """

    distance: int

    def __post_init__(self) -> None:
        if self.distance < 0:
            raise ProbeUsageError(f"jitter distance must be >= 0; got {self.distance}")

    @property
    def draws(self) -> int:
        """Random numbers per image it draws from :class:`~probe.streams.ImageStreams`: an offset in y and one in
        x (none for ``distance`` 0, which keeps the image)."""
        return 2 if self.distance else 0

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(images, "jitter")
        d = self.distance
        if d == 0:
            return images
        height, width = images.shape[-2:]
        if d >= min(height, width):
            raise ProbeUsageError(f"jitter distance {d} is too large for images of {height}x{width}")
        if isinstance(generator, ImageStreams):
            return resample(images, [self], generator)
        source = _seeded(generator, "jitter")
        offsets = torch.randint(d + 1, (2,), generator=source, device=source.device).tolist()
        oy, ox = int(offsets[0]), int(offsets[1])
        return images[..., oy : oy + height - d, ox : ox + width - d]


@dataclass(frozen=True)
class RandomScale:
    """Resize by a factor drawn from ``scales`` (bilinear): ``H, W`` -> ``round(s H), round(s W)``."""

    scales: tuple[float, ...]
    draws: ClassVar[int] = 1
    """Random numbers per image it draws from :class:`~probe.streams.ImageStreams`: which scale."""

    def __post_init__(self) -> None:
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ProbeUsageError(f"random_scale needs positive scale factors; got {self.scales}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(images, "random_scale")
        if isinstance(generator, ImageStreams):
            return resample(images, [self], generator)
        scale = _choice(self.scales, generator, "random_scale")
        height, width = images.shape[-2:]
        size = (max(1, round(scale * height)), max(1, round(scale * width)))
        if size == (height, width):
            return images
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def _rotation_grid(angle_degrees: float, images: torch.Tensor) -> torch.Tensor:
    """A sampling grid that rotates ``images`` by ``angle`` degrees about the centre (pixel-accurate for H != W)."""
    height, width = images.shape[-2:]
    radians = math.radians(angle_degrees)
    cos, sin = math.cos(radians), math.sin(radians)
    theta = torch.tensor(
        [[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]],
        dtype=images.dtype,
        device=images.device,
    )
    return F.affine_grid(theta.expand(images.shape[0], 2, 3), list(images.shape), align_corners=False)


@dataclass(frozen=True)
class RandomRotate:
    """Rotate about the centre by an angle (degrees) drawn from ``angles``; the size is kept.

    Attributes:
        angles: the angles to draw from, in degrees (counter-clockwise on screen
            for positive angles). Repeat 0 to rotate less often, as Lucent does.
        fill: the value of corners that come from outside the image; None
            (default) repeats the border pixels.
    """

    angles: tuple[float, ...]
    fill: float | None = None
    draws: ClassVar[int] = 1
    """Random numbers per image it draws from :class:`~probe.streams.ImageStreams`: which angle."""

    def __post_init__(self) -> None:
        if not self.angles:
            raise ProbeUsageError("random_rotate needs at least one angle")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(images, "random_rotate")
        if isinstance(generator, ImageStreams):
            return resample(images, [self], generator)
        angle = _choice(self.angles, generator, "random_rotate")
        if angle % 360 == 0:
            return images
        grid = _rotation_grid(angle, images)
        if self.fill is None:
            return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        shifted = F.grid_sample(images - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return shifted + self.fill


@dataclass(frozen=True)
class CenterFit:
    """Crop or pad about the centre to exactly ``size`` = (H, W); deterministic.

    Ends a random chain so that a model with a fixed input size (a flatten
    before a linear layer) sees the size it expects.
    """

    size: tuple[int, int]
    value: float = 0.5
    draws: ClassVar[int] = 0
    """Random numbers per image it draws: none."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(images, "center_fit")
        height, width = images.shape[-2:]
        target_h, target_w = self.size
        if height > target_h:
            top = (height - target_h) // 2
            images = images[..., top : top + target_h, :]
        if width > target_w:
            left = (width - target_w) // 2
            images = images[..., :, left : left + target_w]
        height, width = images.shape[-2:]
        if height < target_h or width < target_w:
            dh, dw = target_h - height, target_w - width
            images = F.pad(images, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="constant", value=self.value)
        return images


@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, each drawing from the same generator."""

    transforms: tuple[Transform, ...]

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if isinstance(generator, ImageStreams):
            return _apply_fused(self.transforms, images, generator)
        for transform in self.transforms:
            images = transform(images, generator)
        return images

    def __len__(self) -> int:
        return len(self.transforms)


# ------------------------------------------------------------------ per-image, fused
_FUSABLE = (Jitter, RandomScale, RandomRotate, CenterFit)


def _fusable(transform: object) -> bool:
    return isinstance(transform, _FUSABLE) or (isinstance(transform, Pad) and transform.mode == "constant")


def _translation(dx: torch.Tensor | float, dy: torch.Tensor | float, n: int, device: torch.device) -> torch.Tensor:
    """``(N, 3, 3)`` maps ``(x, y, 1) -> (x + dx, y + dy, 1)``; ``dx``/``dy`` are numbers or ``(N,)``."""
    matrix = torch.eye(3, device=device).repeat(n, 1, 1)
    matrix[:, 0, 2] = dx
    matrix[:, 1, 2] = dy
    return matrix


def _shift(dx: float, dy: float, streams: ImageStreams) -> torch.Tensor:
    """:func:`_translation` by fixed numbers, for every image of ``streams``: made once per batch."""
    return streams.constant(("translation", dx, dy), lambda: _translation(dx, dy, len(streams), streams.device))


def _about_centre(linear: torch.Tensor, size: tuple[int, int], streams: ImageStreams) -> torch.Tensor:
    """Embed ``(N, 2, 2)`` linear maps as ``(N, 3, 3)`` maps about the centre of an ``(H, W)`` canvas."""
    cx, cy = size[1] / 2, size[0] / 2
    matrix = streams.constant("identity", lambda: torch.eye(3, device=streams.device).repeat(len(streams), 1, 1))
    matrix = matrix.clone()
    matrix[:, :2, :2] = linear
    return _shift(cx, cy, streams) @ matrix @ _shift(-cx, -cy, streams)


def _step_affine(
    transform: object, streams: ImageStreams, size: tuple[int, int]
) -> tuple[torch.Tensor | None, tuple[int, int]]:
    """One transform as ``(N, 3, 3)`` output->input pixel coordinates (None: identity) and its output size.

    Coordinates are continuous: pixel ``(i, j)`` covers ``[j, j+1] x [i, i+1]``.
    """
    n, device = len(streams), streams.device
    height, width = size
    if isinstance(transform, Pad):
        w = transform.width
        return (_shift(-w, -w, streams) if w else None), (height + 2 * w, width + 2 * w)
    if isinstance(transform, Jitter):
        d = transform.distance
        if d == 0:
            return None, size
        if d >= min(height, width):
            raise ProbeUsageError(f"jitter distance {d} is too large for images of {height}x{width}")
        offsets = streams.integers(d + 1, transform.draws).to(torch.float32)  # (N, 2): y, x
        return _translation(offsets[:, 1], offsets[:, 0], n, device), (height - d, width - d)
    if isinstance(transform, RandomScale):
        options = streams.table(transform.scales)
        inverse = 1.0 / options[streams.integers(len(options), transform.draws)[:, 0]]
        return _about_centre(torch.diag_embed(torch.stack([inverse, inverse], 1)), size, streams), size
    if isinstance(transform, RandomRotate):
        options = streams.table([math.radians(a) for a in transform.angles])
        angle = options[streams.integers(len(options), transform.draws)[:, 0]]
        cos, sin = angle.cos(), angle.sin()
        linear = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        return _about_centre(linear, size, streams), size
    if isinstance(transform, CenterFit):
        target_h, target_w = transform.size

        def offset(have: int, want: int) -> int:
            return (have - want) // 2 if have >= want else -((want - have) // 2)

        dy, dx = offset(height, target_h), offset(width, target_w)
        return (_shift(dx, dy, streams) if dx or dy else None), (target_h, target_w)
    raise TypeError(f"{type(transform).__name__} is not a geometric transform")


def _fill(transform: object) -> float | None:
    if isinstance(transform, Pad) and transform.width > 0:
        return transform.value
    if isinstance(transform, RandomRotate):
        return transform.fill
    if isinstance(transform, CenterFit):
        return transform.value
    return None


def resample(images: torch.Tensor, transforms: Sequence[Transform], streams: ImageStreams) -> torch.Tensor:
    """Apply a run of geometric transforms with per-image draws as one affine resampling.

    Args:
        images: ``(N, C, H, W)``.
        transforms: constant :class:`Pad`, :class:`Jitter`, :class:`RandomScale`,
            :class:`RandomRotate` and :class:`CenterFit`, in order; each draws its ``draws``
            numbers per image, all of the run's hashed in one go.
        streams: one stream per image (``len(streams) == N``).

    Returns:
        ``(N, C, H', W')``: one bilinear ``grid_sample`` of ``images``; pixels from
        outside take the first fill value of the run (border pixels when none has one).

    Raises:
        ProbeUsageError: ``streams`` is not one per image, or a transform is none of those.
    """
    _check_batch(images, "resample")
    n, _, height, width = images.shape
    if len(streams) != n:
        raise ProbeUsageError(f"{len(streams)} random streams for a batch of {n} images")
    unfit = next((transform for transform in transforms if not _fusable(transform)), None)
    if unfit is not None:  # a reflecting pad was resampled as a constant one
        raise ProbeUsageError(f"resample fuses constant pads, jitter, random_scale, random_rotate and center_fit; "
                              f"got {unfit!r}: apply it on its own")
    size = (height, width)
    matrix: torch.Tensor | None = None
    fill: float | None = None
    streams.prefetch(sum(transform.draws for transform in transforms))  # the run's numbers in one hash, the same ones
    for transform in transforms:
        step, size = _step_affine(transform, streams, size)
        if fill is None:
            fill = _fill(transform)
        if step is not None:
            matrix = step if matrix is None else matrix @ step
    if matrix is None:
        return images if size == (height, width) else CenterFit(size, 0.5 if fill is None else fill)(images)
    out_h, out_w = size
    ys, xs = (streams.constant(("centres", side, images.device), lambda side=side: torch.arange(
        side, dtype=torch.float32, device=images.device) + 0.5) for side in size)  # pixel centres, made once
    m = matrix[:, :2, :, None, None]  # (N, 2, 3, 1, 1); elementwise below, so each image is computed alone
    source = m[:, :, 0] * xs[None, None, None, :] + m[:, :, 1] * ys[None, None, :, None] + m[:, :, 2]  # (N, 2, H', W')
    # grid: (N, H', W', 2), x and y in [-1, 1] (align_corners=False: -1 is the left edge of the first pixel)
    grid = torch.stack([source[:, 0] / (width / 2) - 1, source[:, 1] / (height / 2) - 1], -1).to(images.dtype)
    if fill is None:
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def _apply_fused(transforms: Sequence[Transform], images: torch.Tensor, streams: ImageStreams) -> torch.Tensor:
    """Apply ``transforms`` in order with per-image draws, fusing each run of geometric ones."""
    run: list[Transform] = []
    for transform in transforms:
        if _fusable(transform):
            run.append(transform)
            continue
        if run:
            images, run = resample(images, run, streams), []
        images = transform(images, streams if isinstance(transform, Compose) else streams.generator)
    return resample(images, run, streams) if run else images


def pad(width: int, mode: str = "constant", value: float = 0.5) -> Pad:
    """See :class:`Pad`: grow every side by ``width`` pixels (default fill mid-gray 0.5)."""
    return Pad(int(width), mode, float(value))


def jitter(distance: int) -> Jitter:
    """See :class:`Jitter`: a random crop that moves the picture by up to ``distance`` pixels."""
    return Jitter(int(distance))


def random_scale(scales: Iterable[float]) -> RandomScale:
    """See :class:`RandomScale`: resize by a factor drawn from ``scales``."""
    return RandomScale(tuple(float(s) for s in scales))


def random_rotate(angles: Iterable[float], fill: float | None = None) -> RandomRotate:
    """See :class:`RandomRotate`: rotate by an angle in degrees drawn from ``angles``."""
    return RandomRotate(tuple(float(a) for a in angles), fill)


def center_fit(size: int | Sequence[int], value: float = 0.5) -> CenterFit:
    """See :class:`CenterFit`: crop or pad about the centre to ``size`` (an int or ``(H, W)``)."""
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return CenterFit((height, width), float(value))


def compose(*transforms: Transform | Iterable[Transform]) -> Compose:
    """Chain transforms (or lists of them) into one: ``compose(pad(4), jitter(4))``."""
    flat: list[Transform] = []
    for item in transforms:
        if isinstance(item, Compose):
            flat.extend(item.transforms)
        elif callable(item):
            flat.append(item)
        else:
            flat.extend(compose(*item).transforms)
    return Compose(tuple(flat))


def standard_transforms() -> list[Transform]:
    """Lucent's standard list, made for 224-pixel images.

    ``pad(12)``, ``jitter(8)``, ``random_scale(0.9 ... 1.1)``,
    ``random_rotate(-10 ... 10 degrees, 0 more often)``, ``jitter(4)``. The
    output is a few pixels larger than the input; use
    :func:`transforms_for_size` to get a chain for another size that ends at the
    input's own size.
    """
    return [
        pad(12),
        jitter(8),
        random_scale([1 + (i - 5) / 50 for i in range(11)]),
        random_rotate(list(range(-10, 11)) + 5 * [0]),
        jitter(4),
    ]


def transforms_for_size(size: int | Sequence[int], *, strength: float = 1.0, fill: float = 0.5) -> list[Transform]:
    """The standard transforms scaled to images of ``size``, ending with :func:`center_fit` to ``size``.

    Shifts (pad and jitter) scale with the image: Lucent's 12/8/4 pixels at 224
    become 2/1/1 pixels at 28 (never below 1). Scale factors stay within +-10%
    and rotations within +-10 degrees at any size, since they are relative.

    Args:
        size: the image size, an int or ``(H, W)``.
        strength: multiplies every shift, scale range and angle (default 1.0;
            0 gives only the final fit, i.e. no randomness).
        fill: the value of padded pixels in ``[0, 1]`` (default 0.5, mid-gray).

    Returns:
        A list of transforms; ``compose(*list)`` maps ``(N, C, H, W)`` to the same shape.
    """
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if strength < 0:
        raise ProbeUsageError(f"transform strength must be >= 0; got {strength}")
    side = min(height, width)

    def shift(pixels_at_224: float) -> int:
        if strength == 0:
            return 0
        return max(1, round(pixels_at_224 * strength * side / 224))

    scales = [1 + strength * (i - 5) / 50 for i in range(11)]
    angles = [strength * a for a in range(-10, 11)] + 5 * [0.0]
    return [
        pad(shift(12), value=fill),
        jitter(shift(8)),
        random_scale(scales),
        random_rotate(angles),
        jitter(shift(4)),
        center_fit((height, width), value=fill),
    ]
