"""PNG plots: projection grids (real vs model) and metric-versus-module curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_grid", "plot_metric_curves"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_grid(path: str | Path, rows: Mapping[str, np.ndarray], names: Sequence[str],
              title: str = "") -> Path:
    """One row per entry of ``rows`` (label -> (15, H, W)), one column per projection."""
    plt = _pyplot()
    labels = list(rows)
    fig, axes = plt.subplots(len(labels), 15, figsize=(15 * 1.1, len(labels) * 1.2 + 0.4),
                             squeeze=False)
    for r, label in enumerate(labels):
        img = np.asarray(rows[label])
        for c in range(15):
            ax = axes[r, c]
            ax.imshow(img[c], origin="lower", cmap="viridis", vmin=0.0,
                      vmax=max(float(img[c].max()), 1e-12))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(names[c] if c < len(names) else str(c), fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def plot_metric_curves(path: str | Path, curves: Mapping[str, Sequence[float]],
                       ylabel: str, title: str = "",
                       x: Sequence[int] | Mapping[str, Sequence[int]] | None = None) -> Path:
    """Metric versus module index, one line per entry of ``curves``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, values in curves.items():
        xs = x[label] if isinstance(x, Mapping) else (x or range(len(values)))
        ax.plot(list(xs), list(values), marker="o", ms=3, label=label)
    ax.set_xlabel("module")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
