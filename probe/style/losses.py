"""The functional core of style transfer: Gram matrices and the content, style and TV losses.

Pure functions of tensors (no model, no state), differentiable, each a scalar
that is 0 for a perfect match. Style transfer *minimizes* them (lower is
better), unlike the scores the rest of cnn-probe maximizes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from probe.errors import ProbeUsageError

__all__ = ["gram_matrix", "content_loss", "style_loss", "total_variation_loss", "EPS", "feature_moments", "sqrtm_psd",
           "wasserstein_style_loss", "relative_divisor"]

EPS = 1e-12
"""Floor of the divisors of relative losses (an all-zero target gives a finite loss)."""


def gram_matrix(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Gram matrices of feature maps: the channel-by-channel inner products.

    Args:
        features: ``(N, C, H, W)`` feature maps, or ``(N, C, L)`` with the
            positions already flattened.
        normalize: divide by the number of positions ``H * W`` (default True),
            so the Gram matrix is the mean of the outer products over positions
            and does not grow with the image size. Gatys's style loss per layer,
            ``1 / (4 C^2 (HW)^2) * sum (G - A)^2`` on unnormalized matrices, is a
            quarter of the mean squared difference of normalized ones.

    Returns:
        ``(N, C, C)``: ``G[n, c, d] = sum_p F[n, c, p] * F[n, d, p]`` (``/ (H * W)``).
        Computed in the input's dtype; pass float32 features for exact sums.

    Raises:
        ProbeUsageError: ``features`` has fewer than 3 dimensions.
    """
    if features.dim() < 3:
        raise ProbeUsageError(
            f"a Gram matrix needs feature maps (N, C, H, W) or (N, C, L); got shape {tuple(features.shape)}"
        )
    flat = features.flatten(2)
    return _Gram.apply(flat, 1.0 / flat.shape[-1] if normalize else 1.0)


class _Gram(torch.autograd.Function):
    """``scale * F @ F^T`` for ``(N, C, L)`` features ``F``, with a one-matmul backward.

    Autograd's generic backward of ``bmm(F, F^T)`` sees two operands and
    computes two products, ``G @ F`` and ``(F^T @ G)^T``, the second in a
    transposed layout, then adds them into a fresh ``(N, C, H, W)`` tensor:
    about 13% of a style-transfer evaluation on a CPU. Since ``F`` is both
    operands, the gradient is ``scale * (G + G^T) @ F``: one ``(C, C) @ (C, L)``
    product. The backward is made of differentiable ops, so double backward works.
    """

    @staticmethod
    def forward(ctx, flat: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(flat)
        ctx.scale = scale
        gram = torch.bmm(flat, flat.transpose(1, 2))
        return gram * scale if scale != 1.0 else gram

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (flat,) = ctx.saved_tensors
        symmetric = (grad + grad.transpose(1, 2)) * ctx.scale
        return torch.bmm(symmetric.to(flat.dtype), flat), None


def relative_divisor(target: torch.Tensor) -> torch.Tensor:
    """What a relative loss divides by: the mean square of ``target`` (any shape), at least :data:`EPS`; 0-dim."""
    return target.pow(2).mean().clamp_min(EPS)


def _mse(value: torch.Tensor, target: torch.Tensor, relative: bool, divisor: torch.Tensor | None) -> torch.Tensor:
    loss = F.mse_loss(value, target.expand_as(value))
    if not relative:
        return loss
    return loss / (relative_divisor(target) if divisor is None else divisor)


def content_loss(features: torch.Tensor, target: torch.Tensor, *, relative: bool = False,
                 divisor: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared difference between feature maps (a scalar; 0 for identical features).

    Args:
        features: ``(N, C, H, W)`` (any shape) features of the image being optimized.
        target: the content image's features, same shape (or broadcastable).
        relative: divide by the mean square of ``target`` (default False), so
            that 1.0 means an error as large as the features themselves.
        divisor: ``relative_divisor(target)`` when already computed (once per target, not per step).
    """
    return _mse(features, target, relative, divisor)


def style_loss(
    features: torch.Tensor, target_gram: torch.Tensor, *, normalize: bool = True, relative: bool = False,
    divisor: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared difference between the Gram matrix of ``features`` and a target Gram matrix.

    Args:
        features: ``(N, C, H, W)`` features of the image being optimized.
        target_gram: ``(N, C, C)`` or ``(1, C, C)`` target, computed once with
            :func:`gram_matrix` (same ``normalize``) from the style image(s).
        normalize: as in :func:`gram_matrix` (default True).
        relative: divide by the mean square of ``target_gram`` (default False).
        divisor: ``relative_divisor(target_gram)`` when already computed (once per target, not per step).

    Returns:
        A scalar, 0 when the Gram matrices agree.

    Raises:
        ProbeUsageError: the target has another channel count (another layer).
    """
    gram = gram_matrix(features, normalize=normalize)
    if gram.shape[-2:] != target_gram.shape[-2:]:
        raise ProbeUsageError(
            f"the target Gram matrix is {tuple(target_gram.shape)} but the features give {tuple(gram.shape)}: "
            "targets must come from the same layer"
        )
    return _mse(gram, target_gram, relative, divisor)


def total_variation_loss(images: torch.Tensor, exponent: float = 2.0) -> torch.Tensor:
    """Total variation: the mean ``|difference| ** exponent`` between neighbouring pixels.

    Args:
        images: ``(N, C, H, W)`` (or ``(C, H, W)``).
        exponent: 2 (default, smooth) or 1 (anisotropic TV, keeps edges).

    Returns:
        A scalar: the mean over vertical and horizontal neighbour pairs; 0 for
        a constant image.
    """
    down = (images[..., 1:, :] - images[..., :-1, :]).abs().pow(exponent)
    right = (images[..., :, 1:] - images[..., :, :-1]).abs().pow(exponent)
    return (down.sum() + right.sum()) / max(1, down.numel() + right.numel())


# --------------------------------------------------- Wasserstein-2 (mean and covariance)
def feature_moments(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean ``(N, C)`` and covariance ``(N, C, C)`` of feature maps ``(N, C, H, W)`` over positions.

    The covariance is the biased one (divided by ``H * W``): ``gram_matrix(F) - mu mu^T``.
    """
    if features.dim() < 3:
        raise ProbeUsageError(f"moments need feature maps (N, C, H, W) or (N, C, L); got shape {tuple(features.shape)}")
    flat = features.flatten(2).float()
    mean = flat.mean(2)
    return mean, gram_matrix(flat) - mean[:, :, None] * mean[:, None, :]


def sqrtm_psd(matrix: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The square root of symmetric positive semi-definite ``(..., C, C)`` matrices, by eigendecomposition.

    Eigenvalues below ``eps`` are raised to ``eps`` (covariances of few positions are singular).
    Differentiable (``torch.linalg.eigh``), in float64 for stable gradients, returned in the input's dtype.
    """
    values, vectors = _symmetric_eig(matrix, torch.linalg.eigh)
    root = vectors * values.clamp_min(eps).sqrt()[..., None, :]
    return (root @ vectors.transpose(-2, -1)).to(matrix.dtype)


def _symmetric_eig(matrix: torch.Tensor, decompose: Any) -> Any:
    """``decompose`` (eigh or eigvalsh) of the symmetric part of ``matrix`` in float64; when LAPACK does not
    converge (degenerate covariances of dead ReLU channels), again with a small multiple of the identity added."""
    symmetric = (matrix + matrix.transpose(-2, -1)).double() / 2
    try:
        return decompose(symmetric)
    except RuntimeError:  # torch.linalg.LinAlgError
        size = symmetric.shape[-1]
        scale = torch.diagonal(symmetric, dim1=-2, dim2=-1).mean(-1).abs()[..., None, None] + 1e-12
        eye = torch.eye(size, dtype=symmetric.dtype, device=symmetric.device)
        return decompose(symmetric + 1e-6 * scale * eye)


def wasserstein_style_loss(
    features: torch.Tensor,
    target_mean: torch.Tensor,
    target_cov: torch.Tensor,
    *,
    target_cov_sqrt: torch.Tensor | None = None,
    relative: bool = False,
) -> torch.Tensor:
    """The squared Wasserstein-2 distance between Gaussians fitted to the features and to the style, per channel.

    ``W2^2 = |mu - mu_t|^2 + tr(S + S_t - 2 (S_t^1/2 S S_t^1/2)^1/2)`` divided by the channel count
    ``C``, with ``mu, S`` the mean and covariance of ``features`` over positions (:func:`feature_moments`).
    Unlike the Gram loss it separates the mean from the spread, and it is a true distance between
    the two feature distributions (the style loss of Kolkin et al.'s and Crowson's style transfer).

    Args:
        features: ``(N, C, H, W)`` features of the image being optimized.
        target_mean: ``(1|N, C)`` the style's feature mean.
        target_cov: ``(1|N, C, C)`` the style's feature covariance.
        target_cov_sqrt: ``sqrtm_psd(target_cov)`` when already computed (once per style, not per step).
        relative: divide by the style's own ``(|mu_t|^2 + tr S_t) / C`` (default False), its distance
            to a zero Gaussian, so 1.0 means an error as large as the style's statistics.

    Returns:
        A scalar, 0 when mean and covariance agree.
    """
    mean, cov = feature_moments(features)
    if cov.shape[-1] != target_cov.shape[-1]:
        raise ProbeUsageError(f"the target covariance is {tuple(target_cov.shape)} but the features give "
                              f"{tuple(cov.shape)}: targets must come from the same layer")
    root = sqrtm_psd(target_cov) if target_cov_sqrt is None else target_cov_sqrt
    # tr (S_t^1/2 S S_t^1/2)^1/2 from eigenvalues only: eigvalsh's gradient stays finite for repeated
    # eigenvalues (dead channels), where eigenvectors' gradients (an eigh-based square root) are not
    cross_trace = _symmetric_eig(root @ cov @ root, torch.linalg.eigvalsh).clamp_min(1e-12).sqrt().sum(-1)
    channels = cov.shape[-1]
    mean_term = (mean - target_mean).pow(2).sum(-1)
    trace = torch.diagonal(cov + target_cov, dim1=-2, dim2=-1).sum(-1)
    cov_term = trace - 2 * cross_trace.to(trace.dtype)
    loss = ((mean_term + cov_term) / channels).mean()
    if relative:
        scale = (target_mean.pow(2).sum(-1) + torch.diagonal(target_cov, dim1=-2, dim2=-1).sum(-1)).mean() / channels
        loss = loss / scale.clamp_min(EPS)
    return loss
