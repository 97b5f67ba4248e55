"""Image metrics: MSE, SSIM (Wang et al. 2004) per image and projection, Frechet distance."""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch.nn import functional as F

__all__ = ["frechet_distance", "mse_per_channel", "ssim_per_channel"]


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


def mse_per_channel(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean squared error of (N, C, H, W) images -> (N, C)."""
    a = torch.as_tensor(a, dtype=torch.float32)
    b = torch.as_tensor(b, dtype=torch.float32)
    return (a - b).square().mean(dim=(2, 3))


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D) (as in FID)."""
    feat_a = np.asarray(feat_a, dtype=np.float64)
    feat_b = np.asarray(feat_b, dtype=np.float64)
    if feat_a.ndim != 2 or feat_b.ndim != 2 or feat_a.shape[1] != feat_b.shape[1]:
        raise ValueError("frechet_distance needs two (N, D) arrays with the same D")
    if len(feat_a) < 2 or len(feat_b) < 2:
        raise ValueError("frechet_distance needs at least 2 samples per set")
    mu_a, mu_b = feat_a.mean(0), feat_b.mean(0)
    ca = np.cov(feat_a, rowvar=False) + eps * np.eye(feat_a.shape[1])
    cb = np.cov(feat_b, rowvar=False) + eps * np.eye(feat_b.shape[1])
    covmean = linalg.sqrtm(ca @ cb)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))
