"""Training of CaloGAN and CaloVAE from a CaloGAN HDF5 file: the science of one epoch.

:func:`train` is what ``calo train`` runs: :func:`physml_core.training.fit` with
:class:`CaloTrainingJob`, so the run folder, resume policy, checkpoints (one per epoch: a step
is one epoch), logs, the time limit and torchrun are the shared layer's.  This module holds
what is calo's own: the data split and preprocessing fitted on the training rows, the CaloGAN
step (two discriminator updates, all-real then all-fake batch, and ``g_steps`` generator
updates with the MAE energy term) and the CaloVAE step (annealed KL, energy and sparsity
terms), and their validation figures.

Several particle files (CaloGAN only): the original's ACGAN mode.  Batches mix the files
(:class:`calo.stream.MixedShowerStream`), each shower labelled with its particle type; the
generator is conditioned on a requested label, the discriminator's auxiliary output classifies
the particle type, with loss weight ``aux_weight_gan`` (0.2) in every discriminator and
generator step, real showers against their labels, generated ones in the discriminator step
against the requested labels flipped with probability ``aux_label_flip`` (0.3, the original's
``bit_flip``), and in the generator steps against the requested labels.

Several processes (``torchrun``): every rank reads the same global batch and draws the same
random numbers for all of it (energies, latent vectors, VAE noise), then takes its contiguous
share of the rows.  Every loss term is a mean over the global batch (the VAE sparsity term's
batch means are all-reduced), and CaloGAN's batch normalisation and minibatch discrimination
compute their statistics over the global batch (:func:`calo.models.layers.global_batch`), so
a run on N processes is the one-process run with the same global batch, to float rounding.
"""

from __future__ import annotations

import dataclasses
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
from physml_core.errors import CheckpointError, ConfigError
from physml_core.hdf5 import H5Reader
from physml_core.logging import get_logger, progress
from physml_core.provenance import Provenance, from_attrs, select_rows, to_records
from physml_core.training import Clock, TrainingJob, TrainResult, TrainState, fit

from .artifacts import PACKAGE, build_model
from .config import PRESETS, TrainConfig, preset_config
from .data import CALO_SCHEMA, LAYER_KEYS, count_showers, iter_showers, read_showers
from .models import MODEL_NAMES, CaloGAN, CaloVAE, vae_loss
from .models.calogan import CaloGANDiscriminator, auxiliary_loss, auxiliary_prediction
from .models.layers import global_batch
from .preprocessing import ShowerPreprocessor, flatten_cells
from .stream import MixedShowerStream, ShowerStream, split_rows

__all__ = ["PRESETS", "CaloTrainingJob", "TrainConfig", "TrainResult", "file_particle",
           "preset_config", "resolve_particles", "train"]

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

    def _draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Energies (n, 1) GeV uniform in the training range, latent vectors and (several
        particle types) requested labels uniform over the types, for the whole global batch
        (the same numbers on every rank), cut to this rank's rows."""
        lo, hi = self.energy_range
        energy = torch.empty(n, 1, device=self.device).uniform_(lo, hi)
        z = torch.randn(n, self.model.generator.config.latent_dim, device=self.device)
        labels = None
        if self.model.n_classes > 1:  # the original: np.random.randint(0, nb_classes, n)
            labels = torch.randint(0, self.model.n_classes, (n,), device=self.device)
        a, b = self.share.bounds(n)
        return energy[a:b], z[a:b], None if labels is None else labels[a:b]

    def _flipped(self, labels: torch.Tensor, n: int) -> torch.Tensor:
        """The original's ``bit_flip(labels, 0.3)``: with probability ``aux_label_flip`` a
        label becomes ``1 * logical_not(label)`` (0 <-> 1 for two types; any non-zero label
        becomes 0 and 0 becomes 1 for more), drawn for the whole global batch."""
        flip = torch.rand(n, device=self.device) < self.cfg.aux_label_flip
        a, b = self.share.bounds(n)
        return torch.where(flip[a:b], (labels == 0).long(), labels)

    def step(self, batch: Batch) -> dict[str, float]:
        """One iteration on a global batch (energy (B, 1) GeV, layers MeV; ``label`` (B,) for
        several particle types)."""
        g, cfg = self.model.generator, self.cfg
        n = batch["energy"].shape[0]
        local = self.share.rows(batch)
        real = _gan_images(local)
        e_real = local["energy"]
        acgan = self.model.n_classes > 1
        # Discriminator: two Adam steps, one on an all-real batch then one on an all-fake batch
        # (the original's two train_on_batch calls: batch norm and minibatch discrimination see
        # batches of one kind only).  The fake batch is generated before either step.
        e_fake, z, y_fake = self._draw(n)
        with torch.no_grad():
            fake = g(z, e_fake, y_fake)
        y_real = local["label"] if acgan else None
        y_fake_target = self._flipped(y_fake, n) if y_fake is not None else None
        d_losses, d_aux, out = [], [], {}
        mean = self.share.mean_of_rows(n)
        # (kind, images, energies, real/fake target, auxiliary target, true or requested label)
        for kind, images, energies, target, labels, truth in (
                ("real", real, e_real, 1.0, y_real, y_real),
                ("fake", fake, e_fake, 0.0, y_fake_target, y_fake)):
            logit, _, aux_logits = self.d_net(images, energies)
            loss = mean(F.binary_cross_entropy_with_logits(
                logit, torch.full_like(logit, target), reduction="none"))
            total_loss = loss
            if aux_logits is not None and labels is not None and truth is not None:
                aux_loss = mean(auxiliary_loss(aux_logits, labels, reduction="none"))
                total_loss = loss + cfg.aux_weight_gan * aux_loss
                d_aux.append(aux_loss.detach())
                # accuracy against the true (real) or requested (generated, unflipped) labels
                out[f"aux_acc_{kind}"] = float(mean(
                    (auxiliary_prediction(aux_logits.detach()) == truth).float()))
            self.opt["discriminator"].zero_grad(set_to_none=True)
            total_loss.backward()
            self.opt["discriminator"].step()
            d_losses.append(loss.detach())
        loss_d = d_losses[0] + d_losses[1]
        # Generator: g_steps updates; adversarial BCE + MAE on the total energy (+ the
        # auxiliary loss on the requested labels).  The discriminator is called unwrapped: its
        # gradients here are not used.
        adv = aux = g_aux = torch.zeros(())
        for _ in range(cfg.g_steps):
            e_gen, z, y_gen = self._draw(n)
            images = self.g_net(z, e_gen, y_gen)
            logit, total, aux_logits = self.model.discriminator(images, e_gen)
            adv = mean(F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit),
                                                          reduction="none"))
            aux = mean((total - e_gen).abs())
            loss_g = adv + cfg.energy_weight_gan * aux
            if aux_logits is not None and y_gen is not None:
                g_aux = mean(auxiliary_loss(aux_logits, y_gen, reduction="none"))
                loss_g = loss_g + cfg.aux_weight_gan * g_aux
            self.opt["generator"].zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt["generator"].step()
        out.update({"loss_d": float(loss_d.detach()), "loss_g_adv": float(adv.detach()),
                    "loss_g_energy": float(aux.detach())})
        if acgan:
            out.update({"loss_d_aux": float(d_aux[0] + d_aux[1]),
                        "loss_g_aux": float(g_aux.detach())})
        return out

    def _local_discriminator(self) -> CaloGANDiscriminator:
        """A one-process copy of the discriminator in training mode: the auxiliary classifier
        is judged as it is trained, on all-real and all-generated batches with batch
        statistics, but the running statistics of the model's batch norms stay as training
        left them, and under torchrun no statistic is exchanged (every rank validates the
        same rows).  Built without drawing from the global random stream."""
        with torch.random.fork_rng(devices=[]):
            d = CaloGANDiscriminator(self.model.config, self.model.n_classes)
        d.load_state_dict(self.model.discriminator.state_dict())
        return d.to(self.device).train()

    @torch.no_grad()
    def validate(self, batches: list[Batch]) -> dict[str, float]:
        g = self.model.generator
        g.eval()
        acgan = self.model.n_classes > 1
        d = self._local_discriminator() if acgan else None
        ratios, sparsity_gen, sparsity_real = [], [], []
        labels_all, hits_real, hits_gen = [], [], []
        for batch in batches:
            labels = batch.get("label") if acgan else None
            images = g(torch.randn(batch["energy"].shape[0], g.config.latent_dim,
                                   device=self.device), batch["energy"], labels)
            per_layer = [img.flatten(1).sum(1) for img in images]
            total = per_layer[0] + per_layer[1] + per_layer[2]
            ratios.append((total / batch["energy"].view(-1)).cpu())
            sparsity_gen.append(torch.cat([(i > 0).flatten(1) for i in images], 1).float()
                                .mean(1).cpu())
            sparsity_real.append(torch.cat([(batch[k] > 0).flatten(1) for k in LAYER_KEYS], 1)
                                 .float().mean(1).cpu())
            real_aux = d(_gan_images(batch), batch["energy"]).aux if d is not None else None
            gen_aux = d(images, batch["energy"]).aux if d is not None else None
            if labels is not None and real_aux is not None and gen_aux is not None:
                # the auxiliary classifier on all-real and all-generated batches, as trained
                labels_all.append(labels.cpu())
                hits_real.append((auxiliary_prediction(real_aux) == labels).float().cpu())
                hits_gen.append((auxiliary_prediction(gen_aux) == labels).float().cpu())
        g.train()
        out = {"etot_over_einc": float(torch.cat(ratios).mean()),
               "occupancy_gen": float(torch.cat(sparsity_gen).mean()),
               "occupancy_real": float(torch.cat(sparsity_real).mean())}
        if labels_all:
            y, ratio = torch.cat(labels_all), torch.cat(ratios)
            out["aux_acc_real"] = float(torch.cat(hits_real).mean())
            out["aux_acc_gen"] = float(torch.cat(hits_gen).mean())
            for label, name in enumerate(self.cfg.class_names):
                out[f"etot_over_einc_{name}"] = float(ratio[y == label].mean())
        return out


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


def _recorded_particles(path: str | Path) -> list[str]:
    with H5Reader(path, CALO_SCHEMA) as reader:
        records = from_attrs(reader.attrs)
    return sorted({p.setting for p in records or []})


def file_particle(path: str | Path) -> str | None:
    """The particle type a CaloGAN file records in its provenance (the simulator's ``setting``:
    ``eplus``, ``gamma``), or None for a file without provenance (e.g. a Geant4 file).  A file
    mixing several particle types is a :class:`ConfigError`."""
    settings = _recorded_particles(path)
    if not settings:
        return None
    if len(settings) > 1:
        raise ConfigError(f"{path}: holds several particle types ({', '.join(settings)}); "
                          "give one file per particle type")
    return settings[0]


def resolve_particles(config: TrainConfig) -> TrainConfig:
    """``config`` with ``particles`` filled for several training files: each file's recorded
    particle type (:func:`file_particle`), or the name given in ``particles`` (which must agree
    with what a file records).  One training file: ``config`` unchanged.  A file with no
    recorded particle and no given name, or two files of one particle type, is a
    :class:`ConfigError` (one line)."""
    files = config.data_files
    if len(files) < 2:
        if files and config.particles:
            settings = _recorded_particles(files[0])
            if settings and settings != config.particles:
                raise ConfigError(f"{files[0]} holds {', '.join(settings)} showers, not "
                                  f"{config.particles[0]}")
        return config
    names: list[str] = []
    for i, path in enumerate(files):
        recorded = file_particle(path)
        given = config.particles[i] if config.particles else None
        if given is not None and recorded is not None and given != recorded:
            raise ConfigError(f"{path} holds {recorded} showers, not {given} (--particles "
                              "names the particle of each --data file, in order)")
        name = given if given is not None else recorded
        if name is None:
            raise ConfigError(f"{path} records no particle type: name the particle of each "
                              "--data file with --particles NAME,NAME,... (in --data order)")
        names.append(name)
    for name in sorted(set(names)):
        same = [f for f, p in zip(files, names, strict=True) if p == name]
        if len(same) > 1:
            raise ConfigError(f"{', '.join(same)} all hold {name} showers: give one file per "
                              "particle type (calo merge joins files of one type)")
    return dataclasses.replace(config, particles=names)


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
    # The multi-particle settings are checked on resume by setup() against the checkpoint
    # (so that runs started before they existed keep their config hash and resume).
    # gan_init_fans only draws the initial weights, which a resumed run takes from its checkpoint.
    resume_free: ClassVar[frozenset[str]] = frozenset(
        {"epochs", "particles", "aux_weight_gan", "aux_label_flip", "gan_init_fans"})

    @property
    def model_name(self) -> str:
        return MODEL_NAMES[self.config.model]

    @property
    def total_steps(self) -> int:
        return self.config.epochs

    def setup(self, resume: Checkpoint | None) -> None:
        cfg, device = self.config, self.ctx.device
        files = cfg.data_files
        if not files:
            raise ConfigError("TrainConfig.data: give the training file (calo simulate -o FILE)")
        if cfg.batch_size < self.ctx.world_size:
            raise ConfigError(f"batch_size {cfg.batch_size} is smaller than the number of "
                              f"processes ({self.ctx.world_size})")
        if len(files) > 1:
            self._setup_particles(resume)
            return
        data = Path(files[0])
        (tr_lo, tr_hi), (va_lo, va_hi) = split_rows(count_showers(data), cfg.val_fraction,
                                                    cfg.max_rows)
        self.rows: list[int] | list[list[int]] = [tr_lo, tr_hi, va_lo, va_hi]
        recorded = _recorded_particles(data)
        self.particles = cfg.particles or (recorded if len(recorded) == 1 else [])
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
        self.stream: ShowerStream | MixedShowerStream = ShowerStream(
            data, tr_lo, tr_hi, cfg.batch_size, seed=cfg.seed,
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

    def _acgan_settings(self) -> dict[str, object]:
        cfg = self.config
        return {"particles": list(cfg.particles), "aux_weight_gan": cfg.aux_weight_gan,
                "aux_label_flip": cfg.aux_label_flip}

    def _setup_particles(self, resume: Checkpoint | None) -> None:
        """Several particle files: the multi-particle CaloGAN (ACGAN), each file split by the
        held-out rule on its own, batches mixing the files, labels the sorted particle names."""
        cfg, device = self.config, self.ctx.device
        files = cfg.data_files
        if len(cfg.particles) != len(files):
            raise ConfigError("several training files need the particle of each "
                              "(calo.train.resolve_particles fills TrainConfig.particles)")
        if resume is not None and resume.extra.get("acgan") != self._acgan_settings():
            raise CheckpointError(
                f"{resume.path}: holds a multi-particle run with other settings "
                f"({resume.extra.get('acgan')} against {self._acgan_settings()}); use the same "
                "settings to resume it, another --run-dir, or --no-resume")
        self.particles = cfg.class_names
        sources: list[tuple[str | Path, int, int, int]] = []
        rows: list[list[int]] = []
        used: list[Provenance] | None = []
        lo_e, hi_e = math.inf, -math.inf
        val_parts: list[dict[str, np.ndarray]] = []
        for path, particle in zip(files, cfg.particles, strict=True):
            (tr_lo, tr_hi), (va_lo, va_hi) = split_rows(count_showers(path), cfg.val_fraction,
                                                        cfg.max_rows)
            label = self.particles.index(particle)
            rows.append([tr_lo, tr_hi, va_lo, va_hi])
            sources.append((path, tr_lo, tr_hi, label))
            if resume is None:
                lo, hi = _energy_range(Path(path), tr_lo, tr_hi)
                lo_e, hi_e = min(lo_e, lo), max(hi_e, hi)
            val_stop = min(va_hi, va_lo + 4096)
            file_used = _used_provenance(Path(path), (tr_lo, tr_hi), (va_lo, val_stop))
            used = None if used is None or file_used is None else used + file_used
            if va_hi > va_lo:
                part = read_showers(path, keys=["energy", *LAYER_KEYS], start=va_lo,
                                    stop=val_stop)
                part["label"] = np.full(val_stop - va_lo, label, np.int64)
                val_parts.append(part)
        self.rows = rows
        if resume is not None:
            lo_r, hi_r = (float(e) for e in resume.extra["energy_range_gev"])
            self.energy_range = (lo_r, hi_r)
        else:
            self.energy_range = (lo_e, hi_e)
        self.preprocessor = None
        self.stream = MixedShowerStream(sources, cfg.batch_size, seed=cfg.seed,
                                        min_batch=max(2, self.ctx.world_size))
        self.batches_per_epoch = self.stream.batches_per_epoch()
        model = build_model(cfg).to(device)
        if not isinstance(model, CaloGAN):
            raise ConfigError("several training files (particle types) need --model gan")
        self.model = model
        self.trainer = _GanTrainer(model, cfg, device, self.energy_range, self.ctx)
        self.used_rows = used
        self.val_batches = []
        if val_parts:
            # the validation rows of all files, mixed (fixed order), in batches of 1024
            val = {k: np.concatenate([p[k] for p in val_parts]) for k in val_parts[0]}
            order = np.random.default_rng([cfg.seed, 1]).permutation(len(val["label"]))
            self.val_batches = [_to_torch({k: v[order[i:i + 1024]] for k, v in val.items()},
                                          device) for i in range(0, len(order), 1024)]
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
                                else None),
            "particles": list(self.particles), "data_files": self.config.data_files}
        if len(self.config.data_files) > 1:
            extra["acgan"] = self._acgan_settings()
        if self.preprocessor is not None:
            extra["preprocessing"] = self.preprocessor.state_dict()
        return extra


def train(config: TrainConfig, progress_bar: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.data`` through the shared layer (resumes a run
    folder holding checkpoints of the same model and configuration).  Several files (one per
    particle type) train the multi-particle CaloGAN; their particle types are read from the
    files (:func:`resolve_particles`)."""
    return fit(CaloTrainingJob, resolve_particles(config), progress_bar=progress_bar)
