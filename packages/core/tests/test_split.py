"""The one held-out rule."""

from __future__ import annotations

import numpy as np
import pytest

from physml_core.split import SPLIT_LABELS, holdout_counts, holdout_labels


def test_last_units_are_held_out_in_order():
    labels = holdout_labels(10, val_fraction=0.2, test_fraction=0.1)
    assert labels.tolist() == [0] * 7 + [1, 1] + [2]
    assert holdout_counts(10, 0.2, 0.1) == (7, 2, 1)
    assert set(SPLIT_LABELS.values()) == {0, 1, 2}


def test_minimum_per_split_and_no_split_for_zero_fraction():
    assert holdout_counts(5, 0.01, minimum=2) == (3, 2, 0)
    assert holdout_counts(100, 0.0) == (100, 0, 0)
    assert (holdout_labels(4, 0.0) == 0).all()


@pytest.mark.parametrize("n, val, test, message", [
    (3, 0.5, 0.4, "leave"), (10, 1.0, 0.0, "val_fraction"), (10, 0.1, -0.1, "test_fraction"),
    (0, 0.1, 0.0, "at least one unit")])
def test_bad_requests_are_value_errors(n, val, test, message):
    with pytest.raises(ValueError, match=message):
        holdout_counts(n, val, test)


def test_labels_are_int8():
    assert holdout_labels(7, 0.3).dtype == np.int8
