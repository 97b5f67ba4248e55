"""Error metrics between predicted and true trajectories: MAE, MSE, Pearson CC per dimension."""

from __future__ import annotations

import numpy as np

__all__ = ["pearson_cc", "trajectory_metrics"]


def pearson_cc(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson correlation per last-axis dimension over all other axes: (..., D) -> (D,).

    A constant prediction or truth gives 0 (no linear relation can be measured).
    """
    p = pred.reshape(-1, pred.shape[-1]).astype(np.float64)
    t = true.reshape(-1, true.shape[-1]).astype(np.float64)
    p = p - p.mean(0)
    t = t - t.mean(0)
    denom = np.sqrt((p**2).sum(0) * (t**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cc = np.where(denom > 0, (p * t).sum(0) / np.where(denom > 0, denom, 1.0), 0.0)
    return cc


def trajectory_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, object]:
    """MAE, MSE and CC per dimension and averaged, for arrays (..., D) of equal shape."""
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth {true.shape}")
    err = pred.astype(np.float64) - true.astype(np.float64)
    axes = tuple(range(err.ndim - 1))
    mae = np.abs(err).mean(axes)
    mse = (err**2).mean(axes)
    cc = pearson_cc(pred, true)
    return {
        "mae": float(mae.mean()), "mse": float(mse.mean()), "cc": float(cc.mean()),
        "mae_per_dim": mae.tolist(), "mse_per_dim": mse.tolist(), "cc_per_dim": cc.tolist(),
    }
