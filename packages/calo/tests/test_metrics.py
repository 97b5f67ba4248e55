"""Known-answer tests of the metrics against the reference formulas (JetNet, CaloChallenge)."""

from __future__ import annotations

import numpy as np
import pytest

from calo.metrics import (
    ClassifierConfig,
    _mmd_poly_unbiased,
    calochallenge_edges,
    classifier_auc_mlp,
    classifier_test,
    fpd,
    frechet_distance_standardised,
    kernel_distance_standardised,
    kpd,
    ks_statistic,
    separation_power,
    separation_power_quantile,
    wasserstein1,
)
from physml_core.stats import frechet_gaussians

# ------------------------------------------------------------------------- separation power

def test_separation_power_by_hand():
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    ref = np.array([0.5, 0.5, 1.5, 2.5])          # h1 = (1/2, 1/4, 1/4)
    gen = np.array([0.5, 1.5, 1.5, 1.5, 9.0])     # 9.0 is out of range and dropped: (1/4, 3/4, 0)
    expected = 0.5 * ((0.25**2) / 0.75 + (0.5**2) / 1.0 + (0.25**2) / 0.25)
    assert separation_power(ref, gen, edges) == pytest.approx(expected, abs=1e-12)
    assert separation_power(ref, ref, edges) == 0.0
    assert separation_power(ref, ref + 10.0, np.array([0.0, 5.0, 20.0])) == pytest.approx(1.0)
    assert np.isnan(separation_power(ref, np.array([50.0]), edges))


def test_separation_power_matches_density_histogram_formula():
    # CaloChallenge: plt.hist(density=True) counts times the bin widths, then the sum.
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 0.05, 3000), rng.normal(1.01, 0.06, 2000)
    edges = calochallenge_edges("etot_over_einc")
    h1 = np.histogram(a, edges, density=True)[0] * np.diff(edges)
    h2 = np.histogram(b, edges, density=True)[0] * np.diff(edges)
    expected = 0.5 * np.sum((h1 - h2) ** 2 / (h1 + h2 + 1e-16))
    assert separation_power(a, b, edges) == pytest.approx(expected, abs=1e-12)


def test_calochallenge_edges():
    assert len(calochallenge_edges("etot_over_einc")) == 101
    assert calochallenge_edges("centre")[[0, -1]].tolist() == [-100.0, 100.0]
    assert calochallenge_edges("width")[[0, -1]].tolist() == [0.0, 100.0]
    e = calochallenge_edges("layer_energy", np.array([5.0, 1000.0]), min_energy_mev=10.0)
    assert len(e) == 40 and e[0] == pytest.approx(10.0) and e[-1] == pytest.approx(1000.0)
    with pytest.raises(ValueError):
        calochallenge_edges("layer_energy")


def test_quantile_variant_kept_under_its_own_name():
    edges = np.array([0.0, 1.0, 2.0])
    value = separation_power_quantile(np.full(10, 0.5), np.r_[np.full(5, 0.5), np.full(5, 1.5)],
                                      edges)
    assert value == pytest.approx(0.5 * (0.25 / 1.5 + 0.25 / 0.5))


# ---------------------------------------------------------------------------------- FPD / KPD

def test_frechet_of_two_gaussians_by_hand():
    # 1-D: mu 0, var 1 against mu 2, var 4: 4 + 1 + 4 - 2 sqrt(4) = 5.
    assert frechet_gaussians(np.array([0.0]), np.array([[1.0]]), np.array([2.0]),
                              np.array([[4.0]])) == pytest.approx(5.0, abs=1e-12)


def test_mmd_polynomial_kernel_by_hand():
    # d = 1, k(a, b) = (a b + 1)^4; X = {0, 1}, Y = {1, 2}:
    # Kxx off-diagonal 1, Kyy off-diagonal 81, mean Kxy (1 + 1 + 16 + 81) / 4 -> 1 + 81 - 49.5.
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    assert _mmd_poly_unbiased(x, y) == pytest.approx(32.5, abs=1e-12)


def _fixed_features(seed: int, n: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0, 0, 2.0]]) + shift


def test_fpd_equals_jetnet_formula_on_small_arrays():
    """Re-derive JetNet's fpd step by step with independent formulas (eigenvalues for the matrix
    square root, closed-form least squares for the line) and compare to 1e-6."""
    x, y = _fixed_features(1, 40, 0.0), _fixed_features(2, 30, 0.4)
    min_s, max_s, nb, npts, seed = 6, 30, 8, 3, 42
    value, error = fpd(x, y, min_samples=min_s, max_samples=max_s, num_batches=nb,
                       num_points=npts, seed=seed)
    maxes = np.abs(x).max(axis=0)
    xs, ys = x / maxes, y / maxes
    sizes = (1 / np.linspace(1 / min_s, 1 / max_s, npts)).astype("int32")
    rng = np.random.default_rng(seed)
    means = []
    for size in sizes:
        vals = []
        for _ in range(nb):
            a, b = xs[rng.choice(len(xs), size=size)], ys[rng.choice(len(ys), size=size)]
            s1, s2 = np.cov(a.T), np.cov(b.T)
            tr_sqrt = np.sum(np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(min=0)))
            diff = a.mean(0) - b.mean(0)
            vals.append(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
        means.append(np.mean(vals))
    design = np.stack([np.ones(npts), 1.0 / sizes], 1)
    coef, *_ = np.linalg.lstsq(design, np.array(means), rcond=None)
    assert coef[0] > 0 and coef[1] > 0  # inside the bounds: the bounded fit is least squares
    s2 = float(np.sum((design @ coef - means) ** 2)) / (npts - 2)
    err = np.sqrt(s2 * np.linalg.inv(design.T @ design)[0, 0])
    assert value == pytest.approx(coef[0], abs=1e-6)
    assert error == pytest.approx(err, abs=1e-6)


def test_kpd_equals_jetnet_formula_on_small_arrays():
    x, y = _fixed_features(3, 25, 0.0), _fixed_features(4, 20, 0.3)
    median, error = kpd(x, y, num_batches=5, batch_size=7, seed=42)
    maxes = np.abs(x).max(axis=0)
    xs, ys = x / maxes, y / maxes
    vals = []
    for i in range(5):
        rng = np.random.default_rng(42 + 1000 * i)
        a, b = xs[rng.choice(25, size=7)], ys[rng.choice(20, size=7)]
        k = lambda u, v: (u @ v / 3 + 1.0) ** 4  # noqa: E731
        kxx = sum(k(a[p], a[q]) for p in range(7) for q in range(7) if p != q) / 42
        kyy = sum(k(b[p], b[q]) for p in range(7) for q in range(7) if p != q) / 42
        kxy = sum(k(a[p], b[q]) for p in range(7) for q in range(7)) / 49
        vals.append(kxx + kyy - 2 * kxy)
    vals = np.sort(vals)
    q16, q84 = np.percentile(vals, [16.275, 83.725])
    assert median == pytest.approx(vals[2], abs=1e-6)
    assert error == pytest.approx((q84 - q16) / 2, abs=1e-6)


def test_fpd_kpd_of_independent_samples_at_the_floor():
    """Two independent samples of one 19-d Gaussian: FPD x 1e3 about 1 (the finite-sample floor
    quoted for JetNet in the issue), KPD consistent with 0; a shifted sample is far above."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(10000, 19)), rng.normal(size=(10000, 19))
    value, error = fpd(a, b, num_batches=5, num_points=5)
    assert 0.5e-3 < value < 2e-3 and error < 0.5e-3
    k_med, k_err = kpd(a, b, num_batches=5, batch_size=2000)
    assert abs(k_med) < 3 * k_err + 1e-5
    shifted, _ = fpd(a, b + 0.2, num_batches=5, num_points=5)
    assert shifted > 20 * value


def test_earlier_variants_kept():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    assert frechet_distance_standardised(x, x) == pytest.approx(0.0, abs=1e-6)
    assert abs(kernel_distance_standardised(x, x)) < 0.02
    with pytest.raises(ValueError):
        frechet_distance_standardised(x, x[:, :2])


# --------------------------------------------------------------------------------- classifier

def test_classifier_test_identical_vs_different():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1500, 4)), rng.normal(size=(1500, 4))
    fast = ClassifierConfig(hidden=32, epochs=4, batch_size=200, lr=2e-3, seeds=(0, 1))
    same = classifier_test(a, b, fast)
    assert abs(same["auc"] - 0.5) < 0.06 and same["jsd"] < 0.05 and len(same["runs"]) == 2
    assert same["auc_sd"] >= 0.0
    far = classifier_test(a, b + 2.0, fast)
    assert far["auc"] > 0.9 and far["jsd"] > 0.4
    with pytest.raises(ValueError):
        ClassifierConfig(seeds=())


def test_mlp_variant_kept():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(600, 3))
    assert classifier_auc_mlp(a, a + 3.0, hidden=(16,), max_iter=50) > 0.95


def test_input_validation():
    with pytest.raises(ValueError):
        separation_power(np.array([]), np.ones(3), np.array([0.0, 1.0]))
    with pytest.raises(ValueError):
        separation_power(np.ones(3), np.ones(3), np.array([1.0, 0.0]))
    with pytest.raises(ValueError):
        ks_statistic(np.array([np.nan]), np.ones(3))
    assert wasserstein1(np.zeros(3), np.ones(3)) == pytest.approx(1.0)
