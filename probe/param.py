"""Image parametrizations: what the optimizer changes, and how that becomes an image in ``[0, 1]``.

Gradient ascent does not have to move the pixels themselves. Lucid showed that
describing the image by its Fourier coefficients, scaled by ``1/f`` so that all
frequencies start with equal energy, and decorrelating its colours, gives far
smoother, more natural pictures for the same objective. Both are here, for any
number of channels:

- ``"pixel"``: the parameters are the pixels. With ``squash="sigmoid"``
  (default) the image is ``sigmoid(p)``; with ``squash="clip"`` it is ``p``
  itself and ``p`` is clipped to ``[0, 1]`` after every step (projected gradient
  ascent: the textbook method).
- ``"fft"``: the parameters are the real and imaginary parts of the image's 2-D
  spectrum (``rfft2``), multiplied by ``1 / max(f, 1/size) ** decay_power``
  before the inverse transform, then ``sigmoid``.
- colour decorrelation (RGB only, on by default for 3 channels): the three
  channels of the parameter are mixed by the square root of ImageNet's colour
  correlation matrix, so that the optimizer moves along decorrelated colour
  axes. Other channel counts (1 for digits) use no mixing.

Newer ones, from the field: ``"maco"`` (:func:`maco_image`, Fel et al. 2023:
the Fourier phase only, the magnitude a natural-image spectrum, with a
transparency map), ``"cppn"`` (:func:`cppn_image`, a small network of the pixel
coordinates per image) and ``"laplacian"`` (:func:`laplacian_image`, a sum of
upsampled low-resolution levels). :func:`parametrization` gives any of them
with options as the ``param`` of :func:`probe.maximize`.

Every parametrization returns an :class:`ImageParam`: its ``params`` go to the
optimizer, and calling it gives ``(N, C, H, W)`` images in ``[0, 1]``. Initial
values are drawn from a ``torch.Generator``: same seed, same image. An ``init``
image starts the optimization from that image instead (exactly, for both kinds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from probe.choices import PARAM_LEARNING_RATES, PARAMETRIZATIONS  # torch-free: the commands' options offer them
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
    "MacoParam",
    "maco_image",
    "parametrization",
    "cppn_image",
    "LEARNING_RATES",
    "laplacian_image",
]

SQUASHES = ("sigmoid", "clip")
LEARNING_RATES = PARAM_LEARNING_RATES
"""Default learning rates of parametrizations that need another than the preset's
(:data:`probe.choices.PARAM_LEARNING_RATES`: Lucid's 0.005 for CPPNs)."""

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
"""One generator for the batch, or one per image (each image's noise then depends on its generator alone);
None: a generator seeded with 0 (never torch's global one, whose state the caller keeps)."""


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
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    return (torch.randn(*shape, generator=generator, device=generator.device) * sd).to(device)


def _check_init(init: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    if init.dim() == 3:
        init = init.unsqueeze(0)
    if init.shape[1:] != shape[1:] or init.shape[0] not in (1, shape[0]):
        raise ProbeUsageError(f"init images of shape {tuple(init.shape)} do not fit the batch shape {shape}")
    return init.expand(shape).to(torch.float32)


def _colored_sigmoid(use_colors: bool, like: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``t -> sigmoid(mix(t))``, ``(N, C, H, W)`` -> ``(N, C, H, W)`` in ``[0, 1]``: ``mix`` the colour
    decorrelation (:func:`decorrelate_colors`) when ``use_colors``, else nothing. The colour matrix is copied
    to ``like``'s device and dtype once, here: a copy at every step would make the step wait for a GPU."""
    if not use_colors:
        return torch.sigmoid
    colors = _COLOR_MATRIX.to(device=like.device, dtype=like.dtype)
    return lambda t: torch.sigmoid(decorrelate_colors(t, colors))


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
    to_image = _colored_sigmoid(use_colors, raw)
    return ImageParam([raw], lambda: to_image(raw), (n, c, h, w), "pixel", None,
                      {"squash": "sigmoid", "decorrelate": use_colors})


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
    to_image = _colored_sigmoid(use_colors, raw)

    def image() -> torch.Tensor:
        return to_image(torch.fft.irfft2(torch.view_as_complex(raw * scale), s=(h, w), norm="ortho") / _FFT_MAGIC)

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
    """Build a parametrization by name: ``"pixel"`` (:func:`pixel_image`), ``"fft"`` (:func:`fft_image`),
    ``"maco"`` (:func:`maco_image`), ``"cppn"`` (:func:`cppn_image`) or ``"laplacian"`` (:func:`laplacian_image`).

    ``options`` go to that function (``sd``, ``decorrelate``, ``squash``,
    ``decay_power``, ``init``; ``spectrum`` for maco, ``hidden`` and ``layers`` for cppn, ``levels`` for laplacian).

    Raises:
        ProbeUsageError: unknown kind or option.
    """
    builders = {"pixel": pixel_image, "fft": fft_image, "maco": maco_image, "cppn": cppn_image,
                "laplacian": laplacian_image}
    if kind not in builders:
        raise ProbeUsageError(f"unknown parametrization {kind!r}; parametrizations are: {', '.join(PARAMETRIZATIONS)}",
                              param="param")
    try:
        return builders[kind](shape, generator=generator, device=device, **options)  # type: ignore[arg-type]
    except TypeError as error:
        raise ProbeUsageError(f"bad option for the {kind!r} parametrization: {error}", param="param") from None


# ------------------------------------------------------------------------ MACO
@dataclass
class MacoParam(ImageParam):
    """A MACO parametrization (:func:`maco_image`): an :class:`ImageParam` that also keeps a transparency map.

    Attributes:
        transparency: ``(N, C, H, W)``, the accumulated ``|d objective / d image|``
            over every gradient step so far (Fel et al.'s transparency map: where
            the optimization kept pushing); zeros before the first step.
        spectrum_source: where the fixed magnitude came from (for the manifest).
    """

    transparency: torch.Tensor | None = None
    spectrum_source: str = ""

    def maps(self) -> dict[str, torch.Tensor]:
        """``{"transparency": (N, 1, H, W)}``: the accumulated |gradient| summed over channels (not normalized)."""
        assert self.transparency is not None
        return {"transparency": self.transparency.sum(1, keepdim=True).detach()}


def _standardize(t: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation per image of a ``(N, ...)`` tensor."""
    flat = t.flatten(1)
    mean = flat.mean(1).view(-1, *([1] * (t.dim() - 1)))
    std = flat.std(1).view(-1, *([1] * (t.dim() - 1)))
    return (t - mean) / (std + _EPSILON)


def maco_image(
    shape: Sequence[int],
    *,
    spectrum: object = None,
    sd: float = 1.0,
    decorrelate: bool | None = None,
    generator: Generators = None,
    device: torch.device | str = "cpu",
) -> MacoParam:
    """MACO (Fel et al. 2023): only the Fourier phase is optimized; the magnitude is a natural-image spectrum.

    The image is ``sigmoid(mix(standardize(irfft2(M * exp(i * standardize(phase))))))``:
    ``M`` the fixed magnitude ``(C, H, W // 2 + 1)`` of :func:`probe.spectrum.natural_spectrum`,
    ``mix`` the colour decorrelation (RGB) or nothing (any other channel count,
    e.g. 1 for digits). Every gradient of the objective w.r.t. the image is
    accumulated in absolute value into :attr:`MacoParam.transparency` (a tensor
    hook on the image: the render loop needs no change).

    Args:
        shape: ``(N, C, H, W)``; C is 1 or 3.
        spectrum: None (default: the mean spectrum of scikit-image's bundled
            photographs, :func:`probe.spectrum.default_spectrum`), a folder of
            images (computed and cached, :func:`probe.spectrum.folder_spectrum`),
            a :class:`probe.spectrum.Spectrum`, or a ``(C, h, w // 2 + 1)``
            magnitude tensor (resized).
        sd: standard deviation of the random initial phase (default 1.0).
        decorrelate: as for :func:`pixel_image` (default: yes for 3 channels).
        generator: for the initial phase, or one generator per image.
        device: where the parameters live.

    Returns:
        A :class:`MacoParam` of kind ``"maco"``.
    """
    from probe.spectrum import natural_spectrum

    n, c, h, w = _check_shape(shape)
    use_colors = _use_decorrelation(decorrelate, c)
    device = torch.device(device)
    chosen = natural_spectrum(spectrum, h, w, c)  # type: ignore[arg-type]
    magnitude = chosen.resized(h, w).to(device=device, dtype=torch.float32)[None]
    phase = _draw((n, c, h, w // 2 + 1), sd, generator, device).requires_grad_(True)
    transparency = torch.zeros(n, c, h, w, device=device)
    to_image = _colored_sigmoid(use_colors, phase)

    def accumulate(grad: torch.Tensor) -> None:
        transparency.add_(grad.detach().abs().to(transparency.dtype))

    def image() -> torch.Tensor:
        spatial = torch.fft.irfft2(torch.polar(magnitude.expand(n, -1, -1, -1), _standardize(phase)), s=(h, w),
                                   norm="ortho")
        result = to_image(_standardize(spatial))
        if result.requires_grad:
            result.register_hook(accumulate)
        return result

    return MacoParam([phase], image, (n, c, h, w), "maco", None,
                     {"decorrelate": use_colors, "spectrum": chosen.source}, transparency, chosen.source)


def parametrization(kind: str, **options: object) -> Callable[[tuple[int, int, int, int], Generators,
                                                                torch.device], ImageParam]:
    """A parametrization with options, as the ``param`` of :func:`probe.maximize`.

    ``probe.maximize(m, obj, param=parametrization("maco", spectrum="photos/"))``
    uses MACO with the spectrum of your own photos; ``parametrization("fft",
    init=image)`` starts from an image. The factory's ``__name__`` describes it
    (what the manifest records as ``param``). It is per-image (``factory.per_image
    = True``): the render hands it one generator per image, so each image's initial
    parameters come from its own stream and a unit renders the same in any batch.

    Args:
        kind: a name of :data:`PARAMETRIZATIONS`.
        **options: keyword options of that builder (see :func:`image_param`).

    Raises:
        ProbeUsageError: unknown kind (at once) or option (when the factory is used).
    """
    if kind not in PARAMETRIZATIONS:
        raise ProbeUsageError(f"unknown parametrization {kind!r}; parametrizations are: {', '.join(PARAMETRIZATIONS)}",
                              param="param")

    def factory(shape: tuple[int, int, int, int], generator: Generators, device: torch.device) -> ImageParam:
        return image_param(kind, shape, generator=generator, device=device, **options)

    factory.per_image = True  # type: ignore[attr-defined]  # takes one generator per image
    shown = {key: value for key, value in options.items() if isinstance(value, (str, int, float, bool))}
    factory.__name__ = kind + "".join(f" {key}={value}" for key, value in shown.items())
    return factory


# ------------------------------------------------------------------------ CPPN
def _composite(t: torch.Tensor) -> torch.Tensor:
    """Lucid's CPPN activation: ``atan(x)`` concatenated with its square, rescaled: ``(N, K, P)`` -> ``(N, 2K, P)``."""
    a = torch.atan(t)
    return torch.cat([a / 0.67, a * a / 0.6], dim=1)


def cppn_image(
    shape: Sequence[int],
    *,
    hidden: int = 24,
    layers: int = 8,
    generator: Generators = None,
    device: torch.device | str = "cpu",
) -> ImageParam:
    """A compositional pattern-producing network per image (Lucid's CPPN): pixel colour = net(x, y).

    Each image has its own small network of ``layers`` 1x1 layers (a matrix
    per layer, ``hidden`` units, Lucid's composite ``atan`` activation) mapping
    the coordinates ``(x, y)`` in ``[-sqrt 3, sqrt 3]`` of every pixel to
    ``C`` channels, then ``sigmoid``. Weights start normal with variance
    ``1 / fan_in`` and the output layer at zero, so the first image is mid-gray.
    The image is resolution-free: the same weights render at any size. Lucid
    and Lucent optimize it with a small learning rate (0.005 with Adam).

    Args:
        shape: ``(N, C, H, W)``.
        hidden: units per hidden layer (default 24).
        layers: number of layers, the output layer included (default 8, >= 2).
        generator: for the initial weights, or one generator per image (its network's weights drawn from it).
        device: where the parameters live.

    Returns:
        An :class:`ImageParam` of kind ``"cppn"``; its params are the weights and biases.
    """
    n, c, h, w = _check_shape(shape)
    if layers < 2 or hidden < 1:
        raise ProbeUsageError(f"a CPPN needs layers >= 2 and hidden >= 1; got {layers}, {hidden}", param="param")
    device = torch.device(device)
    r = 3**0.5
    ys, xs = torch.meshgrid(torch.linspace(-r, r, h), torch.linspace(-r, r, w), indexing="ij")
    coordinates = torch.stack([ys, xs]).view(1, 2, h * w).expand(n, -1, -1).to(device)
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor] = []
    for index in range(layers):
        fan_in = 2 if index == 0 else 2 * hidden
        fan_out = c if index == layers - 1 else hidden
        if index == layers - 1:
            weight = torch.zeros(n, fan_out, fan_in, device=device)
        else:
            weight = _draw((n, fan_out, fan_in), (1.0 / fan_in) ** 0.5, generator, device)
        weights.append(weight.requires_grad_(True))
        biases.append(torch.zeros(n, fan_out, 1, device=device, requires_grad=True))

    def image() -> torch.Tensor:
        t = coordinates
        for index, (weight, bias) in enumerate(zip(weights, biases)):
            t = torch.bmm(weight, t) + bias
            if index < layers - 1:
                t = _composite(t)
        return torch.sigmoid(t).view(n, c, h, w)

    return ImageParam(weights + biases, image, (n, c, h, w), "cppn", None, {"hidden": hidden, "layers": layers})


# ----------------------------------------------------------- Laplacian pyramid
def laplacian_image(
    shape: Sequence[int],
    *,
    levels: int = 4,
    sd: float = 0.01,
    decorrelate: bool | None = None,
    generator: Generators = None,
    device: torch.device | str = "cpu",
) -> ImageParam:
    """A Laplacian-pyramid parametrization (Lucid's ``laplacian_pyramid``): a sum of upsampled low-resolution images.

    The image is ``sigmoid(mix(sum_k upsample(p_k)))`` where ``p_k`` is
    ``(N, C, ceil(H / 2^k), ceil(W / 2^k))`` for ``k = 0 .. levels-1``, upsampled
    bilinearly to ``(H, W)``: a coarse level moves a whole region at once, so
    the optimizer finds large structures early.

    Args:
        shape: ``(N, C, H, W)``.
        levels: pyramid levels (default 4; 1 is the pixel parametrization).
        sd: standard deviation of each level's initial noise (default 0.01).
        decorrelate: as for :func:`pixel_image` (default: yes for 3 channels).
        generator: for the initial noise, or one generator per image (all its levels drawn from it).
        device: where the parameters live.

    Returns:
        An :class:`ImageParam` of kind ``"laplacian"``, one parameter per level (finest first).
    """
    n, c, h, w = _check_shape(shape)
    if levels < 1:
        raise ProbeUsageError(f"a Laplacian pyramid needs levels >= 1; got {levels}", param="param")
    use_colors = _use_decorrelation(decorrelate, c)
    device = torch.device(device)
    params = [_draw((n, c, -(-h // 2**k), -(-w // 2**k)), sd, generator, device).requires_grad_(True)
              for k in range(levels)]
    to_image = _colored_sigmoid(use_colors, params[0])

    def image() -> torch.Tensor:
        total = params[0]
        for level in params[1:]:
            total = total + torch.nn.functional.interpolate(level, size=(h, w), mode="bilinear", align_corners=False)
        return to_image(total)

    return ImageParam(params, image, (n, c, h, w), "laplacian", None, {"levels": levels, "decorrelate": use_colors})
