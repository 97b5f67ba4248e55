"""The held-out rule every physml package uses: the last units of a file are held out.

A *unit* is what must never be split between training and evaluation: a row (calo showers), a
run (clarm: all modules of one linac run) or a sequence (alternators).  In file order the units
are ``[train | validation | test]``: the test units are the last ``test_fraction``, the
validation units the ``val_fraction`` before them, the rest trains.  Simulated files are i.i.d.
in file order, so the last units are as random as any other choice, and the rule needs no seed:
the same file always splits the same way, shards and merged files included, and the row ranges
can be written into checkpoints as provenance (:mod:`physml_core.provenance`).  A file that
stores its own split (public data with an official test set) keeps it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPLIT_LABELS", "holdout_counts", "holdout_labels"]

#: Integer labels of the splits, as stored in files (``split`` datasets).
SPLIT_LABELS: dict[str, int] = {"train": 0, "val": 1, "test": 2}


def holdout_counts(n: int, val_fraction: float, test_fraction: float = 0.0,
                   minimum: int = 1) -> tuple[int, int, int]:
    """(train, validation, test) unit counts of ``n`` units under the held-out rule.

    Each non-zero fraction holds out ``round(fraction * n)`` units but at least ``minimum``;
    at least ``minimum`` units must remain for training, else :class:`ValueError`.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if n < 1:
        raise ValueError("a data set needs at least one unit (row, run or sequence)")

    def held(fraction: float) -> int:
        return 0 if fraction == 0 else max(minimum, round(fraction * n))

    n_val, n_test = held(val_fraction), held(test_fraction)
    n_train = n - n_val - n_test
    if n_train < minimum:
        raise ValueError(f"{n} units leave {n_train} for training after holding out "
                         f"{n_val} + {n_test}; need at least {minimum}")
    return n_train, n_val, n_test


def holdout_labels(n: int, val_fraction: float, test_fraction: float = 0.0,
                   minimum: int = 1) -> np.ndarray:
    """Split labels (n,) int8 (:data:`SPLIT_LABELS`) under the held-out rule."""
    n_train, n_val, _ = holdout_counts(n, val_fraction, test_fraction, minimum)
    labels = np.full(n, SPLIT_LABELS["test"], dtype=np.int8)
    labels[:n_train] = SPLIT_LABELS["train"]
    labels[n_train:n_train + n_val] = SPLIT_LABELS["val"]
    return labels
