"""Sampling, forecasting, decoding and imputation with a trained checkpoint, on raw data.

Observations are standardised with the training statistics stored in the checkpoint, the model
runs on batches (several stochastic samples each), and the outputs are brought back to the data's
units.  Results can be written as ``alternators.predictions`` HDF5 files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_core.hdf5 import write_h5

from .artifacts import LoadedModel, load_model
from .data.dataset import PREDICTION_SCHEMA, SequenceData, load_sequences

__all__ = [
    "PredictionArrays",
    "forecast_file",
    "impute_file",
    "parse_missing",
    "predict",
    "sample_sequences",
    "save_predictions",
]


@dataclass
class PredictionArrays:
    """Model outputs in data units (numpy).

    x_samples (N, S, T, Dx), z_samples (N, S, T, Dz), x_pred (N, T, Dx) mean one-step
    predictions; x_mean, z_mean (N, T, D) means over samples; mask (N, T, Dx) observed values.
    """

    x_samples: np.ndarray
    z_samples: np.ndarray
    x_pred: np.ndarray
    mask: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def x_mean(self) -> np.ndarray:
        return self.x_samples.mean(1)

    @property
    def z_mean(self) -> np.ndarray:
        return self.z_samples.mean(1)


def _as_mask(mask: np.ndarray | None, n: int, t_len: int, d: int) -> np.ndarray:
    """A mask (T,), (N, T) or (N, T, D) (True = observed) as bool (N, T, D)."""
    if mask is None:
        return np.ones((n, t_len, d), dtype=bool)
    mask = np.asarray(mask).astype(bool)
    if mask.ndim == 1:
        if mask.shape[0] != t_len:
            raise ValueError(f"mask has length {mask.shape[0]}, the sequences have {t_len} steps")
        mask = np.broadcast_to(mask, (n, t_len))
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.ndim != 3 or mask.shape[:2] != (n, t_len) or mask.shape[2] not in (1, d):
        raise ValueError(f"mask must have shape ({t_len},), ({n}, {t_len}) or "
                         f"({n}, {t_len}, {d}), got {mask.shape}")
    return np.broadcast_to(mask, (n, t_len, d)).copy()


@torch.no_grad()
def predict(loaded: LoadedModel, x: np.ndarray, mask: np.ndarray | None = None,
            n_samples: int = 10, seed: int = 0, batch_size: int = 64) -> PredictionArrays:
    """Run a loaded model over raw observations ``x`` (N, T, Dx).

    ``mask`` (T,), (N, T) or (N, T, Dx): True where x is observed (None: everywhere); NaN
    entries of ``x`` count as missing too.  Returns stochastic samples and means in data units
    (latents in the training data's units when supervised).
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"observations must have shape (N, T, Dx), got {x.shape}")
    if x.shape[-1] != loaded.model.obs_dim:
        raise ValueError(f"observations have {x.shape[-1]} features, the checkpoint's model "
                         f"expects {loaded.model.obs_dim}")
    if np.isinf(x).any():
        raise ValueError("observations contain inf; mark missing values with NaN or a mask")
    n, t_len, dx = x.shape
    full_mask = _as_mask(mask, n, t_len, dx) & ~np.isnan(x)
    x = np.where(full_mask, x, 0.0).astype(np.float32)
    model = loaded.model
    device = model.device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    xn = loaded.x_norm.transform(x)
    outs: dict[str, list[np.ndarray]] = {"x": [], "z": [], "p": []}
    for lo in range(0, n, batch_size):
        xb = torch.from_numpy(xn[lo : lo + batch_size]).to(device)
        mb = torch.from_numpy(np.ascontiguousarray(full_mask[lo : lo + batch_size])).to(device)
        pred = model.run(xb, None if bool(mb.all()) else mb, n_samples, generator)
        outs["x"].append(pred.x_samples.transpose(0, 1).cpu().numpy())
        outs["z"].append(pred.z_samples.transpose(0, 1).cpu().numpy())
        outs["p"].append(pred.x_pred.mean(0).cpu().numpy())
    x_samples = loaded.x_norm.inverse(np.concatenate(outs["x"]))
    z_samples = np.concatenate(outs["z"])
    if loaded.z_norm is not None:
        z_samples = loaded.z_norm.inverse(z_samples)
    # observed steps are exactly the given data (no round-off from the standardisation)
    x_samples = np.where(full_mask[:, None], x[:, None], x_samples)
    return PredictionArrays(
        x_samples=x_samples.astype(np.float32), z_samples=z_samples.astype(np.float32),
        x_pred=loaded.x_norm.inverse(np.concatenate(outs["p"])), mask=full_mask,
        attrs={"model": loaded.name, "checkpoint": str(loaded.checkpoint),
               "n_samples": n_samples, "seed": seed},
    )


def save_predictions(path: str | Path, pred: PredictionArrays, x_true: np.ndarray | None = None,
                     z_true: np.ndarray | None = None, save_samples: bool = True,
                     attrs: dict[str, Any] | None = None) -> Path:
    """Write predictions as an ``alternators.predictions`` HDF5 file."""
    arrays: dict[str, np.ndarray] = {"x_mean": pred.x_mean, "z_mean": pred.z_mean,
                                     "mask": np.asarray(pred.mask.all(-1), dtype=np.uint8),
                                     "x_mask": pred.mask.astype(np.uint8)}
    if save_samples:
        arrays["x_samples"] = pred.x_samples
        arrays["z_samples"] = pred.z_samples
    if x_true is not None:
        arrays["x_true"] = x_true
    if z_true is not None:
        arrays["z_true"] = z_true
    return write_h5(path, PREDICTION_SCHEMA, arrays, attrs={**pred.attrs, **(attrs or {})})


def sample_sequences(checkpoint: str | Path, num: int, n_steps: int, n_samples: int = 1,
                     seed: int = 0, device: str = "auto") -> PredictionArrays:
    """Generate ``num`` free-running sequences of ``n_steps`` steps (``n_samples`` each)."""
    from physml_core.device import resolve_device

    if num < 1 or n_steps < 1:
        raise ValueError(f"need num >= 1 and n_steps >= 1, got {num}, {n_steps}")
    loaded = load_model(checkpoint, resolve_device(device))
    x = np.zeros((num, n_steps, loaded.model.obs_dim), dtype=np.float32)
    return predict(loaded, x, np.zeros(n_steps, dtype=bool), n_samples, seed)


def _split_data(data: str | Path, split: str) -> SequenceData:
    return load_sequences(data).subset(split)


def forecast_file(checkpoint: str | Path, data: str | Path, horizon: int = 50,
                  context: int | None = None, split: str = "test", n_samples: int = 10,
                  seed: int = 0, device: str = "auto") -> tuple[PredictionArrays, SequenceData]:
    """Observe the first ``context`` steps of each sequence (default: all but ``horizon``) and
    forecast ``horizon`` steps.  Returns the predictions over context + horizon steps and the
    data subset (truth)."""
    from physml_core.device import resolve_device

    ds = _split_data(data, split)
    t_len = ds.n_steps
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    if context is None:
        context = t_len - horizon
    if context < 1 or context + horizon > t_len:
        raise ValueError(f"context {context} + horizon {horizon} must fit in the {t_len} steps of "
                         "the data (context >= 1)")
    loaded = load_model(checkpoint, resolve_device(device))
    x = ds.x[:, : context + horizon]
    steps = np.arange(context + horizon) < context
    mask = steps[None, :, None] & ds.observed("x")[:, : context + horizon]
    pred = predict(loaded, x, mask, n_samples, seed)
    pred.attrs.update(task="forecast", context=context, horizon=horizon, split=split)
    return pred, ds.subset(np.arange(ds.n_sequences))


def parse_missing(text: str, t_len: int) -> np.ndarray:
    """Mask (T,) from ``"START:STOP[,START:STOP...]"``: those steps are missing (False)."""
    mask = np.ones(t_len, dtype=bool)
    for part in text.split(","):
        try:
            start_s, stop_s = part.split(":")
            start, stop = int(start_s), int(stop_s)
        except ValueError:
            raise ValueError(f"missing range {part!r} is not START:STOP") from None
        if not 0 <= start < stop <= t_len:
            raise ValueError(f"missing range {part!r} must satisfy 0 <= START < STOP <= {t_len}")
        mask[start:stop] = False
    return mask


def impute_file(checkpoint: str | Path, data: str | Path, mask: np.ndarray | None = None,
                split: str = "all", n_samples: int = 10, seed: int = 0,
                device: str = "auto") -> tuple[PredictionArrays, SequenceData]:
    """Fill the missing steps of the sequences of ``data``.

    The mask (True = observed) is ``mask`` if given ((T,) or (N, T) for the chosen split), else
    the file's mask; one of them is required.  A mask given here is combined with the file's
    own (a value missing in the file stays missing).
    """
    from physml_core.device import resolve_device

    ds = _split_data(data, split)
    if mask is None:
        if ds.mask is None:
            raise ValueError(f"{data}: no mask given and the file has no missing values; "
                             "use --missing START:STOP or --mask FILE.npy")
        mask = ds.mask
    mask = _as_mask(mask, ds.n_sequences, ds.n_steps, ds.obs_dim) & ds.observed("x")
    loaded = load_model(checkpoint, resolve_device(device))
    pred = predict(loaded, ds.x, mask, n_samples, seed)
    pred.attrs.update(task="impute", split=split)
    return pred, ds
