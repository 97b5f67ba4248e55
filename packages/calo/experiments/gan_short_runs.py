"""Short CaloGAN runs for diagnosing the discriminator winning and the generator switching
cells off: losses, per-layer occupancy and E_tot / E_inc every few iterations.

Usage::

    calo simulate -n 20000 -o train.h5 --seed 1
    python packages/calo/experiments/gan_short_runs.py --data train.h5 --iters 240 \\
        [--init-fans per_position] [--energy-weight 1.0] [--lr-d 2e-5] [--fake-eval] [--grad]

Trains the ``cpu`` preset's CaloGAN (``calo.train``'s own iteration: two discriminator Adam
steps, all-real then all-fake batch, two generator steps) on rows ``[0, rows)`` of ``--data``,
batches drawn by a seeded permutation per pass.  Every ``--every`` iterations it prints one JSON
line: the mean losses since the last line, the generated occupancy (fraction of cells > 0) per
layer for 512 validation energies (rows 18,000-18,511) with the generator in eval mode
(``occ_eval``, running batch-norm statistics, as ``calo generate``) and in training mode
(``occ_train``, batch statistics, as the training steps see it), and the mean E_tot / E_inc
(eval mode).  The training-mode probe updates the generator's running batch-norm
statistics, as any training-mode forward pass does.  ``--grad`` adds, per layer, the share of lit generated cells that the
adversarial loss pushes down (``down_adv``) and the mean push on lit cells of the adversarial
and of the weighted energy term (``push_adv``, ``push_energy``: minus the mean gradient, GeV
per GeV; negative means down).  ``--fake-eval`` generates the discriminator's fake batch with
the generator's batch norms in eval mode, as the original's ``generator.predict`` did (Keras
learning phase 0).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from calo.artifacts import build_model
from calo.config import preset_config
from calo.data import LAYER_KEYS, read_showers
from calo.models import CaloGAN
from calo.train import _GanTrainer

VAL_ROWS = (18000, 18512)


def _eval_mode_fakes(gan: CaloGAN) -> None:
    """Make the generator run with eval-mode batch norms whenever it is called in training mode
    without gradients (the discriminator's fake batch of ``_GanTrainer.step``)."""
    g = gan.generator
    forward = g.forward

    def fake_forward(z: torch.Tensor, energy: torch.Tensor,
                     labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        if g.training and not torch.is_grad_enabled():
            g.eval()
            try:
                return g.forward_reference(z, energy, labels)
            finally:
                g.train()
        return forward(z, energy, labels)

    g.forward = fake_forward  # type: ignore[method-assign,assignment]


def _pushes(gan: CaloGAN, energy: torch.Tensor, weight: float) -> dict[str, float]:
    """Per layer: share of lit cells the adversarial loss pushes down, and the mean push
    (minus the gradient) of the adversarial and the weighted energy terms on lit cells."""
    g, d = gan.generator, gan.discriminator
    images = [x.detach().requires_grad_(True)
              for x in g.forward_reference(torch.randn(energy.shape[0], g.config.latent_dim),
                                           energy)]
    logit, total, _ = d(images, energy)
    adv = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
    en = weight * (total - energy).abs().mean()
    g_adv = torch.autograd.grad(adv, images, retain_graph=True)
    g_en = torch.autograd.grad(en, images)
    out: dict[str, float] = {}
    for i, img in enumerate(images):
        lit = img.detach() > 0
        out[f"down_adv{i}"] = round(float((g_adv[i][lit] > 0).float().mean()), 3)
        out[f"push_adv{i}"] = float(f"{-float(g_adv[i][lit].mean()):.3g}")
        out[f"push_energy{i}"] = float(f"{-float(g_en[i][lit].mean()):.3g}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--rows", type=int, default=5400, help="training rows [0, rows)")
    p.add_argument("--iters", type=int, default=240)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--init-fans", choices=["keras", "per_position"], default=None)
    p.add_argument("--energy-weight", type=float, default=None)
    p.add_argument("--lr-d", type=float, default=None)
    p.add_argument("--fake-eval", action="store_true")
    p.add_argument("--grad", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.manual_seed(a.seed)
    cfg = preset_config("cpu", "gan")
    if a.init_fans is not None:
        cfg.gan_init_fans = a.init_fans
    if a.energy_weight is not None:
        cfg.energy_weight_gan = a.energy_weight
    if a.lr_d is not None:
        cfg.lr_d = a.lr_d
    keys = ["energy", *LAYER_KEYS]
    data = read_showers(a.data, keys=keys, start=0, stop=a.rows)
    val = {k: torch.from_numpy(np.ascontiguousarray(v))
           for k, v in read_showers(a.data, keys=keys, start=VAL_ROWS[0],
                                    stop=VAL_ROWS[1]).items()}
    gan = build_model(cfg)
    assert isinstance(gan, CaloGAN)
    trainer = _GanTrainer(gan, cfg, torch.device("cpu"),
                          (float(data["energy"].min()), float(data["energy"].max())))
    if a.fake_eval:
        _eval_mode_fakes(gan)
    print(json.dumps({"init_fans": cfg.gan_init_fans, "energy_weight": cfg.energy_weight_gan,
                      "lr_d": cfg.lr_d, "fake_eval": a.fake_eval,
                      "occ_real": [round(float((val[k] > 0).float().mean()), 3)
                                   for k in LAYER_KEYS]}), flush=True)
    rng = np.random.default_rng(a.seed)
    sums: dict[str, float] = {}
    it, t0, b = 0, time.time(), cfg.batch_size
    g = gan.generator
    while it < a.iters:
        order = rng.permutation(a.rows)
        for start in range(0, a.rows - b + 1, b):
            idx = np.sort(order[start:start + b])
            batch = {k: torch.from_numpy(np.ascontiguousarray(v[idx])) for k, v in data.items()}
            for key, value in trainer.step(batch).items():
                sums[key] = sums.get(key, 0.0) + value
            it += 1
            if it % a.every == 0:
                rec: dict[str, object] = {k: round(v / a.every, 4) for k, v in sums.items()}
                sums = {}
                with torch.no_grad():
                    z = torch.randn(val["energy"].shape[0], g.config.latent_dim)
                    g.eval()
                    ev = g.forward_reference(z, val["energy"])
                    g.train()
                    tr = g.forward_reference(z, val["energy"])
                rec["occ_eval"] = [round(float((x > 0).float().mean()), 3) for x in ev]
                rec["occ_train"] = [round(float((x > 0).float().mean()), 3) for x in tr]
                total = sum(x.flatten(1).sum(1) for x in ev)
                assert isinstance(total, torch.Tensor)
                rec["etot_over_einc"] = round(float((total / val["energy"].view(-1)).mean()), 3)
                if a.grad:
                    rec.update(_pushes(gan, val["energy"][:256], cfg.energy_weight_gan))
                rec.update(it=it, wall_s=round(time.time() - t0))
                print(json.dumps(rec), flush=True)
            if it >= a.iters:
                break


if __name__ == "__main__":
    main()
