"""CaloGAN shower-shape observables (Paganini et al., PRD 97 014021, section IV).

All functions take the CaloGAN arrays (cell energies in MeV, incident energy in GeV) and return
one value per shower, shape (N,).  :func:`shower_observables` collects them in a dict.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .geometry import LAYERS, cell_centres_mm

__all__ = [
    "e_ratio",
    "high_level_features",
    "lateral_width",
    "layer_energies",
    "shower_observables",
    "sparsity",
]


def layer_energies(showers: Mapping[str, np.ndarray]) -> np.ndarray:
    """Energy per layer in MeV, shape (N, 3)."""
    return np.stack([np.asarray(showers[ly.name], np.float64).sum(axis=(1, 2)) for ly in LAYERS], 1)


def sparsity(image: np.ndarray, threshold_mev: float = 0.0) -> np.ndarray:
    """Fraction of cells above ``threshold_mev`` (the CaloGAN "sparsity"), image (N, r, c)."""
    return (np.asarray(image) > threshold_mev).reshape(len(image), -1).mean(axis=1)


def lateral_width(image: np.ndarray, layer_index: int) -> np.ndarray:
    """Energy-weighted width along x, sqrt(<x^2> - <x>^2), in mm (0 for an empty layer)."""
    x, _ = cell_centres_mm(LAYERS[layer_index])
    profile = np.asarray(image, np.float64).sum(axis=2)  # (N, rows)
    total = profile.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    mean = profile @ x / safe
    second = profile @ (x * x) / safe
    return np.where(total > 0, np.sqrt(np.maximum(second - mean * mean, 0.0)), 0.0)


def lateral_width_y(image: np.ndarray, layer_index: int) -> np.ndarray:
    """Energy-weighted width along y in mm (0 for an empty layer)."""
    _, y = cell_centres_mm(LAYERS[layer_index])
    profile = np.asarray(image, np.float64).sum(axis=1)  # (N, cols)
    total = profile.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)
    mean = profile @ y / safe
    second = profile @ (y * y) / safe
    return np.where(total > 0, np.sqrt(np.maximum(second - mean * mean, 0.0)), 0.0)


def e_ratio(image: np.ndarray) -> np.ndarray:
    """(E_max1 - E_max2) / (E_max1 + E_max2) of the two hottest cells (0 if both are empty)."""
    flat = np.asarray(image, np.float64).reshape(len(image), -1)
    top2 = -np.partition(-flat, 1, axis=1)[:, :2]
    denom = top2[:, 0] + top2[:, 1]
    return np.where(denom > 0, (top2[:, 0] - top2[:, 1]) / np.where(denom > 0, denom, 1.0), 0.0)


def shower_observables(showers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All CaloGAN shower-shape observables, each of shape (N,).

    Keys: ``E_0 E_1 E_2 E_tot`` (MeV), ``f_0 f_1 f_2`` (E_i / E_tot), ``E_tot_over_E_inc``,
    ``sparsity_0..2``, ``depth`` (deepest non-empty layer, 0..2, -1 if empty), ``shower_depth``
    ((E_1 + 2 E_2) / E_tot), ``shower_depth_width``, ``width_0..2`` (lateral width along x in
    mm; for layer 0 whose x cells are 160 mm wide the y width is used), ``E_ratio_0..2``.
    """
    energies = layer_energies(showers)
    e_tot = energies.sum(axis=1)
    safe = np.where(e_tot > 0, e_tot, 1.0)
    obs: dict[str, np.ndarray] = {}
    for i in range(3):
        obs[f"E_{i}"] = energies[:, i]
    obs["E_tot"] = e_tot
    for i in range(3):
        obs[f"f_{i}"] = energies[:, i] / safe
    e_inc_mev = 1000.0 * np.asarray(showers["energy"], np.float64).reshape(-1)
    obs["E_tot_over_E_inc"] = e_tot / e_inc_mev
    for i, layer in enumerate(LAYERS):
        obs[f"sparsity_{i}"] = sparsity(showers[layer.name])
    nonempty = energies > 0
    obs["depth"] = np.where(nonempty.any(axis=1), 2 - np.argmax(nonempty[:, ::-1], axis=1), -1)
    lam = (energies[:, 1] + 2.0 * energies[:, 2]) / safe
    obs["shower_depth"] = lam
    second = (energies[:, 1] + 4.0 * energies[:, 2]) / safe
    obs["shower_depth_width"] = np.sqrt(np.maximum(second - lam * lam, 0.0))
    obs["width_0"] = lateral_width_y(showers["layer_0"], 0)
    obs["width_1"] = lateral_width(showers["layer_1"], 1)
    obs["width_2"] = lateral_width(showers["layer_2"], 2)
    for i, layer in enumerate(LAYERS):
        obs[f"E_ratio_{i}"] = e_ratio(showers[layer.name])
    return {k: np.asarray(v, np.float64) for k, v in obs.items()}


#: Observables fed to the high-level classifier and to FPD/KPD.
HIGH_LEVEL_KEYS = (
    "E_0", "E_1", "E_2", "E_tot_over_E_inc", "f_0", "f_1", "f_2", "sparsity_0", "sparsity_1",
    "sparsity_2", "shower_depth", "shower_depth_width", "width_0", "width_1", "width_2",
    "E_ratio_0", "E_ratio_1", "E_ratio_2",
)


def high_level_features(showers: Mapping[str, np.ndarray]) -> np.ndarray:
    """High-level feature matrix (N, 19): log10 E_inc, log10(1 + E_i) and the shape observables."""
    obs = shower_observables(showers)
    cols = [np.log10(1000.0 * np.asarray(showers["energy"], np.float64).reshape(-1))]
    for key in HIGH_LEVEL_KEYS:
        value = obs[key]
        cols.append(np.log10(1.0 + value) if key.startswith("E_") and key[2:].isdigit() else value)
    return np.stack(cols, axis=1)


__all__ += ["HIGH_LEVEL_KEYS", "lateral_width_y"]
