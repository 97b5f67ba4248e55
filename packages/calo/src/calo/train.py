"""Training of CaloGAN and CaloVAE from a CaloGAN HDF5 file: the science of one epoch.

:func:`train` is what ``calo train`` runs: :func:`physml_core.training.fit` with
:class:`CaloTrainingJob`, so the run folder, resume policy, checkpoints (one per epoch: a step
is one epoch), logs, the time limit and torchrun are the shared layer's.  This module holds
what is calo's own: the data split and preprocessing fitted on the training rows, the CaloGAN
step (two discriminator updates, all-real then all-fake batch, and ``g_steps`` generator
updates with the MAE energy term) and the CaloVAE step (annealed KL, energy and sparsity
terms), and their validation figures.

Several processes (``torchrun``): every rank reads the same global batch and draws the same
random numbers for all of it (energies, latent vectors, VAE noise), then takes its contiguous
share of the rows.  Every loss term is a mean over the global batch (the VAE sparsity term's
batch means are all-reduced), and CaloGAN's batch normalisation and minibatch discrimination
compute their statistics over the global batch (:func:`calo.models.layers.global_batch`), so
a run on N processes is the one-process run with the same global batch, to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from physml_core.checkpoint import Checkpoint
from physml_core.distributed import DistContext, wrap_model
from physml_core.errors import ConfigError
from physml_core.hdf5 import H5Reader
from physml_core.logging import get_logger, progress
from physml_core.provenance import Provenance, from_attrs, select_rows, to_records
from physml_core.training import Clock, TrainingJob, TrainResult, TrainState, fit

from .artifacts import PACKAGE, build_model
from .config import PRESETS, TrainConfig, preset_config
from .data import CALO_SCHEMA, LAYER_KEYS, count_showers, iter_showers
from .models import MODEL_NAMES, CaloGAN, CaloVAE, vae_loss
from .models.layers import global_batch
from .preprocessing import ShowerPreprocessor, flatten_cells
from .stream import ShowerStream, split_rows

__all__ = ["PRESETS", "CaloTrainingJob", "TrainConfig", "TrainResult", "preset_config", "train"]

log = get_logger("calo.train")

Batch = dict[str, torch.Tensor]


# ------------------------------------------------------------------------------------ helpers

def _energy_range(path: Path, start: int, stop: int) -> tuple[float, float]:
    lo, hi = math.inf, -math.inf
    for batch in iter_showers(path, 65536, keys=["energy"], start=start, stop=stop):
        lo, hi = min(lo, float(batch["energy"].min())), max(hi, float(batch["energy"].max()))
    if not lo < hi:
        hi = lo * 1.01 + 1e-3
    return lo, hi


def _to_torch(batch: dict[str, np.ndarray], device: torch.device) -> Batch:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}


def _gan_images(batch: Batch) -> list[torch.Tensor]:
    """MeV cells -> GeV images (B, 1, r, c), the unit the CaloGAN networks work in."""
    return [batch[k].unsqueeze(1) / 1000.0 for k in LAYER_KEYS]


class _Share:
    """This rank's share of a global batch, and means over the global batch."""

    def __init__(self, ctx: DistContext | None) -> None:
        self.rank = ctx.rank if ctx is not None else 0
        self.world = ctx.world_size if ctx is not None else 1

    def bounds(self, n: int) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of a global batch of ``n`` rows that this rank takes."""
        return n * self.rank // self.world, n * (self.rank + 1) // self.world

    def rows(self, batch: Batch) -> Batch:
        lo, hi = self.bounds(batch["energy"].shape[0])
        return {k: v[lo:hi] for k, v in batch.items()}

    def mean_of_rows(self, n_global: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x (B_local, ...) -> this rank's part of the global-batch mean``: ``x.mean()`` in
        one process, else ``x.sum() * world / n_global``, so that DDP's average over ranks of
        the gradients is the gradient of the global mean (shares of unequal size included);
        averaged over ranks the values give the global mean too."""
        if self.world == 1:
            return torch.mean
        return lambda x: x.sum() * (self.world / n_global)

    def mean_over(self, n_global: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x (B_local,) -> mean over the global batch``: the value every rank sees is the
        global mean; its gradient flows into this rank's rows only (the others' sum enters as
        a constant), so the sum over ranks of the gradients is the one-process gradient."""
        if self.world == 1:
            return torch.mean

        def mean(x: torch.Tensor) -> torch.Tensor:
            local = x.sum()
            total = local.detach().clone()
            dist.all_reduce(total)
            return (local + (total - local.detach())) / n_global

        return mean


# ------------------------------------------------------------------------------ the science

class _GanTrainer:
    """One CaloGAN iteration per batch, as in the original ``train.py``."""

    def __init__(self, model: CaloGAN, cfg: TrainConfig, device: torch.device,
                 energy_range: tuple[float, float], ctx: DistContext | None = None) -> None:
        self.model, self.cfg, self.device = model, cfg, device
        self.energy_range = energy_range
        self.share = _Share(ctx)
        if self.share.world > 1:
            global_batch(model)  # batch norm and minibatch discrimination over all ranks
        self.g_net = wrap_model(model.generator, ctx) if ctx is not None else model.generator
        self.d_net = (wrap_model(model.discriminator, ctx) if ctx is not None
                      else model.discriminator)
        fused = device.type in ("cpu", "cuda")  # one kernel per step (29M generator weights)
        self.opt = {
            "generator": torch.optim.Adam(model.generator.parameters(), lr=cfg.lr_g,
                                          betas=(cfg.beta1, 0.999), fused=fused),
            "discriminator": torch.optim.Adam(model.discriminator.parameters(), lr=cfg.lr_d,
                                              betas=(cfg.beta1, 0.999), fused=fused),
        }

    def _draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies (n, 1) GeV uniform in the training range and latent vectors for the whole
        global batch (the same numbers on every rank), cut to this rank's rows."""
        lo, hi = self.energy_range
        energy = torch.empty(n, 1, device=self.device).uniform_(lo, hi)
        z = torch.randn(n, self.model.generator.config.latent_dim, device=self.device)
        a, b = self.share.bounds(n)
        return energy[a:b], z[a:b]

    def step(self, batch: Batch) -> dict[str, float]:
        """One iteration on a global batch (energy (B, 1) GeV, layers MeV)."""
        g, cfg = self.model.generator, self.cfg
        n = batch["energy"].shape[0]
        local = self.share.rows(batch)
        real = _gan_images(local)
        e_real = local["energy"]
        # Discriminator: two Adam steps, one on an all-real batch then one on an all-fake batch
        # (the original's two train_on_batch calls: batch norm and minibatch discrimination see
        # batches of one kind only).  The fake batch is generated before either step.
        e_fake, z = self._draw(n)
        with torch.no_grad():
            fake = g(z, e_fake)
        d_losses = []
        mean = self.share.mean_of_rows(n)
        for images, energies, target in ((real, e_real, 1.0), (fake, e_fake, 0.0)):
            logit, _ = self.d_net(images, energies)
            loss = mean(F.binary_cross_entropy_with_logits(
                logit, torch.full_like(logit, target), reduction="none"))
            self.opt["discriminator"].zero_grad(set_to_none=True)
            loss.backward()
            self.opt["discriminator"].step()
            d_losses.append(loss.detach())
        loss_d = d_losses[0] + d_losses[1]
        # Generator: g_steps updates; adversarial BCE + MAE on the total energy.  The
        # discriminator is called unwrapped: its gradients here are not used.
        adv = aux = torch.zeros(())
        for _ in range(cfg.g_steps):
            e_gen, z = self._draw(n)
            images = self.g_net(z, e_gen)
            logit, total = self.model.discriminator(images, e_gen)
            adv = mean(F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit),
                                                          reduction="none"))
            aux = mean((total - e_gen).abs())
            loss_g = adv + cfg.energy_weight_gan * aux
            self.opt["generator"].zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt["generator"].step()
        return {"loss_d": float(loss_d.detach()), "loss_g_adv": float(adv.detach()),
                "loss_g_energy": float(aux.detach())}

    @torch.no_grad()
    def validate(self, batches: list[Batch]) -> dict[str, float]:
        g = self.model.generator
        g.eval()
        ratios, sparsity_gen, sparsity_real = [], [], []
        for batch in batches:
            images = g(torch.randn(batch["energy"].shape[0], g.config.latent_dim,
                                   device=self.device), batch["energy"])
            per_layer = [img.flatten(1).sum(1) for img in images]
            total = per_layer[0] + per_layer[1] + per_layer[2]
            ratios.append((total / batch["energy"].view(-1)).cpu())
            sparsity_gen.append(torch.cat([(i > 0).flatten(1) for i in images], 1).float()
                                .mean(1).cpu())
            sparsity_real.append(torch.cat([(batch[k] > 0).flatten(1) for k in LAYER_KEYS], 1)
                                 .float().mean(1).cpu())
        g.train()
        return {"etot_over_einc": float(torch.cat(ratios).mean()),
                "occupancy_gen": float(torch.cat(sparsity_gen).mean()),
                "occupancy_real": float(torch.cat(sparsity_real).mean())}


class _VaeTrainer:
    """One CaloVAE update per batch: ELBO with annealed KL weight plus energy and sparsity
    terms, gradient clipping, Adam; ReduceLROnPlateau on the validation loss."""

    def __init__(self, model: CaloVAE, cfg: TrainConfig, device: torch.device,
                 steps_per_epoch: int, ctx: DistContext | None = None) -> None:
        self.model, self.cfg, self.device = model, cfg, device
        self.share = _Share(ctx)
        self.net = wrap_model(model, ctx) if ctx is not None else model
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.opt = {"vae": torch.optim.Adam(model.parameters(), lr=cfg.lr)}
        self.sched = {"vae": torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt["vae"], factor=0.5, patience=3)}
        self.kl_weight = 0.0

    def set_progress(self, step: int) -> None:
        """KL weight after ``step`` optimizer updates: kl_max, reached linearly over
        ``kl_anneal_epochs`` epochs."""
        anneal = max(self.cfg.kl_anneal_epochs * self.steps_per_epoch, 1)
        self.kl_weight = self.cfg.kl_max * min(1.0, step / anneal)

    def _loss(self, batch: Batch, kl_weight: float, net: torch.nn.Module | None = None,
              noise: torch.Tensor | None = None,
              batch_mean: Callable[[torch.Tensor], torch.Tensor] | None = None
              ) -> dict[str, torch.Tensor]:
        prep = self.model.preprocessor
        cells = flatten_cells(batch)
        w, m = prep.forward(cells, batch["energy"])
        c = prep.condition(batch["energy"])
        return vae_loss(self.model, w, m, c, batch["energy"], cells, kl_weight,
                        self.cfg.energy_weight, self.cfg.sparsity_weight, net=net, noise=noise,
                        batch_mean=batch_mean)

    def step(self, batch: Batch) -> dict[str, float]:
        """One update on a global batch; every rank's loss is the global-batch loss."""
        n = batch["energy"].shape[0]
        noise = torch.randn(n, self.model.config.latent_dim, device=self.device)
        lo, hi = self.share.bounds(n)
        losses = self._loss(self.share.rows(batch), self.kl_weight, net=self.net,
                            noise=noise[lo:hi], batch_mean=self.share.mean_over(n))
        self.opt["vae"].zero_grad(set_to_none=True)
        # DDP averages the ranks' gradients; each holds 1/world of the global gradient
        (losses["total"] * self.share.world).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt["vae"].step()
        out = {f"loss_{k}": float(v.detach()) for k, v in losses.items()}
        out["kl_weight"] = self.kl_weight
        return out

    @torch.no_grad()
    def validate(self, batches: list[Batch]) -> dict[str, float]:
        self.model.eval()
        totals = [float(self._loss(b, self.cfg.kl_max)["total"]) for b in batches]
        ratios, occ_gen, occ_real = [], [], []
        for batch in batches:
            gen = self.model.sample_showers(batch["energy"])
            cells = flatten_cells(gen)
            ratios.append((cells.sum(1) / (1000.0 * batch["energy"].view(-1))).cpu())
            occ_gen.append((cells > 0).float().mean(1).cpu())
            occ_real.append((flatten_cells(batch) > 0).float().mean(1).cpu())
        self.model.train()
        value = float(np.mean(totals)) if totals else float("nan")
        if totals:
            self.sched["vae"].step(value)
        return {"loss": value,
                "etot_over_einc": float(torch.cat(ratios).mean()) if ratios else math.nan,
                "occupancy_gen": float(torch.cat(occ_gen).mean()) if occ_gen else math.nan,
                "occupancy_real": float(torch.cat(occ_real).mean()) if occ_real else math.nan}


def _used_provenance(data: Path, *ranges: tuple[int, int]) -> list[Provenance] | None:
    """Stream rows (physml_core.provenance) of the file rows a run trains and validates on;
    None when the file records no provenance."""
    with H5Reader(data, CALO_SCHEMA) as reader:
        records = from_attrs(reader.attrs)
    if records is None:
        log.warning("%s records no provenance: evaluations cannot check that a reference file "
                    "is held out from this training data", data)
        return None
    return [p for lo, hi in ranges if hi > lo for p in select_rows(records, lo, hi)]


# ---------------------------------------------------------------------------------- the job

class CaloTrainingJob(TrainingJob[TrainConfig]):
    """CaloGAN or CaloVAE (``config.model``) on :func:`physml_core.training.fit`; one step is
    one epoch over the training rows.  Checkpoints hold, besides the states, the training
    energy range (GeV), the row ranges, the provenance of those rows and, for the VAE, the
    preprocessing (:mod:`calo.artifacts` reads them back)."""

    package: ClassVar[str] = PACKAGE
    resume_free: ClassVar[frozenset[str]] = frozenset({"epochs"})

    @property
    def model_name(self) -> str:
        return MODEL_NAMES[self.config.model]

    @property
    def total_steps(self) -> int:
        return self.config.epochs

    def setup(self, resume: Checkpoint | None) -> None:
        cfg, device = self.config, self.ctx.device
        if cfg.data is None:
            raise ConfigError("TrainConfig.data: give the training file (calo simulate -o FILE)")
        if cfg.batch_size < self.ctx.world_size:
            raise ConfigError(f"batch_size {cfg.batch_size} is smaller than the number of "
                              f"processes ({self.ctx.world_size})")
        data = Path(cfg.data)
        (tr_lo, tr_hi), (va_lo, va_hi) = split_rows(count_showers(data), cfg.val_fraction,
                                                    cfg.max_rows)
        self.rows = [tr_lo, tr_hi, va_lo, va_hi]
        if resume is not None:
            lo, hi = (float(e) for e in resume.extra["energy_range_gev"])
            self.energy_range = (lo, hi)
        else:
            self.energy_range = _energy_range(data, tr_lo, tr_hi)
        self.preprocessor: ShowerPreprocessor | None = None
        if cfg.model == "vae":
            if resume is not None:
                self.preprocessor = ShowerPreprocessor.from_state_dict(
                    resume.extra["preprocessing"])
            else:
                lo, hi = self.energy_range
                self.preprocessor = ShowerPreprocessor(cfg.vae.eps, lo, max(hi, lo * 1.0001))
                self.preprocessor.fit(iter_showers(data, 8192, start=tr_lo,
                                                   stop=min(tr_hi, tr_lo + 50000)))
        # every rank gets at least one row of each (tail) batch
        self.stream = ShowerStream(data, tr_lo, tr_hi, cfg.batch_size, seed=cfg.seed,
                                   min_batch=max(2, self.ctx.world_size))
        self.batches_per_epoch = self.stream.batches_per_epoch()
        model = build_model(cfg, self.preprocessor).to(device)
        self.model = model
        self.trainer: _GanTrainer | _VaeTrainer
        if isinstance(model, CaloGAN):
            self.trainer = _GanTrainer(model, cfg, device, self.energy_range, self.ctx)
        else:
            self.trainer = _VaeTrainer(model, cfg, device, len(self.stream), self.ctx)
        val_stop = min(va_hi, va_lo + 4096)
        self.used_rows = _used_provenance(data, (tr_lo, tr_hi), (va_lo, val_stop))
        self.val_batches = [_to_torch(b, device) for b in
                            iter_showers(data, 1024, keys=["energy", *LAYER_KEYS], start=va_lo,
                                         stop=val_stop)] if va_hi > va_lo else []
        model.train()

    def state(self) -> TrainState:
        schedulers = self.trainer.sched if isinstance(self.trainer, _VaeTrainer) else {}
        return TrainState(models={"model": self.model}, optimizers=self.trainer.opt,
                          schedulers=schedulers)

    def train_step(self, step: int, clock: Clock) -> dict[str, float]:
        """Epoch ``step``: every batch of the training rows (stops early when ``clock``
        expires; ``fit`` then checkpoints the run at the start of this epoch)."""
        sums: dict[str, float] = {}
        done = 0
        bar = progress(total=self.batches_per_epoch,
                       desc=f"{self.model_name} epoch {step + 1}", leave=False,
                       disable=None if self.ctx.is_main else True)
        for i, batch in enumerate(self.stream.epoch(step)):
            if isinstance(self.trainer, _VaeTrainer):
                self.trainer.set_progress(step * self.batches_per_epoch + i)
            scalars = self.trainer.step(_to_torch(batch, self.ctx.device))
            for key, value in scalars.items():
                sums[key] = sums.get(key, 0.0) + value
            done += 1
            bar.update(1)
            if clock.expired():
                break
        bar.close()
        return {key: value / max(done, 1) for key, value in sums.items()}

    def validate(self, step: int) -> dict[str, float]:
        return self.trainer.validate(self.val_batches) if self.val_batches else {}

    def extra_state(self, final: bool) -> dict[str, object]:
        extra: dict[str, object] = {
            "energy_range_gev": list(self.energy_range), "rows": list(self.rows),
            "data_provenance": (to_records(self.used_rows) if self.used_rows is not None
                                else None)}
        if self.preprocessor is not None:
            extra["preprocessing"] = self.preprocessor.state_dict()
        return extra


def train(config: TrainConfig, progress_bar: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.data`` through the shared layer (resumes a run
    folder holding checkpoints of the same model and configuration)."""
    return fit(CaloTrainingJob, config, progress_bar=progress_bar)
