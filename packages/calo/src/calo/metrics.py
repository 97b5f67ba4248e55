"""Distribution metrics used to compare generated with reference showers.

Plain functions on NumPy arrays.  The figures quoted in the literature, computed exactly as the
reference code computes them (known-answer tests in ``tests/test_metrics.py``):

- :func:`separation_power` with :func:`calochallenge_edges`: CaloChallenge's histogram
  separation on its fixed binning (entries outside the range dropped).
- :func:`fpd` / :func:`kpd`: JetNet's Frechet and kernel physics distances (value, error).
- :func:`classifier_test`: CaloChallenge's DNN classifier (calibrated AUC and JSD), mean and
  standard deviation over several seeds (:class:`ClassifierConfig`).

Also :func:`ks_statistic`, :func:`wasserstein1`, and this package's earlier variants, kept under
their own names and not comparable with published figures: :func:`separation_power_quantile`,
:func:`frechet_distance_standardised`, :func:`kernel_distance_standardised`,
:func:`classifier_auc_mlp`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from physml_core.stats import frechet_distance, frechet_gaussians

__all__ = [
    "ClassifierConfig",
    "calochallenge_edges",
    "classifier_auc_mlp",
    "classifier_test",
    "fpd",
    "frechet_distance_standardised",
    "kernel_distance_standardised",
    "kpd",
    "ks_statistic",
    "separation_power",
    "separation_power_floor",
    "separation_power_quantile",
    "wasserstein1",
]


def _as_1d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def separation_power_quantile(reference: np.ndarray, generated: np.ndarray,
                              bins: int | np.ndarray = 30) -> float:
    """This package's earlier separation-power variant (kept under its own name).

    Same triangular discrimination as :func:`separation_power`, but with an integer ``bins`` the
    edges span the reference's 0.1-99.9 % quantile range and values outside are clipped into the
    edge bins (CaloChallenge instead uses fixed ranges and drops entries outside).  In [0, 1].
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


def frechet_distance_standardised(reference: np.ndarray, generated: np.ndarray,
                                  standardise: bool = True) -> float:
    """This package's earlier FPD variant (not JetNet's; use :func:`fpd` for published figures).

    Frechet distance of Gaussians fitted to the full samples (N, d), no extrapolation.

    ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``; features are standardised with the
    reference's mean and standard deviation first unless ``standardise=False``.
    """
    ref, gen = _check_2d(reference, "reference"), _check_2d(generated, "generated")
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"feature counts differ: {ref.shape[1]} vs {gen.shape[1]}")
    if standardise:
        ref, gen = _standardise(ref, gen)
    return max(frechet_distance(ref, gen), 0.0)


def kernel_distance_standardised(reference: np.ndarray, generated: np.ndarray,
                                 max_samples: int = 2000, seed: int = 0,
                                 standardise: bool = True) -> float:
    """This package's earlier KPD variant (not JetNet's; use :func:`kpd` for published figures).

    Unbiased squared MMD with the cubic polynomial kernel ``(x.y / d + 1)^3`` on one subset.

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


def classifier_auc_mlp(
    reference: np.ndarray,
    generated: np.ndarray,
    hidden: tuple[int, ...] = (128, 128),
    max_iter: int = 200,
    seed: int = 0,
) -> float:
    """This package's earlier classifier test (small scikit-learn MLP, one seed; not the
    CaloChallenge recipe: use :func:`classifier_test`).

    ROC AUC of an MLP classifier separating ``reference`` (label 0) from ``generated`` (1).

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


# ------------------------------------------------------------------ reference-exact metrics

def separation_power(reference: np.ndarray, generated: np.ndarray, edges: np.ndarray) -> float:
    """Separation power (triangular discrimination) as CaloChallenge's evaluation computes it.

    Both samples are histogrammed on the fixed ``edges``; entries outside ``[edges[0],
    edges[-1]]`` are dropped (numpy's ``histogram``), each histogram is normalised to unit sum
    over its in-range entries, and ``0.5 * sum (h1 - h2)^2 / (h1 + h2 + 1e-16)`` is returned
    (``_separation_power`` of CaloChallenge's ``evaluate_plotting_helper.py``, eq. 15 of
    arXiv 2009.03796).  In [0, 1]; NaN if either sample has no entry inside the edges (the
    reference's ``density=True`` histogram is then undefined).  See :func:`calochallenge_edges`
    for the binning of each feature.
    """
    ref, gen = _as_1d(reference, "reference"), _as_1d(generated, "generated")
    edges = np.asarray(edges, dtype=np.float64).reshape(-1)
    if edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError("edges must be at least two strictly increasing values")
    c1 = np.histogram(ref, edges)[0].astype(np.float64)
    c2 = np.histogram(gen, edges)[0].astype(np.float64)
    if c1.sum() == 0 or c2.sum() == 0:
        return float("nan")
    h1, h2 = c1 / c1.sum(), c2 / c2.sum()
    return float(0.5 * np.sum((h1 - h2) ** 2 / (h1 + h2 + 1e-16)))


def separation_power_floor(edges: np.ndarray, n_reference: int, n_generated: int) -> float:
    """Rough expectation of :func:`separation_power` for two samples of one distribution.

    For occupied bins ``E[(h1 - h2)^2 / (h1 + h2)] ~ (1/n1 + 1/n2) / 2`` per bin, so the floor is
    about ``(bins / 4) (1/n1 + 1/n2)`` (``bins / 2N`` for equal sizes) when every bin is
    occupied; fewer occupied bins give less.  The measured floor (reference against an
    independent sample) is what ``calo evaluate`` reports; this is the order of magnitude.
    """
    bins = len(np.asarray(edges)) - 1
    return 0.25 * bins * (1.0 / n_reference + 1.0 / n_generated)


def calochallenge_edges(kind: str, reference: np.ndarray | None = None,
                        min_energy_mev: float = 10.0) -> np.ndarray:
    """Histogram edges of CaloChallenge's evaluation (``evaluate_plotting_helper.py``), by kind.

    - ``"etot_over_einc"``: 100 linear bins on [0.5, 1.5];
    - ``"layer_energy"`` (MeV): 39 log bins from ``min_energy_mev`` (CaloChallenge: the minimal
      readout, 10 MeV for dataset 1) to the reference's maximum (``reference`` required);
    - ``"cell_energy"`` (MeV): 49 log bins from ``min_energy_mev`` to the reference's maximum;
    - ``"centre"`` (mm): 100 linear bins on [-100, 100] (dataset 1's range);
    - ``"width"`` (mm): 100 linear bins on [0, 100].
    """
    if kind == "etot_over_einc":
        return np.linspace(0.5, 1.5, 101)
    if kind == "centre":
        return np.linspace(-100.0, 100.0, 101)
    if kind == "width":
        return np.linspace(0.0, 100.0, 101)
    if kind in ("layer_energy", "cell_energy"):
        if reference is None:
            raise ValueError(f"edges of kind {kind!r} need the reference sample")
        top = float(np.max(reference))
        if not top > min_energy_mev:
            top = 10.0 * min_energy_mev
        return np.logspace(np.log10(min_energy_mev), np.log10(top),
                           40 if kind == "layer_energy" else 50)
    raise ValueError(f"unknown binning kind {kind!r}")


def _normalise_by_reference_max(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """JetNet's feature scaling: divide both samples by the reference's max |value| per feature
    (features that are identically 0 are left as they are)."""
    maxes = np.max(np.abs(x), axis=0)
    maxes = np.where(maxes == 0, 1.0, maxes)
    return x / maxes, y / maxes


def fpd(reference: np.ndarray, generated: np.ndarray, min_samples: int = 20000,
        max_samples: int = 50000, num_batches: int = 20, num_points: int = 10,
        normalise: bool = True, seed: int = 42) -> tuple[float, float]:
    """Frechet physics distance and its error, as ``jetnet.evaluation.fpd`` computes them.

    (Kansal et al., arXiv 2211.10295.)  Features are divided by the reference's max |value|
    (``normalise``).  For ``num_points`` batch sizes ``N`` evenly spaced in 1/N between
    ``1/min_samples`` and ``1/max_samples`` (truncated to integers), the Frechet distance of
    ``num_batches`` pairs of bootstrap draws (with replacement, ``numpy.random.default_rng(seed)``,
    reference then generated) is averaged; a straight line in 1/N (intercept and slope bounded
    to >= 0, ``scipy.optimize.curve_fit``) is extrapolated to 1/N = 0.  Returns the intercept and
    its standard error.  Multiply by 1e3 for the usual "FPD x 1e3".  CaloChallenge calls it with
    ``min_samples=10000`` on its high-level features.
    """
    from scipy.optimize import curve_fit

    x, y = _check_2d(reference, "reference"), _check_2d(generated, "generated")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature counts differ: {x.shape[1]} vs {y.shape[1]}")
    if min_samples < 2 or max_samples < 2 or num_batches < 1 or num_points < 2:
        raise ValueError("fpd needs min/max_samples >= 2, num_batches >= 1, num_points >= 2")
    if normalise:
        x, y = _normalise_by_reference_max(x, y)
    sizes = (1.0 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype(np.int32)
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        values = []
        for _ in range(num_batches):
            a = x[rng.choice(len(x), size=size)]
            b = y[rng.choice(len(y), size=size)]
            values.append(frechet_gaussians(a.mean(axis=0), np.cov(a, rowvar=False),
                                             b.mean(axis=0), np.cov(b, rowvar=False)))
        means.append(np.mean(values))

    def line(inv_n: np.ndarray, intercept: float, slope: float) -> np.ndarray:
        return intercept + slope * inv_n

    params, cov = curve_fit(line, 1.0 / sizes, means, bounds=([0, 0], [np.inf, np.inf]))
    return float(params[0]), float(np.sqrt(np.diag(cov)[0]))


def _power(k: np.ndarray, degree: int) -> np.ndarray:
    """``k ** degree`` in place, by repeated squaring for degree 4 (much faster than pow)."""
    if degree == 4:
        np.multiply(k, k, out=k)
        np.multiply(k, k, out=k)
        return k
    return np.power(k, degree, out=k)


def _poly_kernel_sum(a: np.ndarray, b: np.ndarray, degree: int, block: int = 1024) -> float:
    """Sum over all pairs of ``(a_i . b_j / d + 1)^degree``, in row blocks (bounded memory)."""
    gamma = 1.0 / a.shape[1]
    total = 0.0
    for lo in range(0, len(a), block):
        k = a[lo:lo + block] @ b.T
        k *= gamma
        k += 1.0
        total += float(_power(k, degree).sum())
    return total


def _mmd_poly_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 4) -> float:
    """Unbiased quadratic-time MMD^2 with the polynomial kernel ``(x.y / d + 1)^degree``."""
    m, n = len(x), len(y)
    gamma = 1.0 / x.shape[1]
    diag_x = float((((x * x).sum(axis=1) * gamma + 1.0) ** degree).sum())
    diag_y = float((((y * y).sum(axis=1) * gamma + 1.0) ** degree).sum())
    kxx = (_poly_kernel_sum(x, x, degree) - diag_x) / (m * (m - 1))
    kyy = (_poly_kernel_sum(y, y, degree) - diag_y) / (n * (n - 1))
    kxy = _poly_kernel_sum(x, y, degree) / (m * n)
    return kxx + kyy - 2.0 * kxy


def kpd(reference: np.ndarray, generated: np.ndarray, num_batches: int = 10,
        batch_size: int = 5000, normalise: bool = True, seed: int = 42) -> tuple[float, float]:
    """Kernel physics distance (median) and its error, as ``jetnet.evaluation.kpd`` computes them.

    Features are divided by the reference's max |value| (``normalise``).  For batch ``i`` of
    ``num_batches``, ``numpy.random.default_rng(seed + 1000 i)`` draws ``batch_size`` rows of the
    reference then of the generated sample (with replacement); the unbiased MMD^2 with the
    polynomial kernel ``(x.y / d + 1)^4`` is computed.  Returns the median over batches and half
    the 16.275-83.725 % inter-quantile range.  Multiply by 1e3 for the usual "KPD x 1e3".
    CaloChallenge calls it with ``batch_size=10000``.
    """
    from scipy.stats import iqr

    x, y = _check_2d(reference, "reference"), _check_2d(generated, "generated")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature counts differ: {x.shape[1]} vs {y.shape[1]}")
    if num_batches < 1 or batch_size < 2:
        raise ValueError("kpd needs num_batches >= 1 and batch_size >= 2")
    if normalise:
        x, y = _normalise_by_reference_max(x, y)
    values = []
    for i in range(num_batches):
        rng = np.random.default_rng(seed + i * 1000)
        a = x[rng.choice(len(x), size=batch_size)]
        b = y[rng.choice(len(y), size=batch_size)]
        values.append(_mmd_poly_unbiased(a, b))
    return float(np.median(values)), float(iqr(values, rng=(16.275, 83.725)) / 2.0)


@dataclass
class ClassifierConfig:
    """CaloChallenge's classifier recipe (``evaluate.py`` defaults), seeds and epochs settable.

    A DNN ``Linear(d, hidden)`` then ``n_layer`` x ``Linear(hidden, hidden)``, each followed by
    LeakyReLU and dropout, then ``Linear(hidden, 1)`` (a logit); BCE-with-logits, Adam
    (``lr``), ``batch_size``, ``epochs``, ``dtype`` (CaloChallenge: float64; float32 is about
    twice as fast on CPU).  ``seeds`` runs are made; each draws its own 60/20/20 split.
    ``threads`` caps torch's CPU threads (None: leave as is).
    """

    n_layer: int = 2
    hidden: int = 512
    dropout: float = 0.0
    batch_size: int = 1000
    epochs: int = 50
    lr: float = 2e-4
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    device: str = "cpu"
    threads: int | None = None
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype!r}")
        for name in ("n_layer", "hidden", "batch_size", "epochs"):
            if getattr(self, name) < (0 if name == "n_layer" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 <= self.dropout < 1:
            raise ValueError("lr must be positive and dropout in [0, 1)")
        if len(self.seeds) < 1:
            raise ValueError("give at least one classifier seed")
        self.seeds = tuple(int(s) for s in self.seeds)


def _classifier_run(reference: np.ndarray, generated: np.ndarray, cfg: ClassifierConfig,
                    seed: int) -> dict[str, float]:
    import torch
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n = min(len(reference), len(generated))
    # CaloChallenge labels: generated ("source") 0, reference 1; equal sizes; 60/20/20 split into
    # train / test (epoch selection and calibration) / val (final figures).
    data = [np.concatenate([arr[rng.permutation(len(arr))[:n]], np.full((n, 1), label)], 1)
            for arr, label in ((generated, 0.0), (reference, 1.0))]
    cuts = (n * np.array([0.6, 0.2, 0.2])).astype(int).cumsum()[:-1]
    parts = [np.split(d, cuts) for d in data]
    train, test, val = (np.concatenate([parts[0][i], parts[1][i]]) for i in range(3))
    train, test, val = (p[rng.permutation(len(p))] for p in (train, test, val))
    if min(len(train), len(test), len(val)) < 2:
        raise ValueError(f"classifier needs at least 10 rows per sample, got {n}")
    dev = torch.device(cfg.device)
    dt = torch.float64 if cfg.dtype == "float64" else torch.float32
    layers: list[torch.nn.Module] = [torch.nn.Linear(train.shape[1] - 1, cfg.hidden),
                                     torch.nn.LeakyReLU(), torch.nn.Dropout(cfg.dropout)]
    for _ in range(cfg.n_layer):
        layers += [torch.nn.Linear(cfg.hidden, cfg.hidden), torch.nn.LeakyReLU(),
                   torch.nn.Dropout(cfg.dropout)]
    layers.append(torch.nn.Linear(cfg.hidden, 1))
    model = torch.nn.Sequential(*layers).to(dev, dt)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    bce = torch.nn.BCEWithLogitsLoss()
    t_train, t_test, t_val = (torch.as_tensor(p, dtype=dt, device=dev) for p in (train, test, val))
    gen = torch.Generator(device="cpu").manual_seed(seed)

    @torch.no_grad()
    def logits(t: torch.Tensor) -> torch.Tensor:
        model.eval()
        return torch.cat([model(t[i:i + cfg.batch_size, :-1]).reshape(-1)
                          for i in range(0, len(t), cfg.batch_size)])

    best_acc, best_state, best_epoch = -np.inf, None, 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(t_train), generator=gen).to(dev)
        for i in range(0, len(order), cfg.batch_size):
            batch = t_train[order[i:i + cfg.batch_size]]
            loss = bce(model(batch[:, :-1]), batch[:, -1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
        pred = torch.sigmoid(logits(t_test)).cpu().numpy()
        acc = float(np.mean(np.round(pred) == test[:, -1]))
        if acc > best_acc:
            best_acc, best_epoch = acc, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if acc == 1.0:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    p_test = torch.sigmoid(logits(t_test)).cpu().numpy()
    raw = logits(t_val)
    y_val = val[:, -1]
    p_val = torch.sigmoid(raw).cpu().numpy()
    bce_raw = float(bce(raw, t_val[:, -1]))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1.0 - 1e-6)
    iso.fit(p_test, test[:, -1])
    p_cal = iso.predict(p_val)
    bce_cal = float(-np.mean(y_val * np.log(p_cal) + (1.0 - y_val) * np.log(1.0 - p_cal)))
    log2 = float(np.log(2.0))
    return {"auc": float(roc_auc_score(y_val, p_cal)), "jsd": (log2 - bce_cal) / log2,
            "auc_uncalibrated": float(roc_auc_score(y_val, p_val)),
            "jsd_uncalibrated": (log2 - bce_raw) / log2, "best_epoch": float(best_epoch)}


def classifier_test(reference: np.ndarray, generated: np.ndarray,
                    config: ClassifierConfig | None = None) -> dict[str, Any]:
    """CaloChallenge's classifier test, repeated over ``config.seeds``.

    Follows ``evaluate.py`` of the CaloChallenge: equal numbers of reference (label 1) and
    generated (label 0) rows, a 60/20/20 train/test/val split, the DNN of
    :class:`ClassifierConfig` trained for ``epochs`` keeping the epoch of best test accuracy
    (stopping at accuracy 1), then on the val part the ROC AUC and
    ``JSD = (ln 2 - BCE) / ln 2`` after isotonic-regression calibration on the test part (the
    figures CaloChallenge reports), and before it.  Inputs are used as given: build them with
    :func:`calo.evaluate.low_level_features` / :func:`calo.evaluate.high_level_features_cc`.

    Returns ``{"auc": mean, "auc_sd": sample sd, "jsd": ..., "jsd_sd": ..., "runs": [...]}``
    (sd is 0 for a single seed).  0.5 / 0 mean indistinguishable.
    """
    import torch

    cfg = config or ClassifierConfig()
    ref, gen = _check_2d(reference, "reference"), _check_2d(generated, "generated")
    if ref.shape[1] != gen.shape[1]:
        raise ValueError(f"feature counts differ: {ref.shape[1]} vs {gen.shape[1]}")
    if min(len(ref), len(gen)) < 10:
        raise ValueError("classifier_test needs at least 10 rows per sample")
    old_threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        runs = [_classifier_run(ref, gen, cfg, seed) for seed in cfg.seeds]
    finally:
        torch.set_num_threads(old_threads)
    out: dict[str, Any] = {"seeds": list(cfg.seeds), "epochs": cfg.epochs, "runs": runs}
    for key in ("auc", "jsd", "auc_uncalibrated", "jsd_uncalibrated"):
        values = np.array([r[key] for r in runs])
        out[key] = float(values.mean())
        out[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out
