"""Shower-shape observables: CaloGAN's analysis (Paganini et al., PRD 97 014021, section IV;
``classification/calodata/shower_shapes.py`` of the CaloGAN code) and CaloChallenge's high-level
features (``HighLevelFeatures.py``: centres of energy and widths in both transverse axes).

All functions take the CaloGAN arrays (cell energies in MeV, incident energy in GeV) and return
one value per shower, shape (N,).  :func:`shower_observables` collects them in a dict, with one
name per quantity:

- ``occupancy_i``: fraction of the cells of layer i with energy > 0.  CaloGAN's analysis calls
  this "sparsity"; CaloChallenge calls ``1 - occupancy`` "sparsity".  Neither name is used here;
  the evaluation report gives the *empty fraction* ``1 - occupancy`` of all cells.
- ``centre_x_i``, ``centre_y_i``: energy-weighted mean cell-centre position (mm) along x (the
  rows of ``layer_i``) and y (the columns).
- ``width_x_i``, ``width_y_i``: energy-weighted standard deviation of the cell-centre position
  (mm).  ``width_x_i`` is CaloGAN's "lateral width" of layer i, which its analysis takes along
  the rows (3 rows of 160 mm for layer 0, 12 rows of 40 mm for layers 1 and 2).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .geometry import LAYERS, cell_centres_mm

__all__ = [
    "HIGH_LEVEL_KEYS",
    "centres_and_widths",
    "e_ratio",
    "high_level_features",
    "high_level_features_cc",
    "layer_energies",
    "occupancy",
    "shower_observables",
]


def layer_energies(showers: Mapping[str, np.ndarray]) -> np.ndarray:
    """Energy per layer in MeV, shape (N, 3)."""
    return np.stack([np.asarray(showers[ly.name], np.float64).sum(axis=(1, 2)) for ly in LAYERS], 1)


def occupancy(image: np.ndarray, threshold_mev: float = 0.0) -> np.ndarray:
    """Fraction of cells above ``threshold_mev`` of an image (N, r, c) (CaloGAN's "sparsity")."""
    return (np.asarray(image) > threshold_mev).reshape(len(image), -1).mean(axis=1)


def centres_and_widths(image: np.ndarray, layer_index: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre of energy and width along x and y in mm, CaloChallenge's formulas.

    ``c = sum(x E) / (sum E + 1e-16)``, ``w = sqrt(max(sum(x^2 E) / (sum E + 1e-16) - c^2, 0))``
    with x the cell-centre coordinate; an empty layer gives 0.  Returns
    ``(centre_x, centre_y, width_x, width_y)``, each (N,).
    """
    x, y = cell_centres_mm(LAYERS[layer_index])
    img = np.asarray(image, np.float64)
    total = img.sum(axis=(1, 2)) + 1e-16
    px, py = img.sum(axis=2), img.sum(axis=1)  # profiles along x (rows) and y (columns)
    cx, cy = px @ x / total, py @ y / total
    wx = np.sqrt(np.clip(px @ (x * x) / total - cx * cx, 0.0, None))
    wy = np.sqrt(np.clip(py @ (y * y) / total - cy * cy, 0.0, None))
    return cx, cy, wx, wy


def e_ratio(image: np.ndarray) -> np.ndarray:
    """(E_max1 - E_max2) / (E_max1 + E_max2 + 1e-7) of the two hottest cells (CaloGAN)."""
    flat = np.asarray(image, np.float64).reshape(len(image), -1)
    top2 = -np.partition(-flat, 1, axis=1)[:, :2]
    return (top2[:, 0] - top2[:, 1]) / (top2[:, 0] + top2[:, 1] + 1e-7)


def shower_observables(showers: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CaloGAN's shower shapes plus CaloChallenge's centres and widths, each of shape (N,).

    Keys: ``E_0 E_1 E_2 E_tot`` (MeV), ``f_0 f_1 f_2`` (E_i / E_tot), ``E_tot_over_E_inc``,
    ``occupancy_0..2``, ``depth`` (deepest layer with energy, CaloGAN: 2, else 1, else 0),
    ``shower_depth`` ((E_1 + 2 E_2) / E_tot) and ``shower_depth_width`` (CaloGAN, with its
    1e-9 MeV guard), ``centre_x_i centre_y_i width_x_i width_y_i`` (mm), ``E_ratio_0..2``.
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
        obs[f"occupancy_{i}"] = occupancy(showers[layer.name])
    obs["depth"] = np.where(energies[:, 2] != 0, 2, np.where(energies[:, 1] != 0, 1, 0))
    lam = (energies[:, 1] + 2.0 * energies[:, 2]) / (e_tot + 1e-9)
    lam2 = (energies[:, 1] + 4.0 * energies[:, 2]) / (e_tot + 1e-9)
    obs["shower_depth"] = lam
    obs["shower_depth_width"] = np.sqrt(np.maximum(lam2 - lam * lam, 0.0))
    for i, layer in enumerate(LAYERS):
        cx, cy, wx, wy = centres_and_widths(showers[layer.name], i)
        obs[f"centre_x_{i}"], obs[f"centre_y_{i}"] = cx, cy
        obs[f"width_x_{i}"], obs[f"width_y_{i}"] = wx, wy
    for i, layer in enumerate(LAYERS):
        obs[f"E_ratio_{i}"] = e_ratio(showers[layer.name])
    return {k: np.asarray(v, np.float64) for k, v in obs.items()}


#: CaloGAN observables fed to this package's earlier FPD/KPD/classifier variants.
HIGH_LEVEL_KEYS = (
    "E_0", "E_1", "E_2", "E_tot_over_E_inc", "f_0", "f_1", "f_2", "occupancy_0", "occupancy_1",
    "occupancy_2", "shower_depth", "shower_depth_width", "width_x_0", "width_x_1", "width_x_2",
    "E_ratio_0", "E_ratio_1", "E_ratio_2",
)


def high_level_features(showers: Mapping[str, np.ndarray]) -> np.ndarray:
    """CaloGAN feature matrix (N, 19): log10 E_inc, log10(1 + E_i) and the shape observables
    (inputs of this package's earlier metric variants)."""
    obs = shower_observables(showers)
    cols = [np.log10(1000.0 * np.asarray(showers["energy"], np.float64).reshape(-1))]
    for key in HIGH_LEVEL_KEYS:
        value = obs[key]
        cols.append(np.log10(1.0 + value) if key.startswith("E_") and key[2:].isdigit() else value)
    return np.stack(cols, axis=1)


def high_level_features_cc(showers: Mapping[str, np.ndarray]) -> np.ndarray:
    """CaloChallenge's high-level features (N, 16), as its classifier and FPD/KPD take them.

    ``log10(E_inc / MeV)``, ``log10(E_i / MeV + 1e-8)`` for the 3 layers, then for all layers
    the centres along x, along y, the widths along x, along y, each in mm / 100
    (``prepare_high_data_for_classifier`` of CaloChallenge's ``evaluate.py``).
    """
    energies = layer_energies(showers)
    e_inc = 1000.0 * np.asarray(showers["energy"], np.float64).reshape(-1, 1)
    per_layer = [centres_and_widths(showers[layer.name], i) for i, layer in enumerate(LAYERS)]
    blocks = [np.stack([p[k] for p in per_layer], axis=1) / 1e2 for k in range(4)]
    return np.concatenate([np.log10(e_inc), np.log10(energies + 1e-8), *blocks], axis=1)
