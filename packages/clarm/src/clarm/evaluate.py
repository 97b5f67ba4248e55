"""Evaluation on held-out runs, streamed a block of runs at a time, every figure beside a
baseline.

* reconstruction and forecasting: MSE, SSIM (Wang et al. 2004, data range 1 of the normalised
  images) and the paper-comparable SSIM (:func:`clarm.metrics.ssim_paper`: scikit-image's
  definition with each real image's own range, as lanl/clarm computes it; the paper reports
  the E-phi channel 11) per module and per projection;
* baselines for the forecast modules: the mean training image of each module (no model) and
  persistence (the last observed module carried forward);
* forecast uncertainty: 90 % intervals for four E-phi summaries (centroid and rms widths,
  pixels) of every forecast module, and their coverage on the held-out runs (nominal 0.90),
  by one of :data:`UNCERTAINTY_METHODS`: ``conformal`` (default; split-conformal half-widths
  per module and summary from the mean forecast's errors on the LSTM's calibration runs, CVAE
  training runs the LSTM never trained on), ``calibration-residuals`` / ``train-residuals``
  (5-95 % quantiles of LSTM rollouts with Gaussian latent noise of the std of the
  teacher-forced one-step residuals on the calibration runs / on the LSTM's own training runs,
  the method before 2026-12-02);
* generation (conditional prior and the reference's min/max box): Frechet distance and
  improved precision / recall (k = 3) per module on the features of a small module
  classifier trained on training runs, with as many generated as real images, beside the
  real-vs-real floor (two halves of the held-out runs).

Memory: runs are read ``max(1, block_images // modules)`` at a time (whole runs, since a
forecast needs a run's observed modules and scores all of its modules) and the image metrics
are computed in chunks of at most 8 images of 64 x 64 (fewer at higher resolution), so the
peak does not grow with the number of held-out runs or modules beyond one block; only
per-(run, module) scalars and classifier features are kept.  The scores do not depend on the
block size (runs are scored independently and forecast samples are seeded per run); the
module classifier's minibatches, and so the generation figures, do.

Writes ``report.json`` and PNG plots into the output folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F

from physml_core.config import save_json
from physml_core.device import resolve_device, seed_everything
from physml_core.logging import get_logger
from physml_core.stats import frechet_distance

from .artifacts import (
    LoadedCVAE,
    LoadedLSTM,
    check_compatible,
    encode_runs,
    load_cvae,
    load_lstm,
    trained_on,
)
from .config import UNCERTAINTY_METHODS, require
from .data import PhaseSpaceFile, check_held_out, held_out_runs, trained_runs_in
from .forecast import forecast
from .generate import generate
from .metrics import (
    FRECHET_RIDGE,
    conformal_halfwidth,
    mse_per_channel,
    precision_recall,
    ssim_paper,
    ssim_per_channel,
)
from .models import ModuleClassifier
from .normalise import Normalizer
from .plots import plot_grid, plot_metric_curves

__all__ = ["E_PHI", "NOMINAL_COVERAGE", "UNCERTAINTY_METHODS", "EvalConfig",
           "calibration_runs_in", "evaluate", "train_module_classifier"]

log = get_logger(__name__)

#: Channel of the E-phi projection in the public layout (the paper's forecasting channel).
E_PHI = 11

#: Nominal coverage of the forecast intervals.
NOMINAL_COVERAGE = 0.90

#: Pixels per chunk of the image metrics (8 images of 64 x 64): their float64 intermediates
#: (4 MB each) stay below glibc's mmap threshold, so they are reused instead of being mapped
#: and page-faulted afresh (chunks of 64 images spent more CPU time in the kernel than in the
#: metrics).
_SCORE_PIXELS = 8 * 64 * 64

_SUMMARY_NAMES = ["e_phi_centroid_dW_px", "e_phi_centroid_phi_px", "e_phi_rms_dW_px",
                  "e_phi_rms_phi_px"]


@dataclass
class EvalConfig:
    """``clarm evaluate`` settings (``data`` and ``cvae`` are required; no ``lstm``: no
    forecast scores; ``num_per_module`` 0: as many generated images as held-out runs;
    ``uncertainty`` one of :data:`UNCERTAINTY_METHODS`, ``forecast_samples`` the rollouts
    per run of the residual methods; ``block_images`` the (run, module) images read at a
    time, ``block_runs`` (if set) the runs read at a time instead)."""

    data: str | None = None
    cvae: str | None = None
    lstm: str | None = None
    output: str = "clarm-eval"
    observed: int = 4
    num_per_module: int = 0
    classifier_epochs: int = 4
    max_runs: int = 64
    compare_cvae: str | None = None
    forecast_samples: int = 16
    uncertainty: str = "conformal"
    block_images: int = 96
    block_runs: int | None = None
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if self.uncertainty not in UNCERTAINTY_METHODS:
            raise ValueError(f"uncertainty must be one of {', '.join(UNCERTAINTY_METHODS)}, "
                             f"got {self.uncertainty!r}")
        if self.block_images < 1 or (self.block_runs is not None and self.block_runs < 1):
            raise ValueError("block_images and block_runs must be >= 1")
        if self.forecast_samples < 0 or self.max_runs < 1:
            raise ValueError("forecast_samples must be >= 0 and max_runs >= 1")

    def runs_per_block(self, modules: int) -> int:
        """Runs read at a time: ``block_runs``, else ``max(1, block_images // modules)``."""
        return self.block_runs or max(1, self.block_images // modules)


def _summary(values: torch.Tensor) -> dict[str, Any]:
    """values (R, M, 15) -> mean, per-module and per-projection means (and the E-phi mean)."""
    return {"mean": float(values.mean()),
            "e_phi": float(values[..., E_PHI].mean()),
            "per_module": [float(v) for v in values.mean(dim=(0, 2))],
            "per_projection": [float(v) for v in values.mean(dim=(0, 1))]}


class _Scores:
    """Per (run, module, projection) SSIM, paper SSIM and MSE, accumulated block by block."""

    def __init__(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = {"ssim": [], "ssim_paper": [], "mse": []}

    def add(self, pred: torch.Tensor, real: torch.Tensor) -> None:
        """pred, real (r, m, 15, H, W); scored in chunks of :data:`_SCORE_PIXELS` pixels."""
        r, m = real.shape[:2]
        p, q = pred.flatten(0, 1), real.flatten(0, 1)
        step = max(1, _SCORE_PIXELS // (p.shape[-1] * p.shape[-2]))
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in self.parts}
        for lo in range(0, len(p), step):
            a, b = p[lo:lo + step].float(), q[lo:lo + step].float()
            parts["ssim"].append(ssim_per_channel(a, b))
            parts["ssim_paper"].append(ssim_paper(a, b))
            parts["mse"].append(mse_per_channel(a, b))
        for key, chunks in parts.items():
            self.parts[key].append(torch.cat(chunks).view(r, m, 15))

    def report(self) -> dict[str, Any]:
        return {k: _summary(torch.cat(v)) for k, v in self.parts.items()}


def _blocks(f: PhaseSpaceFile, runs: npt.NDArray[np.int64], size: int
            ) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    """(runs, physical images (b, M, 15, H, W)) of consecutive blocks of ``size`` runs."""
    for lo in range(0, len(runs), size):
        sel = runs[lo:lo + size]
        yield sel, f.images(sel)


def train_module_classifier(f: PhaseSpaceFile, runs: npt.NDArray[np.int64],
                            normalizer: Normalizer,
                            epochs: int, seed: int, device: torch.device,
                            block_runs: int = 8) -> ModuleClassifier:
    """Train the feature network on the images of ``runs`` labelled by module (streamed)."""
    torch.manual_seed(seed)
    clf = ModuleClassifier(f.modules).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for _, phys in _blocks(f, runs[rng.permutation(len(runs))], block_runs):
            x = torch.from_numpy(np.ascontiguousarray(normalizer(phys)))
            r, m = x.shape[:2]
            flat, labels = x.flatten(0, 1), torch.arange(m).repeat(r)
            perm = torch.randperm(len(flat))
            for lo in range(0, len(perm), 64):
                idx = perm[lo:lo + 64]
                loss = F.cross_entropy(clf(flat[idx].to(device)), labels[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return clf.eval()


@torch.no_grad()
def _features(clf: ModuleClassifier, images: torch.Tensor, device: torch.device) -> np.ndarray:
    return torch.cat([clf.features(images[i:i + 128].to(device)).cpu()
                      for i in range(0, len(images), 128)]).numpy()


@torch.no_grad()
def reconstruct(cvae: LoadedCVAE, real: torch.Tensor, settings: np.ndarray | None,
                device: torch.device) -> torch.Tensor:
    """Encode (posterior mean) and decode normalised images (R, M, 15, H, W)."""
    model = cvae.model
    r, m = real.shape[:2]
    s = cvae.settings_tensor(settings, r) if model.config.settings_dim else None
    mods = torch.arange(m).repeat(r).to(device)
    cond = model.condition(mods, None if s is None else s.repeat_interleave(m, 0).to(device))
    flat = real.reshape(r * m, *real.shape[2:])
    out = []
    for lo in range(0, len(flat), 64):
        x = flat[lo:lo + 64].to(device).contiguous(memory_format=torch.channels_last)
        mu, _ = model.encode(x, cond[lo:lo + 64])
        out.append(model.decode(mu, cond[lo:lo + 64]).contiguous().cpu())
    return torch.cat(out).view_as(real)


def e_phi_summary(images: torch.Tensor) -> torch.Tensor:
    """(..., 15, H, W) -> (..., 4): E-phi centroid (row = dW, column = phi) and rms widths,
    in pixels."""
    img = images[..., E_PHI, :, :].double().clamp_min(0)
    h = img.shape[-1]
    axis = torch.arange(h, dtype=torch.float64)
    total = img.sum(dim=(-1, -2)).clamp_min(1e-12)
    rows, cols = img.sum(-1) / total[..., None], img.sum(-2) / total[..., None]
    mr, mc = (rows * axis).sum(-1), (cols * axis).sum(-1)
    sr = ((rows * (axis - mr[..., None]) ** 2).sum(-1)).sqrt()
    sc = ((cols * (axis - mc[..., None]) ** 2).sum(-1)).sqrt()
    return torch.stack([mr, mc, sr, sc], dim=-1)


def calibration_runs_in(cvae: LoadedCVAE, lstm: LoadedLSTM,
                        f: PhaseSpaceFile) -> npt.NDArray[np.int64]:
    """Positions in ``f`` of the LSTM's calibration runs (CVAE training runs the LSTM was not
    trained on, by global run number); empty when it records none or ``f`` is another
    simulation."""
    cvae_train = trained_runs_in(cvae, f)
    if len(lstm.calibration_run_numbers) == 0 or len(cvae_train) == 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.isin(f.run_index()[cvae_train], lstm.calibration_run_numbers)
    return cvae_train[keep].astype(np.int64)


def _conformal_scores(cvae: LoadedCVAE, lstm: LoadedLSTM, f: PhaseSpaceFile,
                      runs: npt.NDArray[np.int64], observed: int, block_runs: int,
                      settings: np.ndarray | None) -> torch.Tensor:
    """Absolute errors (R, M - k, 4) of the mean forecast's E-phi summaries on ``runs``."""
    errors = []
    for sel, phys in _blocks(f, runs, block_runs):
        real = torch.from_numpy(np.ascontiguousarray(cvae.normalizer(phys)))
        fc = forecast(cvae, lstm, phys[:, :observed], normalized=True,
                      settings=None if settings is None else settings[sel])
        errors.append((e_phi_summary(torch.from_numpy(fc)[:, observed:])
                       - e_phi_summary(real[:, observed:])).abs())
    return torch.cat(errors)


def _sample_seed(seed: int, sample: int, run: int) -> int:
    return int(np.random.SeedSequence([seed, sample, run]).generate_state(1)[0])


def _lstm_residual_std(cvae: LoadedCVAE, lstm: LoadedLSTM, f: PhaseSpaceFile,
                       runs: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Std (D,) of the teacher-forced one-step residuals of the LSTM on ``runs`` in
    standardised latent units (the noise of the forecast samples)."""
    z = encode_runs(cvae, f, runs)
    zs = (z - torch.as_tensor(lstm.z_mean)) / torch.as_tensor(lstm.z_std)
    lengths = torch.full((len(zs),), zs.shape[1] - 1, dtype=torch.int64)
    with torch.no_grad():
        pred = lstm.model.predict_steps(zs[:, :-1], lengths)
    return (zs[:, 1:] - pred).reshape(-1, zs.shape[2]).std(dim=0).numpy()


def _generation(cvae: LoadedCVAE, real_feats: list[np.ndarray], clf: ModuleClassifier,
                method: str, n_gen: int, seed: int, device: torch.device
                ) -> tuple[dict[str, Any], torch.Tensor]:
    """Frechet distance and precision / recall per module of ``n_gen`` generated images
    against the real features; returns the report entry and one sample of the last module."""
    m = len(real_feats)
    fd, prec, rec = [], [], []
    sample = torch.zeros(0)
    for k in range(m):
        g = torch.from_numpy(np.ascontiguousarray(generate(cvae, k, n_gen, method=method,
                                                            seed=seed + k, normalized=True)))
        if k == m - 1:
            sample = g[0]
        gf = _features(clf, g, device)
        fd.append(frechet_distance(real_feats[k], gf, ridge=FRECHET_RIDGE))
        if min(len(gf), len(real_feats[k])) > 3:  # k-NN balls need more than k = 3 points
            p, r = precision_recall(real_feats[k], gf)
            prec.append(p)
            rec.append(r)
    return {"samples_per_module": n_gen,
            "frechet_distance": {"mean": float(np.mean(fd)), "per_module": fd},
            "precision": {"mean": float(np.mean(prec)) if prec else None, "per_module": prec},
            "recall": {"mean": float(np.mean(rec)) if rec else None, "per_module": rec}}, sample


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Run the evaluation; returns the report (also written to ``output/report.json``)."""
    config.validate()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    out_dir = Path(config.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = require(config.data, "data", "the phase-space file to evaluate on")
    cvae = load_cvae(require(config.cvae, "cvae", "the CVAE to evaluate"), device=device)
    lstm = load_lstm(config.lstm, device=device) if config.lstm else None
    model = cvae.model
    m, k = model.config.modules, config.observed
    if lstm is not None and not 1 <= k < m:
        raise ValueError(f"observed must be in 1..{m - 1}, got {k}")
    variants = [cvae]
    with PhaseSpaceFile(data) as f:
        check_compatible(cvae, f)
        block = config.runs_per_block(f.modules)
        runs = held_out_runs(cvae, f)[:config.max_runs]
        if len(runs) < 2:
            raise ValueError(f"{config.data}: {len(runs)} held-out runs; need at least 2")
        held_out_status = check_held_out(trained_on(cvae, lstm), f, runs)
        names = list(f.attrs.get("projection_names", [str(c) for c in range(15)]))
        settings = f.settings()
        # baselines and the module classifier learn from the CVAE's training runs in this file
        # (found by run number); a file without any (another simulation) lends its held-out runs
        train_sel = trained_runs_in(cvae, f)[:config.max_runs]
        if len(train_sel) == 0:
            train_sel = runs
        if config.compare_cvae:
            other = load_cvae(config.compare_cvae, device=device)
            check_compatible(other, f)
            if not (np.array_equal(np.sort(other.val_runs), np.sort(cvae.val_runs))
                    and np.allclose(other.normalizer.scale, cvae.normalizer.scale)):
                raise ValueError(f"{config.compare_cvae}: the CVAE to compare must be trained on "
                                 "the same runs (same data and val fraction)")
            variants.append(other)
        # module-mean baseline: mean normalised training image of each module (streamed)
        mean_img = torch.zeros(m, 15, f.resolution, f.resolution, dtype=torch.float64)
        for _, phys in _blocks(f, train_sel, block):
            mean_img += torch.from_numpy(cvae.normalizer(phys)).double().sum(0)
        mean_img = (mean_img / len(train_sel)).float()
        clf = train_module_classifier(f, train_sel, cvae.normalizer, config.classifier_epochs,
                                      config.seed, device, block)
        # forecast uncertainty: calibrated on the LSTM's calibration runs (never evaluation
        # runs), or the old noise scale from the LSTM's own training runs
        method = config.uncertainty if lstm is not None else "none"
        if method in ("train-residuals", "calibration-residuals") and \
                config.forecast_samples < 2:
            method = "none"
        noise: npt.NDArray[np.float32] | None = None
        halfwidth: torch.Tensor | None = None
        unc_info: dict[str, Any] = {}
        if lstm is not None and method != "none":
            cal = calibration_runs_in(cvae, lstm, f)
            if len(np.intersect1d(cal, runs)):
                raise ValueError("the LSTM's calibration runs include evaluation runs")
            if method == "train-residuals":
                fit_runs = np.setdiff1d(train_sel, cal)
                noise = _lstm_residual_std(cvae, lstm, f, fit_runs)
                unc_info = {"noise_runs": len(fit_runs)}
            elif len(cal) == 0:
                raise ValueError(f"{lstm.path}: the LSTM records no calibration runs in "
                                 f"{config.data} (trained with --calibration-fraction 0, or "
                                 "before 2026-12-02, or on another simulation); retrain it "
                                 "or use --uncertainty train-residuals")
            elif method == "calibration-residuals":
                noise = _lstm_residual_std(cvae, lstm, f, cal)
            else:
                cal_scores = _conformal_scores(cvae, lstm, f, cal, k, block, settings)
                halfwidth, rank, exact = conformal_halfwidth(cal_scores, NOMINAL_COVERAGE)
                if not exact:
                    log.warning("%d calibration runs are too few for a %.0f %% conformal "
                                "interval (need %d); using the largest error", len(cal),
                                100 * NOMINAL_COVERAGE, rank)
                unc_info = {"conformal_rank": rank, "finite_sample_guarantee": exact,
                            "conformal_halfwidth_per_module": halfwidth.tolist()}
            if method != "train-residuals":
                unc_info["calibration_runs"] = [int(x) for x in f.run_index()[cal]]
        recon_scores = [_Scores() for _ in variants]
        scores = {name: _Scores() for name in ("forecast", "baseline_module_mean",
                                                 "baseline_module_mean_all",
                                                 "baseline_persistence")}
        real_feats: list[list[np.ndarray]] = [[] for _ in range(m)]
        correct, total = 0, 0
        covered, widths, errors = [], [], []
        rows: dict[str, np.ndarray] = {}
        for sel, phys in _blocks(f, runs, block):
            real = torch.from_numpy(np.ascontiguousarray(cvae.normalizer(phys)))
            s_sel = None if settings is None else settings[sel]
            for variant, acc in zip(variants, recon_scores, strict=True):
                rec = reconstruct(variant, real, s_sel, device)
                acc.add(rec, real)
                if variant is cvae and not rows:
                    rows = {"real": real[0, m - 1].numpy(),
                            "reconstruction": rec[0, m - 1].numpy()}
            scores["baseline_module_mean_all"].add(mean_img.expand_as(real), real)
            with torch.no_grad():
                flat = real.flatten(0, 1)
                logits = torch.cat([clf(flat[i:i + 128].to(device)).cpu()
                                    for i in range(0, len(flat), 128)])
            correct += int((logits.argmax(1) == torch.arange(m).repeat(len(sel))).sum())
            total += len(flat)
            for mod in range(m):
                real_feats[mod].append(_features(clf, real[:, mod], device))
            if lstm is None:
                continue
            fc = torch.from_numpy(np.ascontiguousarray(forecast(
                cvae, lstm, phys[:, :k], normalized=True, settings=s_sel)))
            scores["forecast"].add(fc[:, k:], real[:, k:])
            scores["baseline_module_mean"].add(mean_img[k:].expand_as(real[:, k:]), real[:, k:])
            scores["baseline_persistence"].add(real[:, k - 1:k].expand_as(real[:, k:]),
                                               real[:, k:])
            if "forecast" not in rows:
                rows["forecast"] = fc[0, m - 1].numpy()
            if method != "none":
                truth, point = e_phi_summary(real[:, k:]), e_phi_summary(fc[:, k:])
                if halfwidth is not None:
                    lo, hi = point - halfwidth, point + halfwidth
                else:
                    summ = torch.stack([e_phi_summary(torch.from_numpy(np.ascontiguousarray(
                        forecast(cvae, lstm, phys[:, :k], normalized=True, settings=s_sel,
                                 noise_std=noise,
                                 seed=[_sample_seed(config.seed, i, int(run)) for run in sel]
                                 )))[:, k:])
                        for i in range(config.forecast_samples)])
                    tail = (1 - NOMINAL_COVERAGE) / 2
                    lo, hi = summ.quantile(tail, dim=0), summ.quantile(1 - tail, dim=0)
                covered.append(((truth >= lo) & (truth <= hi)).double())
                widths.append(hi - lo)
                errors.append((point - truth).abs())
    r = len(runs)
    report: dict[str, Any] = {"data": str(config.data), "cvae": str(cvae.path),
                              "held_out_runs": [int(x) for x in runs],
                              "held_out_check": held_out_status,
                              "training_runs_for_baselines": len(train_sel),
                              "cond_decoder": model.config.cond_decoder,
                              "prior": model.config.prior, "projection_names": names,
                              "e_phi_channel": E_PHI,
                              "classifier_accuracy_held_out": correct / max(total, 1)}
    report["reconstruction"] = recon_scores[0].report()
    report["baseline_module_mean"] = scores["baseline_module_mean_all"].report()
    log.info("reconstruction SSIM %.4f (paper E-phi %.4f), module-mean baseline %.4f (%.4f)",
             report["reconstruction"]["ssim"]["mean"],
             report["reconstruction"]["ssim_paper"]["e_phi"],
             report["baseline_module_mean"]["ssim"]["mean"],
             report["baseline_module_mean"]["ssim_paper"]["e_phi"])
    curves: dict[str, list[float]] = {
        "reconstruction": report["reconstruction"]["ssim_paper"]["per_module"]}
    xs: dict[str, list[int]] = {"reconstruction": list(range(m))}
    if lstm is not None:
        report["forecast"] = {"observed": k, "modules": list(range(k, m)),
                              **scores["forecast"].report()}
        report["baseline_module_mean_forecast_modules"] = scores["baseline_module_mean"].report()
        report["baseline_persistence"] = scores["baseline_persistence"].report()
        for name in ("forecast", "baseline_module_mean_forecast_modules",
                     "baseline_persistence"):
            curves[name] = report[name]["ssim_paper"]["per_module"]
            xs[name] = list(range(k, m))
        log.info("forecast SSIM %.4f / paper E-phi %.4f; module mean %.4f / %.4f; "
                 "persistence %.4f / %.4f", report["forecast"]["ssim"]["mean"],
                 report["forecast"]["ssim_paper"]["e_phi"],
                 report["baseline_module_mean_forecast_modules"]["ssim"]["mean"],
                 report["baseline_module_mean_forecast_modules"]["ssim_paper"]["e_phi"],
                 report["baseline_persistence"]["ssim"]["mean"],
                 report["baseline_persistence"]["ssim_paper"]["e_phi"])
        if covered:
            cov, wid, err = torch.cat(covered), torch.cat(widths), torch.cat(errors)
            names_q = _SUMMARY_NAMES
            described = {
                "conformal": "split-conformal intervals around the mean forecast: per module "
                             "and summary, the ceil((n + 1) 0.9)-th smallest absolute error "
                             "on the n calibration runs",
                "calibration-residuals": "5-95 % of LSTM rollouts with Gaussian latent noise "
                                         "of the teacher-forced one-step residual std on the "
                                         "calibration runs",
                "train-residuals": "5-95 % of LSTM rollouts with Gaussian latent noise of the "
                                   "teacher-forced one-step residual std on the LSTM's "
                                   "training runs"}
            report["forecast_uncertainty"] = {
                "method": method, "description": described[method],
                "samples": 0 if method == "conformal" else config.forecast_samples,
                "nominal_coverage": NOMINAL_COVERAGE, **unc_info,
                "coverage": float(cov.mean()),
                "coverage_per_quantity": dict(zip(names_q, cov.mean(dim=(0, 1)).tolist(),
                                                  strict=True)),
                "interval_width_per_quantity": dict(zip(names_q, wid.mean(dim=(0, 1)).tolist(),
                                                        strict=True)),
                "mean_forecast_abs_error_per_quantity": dict(zip(
                    names_q, err.mean(dim=(0, 1)).tolist(), strict=True)),
                "coverage_per_module": cov.mean(dim=(0, 2)).tolist(),
                "latent_noise_std": [] if noise is None else [float(v) for v in noise]}
            log.info("forecast 90%% interval coverage %.3f", float(cov.mean()))

    # ---- generation: FD and precision/recall with as many generated as real images
    feats = [np.concatenate(v) for v in real_feats]
    n_gen = config.num_per_module or r
    half = r // 2
    if half >= 2:
        report["generation_floor_real_vs_real"] = {
            "runs_per_half": half,
            "frechet_distance": float(np.mean([frechet_distance(x[:half], x[half:2 * half],
                                                                ridge=FRECHET_RIDGE)
                                               for x in feats])),
            "precision_recall": None if half <= 3 else [float(np.mean(v)) for v in zip(*[
                precision_recall(x[:half], x[half:2 * half]) for x in feats], strict=True)]}
    table = []
    samples: dict[str, torch.Tensor] = {}
    for variant, acc in zip(variants, recon_scores, strict=True):
        vc = variant.model.config
        rep = acc.report() if variant is not cvae else report["reconstruction"]
        row: dict[str, Any] = {"cvae": str(variant.path), "cond_decoder": vc.cond_decoder,
                               "prior": vc.prior,
                               "reconstruction_ssim": rep["ssim"]["mean"],
                               "reconstruction_ssim_paper_e_phi": rep["ssim_paper"]["e_phi"],
                               "reconstruction_mse": rep["mse"]["mean"]}
        for method in ["prior"] + (["box"] if variant.latents_min is not None else []):
            entry, sample = _generation(variant, feats, clf, method, n_gen, config.seed, device)
            if variant is cvae:
                report[f"generation_{method}"] = entry
                samples[method] = sample
                log.info("generation (%s) FD %.4g precision %s recall %s", method,
                         entry["frechet_distance"]["mean"], entry["precision"]["mean"],
                         entry["recall"]["mean"])
            row[f"generation_{method}_frechet"] = entry["frechet_distance"]["mean"]
            row[f"generation_{method}_precision"] = entry["precision"]["mean"]
            row[f"generation_{method}_recall"] = entry["recall"]["mean"]
        table.append(row)
    report["model_comparison"] = table
    for method, img in samples.items():
        rows[f"generated ({method})"] = img.numpy()
    plot_grid(out_dir / "grid_last_module.png", rows, names,
              title=f"run {int(runs[0])}, module {m - 1} (normalised)")
    plot_metric_curves(out_dir / "ssim_vs_module.png", curves, "SSIM (paper definition)", x=xs,
                       title="held-out runs")
    save_json(out_dir / "report.json", report)
    return report
