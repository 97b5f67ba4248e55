"""Evaluation of one or several trained models on the same sequences.

For each checkpoint:
* decoding: latents from the observed sequences (mean of ``n_samples`` stochastic passes, as in
  the reference) scored with MAE, MSE and Pearson CC per latent dimension over known latents;
  the one-step observation error;
* forecast: ``horizon`` steps after ``context`` observed steps, scored on latents and
  observations with MAE of the sample mean, CRPS and 90 % interval coverage;
* imputation: a gap of steps hidden from the model (``gap``, default ``horizon`` steps in the
  middle), scored on the hidden values that the data holds (masked-gap MAE, CRPS, coverage);
* the parameter count and the training wall time read from the run folder.
Observation scores are in units of the training standard deviation per feature; latent scores in
the data's latent units.  Missing values of the data (its masks) are never scored.  Writes
``evaluation.json``, ``table.md`` and PNG figures (3D latent trajectories, forecast fan charts).

Held-out sequences (``split`` test, or val) must not be sequences a model was trained on
(test: nor validated on) by provenance (:mod:`physml_core.provenance`), whatever file they come
from; an overlap raises :class:`~physml_core.provenance.ProvenanceOverlapError` (one line,
exit 2).  A file or checkpoint that records no provenance is evaluated with a warning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physml_core.config import save_json
from physml_core.device import resolve_device
from physml_core.errors import ConfigError
from physml_core.logging import get_logger
from physml_core.provenance import Provenance, check_disjoint

from .artifacts import LoadedModel, load_model
from .data.dataset import SPLITS, SequenceData, file_provenance, load_sequences, rows_provenance
from .inference import PredictionArrays, predict
from .metrics import probabilistic_metrics, trajectory_metrics
from .plots import plot_forecast_fans, plot_latents_3d

__all__ = ["EvaluateConfig", "evaluate", "format_table"]

log = get_logger("alternators.evaluate")


@dataclass
class EvaluateConfig:
    """Configuration of ``alternators evaluate``.

    checkpoints: checkpoint files or run folders (one per model).  data: sequence file.
    output: folder for the report.  split: which sequences (default the held-out test split).
    n_samples: stochastic passes averaged (and the samples of CRPS and coverage).
    horizon: forecast steps; context: observed steps before the forecast (None: the sequence
    length minus the horizon).  gap: (start, stop) steps hidden for the imputation score (None:
    ``horizon`` steps centred in the sequence; (0, 0): no imputation score).
    max_sequences: evaluate at most this many sequences (0: all).
    """

    checkpoints: list[str] = field(default_factory=list)
    data: str | None = None
    output: str = "evaluation"
    split: str = "test"
    n_samples: int = 10
    horizon: int = 50
    context: int | None = None
    gap: tuple[int, int] | None = None
    max_sequences: int = 0
    seed: int = 0
    device: str = "auto"
    plots: bool = True


def _std_metrics(pred: np.ndarray, true: np.ndarray, std: np.ndarray,
                 mask: np.ndarray | None = None) -> dict[str, float]:
    err = (pred - true) / std
    if mask is not None:
        m = np.broadcast_to(mask, err.shape)
        err = err[m] if m.any() else np.full(1, np.nan)
    return {"mse_std_units": float((err**2).mean()), "mae_std_units": float(np.abs(err).mean())}


def _train_seconds(checkpoint: Path) -> float | None:
    """Training wall time (sum of epoch times) from the run folder's metrics.jsonl."""
    from physml_core.logging import read_metrics

    for folder in (checkpoint.parent, checkpoint.parent.parent):
        path = folder / "metrics.jsonl"
        if path.is_file():
            try:
                rows = read_metrics(path)
            except (OSError, ValueError):
                return None
            # "train/epoch_seconds" since training moved onto physml_core.training
            by_step = {r.get("step"): r.get("train/epoch_seconds", r.get("epoch_seconds", 0.0))
                       for r in rows}
            return float(sum(v for v in by_step.values() if v is not None))
    return None


def _window_scores(pred: PredictionArrays, data: SequenceData, window: slice,
                   hidden: np.ndarray, loaded: LoadedModel, z_true: np.ndarray | None
                   ) -> dict[str, Any]:
    """Scores on the steps in ``window`` where ``hidden`` (N, T, Dx) marks values hidden from
    the model that the data holds."""
    xs = np.moveaxis(pred.x_samples, 1, 0)[:, :, window]  # (S, N, W, Dx)
    out: dict[str, Any] = {"observation": probabilistic_metrics(
        xs, data.x[:, window], hidden[:, window], scale=loaded.x_norm.std)}
    if z_true is not None:
        zs = np.moveaxis(pred.z_samples, 1, 0)[:, :, window]
        z_known = data.observed("z")[:, window]
        lat = trajectory_metrics(pred.z_mean[:, window], z_true[:, window], z_known)
        lat.update(probabilistic_metrics(zs, z_true[:, window], z_known))
        out["latent"] = lat
    return out


def _held_out_check(models: list[LoadedModel], full: SequenceData, rows: np.ndarray,
                    split: str, path: str) -> str:
    """Refuse evaluated ``rows`` of ``full`` that a model trained on (for the test split: or
    validated on); returns the status for the report."""
    if split not in ("test", "val"):
        return f"not checked: split {split!r} is not held out"
    records = file_provenance(full)
    if records is None:
        log.warning("%s records no provenance: cannot check its %s sequences are held out",
                    path, split)
        return f"not checked: {path} records no provenance"
    held = rows_provenance(records, rows)
    for m in models:
        used = m.data_provenance
        if used is None:
            log.warning("%s records no training provenance: cannot check %s is held out",
                        m.checkpoint, path)
            return f"not checked: {m.checkpoint} records no training provenance"
        if split == "val":  # the validation sequences of the training file are fair game
            val: set[Provenance] = set(m.validation_provenance or [])
            used = [p for p in used if p not in val]
        check_disjoint(used, held, f"{split} sequences of {path}")
    return "held out: no evaluated sequence is a training" + (
        " or validation sequence" if split == "test" else " sequence")


def evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Score every checkpoint on ``config.data``; returns (and writes) the report."""
    if not config.checkpoints:
        raise ConfigError("evaluate needs at least one checkpoint")
    if not config.data:
        raise ConfigError("EvaluateConfig.data is required: the sequence file to score on")
    if config.n_samples < 1 or config.horizon < 0:
        raise ValueError("n_samples must be >= 1 and horizon >= 0")
    full = load_sequences(config.data)
    data = full.subset(config.split)
    rows = (np.arange(full.n_sequences) if config.split == "all"
            else np.flatnonzero(full.labels == SPLITS[config.split]))
    if config.max_sequences > 0:
        data = data.subset(np.arange(min(config.max_sequences, data.n_sequences)))
        rows = rows[:data.n_sequences]
    device = resolve_device(config.device)
    models = [load_model(ckpt, device) for ckpt in config.checkpoints]
    held_out = _held_out_check(models, full, rows, config.split, config.data)
    t_len = data.n_steps
    context = config.context if config.context is not None else t_len - config.horizon
    do_forecast = config.horizon > 0
    if do_forecast and (context < 1 or context + config.horizon > t_len):
        raise ValueError(f"context {context} + horizon {config.horizon} must fit in the {t_len} "
                         "steps of the data (context >= 1)")
    gap = config.gap
    if gap is None:
        width = config.horizon if 0 < config.horizon < t_len else 0
        gap = ((t_len - width) // 2, (t_len - width) // 2 + width)
    if gap[1] > gap[0] and not 0 <= gap[0] < gap[1] <= t_len:
        raise ValueError(f"gap {gap[0]}:{gap[1]} must lie within the {t_len} steps of the data")
    do_impute = gap[1] > gap[0]
    x_known = data.observed("x")
    out_dir = Path(config.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "data": str(config.data), "split": config.split, "n_sequences": data.n_sequences,
        "n_steps": t_len, "n_samples": config.n_samples, "horizon": config.horizon,
        "context": context if do_forecast else None,
        "gap": list(gap) if do_impute else None, "held_out_check": held_out,
        "models": [],
    }
    decoded: dict[str, np.ndarray] = {}
    fans: dict[str, np.ndarray] = {}
    for ckpt, loaded in zip(config.checkpoints, models, strict=True):
        name = loaded.name
        key = name if name not in decoded and name not in fans else f"{name}:{Path(ckpt).name}"
        entry: dict[str, Any] = {
            "model": name, "checkpoint": str(loaded.checkpoint), "epochs": loaded.step,
            "supervised": loaded.supervised,
            "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
            "train_seconds": _train_seconds(Path(loaded.checkpoint)),
            "deterministic": bool(loaded.model.deterministic),
        }
        t0 = time.perf_counter()
        pred = predict(loaded, data.x, x_known, config.n_samples, config.seed)
        elapsed = time.perf_counter() - t0
        entry["decode_seconds"] = elapsed
        entry["decode_sequences_per_second"] = data.n_sequences * config.n_samples / elapsed
        x_std = loaded.x_norm.std
        entry["one_step_observation"] = _std_metrics(pred.x_pred, data.x, x_std, x_known)
        z_true = data.z if loaded.supervised else None  # latents scored when both have them
        if z_true is not None:
            if z_true.shape[-1] != pred.z_samples.shape[-1]:
                raise ValueError(f"{config.data}: latents have {z_true.shape[-1]} dims, the model "
                                 f"predicts {pred.z_samples.shape[-1]}")
            entry["decoding"] = trajectory_metrics(pred.z_mean, z_true, data.observed("z"))
            decoded[key] = pred.z_mean[0]
        if do_forecast:
            n_fc = context + config.horizon
            mask = (np.arange(n_fc) < context)[None, :, None] & x_known[:, :n_fc]
            fc = predict(loaded, data.x[:, :n_fc], mask, config.n_samples, config.seed + 1)
            window = slice(context, n_fc)
            hidden = ~mask & x_known[:, :n_fc]
            entry["forecast"] = _window_scores(fc, data.subset(np.arange(data.n_sequences)),
                                               window, hidden, loaded, z_true)
            fans[key] = fc.z_samples[0] if z_true is not None else fc.x_samples[0][..., :3]
        if do_impute:
            steps = np.ones(t_len, dtype=bool)
            steps[gap[0] : gap[1]] = False
            mask = steps[None, :, None] & x_known
            im = predict(loaded, data.x, mask, config.n_samples, config.seed + 2)
            entry["imputation"] = _window_scores(im, data, slice(gap[0], gap[1]),
                                                 ~mask & x_known, loaded, z_true)
        report["models"].append(entry)
        log.info("evaluated %s: %s", key, entry.get("decoding", {}).get("cc"))

    figures = []
    if config.plots:
        if decoded and data.z is not None:
            figures.append(str(plot_latents_3d(out_dir / "latents_3d.png", data.z[0], decoded)))
        if fans:
            any_latents = data.z is not None and any(
                "latent" in m.get("forecast", {}) for m in report["models"])
            truth = (data.z[0] if any_latents and data.z is not None else
                     data.x[0][..., :3])[: context + config.horizon]
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
    head = ("| model | params | train s | latent MAE | latent CC | CC per dim | "
            f"forecast {horizon}: latent MAE | latent CRPS | latent cov90 | obs CRPS* | "
            "obs cov90 | impute gap: latent MAE | latent CRPS | obs MAE* | obs CRPS* | "
            "obs cov90 |")
    rows = [head, "|" + "---|" * 16]
    for m in report["models"]:
        dec = m.get("decoding", {})
        fc = m.get("forecast", {})
        im = m.get("imputation", {})
        fcl, fco = fc.get("latent", {}), fc.get("observation", {})
        iml, imo = im.get("latent", {}), im.get("observation", {})
        per_dim = ", ".join(f"{c:.3f}" for c in dec.get("cc_per_dim", [])) or "-"
        rows.append(
            f"| {m['model']} | {m.get('parameters', '-')} | {_fmt(m.get('train_seconds'), 1)} | "
            f"{_fmt(dec.get('mae'))} | {_fmt(dec.get('cc'))} | {per_dim} | "
            f"{_fmt(fcl.get('mae'))} | {_fmt(fcl.get('crps'))} | {_fmt(fcl.get('coverage90'), 2)} | "
            f"{_fmt(fco.get('crps'))} | {_fmt(fco.get('coverage90'), 2)} | "
            f"{_fmt(iml.get('mae'))} | {_fmt(iml.get('crps'))} | {_fmt(imo.get('mae'))} | "
            f"{_fmt(imo.get('crps'))} | {_fmt(imo.get('coverage90'), 2)} |"
        )
    rows.append("\n*observation scores in units of the training standard deviation per feature; "
                "a deterministic model's CRPS is its MAE and its interval has width 0")
    return "\n".join(rows)
