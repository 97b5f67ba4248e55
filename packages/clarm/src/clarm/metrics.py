"""Image metrics: MSE, SSIM (Wang et al. 2004) per image and projection, precision / recall.

The Frechet distance of generated features is core's
(:func:`physml_core.stats.frechet_distance` with ``ridge=FRECHET_RIDGE``)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["FRECHET_RIDGE", "conformal_halfwidth", "mse_per_channel", "precision_recall",
           "ssim_paper", "ssim_per_channel"]

#: Ridge added to both feature covariances' diagonals before the Frechet distance
#: (:func:`physml_core.stats.frechet_distance`, ``ridge=``): the module-classifier features
#: of a few held-out runs give singular covariances; clarm's figures have always used 1e-6.
FRECHET_RIDGE = 1e-6


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


@torch.no_grad()
def ssim_per_channel(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray,
                     data_range: float = 1.0, window: int = 11,
                     sigma: float = 1.5) -> torch.Tensor:
    """SSIM of images (N, C, H, W) -> (N, C), Gaussian window, constants K1=0.01, K2=0.03."""
    a = torch.as_tensor(a, dtype=torch.float32)
    b = torch.as_tensor(b, dtype=torch.float32)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) arrays of equal shape, got {a.shape}, "
                         f"{b.shape}")
    n, c, h, w = a.shape
    g = _gaussian_window(min(window, h, w), sigma).float()
    k = g.numel()

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(n * c, 1, h, w)
        x = F.conv2d(x, g.view(1, 1, 1, k))
        return F.conv2d(x, g.view(1, 1, k, 1))

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a**2
    sbb = blur(b * b) - mu_b**2
    sab = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean(dim=(1, 2, 3)).view(n, c)


@torch.no_grad()
def ssim_paper(pred: torch.Tensor | np.ndarray, real: torch.Tensor | np.ndarray,
               window: int = 7) -> torch.Tensor:
    """SSIM of (N, C, H, W) images -> (N, C) exactly as the reference computes it:
    ``skimage.metrics.structural_similarity(real, pred, data_range=real.max() - real.min())``
    on each 2D image with scikit-image's defaults (7 x 7 uniform window, K1 = 0.01,
    K2 = 0.03, sample covariances (N / (N - 1), N = 49), mean over the pixels at least 3 from
    the border).  The data range is each real image's own range.  Empty real images (range
    0) score 1 if the prediction is empty too, else 0."""
    x = torch.as_tensor(real, dtype=torch.float64)
    y = torch.as_tensor(pred, dtype=torch.float64)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) arrays of equal shape, got {x.shape}, "
                         f"{y.shape}")
    n, c, h, w = x.shape
    if min(h, w) < window:
        raise ValueError(f"images must be at least {window} x {window}")

    def mean(t: torch.Tensor) -> torch.Tensor:
        # the uniform window's valid mean; avg_pool2d equals a float64 conv2d with a
        # 1 / window^2 box (to ~1e-15) without its im2col buffers, which made this function
        # ~90 % of `clarm evaluate` (three quarters of it page faults in the kernel)
        return F.avg_pool2d(t.reshape(n * c, 1, h, w), window, stride=1)

    cov_norm = window**2 / (window**2 - 1.0)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    rng = (x.amax(dim=(2, 3)) - x.amin(dim=(2, 3))).reshape(n * c, 1, 1, 1)
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    out = s.mean(dim=(1, 2, 3)).view(n, c)
    flat = rng.view(n, c) == 0
    if flat.any():
        same = (y.amax(dim=(2, 3)) - y.amin(dim=(2, 3)) == 0) & flat
        out = torch.where(flat, same.double(), out)
    return out.float()


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019) of feature sets
    (N, D): precision = fraction of ``fake`` inside the union of k-NN balls of ``real``,
    recall = fraction of ``real`` inside the k-NN balls of ``fake``.  Mode collapse lowers
    recall; use equal set sizes."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError("precision_recall needs two (N, D) arrays with the same D")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision_recall needs more than k={k} samples per set")

    def radii(a: np.ndarray) -> np.ndarray:
        d = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def inside(points: np.ndarray, centres: np.ndarray, r: np.ndarray) -> float:
        d = np.sqrt(((points[:, None] - centres[None]) ** 2).sum(-1))
        return float((d <= r[None]).any(axis=1).mean())

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def mse_per_channel(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean squared error of (N, C, H, W) images -> (N, C)."""
    a = torch.as_tensor(a, dtype=torch.float32)
    b = torch.as_tensor(b, dtype=torch.float32)
    return (a - b).square().mean(dim=(2, 3))


def conformal_halfwidth(scores: torch.Tensor | np.ndarray,
                        coverage: float = 0.9) -> tuple[torch.Tensor, int, bool]:
    """Split-conformal half-width from calibration scores (n, ...) (absolute errors of a
    point prediction on n calibration units, one score per unit and quantity).

    Returns (half-width (...), rank, exact): the ``rank``-th smallest score along the first
    axis with ``rank = ceil((n + 1) * coverage)`` (Vovk et al. 2005; Angelopoulos & Bates
    2021, eq. 1), so that for a new unit exchangeable with the calibration units
    ``|error| <= half-width`` holds with probability >= ``coverage``.  ``exact`` is False
    when n is too small for that rank (n < ceil((n + 1) * coverage)): the largest score is
    returned and the guarantee does not hold."""
    s = torch.as_tensor(scores, dtype=torch.float64)
    if s.ndim < 1 or s.shape[0] < 1:
        raise ValueError("conformal_halfwidth needs at least one calibration score")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    n = s.shape[0]
    rank = math.ceil((n + 1) * coverage - 1e-9)
    return s.sort(dim=0).values[min(rank, n) - 1], rank, rank <= n
