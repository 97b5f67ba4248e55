"""Evaluation on held-out runs: reconstruction, generation and forecasting quality.

* reconstruction and forecasting: MSE and SSIM per module and per projection against the real
  images of the same run (images normalised with the training scale, so values are in [0, 1]);
* generation (conditional prior and the reference's min/max box): for each generated image the
  best-matching held-out image of the same module (MSE, SSIM), and a Frechet distance per module
  between features of real and generated images from a small module classifier trained on
  training runs (the reference used FID on a ResNet-50 module classifier).

Writes ``report.json`` and PNG plots into the output folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from physml_core.config import save_json
from physml_core.device import resolve_device, seed_everything
from physml_core.logging import get_logger

from .data import PhaseSpaceFile
from .forecast import forecast
from .generate import generate
from .metrics import frechet_distance, mse_per_channel, ssim_per_channel
from .models import ModuleClassifier
from .plots import plot_grid, plot_metric_curves
from .train import check_compatible, held_out_runs, load_cvae, load_lstm

__all__ = ["EvalConfig", "evaluate", "train_module_classifier"]

log = get_logger(__name__)


@dataclass
class EvalConfig:
    """``clarm evaluate`` settings."""

    data: str = ""
    cvae: str = ""
    lstm: str = ""
    output: str = "clarm-eval"
    observed: int = 4
    num_per_module: int = 0
    classifier_epochs: int = 4
    max_runs: int = 64
    compare_cvae: str = ""
    seed: int = 0
    device: str = "auto"


def _summary(values: torch.Tensor) -> dict[str, Any]:
    """values (R, M, 15) -> mean, per-module and per-projection means."""
    return {"mean": float(values.mean()),
            "per_module": [float(v) for v in values.mean(dim=(0, 2))],
            "per_projection": [float(v) for v in values.mean(dim=(0, 1))]}


def train_module_classifier(images: torch.Tensor, modules: int, epochs: int, seed: int,
                            device: torch.device) -> ModuleClassifier:
    """Train the feature network on images (R, M, 15, H, W) labelled by module."""
    torch.manual_seed(seed)
    clf = ModuleClassifier(modules).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
    r, m = images.shape[:2]
    flat = images.reshape(r * m, *images.shape[2:])
    labels = torch.arange(m).repeat(r)
    for _ in range(epochs):
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


def peak_normalised_ssim(pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """SSIM (N, C) after dividing both images by the real image's own peak, i.e. with the data
    range set per image and projection (stricter than the training-wide range of 1)."""
    peak = real.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return ssim_per_channel(pred / peak, real / peak)


@torch.no_grad()
def reconstruct(cvae: Any, real: torch.Tensor, settings: np.ndarray | None,
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


def _image_scores(pred: torch.Tensor, real: torch.Tensor) -> dict[str, Any]:
    """SSIM (standard and peak-normalised) and MSE summaries of (R, M, 15, H, W) images."""
    r, m = real.shape[:2]
    p, q = pred.flatten(0, 1), real.flatten(0, 1)
    return {"ssim": _summary(ssim_per_channel(p, q).view(r, m, 15)),
            "ssim_peak_normalised": _summary(peak_normalised_ssim(p, q).view(r, m, 15)),
            "mse": _summary(mse_per_channel(p, q).view(r, m, 15))}


def _generation_scores(cvae: Any, real: torch.Tensor, clf: ModuleClassifier, method: str,
                       n_gen: int, seed: int, device: torch.device) -> tuple[dict, torch.Tensor]:
    """Best-match SSIM/MSE and Frechet distance per module of generated images; returns the
    report entry and one sample of the last module."""
    r, m = real.shape[:2]
    per_mod_ssim, per_mod_mse, fd = [], [], []
    sample = torch.zeros(0)
    for k in range(m):
        g = torch.from_numpy(np.ascontiguousarray(generate(cvae, k, n_gen, method=method,
                                                            seed=seed + k, normalized=True)))
        if k == m - 1:
            sample = g[0]
        rk = real[:, k]
        # best-matching real image for every generated one
        ss = ssim_per_channel(g.repeat_interleave(r, 0), rk.repeat(n_gen, 1, 1, 1))
        ss = ss.mean(1).view(n_gen, r)
        best = ss.argmax(1)
        per_mod_ssim.append(float(ss.max(1).values.mean()))
        per_mod_mse.append(float(mse_per_channel(g, rk[best]).mean()))
        if r >= 2:
            fd.append(frechet_distance(_features(clf, rk, device), _features(clf, g, device)))
    entry = {
        "ssim_best_match": {"mean": float(np.mean(per_mod_ssim)), "per_module": per_mod_ssim},
        "mse_best_match": {"mean": float(np.mean(per_mod_mse)), "per_module": per_mod_mse},
        "frechet_distance": {"mean": float(np.mean(fd)) if fd else None, "per_module": fd},
    }
    return entry, sample


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Run the evaluation; returns the report (also written to ``output/report.json``)."""
    seed_everything(config.seed)
    device = resolve_device(config.device)
    out_dir = Path(config.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    cvae = load_cvae(config.cvae, device=device)
    lstm = load_lstm(config.lstm, device=device) if config.lstm else None
    model = cvae.model
    with PhaseSpaceFile(config.data) as f:
        check_compatible(cvae, f)
        runs = held_out_runs(cvae, f)[:config.max_runs]
        if len(runs) == 0:
            raise ValueError(f"{config.data}: no held-out runs to evaluate on")
        names = list(f.attrs.get("projection_names", [str(c) for c in range(15)]))
        real_phys = f.images(runs)
        settings = f.settings()
        same = bool(cvae.dataset_id) and str(f.attrs.get("dataset_id", "")) == cvae.dataset_id
        cls_runs = np.asarray(cvae.train_runs[:config.max_runs]) if same else runs
        cls_images = torch.from_numpy(cvae.normalizer(f.images(cls_runs)))
        other = None
        if config.compare_cvae:
            other = load_cvae(config.compare_cvae, device=device)
            check_compatible(other, f)
            if not (np.array_equal(np.sort(other.val_runs), np.sort(cvae.val_runs))
                    and np.allclose(other.normalizer.scale, cvae.normalizer.scale)):
                raise ValueError(f"{config.compare_cvae}: the CVAE to compare must be trained on "
                                 "the same runs (same data, val fraction and seed)")
    m = model.config.modules
    real = torch.from_numpy(cvae.normalizer(real_phys))
    r = len(runs)
    report: dict[str, Any] = {"data": str(config.data), "cvae": str(cvae.path),
                              "held_out_runs": [int(x) for x in runs],
                              "cond_decoder": model.config.cond_decoder,
                              "prior": model.config.prior, "projection_names": names}

    # ---- reconstruction, and the module-mean baseline (mean training image of each module)
    s_sel = None if settings is None else settings[runs]
    recon = reconstruct(cvae, real, s_sel, device)
    report["reconstruction"] = _image_scores(recon, real)
    ssim_rec = report["reconstruction"]["ssim"]["mean"]
    log.info("reconstruction SSIM %.4f MSE %.3g", ssim_rec,
             report["reconstruction"]["mse"]["mean"])
    baseline = cls_images.mean(dim=0, keepdim=True).expand_as(real)
    report["baseline_module_mean"] = _image_scores(baseline, real)

    # ---- generation + Frechet distance
    clf = train_module_classifier(cls_images, m, config.classifier_epochs, config.seed, device)
    with torch.no_grad():
        logits = torch.cat([clf(real[i:i + 1].flatten(0, 1).to(device)).cpu() for i in range(r)])
    report["classifier_accuracy_held_out"] = float(
        (logits.argmax(1) == torch.arange(m).repeat(r)).float().mean())
    n_gen = config.num_per_module or max(r, 8)
    methods = ["prior"] + (["box"] if cvae.latents_min is not None else [])
    gen_curves: dict[str, list[float]] = {}
    samples: dict[str, torch.Tensor] = {}
    for method in methods:
        entry, samples[method] = _generation_scores(cvae, real, clf, method, n_gen,
                                                    config.seed, device)
        report[f"generation_{method}"] = entry
        gen_curves[f"generation ({method})"] = entry["ssim_best_match"]["per_module"]
        fd_mean = entry["frechet_distance"]["mean"]
        log.info("generation (%s) SSIM %.4f FD %s", method, entry["ssim_best_match"]["mean"],
                 "n/a (fewer than 2 held-out runs)" if fd_mean is None else f"{fd_mean:.4g}")
    # real-vs-real baseline of the Frechet distance (two halves of the held-out runs)
    if r >= 4:
        half = r // 2
        report["frechet_distance_real_vs_real"] = float(np.mean([
            frechet_distance(_features(clf, real[:half, k], device),
                             _features(clf, real[half:, k], device)) for k in range(m)]))

    # ---- forecasting
    curves = {"reconstruction": report["reconstruction"]["ssim"]["per_module"], **gen_curves}
    xs: dict[str, list[int]] = {k: list(range(m)) for k in curves}
    rows = {"real": real[0, m - 1].numpy(), "reconstruction": recon[0, m - 1].numpy()}
    for method, img in samples.items():
        rows[f"generated ({method})"] = img.numpy()
    if lstm is not None:
        k = config.observed
        fc = torch.from_numpy(np.ascontiguousarray(forecast(cvae, lstm, real_phys[:, :k], normalized=True,
                                       settings=None if settings is None else settings[runs])))
        report["forecast"] = {"observed": k, "modules": list(range(k, m)),
                              **_image_scores(fc[:, k:], real[:, k:])}
        report["baseline_module_mean_forecast_modules"] = _image_scores(baseline[:, k:],
                                                                        real[:, k:])
        curves["forecast"] = report["forecast"]["ssim"]["per_module"]
        xs["forecast"] = list(range(k, m))
        rows["forecast"] = fc[0, m - 1].numpy()
        log.info("forecast SSIM %.4f MSE %.3g", report["forecast"]["ssim"]["mean"],
                 report["forecast"]["mse"]["mean"])
    # ---- another CVAE on the same held-out runs (decoder conditioning / prior comparison)
    variants = [cvae] if other is None else [cvae, other]
    table = []
    for variant in variants:
        vc = variant.model.config
        row: dict[str, Any] = {"cvae": str(variant.path), "cond_decoder": vc.cond_decoder,
                               "prior": vc.prior}
        rec_v = recon if variant is cvae else reconstruct(variant, real, s_sel, device)
        scores = report["reconstruction"] if variant is cvae else _image_scores(rec_v, real)
        row["reconstruction_ssim"] = scores["ssim"]["mean"]
        row["reconstruction_ssim_peak_normalised"] = scores["ssim_peak_normalised"]["mean"]
        row["reconstruction_mse"] = scores["mse"]["mean"]
        for method in methods if variant is cvae else (
                ["prior"] + (["box"] if variant.latents_min is not None else [])):
            entry = report[f"generation_{method}"] if variant is cvae else _generation_scores(
                variant, real, clf, method, n_gen, config.seed, device)[0]
            row[f"generation_{method}_frechet"] = entry["frechet_distance"]["mean"]
            row[f"generation_{method}_ssim_best_match"] = entry["ssim_best_match"]["mean"]
        table.append(row)
    report["model_comparison"] = table

    plot_grid(out_dir / "grid_last_module.png", rows, names,
              title=f"run {int(runs[0])}, module {m - 1} (normalised)")
    plot_metric_curves(out_dir / "ssim_vs_module.png", curves, "SSIM", x=xs,
                       title="held-out runs")
    save_json(out_dir / "report.json", report)
    return report
