"""One preprocessing object shared by training, generation and evaluation of the VAE.

The CaloGAN-VAE repository normalised showers one way in training and another way in its
evaluation script (its README reports a 2x energy mismatch).  Here a single
:class:`ShowerPreprocessor` is fitted once, stored inside the checkpoint (``state_dict``) and
rebuilt from it, so every step applies the identical transformation.

Transformation of a cell energy ``x`` (MeV) of a shower of incident energy ``E`` (GeV):

``u = x / (1000 E)`` (fraction of the incident energy), ``v = log(1 + u / eps)``,
``w = (v - mean_c) / std_c`` with per-cell mean and standard deviation over *hit* cells
(``x > 0``), and a hit mask ``m = [x > 0]``.  The inverse maps ``(w, m)`` back exactly and gives
exact zeros wherever ``m = 0``.  The condition is ``c = (log E - log E_min) / (log E_max -
log E_min)`` in [0, 1] for the training energy range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from .data import LAYER_KEYS
from .geometry import LAYERS, N_CELLS

__all__ = ["ShowerPreprocessor", "flatten_cells", "unflatten_cells"]


def flatten_cells(showers: Mapping[str, Any]) -> Any:
    """Concatenate the three layers into (N, 504) cells (NumPy arrays or torch tensors)."""
    parts = [showers[k].reshape(showers[k].shape[0], -1) for k in LAYER_KEYS]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts, dim=1)
    return np.concatenate(parts, axis=1)


def unflatten_cells(cells: Any) -> dict[str, Any]:
    """Split (N, 504) cells into the three layer arrays of the CaloGAN format."""
    out, start = {}, 0
    for layer in LAYERS:
        stop = start + layer.n_cells
        out[layer.name] = cells[:, start:stop].reshape(cells.shape[0], *layer.shape)
        start = stop
    return out


class ShowerPreprocessor:
    """Invertible log1p normalisation of cell energies with a hit mask (see module docstring).

    Parameters: ``eps`` (fraction of the incident energy setting the log1p knee),
    ``energy_min_gev`` / ``energy_max_gev`` (condition range).  Call :meth:`fit` on training
    batches, then :meth:`forward` / :meth:`inverse`; :meth:`state_dict` stores everything.
    """

    def __init__(self, eps: float = 1e-5, energy_min_gev: float = 1.0,
                 energy_max_gev: float = 100.0) -> None:
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if not 0 < energy_min_gev < energy_max_gev:
            raise ValueError(f"need 0 < energy_min_gev < energy_max_gev, got "
                             f"{energy_min_gev}, {energy_max_gev}")
        self.eps = float(eps)
        self.energy_min_gev = float(energy_min_gev)
        self.energy_max_gev = float(energy_max_gev)
        self.mean = torch.zeros(N_CELLS)
        self.std = torch.ones(N_CELLS)
        self.hit_rate = torch.zeros(N_CELLS)
        self.fitted = False

    # ------------------------------------------------------------------ fitting / state
    def fit(self, batches: Iterable[Mapping[str, np.ndarray]]) -> ShowerPreprocessor:
        """Per-cell statistics of hit cells, accumulated over batches of CaloGAN arrays."""
        count = np.zeros(N_CELLS)
        total = np.zeros(N_CELLS)
        total_sq = np.zeros(N_CELLS)
        rows = 0
        for batch in batches:
            cells = flatten_cells(batch).astype(np.float64)
            energy = np.asarray(batch["energy"], np.float64).reshape(-1, 1)
            hit = cells > 0
            v = np.log1p(cells / (1000.0 * energy) / self.eps) * hit
            count += hit.sum(axis=0)
            total += v.sum(axis=0)
            total_sq += (v * v).sum(axis=0)
            rows += len(cells)
        if rows == 0:
            raise ValueError("cannot fit the preprocessing on an empty data set")
        safe = np.maximum(count, 1)
        mean = total / safe
        var = np.maximum(total_sq / safe - mean**2, 0.0)
        global_mean = total.sum() / max(count.sum(), 1)
        mean = np.where(count >= 2, mean, global_mean)
        std = np.where(count >= 2, np.sqrt(var), 1.0)
        std = np.maximum(std, 0.1)
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.hit_rate = torch.tensor(count / rows, dtype=torch.float32)
        self.fitted = True
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "log1p_hitmask", "eps": self.eps, "energy_min_gev": self.energy_min_gev,
                "energy_max_gev": self.energy_max_gev, "mean": self.mean.clone(),
                "std": self.std.clone(), "hit_rate": self.hit_rate.clone(),
                "fitted": self.fitted}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> ShowerPreprocessor:
        if state.get("kind") != "log1p_hitmask":
            raise ValueError(f"unknown preprocessing kind {state.get('kind')!r}")
        obj = cls(state["eps"], state["energy_min_gev"], state["energy_max_gev"])
        obj.mean = torch.as_tensor(state["mean"], dtype=torch.float32)
        obj.std = torch.as_tensor(state["std"], dtype=torch.float32)
        obj.hit_rate = torch.as_tensor(state["hit_rate"], dtype=torch.float32)
        obj.fitted = bool(state["fitted"])
        return obj

    # ------------------------------------------------------------------ transforms (torch)
    def condition(self, energy_gev: torch.Tensor) -> torch.Tensor:
        """Condition value in [0, 1] (log-scaled incident energy), shape (B, 1)."""
        lo, hi = math.log(self.energy_min_gev), math.log(self.energy_max_gev)
        return (torch.log(energy_gev.reshape(-1, 1)) - lo) / (hi - lo)

    def forward(self, cells_mev: torch.Tensor, energy_gev: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 504) MeV cells -> (normalised values w (0 where empty), hit mask m)."""
        mean, std = self.mean.to(cells_mev.device), self.std.to(cells_mev.device)
        hit = (cells_mev > 0).to(cells_mev.dtype)
        u = cells_mev / (1000.0 * energy_gev.reshape(-1, 1))
        v = torch.log1p(u.clamp_min(0) / self.eps)
        return (v - mean) / std * hit, hit

    def inverse(self, w: torch.Tensor, hit: torch.Tensor, energy_gev: torch.Tensor,
                inplace: bool = False) -> torch.Tensor:
        """(normalised values, hit mask) -> (B, 504) MeV cells, exactly zero where not hit.

        ``inplace=True`` (sampling without gradients) computes in the memory of ``w`` with
        fewer passes (``exp(v) - 1`` instead of ``expm1``: the same to float rounding)."""
        mean, std = self.mean.to(w.device), self.std.to(w.device)
        scale = self.eps * 1000.0 * energy_gev.reshape(-1, 1)
        if inplace:
            v = w.mul_(std).add_(mean).clamp_(0.0, 30.0)
            return v.exp_().sub_(1.0).mul_(hit).mul_(scale)
        v = (w * std + mean).clamp(0.0, 30.0)
        u = self.eps * torch.expm1(v)
        return u * (1000.0 * energy_gev.reshape(-1, 1)) * hit
