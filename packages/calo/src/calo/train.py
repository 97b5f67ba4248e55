"""Training of CaloGAN and CaloVAE from a CaloGAN HDF5 file, with checkpoints and resume.

:func:`train` is what ``calo train`` runs.  A run folder holds ``config.json``, TensorBoard
events, ``metrics.jsonl`` and ``checkpoints/ckpt_<step>.pt``; calling :func:`train` again on a
folder that holds checkpoints resumes from the latest one (at the start of the epoch it was in).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from physml_core.checkpoint import checkpoint_path, latest, load_checkpoint, save_checkpoint
from physml_core.config import from_dict, to_dict
from physml_core.device import resolve_device, seed_everything
from physml_core.errors import CheckpointError, ConfigError
from physml_core.hdf5 import H5Reader
from physml_core.logging import RunLogger, default_run_dir, get_logger, progress
from physml_core.provenance import Provenance, from_attrs, from_records, select_rows, to_records

from .data import CALO_SCHEMA, LAYER_KEYS, count_showers, iter_showers
from .models import MODEL_NAMES, CaloGAN, CaloGANConfig, CaloVAE, CaloVAEConfig, vae_loss
from .preprocessing import ShowerPreprocessor, flatten_cells
from .stream import ShowerStream, split_rows

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "apply_preset", "load_model", "train",
           "training_provenance"]

PACKAGE = "calo"
log = get_logger("calo.train")

#: Named training recipes.  ``paper``: the CaloGAN paper's (50 epochs, batch 256, Adam with
#: D lr 2e-5, G lr 2e-4, beta1 0.5, MAE energy weight 0.05, the paper's architecture; a GPU job).
#: ``cpu``: the default, sized for about 30 minutes on two CPU cores with a 20k-shower training
#: set.  For CaloGAN it narrows the network (latent 128 instead of 1024, discriminator Conv2D
#: 32 instead of 64 channels: about 2x cheaper per step) and weights the MAE energy term 1.0, which
#: in a short run brings the generated energy scale and layer fractions close to the data (see
#: the package README for what it reaches).  A preset's ``gan`` entry is a CaloGANConfig.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "gan": {"epochs": 50, "batch_size": 256, "lr_d": 2e-5, "lr_g": 2e-4, "beta1": 0.5,
                "g_steps": 2, "energy_weight_gan": 0.05, "max_rows": None,
                "max_minutes": None, "gan": CaloGANConfig()},
        "vae": {"epochs": 50, "batch_size": 64, "lr": 1e-4, "kl_anneal_epochs": 20,
                "max_rows": None, "max_minutes": None},
    },
    "cpu": {
        "gan": {"epochs": 12, "batch_size": 64, "lr_d": 5e-5, "lr_g": 2e-4, "beta1": 0.5,
                "g_steps": 2, "energy_weight_gan": 1.0, "max_rows": 20000, "max_minutes": 30.0,
                "gan": CaloGANConfig(latent_dim=128, d_conv_channels=32)},
        "vae": {"epochs": 60, "batch_size": 256, "lr": 1e-3, "kl_anneal_epochs": 2,
                "max_rows": 50000, "max_minutes": 30.0},
    },
}


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in ``config.json`` and in every checkpoint.

    Energies in GeV.  ``max_rows`` limits the rows of ``data`` used (train + validation);
    ``max_minutes`` stops training gracefully (checkpoint written) after that wall time.
    """

    model: Literal["gan", "vae"] = "vae"
    data: str = ""
    run_dir: str | None = None
    preset: Literal["cpu", "paper"] = "cpu"
    epochs: int = 40
    batch_size: int = 256
    seed: int = 0
    device: str = "auto"
    max_rows: int | None = 50000
    val_fraction: float = 0.1
    max_minutes: float | None = 30.0
    log_every: int = 50
    # GAN recipe
    lr_g: float = 2e-4
    lr_d: float = 5e-5
    beta1: float = 0.5
    g_steps: int = 2
    energy_weight_gan: float = 0.05
    # VAE recipe
    lr: float = 1e-3
    kl_max: float = 1.0
    kl_anneal_epochs: int = 10
    energy_weight: float = 1.0
    sparsity_weight: float = 1.0
    grad_clip: float = 5.0
    gan: CaloGANConfig = field(default_factory=CaloGANConfig)
    vae: CaloVAEConfig = field(default_factory=CaloVAEConfig)

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ConfigError(f"unknown model {self.model!r}: use one of {sorted(MODEL_NAMES)}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}: use one of {sorted(PRESETS)}")
        for name in ("epochs", "batch_size", "g_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2 (batch norm, minibatch features)")
        if self.max_rows is not None and self.max_rows < 4:
            raise ConfigError(f"max_rows must be at least 4, got {self.max_rows}")
        for name in ("lr_g", "lr_d", "lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")


def apply_preset(config: TrainConfig, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Return ``config`` with the preset's recipe for its model (for CaloGAN including the
    architecture, ``config.gan``), then ``overrides`` on top."""
    values = dict(PRESETS[config.preset][config.model])
    if "gan" in values:
        values["gan"] = dataclasses.replace(values["gan"])  # a copy, never the preset's own
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return dataclasses.replace(config, **values)


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    epochs_done: int
    metrics: dict[str, float]


# ------------------------------------------------------------------------------ model building

def _build(config: TrainConfig, preprocessor: ShowerPreprocessor | None = None
           ) -> torch.nn.Module:
    if config.model == "gan":
        return CaloGAN(config.gan)
    return CaloVAE(config.vae, preprocessor)


def _load_checkpoint(path: str | Path, model_name: str | None = None) -> Any:
    """physml_core.load_checkpoint, plus a guard: some non-checkpoint files make torch.load
    raise KeyError/IndexError/TypeError, which must still read as a one-line CheckpointError."""
    try:
        return load_checkpoint(path, package=PACKAGE, model_name=model_name)
    except (KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                              f"{exc})") from None


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu",
               expect: str | None = None) -> tuple[torch.nn.Module, Any]:
    """Rebuild a trained model (eval mode) and its preprocessing from a checkpoint.

    ``expect`` ("gan" or "vae") refuses a checkpoint of the other model with CheckpointError.
    Returns ``(model, checkpoint)``.
    """
    model_name = MODEL_NAMES[expect] if expect is not None else None
    ckpt = _load_checkpoint(checkpoint, model_name)
    if ckpt.model_name not in MODEL_NAMES.values():
        raise CheckpointError(f"{ckpt.path}: unknown calo model '{ckpt.model_name}'")
    try:
        config = from_dict(TrainConfig, dict(ckpt.config))
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt.path}: stored config is not valid ({exc})") from None
    prep = None
    if "preprocessing" in ckpt.extra:
        prep = ShowerPreprocessor.from_state_dict(ckpt.extra["preprocessing"])
    model = _build(config, prep)
    ckpt.restore(model=model, rng=False)
    model.to(resolve_device(device)).eval()
    model.energy_range_gev = tuple(ckpt.extra.get("energy_range_gev", (1.0, 100.0)))
    return model, ckpt


# ------------------------------------------------------------------------------------ helpers

def _energy_range(path: Path, start: int, stop: int) -> tuple[float, float]:
    lo, hi = math.inf, -math.inf
    for batch in iter_showers(path, 65536, keys=["energy"], start=start, stop=stop):
        lo, hi = min(lo, float(batch["energy"].min())), max(hi, float(batch["energy"].max()))
    if not lo < hi:
        hi = lo * 1.01 + 1e-3
    return lo, hi


def _to_torch(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}


def _gan_images(batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """MeV cells -> GeV images (B, 1, r, c), the unit the CaloGAN networks work in."""
    return [batch[k].unsqueeze(1) / 1000.0 for k in LAYER_KEYS]


class _GanTrainer:
    def __init__(self, model: CaloGAN, cfg: TrainConfig, device: torch.device,
                 energy_range: tuple[float, float]) -> None:
        self.model, self.cfg, self.device = model, cfg, device
        self.energy_range = energy_range
        fused = device.type in ("cpu", "cuda")  # one kernel per step (29M generator weights)
        self.opt = {
            "generator": torch.optim.Adam(model.generator.parameters(), lr=cfg.lr_g,
                                          betas=(cfg.beta1, 0.999), fused=fused),
            "discriminator": torch.optim.Adam(model.discriminator.parameters(), lr=cfg.lr_d,
                                              betas=(cfg.beta1, 0.999), fused=fused),
        }

    def _sample_energy(self, n: int) -> torch.Tensor:
        lo, hi = self.energy_range
        return torch.empty(n, 1, device=self.device).uniform_(lo, hi)

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        g, d, cfg = self.model.generator, self.model.discriminator, self.cfg
        n = batch["energy"].shape[0]
        real = _gan_images(batch)
        e_real = batch["energy"]
        # Discriminator: two Adam steps, one on an all-real batch then one on an all-fake batch
        # (the original's two train_on_batch calls: batch norm and minibatch discrimination see
        # batches of one kind only).  The fake batch is generated before either step.
        e_fake = self._sample_energy(n)
        with torch.no_grad():
            fake = g(torch.randn(n, g.config.latent_dim, device=self.device), e_fake)
        d_losses = []
        for images, energies, target in ((real, e_real, 1.0), (fake, e_fake, 0.0)):
            logit, _ = d(images, energies)
            loss = F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))
            self.opt["discriminator"].zero_grad(set_to_none=True)
            loss.backward()
            self.opt["discriminator"].step()
            d_losses.append(loss.detach())
        loss_d = d_losses[0] + d_losses[1]
        # Generator: g_steps updates; adversarial BCE + MAE on the total energy (weight 0.05).
        for _ in range(cfg.g_steps):
            e_gen = self._sample_energy(n)
            images = g(torch.randn(n, g.config.latent_dim, device=self.device), e_gen)
            logit, total = d(images, e_gen)
            adv = F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
            aux = (total - e_gen).abs().mean()
            loss_g = adv + cfg.energy_weight_gan * aux
            self.opt["generator"].zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt["generator"].step()
        return {"loss_d": float(loss_d.detach()), "loss_g_adv": float(adv.detach()),
                "loss_g_energy": float(aux.detach())}

    @torch.no_grad()
    def validate(self, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        g = self.model.generator
        g.eval()
        ratios, sparsity_gen, sparsity_real = [], [], []
        for batch in batches:
            images = g(torch.randn(batch["energy"].shape[0], g.config.latent_dim,
                                   device=self.device), batch["energy"])
            total = sum(img.flatten(1).sum(1) for img in images)
            ratios.append((total / batch["energy"].view(-1)).cpu())
            sparsity_gen.append(torch.cat([(i > 0).flatten(1) for i in images], 1).float()
                                .mean(1).cpu())
            sparsity_real.append(torch.cat([(batch[k] > 0).flatten(1) for k in LAYER_KEYS], 1)
                                 .float().mean(1).cpu())
        g.train()
        return {"val_etot_over_einc": float(torch.cat(ratios).mean()),
                "val_occupancy_gen": float(torch.cat(sparsity_gen).mean()),
                "val_occupancy_real": float(torch.cat(sparsity_real).mean())}


class _VaeTrainer:
    def __init__(self, model: CaloVAE, cfg: TrainConfig, device: torch.device,
                 steps_per_epoch: int) -> None:
        self.model, self.cfg, self.device = model, cfg, device
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.opt = {"vae": torch.optim.Adam(model.parameters(), lr=cfg.lr)}
        self.sched = {"vae": torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt["vae"], factor=0.5, patience=3)}
        self.kl_weight = 0.0

    def set_progress(self, step: int) -> None:
        anneal = max(self.cfg.kl_anneal_epochs * self.steps_per_epoch, 1)
        self.kl_weight = self.cfg.kl_max * min(1.0, step / anneal)

    def _loss(self, batch: dict[str, torch.Tensor], kl_weight: float) -> dict[str, torch.Tensor]:
        prep = self.model.preprocessor
        cells = flatten_cells(batch)
        w, m = prep.forward(cells, batch["energy"])
        c = prep.condition(batch["energy"])
        return vae_loss(self.model, w, m, c, batch["energy"], cells, kl_weight,
                        self.cfg.energy_weight, self.cfg.sparsity_weight)

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        losses = self._loss(batch, self.kl_weight)
        self.opt["vae"].zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt["vae"].step()
        out = {f"loss_{k}": float(v.detach()) for k, v in losses.items()}
        out["kl_weight"] = self.kl_weight
        return out

    @torch.no_grad()
    def validate(self, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
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
        return {"val_loss": value,
                "val_etot_over_einc": float(torch.cat(ratios).mean()) if ratios else math.nan,
                "val_occupancy_gen": float(torch.cat(occ_gen).mean()) if occ_gen else math.nan,
                "val_occupancy_real": float(torch.cat(occ_real).mean()) if occ_real else math.nan}


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


def training_provenance(ckpt: Any) -> list[Provenance] | None:
    """The rows a checkpoint was trained and validated on (None if it does not record them)."""
    records = ckpt.extra.get("data_provenance")
    return None if records is None else from_records(records)


# --------------------------------------------------------------------------------------- train

def train(config: TrainConfig, progress_bar: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.data``; resume if the run folder holds checkpoints."""
    if not config.data:
        raise ConfigError("TrainConfig.data: give the training file (calo simulate -o FILE)")
    data = Path(config.data)
    total_rows = count_showers(data)
    (tr_lo, tr_hi), (va_lo, va_hi) = split_rows(total_rows, config.val_fraction, config.max_rows)
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(PACKAGE)
    config = dataclasses.replace(config, run_dir=str(run_dir))
    device = resolve_device(config.device)
    seed_everything(config.seed)
    model_name = MODEL_NAMES[config.model]

    resume_path = latest(run_dir)
    resume = None
    if resume_path is not None:
        resume = _load_checkpoint(resume_path)
        if resume.model_name != model_name:
            raise CheckpointError(
                f"{run_dir}: holds a '{resume.model_name}' run; cannot resume it as "
                f"'{model_name}' (choose another --run-dir)")

    energy_range = (tuple(resume.extra["energy_range_gev"]) if resume is not None
                    else _energy_range(data, tr_lo, tr_hi))
    prep = None
    if config.model == "vae":
        if resume is not None:
            prep = ShowerPreprocessor.from_state_dict(resume.extra["preprocessing"])
        else:
            prep = ShowerPreprocessor(config.vae.eps, energy_range[0],
                                      max(energy_range[1], energy_range[0] * 1.0001))
            prep.fit(iter_showers(data, 8192, start=tr_lo, stop=min(tr_hi, tr_lo + 50000)))
    model = _build(config, prep).to(device)
    stream = ShowerStream(data, tr_lo, tr_hi, config.batch_size, seed=config.seed)
    steps_per_epoch = len(stream)
    if config.model == "gan":
        trainer: Any = _GanTrainer(model, config, device, energy_range)
        scheduler = None
    else:
        trainer = _VaeTrainer(model, config, device, steps_per_epoch)
        scheduler = trainer.sched
    step, start_epoch = 0, 0
    if resume is not None:
        resume.restore(model=model, optimizer=trainer.opt, scheduler=scheduler, rng=True)
        step, start_epoch = resume.step, int(resume.extra.get("epoch", 0))
        log.info("resuming %s from %s (step %d, epoch %d)", model_name, resume.path, step,
                 start_epoch)
    used_rows = _used_provenance(data, (tr_lo, tr_hi), (va_lo, min(va_hi, va_lo + 4096)))
    val_batches = [_to_torch(b, device) for b in
                   iter_showers(data, 1024, keys=["energy", *LAYER_KEYS], start=va_lo,
                                stop=min(va_hi, va_lo + 4096))] if va_hi > va_lo else []

    def save(epoch_next: int) -> Path:
        extra = {"epoch": epoch_next, "energy_range_gev": list(energy_range),
                 "rows": [tr_lo, tr_hi, va_lo, va_hi],
                 "data_provenance": to_records(used_rows) if used_rows is not None else None}
        if prep is not None:
            extra["preprocessing"] = prep.state_dict()
        return save_checkpoint(checkpoint_path(run_dir, step), package=PACKAGE,
                               model_name=model_name, model=model, optimizer=trainer.opt,
                               scheduler=scheduler, step=step, config=to_dict(config),
                               extra=extra)

    started = time.monotonic()
    metrics: dict[str, float] = {}
    last_ckpt = resume_path
    stopped = False
    model.train()
    with RunLogger(run_dir, config=config) as logger:
        epoch = start_epoch
        for epoch in range(start_epoch, config.epochs):
            bar = progress(total=steps_per_epoch, desc=f"{model_name} epoch {epoch + 1}",
                           disable=None if progress_bar else True)
            for batch in stream.epoch(epoch):
                if config.model == "vae":
                    trainer.set_progress(step)
                scalars = trainer.step(_to_torch(batch, device))
                step += 1
                bar.update(1)
                if step % config.log_every == 0:
                    logger.log_scalars(step, scalars, prefix="train/")
                    metrics.update(scalars)
                if (config.max_minutes is not None
                        and time.monotonic() - started > 60.0 * config.max_minutes):
                    stopped = True
                    break
            bar.close()
            val = trainer.validate(val_batches) if val_batches else {}
            logger.log_scalars(step, {**val, "epoch": epoch + 1}, prefix="val/")
            metrics.update(val)
            if stopped:
                last_ckpt = save(epoch)
                log.info("time limit of %.1f min reached at step %d", config.max_minutes, step)
                break
            last_ckpt = save(epoch + 1)
        else:
            epoch = config.epochs
        if last_ckpt is None:
            last_ckpt = save(start_epoch)
    return TrainResult(run_dir=run_dir, checkpoint=Path(last_ckpt), step=step,
                       epochs_done=epoch if stopped else min(epoch, config.epochs),
                       metrics=metrics)
