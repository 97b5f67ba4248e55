"""Distribution metrics used to compare generated with reference showers.

Plain functions on NumPy arrays, each with a known answer (identical samples give 0 / AUC 0.5):

- :func:`separation_power`: CaloChallenge (arXiv 2410.21611) histogram separation
  ``0.5 * sum (h1 - h2)^2 / (h1 + h2)`` of normalised histograms, in [0, 1].
- :func:`ks_statistic`: two-sample Kolmogorov-Smirnov statistic.
- :func:`wasserstein1`: 1-Wasserstein distance of two 1-D samples.
- :func:`frechet_distance` / :func:`kernel_distance`: FPD and KPD (Kansal et al., jetnet) on
  standardised high-level features.
- :func:`classifier_auc`: ROC AUC of a small neural network trained to separate the samples
  (60/20/20 train/validation/test split); 0.5 means indistinguishable.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg, stats

__all__ = [
    "classifier_auc",
    "frechet_distance",
    "kernel_distance",
    "ks_statistic",
    "separation_power",
    "wasserstein1",
]


def _as_1d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def separation_power(reference: np.ndarray, generated: np.ndarray, bins: int | np.ndarray = 30
                     ) -> float:
    """Separation power of two samples histogrammed on common bins (CaloChallenge definition).

    With an integer ``bins`` the edges span the reference's 0.1-99.9 % quantile range (values
    outside go to the edge bins), as in the CaloChallenge evaluation.  Returns a value in [0, 1].
    """
    ref, gen = _as_1d(reference, "reference"), _as_1d(generated, "generated")
    if isinstance(bins, (int, np.integer)):
        lo, hi = np.quantile(ref, [0.001, 0.999])
        if hi <= lo:
            lo, hi = min(ref.min(), gen.min()), max(ref.max(), gen.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    h1 = np.histogram(np.clip(ref, edges[0], edges[-1]), edges)[0].astype(np.float64)
    h2 = np.histogram(np.clip(gen, edges[0], edges[-1]), edges)[0].astype(np.float64)
    h1 /= h1.sum()
    h2 /= h2.sum()
    denom = h1 + h2
    mask = denom > 0
    return float(0.5 * np.sum((h1[mask] - h2[mask]) ** 2 / denom[mask]))


def ks_statistic(reference: np.ndarray, generated: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (largest CDF difference), in [0, 1]."""
    ref, gen = _as_1d(reference, "reference"), _as_1d(generated, "generated")
    return float(stats.ks_2samp(ref, gen, method="asymp").statistic)


def wasserstein1(reference: np.ndarray, generated: np.ndarray) -> float:
    """1-Wasserstein (earth mover's) distance of two 1-D samples, in the samples' unit."""
    ref, gen = _as_1d(reference, "reference"), _as_1d(generated, "generated")
    return float(stats.wasserstein_distance(ref, gen))


def _check_2d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N >= 2, features), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _standardise(ref: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = ref.mean(axis=0), ref.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (ref - mean) / std, (gen - mean) / std


def frechet_distance(reference: np.ndarray, generated: np.ndarray, standardise: bool = True
                     ) -> float:
    """Frechet distance of Gaussians fitted to two feature samples (N, d).

    ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``; features are standardised with the
    reference's mean and standard deviation first unless ``standardise=False``.
    """
    ref, gen = _check_2d(reference, "reference"), _check_2d(generated, "generated")
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"feature counts differ: {ref.shape[1]} vs {gen.shape[1]}")
    if standardise:
        ref, gen = _standardise(ref, gen)
    mu1, mu2 = ref.mean(axis=0), gen.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(ref, rowvar=False)), np.atleast_2d(np.cov(gen, rowvar=False))
    covmean = linalg.sqrtm(s1 @ s2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * covmean))
    return max(value, 0.0)


def kernel_distance(reference: np.ndarray, generated: np.ndarray, max_samples: int = 2000,
                    seed: int = 0, standardise: bool = True) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel ``(x.y / d + 1)^3`` (KPD).

    At most ``max_samples`` rows of each sample are used (random subset, ``seed``).
    """
    ref, gen = _check_2d(reference, "reference"), _check_2d(generated, "generated")
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"feature counts differ: {ref.shape[1]} vs {gen.shape[1]}")
    if standardise:
        ref, gen = _standardise(ref, gen)
    rng = np.random.default_rng(seed)
    if len(ref) > max_samples:
        ref = ref[rng.choice(len(ref), max_samples, replace=False)]
    if len(gen) > max_samples:
        gen = gen[rng.choice(len(gen), max_samples, replace=False)]
    d = ref.shape[1]

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / d + 1.0) ** 3

    kxx, kyy, kxy = kernel(ref, ref), kernel(gen, gen), kernel(ref, gen)
    m, n = len(ref), len(gen)
    term_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(term_x + term_y - 2.0 * kxy.mean())


def classifier_auc(
    reference: np.ndarray,
    generated: np.ndarray,
    hidden: tuple[int, ...] = (128, 128),
    max_iter: int = 200,
    seed: int = 0,
) -> float:
    """ROC AUC of an MLP classifier separating ``reference`` (label 0) from ``generated`` (1).

    Inputs are feature matrices (N, d), standardised on the training part.  The samples are
    balanced to the smaller size, split 60/20/20 (train / early-stopping validation / test) and
    the AUC is measured on the test part.  0.5 means the classifier cannot tell them apart.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import roc_auc_score
    from sklearn.neural_network import MLPClassifier

    ref, gen = _check_2d(reference, "reference"), _check_2d(generated, "generated")
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"feature counts differ: {ref.shape[1]} vs {gen.shape[1]}")
    rng = np.random.default_rng(seed)
    n = min(len(ref), len(gen))
    if n < 10:
        raise ValueError(f"classifier_auc needs at least 10 rows per sample, got {n}")
    ref = ref[rng.permutation(len(ref))[:n]]
    gen = gen[rng.permutation(len(gen))[:n]]
    x = np.concatenate([ref, gen])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    order = rng.permutation(2 * n)
    x, y = x[order], y[order]
    n_train, n_val = int(0.6 * 2 * n), int(0.2 * 2 * n)
    train, test = slice(0, n_train + n_val), slice(n_train + n_val, None)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    clf = MLPClassifier(
        hidden_layer_sizes=hidden, max_iter=max_iter, early_stopping=True,
        validation_fraction=n_val / (n_train + n_val), n_iter_no_change=10,
        random_state=seed, learning_rate_init=1e-3, batch_size=min(256, n_train),
    )
    with warnings.catch_warnings():
        # Early stopping decides when to stop; hitting max_iter is not an error here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x[train], y[train])
    score = clf.predict_proba(x[test])[:, 1]
    if len(np.unique(y[test])) < 2:
        return 0.5
    return float(roc_auc_score(y[test], score))
