"""Learning curves from run folders: mean and spread over seeds, one line per group."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from physml_core.atomic import atomic_path
from physml_core.logging import read_metrics

__all__ = ["find_runs", "load_curve", "plot_runs"]

#: metric names of runs written before the shared training layer (which logs training
#: metrics as ``train/...`` and the test episodes as ``val/...``), so earlier runs still plot
_EARLIER_NAMES = {"val/return_mean": "test/return_mean", "val/return_std": "test/return_std",
                  "val/episode_length": "test/episode_length", "train/q_loss": "loss/q",
                  "train/pi_loss": "loss/pi", "train/q1_mean": "q/q1_mean",
                  "train/env_steps_per_s": "perf/env_steps_per_s",
                  "train/updates_per_s": "perf/updates_per_s"}


def find_runs(path: str | Path) -> list[Path]:
    """Run folders under ``path``: itself if it holds ``metrics.jsonl``, else its sub-folders
    that do (one level, sorted)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run folder")
    if (path / "metrics.jsonl").is_file():
        return [path]
    runs = sorted(p for p in path.iterdir() if (p / "metrics.jsonl").is_file())
    if not runs:
        raise ValueError(f"{path}: holds no metrics.jsonl (not a run folder or a folder of runs)")
    return runs


def load_curve(run_dir: str | Path, metric: str = "val/return_mean") -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """``(steps, values)`` of ``metric`` in ``run_dir/metrics.jsonl`` (later lines win on
    repeated steps, e.g. after a resume; a run written before the shared training layer is
    read under its earlier metric names)."""
    points: dict[int, float] = {}
    earlier = _EARLIER_NAMES.get(metric, metric)
    for record in read_metrics(Path(run_dir) / "metrics.jsonl"):
        for name in (metric, earlier):
            if name in record:
                points[int(record["step"])] = float(record[name])
    if not points:
        raise ValueError(f"{run_dir}: metric {metric!r} was never logged")
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def plot_runs(
    groups: Sequence[str | Path],
    output: str | Path,
    metric: str = "val/return_mean",
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> dict[str, dict[str, float]]:
    """Plot one curve per group (a run folder, or a folder of runs = seeds) into ``output`` PNG.

    Each group's runs are interpolated on the union of their logged steps; the line is the mean
    and the band the standard deviation over the runs that reached a step.  Returns per group the
    number of runs and the mean/std at the last step every run reached (``final_*``) and the mean
    at the last step of the longest run (``longest_*``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if labels is not None and len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels for {len(groups)} run groups")
    summary: dict[str, dict[str, float]] = {}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, group in enumerate(groups):
        runs = find_runs(group)
        curves = [load_curve(r, metric) for r in runs]
        grid = np.unique(np.concatenate([c[0] for c in curves]))
        values = np.stack([np.where(grid <= st[-1], np.interp(grid, st, v), np.nan)
                           for st, v in curves])
        count = np.sum(~np.isnan(values), axis=0)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        label = labels[k] if labels else Path(group).name
        ax.plot(grid, mean, label=f"{label} (n={len(runs)})")
        ax.fill_between(grid, mean - std, mean + std, alpha=0.25)
        full = count == len(runs)  # the summary is taken where every run has data
        last = np.flatnonzero(full)[-1]
        summary[label] = {"runs": len(runs), "final_mean": float(mean[last]),
                          "final_std": float(std[last]), "final_step": int(grid[last]),
                          "longest_step": int(grid[-1]),
                          "longest_mean": float(mean[-1])}
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return summary
