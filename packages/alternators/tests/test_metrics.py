"""Known answers for the scores: CRPS (closed form for a Gaussian, a hand-computed case),
interval coverage, masked MAE/CC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alternators.metrics import crps_samples, interval_coverage, trajectory_metrics


def _gaussian_crps(mu: float, sd: float, y: float) -> float:
    """Closed form (Gneiting and Raftery 2007): sd [w (2 Phi(w) - 1) + 2 phi(w) - 1/sqrt(pi)]."""
    w = (y - mu) / sd
    phi = math.exp(-0.5 * w * w) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(w / math.sqrt(2)))
    return sd * (w * (2 * big_phi - 1) + 2 * phi - 1 / math.sqrt(math.pi))


@pytest.mark.parametrize(("mu", "sd", "y"), [(0.0, 1.0, 0.0), (0.3, 1.7, 1.1), (2.0, 0.5, -1.0)])
def test_crps_matches_the_gaussian_closed_form(mu, sd, y):
    samples = np.random.default_rng(0).normal(mu, sd, size=(100_000, 1))
    assert crps_samples(samples, np.array([y])) == pytest.approx(_gaussian_crps(mu, sd, y),
                                                                 rel=5e-3)


def test_crps_hand_computed_and_deterministic_cases():
    # samples {0, 1}, y = 0.5: mean |x - y| = 0.5, (1 / (2 * 4)) * (|0-1| + |1-0|) = 0.25
    assert crps_samples(np.array([[0.0], [1.0]]), np.array([0.5])) == pytest.approx(0.25)
    # samples {0, 0, 3}, y = 1: mean |x - y| = 4/3; pairs sum 12 -> 12 / 18 = 2/3
    assert crps_samples(np.array([[0.0], [0.0], [3.0]]), np.array([1.0])) == \
        pytest.approx(4 / 3 - 2 / 3)
    # one sample: the absolute error; a mask drops entries
    assert crps_samples(np.array([[1.0, 5.0]]), np.array([0.0, 0.0]),
                        np.array([True, False])) == pytest.approx(1.0)


def test_interval_coverage():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(2000, 4000))
    truth = rng.normal(size=4000)
    assert interval_coverage(samples, truth, 0.9) == pytest.approx(0.9, abs=0.02)
    assert interval_coverage(np.zeros((3, 5)), np.ones(5)) == 0.0


def test_masked_trajectory_metrics_ignore_masked_entries():
    true = np.arange(12, dtype=float).reshape(1, 6, 2)
    pred = true + 1.0
    mask = np.ones_like(true, dtype=bool)
    pred[0, 2, 0] = 100.0
    mask[0, 2, 0] = False
    scores = trajectory_metrics(pred, true, mask)
    assert scores["mae"] == pytest.approx(1.0) and scores["cc"] == pytest.approx(1.0)
