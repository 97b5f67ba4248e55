"""Compare simulated CaloGAN files with the Geant4 e+ figures of the CaloGAN authors.

Usage::

    python packages/calo/experiments/geant4_comparison.py LABEL=FILE.h5 [LABEL=FILE.h5 ...] \\
        -o packages/calo/docs [--max-showers 20000] [--table]

For each file it measures, per layer, the occupancy (fraction of cells > 0, CaloGAN's
"sparsity"), the hit-cell energy spectrum and its fraction below 1 MeV, the mean energy of
two layer-1 edge cells relative to the centre cell, and the shower-shape medians (f_0, f_2, shower depth s_d, lateral widths
along x as CaloGAN's analysis takes them); it writes ``sim_vs_geant4.png`` (spectra, occupancy,
shapes) and ``sim_mean_images.png`` (mean image per layer, log colour scale as in CaloGAN's
notebook) to ``-o`` and prints a Markdown table and JSON.  ``--table`` also simulates fixed
energies with the default ``SimConfig`` to give E_0 / E_tot at 1, 10, 50 and 100 GeV.

The Geant4 values (``GEANT4_READ_OFF``) were read by eye off the Geant4 e+ histograms and
mean images drawn by hep-lbdl/CaloGAN's ``analysis/paper-plots.ipynb`` (commit 203a024, stored
notebook outputs; the figures of arXiv 1705.02355 / 1712.10321): they are approximate (about
+-10 % or one histogram bin), and none of them is stated as a number in the papers' text.  No
per-cell energy spectrum of Geant4 is drawn there, so the spectra have no Geant4 curve; the
mean images and occupancies constrain them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from calo.data import read_showers
from calo.geometry import LAYERS
from calo.observables import layer_energies, shower_observables
from calo.sim import SimConfig, simulate_showers

#: Geant4 e+ (CaloGAN sample), read by eye off the plots (see the module docstring).
GEANT4_READ_OFF: dict[str, float] = {
    "occupancy_0_mean": 0.45,  # histogram 0.1-0.7, peak 0.5-0.55
    "occupancy_1_mean": 0.85,  # peak 0.90-0.95, tail down to 0.3
    "occupancy_2_mean": 0.25,  # flat-ish 0-0.45, falling to 0.55
    "width_x_0_peak_mm": 15.0,  # log histogram, peak 13-17 mm
    "width_x_1_peak_mm": 30.0,  # narrow peak 28-32 mm
    "width_x_2_peak_mm": 60.0,  # broad peak 40-80 mm
    "shower_depth_peak": 0.84,  # s_d, peak 0.80-0.87
    "f_0_peak": 0.17,  # broad, 0.05-0.4
    "f_2_peak": 1.5e-3,  # log histogram, peak 1e-3 - 3e-3, range 1e-4 - 3e-2
    # Layer-1 mean image (log colour scale 0.74 .. 2050 MeV, colours inverted through viridis):
    # only ratios are used, because its absolute scale (centre cells about 2 GeV, about 10 GeV in
    # the whole layer) does not fit the energy-fraction histograms (f_1 about 0.8 of 1-100 GeV).
    "mean_cell_1_corner_over_centre": 3.6e-4,  # cell (0, 0) / cell (5, 5)
    "mean_cell_1_edge_mid_over_centre": 1.3e-3,  # cell (0, 5) / cell (5, 5)
}

#: Measured figure -> the Geant4 read-off it is compared with (medians against histogram peaks).
MATCH = {
    "width_x_0_median_mm": "width_x_0_peak_mm",
    "width_x_1_median_mm": "width_x_1_peak_mm",
    "width_x_2_median_mm": "width_x_2_peak_mm",
    "shower_depth_median": "shower_depth_peak",
    "f_0_median": "f_0_peak",
    "f_2_median": "f_2_peak",
}

#: Layer-1 cells whose mean energy is compared with the centre cell (5, 5): (row, column).
EDGE_CELLS = {
    "mean_cell_1_corner_over_centre": (0, 0),
    "mean_cell_1_edge_mid_over_centre": (0, 5),
}


def measure(showers: dict[str, np.ndarray]) -> dict[str, float]:
    """Summary figures of one sample (keys as in ``GEANT4_READ_OFF`` plus hit fractions)."""
    n = len(showers["energy"])
    obs = shower_observables(showers)
    energies = layer_energies(showers)
    fractions = energies / np.maximum(energies.sum(1, keepdims=True), 1e-12)
    out: dict[str, float] = {"showers": float(n)}
    for i, layer in enumerate(LAYERS):
        image = showers[layer.name].reshape(n, -1)
        hits = image[image > 0]
        out[f"occupancy_{i}_mean"] = float((image > 0).mean())
        out[f"hit_below_1mev_{i}"] = float((hits < 1.0).mean())
        out[f"hit_below_0.1mev_{i}"] = float((hits < 0.1).mean())
        out[f"hit_median_mev_{i}"] = float(np.median(hits))
        width = obs[f"width_x_{i}"]
        out[f"width_x_{i}_median_mm"] = float(np.median(width[np.isfinite(width) & (width > 0)]))
    out["shower_depth_median"] = float(np.median(obs["shower_depth"]))
    out["f_0_median"] = float(np.median(fractions[:, 0]))
    out["f_2_median"] = float(np.median(fractions[:, 2]))
    ratio = energies.sum(1) / (1000.0 * showers["energy"][:, 0])
    out["etot_over_einc_mean"], out["etot_over_einc_sd"] = float(ratio.mean()), float(ratio.std())
    mean_image = showers["layer_1"].mean(0, dtype=np.float64)
    for key, (row, col) in EDGE_CELLS.items():
        out[key] = float(mean_image[row, col] / mean_image[5, 5])
    return out


def plot_comparison(samples: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    """Hit-cell spectra, occupancy and shower shapes of every sample, Geant4 read-offs marked."""
    fig, axes = plt.subplots(3, 3, figsize=(13, 11))
    bins = np.logspace(-4, 4, 81)
    for label, showers in samples.items():
        n = len(showers["energy"])
        obs = shower_observables(showers)
        energies = layer_energies(showers)
        fractions = energies / np.maximum(energies.sum(1, keepdims=True), 1e-12)
        for i, layer in enumerate(LAYERS):
            image = showers[layer.name].reshape(n, -1)
            hits = image[image > 0]
            axes[0, i].hist(hits, bins=bins, histtype="step", density=True,
                            label=f"{label}: {np.mean(hits < 1):.0%} < 1 MeV")
            axes[1, i].hist((image > 0).mean(1), bins=np.linspace(0, 1, 21), histtype="step",
                            density=True, label=label)
        shapes = [("shower_depth", np.linspace(0.4, 2, 81), False),
                  ("f_2", np.logspace(-5, 0, 81), True),
                  ("width_x_2", np.logspace(0, 3, 81), True)]
        for j, (name, b, logx) in enumerate(shapes):
            values = fractions[:, 2] if name == "f_2" else obs[name]
            axes[2, j].hist(values[np.isfinite(values)], bins=b, histtype="step", density=True,
                            label=label)
            if logx:
                axes[2, j].set_xscale("log")
    for i in range(3):
        axes[0, i].set_xscale("log")
        axes[0, i].set_yscale("log")
        axes[0, i].axvline(1.0, color="grey", lw=0.8)
        axes[0, i].set_xlabel(f"hit-cell energy, layer {i} (MeV)")
        axes[0, i].legend(fontsize=7)
        axes[1, i].axvline(GEANT4_READ_OFF[f"occupancy_{i}_mean"], color="k", ls="--",
                           label="Geant4 mean (read off)")
        axes[1, i].set_xlabel(f"occupancy (fraction of cells > 0), layer {i}")
        axes[1, i].legend(fontsize=7)
    for j, key in enumerate(("shower_depth_peak", "f_2_peak", "width_x_2_peak_mm")):
        axes[2, j].axvline(GEANT4_READ_OFF[key], color="k", ls="--", label="Geant4 peak (read off)")
        axes[2, j].legend(fontsize=7)
    axes[2, 0].set_xlabel("shower depth s_d")
    axes[2, 1].set_xlabel("f_2 = E_2 / E_tot")
    axes[2, 2].set_xlabel("lateral width along x, layer 2 (mm)")
    fig.suptitle("calo.sim (e+, 1-100 GeV) vs Geant4 figures of CaloGAN (dashed: read off by eye)")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def plot_mean_images(showers: dict[str, np.ndarray], label: str, path: Path) -> None:
    """Mean cell energy per layer on a log colour scale, as CaloGAN's notebook draws Geant4's."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for i, layer in enumerate(LAYERS):
        mean = showers[layer.name].mean(0)
        im = axes[i].imshow(mean, aspect=float(mean.shape[1]) / mean.shape[0],
                            interpolation="nearest",
                            norm=LogNorm(max(mean.min(), 1e-3), mean.max()))
        fig.colorbar(im, ax=axes[i], label="mean energy (MeV)")
        axes[i].set_title(f"{label}: layer {i}")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def layer0_fraction_table(n: int = 2000) -> dict[str, float]:
    """E_0 / E_tot (mean) at 1, 10, 50, 100 GeV with the default simulator (seed 7)."""
    table = {}
    for energy in (1.0, 10.0, 50.0, 100.0):
        s = simulate_showers(n, SimConfig(seed=7), energies_gev=np.full(n, energy))
        e = layer_energies(s)
        table[f"{energy:g}"] = float((e[:, 0] / e.sum(1)).mean())
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="LABEL=FILE.h5 (CaloGAN HDF5)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--max-showers", type=int, default=20000)
    parser.add_argument("--table", action="store_true", help="also E_0/E_tot at fixed energies")
    args = parser.parse_args()
    samples: dict[str, dict[str, np.ndarray]] = {}
    for item in args.files:
        label, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"give files as LABEL=FILE.h5, got {item!r}")
        showers = read_showers(path)
        samples[label] = {k: v[: args.max_showers] for k, v in showers.items()}
    args.output.mkdir(parents=True, exist_ok=True)
    results = {label: measure(showers) for label, showers in samples.items()}
    plot_comparison(samples, args.output / "sim_vs_geant4.png")
    first = next(iter(samples))
    plot_mean_images(samples[first], first, args.output / "sim_mean_images.png")
    report: dict[str, object] = {"geant4_read_off": GEANT4_READ_OFF, "samples": results}
    if args.table:
        report["layer0_fraction_by_energy"] = layer0_fraction_table()
    print(json.dumps(report, indent=1))
    print("\n| figure | Geant4 (read off) | " + " | ".join(results) + " |")
    print("| --- | --- |" + " --- |" * len(results))
    for key in next(iter(results.values())):
        g4 = GEANT4_READ_OFF.get(MATCH.get(key, key))
        cells = " | ".join(f"{r[key]:.4g}" for r in results.values())
        print(f"| {key} | {'' if g4 is None else f'{g4:g}'} | {cells} |")

if __name__ == "__main__":
    main()
