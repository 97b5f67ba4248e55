"""Known answers for the shared Frechet distance."""

from __future__ import annotations

import numpy as np
import pytest

from physml_core.stats import frechet_distance, frechet_gaussians


def test_one_dimensional_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2
    got = frechet_gaussians(np.array([1.0]), np.array([[4.0]]), np.array([-0.5]),
                            np.array([[0.25]]))
    assert got == pytest.approx(1.5**2 + (2.0 - 0.5) ** 2, abs=1e-12)


def test_commuting_covariances_closed_form():
    # diagonal covariances commute: sum_i (sqrt(a_i) - sqrt(b_i))^2 plus the mean term
    a, b = np.array([1.0, 9.0, 0.04]), np.array([4.0, 1.0, 0.01])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_gaussians(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, abs=1e-10)


def test_feature_sets_match_the_gaussian_form_and_are_zero_for_one_set():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    y = rng.normal(size=(400, 3)) * 1.5 + 0.2
    want = frechet_gaussians(x.mean(0), np.cov(x, rowvar=False), y.mean(0),
                             np.cov(y, rowvar=False))
    assert frechet_distance(x, y) == pytest.approx(want, abs=1e-12)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    ridge = frechet_distance(x, y, ridge=1e-6)
    assert ridge == pytest.approx(want, abs=1e-5) and ridge != want


@pytest.mark.parametrize("a, b", [(np.zeros((5, 2)), np.zeros((5, 3))),
                                  (np.zeros((1, 2)), np.zeros((5, 2))),
                                  (np.zeros(5), np.zeros(5))])
def test_bad_shapes_are_value_errors(a, b):
    with pytest.raises(ValueError, match="frechet_distance"):
        frechet_distance(a, b)
