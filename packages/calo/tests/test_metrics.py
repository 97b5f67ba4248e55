from __future__ import annotations

import numpy as np
import pytest

from calo.metrics import (
    classifier_auc,
    frechet_distance,
    kernel_distance,
    ks_statistic,
    separation_power,
    wasserstein1,
)


def test_separation_power_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    assert separation_power(a, a) == 0.0
    assert separation_power(a, a.copy() + 100.0, bins=np.array([-5.0, 5.0, 200.0])) == 1.0
    # Two histograms [1, 0] vs [0.5, 0.5]: 0.5 * (0.25/1.5 + 0.25/0.5) = 1/3.
    edges = np.array([0.0, 1.0, 2.0])
    value = separation_power(np.full(10, 0.5), np.r_[np.full(5, 0.5), np.full(5, 1.5)], edges)
    assert value == pytest.approx(1.0 / 3.0)
    assert separation_power(a, rng.normal(size=5000)) < 0.01


def test_ks_and_wasserstein_known_answers():
    a = np.arange(1000.0)
    assert ks_statistic(a, a) == 0.0
    assert wasserstein1(a, a) == 0.0
    assert wasserstein1(a, a + 3.0) == pytest.approx(3.0)
    assert ks_statistic(np.zeros(10), np.ones(10)) == 1.0


def test_frechet_and_kernel_distance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shifted = x + np.array([2.0, 0.0, 0.0])
    # Same covariance, mean shift of 2 standard deviations -> distance 4.
    assert frechet_distance(x, shifted) == pytest.approx(4.0, rel=0.02)
    assert abs(kernel_distance(x, x)) < 0.02  # unbiased estimator: O(1/m) noise around 0
    assert kernel_distance(x, shifted) > 100 * abs(kernel_distance(x, rng.normal(size=(4000, 3))))
    with pytest.raises(ValueError):
        frechet_distance(x, x[:, :2])


def test_classifier_auc_identical_vs_different():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(1500, 4)), rng.normal(size=(1500, 4))
    assert abs(classifier_auc(a, b, hidden=(16,), max_iter=50) - 0.5) < 0.07
    c = rng.normal(size=(1500, 4)) + np.array([3.0, 0, 0, 0])
    assert classifier_auc(a, c, hidden=(16,), max_iter=50) > 0.95


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError):
        separation_power(np.array([]), np.ones(3))
    with pytest.raises(ValueError):
        ks_statistic(np.array([np.nan]), np.ones(3))
