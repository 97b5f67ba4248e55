"""Distances between samples shared by more than one package.

:func:`frechet_gaussians` is the Frechet (2-Wasserstein) distance between two Gaussians,
``|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))``, computed as pytorch-fid and JetNet
do (``scipy.linalg.sqrtm``; ``eps`` on both diagonals only when the square root is not finite;
round-off imaginary parts dropped).  :func:`frechet_distance` fits the Gaussians to two feature
sets.  calo's FPD (JetNet's extrapolated estimator) and clarm's feature Frechet distance are
both built on it.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = ["frechet_distance", "frechet_gaussians"]


def frechet_gaussians(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                      sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); means (D,), covariances
    (D, D).  ``eps`` is added to both diagonals only if ``sqrtm(S1 S2)`` is not finite."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (
            mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"frechet_gaussians: means {mu1.shape}/{mu2.shape} and covariances "
                         f"{sigma1.shape}/{sigma2.shape} do not fit one dimension")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray, ridge: float = 0.0,
                     eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to feature sets (N, D) and (M, D).

    ``ridge`` is added to both sample covariances' diagonals before the distance (0: none, as
    pytorch-fid and JetNet); ``eps`` as in :func:`frechet_gaussians`.
    """
    a = np.asarray(feat_a, dtype=np.float64)
    b = np.asarray(feat_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError("frechet_distance needs two (N, D) arrays with the same D, got "
                         f"{a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("frechet_distance needs at least 2 samples per set")
    ridge_matrix = ridge * np.eye(a.shape[1])
    return frechet_gaussians(a.mean(0), np.cov(a, rowvar=False) + ridge_matrix, b.mean(0),
                             np.cov(b, rowvar=False) + ridge_matrix, eps)
