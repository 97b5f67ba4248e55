"""Physics evaluation of generated showers against a reference sample, each figure beside its floor.

:func:`evaluate` scores the generated sample against the reference and, with the same code and
the same number of showers, an *independent* reference sample against the reference: the
floor, i.e. what a perfect generator would get at this sample size.  The independent sample is
a second file (``reference_2``) or, by default, the second half of the reference file (the first
half is then the reference).

Figures (JSON report, ``report.json``):

- per observable (:mod:`calo.observables`): separation power on CaloChallenge's fixed binning
  (``separation_power``; :data:`BINNING` says which binning each observable uses), this
  package's earlier quantile-binned variant (``separation_power_quantile``), KS statistic,
  1-Wasserstein distance, means and standard deviations; each with ``..._floor``;
- FPD and KPD (JetNet's definitions, x 1e3, value and error) on CaloChallenge's 16 high-level
  features, called as CaloChallenge calls them (``min_samples=10000``, ``batch_size=10000``);
- CaloChallenge's classifier (calibrated AUC and JSD, mean and sd over seeds) on low-level
  (log10 E_inc, 100 x cells / E_inc) and high-level inputs;
- the empty-cell fraction of both samples.

With ``checkpoint`` (or a generated file that records its checkpoint's training rows) the
reference files must not share rows with the training data (physml_core.provenance); an
overlap raises :class:`~physml_core.provenance.ProvenanceOverlapError` (one line, exit 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physml_core.config import save_json, to_dict
from physml_core.hdf5 import H5Reader
from physml_core.logging import get_logger
from physml_core.provenance import Provenance, check_disjoint, from_attrs, from_records

from .artifacts import load_training_provenance
from .data import CALO_SCHEMA, LAYER_KEYS, count_showers, read_showers
from .geometry import LAYERS
from .metrics import (
    ClassifierConfig,
    calochallenge_edges,
    classifier_test,
    fpd,
    frechet_distance_standardised,
    kernel_distance_standardised,
    kpd,
    ks_statistic,
    separation_power,
    separation_power_quantile,
    wasserstein1,
)
from .observables import high_level_features, high_level_features_cc, shower_observables
from .preprocessing import flatten_cells

__all__ = ["BINNING", "EvaluateConfig", "evaluate", "low_level_features", "observable_edges",
           "score"]

log = get_logger("calo.evaluate")

#: Separation-power binning per observable.  CaloChallenge's kinds (``calochallenge_edges``):
#: E_tot/E_inc, layer energies (log bins from ``min_energy_mev``), centres, widths.  Observables
#: that CaloChallenge does not histogram get fixed linear edges chosen here (lo, hi, bins).
BINNING: dict[str, str | tuple[float, float, int]] = {
    "E_tot_over_E_inc": "etot_over_einc",
    "E_0": "layer_energy", "E_1": "layer_energy", "E_2": "layer_energy", "E_tot": "layer_energy",
    **{f"centre_{a}_{i}": "centre" for a in "xy" for i in range(3)},
    **{f"width_{a}_{i}": "width" for a in "xy" for i in range(3)},
    **{f"f_{i}": (0.0, 1.0, 100) for i in range(3)},
    **{f"occupancy_{i}": (0.0, 1.0, 100) for i in range(3)},
    **{f"E_ratio_{i}": (0.0, 1.0, 100) for i in range(3)},
    "depth": (-0.5, 2.5, 3),
    "shower_depth": (0.0, 2.0, 100),
    "shower_depth_width": (0.0, 1.0, 100),
}


@dataclass
class EvaluateConfig:
    """``calo evaluate``: compare ``generated`` with ``reference`` (both CaloGAN files).

    ``reference_2``: an independent reference sample for the floor (default: the second half of
    ``reference``).  ``max_showers``: at most this many showers per sample (all samples are cut
    to one common size).  ``checkpoint``: refuse references that share rows with its training
    data.  ``classifier`` turns the (slowest) classifier tests on/off; their recipe is
    ``classifier_config`` (CaloChallenge's, 5 seeds, by default).  ``min_energy_mev``: lower edge
    of the log-binned layer-energy histograms (CaloChallenge: the minimal readout).
    """

    reference: str
    generated: str
    output: str
    reference_2: str | None = None
    checkpoint: str | None = None
    max_showers: int = 20000
    classifier: bool = True
    classifier_config: ClassifierConfig = field(default_factory=ClassifierConfig)
    fpd_min_samples: int = 10000
    kpd_batch_size: int = 10000
    min_energy_mev: float = 1.0
    plots: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_showers < 10:
            raise ValueError(f"max_showers must be at least 10, got {self.max_showers}")
        if not self.min_energy_mev > 0:
            raise ValueError(f"min_energy_mev must be positive, got {self.min_energy_mev}")
        if isinstance(self.classifier_config, dict):
            self.classifier_config = ClassifierConfig(**self.classifier_config)


def low_level_features(showers: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 505): log10(E_inc / MeV) and 100 x the 504 cell energies / E_inc (CaloChallenge's
    ``prepare_low_data_for_classifier``)."""
    e_mev = 1000.0 * np.asarray(showers["energy"], np.float64).reshape(-1, 1)
    return np.concatenate([np.log10(e_mev), 100.0 * flatten_cells(showers) / e_mev], axis=1)


def observable_edges(key: str, reference: np.ndarray, min_energy_mev: float) -> np.ndarray:
    """Histogram edges for the separation power of observable ``key`` (:data:`BINNING`);
    ``reference`` (N,) sets the upper end of the log-binned energies, ``min_energy_mev`` the
    lower."""
    spec = BINNING.get(key)
    if spec is None:
        raise ValueError(f"no separation-power binning for observable {key!r}")
    if isinstance(spec, str):
        return calochallenge_edges(spec, reference, min_energy_mev)
    lo, hi, bins = spec
    return np.linspace(lo, hi, bins + 1)


def _nan_to_none(value: float) -> float | None:
    return None if not math.isfinite(value) else value


def score(ref: dict[str, np.ndarray], gen: dict[str, np.ndarray], config: EvaluateConfig
          ) -> dict[str, Any]:
    """All figures of ``gen`` against ``ref`` (dicts of CaloGAN arrays of equal length)."""
    obs_ref, obs_gen = shower_observables(ref), shower_observables(gen)
    observables: dict[str, dict[str, Any]] = {}
    for key in obs_ref:
        a, b = obs_ref[key], obs_gen[key]
        edges = observable_edges(key, a, config.min_energy_mev)
        observables[key] = {
            "separation_power": _nan_to_none(separation_power(a, b, edges)),
            "separation_power_quantile": separation_power_quantile(a, b),
            "ks": ks_statistic(a, b), "w1": wasserstein1(a, b),
            "mean_reference": float(a.mean()), "mean_generated": float(b.mean()),
            "std_reference": float(a.std()), "std_generated": float(b.std()),
        }
    cc_ref, cc_gen = high_level_features_cc(ref), high_level_features_cc(gen)
    f_val, f_err = fpd(cc_ref, cc_gen, min_samples=config.fpd_min_samples)
    k_val, k_err = kpd(cc_ref, cc_gen, batch_size=config.kpd_batch_size)
    hl_ref, hl_gen = high_level_features(ref), high_level_features(gen)
    seps = [v["separation_power"] for v in observables.values()
            if v["separation_power"] is not None]
    out: dict[str, Any] = {
        "empty_fraction_reference": float((flatten_cells(ref) == 0).mean()),
        "empty_fraction_generated": float((flatten_cells(gen) == 0).mean()),
        "fpd_x1e3": 1e3 * f_val, "fpd_x1e3_error": 1e3 * f_err,
        "kpd_x1e3": 1e3 * k_val, "kpd_x1e3_error": 1e3 * k_err,
        "fpd_standardised_x1e3": 1e3 * frechet_distance_standardised(hl_ref, hl_gen),
        "kpd_standardised_x1e3": 1e3 * kernel_distance_standardised(hl_ref, hl_gen,
                                                                    seed=config.seed),
        "mean_separation_power": float(np.mean(seps)) if seps else None,
        "observables": observables,
    }
    if config.classifier:
        cls = config.classifier_config
        out["classifier_high_level"] = classifier_test(cc_ref, cc_gen, cls)
        out["classifier_low_level"] = classifier_test(low_level_features(ref),
                                                      low_level_features(gen), cls)
    return out


def _file_provenance(path: str) -> tuple[list[Provenance] | None, list[Provenance] | None]:
    """(provenance of the file's rows, training provenance recorded by a generated file)."""
    with H5Reader(path, CALO_SCHEMA) as reader:
        attrs = reader.attrs
    train = attrs.get("train_provenance")
    return from_attrs(attrs), (from_records(train) if isinstance(train, list) else None)


def _held_out_check(config: EvaluateConfig) -> dict[str, Any]:
    """Refuse references that share rows with the training data (or with each other)."""
    used: list[Provenance] | None = None
    sources = []
    if config.checkpoint is not None:
        used = load_training_provenance(config.checkpoint)
        sources.append(f"checkpoint {config.checkpoint}")
    _, gen_train = _file_provenance(config.generated)
    if gen_train is not None:
        used = (used or []) + gen_train
        sources.append(f"generated file {config.generated}")
    refs = [(config.reference, _file_provenance(config.reference)[0])]
    if config.reference_2 is not None:
        refs.append((config.reference_2, _file_provenance(config.reference_2)[0]))
        if refs[0][1] is not None and refs[1][1] is not None:
            check_disjoint(refs[0][1], refs[1][1], f"reference_2 {config.reference_2} "
                           f"(it must be independent of reference {config.reference})")
    result: dict[str, Any] = {"training_rows_from": sources}
    if used is None:
        result["status"] = "not checked: no checkpoint or generated-file training provenance"
        return result
    for path, prov in refs:
        if prov is None:
            result["status"] = f"not checked: {path} records no provenance"
            log.warning("%s records no provenance: cannot check it is held out", path)
            return result
        check_disjoint(used, prov, f"reference {path}")
    result["status"] = "held out: no reference row is a training or validation row"
    return result


def evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Run the evaluation; writes ``report.json`` (and PNGs) to the ``output`` folder."""
    out_dir = Path(config.output)
    held_out = _held_out_check(config)
    keys = ["energy", *LAYER_KEYS]
    n_ref, n_gen = count_showers(config.reference), count_showers(config.generated)
    if config.reference_2 is None:
        n = min(n_ref // 2, n_gen, config.max_showers)
        floor_source = f"rows {n}:{2 * n} of the reference file (first {n} rows are the reference)"
    else:
        n = min(n_ref, count_showers(config.reference_2), n_gen, config.max_showers)
        floor_source = f"first {n} rows of {config.reference_2}"
    if n < 10:
        raise ValueError(f"need at least 10 showers per sample (reference {n_ref} rows, of which "
                         f"half are the floor sample without reference_2; generated {n_gen})")
    ref = read_showers(config.reference, keys, 0, n)
    ref2 = (read_showers(config.reference, keys, n, 2 * n) if config.reference_2 is None
            else read_showers(config.reference_2, keys, 0, n))
    gen = read_showers(config.generated, keys, 0, n)
    log.info("scoring %d generated showers against %d reference showers", n, n)
    figures = score(ref, gen, config)
    log.info("scoring the independent reference sample (floor)")
    floor = score(ref, ref2, config)
    report: dict[str, Any] = {
        "config": to_dict(config),
        "n_showers": n,
        "floor_sample": floor_source,
        "held_out_check": held_out,
        **_merge(figures, floor),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.plots:
        report["plots"] = _plots(out_dir, shower_observables(ref), shower_observables(gen), ref,
                                 gen)
    save_json(out_dir / "report.json", report)
    return report


def _merge(figures: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """``figures`` with each figure's floor beside it (key + ``_floor``)."""
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if key == "observables":
            out[key] = {
                name: {**entry,
                       **{f"{k}_floor": floor[key][name][k] for k in
                          ("separation_power", "separation_power_quantile", "ks", "w1")}}
                for name, entry in value.items()}
        elif key.startswith("empty_fraction"):
            out[key] = value
            if key.endswith("generated"):
                out["empty_fraction_independent"] = floor[key]
        elif isinstance(value, dict):
            out[key] = {**value, "floor": {k: v for k, v in floor[key].items() if k != "runs"}}
        else:
            out[key] = value
            out[f"{key}_floor"] = floor[key]
    return out


def _plots(out_dir: Path, obs_ref: dict[str, np.ndarray], obs_gen: dict[str, np.ndarray],
           ref: dict[str, np.ndarray], gen: dict[str, np.ndarray]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    keys = list(obs_ref)
    cols = 6
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows))
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

