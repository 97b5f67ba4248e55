"""PNG figures of the evaluation: 3D latent trajectories and forecast fan charts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["plot_forecast_fans", "plot_latents_3d"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_latents_3d(path: str | Path, true: np.ndarray, predicted: Mapping[str, np.ndarray],
                    title: str = "latent trajectory: true vs decoded") -> Path:
    """One 3D panel per model: true latent (T, 3) and the model's mean prediction (T, 3)."""
    plt = _pyplot()
    names = list(predicted)
    fig = plt.figure(figsize=(4.5 * max(len(names), 1), 4.5))
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1, projection="3d")
        ax.plot(*true[:, :3].T, color="black", lw=0.8, label="true")
        ax.plot(*predicted[name][:, :3].T, color="tab:red", lw=0.8, alpha=0.8, label=name)
        ax.set_title(name)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.set_zlabel("z3")
        if i == 0:
            ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_forecast_fans(path: str | Path, true: np.ndarray,
                       samples: Mapping[str, np.ndarray], context: int,
                       label: str = "latent") -> Path:
    """Fan charts: per model (rows) and dimension (columns), truth, forecast mean and the
    5-95 % band of the samples.  ``true`` (T, D); ``samples[name]`` (S, T, D)."""
    plt = _pyplot()
    names = list(samples)
    dims = true.shape[-1]
    fig, axes = plt.subplots(len(names), dims, figsize=(3.6 * dims, 2.4 * len(names)),
                             squeeze=False, sharex=True)
    steps = np.arange(true.shape[0])
    for r, name in enumerate(names):
        s = samples[name]
        lo, hi = np.percentile(s, [5, 95], axis=0)
        mean = s.mean(0)
        for d in range(dims):
            ax = axes[r, d]
            ax.plot(steps, true[:, d], color="black", lw=0.8, label="true")
            ax.fill_between(steps[context:], lo[context:, d], hi[context:, d], color="tab:blue",
                            alpha=0.3, label="5-95 %")
            ax.plot(steps[context:], mean[context:, d], color="tab:blue", lw=1.0,
                    label="forecast mean")
            ax.plot(steps[:context], mean[:context, d], color="tab:red", lw=0.8, alpha=0.7,
                    label="decoded")
            ax.axvline(context, color="grey", ls="--", lw=0.8)
            if r == 0:
                ax.set_title(f"{label} {d + 1}")
            if d == 0:
                ax.set_ylabel(name)
            if r == len(names) - 1:
                ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
