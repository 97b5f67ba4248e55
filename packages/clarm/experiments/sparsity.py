"""Why the reduced-scale CVAE loses to the module-mean baseline (issue #15): cheap diagnostics.

Usage (one thread; a few CPU-minutes at 96 runs x 12 modules x 64^2)::

    OMP_NUM_THREADS=1 uv run python packages/clarm/experiments/sparsity.py linac64.h5 \
        [--cvae RUN_DIR] [-o sparsity.json]

On the held-out runs of the file (``--val-fraction``, clarm's held-out rule) it reports

* how many pixels the beam covers per projection (occupied pixels, rms widths in pixels);
* the normalised images' level: per-image peak and mean in the CVAE's [0, 1] scale;
* summed BCE per image (the CVAE's reconstruction loss) of the entropy floor (the loss of a
  perfect prediction of soft targets), the module-mean image and a per-channel constant;
* both SSIMs of the module mean, of the true image plus a constant background, and of the
  true image blurred by a Gaussian (what "blurred blobs" and "a small floor" cost);
* with ``--cvae``: the reconstruction's SSIMs, BCE and its background level (mean output where
  the true image is empty), and the SSIMs with outputs below a threshold set to zero (a
  diagnosis of where the SSIM is lost, not a method).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.nn import functional as F

from clarm.artifacts import load_cvae
from clarm.data import PhaseSpaceFile, held_out_runs, train_splits
from clarm.evaluate import reconstruct
from clarm.metrics import ssim_paper, ssim_per_channel
from clarm.normalise import Normalizer

E_PHI = 11


def _bce_sum(pred: torch.Tensor, real: torch.Tensor) -> float:
    """Mean over images of the BCE summed over (15, H, W), as the CVAE's loss."""
    p = pred.clamp(1e-7, 1 - 1e-7).expand_as(real)
    return float(F.binary_cross_entropy(p, real, reduction="sum") / real.shape[0])


def _ssims(pred: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    ours = ssim_per_channel(pred, real)
    paper = ssim_paper(pred, real)
    return {"ssim_ours": float(ours.mean()), "ssim_paper_e_phi": float(paper[:, E_PHI].mean()),
            "ssim_paper_15": float(paper.mean())}


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = int(3 * sigma) * 2 + 1
    t = torch.arange(k, dtype=torch.float32) - k // 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (k // 2, k // 2, 0, 0)), g.view(1, 1, 1, k))
    y = F.conv2d(F.pad(y, (0, 0, k // 2, k // 2)), g.view(1, 1, k, 1))
    return y.view(n, c, h, w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--cvae", default=None, help="a trained CVAE run folder or checkpoint")
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    report: dict[str, object] = {}
    with PhaseSpaceFile(args.data) as f:
        cvae = load_cvae(args.cvae) if args.cvae else None
        if cvae is not None:
            train, held = cvae.train_runs, held_out_runs(cvae, f)
            norm = cvae.normalizer
        else:
            train, held = train_splits(f, args.val_fraction)
            norm = Normalizer.fit(f, train)
        m, res = f.modules, f.resolution
        names = list(f.attrs["projection_names"])
        mean_img = torch.zeros(m, 15, res, res, dtype=torch.float64)
        for lo in range(0, len(train), 8):
            mean_img += torch.from_numpy(norm(f.images(train[lo:lo + 8]))).double().sum(0)
        mean_img = (mean_img / len(train)).float()
        phys = f.images(held)  # (R, M, 15, H, W)
        settings = f.settings()
    real5 = torch.from_numpy(norm(phys))
    real = real5.flatten(0, 1)
    report["held_out_runs"] = [int(r) for r in held]
    report["images"] = int(real.shape[0])

    # ---- occupancy: pixels with any particle, pixels above 1 % of the image's peak, rms widths
    flat = torch.from_numpy(phys).flatten(0, 1)  # physical units
    occ = (flat > 0).float().mean(dim=(2, 3))
    peak = flat.amax(dim=(2, 3), keepdim=True)
    occ1 = (flat > 0.01 * peak).float().mean(dim=(2, 3))
    w = flat / flat.sum(dim=(2, 3), keepdim=True).clamp_min(1e-30)
    idx = torch.arange(res, dtype=torch.float32)
    rows, cols = w.sum(3), w.sum(2)
    rms = []
    for marg in (rows, cols):
        mu = (marg * idx).sum(-1)
        rms.append(((marg * (idx - mu[..., None]) ** 2).sum(-1)).sqrt())
    report["occupancy"] = {
        name: {"occupied": float(occ[:, c].mean()), "above_1pct_of_peak": float(occ1[:, c].mean()),
               "rms_rows_px": float(rms[0][:, c].mean()), "rms_cols_px": float(rms[1][:, c].mean())}
        for c, name in enumerate(names)}
    report["occupied_all"] = float(occ.mean())
    report["above_1pct_all"] = float(occ1.mean())
    npeak = real.amax(dim=(2, 3))
    report["normalised"] = {"peak_median": float(npeak.median()),
                            "peak_p10": float(npeak.quantile(0.1)),
                            "mean_pixel": float(real.mean()),
                            "zero_pixels": float((real == 0).float().mean())}

    # ---- BCE per image (summed, as the CVAE's loss)
    t = real.double().clamp(1e-12, 1 - 1e-12)
    entropy = -(t * t.log() + (1 - t) * (1 - t).log())
    entropy = torch.where((real > 0) & (real < 1), entropy, torch.zeros_like(entropy))
    mean_rep = mean_img.repeat(len(held), 1, 1, 1)
    chan_const = real.mean(dim=(0, 2, 3), keepdim=True)
    report["bce_per_image"] = {
        "entropy_floor": float(entropy.sum() / real.shape[0]),
        "module_mean": _bce_sum(mean_rep, real),
        "channel_constant": _bce_sum(chan_const, real),
        "all_half (untrained sigmoid)": _bce_sum(torch.full((1,), 0.5), real)}

    # ---- what SSIM charges for a background floor, for blur, and the module mean
    cases = {"module_mean": mean_rep}
    for c in (0.001, 0.003, 0.01):
        cases[f"truth_plus_{c}"] = (real + c).clamp(0, 1)
    for s in (1.0, 2.0):
        cases[f"truth_blur_sigma{s:g}px"] = _blur(real, s)
    report["ssim"] = {k: _ssims(v, real) for k, v in cases.items()}

    if cvae is not None:
        rec = reconstruct(cvae, real5, None if settings is None else settings[held],
                          torch.device("cpu")).flatten(0, 1)
        empty = real == 0
        entry: dict[str, object] = {
            **_ssims(rec, real), "bce": _bce_sum(rec, real),
            "mse": float((rec - real).square().mean()),
            "background_mean": float(rec[empty].mean()),
            "background_p50": float(rec[empty].median()),
            "background_frac_above_0.01": float((rec[empty] > 0.01).float().mean()),
            "peak_ratio_median": float((rec.amax(dim=(2, 3)) / npeak.clamp_min(1e-9)).median())}
        for thr in (0.005, 0.01, 0.02):
            entry[f"zeroed_below_{thr}"] = _ssims(torch.where(rec < thr, 0.0, rec), real)
        report["reconstruction"] = entry
    text = json.dumps(report, indent=1)
    if args.output:
        Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
