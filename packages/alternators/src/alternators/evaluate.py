"""Evaluation of one or several trained models on the same held-out sequences.

For each checkpoint: latent decoding from fully observed sequences (mean of ``n_samples``
stochastic passes, as in the reference) scored with MAE, MSE and Pearson CC per latent dimension;
one-step observation prediction error; and a forecast of ``horizon`` steps after ``context``
observed steps, scored on latents and observations.  Writes ``evaluation.json``, ``table.md``
and PNG figures (3D latent trajectories, forecast fan charts) to the output folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physml_core.config import save_json
from physml_core.device import resolve_device
from physml_core.logging import get_logger

from .data.dataset import load_sequences
from .inference import predict
from .metrics import trajectory_metrics
from .plots import plot_forecast_fans, plot_latents_3d
from .train import load_model

__all__ = ["EvaluateConfig", "evaluate", "format_table"]

log = get_logger("alternators.evaluate")


@dataclass
class EvaluateConfig:
    """Configuration of ``alternators evaluate``.

    checkpoints: checkpoint files or run folders (one per model).  data: sequence file.
    output: folder for the report.  split: which sequences (default the held-out test split).
    n_samples: stochastic passes averaged.  horizon: forecast steps; context: observed steps
    before the forecast (None: the sequence length minus the horizon).
    max_sequences: evaluate at most this many sequences (0: all).
    """

    checkpoints: list[str] = field(default_factory=list)
    data: str = ""
    output: str = "evaluation"
    split: str = "test"
    n_samples: int = 10
    horizon: int = 50
    context: int | None = None
    max_sequences: int = 0
    seed: int = 0
    device: str = "cpu"
    plots: bool = True


def _std_metrics(pred: np.ndarray, true: np.ndarray, mean: np.ndarray,
                 std: np.ndarray) -> dict[str, float]:
    err = (pred - true) / std
    return {"mse_std_units": float((err**2).mean()), "mae_std_units": float(np.abs(err).mean())}


def evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Score every checkpoint on ``config.data``; returns (and writes) the report."""
    if not config.checkpoints:
        raise ValueError("evaluate needs at least one checkpoint")
    if config.n_samples < 1 or config.horizon < 0:
        raise ValueError("n_samples must be >= 1 and horizon >= 0")
    data = load_sequences(config.data).subset(config.split)
    if config.max_sequences > 0:
        data = data.subset(np.arange(min(config.max_sequences, data.n_sequences)))
    t_len = data.n_steps
    context = config.context if config.context is not None else t_len - config.horizon
    do_forecast = config.horizon > 0
    if do_forecast and (context < 1 or context + config.horizon > t_len):
        raise ValueError(f"context {context} + horizon {config.horizon} must fit in the {t_len} "
                         "steps of the data (context >= 1)")
    device = resolve_device(config.device)
    out_dir = Path(config.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "data": str(config.data), "split": config.split, "n_sequences": data.n_sequences,
        "n_steps": t_len, "n_samples": config.n_samples, "horizon": config.horizon,
        "context": context if do_forecast else None, "models": [],
    }
    decoded: dict[str, np.ndarray] = {}
    fans: dict[str, np.ndarray] = {}
    for ckpt in config.checkpoints:
        loaded = load_model(ckpt, device)
        name = loaded.name
        key = name if name not in decoded else f"{name}:{Path(ckpt).name}"
        entry: dict[str, Any] = {"model": name, "checkpoint": str(loaded.checkpoint),
                                 "epochs": loaded.step, "supervised": loaded.supervised}
        t0 = time.perf_counter()
        pred = predict(loaded, data.x, None, config.n_samples, config.seed)
        elapsed = time.perf_counter() - t0
        entry["decode_seconds"] = elapsed
        entry["decode_sequences_per_second"] = data.n_sequences * config.n_samples / elapsed
        x_mean, x_std = loaded.x_norm.mean, loaded.x_norm.std
        entry["one_step_observation"] = _std_metrics(pred.x_pred, data.x, x_mean, x_std)
        has_latents = loaded.supervised and data.z is not None
        if has_latents:
            if data.z.shape[-1] != pred.z_samples.shape[-1]:
                raise ValueError(f"{config.data}: latents have {data.z.shape[-1]} dims, the model "
                                 f"predicts {pred.z_samples.shape[-1]}")
            entry["decoding"] = trajectory_metrics(pred.z_mean, data.z)
            decoded[key] = pred.z_mean[0]
        if do_forecast:
            x_in = data.x[:, : context + config.horizon]
            mask = np.arange(context + config.horizon) < context
            fc = predict(loaded, x_in, mask, config.n_samples, config.seed + 1)
            window = slice(context, context + config.horizon)
            fc_entry: dict[str, Any] = {
                "observation": _std_metrics(fc.x_mean[:, window], data.x[:, window], x_mean,
                                            x_std)}
            if has_latents:
                fc_entry["latent"] = trajectory_metrics(fc.z_mean[:, window],
                                                        data.z[:, window])
                fans[key] = fc.z_samples[0]
            else:
                fans[key] = fc.x_samples[0][..., :3]
            entry["forecast"] = fc_entry
        report["models"].append(entry)
        log.info("evaluated %s: %s", key, entry.get("decoding", {}).get("cc"))

    figures = []
    if config.plots:
        if decoded:
            figures.append(str(plot_latents_3d(out_dir / "latents_3d.png", data.z[0], decoded)))
        if fans:
            any_latents = any("latent" in m.get("forecast", {}) for m in report["models"])
            truth = (data.z[0] if any_latents else data.x[0][..., :3])[: context + config.horizon]
            if all(f.shape[-1] == truth.shape[-1] for f in fans.values()):
                figures.append(str(plot_forecast_fans(out_dir / "forecast_fan.png", truth, fans,
                                                      context, "latent" if any_latents else
                                                      "observation")))
    report["figures"] = figures
    table = format_table(report)
    report["table"] = table
    save_json(out_dir / "evaluation.json", report)
    (out_dir / "table.md").write_text(table + "\n")
    return report


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table with one row per model."""
    horizon = report.get("horizon")
    head = ("| model | latent MAE | latent MSE | latent CC | CC per dim | obs 1-step MSE* | "
            f"forecast {horizon} latent MAE | forecast latent CC | forecast obs MSE* |")
    rows = [head, "|" + "---|" * 9]
    for m in report["models"]:
        dec = m.get("decoding", {})
        fc = m.get("forecast", {})
        fcl = fc.get("latent", {})
        per_dim = ", ".join(f"{c:.3f}" for c in dec.get("cc_per_dim", [])) or "-"
        rows.append(
            f"| {m['model']} | {_fmt(dec.get('mae'))} | {_fmt(dec.get('mse'))} | "
            f"{_fmt(dec.get('cc'))} | {per_dim} | "
            f"{_fmt(m['one_step_observation']['mse_std_units'])} | {_fmt(fcl.get('mae'))} | "
            f"{_fmt(fcl.get('cc'))} | "
            f"{_fmt(fc.get('observation', {}).get('mse_std_units'))} |"
        )
    rows.append("\n*observation errors in units of the training standard deviation per feature")
    return "\n".join(rows)
