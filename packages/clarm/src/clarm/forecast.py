"""Forecasting: observe the first k modules of a run, predict the phase space downstream.

The observed images are encoded (z = posterior mean), the latent LSTM rolls the latent sequence
forward to the last module, and the CVAE decodes every latent with its module condition
(Rautela et al. 2024, Fig. 1).  Nothing downstream of module k is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from physml_core.hdf5 import H5Appender
from physml_core.provenance import ATTR_KEYS

from .artifacts import LoadedCVAE, LoadedLSTM, check_compatible, trained_on
from .data import (
    PHASE_SPACE_SCHEMA,
    PhaseSpaceFile,
    check_held_out,
    check_images,
    held_out_runs,
)

__all__ = ["forecast", "forecast_file"]


@torch.inference_mode()
def forecast(cvae: LoadedCVAE, lstm: LoadedLSTM, observed_images: np.ndarray,
             normalized: bool = False, settings: np.ndarray | None = None,
             noise_std: np.ndarray | None = None,
             seed: int | Sequence[int] = 0) -> np.ndarray:
    """observed_images (R, k, 15, H, W) in physical units -> forecast (R, M, 15, H, W).

    Modules < k hold the CVAE reconstructions of the observed images.  Physical units unless
    ``normalized``.  With ``noise_std`` (D,), in standardised latent units, the rollout is a
    sample of the predictive distribution (Gaussian noise on every predicted latent, drawn
    from ``seed``, or from ``seed[i]`` for run i when a sequence of R seeds is given, so a
    run's sample does not depend on which runs share its batch); without it, the mean forecast.
    """
    model = cvae.model
    cfg = model.config
    observed_images = check_images(observed_images, resolution=cfg.resolution,
                                   what="observed images")
    if observed_images.ndim != 5:
        raise ValueError(f"observed images must be (runs, k, 15, H, W), got "
                         f"{observed_images.shape}")
    r, k = observed_images.shape[:2]
    if not 1 <= k < cfg.modules:
        raise ValueError(f"number of observed modules must be in 1..{cfg.modules - 1}, got {k}")
    if lstm.model.config.latent_dim != cfg.latent_dim:
        raise ValueError("the LSTM and the CVAE have different latent sizes")
    device = next(model.parameters()).device
    s = cvae.settings_tensor(settings, r) if cfg.settings_dim else None
    model.eval()
    # one condition per (run, module); the first k rows of every run serve the encoder
    all_mods = torch.arange(cfg.modules, device=device).repeat(r)
    s_all = None if s is None else s.repeat_interleave(cfg.modules, 0).to(device)
    cond_all = model.condition(all_mods, s_all).view(r, cfg.modules, -1)
    x = cvae.normalizer(torch.from_numpy(np.ascontiguousarray(observed_images, np.float32)))
    x = x.reshape(r * k, *x.shape[2:]).to(device).contiguous(memory_format=torch.channels_last)
    mu, _ = model.encode(x, cond_all[:, :k].reshape(r * k, -1))
    z_mean = torch.as_tensor(lstm.z_mean, device=device)
    z_std = torch.as_tensor(lstm.z_std, device=device)
    zs = (mu.view(r, k, -1) - z_mean) / z_std
    lstm_dev = next(lstm.model.parameters()).device
    noise = None if noise_std is None else torch.as_tensor(noise_std, dtype=torch.float32)
    eps = None
    if isinstance(seed, int):
        gen: torch.Generator | None = torch.Generator().manual_seed(seed)
    else:
        if len(seed) != r:
            raise ValueError(f"need one seed per run ({r}), got {len(seed)}")
        gen = None
        if noise is not None:
            eps = torch.stack([torch.randn((cfg.modules - k, zs.shape[2]),
                                           generator=torch.Generator().manual_seed(int(s_i)))
                               for s_i in seed])
    roll = lstm.model.rollout(zs.to(lstm_dev), cfg.modules, noise_std=noise, generator=gen,
                              eps=eps).to(device) * z_std + z_mean
    flat = roll.reshape(r * cfg.modules, -1)
    cond_flat = cond_all.reshape(r * cfg.modules, -1)
    chunks = [model.decode_logits(flat[i:i + 512], cond_flat[i:i + 512])
              for i in range(0, len(flat), 512)]
    out = (chunks[0] if len(chunks) == 1 else torch.cat(chunks)).sigmoid_()
    if not normalized:
        out.mul_(torch.as_tensor(cvae.normalizer.scale, device=out.device).view(15, 1, 1))
    # numpy view of the (possibly channels-last) tensor: no copy on CPU
    images = out.cpu().numpy()
    return images.reshape(r, cfg.modules, *images.shape[1:])


def forecast_file(data: str | Path, cvae: LoadedCVAE, lstm: LoadedLSTM, output: str | Path,
                  observed: int = 4, runs: list[int] | None = None) -> Path:
    """Forecast ``runs`` of ``data`` (default: the held-out runs, refused with a one-line
    :class:`~physml_core.provenance.ProvenanceOverlapError` if they are training runs of either
    model by provenance) and write an HDF5 file in the phase-space format (attribute
    ``observed``; forecasts are not simulated runs, so it records no provenance)."""
    with PhaseSpaceFile(data) as f:
        check_compatible(cvae, f)
        if runs is None:
            sel = held_out_runs(cvae, f)
            check_held_out(trained_on(cvae, lstm), f, sel)
        else:
            sel = np.asarray(runs, dtype=np.int64)
            if sel.size == 0 or sel.min() < 0 or sel.max() >= f.runs:
                raise ValueError(f"run index out of range 0..{f.runs - 1}")
        attrs = f.attrs
        attrs.pop("physml_schema", None)
        attrs.update(kind="forecast", observed=int(observed), cvae=str(cvae.path),
                     lstm=str(lstm.path), source_file=str(data),
                     **dict.fromkeys(ATTR_KEYS))  # forecasts are not simulated runs
        settings = f.settings()
        index = f.run_index()
        with H5Appender(output, PHASE_SPACE_SCHEMA, attrs=attrs, chunk_rows=1) as out:
            for lo in range(0, len(sel), 8):
                chunk = sel[lo:lo + 8]
                # only the observed modules are read (one module of every run at a time)
                obs = np.stack([f.images(chunk, module=j) for j in range(observed)], axis=1)
                s = None if settings is None else settings[chunk]
                pred = forecast(cvae, lstm, obs, settings=s)
                out.append({"images": pred.astype(np.float32),
                            "run_index": index[chunk]})
    return Path(output)
