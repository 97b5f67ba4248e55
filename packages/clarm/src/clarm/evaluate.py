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
    m = model.config.modules
    real = torch.from_numpy(cvae.normalizer(real_phys))
    r = len(runs)
    report: dict[str, Any] = {"data": str(config.data), "cvae": str(cvae.path),
                              "held_out_runs": [int(x) for x in runs],
                              "cond_decoder": model.config.cond_decoder,
                              "prior": model.config.prior, "projection_names": names}

    # ---- reconstruction
    with torch.no_grad():
        s_sel = None if settings is None else settings[runs]
        s = cvae.settings_tensor(s_sel, r) if model.config.settings_dim else None
        mods = torch.arange(m).repeat(r).to(device)
        cond = model.condition(mods, None if s is None else s.repeat_interleave(m, 0).to(device))
        flat = real.reshape(r * m, *real.shape[2:])
        recon = []
        for lo in range(0, len(flat), 64):
            mu, _ = model.encode(flat[lo:lo + 64].to(device), cond[lo:lo + 64])
            recon.append(model.decode(mu, cond[lo:lo + 64]).cpu())
        recon = torch.cat(recon).view_as(real)
    ssim_rec = ssim_per_channel(recon.flatten(0, 1), real.flatten(0, 1)).view(r, m, 15)
    mse_rec = mse_per_channel(recon.flatten(0, 1), real.flatten(0, 1)).view(r, m, 15)
    report["reconstruction"] = {"ssim": _summary(ssim_rec), "mse": _summary(mse_rec)}
    log.info("reconstruction SSIM %.4f MSE %.3g", ssim_rec.mean(), mse_rec.mean())

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
        per_mod_ssim, per_mod_mse, fd = [], [], []
        for k in range(m):
            g = torch.from_numpy(generate(cvae, k, n_gen, method=method,
                                          seed=config.seed + k, normalized=True))
            if k == m - 1:
                samples[method] = g[0]
            rk = real[:, k]
            # best-matching real image for every generated one
            gi = g.repeat_interleave(r, 0)
            ri = rk.repeat(n_gen, 1, 1, 1)
            ss = ssim_per_channel(gi, ri).mean(1).view(n_gen, r)
            best = ss.argmax(1)
            per_mod_ssim.append(float(ss.max(1).values.mean()))
            per_mod_mse.append(float(mse_per_channel(g, rk[best]).mean()))
            if r >= 2:
                fd.append(frechet_distance(_features(clf, rk, device),
                                           _features(clf, g, device)))
        report[f"generation_{method}"] = {
            "ssim_best_match": {"mean": float(np.mean(per_mod_ssim)), "per_module": per_mod_ssim},
            "mse_best_match": {"mean": float(np.mean(per_mod_mse)), "per_module": per_mod_mse},
            "frechet_distance": {"mean": float(np.mean(fd)) if fd else None,
                                 "per_module": fd},
        }
        gen_curves[f"generation ({method})"] = per_mod_ssim
        log.info("generation (%s) SSIM %.4f FD %s", method, np.mean(per_mod_ssim),
                 f"{np.mean(fd):.4g}" if fd else "n/a (fewer than 2 held-out runs)")
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
        fc = torch.from_numpy(forecast(cvae, lstm, real_phys[:, :k], normalized=True,
                                       settings=None if settings is None else settings[runs]))
        ssim_fc = ssim_per_channel(fc[:, k:].flatten(0, 1),
                                   real[:, k:].flatten(0, 1)).view(r, m - k, 15)
        mse_fc = mse_per_channel(fc[:, k:].flatten(0, 1), real[:, k:].flatten(0, 1)).view(
            r, m - k, 15)
        report["forecast"] = {"observed": k, "modules": list(range(k, m)),
                              "ssim": _summary(ssim_fc), "mse": _summary(mse_fc)}
        curves["forecast"] = report["forecast"]["ssim"]["per_module"]
        xs["forecast"] = list(range(k, m))
        rows["forecast"] = fc[0, m - 1].numpy()
        log.info("forecast SSIM %.4f MSE %.3g", ssim_fc.mean(), mse_fc.mean())
    plot_grid(out_dir / "grid_last_module.png", rows, names,
              title=f"run {int(runs[0])}, module {m - 1} (normalised)")
    plot_metric_curves(out_dir / "ssim_vs_module.png", curves, "SSIM", x=xs,
                       title="held-out runs")
    save_json(out_dir / "report.json", report)
    return report
