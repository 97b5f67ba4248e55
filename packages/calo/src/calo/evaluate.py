"""Physics evaluation of generated showers against a reference sample.

:func:`evaluate` computes, per CaloGAN shower-shape observable (:mod:`calo.observables`), the
CaloChallenge separation power, the KS statistic and the 1-Wasserstein distance; a classifier
AUC on high-level features and on low-level cells (log10 E_inc plus cell energies / E_inc);
FPD and KPD (x 1e3) on the high-level features; and writes a JSON report with PNG plots
(observable histograms, average shower per layer, reference vs generated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physml_core.config import save_json, to_dict
from physml_core.logging import get_logger

from .data import LAYER_KEYS, count_showers, read_showers
from .geometry import LAYERS
from .metrics import (
    classifier_auc,
    frechet_distance,
    kernel_distance,
    ks_statistic,
    separation_power,
    wasserstein1,
)
from .observables import high_level_features, shower_observables
from .preprocessing import flatten_cells

__all__ = ["EvaluateConfig", "evaluate", "low_level_features"]

log = get_logger("calo.evaluate")


@dataclass
class EvaluateConfig:
    """``calo evaluate``: compare ``generated`` with ``reference`` (both CaloGAN files).

    ``max_showers`` rows of each are used; ``classifier`` turns the (slowest) AUC tests on/off.
    """

    reference: str
    generated: str
    output: str
    max_showers: int = 20000
    classifier: bool = True
    plots: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_showers < 10:
            raise ValueError(f"max_showers must be at least 10, got {self.max_showers}")


def low_level_features(showers: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 505): log10(E_inc / MeV) and the 504 cell energies divided by E_inc (CaloChallenge)."""
    e_mev = 1000.0 * np.asarray(showers["energy"], np.float64).reshape(-1, 1)
    return np.concatenate([np.log10(e_mev), flatten_cells(showers) / e_mev], axis=1)


def evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Run the evaluation; writes ``report.json`` (and PNGs) to the ``output`` folder."""
    out_dir = Path(config.output)
    n_ref, n_gen = count_showers(config.reference), count_showers(config.generated)
    if n_ref < 10 or n_gen < 10:
        raise ValueError(f"need at least 10 showers in each file (reference {n_ref}, "
                         f"generated {n_gen})")
    keys = ["energy", *LAYER_KEYS]
    ref = read_showers(config.reference, keys, 0, min(n_ref, config.max_showers))
    gen = read_showers(config.generated, keys, 0, min(n_gen, config.max_showers))
    obs_ref, obs_gen = shower_observables(ref), shower_observables(gen)
    observables: dict[str, dict[str, Any]] = {}
    for key in obs_ref:
        a, b = obs_ref[key], obs_gen[key]
        observables[key] = {
            "separation_power": separation_power(a, b),
            "ks": ks_statistic(a, b),
            "w1": wasserstein1(a, b),
            "mean_reference": float(a.mean()), "mean_generated": float(b.mean()),
            "std_reference": float(a.std()), "std_generated": float(b.std()),
        }
    hl_ref, hl_gen = high_level_features(ref), high_level_features(gen)
    occ_ref = float((flatten_cells(ref) > 0).mean())
    occ_gen = float((flatten_cells(gen) > 0).mean())
    report: dict[str, Any] = {
        "config": to_dict(config),
        "n_reference": len(ref["energy"]),
        "n_generated": len(gen["energy"]),
        "sparsity_reference": 1.0 - occ_ref,
        "sparsity_generated": 1.0 - occ_gen,
        "sparsity_difference_pp": 100.0 * ((1.0 - occ_gen) - (1.0 - occ_ref)),
        "fpd_x1e3": 1e3 * frechet_distance(hl_ref, hl_gen),
        "kpd_x1e3": 1e3 * kernel_distance(hl_ref, hl_gen, seed=config.seed),
        "observables": observables,
        "mean_separation_power": float(np.mean([v["separation_power"]
                                                for v in observables.values()])),
    }
    if config.classifier:
        report["auc_high_level"] = classifier_auc(hl_ref, hl_gen, seed=config.seed)
        report["auc_low_level"] = classifier_auc(low_level_features(ref),
                                                 low_level_features(gen), seed=config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.plots:
        report["plots"] = _plots(out_dir, obs_ref, obs_gen, ref, gen)
    save_json(out_dir / "report.json", report)
    return report


def _plots(out_dir: Path, obs_ref: dict[str, np.ndarray], obs_gen: dict[str, np.ndarray],
           ref: dict[str, np.ndarray], gen: dict[str, np.ndarray]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    keys = list(obs_ref)
    cols = 5
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows))
    for ax, key in zip(axes.ravel(), keys, strict=False):
        a, b = obs_ref[key], obs_gen[key]
        lo, hi = np.quantile(a, [0.001, 0.999])
        if hi <= lo:
            lo, hi = min(a.min(), b.min()) - 0.5, max(a.max(), b.max()) + 0.5
        edges = np.linspace(lo, hi, 41)
        ax.hist(np.clip(a, lo, hi), edges, histtype="step", density=True, label="reference")
        ax.hist(np.clip(b, lo, hi), edges, histtype="step", density=True, label="generated")
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "observables.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    written.append(path.name)

    fig, axes = plt.subplots(2, 3, figsize=(13, 6))
    for j, layer in enumerate(LAYERS):
        mean_ref = ref[layer.name].mean(axis=0)
        mean_gen = gen[layer.name].mean(axis=0)
        vmax = max(mean_ref.max(), mean_gen.max(), 1e-6)
        for i, (image, label) in enumerate(((mean_ref, "reference"), (mean_gen, "generated"))):
            ax = axes[i, j]
            shown = ax.imshow(np.log10(1e-3 + image), aspect="auto", interpolation="nearest",
                              vmin=-3, vmax=math.log10(vmax + 1e-3), cmap="viridis")
            ax.set_title(f"{label} {layer.name} (log10 MeV)", fontsize=9)
            fig.colorbar(shown, ax=ax)
    fig.tight_layout()
    path = out_dir / "average_showers.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    written.append(path.name)
    return written
