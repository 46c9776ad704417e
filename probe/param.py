"""Image parametrizations: what the optimizer changes, and how that becomes an image in ``[0, 1]``.

Gradient ascent does not have to move the pixels themselves. Lucid showed that
describing the image by its Fourier coefficients, scaled by ``1/f`` so that all
frequencies start with equal energy, and decorrelating its colours, gives far
smoother, more natural pictures for the same objective. Both are here, for any
number of channels:

- ``"pixel"``: the parameters are the pixels. With ``squash="sigmoid"``
  (default) the image is ``sigmoid(p)``; with ``squash="clip"`` it is ``p``
  itself and ``p`` is clipped to ``[0, 1]`` after every step (projected gradient
  ascent: the seeds' method, literally).
- ``"fft"``: the parameters are the real and imaginary parts of the image's 2-D
  spectrum (``rfft2``), multiplied by ``1 / max(f, 1/size) ** decay_power``
  before the inverse transform, then ``sigmoid``.
- colour decorrelation (RGB only, on by default for 3 channels): the three
  channels of the parameter are mixed by the square root of ImageNet's colour
  correlation matrix, so that the optimizer moves along decorrelated colour
  axes. Other channel counts (1 for digits) use no mixing.

Every parametrization returns an :class:`ImageParam`: its ``params`` go to the
optimizer, and calling it gives ``(N, C, H, W)`` images in ``[0, 1]``. Initial
values are drawn from a ``torch.Generator``: same seed, same image. An ``init``
image starts the optimization from that image instead (exactly, for both kinds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from probe.errors import ProbeUsageError

__all__ = [
    "ImageParam",
    "PARAMETRIZATIONS",
    "SQUASHES",
    "COLOR_CORRELATION_SVD_SQRT",
    "pixel_image",
    "fft_image",
    "image_param",
    "decorrelate_colors",
    "correlate_colors",
    "rfft2d_frequencies",
]

PARAMETRIZATIONS = ("pixel", "fft")
SQUASHES = ("sigmoid", "clip")

COLOR_CORRELATION_SVD_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64
)
"""Square root (via SVD) of ImageNet's RGB colour correlation matrix, as in Lucid and Lucent."""

_COLOR_MATRIX = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
_FFT_MAGIC = 4.0  # Lucid's divisor: keeps the initial image's spread small after the 1/f scaling
_EPSILON = 1e-4


@dataclass
class ImageParam:
    """A parametrized batch of images.

    Attributes:
        params: the leaf tensors to optimize (``requires_grad=True``).
        image_fn: ``() -> (N, C, H, W)`` images in ``[0, 1]``, differentiable in ``params``.
        shape: ``(N, C, H, W)``.
        kind: ``"pixel"`` or ``"fft"`` (or your own name).
        constrain_fn: called without grad after every optimizer step (the
            ``clip`` squash uses it); None when nothing needs doing.
        options: what was chosen, for the record (decorrelate, squash, ...).
    """

    params: list[torch.Tensor]
    image_fn: Callable[[], torch.Tensor]
    shape: tuple[int, int, int, int]
    kind: str
    constrain_fn: Callable[[], None] | None = None
    options: dict[str, object] = field(default_factory=dict)

    def __call__(self) -> torch.Tensor:
        """The images, ``(N, C, H, W)`` in ``[0, 1]``."""
        return self.image_fn()

    def constrain(self) -> None:
        """Project the parameters back onto their valid set (after an optimizer step)."""
        if self.constrain_fn is not None:
            with torch.no_grad():
                self.constrain_fn()


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    if len(shape) != 4 or any(int(s) < 1 for s in shape):
        raise ProbeUsageError(f"an image batch shape must be (N, C, H, W) with positive sizes; got {tuple(shape)}")
    n, c, h, w = (int(s) for s in shape)
    return n, c, h, w


def _use_decorrelation(decorrelate: bool | None, channels: int) -> bool:
    if decorrelate is None:
        return channels == 3
    if decorrelate and channels != 3:
        raise ProbeUsageError(f"colour decorrelation needs 3 (RGB) channels; these images have {channels}")
    return bool(decorrelate)


def decorrelate_colors(t: torch.Tensor, matrix: torch.Tensor | None = None) -> torch.Tensor:
    """Map decorrelated colour coordinates to RGB: ``(N, 3, H, W)`` -> ``(N, 3, H, W)`` (before squashing).

    ``matrix``: the colour matrix already on ``t``'s device and dtype (a render loop passes it, so that no
    step copies it to the GPU, which would wait for the device); default: copied here.
    """
    if matrix is None:
        matrix = _COLOR_MATRIX.to(device=t.device, dtype=t.dtype)
    return torch.einsum("ij,njhw->nihw", matrix, t)


def correlate_colors(t: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`decorrelate_colors`: RGB -> decorrelated coordinates."""
    inverse = torch.linalg.inv(_COLOR_MATRIX).to(device=t.device, dtype=t.dtype)
    return torch.einsum("ij,njhw->nihw", inverse, t)


Generators = torch.Generator | Sequence[torch.Generator] | None
"""One generator for the batch, or one per image (each image's noise then depends on its generator alone)."""


def _draw(shape: Sequence[int], sd: float, generator: Generators, device: torch.device) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device, then moved: same seed, same values anywhere.

    With a sequence of ``N`` generators, image ``i`` (``shape[0] == N``) is drawn from ``generator[i]``.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        generators = list(generator)
        if len(generators) != shape[0]:
            raise ProbeUsageError(f"{len(generators)} generators for a batch of {shape[0]} images")
        rows = [torch.randn(*shape[1:], generator=g, device=g.device) for g in generators]
        return (torch.stack(rows) * sd).to(device)  # one copy to the device, not one per image
    source = generator.device if generator is not None else torch.device("cpu")
    return (torch.randn(*shape, generator=generator, device=source) * sd).to(device)


def _check_init(init: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    if init.dim() == 3:
        init = init.unsqueeze(0)
    if init.shape[1:] != shape[1:] or init.shape[0] not in (1, shape[0]):
        raise ProbeUsageError(f"init images of shape {tuple(init.shape)} do not fit the batch shape {shape}")
    return init.expand(shape).to(torch.float32)


def _logit(images: torch.Tensor) -> torch.Tensor:
    return torch.logit(images.clamp(_EPSILON, 1 - _EPSILON))


def pixel_image(
    shape: Sequence[int],
    *,
    sd: float = 0.01,
    decorrelate: bool | None = None,
    squash: str = "sigmoid",
    init: torch.Tensor | None = None,
    generator: Generators = None,
    device: torch.device | str = "cpu",
) -> ImageParam:
    """Pixels as parameters.

    Args:
        shape: ``(N, C, H, W)``.
        sd: standard deviation of the initial noise (default 0.01: a mid-gray
            start with a little noise).
        decorrelate: mix RGB through the colour matrix; default None = yes for
            3 channels, no otherwise.
        squash: ``"sigmoid"`` (image = ``sigmoid(p)``, default) or ``"clip"``
            (image = ``p``, clipped to ``[0, 1]`` after each step: projected
            gradient ascent). ``"clip"`` works without decorrelation only.
        init: start from these images in ``[0, 1]``, ``(N|1, C, H, W)`` or ``(C, H, W)``.
        generator: for the initial noise (default: torch's global generator), or
            one generator per image.
        device: where the parameters live.

    Returns:
        An :class:`ImageParam` of kind ``"pixel"``.
    """
    n, c, h, w = _check_shape(shape)
    if squash not in SQUASHES:
        raise ProbeUsageError(f"unknown squash {squash!r}; squashes are: {', '.join(SQUASHES)}")
    use_colors = _use_decorrelation(decorrelate, c)
    if squash == "clip" and use_colors:
        if decorrelate:
            raise ProbeUsageError("squash='clip' clips pixels directly; use it with decorrelate=False")
        use_colors = False
    device = torch.device(device)
    if squash == "clip":
        start = 0.5 + _draw((n, c, h, w), sd, generator, device)
        if init is not None:
            start = _check_init(init, (n, c, h, w)).to(device).clone()
        raw = start.clamp(0, 1).requires_grad_(True)
        return ImageParam([raw], lambda: raw, (n, c, h, w), "pixel", lambda: raw.clamp_(0, 1),
                          {"squash": "clip", "decorrelate": False})
    if init is not None:
        start = _logit(_check_init(init, (n, c, h, w)).to(device))
        if use_colors:
            start = correlate_colors(start)
    else:
        start = _draw((n, c, h, w), sd, generator, device)
    raw = start.clone().requires_grad_(True)
    colors = _COLOR_MATRIX.to(device=device, dtype=raw.dtype)

    def image() -> torch.Tensor:
        return torch.sigmoid(decorrelate_colors(raw, colors) if use_colors else raw)

    return ImageParam([raw], image, (n, c, h, w), "pixel", None, {"squash": "sigmoid", "decorrelate": use_colors})


def rfft2d_frequencies(height: int, width: int) -> torch.Tensor:
    """``(H, W // 2 + 1)`` spatial frequency magnitudes of ``torch.fft.rfft2``'s coefficients (cycles per pixel)."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def fft_image(
    shape: Sequence[int],
    *,
    sd: float = 0.01,
    decay_power: float = 1.0,
    decorrelate: bool | None = None,
    init: torch.Tensor | None = None,
    generator: Generators = None,
    device: torch.device | str = "cpu",
) -> ImageParam:
    """The image's Fourier spectrum as parameters, scaled by ``1/f ** decay_power``.

    The image is ``sigmoid(mix(irfft2(scale * spectrum) / 4))`` where ``scale =
    1 / max(f, 1/max(H, W)) ** decay_power`` and ``mix`` is the colour
    decorrelation (RGB) or nothing.

    Args:
        shape: ``(N, C, H, W)``.
        sd: standard deviation of the initial spectrum (default 0.01).
        decay_power: the exponent of the ``1/f`` scaling (default 1.0; 0 gives a
            plain Fourier basis).
        decorrelate: as for :func:`pixel_image` (default: yes for 3 channels).
        init: start from these images in ``[0, 1]`` (exactly, up to float error).
        generator: for the initial spectrum, or one generator per image.
        device: where the parameters live.

    Returns:
        An :class:`ImageParam` of kind ``"fft"``.
    """
    n, c, h, w = _check_shape(shape)
    use_colors = _use_decorrelation(decorrelate, c)
    device = torch.device(device)
    frequencies = rfft2d_frequencies(h, w)
    scale = (1.0 / frequencies.clamp(min=1.0 / max(h, w)) ** decay_power).to(torch.float32).to(device)
    scale = scale[None, None, :, :, None]  # broadcast over (N, C, H, W//2+1, re/im)
    if init is not None:
        target = _logit(_check_init(init, (n, c, h, w)).to(device))
        if use_colors:
            target = correlate_colors(target)
        spectrum = torch.view_as_real(torch.fft.rfft2(target * _FFT_MAGIC, norm="ortho")) / scale
    else:
        spectrum = _draw((n, c, h, w // 2 + 1, 2), sd, generator, device)
    raw = spectrum.clone().contiguous().requires_grad_(True)
    colors = _COLOR_MATRIX.to(device=device, dtype=raw.dtype)

    def image() -> torch.Tensor:
        spatial = torch.fft.irfft2(torch.view_as_complex(raw * scale), s=(h, w), norm="ortho") / _FFT_MAGIC
        return torch.sigmoid(decorrelate_colors(spatial, colors) if use_colors else spatial)

    return ImageParam([raw], image, (n, c, h, w), "fft", None,
                      {"decay_power": decay_power, "decorrelate": use_colors})


def image_param(
    kind: str,
    shape: Sequence[int],
    *,
    generator: Generators = None,
    device: torch.device | str = "cpu",
    **options: object,
) -> ImageParam:
    """Build a parametrization by name: ``"pixel"`` (:func:`pixel_image`) or ``"fft"`` (:func:`fft_image`).

    ``options`` go to that function (``sd``, ``decorrelate``, ``squash``,
    ``decay_power``, ``init``).

    Raises:
        ProbeUsageError: unknown kind or option.
    """
    builders = {"pixel": pixel_image, "fft": fft_image}
    if kind not in builders:
        raise ProbeUsageError(f"unknown parametrization {kind!r}; parametrizations are: {', '.join(PARAMETRIZATIONS)}",
                              param="param")
    try:
        return builders[kind](shape, generator=generator, device=device, **options)  # type: ignore[arg-type]
    except TypeError as error:
        raise ProbeUsageError(f"bad option for the {kind!r} parametrization: {error}", param="param") from None
