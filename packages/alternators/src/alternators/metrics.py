"""Scores between predicted and true trajectories.

Point scores: MAE, MSE, Pearson CC per dimension.  Probabilistic scores from samples: the
continuous ranked probability score (CRPS) and the coverage of the central 90 % interval.
Every score takes an optional mask of the entries to score (True = scored), so that missing
values (gaps, padding) never count.
"""

from __future__ import annotations

import numpy as np

__all__ = ["crps_samples", "interval_coverage", "pearson_cc", "probabilistic_metrics",
           "trajectory_metrics"]


def _flat(values: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    v = values.reshape(-1, values.shape[-1]).astype(np.float64)
    m = np.ones(v.shape, dtype=bool) if mask is None else \
        np.broadcast_to(mask, values.shape).reshape(v.shape)
    return v, m


def pearson_cc(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation per last-axis dimension over all other axes: (..., D) -> (D,).

    Only entries where ``mask`` is True count.  A constant prediction or truth gives 0 (no
    linear relation can be measured).
    """
    p, m = _flat(pred, mask)
    t, _ = _flat(true, mask)
    count = np.maximum(m.sum(0), 1)
    p = np.where(m, p - (p * m).sum(0) / count, 0.0)
    t = np.where(m, t - (t * m).sum(0) / count, 0.0)
    denom = np.sqrt((p**2).sum(0) * (t**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cc = np.where(denom > 0, (p * t).sum(0) / np.where(denom > 0, denom, 1.0), 0.0)
    return cc


def trajectory_metrics(pred: np.ndarray, true: np.ndarray,
                       mask: np.ndarray | None = None) -> dict[str, object]:
    """MAE, MSE and CC per dimension and averaged, for arrays (..., D) of equal shape,
    over the entries where ``mask`` (broadcastable to the arrays) is True."""
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth {true.shape}")
    p, m = _flat(pred, mask)
    t, _ = _flat(true, mask)
    count = np.maximum(m.sum(0), 1)
    err = np.where(m, p - t, 0.0)
    mae = np.abs(err).sum(0) / count
    mse = (err**2).sum(0) / count
    cc = pearson_cc(pred, true, mask)
    return {
        "mae": float(mae.mean()), "mse": float(mse.mean()), "cc": float(cc.mean()),
        "mae_per_dim": mae.tolist(), "mse_per_dim": mse.tolist(), "cc_per_dim": cc.tolist(),
        "n_scored": int(m.sum()),
    }


def crps_samples(samples: np.ndarray, truth: np.ndarray,
                 mask: np.ndarray | None = None) -> float:
    """Mean CRPS of the empirical distribution of ``samples`` (S, ...) against ``truth`` (...).

    For each entry, with samples x_1..x_S: CRPS = mean_i |x_i - y| - 1/(2 S^2) sum_ij
    |x_i - x_j| (the CRPS of the empirical distribution function; computed from sorted
    samples in O(S log S)).  One sample (a deterministic model) gives the absolute error.
    Averaged over the entries where ``mask`` (broadcastable to ``truth``) is True; in the
    units of the data.
    """
    samples = np.asarray(samples, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if samples.shape[1:] != truth.shape:
        raise ValueError(f"samples {samples.shape} must be (S, *{truth.shape})")
    s = samples.shape[0]
    skill = np.abs(samples - truth).mean(0)
    ordered = np.sort(samples, axis=0)
    rank = (2 * np.arange(1, s + 1) - s - 1).reshape(-1, *([1] * truth.ndim))
    spread = 2.0 * (rank * ordered).sum(0) / (2.0 * s * s)
    crps = skill - spread
    if mask is None:
        return float(crps.mean())
    m = np.broadcast_to(mask, truth.shape)
    return float(crps[m].mean()) if m.any() else float("nan")


def interval_coverage(samples: np.ndarray, truth: np.ndarray, level: float = 0.9,
                      mask: np.ndarray | None = None) -> float:
    """Fraction of ``truth`` entries inside the central ``level`` interval of ``samples``
    (S, ...), from the empirical (1 - level)/2 and (1 + level)/2 quantiles."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    inside = (truth >= lo) & (truth <= hi)
    if mask is None:
        return float(inside.mean())
    m = np.broadcast_to(mask, truth.shape)
    return float(inside[m].mean()) if m.any() else float("nan")


def probabilistic_metrics(samples: np.ndarray, truth: np.ndarray,
                          mask: np.ndarray | None = None,
                          scale: np.ndarray | None = None) -> dict[str, float]:
    """MAE of the sample mean, CRPS and 90 % coverage; divided by ``scale`` (D,) first when
    given (e.g. standard-deviation units)."""
    if scale is not None:
        samples = samples / scale
        truth = truth / scale
    err = np.abs(samples.mean(0) - truth)
    m = None if mask is None else np.broadcast_to(mask, truth.shape)
    mae = float(err.mean() if m is None else err[m].mean())
    return {"mae": mae, "crps": crps_samples(samples, truth, m),
            "coverage90": interval_coverage(samples, truth, 0.9, m)}
